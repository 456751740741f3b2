//! The plan: what houba will change in the registries, and why.
//!
//! A plan is plain data. It is rendered (text, JSON, Markdown), saved to a file, and executed by
//! `apply`. Every action carries the digests it was planned against, so a saved plan can be
//! checked for staleness before it is applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::resolved::TransformStep;

/// Version of the saved-plan / JSON-output format. Bumped on any incompatible change.
pub const FORMAT_VERSION: &str = "1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Copy,
    Build,
    Replace,
    Restamp,
    Alias,
    Prune,
}

impl ActionKind {
    pub const ALL: [ActionKind; 6] = [
        ActionKind::Copy,
        ActionKind::Build,
        ActionKind::Replace,
        ActionKind::Restamp,
        ActionKind::Alias,
        ActionKind::Prune,
    ];

    pub fn symbol(self) -> &'static str {
        match self {
            ActionKind::Copy | ActionKind::Build => "+",
            ActionKind::Replace => "-/+",
            ActionKind::Restamp | ActionKind::Alias => "~",
            ActionKind::Prune => "-",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Copy => "copy",
            ActionKind::Build => "build",
            ActionKind::Replace => "replace",
            ActionKind::Restamp => "restamp",
            ActionKind::Alias => "alias",
            ActionKind::Prune => "prune",
        }
    }

    /// `# <address> will be …`
    pub fn will_be(self) -> &'static str {
        match self {
            ActionKind::Copy => "copied",
            ActionKind::Build => "built",
            ActionKind::Replace => "replaced",
            ActionKind::Restamp => "restamped",
            ActionKind::Alias => "re-pointed",
            ActionKind::Prune => "pruned",
        }
    }

    /// Order of execution classes: placements, then aliases, then prunes.
    pub fn phase(self) -> u8 {
        match self {
            ActionKind::Copy | ActionKind::Build | ActionKind::Replace | ActionKind::Restamp => 0,
            ActionKind::Alias => 1,
            ActionKind::Prune => 2,
        }
    }
}

/// A registry location: roster entry + repository + tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Location {
    /// Roster entry name (or the upstream host for sources without a roster entry).
    pub registry: String,
    /// What users recognise: host[/prefix] or the roster name of a layout.
    pub display: String,
    pub repository: String,
    pub tag: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.display, self.repository, self.tag)
    }
}

/// One changed attribute, for `~ name = "before" -> "after"` lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub attribute: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// How a prune retires a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PruneMode {
    Delete,
    Mark,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// `<policy>/<import>/<variant>[<display>/<repository>:<tag>]`
    pub address: String,
    pub action: ActionKind,
    pub destination: Location,
    /// Upstream the content comes from (placements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Location>,
    /// Upstream digest observed when planning (placements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<String>,
    /// Upstream manifest media type observed when planning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_media_type: Option<String>,
    /// Digest the destination tag held when planning (`None`: absent).
    pub before: Option<String>,
    /// Digest the destination tag will hold, when it can be known before applying.
    pub after: Option<String>,
    /// Why this action is needed, one sentence each.
    pub reasons: Vec<String>,
    pub changes: Vec<Change>,
    /// Addresses this action waits for.
    pub depends_on: Vec<String>,
    /// Alias actions: the address of the placement the alias points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_target: Option<String>,
    /// Prune actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_mode: Option<PruneMode>,
    /// Builds: transform step names and recipe digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    /// Builds: the resolved steps to run, so a saved plan carries everything apply needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transform: Vec<TransformStep>,
    /// Builds: the platforms kept (`os/arch[/variant]`); empty keeps all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// The stamp annotations the placed manifest will carry (placements and restamps).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// A managed tag holds content without a stamp.
    Unstamped,
    /// A managed tag holds content stamped for another policy, import or variant.
    Foreign,
    /// Stamped content that does not match what its stamp claims.
    Tampered,
    /// An alias points somewhere houba did not put it.
    AliasMoved,
    /// A tag in a managed repository that houba did not place: a bypass of the front door.
    Bypass,
}

impl DriftKind {
    pub fn describe(self) -> &'static str {
        match self {
            DriftKind::Unstamped => "holds content houba did not place (no stamp)",
            DriftKind::Foreign => "holds content stamped for another policy, import or variant",
            DriftKind::Tampered => "holds stamped content that does not match its stamp",
            DriftKind::AliasMoved => "is an alias that was moved outside houba",
            DriftKind::Bypass => "was pushed into a managed repository outside houba",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The desired artifact's address, or `<display>/<repository>:<tag>` for a bypass tag.
    pub address: String,
    pub kind: DriftKind,
    pub location: Location,
    pub digest: String,
    pub detail: String,
}

/// Something the plan deliberately did not do, with the reason (pins, settle windows, missing
/// names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub address: String,
    pub message: String,
}

/// Requests made while observing, per registry, by HTTP method.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    pub head: u64,
    pub get: u64,
    pub put: u64,
    pub post: u64,
    pub patch: u64,
    pub delete: u64,
    pub total: u64,
    /// The registry's announced request budget `(limit, remaining)`, when it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub houba_version: String,
    /// `sha256:` over the policy files and the effective configuration.
    pub inputs_digest: String,
    /// Shard this plan covers, when sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<(u64, u64)>,
    pub drift: Vec<Drift>,
    pub actions: Vec<Action>,
    pub notes: Vec<Note>,
    pub requests: BTreeMap<String, RequestCount>,
    /// Tags stamped by the owning policy, per `<display>/<repository>`: the denominator of the
    /// mass-prune guard.
    #[serde(default)]
    pub managed_tags: BTreeMap<String, usize>,
}

impl Plan {
    pub fn count(&self, kind: ActionKind) -> usize {
        self.actions.iter().filter(|a| a.action == kind).count()
    }

    pub fn has_changes(&self) -> bool {
        !self.actions.is_empty()
    }

    /// `Plan: 3 to copy, 1 to build, …` or the no-changes sentence.
    pub fn summary_line(&self) -> String {
        if self.actions.is_empty() {
            return "No changes. The registries match the policies.".to_string();
        }
        let parts: Vec<String> = ActionKind::ALL
            .iter()
            .map(|k| format!("{} to {}", self.count(*k), k.as_str()))
            .collect();
        format!("Plan: {}.", parts.join(", "))
    }
}
