//! The JSON plan: a documented, versioned format for machines (`houba plan --format json`).
//!
//! This is its own format, not a serialisation of the internal model: the internal types may
//! change freely while this document only gains optional fields within a `format_version`.
//! The schema in `docs/reference/plan-json.schema.json` is generated from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::{Change, changes, drift_detail, reason};
use crate::plan::model::{self, Action, Content, Operation, Plan, PruneMode};

/// Version of the JSON plan format. The major number changes on any incompatible change.
pub const JSON_FORMAT_VERSION: &str = "1.0";

/// The JSON plan document.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "houba JSON plan")]
pub struct JsonPlan {
    /// Version of this format (`1.0`).
    pub format_version: String,
    /// houba version that made the plan.
    pub houba_version: String,
    /// `sha256:` over the resolved policies and the effective configuration.
    pub inputs_digest: String,
    /// `[index, count]` when the plan covers one shard.
    pub shard: Option<[u64; 2]>,
    /// Number of actions of each kind (`copy`, `build`, `replace`, `restamp`, `alias`, `prune`).
    pub summary: BTreeMap<String, usize>,
    /// Changes found outside houba.
    pub drift: Vec<JsonDrift>,
    /// Planned actions in execution order: placements, aliases, prunes.
    pub actions: Vec<JsonAction>,
    /// What the plan deliberately did not do, and warnings.
    pub notes: Vec<JsonNote>,
    /// Requests made while observing, per registry.
    pub requests: BTreeMap<String, model::RequestCount>,
    /// Tags stamped by the owning policy, per `<registry>/<repository>`.
    pub managed_tags: BTreeMap<String, usize>,
}

/// A registry location.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JsonLocation {
    /// Roster entry name (destinations) or upstream host (sources).
    pub registry: String,
    /// The registry as users know it: `host[/prefix]`, or a layout entry's name.
    pub display: String,
    /// Repository.
    pub repository: String,
    /// Tag.
    pub tag: String,
}

impl From<&model::Location> for JsonLocation {
    fn from(l: &model::Location) -> Self {
        JsonLocation {
            registry: l.registry.clone(),
            display: l.display.clone(),
            repository: l.repository.clone(),
            tag: l.tag.clone(),
        }
    }
}

/// A rebuild.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JsonBuild {
    /// Recipe digest recorded in the stamp.
    pub recipe: String,
    /// Transform step names, in order.
    pub steps: Vec<String>,
    /// Platforms kept; empty keeps every platform.
    pub platforms: Vec<String>,
}

/// An alias re-point.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JsonAlias {
    /// Address of the placement the alias points at.
    pub target: String,
    /// Its tag.
    pub target_tag: String,
    /// The placed tag the alias points at now, when it matches one.
    pub current_tag: Option<String>,
}

/// One planned action.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JsonAction {
    /// `<policy>/<import>/<variant>[<registry>/<repository>:<tag>]`.
    pub address: String,
    /// `copy`, `build`, `replace`, `restamp`, `alias` or `prune`.
    pub action: String,
    /// The tag written.
    pub destination: JsonLocation,
    /// Digest the tag held when planning; `null`: absent.
    pub before: Option<String>,
    /// Digest the tag will hold; `null` when only applying can tell (rebuilds) or for prunes.
    pub after: Option<String>,
    /// Addresses of actions that must succeed first.
    pub depends_on: Vec<String>,
    /// Machine-readable reason (`absent`, `upstream_moved`, `recipe_changed`, `unstamped`,
    /// `foreign`, `tampered`, `stamp_changed`, `new_highest`, `target_changed`,
    /// `moved_outside`, `no_longer_selected`, `orphaned`).
    pub reason: String,
    /// The reason as a sentence.
    pub reasons: Vec<String>,
    /// Attribute lines, as the text view shows them.
    pub changes: Vec<Change>,
    /// Upstream tag (placements and restamps).
    pub source: Option<JsonLocation>,
    /// Upstream digest observed when planning.
    pub source_digest: Option<String>,
    /// Upstream manifest media type observed when planning.
    pub source_media_type: Option<String>,
    /// Rebuild details (builds, and replacements by a rebuild).
    pub build: Option<JsonBuild>,
    /// Alias details.
    pub alias: Option<JsonAlias>,
    /// Prunes: `delete` or `mark`.
    pub prune_mode: Option<PruneMode>,
    /// Evidence attached with this action (SBOM formats, signature, upstream referrers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<JsonEvidence>,
}

/// Evidence an action attaches.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JsonEvidence {
    /// SBOM formats attached to the digest and each platform (`spdx`, `cyclonedx`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sbom: Vec<String>,
    /// Whether houba signs the digest and every SBOM it attaches.
    pub signature: bool,
    /// Number of upstream referrers and cosign tags that travel with the image.
    pub upstream: usize,
}

impl From<&crate::plan::evidence::EvidencePlan> for JsonEvidence {
    fn from(e: &crate::plan::evidence::EvidencePlan) -> Self {
        JsonEvidence {
            sbom: e.sbom.clone(),
            signature: e.signature,
            upstream: e.upstream,
        }
    }
}

/// One drift finding.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JsonDrift {
    /// The desired artifact's address, or `<registry>/<repository>:<tag>` for a tag no policy
    /// asks for.
    pub address: String,
    /// `unstamped`, `foreign`, `tampered`, `alias-moved` or `bypass`.
    pub kind: String,
    /// The tag.
    pub location: JsonLocation,
    /// What the tag holds.
    pub digest: String,
    /// One sentence: what was found and what houba will do.
    pub detail: String,
}

/// A note.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JsonNote {
    /// The policy, import or artifact concerned.
    pub address: String,
    /// One sentence.
    pub message: String,
}

fn reason_code(a: &Action) -> String {
    let v = match &a.operation {
        Operation::Place(_) => serde_json::Value::String("absent".into()),
        Operation::Replace { reason, .. } => serde_json::to_value(reason).unwrap_or_default(),
        Operation::Restamp { .. } => serde_json::Value::String("stamp_changed".into()),
        Operation::Alias { reason, .. } => serde_json::to_value(reason).unwrap_or_default(),
        Operation::Prune { reason, .. } => serde_json::to_value(reason).unwrap_or_default(),
        Operation::Attach => serde_json::Value::String("evidence_missing".into()),
    };
    v.as_str().unwrap_or_default().to_string()
}

fn action(a: &Action) -> JsonAction {
    let h = &a.header;
    let source = a.source();
    let build = match &a.operation {
        Operation::Place(p) | Operation::Replace { place: p, .. } => match &p.content {
            Content::Build(b) => Some(JsonBuild {
                recipe: b.recipe.clone(),
                steps: b.step_names(),
                platforms: b.platforms.clone(),
            }),
            Content::Copy => None,
        },
        _ => None,
    };
    JsonAction {
        address: h.address.to_string(),
        action: a.kind().as_str().to_string(),
        destination: (&h.destination).into(),
        before: h.before.clone(),
        after: h.after.clone(),
        depends_on: h.depends_on.iter().map(ToString::to_string).collect(),
        reason: reason_code(a),
        reasons: vec![reason(a)],
        changes: changes(a),
        source: source.map(|s| (&s.location).into()),
        source_digest: source.map(|s| s.digest.clone()),
        source_media_type: source.map(|s| s.media_type.clone()),
        build,
        alias: match &a.operation {
            Operation::Alias {
                target,
                target_tag,
                current_tag,
                ..
            } => Some(JsonAlias {
                target: target.to_string(),
                target_tag: target_tag.clone(),
                current_tag: current_tag.clone(),
            }),
            _ => None,
        },
        prune_mode: match &a.operation {
            Operation::Prune { mode, .. } => Some(*mode),
            _ => None,
        },
        evidence: (!h.evidence.is_empty()).then(|| JsonEvidence::from(&h.evidence)),
    }
}

impl From<&Plan> for JsonPlan {
    fn from(plan: &Plan) -> Self {
        JsonPlan {
            format_version: JSON_FORMAT_VERSION.to_string(),
            houba_version: plan.houba_version.clone(),
            inputs_digest: plan.inputs_digest.clone(),
            shard: plan.shard.map(|(i, n)| [i, n]),
            summary: model::ActionKind::ALL
                .iter()
                .map(|k| (k.as_str().to_string(), plan.count(*k)))
                .collect(),
            drift: plan
                .drift
                .iter()
                .map(|d| JsonDrift {
                    address: d.label(),
                    kind: d.finding.kind().to_string(),
                    location: (&d.location).into(),
                    digest: d.digest.clone(),
                    detail: drift_detail(d),
                })
                .collect(),
            actions: plan.actions.iter().map(action).collect(),
            notes: plan
                .notes
                .iter()
                .map(|n| JsonNote {
                    address: n.address.to_string(),
                    message: n.message.clone(),
                })
                .collect(),
            requests: plan.requests.clone(),
            managed_tags: plan.managed_tags.clone(),
        }
    }
}

/// The JSON Schema of the JSON plan, as committed under `docs/reference/`.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(JsonPlan).to_value()
}

/// The JSON plan document, pretty-printed, with a final newline.
pub fn render_json(plan: &Plan) -> String {
    let mut s =
        serde_json::to_string_pretty(&JsonPlan::from(plan)).expect("a plan always serialises");
    s.push('\n');
    s
}
