//! Saved plan files: `houba plan -o FILE` writes one, `houba apply FILE` and `houba show FILE`
//! read it back.
//!
//! The file is its own documented, versioned format (`docs/reference/plan-file.md`, schema
//! `docs/reference/plan-file.schema.json` generated from the types below), not a serialisation
//! of the internal model: it holds every typed field apply needs, and converting it back checks
//! each address. This module turns a plan into bytes and bytes into a plan; the CLI does the
//! file I/O.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{self, AliasReason, Finding, Plan, PruneMode, PruneReason, ReplaceReason};

mod convert;

/// Version of the saved-plan format. Bumped on any incompatible change.
pub const FILE_FORMAT_VERSION: &str = "1.1";

/// A plan file that cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanFileError {
    /// Not a plan file at all.
    #[error("{path} is not a houba plan file: {message}")]
    #[diagnostic(
        code(houba::plan_file::invalid),
        help("create one with `houba plan -o {path}`")
    )]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A plan file of another format version.
    #[error("{path} was written in plan format {found}; this houba reads format {expected}")]
    #[diagnostic(
        code(houba::plan_file::version),
        help("run `houba plan -o {path}` again with this houba")
    )]
    Version {
        /// The file.
        path: String,
        /// Its format version.
        found: String,
        /// The version this houba reads.
        expected: String,
    },
}

/// A saved plan.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "houba saved plan")]
pub struct PlanFile {
    /// Version of this format (`1.0`).
    pub format_version: String,
    /// houba version that made the plan.
    pub houba_version: String,
    /// `sha256:` over the resolved policies and the effective configuration; apply refuses the
    /// plan when the inputs now give another digest.
    pub inputs_digest: String,
    /// `[index, count]` when the plan covers one shard.
    #[serde(default)]
    pub shard: Option<[u64; 2]>,
    /// Drift found when planning (shown by `houba show`).
    #[serde(default)]
    pub drift: Vec<FileDrift>,
    /// Actions in execution order.
    pub actions: Vec<FileAction>,
    /// Notes.
    #[serde(default)]
    pub notes: Vec<FileNote>,
    /// Requests made while observing, per registry.
    #[serde(default)]
    pub requests: BTreeMap<String, model::RequestCount>,
    /// Tags stamped by the owning policy per `<registry>/<repository>` (mass-prune guard).
    #[serde(default)]
    pub managed_tags: BTreeMap<String, usize>,
}

/// A registry location.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileLocation {
    /// Roster entry name (destinations) or upstream host (sources).
    pub registry: String,
    /// The registry as users know it.
    pub display: String,
    /// Repository.
    pub repository: String,
    /// Tag.
    pub tag: String,
}

/// Upstream content observed when planning.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// The upstream tag.
    pub location: FileLocation,
    /// Its manifest digest.
    pub digest: String,
    /// Its manifest media type.
    pub media_type: String,
}

/// One resolved transform step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum FileStep {
    /// Add CA certificates (names of `ca_certs` roster entries).
    #[serde(rename = "injectCA")]
    InjectCa {
        /// Roster entry names.
        certs: Vec<String>,
    },
    /// Point package managers at a mirror (name of a `package_mirrors` entry).
    RewritePackageSources {
        /// Roster entry name.
        mirror: String,
        /// The package managers rewritten; empty means every manager the mirror has URLs for.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        managers: Vec<crate::policy::resolved::PackageManager>,
    },
    /// Set the time zone.
    SetTimezone {
        /// IANA zone name.
        zone: String,
    },
    /// Run a shell command (Dockerfile backend).
    Run {
        /// The command.
        command: String,
    },
}

/// How placed content is produced.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FileContent {
    /// The upstream bytes, stamped.
    Copy,
    /// A rebuild.
    Build {
        /// Recipe digest.
        recipe: String,
        /// Resolved steps, in order.
        steps: Vec<FileStep>,
        /// Platforms kept; empty keeps all.
        platforms: Vec<String>,
    },
}

/// What to place.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilePlace {
    /// Upstream content.
    pub source: FileSource,
    /// Copy or build.
    pub content: FileContent,
    /// Stamp annotations of the placed manifest.
    pub annotations: BTreeMap<String, String>,
}

/// The change an action makes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum FileOperation {
    /// Place an absent tag.
    Place {
        /// What to place.
        place: FilePlace,
    },
    /// Put new content under a tag holding other content.
    Replace {
        /// What to place.
        place: FilePlace,
        /// `upstream_moved`, `recipe_changed`, `unstamped`, `foreign` or `tampered`.
        reason: ReplaceReason,
        /// Upstream digest of the live content's stamp.
        prior_base_digest: Option<String>,
        /// Recipe of the live content's stamp.
        prior_recipe: Option<String>,
    },
    /// Rewrite only the stamp.
    Restamp {
        /// Upstream content (unchanged).
        source: FileSource,
        /// Keys that change: `[key, before, after]`.
        changed: Vec<[String; 3]>,
        /// The full desired stamp.
        annotations: BTreeMap<String, String>,
    },
    /// Point a moving tag at a placement.
    Alias {
        /// Address of the target placement.
        target: String,
        /// Its tag.
        target_tag: String,
        /// Its digest when known before applying.
        target_digest: Option<String>,
        /// The placed tag the alias points at now.
        current_tag: Option<String>,
        /// `absent`, `new_highest`, `target_changed` or `moved_outside`.
        reason: AliasReason,
    },
    /// Retire a tag.
    Prune {
        /// `delete` or `mark`.
        mode: PruneMode,
        /// `no_longer_selected`, `orphaned` or `dangling`.
        reason: PruneReason,
    },
    /// Attach the action's `evidence` to the content the tag holds (`before`).
    Attach,
}

/// Evidence an action attaches besides its image.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEvidence {
    /// SBOM formats (`spdx`, `cyclonedx`), attached to the digest and each platform.
    #[serde(default)]
    pub sbom: Vec<String>,
    /// Whether houba signs the digest and every SBOM it attaches.
    #[serde(default)]
    pub signature: bool,
    /// Number of upstream referrers and cosign tags that travel with the image.
    #[serde(default)]
    pub upstream: usize,
}

/// One action.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FileAction {
    /// `<policy>/<import>/<variant>[<registry>/<repository>:<tag>]`.
    pub address: String,
    /// The tag written.
    pub destination: FileLocation,
    /// Digest the tag held when planning; `null`: absent. Apply re-checks it.
    pub before: Option<String>,
    /// Digest the tag will hold, when known before applying.
    pub after: Option<String>,
    /// Addresses of actions that must succeed first.
    pub depends_on: Vec<String>,
    /// Evidence attached with the change; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<FileEvidence>,
    /// The change.
    #[serde(flatten)]
    pub operation: FileOperation,
}

/// A drift finding.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDrift {
    /// The desired artifact's address; `null` for a tag no policy asks for.
    pub address: Option<String>,
    /// The tag.
    pub location: FileLocation,
    /// What it holds; absent for a dangling tag (listed, no manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// What is wrong.
    pub finding: Finding,
}

/// A note.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileNote {
    /// The policy, import or artifact concerned.
    pub address: String,
    /// One sentence.
    pub message: String,
}

/// The JSON Schema of a plan file, as committed under `docs/reference/`.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(PlanFile).to_value()
}

/// The bytes of a plan file.
pub fn to_bytes(plan: &Plan) -> Vec<u8> {
    let mut text =
        serde_json::to_vec_pretty(&PlanFile::from(plan)).expect("a plan always serialises");
    text.push(b'\n');
    text
}

/// Read a plan file's bytes; `path` names the file in errors.
pub fn from_bytes(path: &str, bytes: &[u8]) -> Result<Plan, PlanFileError> {
    let invalid = |message: String| PlanFileError::Invalid {
        path: path.to_string(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let found = value
        .get("format_version")
        .and_then(|v| v.as_str())
        .ok_or_else(|| invalid("no format_version".into()))?;
    if found != FILE_FORMAT_VERSION {
        return Err(PlanFileError::Version {
            path: path.to_string(),
            found: found.to_string(),
            expected: FILE_FORMAT_VERSION.to_string(),
        });
    }
    let file: PlanFile = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    Plan::try_from(file).map_err(invalid)
}

#[cfg(test)]
mod tests;
