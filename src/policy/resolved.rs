//! Resolved policies: the plain data every later stage consumes.
//!
//! A `ResolvedPolicy` is what remains of a `MirrorPolicy` document once it has been loaded,
//! validated and had its `defaults` merged into each import. It carries no YAML spans and no
//! unvalidated strings: regexes compile, semver ranges parse, digests are well formed, roster
//! names exist. Later stages (selection, graph, plan) may therefore `expect()` on those
//! invariants without re-validating.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What kind of artifact a policy admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ArtifactType {
    /// A container image (index or manifest); the only type transforms apply to.
    Image,
    /// A Helm chart stored as an OCI artifact.
    HelmChart,
    /// Any other OCI artifact, copied as is.
    Generic,
}

impl ArtifactType {
    /// The spelling used in policies and in the stamp (`io.houba.artifact.type`).
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactType::Image => "image",
            ArtifactType::HelmChart => "helmChart",
            ArtifactType::Generic => "generic",
        }
    }
}

/// What a prune does to a tag that is no longer desired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeletionMode {
    /// Delete the tag (and the manifest when nothing else references it).
    #[default]
    Purge,
    /// Leave the content, record the prune in the stamp of a marker.
    Mark,
}

/// The upstream a policy admits images from. `registry` is the literal upstream host
/// (`docker.io`); the roster may redirect it to a mirror.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// Upstream registry host, e.g. `docker.io`.
    pub registry: String,
    /// Repository path on that registry, e.g. `library/busybox`.
    pub repository: String,
}

/// One destination repository, resolved against the roster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Destination {
    /// Roster entry name (always set after resolution, even when the policy omitted it
    /// because the roster has exactly one entry).
    pub registry: String,
    /// Repository path inside the registry: `project/repository`, or `repository` when the
    /// policy sets no project.
    pub repository: String,
}

/// `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system in OCI spelling, e.g. `linux`.
    pub os: String,
    /// CPU architecture in OCI spelling, e.g. `arm64`.
    pub architecture: String,
    /// CPU variant, e.g. `v8` for `linux/arm64/v8`.
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One hardening step, parameters already checked against the rosters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransformStep {
    /// Names of `ca_certs` roster entries.
    InjectCa {
        /// The roster entry names, in policy order.
        certs: Vec<String>,
    },
    /// Name of a `package_mirrors` roster entry, and the package managers whose sources are
    /// rewritten (empty: every manager the mirror has a URL for).
    RewritePackageSources {
        /// The roster entry name.
        mirror: String,
        /// The managers named by the policy; empty: every one the mirror has a URL for.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        managers: Vec<PackageManager>,
    },
    /// An IANA zone name such as `Europe/Paris`.
    SetTimezone {
        /// The zone name, checked against the IANA database.
        zone: String,
    },
    /// A shell command; images with such a step are built from a Dockerfile.
    Run {
        /// The command, run with `/bin/sh -c` as a Dockerfile `RUN` instruction.
        command: String,
    },
}

impl TransformStep {
    /// The step's policy spelling (`injectCA`, …), used in the stamp.
    pub fn name(&self) -> &'static str {
        match self {
            TransformStep::InjectCa { .. } => "injectCA",
            TransformStep::RewritePackageSources { .. } => "rewritePackageSources",
            TransformStep::SetTimezone { .. } => "setTimezone",
            TransformStep::Run { .. } => "run",
        }
    }

    /// Whether the step runs a command, so that the image must be built from a Dockerfile.
    pub fn runs_command(&self) -> bool {
        matches!(self, TransformStep::Run { .. })
    }
}

/// A package manager whose sources `rewritePackageSources` can point at a mirror: `apt`
/// (Debian, Ubuntu: `/etc/apt/sources.list`, `/etc/apt/sources.list.d/*.{list,sources}`),
/// `apk` (Alpine: `/etc/apk/repositories`), `yum` (RHEL, UBI, Fedora: `/etc/yum.repos.d/*.repo`).
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
// No doc comments on the variants: they would turn the schema's `enum` into a `oneOf`. The
// enum's own doc comment describes each of them.
#[allow(missing_docs)]
pub enum PackageManager {
    Apt,
    Apk,
    Yum,
}

impl PackageManager {
    /// Every manager, in declaration order.
    pub const ALL: [PackageManager; 3] = [
        PackageManager::Apt,
        PackageManager::Apk,
        PackageManager::Yum,
    ];

    /// The policy spelling: `apt`, `apk` or `yum`.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageManager::Apt => "apt",
            PackageManager::Apk => "apk",
            PackageManager::Yum => "yum",
        }
    }
}

/// Tag selection rules of one import (after defaults merge). Regexes and the semver range are
/// kept as source strings; validation guarantees they compile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TagRules {
    /// Regex a tag must match to be selected; `None`: every tag passes this filter.
    pub include_regex: Option<String>,
    /// Regexes a selected tag must not match.
    pub exclude_regex: Vec<String>,
    /// Only tags that parse as (tolerant) semver are selected. Default true.
    pub semver_only: bool,
    /// Semantic version range a selected tag must satisfy, e.g. `>=1.36, <2`.
    pub semver: Option<String>,
    /// Pre-releases pass the filters too. Default false (a named pre-release is always taken).
    pub prerelease: bool,
    /// Keep only this many highest selected versions.
    pub latest: Option<usize>,
    /// Exact tags, selected when present upstream, bypassing the filters.
    pub names: Vec<String>,
    /// Moving-tag templates (`{major}.{minor}`, named groups of `include_regex`) or literals
    /// (`latest`), each pointing at the highest selected tag of its group.
    pub aliases: Vec<String>,
    /// tag → `sha256:<64 hex>`
    pub pins: BTreeMap<String, String>,
}

impl TagRules {
    /// `names` given without `includeRegex`, `semver` or `latest`: exactly those tags. The other
    /// fields (`excludeRegex`, `semverOnly`, `prerelease`) only refine a filter selection.
    pub fn names_alone(&self) -> bool {
        !self.names.is_empty()
            && self.include_regex.is_none()
            && self.semver.is_none()
            && self.latest.is_none()
    }
}

/// How often a tag already placed is checked upstream again (`tags.recheck`). Serialised as
/// `always`, `never` or `<seconds>s` (in `houba graph --format json` and the inputs digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Recheck {
    /// Every run (the default): a moved upstream tag is seen at once.
    #[default]
    Always,
    /// Once placed, never again: for release tags that do not move.
    Never,
    /// At most once per this long.
    Every(Duration),
}

impl Recheck {
    /// The default, which costs one upstream HEAD per tag and run.
    pub fn is_always(&self) -> bool {
        *self == Recheck::Always
    }

    /// Whether an upstream check last made at `checked` is due again at `now` (seconds since
    /// the epoch). A check recorded in the future (a clock that jumped back) is due: the record
    /// cannot be trusted.
    pub fn due(self, checked: u64, now: u64) -> bool {
        match self {
            Recheck::Always => true,
            Recheck::Never => checked > now,
            Recheck::Every(every) => checked > now || now - checked >= every.as_secs(),
        }
    }
}

impl From<Recheck> for String {
    fn from(r: Recheck) -> String {
        match r {
            Recheck::Always => "always".into(),
            Recheck::Never => "never".into(),
            Recheck::Every(every) => format!("{}s", every.as_secs()),
        }
    }
}

impl TryFrom<String> for Recheck {
    type Error = String;

    fn try_from(text: String) -> Result<Recheck, String> {
        match text.as_str() {
            "always" => Ok(Recheck::Always),
            "never" => Ok(Recheck::Never),
            other => other
                .strip_suffix('s')
                .and_then(|n| n.parse().ok())
                .map(|secs| Recheck::Every(Duration::from_secs(secs)))
                .ok_or_else(|| format!("`{text}` is not `always`, `never` or `<seconds>s`")),
        }
    }
}

/// A variant of an import: the same upstream tags placed under `tag + suffix`, with extra
/// transform steps appended after the import's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// Unique within the import; appears in plan addresses and in `io.houba.variant`.
    pub name: String,
    /// Appended to every placed tag; empty for the `default` variant.
    pub suffix: String,
    /// The variant's own steps, applied after the import's `transform`.
    pub transform: Vec<TransformStep>,
}

/// Retention of the tags an import no longer selects: a dropped tag kept by either rule is
/// not pruned.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Archive {
    /// Keep this many of the most recent dropped tags.
    pub keep: Option<u32>,
    /// Keep dropped tags created fewer than this many days ago.
    pub older_than_days: Option<u32>,
}

/// One import after defaults have been merged in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedImport {
    /// Unique within the policy; appears in plan addresses.
    pub name: String,
    /// Which upstream tags are selected, and the aliases pointing at them.
    pub tags: TagRules,
    /// Empty means "all platforms upstream has" (no filtering).
    pub platforms: Vec<Platform>,
    /// Never empty: absent in YAML means one `default` variant with an empty suffix.
    pub variants: Vec<Variant>,
    /// Never empty: every repository the selected tags are placed in.
    pub destinations: Vec<Destination>,
    /// Hardening steps applied to every variant, before the variant's own.
    pub transform: Vec<TransformStep>,
    /// Backstage entity refs, carried in the `io.houba.owners` stamp.
    pub owners: Vec<String>,
    /// Written to `org.opencontainers.image.vendor`.
    pub vendor: Option<String>,
    /// Retention of dropped tags; `None`: every dropped tag is pruned.
    pub archive: Option<Archive>,
    /// How long an upstream digest must be stable before an update is planned.
    pub settle: Duration,
    /// How often a placed tag is checked upstream again. Left out of the serialised form when
    /// it is the default, so that policies without it keep their inputs digest.
    #[serde(default, skip_serializing_if = "Recheck::is_always")]
    pub recheck: Recheck,
}

/// Where a policy was read from, for messages that point back at the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The policy file.
    pub file: PathBuf,
    /// 1-based line of the policy's `metadata.name`.
    pub line: usize,
    /// 1-based column of the policy's `metadata.name`.
    pub column: usize,
}

/// One valid MirrorPolicy, defaults merged into each import and every value checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedPolicy {
    /// Unique across all policies; the first segment of plan addresses and `io.houba.policy`.
    pub name: String,
    /// `metadata.labels`, used for selection.
    pub labels: BTreeMap<String, String>,
    /// Where the policy is written.
    pub origin: Origin,
    /// What kind of artifact the policy admits.
    pub artifact_type: ArtifactType,
    /// The upstream repository.
    pub source: Source,
    /// What a prune does to the policy's tags.
    pub deletion_mode: DeletionMode,
    /// The imports, in policy order.
    pub imports: Vec<ResolvedImport>,
}
