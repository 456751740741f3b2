//! What an apply did, per action and in total, and why an action failed: the data the CLI
//! renders, the run report records and notifications quote.

use serde::Serialize;

use crate::plan::model::{ActionKind, Address};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
/// How an action ended.
pub enum Outcome {
    /// Carried out.
    Done,
    /// Tried and failed.
    Failed,
    /// Not attempted because an action it depends on failed.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
/// One action of an apply and how it went.
pub struct ActionResult {
    /// The action's address.
    pub address: Address,
    /// Its kind.
    pub action: ActionKind,
    /// How it ended.
    pub outcome: Outcome,
    /// Digest the destination tag holds afterwards (done placements and aliases).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// Whether the failure may go away by running again (connection errors, time-outs).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
    /// Seconds it took.
    pub seconds: f64,
    /// Registry requests this action made (in its own task).
    pub requests: u64,
    /// Bytes this action sent to registries (request bodies).
    pub bytes: u64,
    /// The blobs this action needed, by how each got to the destination.
    #[serde(skip_serializing_if = "BlobCounts::is_empty")]
    pub blobs: BlobCounts,
}

/// The blobs one action needed: each counted once, uploaded, mounted or already present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BlobCounts {
    /// Streamed from the source.
    pub uploaded: u64,
    /// Mounted from another repository of the same registry.
    pub mounted: u64,
    /// Already at the destination.
    pub present: u64,
}

impl BlobCounts {
    /// No blob was needed (an alias, a restamp, a prune).
    pub fn is_empty(&self) -> bool {
        self.uploaded + self.mounted + self.present == 0
    }

    /// What the action's line says about its blobs: `every blob already present (3)` when
    /// nothing moved, else the counts; nothing when no blob was needed.
    fn sentence(&self) -> Option<String> {
        if self.is_empty() {
            None
        } else if self.uploaded + self.mounted == 0 {
            Some(format!(
                "every blob already present ({}), none moved",
                self.present
            ))
        } else {
            Some(format!(
                "blobs: {} uploaded, {} mounted, {} already present",
                self.uploaded, self.mounted, self.present
            ))
        }
    }
}

#[derive(Debug, Clone, Serialize)]
/// What an apply did.
pub struct RunReport {
    /// Every action, in plan order.
    pub results: Vec<ActionResult>,
    /// Blobs uploaded, over every action.
    pub blobs_uploaded: u64,
    /// Blobs mounted across repositories, over every action.
    pub blobs_mounted: u64,
    /// Blobs already at their destination, over every action.
    pub blobs_skipped: u64,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Duration of the apply, seconds.
    pub seconds: f64,
}

impl RunReport {
    /// Actions that did not end `done`.
    pub fn failed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome != Outcome::Done)
            .count()
    }

    /// `Apply complete: 3 done, 0 failed, 0 skipped; 5 blobs uploaded, …`.
    pub fn summary_line(&self) -> String {
        let count = |o: Outcome| self.results.iter().filter(|r| r.outcome == o).count();
        format!(
            "Apply {}: {} done, {} failed, {} skipped; {} blobs uploaded, {} mounted, {} already present; {:.1}s.",
            if self.failed() == 0 {
                "complete"
            } else {
                "incomplete"
            },
            count(Outcome::Done),
            count(Outcome::Failed),
            count(Outcome::Skipped),
            self.blobs_uploaded,
            self.blobs_mounted,
            self.blobs_skipped,
            self.seconds
        )
    }

    /// Each action on its line (with its error and how its blobs got there), then the summary line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for r in &self.results {
            let status = match r.outcome {
                Outcome::Done => "done",
                Outcome::Failed => "FAILED",
                Outcome::Skipped => "skipped",
            };
            out.push_str(&format!("{}: {} {status}", r.address, r.action.as_str()));
            if let Some(d) = &r.digest {
                out.push_str(&format!(" ({})", crate::plan::render::short(d)));
            }
            if let Some(blobs) = r.blobs.sentence() {
                out.push_str(&format!("; {blobs}"));
            }
            if let Some(e) = &r.error {
                out.push_str(&format!("\n    {e}"));
            }
            out.push('\n');
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }
}

/// Why an action failed, keeping its kind: a registry error (which registry, which reference,
/// transient or not), a rebuild error, or a refusal (the tag moved since planning, the content
/// would differ from the plan, a builder is missing).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A registry request failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The rebuild of the image for one tag failed.
    #[error("{at}: {error}")]
    Rebuild {
        /// The destination tag.
        at: String,
        /// What failed.
        error: crate::rebuild::RebuildError,
    },
    /// A manifest could not be read or stamped.
    #[error(transparent)]
    Stamp(#[from] crate::stamp::StampError),
    /// The image is in place but its evidence (SBOM, signature, upstream referrers) could not
    /// be attached.
    #[error(transparent)]
    Evidence(#[from] crate::evidence::runtime::AttachError),
    /// houba refused to go on (the message names the tag and says what to do).
    #[error("{0}")]
    Refused(String),
}

impl From<String> for ApplyError {
    fn from(message: String) -> Self {
        ApplyError::Refused(message)
    }
}

impl From<&str> for ApplyError {
    fn from(message: &str) -> Self {
        ApplyError::Refused(message.to_string())
    }
}

impl ApplyError {
    /// Whether running the action again may succeed (connection errors, time-outs).
    pub fn is_transient(&self) -> bool {
        match self {
            ApplyError::Registry(e) => e.is_transient(),
            ApplyError::Rebuild { error, .. } => error.is_transient(),
            ApplyError::Evidence(e) => e.is_transient(),
            ApplyError::Stamp(_) | ApplyError::Refused(_) => false,
        }
    }
}
