//! The run report: one value per run of `plan`, `apply` or `drift`, carrying everything the
//! metrics and the notifications are made from. `apply --format json` prints it, `--report
//! FILE` writes it; both are the same JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// Version of the run-report JSON. Bumped on any incompatible change.
pub const REPORT_FORMAT_VERSION: &str = "1.0";

/// Action kinds, as label values and JSON strings (every kind is always reported, zeros
/// included, so a dashboard never confuses "none" with "unknown").
pub const ACTION_KINDS: [&str; 7] = [
    "copy", "build", "replace", "restamp", "alias", "prune", "attach",
];
/// Drift finding kinds, as label values and JSON strings.
pub const DRIFT_KINDS: [&str; 7] = [
    "unstamped",
    "foreign",
    "tampered",
    "alias-moved",
    "bypass",
    "dangling",
    "evidence-missing",
];
/// Outcomes of an applied action.
pub const OUTCOMES: [&str; 3] = ["done", "failed", "skipped"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
/// The command a run report describes.
pub enum Command {
    /// `houba plan`.
    Plan,
    /// `houba apply`.
    Apply,
    /// `houba drift`.
    Drift,
}

impl Command {
    /// The command's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Plan => "plan",
            Command::Apply => "apply",
            Command::Drift => "drift",
        }
    }
}

/// A drift finding: live state changed outside houba.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Finding {
    /// The desired artifact's address (or `<registry>/<repository>:<tag>` for a bypass).
    pub address: String,
    /// One of [`DRIFT_KINDS`].
    pub kind: String,
    /// `<registry>/<repository>:<tag>` of the tag that drifted.
    pub location: String,
    /// Roster name of the registry holding it.
    pub registry: String,
    /// Repository path in the registry.
    pub repository: String,
    /// What the tag holds now; `null` for a dangling tag (listed, no manifest).
    pub digest: Option<String>,
    /// What was found, in one sentence.
    pub detail: String,
}

impl Finding {
    /// Identity of a finding across runs: which tag, for which desired artifact.
    pub fn key(&self) -> String {
        format!("{} @ {}", self.address, self.location)
    }

    /// Same finding, changed: another kind of drift or other content.
    pub fn changed_from(&self, earlier: &Finding) -> bool {
        self.kind != earlier.kind || self.digest != earlier.digest
    }
}

/// One applied action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    /// The action's address.
    pub address: String,
    /// One of [`ACTION_KINDS`].
    pub action: String,
    /// One of [`OUTCOMES`].
    pub outcome: String,
    /// Digest the destination tag holds afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A stable, machine-readable class of the failure (`registry`, `stale`, `build`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The error message, for a failed or skipped action.
    pub error: Option<String>,
    /// Bytes uploaded to the destination by this action.
    pub bytes: u64,
    /// Registry requests made by this action.
    pub requests: u64,
    /// The blobs this placement needed, by how each got there (`uploaded`, `mounted`,
    /// `present`); absent when it needed none (aliases, restamps, prunes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<crate::apply::BlobCounts>,
    /// Seconds the action took.
    pub seconds: f64,
}

/// What one registry cost during the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RegistryUsage {
    /// Requests by `METHOD` and status class (`2xx`, `3xx`, `4xx`, `5xx`, or `error` when no
    /// answer came back): `{"GET": {"2xx": 12}}`.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Bytes received in answer bodies.
    pub read_bytes: u64,
    /// Bytes sent in request bodies.
    pub written_bytes: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// Seconds spent waiting because the registry asked (`Retry-After`, 429/5xx back-off).
    pub retry_wait_seconds: f64,
    /// Docker Hub's `ratelimit-remaining`, last value seen, when the registry sends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit_remaining: Option<u64>,
}

impl RegistryUsage {
    /// Requests of every method and answer.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().flat_map(|m| m.values()).sum()
    }
}

/// What one notification sink did during the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkUsage {
    /// `ntfy`, `webhook` or `alertmanager`.
    pub kind: String,
    /// Notifications delivered.
    pub sent: u64,
    /// Notifications that could not be delivered.
    pub failed: u64,
}

/// Everything one run did, in plain data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Version of this document's format (`1.0`).
    pub format_version: String,
    /// houba version that ran.
    pub houba_version: String,
    /// The command.
    pub command: Command,
    /// `<index>` of `--shard-index`, or `all` when the run is not sharded: the Pushgateway
    /// `instance`.
    pub instance: String,
    /// A unique id of this run (also in logs and notifications).
    pub run_id: String,
    /// Unix time the run started, seconds.
    pub started_at: f64,
    /// Duration of the run, seconds.
    pub seconds: f64,
    /// The run completed without error (for apply: every action done).
    pub success: bool,
    /// Unix time of the last successful run of this command and instance (this one when it
    /// succeeded; remembered in the cache directory otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<f64>,
    /// Why the run failed before or outside its actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Actions the plan found, by kind (before applying).
    pub pending: BTreeMap<String, u64>,
    /// Drift findings.
    pub drift: Vec<Finding>,
    /// Applied actions (apply only).
    pub results: Vec<ActionRecord>,
    /// Blobs uploaded by apply.
    pub blobs_uploaded: u64,
    /// Blobs mounted across repositories.
    pub blobs_mounted: u64,
    /// Blobs already at their destination.
    pub blobs_skipped: u64,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// What each registry cost, by display name.
    pub registries: BTreeMap<String, RegistryUsage>,
    /// Placements (destination tags) the policies of this run manage.
    pub managed_images: u64,
    /// Destination repositories the policies of this run manage.
    pub managed_repositories: u64,
    /// Seconds spent waiting for another apply's lock.
    pub lock_wait_seconds: f64,
    /// Notification sinks, by configured name.
    pub notifications: BTreeMap<String, SinkUsage>,
}

impl RunSummary {
    /// An empty summary of a run that starts now.
    pub fn start(command: Command, shard: Option<(u64, u64)>) -> RunSummary {
        let now = unix_now();
        RunSummary {
            format_version: REPORT_FORMAT_VERSION.to_string(),
            houba_version: env!("CARGO_PKG_VERSION").to_string(),
            command,
            instance: instance_label(shard),
            run_id: run_id(now),
            started_at: now,
            seconds: 0.0,
            success: false,
            last_success_at: None,
            error: None,
            pending: ACTION_KINDS.iter().map(|k| (k.to_string(), 0)).collect(),
            drift: vec![],
            results: vec![],
            blobs_uploaded: 0,
            blobs_mounted: 0,
            blobs_skipped: 0,
            bytes_uploaded: 0,
            registries: BTreeMap::new(),
            managed_images: 0,
            managed_repositories: 0,
            lock_wait_seconds: 0.0,
            notifications: BTreeMap::new(),
        }
    }

    /// Drift findings by kind, every kind present.
    pub fn drift_by_kind(&self) -> BTreeMap<&'static str, u64> {
        let mut out: BTreeMap<&'static str, u64> = DRIFT_KINDS.iter().map(|k| (*k, 0)).collect();
        for f in &self.drift {
            if let Some(n) = DRIFT_KINDS
                .iter()
                .find(|k| **k == f.kind)
                .and_then(|k| out.get_mut(k))
            {
                *n += 1;
            }
        }
        out
    }

    /// Applied actions by kind and outcome, every pair present.
    pub fn results_by_kind(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        let mut out = BTreeMap::new();
        for k in ACTION_KINDS {
            for o in OUTCOMES {
                out.insert((k, o), 0);
            }
        }
        for r in &self.results {
            let kind = ACTION_KINDS.iter().find(|k| **k == r.action);
            let outcome = OUTCOMES.iter().find(|o| **o == r.outcome);
            if let (Some(k), Some(o)) = (kind, outcome)
                && let Some(n) = out.get_mut(&(*k, *o))
            {
                *n += 1;
            }
        }
        out
    }

    /// Actions that did not end `done`.
    pub fn failed_actions(&self) -> u64 {
        self.results.iter().filter(|r| r.outcome != "done").count() as u64
    }

    /// 429 answers over every registry.
    pub fn throttled(&self) -> u64 {
        self.registries.values().map(|r| r.throttled).sum()
    }

    /// Ends the run: its duration and whether it succeeded.
    pub fn finish(&mut self, success: bool) {
        let ended = unix_now();
        self.seconds = (ended - self.started_at).max(0.0);
        self.success = success;
        if success {
            // Whole milliseconds: the value survives the state file and the text formats
            // exactly.
            self.last_success_at = Some(millis(ended) as f64 / 1000.0);
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a run report always serialises")
    }

    /// Writes the report to `path` atomically (a reader never sees half a report).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut text = self.to_json();
        text.push('\n');
        write_atomically(path, text.as_bytes())
    }
}

/// The Pushgateway `instance` of a run.
pub fn instance_label(shard: Option<(u64, u64)>) -> String {
    match shard {
        Some((i, _)) => i.to_string(),
        None => "all".to_string(),
    }
}

/// Unix seconds as whole milliseconds.
pub fn millis(unix: f64) -> u64 {
    (unix * 1000.0).round().max(0.0) as u64
}

/// Now, as Unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn run_id(now: f64) -> String {
    format!("{:x}-{:08x}", (now * 1000.0) as u64, rand::random::<u32>())
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so
/// readers (node-exporter, a dashboard) see the old file or the new one, never a torn one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".houba-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // Readable by the node-exporter user, as a plain file would be.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_zero_filled_and_unknown_kinds_ignored() {
        let mut s = RunSummary::start(Command::Drift, Some((2, 4)));
        assert_eq!(s.instance, "2");
        s.drift.push(Finding {
            address: "a".into(),
            kind: "bypass".into(),
            location: "r/x:1".into(),
            registry: "r".into(),
            repository: "x".into(),
            digest: Some("sha256:0".into()),
            detail: String::new(),
        });
        let by_kind = s.drift_by_kind();
        assert_eq!(by_kind.len(), DRIFT_KINDS.len());
        assert_eq!(by_kind["bypass"], 1);
        assert_eq!(by_kind["tampered"], 0);
        assert_eq!(
            s.results_by_kind().len(),
            ACTION_KINDS.len() * OUTCOMES.len()
        );
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/report.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
