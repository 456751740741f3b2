//! Evidence for the read-side tests, pushed through the registry layer exactly as the evidence
//! contract says: an OCI image manifest with `subject`, an empty config, one layer and an
//! `artifactType` (SPDX, CycloneDX, cosign simple signing, SARIF with count annotations).

#![allow(dead_code)]

use base64::Engine;
use bytes::Bytes;
use houba::registry::{Descriptor, Registry};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use serde_json::{Value, json};

use crate::support::images::{self, Blob, Built, OCI_EMPTY, OCI_MANIFEST};

pub const SPDX: &str = "application/spdx+json";
pub const CYCLONEDX: &str = "application/vnd.cyclonedx+json";
pub const COSIGN_SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SARIF: &str = "application/sarif+json";

/// A deterministic test key (the same seed gives the same key).
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).expect("valid scalar")
}

/// The public half in PEM (SubjectPublicKeyInfo), as `cosign.pub`.
pub fn public_pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(Default::default())
        .expect("PEM")
}

fn evidence(
    artifact_type: &str,
    layer: Blob,
    layer_annotations: Option<Value>,
    annotations: Value,
    subject: &Descriptor,
) -> Built {
    let config = Blob::new(OCI_EMPTY, &b"{}"[..]);
    let ld = layer.descriptor();
    let mut layer_json = json!({"mediaType": ld.media_type, "digest": ld.digest, "size": ld.size});
    if let Some(a) = layer_annotations {
        layer_json["annotations"] = a;
    }
    let cd = config.descriptor();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": cd.media_type, "digest": cd.digest, "size": cd.size},
        "layers": [layer_json],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        "annotations": annotations,
    });
    Built {
        media_type: OCI_MANIFEST.to_owned(),
        manifest: Bytes::from(serde_json::to_vec(&manifest).expect("json")),
        blobs: vec![config, layer],
        children: Vec::new(),
    }
}

/// Attach an SPDX (or CycloneDX when `cyclonedx`) SBOM. Returns the referrer digest.
pub async fn attach_sbom(
    registry: &dyn Registry,
    repository: &str,
    subject: &Descriptor,
    cyclonedx: bool,
) -> String {
    let (t, body) = if cyclonedx {
        (
            CYCLONEDX,
            json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": []}),
        )
    } else {
        (
            SPDX,
            json!({"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": subject.digest,
                   "dataLicense": "CC0-1.0", "packages": []}),
        )
    };
    let layer = Blob::new(t, serde_json::to_vec(&body).expect("json"));
    let built = evidence(t, layer, None, json!({}), subject);
    images::attach(registry, repository, subject, &built)
        .await
        .expect("attach SBOM")
}

/// The cosign simple-signing payload for `reference` (`host/repository`) at `digest`.
pub fn simple_signing_payload(reference: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": {"creator": "houba tests"}
    }))
    .expect("json")
}

/// A signature: the payload, its DER signature, the referrer manifest.
pub struct Signed {
    pub payload: Vec<u8>,
    pub der: Vec<u8>,
    pub digest: String,
}

/// Sign `subject` in `host/repository` with `key` and attach the signature; with
/// `sig_tag`, also put it under cosign's `sha256-<hex>.sig` tag (registries without the
/// referrers API).
pub async fn attach_signature(
    registry: &dyn Registry,
    host: &str,
    repository: &str,
    subject: &Descriptor,
    key: &SigningKey,
    sig_tag: bool,
) -> Signed {
    let payload = simple_signing_payload(&format!("{host}/{repository}"), &subject.digest);
    let signature: Signature = key.sign(&payload);
    let der = signature.to_der().as_bytes().to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let layer = Blob::new(SIMPLE_SIGNING, payload.clone());
    let built = evidence(
        COSIGN_SIG,
        layer,
        Some(json!({"dev.cosignproject.cosign/signature": b64})),
        json!({}),
        subject,
    );
    let digest = images::attach(registry, repository, subject, &built)
        .await
        .expect("attach signature");
    if sig_tag {
        let tag = format!("sha256-{}.sig", &subject.digest["sha256:".len()..]);
        registry
            .put_manifest(repository, &tag, OCI_MANIFEST, built.manifest.clone())
            .await
            .expect("cosign .sig tag");
    }
    Signed {
        payload,
        der,
        digest,
    }
}

/// Finding counts of a scan report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
}

impl Counts {
    pub fn text(&self) -> String {
        format!(
            "C{} H{} M{} L{}",
            self.critical, self.high, self.medium, self.low
        )
    }
}

/// A SARIF 2.1.0 report with one result per CVE, and its counts as annotations.
pub async fn attach_sarif(
    registry: &dyn Registry,
    repository: &str,
    subject: &Descriptor,
    counts: Counts,
    cves: &[&str],
    created: &str,
) -> String {
    let results: Vec<Value> = cves
        .iter()
        .map(|c| json!({"ruleId": c, "level": "error", "message": {"text": format!("{c} in a package")}}))
        .collect();
    let report = json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{"tool": {"driver": {"name": "test-scanner"}}, "results": results}]
    });
    let layer = Blob::new(SARIF, serde_json::to_vec(&report).expect("json"));
    let annotations = json!({
        "io.houba.scan.critical": counts.critical.to_string(),
        "io.houba.scan.high": counts.high.to_string(),
        "io.houba.scan.medium": counts.medium.to_string(),
        "io.houba.scan.low": counts.low.to_string(),
        "io.houba.scan.tool": "test-scanner",
        "org.opencontainers.image.created": created,
    });
    let built = evidence(SARIF, layer, None, annotations, subject);
    images::attach(registry, repository, subject, &built)
        .await
        .expect("attach SARIF")
}

/// `openssl dgst -sha256 -verify` of a signature made here: the signature is standard ECDSA
/// P-256/SHA-256 DER that a tool nobody here wrote accepts.
pub fn openssl_verifies(dir: &std::path::Path, public_pem: &str, signed: &Signed) -> bool {
    let key = dir.join("cosign.pub");
    let sig = dir.join("payload.sig");
    let payload = dir.join("payload.json");
    std::fs::write(&key, public_pem).expect("write key");
    std::fs::write(&sig, &signed.der).expect("write sig");
    std::fs::write(&payload, &signed.payload).expect("write payload");
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&key)
        .arg("-signature")
        .arg(&sig)
        .arg(&payload)
        .output()
        .expect("openssl runs");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

/// The manifest digests listed as referrers of `digest` (sorted).
pub async fn referrer_digests(
    registry: &dyn Registry,
    repository: &str,
    digest: &str,
) -> Vec<String> {
    let mut v: Vec<String> = registry
        .referrers(repository, digest)
        .await
        .expect("referrers")
        .into_iter()
        .map(|d| d.digest)
        .collect();
    v.sort();
    v
}

/// Whether a manifest exists by digest.
pub async fn manifest_exists(registry: &dyn Registry, repository: &str, digest: &str) -> bool {
    registry
        .head_manifest(repository, digest)
        .await
        .expect("HEAD")
        .is_some()
}
