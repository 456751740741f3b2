//! The `MirrorPolicy` document as written in YAML (camelCase, unknown fields rejected).
//!
//! These types are the single description of the language: the JSON Schema in
//! `docs/reference/mirrorpolicy.schema.json` is generated from them, and the structural check
//! of every loaded document walks that same schema, so the two cannot disagree. Every field an
//! import may inherit from `defaults` is an `Option` here: "not set" must stay distinguishable
//! from "set to the default" for the shallow merge to work.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::resolved::{ArtifactType, DeletionMode};

/// The only `apiVersion` this build understands.
pub const API_VERSION: &str = "houba.io/v1alpha1";
/// The only `kind` this build understands.
pub const KIND: &str = "MirrorPolicy";

/// A MirrorPolicy: which upstream artifacts are admitted, where they are placed, how they are
/// hardened and who owns them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "MirrorPolicy")]
pub struct MirrorPolicy {
    /// Always `houba.io/v1alpha1`.
    #[schemars(extend("const" = "houba.io/v1alpha1"))]
    pub api_version: String,
    /// Always `MirrorPolicy`.
    #[schemars(extend("const" = "MirrorPolicy"))]
    pub kind: String,
    /// The policy's name and labels.
    pub metadata: Metadata,
    /// What the policy admits: source, defaults and imports.
    pub spec: PolicySpec,
}

/// The policy's identity: its name and free-form labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Unique across all policy files. Lowercase letters, digits, `.`, `_` and `-`; it appears
    /// in plan addresses (`<policy>/<import>/<variant>`) and in the `io.houba.policy` stamp.
    pub name: String,
    /// Free-form labels (selection by shard or team).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// What the policy admits: the upstream source, the defaults and the imports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// What kind of artifact this policy admits: `image` (default), `helmChart` or `generic`.
    /// Transforms apply to images only.
    #[serde(default = "default_artifact_type")]
    #[schemars(with = "ArtifactTypeSchema")]
    pub artifact_type: ArtifactType,
    /// The upstream repository the artifacts are read from.
    pub source: SourceSpec,
    /// What happens to a tag this policy placed once it is no longer desired: `purge`
    /// (default: delete it) or `mark` (keep the content, record the prune).
    #[serde(default)]
    #[schemars(with = "DeletionModeSchema")]
    pub deletion_mode: DeletionMode,
    /// Values every import inherits unless it sets them itself. Maps (`tags`, `archive`) are
    /// merged field by field; lists are replaced wholesale.
    #[serde(default)]
    pub defaults: Option<ImportDefaults>,
    /// The imports: one selection of upstream tags each. At least one.
    pub imports: Vec<Import>,
}

fn default_artifact_type() -> ArtifactType {
    ArtifactType::Image
}

/// Schema-only mirror of [`ArtifactType`] (the shared type carries no schema derive).
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
enum ArtifactTypeSchema {
    Image,
    HelmChart,
    Generic,
}

/// Schema-only mirror of [`DeletionMode`].
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
enum DeletionModeSchema {
    Purge,
    Mark,
}

/// The upstream repository every import of the policy reads from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceSpec {
    /// Upstream registry host, e.g. `docker.io`.
    pub registry: String,
    /// Repository path on that registry, e.g. `library/busybox`.
    pub repository: String,
}

/// Fields shared by every import of the policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportDefaults {
    /// Destinations of every import that sets none.
    pub destinations: Option<Vec<DestinationSpec>>,
    /// Hardening steps of every import that sets none (images only).
    pub transform: Option<Vec<TransformSpec>>,
    /// Tag rules; an import's `tags` overrides them field by field.
    pub tags: Option<TagSpec>,
    /// `os/arch[/variant]` filter of every import that sets none.
    pub platforms: Option<Vec<String>>,
    /// Backstage entity refs of every import that sets none.
    pub owners: Option<Vec<String>>,
    /// `org.opencontainers.image.vendor` of every import that sets none.
    pub vendor: Option<String>,
    /// Retention; an import's `archive` overrides it field by field.
    pub archive: Option<ArchiveSpec>,
}

/// One selection of upstream tags, with where and how to place it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Import {
    /// Unique within the policy; same character rules as the policy name.
    pub name: String,
    /// Which upstream tags are selected, and which aliases point at them.
    pub tags: Option<TagSpec>,
    /// `os/arch[/variant]` filter, e.g. `linux/arm64/v8`. Absent: every platform upstream
    /// has. Filtering changes the digest, so it is a rebuild.
    pub platforms: Option<Vec<String>>,
    /// The same tags placed several times under `tag + suffix`, each with extra transform
    /// steps. Absent: one variant `default` with an empty suffix.
    pub variants: Option<Vec<VariantSpec>>,
    /// Where the selected tags are placed.
    pub destinations: Option<Vec<DestinationSpec>>,
    /// Hardening steps applied to every variant (images only).
    pub transform: Option<Vec<TransformSpec>>,
    /// Backstage entity refs, `[kind:][namespace/]name`, e.g. `group:default/platform`.
    pub owners: Option<Vec<String>>,
    /// Written to `org.opencontainers.image.vendor`.
    pub vendor: Option<String>,
    /// Retention of tags that are no longer selected.
    pub archive: Option<ArchiveSpec>,
    /// How long an upstream digest must stay unchanged before an update is planned:
    /// `30m`, `24h`, `7d`, `1h30m`. Default `0` (no wait).
    pub settle: Option<String>,
}

/// Tag selection rules. In an import, every field that is set wins over `defaults.tags`;
/// the others are inherited.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagSpec {
    /// Regular expression a tag must match (anchor it: `^1\.37\.\d+$`). Named groups can be
    /// used in alias templates.
    pub include_regex: Option<String>,
    /// Regular expressions a tag must not match.
    pub exclude_regex: Option<Vec<String>>,
    /// Only tags that parse as semantic versions (a leading `v` is tolerated). Default true.
    pub semver_only: Option<bool>,
    /// Semantic version range, e.g. `>=1.36, <2`.
    pub semver: Option<String>,
    /// Also select pre-releases (`2.0.0-rc1`, `1.5.0-beta.2`, …) through the filters. Default
    /// false: a pre-release is selected only when it is listed in `names`.
    pub prerelease: Option<bool>,
    /// Keep only the N highest selected versions.
    #[schemars(range(min = 1))]
    pub latest: Option<u32>,
    /// Exact tags, selected when present upstream, bypassing the filters above. Given without
    /// `includeRegex`, `semver` or `latest`, they are the whole selection.
    pub names: Option<Vec<String>>,
    /// Moving tags pointing at the highest selected tag of their group: templates with
    /// `{major}`, `{minor}`, `{patch}` or named groups of `includeRegex`, or literals such as
    /// `latest`.
    pub aliases: Option<Vec<String>>,
    /// Tag → `sha256:<64 lowercase hex>`: the digest the tag must have upstream.
    pub pins: Option<BTreeMap<String, String>>,
    /// How often a tag already placed is checked upstream again: `always` (default: every
    /// run), `never` (release tags such as `1.2.3`, which do not move), or a duration (`24h`,
    /// `7d`, `1h30m`). A tag not due for a check costs no upstream request; a tag houba has
    /// no record of checking (an empty cache) is always due.
    pub recheck: Option<String>,
}

/// One variant of an import: the same tags placed again under `tag + suffix`, with
/// extra transform steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariantSpec {
    /// Unique within the import; appears in plan addresses and in `io.houba.variant`.
    pub name: String,
    /// Appended to every placed tag (`1.37.0` + `-eu`). Default empty.
    #[serde(default)]
    pub suffix: String,
    /// Steps appended after the import's own `transform`.
    pub transform: Option<Vec<TransformSpec>>,
}

/// A repository the selected tags are placed in, on a registry of the roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationSpec {
    /// Roster entry name (`[registries.<name>]` in houba.toml). May be omitted when the
    /// roster has exactly one entry.
    pub registry: Option<String>,
    /// Optional first path segment: the repository becomes `project/repository`.
    pub project: Option<String>,
    /// Repository path inside the registry (or inside the project).
    pub repository: String,
}

/// One hardening step: a single-key map naming the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum TransformSpec {
    /// Add CA certificates from the `ca_certs` roster to the image trust store.
    #[serde(rename = "injectCA")]
    InjectCa(InjectCaSpec),
    /// Point the package manager at a mirror from the `package_mirrors` roster.
    #[serde(rename = "rewritePackageSources")]
    RewritePackageSources(RewritePackageSourcesSpec),
    /// Set the image's local time zone.
    #[serde(rename = "setTimezone")]
    SetTimezone(SetTimezoneSpec),
    /// Run a shell command in the image (built from a Dockerfile with buildah or BuildKit).
    #[serde(rename = "run")]
    Run(RunSpec),
}

/// Parameters of `injectCA`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InjectCaSpec {
    /// Names of `ca_certs` roster entries.
    pub certs: Vec<String>,
}

/// Parameters of `rewritePackageSources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewritePackageSourcesSpec {
    /// Name of a `package_mirrors` roster entry.
    pub mirror: String,
    /// The package managers whose sources this step rewrites (`apt`, `apk`, `yum`); the
    /// mirror must have a URL for each. Absent: every manager the mirror has a URL for.
    /// Naming them keeps the recipe (and so the rebuilds) to what the image uses: with
    /// `managers: [apk]`, a change to the mirror's `apt` URL rebuilds nothing here.
    pub managers: Option<Vec<super::resolved::PackageManager>>,
}

/// Parameters of `setTimezone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTimezoneSpec {
    /// IANA zone name, e.g. `Europe/Paris`.
    pub zone: String,
}

/// Parameters of `run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunSpec {
    /// Shell command, run with `/bin/sh -c` as a Dockerfile `RUN` instruction.
    pub command: String,
}

/// Retention of tags that are no longer selected: merged field by field with
/// `defaults.archive`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchiveSpec {
    /// Keep this many formerly selected tags.
    pub keep: Option<u32>,
    /// Keep formerly selected tags younger than this many days.
    pub older_than_days: Option<u32>,
}

/// The JSON Schema of a MirrorPolicy document, as committed under `docs/reference/`.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(MirrorPolicy);
    schema.to_value()
}
