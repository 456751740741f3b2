//! What the registries held when observed: plain data written by `observe` and read by the
//! plan's diff. Kept apart from both so that the pure core (`plan`) never depends on the code
//! that does I/O (`observe`).

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

/// What an upstream tag held when observed.
#[derive(Debug, Clone)]
pub struct SourceObservation {
    /// Manifest digest.
    pub digest: String,
    /// Manifest media type.
    pub media_type: String,
    /// Manifest bytes.
    pub manifest: Bytes,
    /// Age of the upstream content, when it declares a creation time (for `settle`).
    pub age: Option<Duration>,
}

/// What a destination tag held when observed.
#[derive(Debug, Clone)]
pub struct LiveTag {
    /// Manifest digest.
    pub digest: String,
    /// Manifest media type.
    pub media_type: String,
    /// Manifest bytes.
    pub manifest: Bytes,
}

/// When houba last checked an upstream tag and what it held then, as remembered in the cache
/// directory (for `tags.recheck`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCheck {
    /// Manifest digest the tag held.
    pub digest: String,
    /// When it was checked, in seconds since the epoch.
    pub checked: u64,
}

/// `(registry, repository, tag)`.
pub type TagKey = (String, String, String);

/// `(registry, repository)`.
pub type RepositoryKey = (String, String);

/// Everything observed in the registries, keyed by location.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    /// (registry, repository, tag) → observation. Absent: the tag vanished upstream.
    pub sources: BTreeMap<TagKey, SourceObservation>,
    /// (registry, repository) → tag → live content. A managed repository with no entry was not
    /// observed (an error); an empty map means it holds no tags.
    pub destinations: BTreeMap<RepositoryKey, BTreeMap<String, LiveTag>>,
    /// (registry, repository, digest) → evidence the placed content lacks. Absent: complete
    /// (or not observed).
    pub evidence: BTreeMap<TagKey, EvidenceGap>,
}

/// Evidence a placed digest (or one of its platforms) lacks, as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvidenceGap {
    /// SBOM formats missing (`spdx`, `cyclonedx`).
    pub missing_sbom: Vec<String>,
    /// The signature is missing.
    pub missing_signature: bool,
    /// Of those, what houba had attached before (so it was deleted outside houba: drift).
    pub vanished_sbom: Vec<String>,
    /// The signature houba had attached is gone.
    pub vanished_signature: bool,
}
