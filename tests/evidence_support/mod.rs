//! Shared by the evidence tests: a signing key made by openssl, reading referrers back and
//! checking cosign signatures with `openssl dgst -verify`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use bytes::Bytes;

use crate::support::images;
use futures::StreamExt;
use houba::registry::{Referrer, Registry};
use serde_json::Value;

pub const COSIGN_SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
pub const SIG_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// A P-256 key pair made by openssl in `dir`: (private PKCS#8 PEM, public SPKI PEM) paths.
pub fn openssl_key_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let private = dir.join("signing.pem");
    let public = dir.join("signing.pub.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&private)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl genpkey");
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl pkey -pubout");
    (private, public)
}

pub async fn manifest_json(registry: &dyn Registry, repository: &str, digest: &str) -> Value {
    let (_, bytes) = registry
        .get_manifest(repository, digest)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{repository}@{digest} is missing"));
    serde_json::from_slice(&bytes).unwrap()
}

pub async fn blob(registry: &dyn Registry, repository: &str, digest: &str) -> Vec<u8> {
    let mut stream = registry.get_blob(repository, digest).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

pub async fn referrers_of(
    registry: &dyn Registry,
    repository: &str,
    digest: &str,
    artifact_type: &str,
) -> Vec<Referrer> {
    registry
        .referrer_details(repository, digest)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.artifact_type.as_deref() == Some(artifact_type))
        .collect()
}

/// Pulls the cosign signature(s) of `digest` and checks one with `openssl dgst -sha256
/// -verify` against `public_key`; returns the payload's `docker-manifest-digest`.
pub async fn verify_signature_with_openssl(
    registry: &dyn Registry,
    repository: &str,
    digest: &str,
    public_key: &Path,
    scratch: &Path,
) -> String {
    let signatures = referrers_of(registry, repository, digest, COSIGN_SIG).await;
    assert!(!signatures.is_empty(), "{digest} has no signature");
    let manifest = manifest_json(registry, repository, &signatures[0].descriptor.digest).await;
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = blob(registry, repository, layer["digest"].as_str().unwrap()).await;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(layer["annotations"][SIG_ANNOTATION].as_str().unwrap())
        .unwrap();
    let payload_file = scratch.join(format!("payload-{}", &digest[7..19]));
    let signature_file = scratch.join(format!("signature-{}", &digest[7..19]));
    std::fs::write(&payload_file, &payload).unwrap();
    std::fs::write(&signature_file, &signature).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public_key)
        .arg("-signature")
        .arg(&signature_file)
        .arg(&payload_file)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "openssl does not verify the signature of {digest}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        payload["critical"]["type"],
        "cosign container image signature"
    );
    payload["critical"]["image"]["docker-manifest-digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A two-platform Alpine-like index with a real apk database in its shared base layer.
pub fn alpine_index() -> images::Built {
    let installed = b"C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:x86_64\nL:MIT\no:musl\n\nC:Q1def=\nP:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\no:busybox\n\n";
    let base = images::tar_layer(
        images::OCI_LAYER_GZIP,
        &[
            ("etc/os-release", b"ID=alpine\nVERSION_ID=3.20.3\n"),
            ("lib/apk/db/installed", installed),
        ],
    );
    let children = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let app = images::tar_layer(images::OCI_LAYER_GZIP, &[("app/arch", arch.as_bytes())]);
            images::oci_image("alpine", arch, vec![base.clone(), app])
        })
        .collect();
    images::index(images::OCI_INDEX, children)
}

/// The publisher signs with its own key, through openssl: cosign's simple signing layout.
pub fn publisher_signature(
    dir: &std::path::Path,
    key: &std::path::Path,
    identity: &str,
    subject: &houba::registry::Descriptor,
) -> images::Built {
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{identity}"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        subject.digest
    );
    let payload_file = dir.join("publisher-payload.json");
    let signature_file = dir.join("publisher.sig");
    std::fs::write(&payload_file, &payload).unwrap();
    let ok = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg("-out")
        .arg(&signature_file)
        .arg(&payload_file)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    use base64::Engine as _;
    let signature =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&signature_file).unwrap());
    let mut built = images::artifact(
        COSIGN_SIG,
        "application/vnd.dev.cosign.simplesigning.v1+json",
        payload.as_bytes(),
        Some(subject),
    );
    let mut manifest: serde_json::Value = serde_json::from_slice(&built.manifest).unwrap();
    manifest["layers"][0]["annotations"] =
        serde_json::json!({"dev.cosignproject.cosign/signature": signature});
    built.manifest = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    built
}
