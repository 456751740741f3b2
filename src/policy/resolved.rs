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
    Image,
    HelmChart,
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
    pub registry: String,
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
    pub os: String,
    pub architecture: String,
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
    InjectCa { certs: Vec<String> },
    /// Name of a `package_mirrors` roster entry, and the package managers whose sources are
    /// rewritten (empty: every manager the mirror has a URL for).
    RewritePackageSources {
        mirror: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        managers: Vec<PackageManager>,
    },
    /// An IANA zone name such as `Europe/Paris`.
    SetTimezone { zone: String },
    /// A shell command; images with such a step are built from a Dockerfile.
    Run { command: String },
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
pub enum PackageManager {
    // No doc comments on the variants: they would turn the schema's `enum` into a `oneOf`.
    Apt,
    Apk,
    Yum,
}

impl PackageManager {
    pub const ALL: [PackageManager; 3] = [
        PackageManager::Apt,
        PackageManager::Apk,
        PackageManager::Yum,
    ];

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
    pub include_regex: Option<String>,
    pub exclude_regex: Vec<String>,
    /// Only tags that parse as (tolerant) semver are selected. Default true.
    pub semver_only: bool,
    pub semver: Option<String>,
    /// Pre-releases pass the filters too. Default false (a named pre-release is always taken).
    pub prerelease: bool,
    pub latest: Option<usize>,
    pub names: Vec<String>,
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
    pub name: String,
    pub suffix: String,
    pub transform: Vec<TransformStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Archive {
    pub keep: Option<u32>,
    pub older_than_days: Option<u32>,
}

/// One import after defaults have been merged in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedImport {
    pub name: String,
    pub tags: TagRules,
    /// Empty means "all platforms upstream has" (no filtering).
    pub platforms: Vec<Platform>,
    /// Never empty: absent in YAML means one `default` variant with an empty suffix.
    pub variants: Vec<Variant>,
    pub destinations: Vec<Destination>,
    pub transform: Vec<TransformStep>,
    pub owners: Vec<String>,
    pub vendor: Option<String>,
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
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedPolicy {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub origin: Origin,
    pub artifact_type: ArtifactType,
    pub source: Source,
    pub deletion_mode: DeletionMode,
    pub imports: Vec<ResolvedImport>,
}
