//! The plan: what houba will change in the registries, and why.
//!
//! A plan is plain data. Each [`Action`] is one shared [`Header`] (address, destination,
//! digests before and after, dependencies) and an [`Operation`] that carries exactly the typed
//! fields `apply` needs for that kind of change. Reasons are enums that the views render; no
//! code ever reads a rendered string back. Drift findings are their own type ([`Drift`]).
//! Every action carries the digests it was planned against, so a saved plan can be checked
//! for staleness before it is applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::evidence::EvidencePlan;
pub use crate::address::Address;
use crate::policy::resolved::TransformStep;

/// A registry location: roster entry + repository + tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// Roster entry name (or the upstream host for sources without a roster entry).
    pub registry: String,
    /// What users recognise: host[/prefix] or the roster name of a layout.
    pub display: String,
    /// Repository inside the registry.
    pub repository: String,
    /// Tag inside the repository.
    pub tag: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.display, self.repository, self.tag)
    }
}

/// The kind of an action, as counted in the summary line and reported by apply.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Place an absent tag by copying the upstream bytes.
    Copy,
    /// Place an absent tag by rebuilding the upstream image.
    Build,
    /// Put new content under a tag that holds other content.
    Replace,
    /// Rewrite only the stamp annotations of the content a tag holds.
    Restamp,
    /// Point a moving tag at another placed digest.
    Alias,
    /// Retire a tag houba placed that is no longer desired.
    Prune,
    /// Attach missing evidence (SBOMs, signatures) to content a tag already holds.
    Attach,
}

impl ActionKind {
    /// Every kind, in summary-line order.
    pub const ALL: [ActionKind; 7] = [
        ActionKind::Copy,
        ActionKind::Build,
        ActionKind::Replace,
        ActionKind::Restamp,
        ActionKind::Alias,
        ActionKind::Prune,
        ActionKind::Attach,
    ];

    /// Terraform-style symbol: `+`, `-/+`, `~` or `-`.
    pub fn symbol(self) -> &'static str {
        match self {
            ActionKind::Copy | ActionKind::Build => "+",
            ActionKind::Replace => "-/+",
            ActionKind::Restamp | ActionKind::Alias => "~",
            ActionKind::Prune => "-",
            ActionKind::Attach => "+",
        }
    }

    /// Lower-case name (`copy`, `build`, …), as in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Copy => "copy",
            ActionKind::Build => "build",
            ActionKind::Replace => "replace",
            ActionKind::Restamp => "restamp",
            ActionKind::Alias => "alias",
            ActionKind::Prune => "prune",
            ActionKind::Attach => "attach",
        }
    }

    /// Order of execution classes: placements, then aliases, then prunes.
    pub fn phase(self) -> u8 {
        match self {
            ActionKind::Copy | ActionKind::Build | ActionKind::Replace | ActionKind::Restamp => 0,
            ActionKind::Alias => 1,
            ActionKind::Prune => 2,
            ActionKind::Attach => 0,
        }
    }
}

/// What every action shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The desired artifact this action is for.
    pub address: Address,
    /// The tag it writes.
    pub destination: Location,
    /// Digest the destination tag held when planning (`None`: absent).
    pub before: Option<String>,
    /// Digest the destination tag will hold, when it can be known before applying (`None` for
    /// rebuilds and prunes).
    pub after: Option<String>,
    /// Actions that must succeed first.
    pub depends_on: Vec<Address>,
    /// Evidence attached with the change (placements, restamps and attaches).
    pub evidence: EvidencePlan,
}

/// Upstream content as observed when planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The upstream tag.
    pub location: Location,
    /// Its manifest digest.
    pub digest: String,
    /// Its manifest media type.
    pub media_type: String,
}

/// A rebuild: what the native engine or the Dockerfile backend needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// Recipe digest recorded in the stamp.
    pub recipe: String,
    /// The resolved transform steps, in order (may be empty for a platform-only rebuild).
    pub steps: Vec<TransformStep>,
    /// Platforms kept (`os/arch[/variant]`); empty keeps all.
    pub platforms: Vec<String>,
}

impl Build {
    /// Step names as the stamp records them.
    pub fn step_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.name().to_string()).collect()
    }
}

/// How placed content is produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The upstream bytes, stamped: digests of blobs and child manifests preserved.
    Copy,
    /// A rebuild of the upstream image.
    Build(Build),
}

/// Content to put under a tag: from where, how, and with which stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The upstream it comes from.
    pub source: Source,
    /// Copy or rebuild.
    pub content: Content,
    /// The stamp annotations the placed manifest carries.
    pub annotations: BTreeMap<String, String>,
}

/// Why a tag gets new content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplaceReason {
    /// The upstream tag now holds another digest.
    UpstreamMoved,
    /// The resolved transform recipe changed.
    RecipeChanged,
    /// The tag holds content without a stamp.
    Unstamped,
    /// The tag holds content stamped for another artifact.
    Foreign,
    /// The content does not match what its own stamp claims.
    Tampered,
}

/// What the stamp of replaced content said, for the `before` side of the attribute lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorStamp {
    /// Upstream digest the live content was placed from.
    pub base_digest: String,
    /// Its recipe digest (rebuilds).
    pub recipe: Option<String>,
}

/// One stamp annotation that changes in a restamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampChange {
    /// Stamp key without prefix (`owners`, `vendor`, …) or `label.prefix`.
    pub key: String,
    /// Live value.
    pub before: String,
    /// Desired value.
    pub after: String,
}

/// Why a moving tag is re-pointed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AliasReason {
    /// The alias tag does not exist yet.
    Absent,
    /// The highest member changed: the alias follows it.
    NewHighest,
    /// The alias's target gets new content.
    TargetChanged,
    /// The alias was moved outside houba (also reported as drift).
    MovedOutside,
}

/// Why a tag is pruned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PruneReason {
    /// The owning policy's import no longer selects the tag.
    NoLongerSelected,
    /// No current policy claims the repository; the tag's policy placed it there.
    Orphaned,
    /// The registry lists the tag but has no manifest behind it, and no policy asks for it:
    /// the listing is removed (there is no content to mark).
    Dangling,
}

/// How a prune retires a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PruneMode {
    /// Delete the tag.
    Delete,
    /// Keep the tag and mark its stamp `pruned=true`.
    Mark,
}

/// The change one action makes, with exactly the fields apply needs for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Place an absent tag (copy or build).
    Place(Place),
    /// Put new content under a tag that holds other content.
    Replace {
        /// The new content.
        place: Place,
        /// Why.
        reason: ReplaceReason,
        /// What the live stamp said, when there was one.
        prior: Option<PriorStamp>,
    },
    /// Rewrite only the stamp of the content the tag holds; no blob moves.
    Restamp {
        /// The upstream the content came from (unchanged).
        source: Source,
        /// The keys that change.
        changed: Vec<StampChange>,
        /// The full desired stamp.
        annotations: BTreeMap<String, String>,
    },
    /// Point a moving tag at a placement of the same repository.
    Alias {
        /// The placement it points at.
        target: Address,
        /// That placement's tag.
        target_tag: String,
        /// That placement's digest, when known before applying (else read at apply time,
        /// after the target was placed).
        target_digest: Option<String>,
        /// The tag the alias points at now, when it matches a placed tag.
        current_tag: Option<String>,
        /// Why.
        reason: AliasReason,
    },
    /// Attach the evidence in the header to the content the tag holds (`header.before`).
    Attach,
    /// Retire a tag.
    Prune {
        /// Delete or mark.
        mode: PruneMode,
        /// Why.
        reason: PruneReason,
    },
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Address, destination, digests and dependencies.
    pub header: Header,
    /// What changes.
    pub operation: Operation,
}

impl Action {
    /// The kind counted in the summary.
    pub fn kind(&self) -> ActionKind {
        match &self.operation {
            Operation::Place(p) => match p.content {
                Content::Copy => ActionKind::Copy,
                Content::Build(_) => ActionKind::Build,
            },
            Operation::Replace { .. } => ActionKind::Replace,
            Operation::Restamp { .. } => ActionKind::Restamp,
            Operation::Alias { .. } => ActionKind::Alias,
            Operation::Prune { .. } => ActionKind::Prune,
            Operation::Attach => ActionKind::Attach,
        }
    }

    /// The action's address.
    pub fn address(&self) -> &Address {
        &self.header.address
    }

    /// The upstream content, for placements and restamps.
    pub fn source(&self) -> Option<&Source> {
        match &self.operation {
            Operation::Place(p) | Operation::Replace { place: p, .. } => Some(&p.source),
            Operation::Restamp { source, .. } => Some(source),
            Operation::Alias { .. } | Operation::Prune { .. } | Operation::Attach => None,
        }
    }
}

/// What was found changed outside houba.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// A managed tag holds content without a stamp.
    Unstamped,
    /// A managed tag holds content stamped for another policy, import or variant.
    Foreign {
        /// `<policy>/<import>/<variant>` of the stamp found.
        stamped_for: String,
    },
    /// Stamped content that does not match what its stamp claims.
    Tampered {
        /// The upstream digest the stamp claims.
        claimed_base: String,
    },
    /// An alias points somewhere houba did not put it.
    AliasMoved {
        /// The tag houba points it at.
        expected_tag: String,
        /// The placed tag it points at now, when it matches one.
        found_tag: Option<String>,
    },
    /// A tag in a managed repository that houba did not place: a bypass of the front door.
    Bypass,
    /// Evidence houba attached to placed content is gone (deleted outside houba).
    EvidenceMissing {
        /// What is missing.
        missing: EvidencePlan,
    },
    /// A tag stamped by another policy than the one owning its repository.
    ForeignInRepository {
        /// The policy named in the stamp.
        stamped_by: String,
        /// The policy that owns the repository.
        owner: String,
    },
    /// The registry lists the tag but serves no manifest for it (left by an interrupted
    /// delete): every pull of it fails.
    Dangling,
}

impl Finding {
    /// Stable kebab-case name, as in the JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Unstamped => "unstamped",
            Finding::Foreign { .. } | Finding::ForeignInRepository { .. } => "foreign",
            Finding::Tampered { .. } => "tampered",
            Finding::AliasMoved { .. } => "alias-moved",
            Finding::Bypass => "bypass",
            Finding::Dangling => "dangling",
            Finding::EvidenceMissing { .. } => "evidence-missing",
        }
    }
}

/// One drift finding: live state changed outside houba.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The desired artifact at that tag; `None` for a tag no policy asks for (a bypass).
    pub address: Option<Address>,
    /// The tag.
    pub location: Location,
    /// What it holds; `None` for a dangling tag (listed, no manifest).
    pub digest: Option<String>,
    /// What is wrong.
    pub finding: Finding,
}

impl Drift {
    /// The address, or the location for a tag no policy asks for.
    pub fn label(&self) -> String {
        self.address
            .as_ref()
            .map_or_else(|| self.location.to_string(), ToString::to_string)
    }
}

/// Something the plan deliberately did not do, or a warning, with the address it concerns
/// (pins, settle windows, missing names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The policy, import or artifact concerned.
    pub address: Address,
    /// One sentence.
    pub message: String,
}

/// Requests made while observing, per registry, by HTTP method.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RequestCount {
    /// HEAD requests.
    pub head: u64,
    /// GET requests.
    pub get: u64,
    /// PUT requests.
    pub put: u64,
    /// POST requests.
    pub post: u64,
    /// PATCH requests.
    pub patch: u64,
    /// DELETE requests.
    pub delete: u64,
    /// All of them.
    pub total: u64,
    /// Requests per `METHOD /v2/<repo>/endpoint` (the distribution API's names), e.g.
    /// `"HEAD /v2/<repo>/manifests/<ref>": 9`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, u64>,
    /// The registry's announced request budget `(limit, remaining)`, when it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<(u64, u64)>,
    /// Upstream tags of this registry not checked because their `tags.recheck` was not due:
    /// each one a manifest HEAD saved.
    #[serde(default)]
    pub recheck_skipped: u64,
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// houba version that made the plan.
    pub houba_version: String,
    /// `sha256:` over the resolved policies and the effective configuration.
    pub inputs_digest: String,
    /// Shard this plan covers, when sharded.
    pub shard: Option<(u64, u64)>,
    /// Drift findings, listed first.
    pub drift: Vec<Drift>,
    /// Actions: placements, then aliases, then prunes, each by address.
    pub actions: Vec<Action>,
    /// What was deliberately not done, and warnings.
    pub notes: Vec<Note>,
    /// Requests made while observing, per registry display name.
    pub requests: BTreeMap<String, RequestCount>,
    /// Tags stamped by the owning policy, per `<display>/<repository>`: the denominator of the
    /// mass-prune guard.
    pub managed_tags: BTreeMap<String, usize>,
}

impl Plan {
    /// Actions of one kind.
    pub fn count(&self, kind: ActionKind) -> usize {
        self.actions.iter().filter(|a| a.kind() == kind).count()
    }

    /// Whether applying would change anything.
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
            // Attaching evidence to content already in place is counted only when it happens.
            .filter(|k| **k != ActionKind::Attach || self.count(**k) > 0)
            .map(|k| format!("{} to {}", self.count(*k), k.as_str()))
            .collect();
        format!("Plan: {}.", parts.join(", "))
    }

    /// `Evidence: 4 SBOMs, 2 signatures, 1 upstream referrer.`, or `None` when the plan
    /// attaches none.
    pub fn evidence_line(&self) -> Option<String> {
        let (mut sboms, mut signatures, mut upstream) = (0, 0, 0);
        for a in &self.actions {
            let e = &a.header.evidence;
            sboms += e.sbom.len();
            signatures += usize::from(e.signature);
            upstream += e.upstream;
        }
        if sboms + signatures + upstream == 0 {
            return None;
        }
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        Some(format!(
            "Evidence: {}, {}, {} (per digest; every platform of an index gets its own).",
            plural(sboms, "SBOM", "SBOMs"),
            plural(signatures, "signature", "signatures"),
            plural(upstream, "upstream referrer", "upstream referrers")
        ))
    }
}
