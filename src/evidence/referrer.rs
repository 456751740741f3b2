//! The referrer layout houba writes (shared with every reader of houba's evidence):
//!
//! - an OCI image manifest (`application/vnd.oci.image.manifest.v1+json`) whose `subject` is
//!   the described digest, whose `config` is the empty descriptor (`{}`, 2 bytes,
//!   `application/vnd.oci.empty.v1+json`) and whose single layer holds the document;
//! - `artifactType` and the layer's media type say what the document is: SPDX
//!   `application/spdx+json`, CycloneDX `application/vnd.cyclonedx+json`, SARIF
//!   `application/sarif+json`; a signature has artifactType
//!   `application/vnd.dev.cosign.artifact.sig.v1+json` and a
//!   `application/vnd.dev.cosign.simplesigning.v1+json` layer carrying the payload, the
//!   signature in the layer annotation `dev.cosignproject.cosign/signature`;
//! - registries without the referrers API get the `sha256-<hex>` fallback index (maintained by
//!   the registry layer) and, for signatures, cosign's `sha256-<hex>.sig` tag too.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

use super::{COSIGN_SIGNATURE_ANNOTATION, COSIGN_SIGNATURE_ARTIFACT, COSIGN_SIMPLE_SIGNING};
use super::{EMPTY_CONFIG, EMPTY_MEDIA_TYPE};
use crate::registry::digest::sha256_digest;
use crate::registry::manifest::OCI_MANIFEST;
use crate::registry::{Descriptor, Registry, RegistryError, referrers};

/// One document to attach to a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The referrer manifest's `artifactType`.
    pub artifact_type: String,
    /// Media type of its one layer, the document.
    pub layer_media_type: String,
    /// The document.
    pub document: Bytes,
    /// Annotations of the layer.
    pub layer_annotations: BTreeMap<String, String>,
    /// Annotations of the referrer manifest.
    pub annotations: BTreeMap<String, String>,
}

impl Evidence {
    /// A document whose layer media type is its artifact type (SBOMs, SARIF).
    pub fn document(media_type: &str, document: impl Into<Bytes>) -> Evidence {
        Evidence {
            artifact_type: media_type.to_owned(),
            layer_media_type: media_type.to_owned(),
            document: document.into(),
            layer_annotations: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// A cosign signature: the simple signing payload and its base64 DER signature.
    pub fn signature(signed: &super::sign::SignedPayload) -> Evidence {
        Evidence {
            artifact_type: COSIGN_SIGNATURE_ARTIFACT.to_owned(),
            layer_media_type: COSIGN_SIMPLE_SIGNING.to_owned(),
            document: Bytes::from(signed.payload.clone()),
            layer_annotations: BTreeMap::from([(
                COSIGN_SIGNATURE_ANNOTATION.to_owned(),
                signed.signature_b64.clone(),
            )]),
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDescriptor<'a> {
    media_type: &'a str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactManifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    artifact_type: &'a str,
    config: ManifestDescriptor<'a>,
    layers: [ManifestDescriptor<'a>; 1],
    subject: ManifestDescriptor<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
}

/// The referrer manifest bytes for `evidence` about `subject` (deterministic: a pure function
/// of its inputs).
pub fn manifest(subject: &Descriptor, evidence: &Evidence) -> Bytes {
    let non_empty = |m: &'_ BTreeMap<String, String>| (!m.is_empty()).then_some(());
    let manifest = ArtifactManifest {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type: &evidence.artifact_type,
        config: ManifestDescriptor {
            media_type: EMPTY_MEDIA_TYPE,
            digest: sha256_digest(EMPTY_CONFIG),
            size: EMPTY_CONFIG.len() as u64,
            annotations: None,
        },
        layers: [ManifestDescriptor {
            media_type: &evidence.layer_media_type,
            digest: sha256_digest(&evidence.document),
            size: evidence.document.len() as u64,
            annotations: non_empty(&evidence.layer_annotations)
                .map(|_| &evidence.layer_annotations),
        }],
        subject: ManifestDescriptor {
            media_type: &subject.media_type,
            digest: subject.digest.clone(),
            size: subject.size,
            annotations: None,
        },
        annotations: non_empty(&evidence.annotations).map(|_| &evidence.annotations),
    };
    Bytes::from(serde_json::to_vec(&manifest).expect("an artifact manifest serialises"))
}

/// cosign's tag for the signatures of `digest`: `sha256-<hex>.sig`.
pub fn cosign_signature_tag(digest: &str) -> Option<String> {
    referrers::fallback_tag(digest).map(|t| format!("{t}.sig"))
}

fn once(bytes: Bytes) -> crate::registry::ByteStream {
    Box::pin(futures::stream::once(async move { Ok(bytes) }))
}

/// Makes sure `repository` holds the empty config every referrer names (one HEAD, and an
/// upload when it is missing; the registry client remembers it for the rest of the run).
pub async fn ensure_empty_config(
    registry: &dyn Registry,
    repository: &str,
) -> Result<(), RegistryError> {
    put_blob_once(registry, repository, Bytes::from_static(EMPTY_CONFIG)).await
}

async fn put_blob_once(
    registry: &dyn Registry,
    repository: &str,
    bytes: Bytes,
) -> Result<(), RegistryError> {
    let digest = sha256_digest(&bytes);
    if !registry.blob_exists(repository, &digest).await? {
        let size = bytes.len() as u64;
        registry
            .put_blob(repository, &digest, size, once(bytes))
            .await?;
    }
    Ok(())
}

/// Pushes `evidence` about `subject` to `repository`: the empty config and the document blob,
/// then the referrer manifest (by digest; the registry layer updates the fallback index where
/// there is no referrers API). A signature also gets cosign's `.sig` tag on such registries.
/// Returns the referrer manifest's descriptor.
pub async fn attach(
    registry: &dyn Registry,
    repository: &str,
    subject: &Descriptor,
    evidence: &Evidence,
) -> Result<Descriptor, RegistryError> {
    let mut attached = attach_all(
        registry,
        repository,
        subject,
        std::slice::from_ref(evidence),
    )
    .await?;
    Ok(attached.remove(0))
}

/// [`attach`] for several documents about one subject: the documents upload side by side and
/// a registry without the referrers API gets one fallback-index update for all of them.
/// Returns the referrer manifests' descriptors, in order.
pub async fn attach_all(
    registry: &dyn Registry,
    repository: &str,
    subject: &Descriptor,
    evidence: &[Evidence],
) -> Result<Vec<Descriptor>, RegistryError> {
    if evidence.is_empty() {
        return Ok(Vec::new());
    }
    put_blob_once(registry, repository, Bytes::from_static(EMPTY_CONFIG)).await?;
    // A document is new content (its digest names the subject), so it is uploaded without
    // asking first; uploading a blob the registry has is harmless.
    futures::future::try_join_all(evidence.iter().map(|e| {
        let document = e.document.clone();
        async move {
            let digest = sha256_digest(&document);
            let size = document.len() as u64;
            registry
                .put_blob(repository, &digest, size, once(document))
                .await
        }
    }))
    .await?;
    let manifests: Vec<Bytes> = evidence.iter().map(|e| manifest(subject, e)).collect();
    let descriptors: Vec<Descriptor> = manifests
        .iter()
        .map(|bytes| Descriptor {
            media_type: OCI_MANIFEST.to_owned(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
        })
        .collect();
    registry
        .attach_referrers(
            repository,
            subject,
            manifests
                .iter()
                .map(|b| (OCI_MANIFEST.to_owned(), b.clone()))
                .collect(),
        )
        .await?;
    let signatures: Vec<&Bytes> = evidence
        .iter()
        .zip(&manifests)
        .filter(|(e, _)| e.artifact_type == COSIGN_SIGNATURE_ARTIFACT)
        .map(|(_, bytes)| bytes)
        .collect();
    if let Some(last) = signatures.last()
        && let Some(fallback) = referrers::fallback_tag(&subject.digest)
        // The fallback index exists only where the registry has no referrers API.
        && registry.head_manifest(repository, &fallback).await?.is_some()
        && let Some(tag) = cosign_signature_tag(&subject.digest)
    {
        registry
            .put_manifest(repository, &tag, OCI_MANIFEST, (*last).clone())
            .await?;
    }
    Ok(descriptors)
}

/// Signs `subject` (cosign simple signing for `docker_reference`, the `<registry>/<repository>`
/// it lives at) and attaches the signature. Returns the signature manifest's descriptor.
pub async fn attach_signature(
    registry: &dyn Registry,
    repository: &str,
    docker_reference: &str,
    subject: &Descriptor,
    signer: &dyn super::sign::Signer,
    optional: BTreeMap<String, String>,
) -> Result<Descriptor, super::collect::EvidenceError> {
    let payload = super::sign::SimpleSigning::new(docker_reference, &subject.digest, optional);
    let signed = super::sign::sign_payload(signer, &payload)?;
    Ok(attach(registry, repository, subject, &Evidence::signature(&signed)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_manifests_follow_the_layout() {
        let subject = Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: sha256_digest(b"image"),
            size: 5,
        };
        let evidence = Evidence::document(super::super::SPDX_MEDIA_TYPE, &b"{\"spdx\":1}"[..]);
        let bytes = manifest(&subject, &evidence);
        assert_eq!(bytes, manifest(&subject, &evidence), "deterministic");
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["artifactType"], "application/spdx+json");
        assert_eq!(value["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(
            value["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(value["config"]["size"], 2);
        assert_eq!(value["subject"]["digest"], subject.digest.as_str());
        assert_eq!(value["layers"][0]["size"], 10);
        assert!(value.get("annotations").is_none());
        assert_eq!(
            cosign_signature_tag(&subject.digest).unwrap(),
            format!(
                "sha256-{}.sig",
                subject.digest.trim_start_matches("sha256:")
            )
        );
    }
}
