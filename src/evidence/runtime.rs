//! Evidence during apply: right after a placement's tag write, carry the upstream's evidence
//! (placing the upstream manifest by digest) and attach what the placed digest lacks.
//!
//! Why after the tag write: both ways of placing (copy, rebuild) end in the tag write, and
//! evidence describes content that must already be in the registry. A failed attach fails the
//! action (the run reports it, exit 1); the evidence cache records nothing the registry did not
//! accept, so the next plan lists the missing evidence as an `attach` and the next run
//! finishes it. Meanwhile a consumer that requires a signature refuses the image (fail closed).

use std::collections::BTreeSet;

use bytes::Bytes;

use super::collect::{EvidenceCache, EvidenceError};
use super::placement::{EvidenceSpec, attach_missing};
use super::upstream::{self, COSIGN_SUFFIXES, UpstreamEvidence};
use crate::registry::transfer::TransferSession;
use crate::registry::{Descriptor, Registry, RegistryError, referrers};

/// What apply needs to attach evidence.
#[derive(Debug, Clone)]
pub struct EvidenceRuntime {
    /// What every placed digest carries.
    pub spec: EvidenceSpec,
    /// What was scanned and attached already.
    pub cache: EvidenceCache,
    /// Roster entries reached over plain HTTP (for syft).
    pub plain_http: BTreeSet<String>,
}

/// The upstream content a placement came from.
pub struct UpstreamSource<'a> {
    /// The upstream registry.
    pub registry: &'a dyn Registry,
    /// The upstream repository.
    pub repository: &'a str,
    /// The upstream manifest's descriptor.
    pub descriptor: Descriptor,
    /// Its bytes.
    pub bytes: Bytes,
}

/// The destination of a placement.
pub struct PlacedAt<'a> {
    /// The destination registry.
    pub registry: &'a dyn Registry,
    /// Its roster entry name.
    pub registry_key: &'a str,
    /// `host[/prefix]` as users write it.
    pub display: &'a str,
    /// The destination repository.
    pub repository: &'a str,
    /// The placed manifest's descriptor.
    pub descriptor: Descriptor,
    /// Its bytes.
    pub bytes: Bytes,
}

/// The upstream evidence of a digest, without a tag list: the referrers listing plus a HEAD
/// per cosign tag.
pub async fn discover_upstream(
    source: &dyn Registry,
    repository: &str,
    digest: &str,
) -> Result<UpstreamEvidence, RegistryError> {
    let mut found = upstream::discover(source, repository, digest, None).await?;
    if let Some(base) = referrers::fallback_tag(digest) {
        for suffix in COSIGN_SUFFIXES {
            let tag = format!("{base}.{suffix}");
            if source.head_manifest(repository, &tag).await?.is_some() {
                found.cosign_tags.push(tag);
            }
        }
    }
    Ok(found)
}

impl EvidenceRuntime {
    /// Carries upstream evidence (when `upstream` is given) and attaches what `placed` lacks.
    pub async fn complete(
        &self,
        session: &TransferSession,
        placed: &PlacedAt<'_>,
        upstream: Option<&UpstreamSource<'_>>,
    ) -> Result<(), AttachError> {
        let at = format!(
            "{}/{}@{}",
            placed.display, placed.repository, placed.descriptor.digest
        );
        let failed = |step: &'static str| {
            let at = at.clone();
            move |error: EvidenceError| AttachError { at, step, error }
        };
        if let Some(up) = upstream {
            let found = discover_upstream(up.registry, up.repository, &up.descriptor.digest)
                .await
                .map_err(EvidenceError::from)
                .map_err(failed("reading the upstream's referrers"))?;
            upstream::carry(
                session,
                up.registry,
                up.repository,
                &up.descriptor,
                &up.bytes,
                placed.registry,
                placed.repository,
                &found,
            )
            .await
            .map_err(EvidenceError::from)
            .map_err(failed("copying the upstream's referrers"))?;
        }
        attach_missing(
            placed.registry,
            placed.registry_key,
            &format!("{}/{}", placed.display, placed.repository),
            placed.repository,
            &placed.descriptor,
            &placed.bytes,
            &self.spec,
            &self.cache,
            self.plain_http.contains(placed.registry_key),
        )
        .await
        .map(|_| ())
        .map_err(failed("attaching evidence"))
    }
}

/// Evidence for one placed digest could not be completed. The image itself is in place; the
/// next run plans an `attach` for what is missing.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {step}: {error}")]
pub struct AttachError {
    /// `<registry>/<repository>@<digest>` of the placed image.
    pub at: String,
    /// What houba was doing.
    pub step: &'static str,
    /// Why it failed.
    pub error: EvidenceError,
}

impl AttachError {
    /// Whether running the action again may succeed (connection errors, time-outs).
    pub fn is_transient(&self) -> bool {
        matches!(&self.error, EvidenceError::Registry(e) if e.is_transient())
    }
}
