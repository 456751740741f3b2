//! Evidence of one placed image: what it must carry (an SBOM per configured format and, with
//! signing on, a signature, on the placed digest and on each platform of an index; every SBOM
//! signed too), what it lacks, and attaching what it lacks.
//!
//! Completeness is remembered in the evidence cache (keyed by registry, repository and digest),
//! so a warm run knows without asking the registry; `drift --deep` asks.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use super::COSIGN_SIGNATURE_ARTIFACT;
use super::collect::{EvidenceCache, EvidenceError, image_contents, render_all};
use super::referrer::{self, Evidence};
use super::sbom::SbomFormat;
use super::sign::{Signer, SimpleSigning, sign_payload};
use crate::registry::{Descriptor, Referrer, Registry, manifest};

/// What every placed digest carries.
#[derive(Clone)]
pub struct EvidenceSpec {
    /// SBOM formats, in their fixed order.
    pub formats: Vec<SbomFormat>,
    /// Signs when a `[signing]` key is configured.
    pub signer: Option<Arc<dyn Signer>>,
    /// `Some`: SBOMs come from syft (the program), else houba's native generator.
    pub syft: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for EvidenceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceSpec")
            .field("formats", &self.formats)
            .field("signing", &self.signer.is_some())
            .field("syft", &self.syft)
            .finish()
    }
}

/// What every placed digest must carry (no key material: enough to check, not to sign).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// SBOM formats, in their fixed order.
    pub formats: Vec<SbomFormat>,
    /// A signature is wanted.
    pub signature: bool,
}

impl Wanted {
    /// The evidence kinds every digest needs, as recorded in the cache.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .formats
            .iter()
            .map(|f| format!("sbom:{}", f.name()))
            .collect();
        if self.signature {
            kinds.push("signature".into());
        }
        kinds
    }
}

impl EvidenceSpec {
    /// What the spec asks for, without the key.
    pub fn wanted(&self) -> Wanted {
        Wanted {
            formats: self.formats.clone(),
            signature: self.signer.is_some(),
        }
    }

    /// The evidence kinds every digest needs, as recorded in the cache.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .formats
            .iter()
            .map(|f| format!("sbom:{}", f.name()))
            .collect();
        if self.signer.is_some() {
            kinds.push("signature".into());
        }
        kinds
    }
}

/// Evidence one digest lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// SBOM formats missing.
    pub sbom: Vec<SbomFormat>,
    /// The signature is missing.
    pub signature: bool,
}

impl Missing {
    /// Nothing is missing.
    pub fn is_empty(&self) -> bool {
        self.sbom.is_empty() && !self.signature
    }

    /// Everything the spec asks for (new content has none of it).
    pub fn everything(spec: &EvidenceSpec) -> Missing {
        Missing {
            sbom: spec.formats.clone(),
            signature: spec.signer.is_some(),
        }
    }
}

/// What `referrers` (of one digest) lack against `spec`.
pub fn missing_in(referrers: &[Referrer], spec: &Wanted) -> Missing {
    let has = |artifact: &str| {
        referrers
            .iter()
            .any(|r| r.artifact_type.as_deref() == Some(artifact))
    };
    Missing {
        sbom: spec
            .formats
            .iter()
            .copied()
            .filter(|f| !has(f.media_type()))
            .collect(),
        signature: spec.signature && !has(COSIGN_SIGNATURE_ARTIFACT),
    }
}

/// The digests of a placed manifest that carry evidence: the manifest itself and, for an
/// index, each platform manifest (BuildKit attestation entries describe, they are not images).
pub fn subjects(top: &Descriptor, manifest_bytes: &[u8]) -> Vec<Descriptor> {
    let mut out = vec![top.clone()];
    if let Ok(value) = manifest::parse(manifest_bytes)
        && let Some(children) = value.get("manifests").and_then(|m| m.as_array())
    {
        for child in children {
            if child
                .pointer("/annotations/vnd.docker.reference.type")
                .is_some()
            {
                continue;
            }
            if let Some(d) = manifest::descriptor_from_json(child) {
                out.push(d);
            }
        }
    }
    out
}

/// Whether the cache says every subject of a placement has its evidence. `false` when unsure.
pub fn complete_in_cache(
    cache: &EvidenceCache,
    registry: &str,
    repository: &str,
    subjects: &[Descriptor],
    spec: &Wanted,
) -> bool {
    let needed = spec.kinds();
    subjects.iter().all(|s| {
        let have = cache.attached(registry, repository, &s.digest);
        needed.iter().all(|k| have.contains(k))
    })
}

/// What the registry says each subject lacks: one referrers listing per subject, and a HEAD
/// of each listed referrer houba needs, because a fallback index keeps listing a referrer
/// manifest someone deleted.
pub async fn live_missing(
    registry: &dyn Registry,
    repository: &str,
    subjects: &[Descriptor],
    spec: &Wanted,
) -> Result<BTreeMap<String, Missing>, EvidenceError> {
    let listings = subjects.iter().map(|subject| async move {
        let mut listed = Vec::new();
        for referrer in registry
            .referrer_details(repository, &subject.digest)
            .await?
        {
            let needed = referrer.artifact_type.as_deref().is_some_and(|t| {
                t == COSIGN_SIGNATURE_ARTIFACT || spec.formats.iter().any(|f| f.media_type() == t)
            });
            if needed
                && registry
                    .head_manifest(repository, &referrer.descriptor.digest)
                    .await?
                    .is_none()
            {
                continue;
            }
            listed.push(referrer);
        }
        Ok::<_, EvidenceError>((subject.digest.clone(), missing_in(&listed, spec)))
    });
    Ok(futures::future::try_join_all(listings)
        .await?
        .into_iter()
        .filter(|(_, missing)| !missing.is_empty())
        .collect())
}

/// What one attach did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Attached {
    /// SBOMs attached.
    pub sboms: usize,
    /// Signatures attached.
    pub signatures: usize,
}

/// Attaches what the placement at `registry/repository` (top manifest `top`, bytes
/// `manifest_bytes`) lacks, and records completeness in the cache. `docker_reference` is
/// `<registry host>/<repository>`, the identity signatures name. Attaching is idempotent:
/// documents and signatures are deterministic, so a repeat writes the same digests.
/// `insecure` tells syft the registry is plain HTTP.
#[allow(clippy::too_many_arguments)]
pub async fn attach_missing(
    registry: &dyn Registry,
    registry_key: &str,
    docker_reference: &str,
    repository: &str,
    top: &Descriptor,
    manifest_bytes: &Bytes,
    spec: &EvidenceSpec,
    cache: &EvidenceCache,
    insecure: bool,
) -> Result<Attached, EvidenceError> {
    let subjects = subjects(top, manifest_bytes);
    let missing = live_missing(registry, repository, &subjects, &spec.wanted()).await?;
    let at = SubjectTarget {
        registry,
        registry_key,
        docker_reference,
        repository,
        spec,
        cache,
        insecure,
    };
    if !missing.is_empty() {
        // Before the subjects attach side by side, so they do not all ask for it at once (nor
        // the placements attaching in the same repository meanwhile).
        cache.ensure_empty_config(registry, repository).await?;
    }
    // The platforms side by side (one at a time under syft: one scanner process each), then
    // the index, whose SBOM is made of theirs.
    let mut done = Attached::default();
    let Some((top, platforms)) = subjects.split_first() else {
        return Ok(done);
    };
    let parts = if spec.syft.is_some() {
        let mut parts = Vec::new();
        for s in platforms {
            parts.push(attach_subject(&at, s, missing.get(&s.digest)).await?);
        }
        parts
    } else {
        futures::future::try_join_all(
            platforms
                .iter()
                .map(|s| attach_subject(&at, s, missing.get(&s.digest))),
        )
        .await?
    };
    for part in parts {
        done.sboms += part.sboms;
        done.signatures += part.signatures;
    }
    let part = attach_subject(&at, top, missing.get(&top.digest)).await?;
    done.sboms += part.sboms;
    done.signatures += part.signatures;
    Ok(done)
}

/// Where [`attach_subject`] attaches, and with what.
struct SubjectTarget<'a> {
    registry: &'a dyn Registry,
    registry_key: &'a str,
    docker_reference: &'a str,
    repository: &'a str,
    spec: &'a EvidenceSpec,
    cache: &'a EvidenceCache,
    insecure: bool,
}

/// Attaches what one subject lacks (`None`: nothing) and records it complete.
async fn attach_subject(
    at: &SubjectTarget<'_>,
    subject: &Descriptor,
    lacks: Option<&Missing>,
) -> Result<Attached, EvidenceError> {
    let SubjectTarget {
        registry,
        registry_key,
        docker_reference,
        repository,
        spec,
        cache,
        insecure,
    } = *at;
    let mut done = Attached::default();
    let Some(lacks) = lacks else {
        cache.record_attached(registry_key, repository, &subject.digest, &spec.kinds());
        return Ok(done);
    };
    // Everything about this subject goes in one batch (one fallback-index update); the
    // signatures of its SBOMs name the SBOM manifests, so they follow.
    let mut batch = Vec::new();
    if !lacks.sbom.is_empty() {
        let documents = match &spec.syft {
            Some(program) => {
                let target = super::syft::SyftTarget {
                    program: program.clone(),
                    reference: format!("{docker_reference}@{}", subject.digest),
                    insecure,
                };
                super::syft::generate(&target, &lacks.sbom).await?
            }
            None => {
                let contents = image_contents(registry, repository, &subject.digest, cache).await?;
                render_all(&lacks.sbom, docker_reference, &subject.digest, &contents)?
            }
        };
        for (format, document) in documents {
            batch.push(Evidence::document(format.media_type(), document));
        }
    }
    let sboms = batch.len();
    if lacks.signature
        && let Some(signer) = &spec.signer
    {
        let payload = SimpleSigning::new(docker_reference, &subject.digest, BTreeMap::new());
        batch.push(Evidence::signature(&sign_payload(
            signer.as_ref(),
            &payload,
        )?));
    }
    let attached = referrer::attach_all(registry, repository, subject, &batch).await?;
    done.sboms += sboms;
    done.signatures += batch.len() - sboms;
    if let Some(signer) = &spec.signer {
        for sbom in &attached[..sboms] {
            referrer::attach_signature(
                registry,
                repository,
                docker_reference,
                sbom,
                signer.as_ref(),
                BTreeMap::new(),
            )
            .await?;
            done.signatures += 1;
        }
    }
    cache.record_attached(registry_key, repository, &subject.digest, &spec.kinds());
    Ok(done)
}
