//! Small deterministic test images built in code, and pushing them through the `Registry`
//! trait. Same inputs, same bytes, same digests: every run and every machine.
//!
//! Self-contained (depends only on houba and its dependencies) so the transfer example can
//! include it too.

#![allow(dead_code)]

use std::io::Write;

use bytes::Bytes;
use futures::stream;
use houba::registry::digest::sha256_digest;
use houba::registry::{ByteStream, Descriptor, Registry, Result};
use serde_json::{Value, json};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A blob with its media type.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub bytes: Bytes,
    /// For layers: sha256 of the uncompressed tar.
    pub diff_id: Option<String>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: impl Into<Bytes>) -> Self {
        Blob {
            media_type: media_type.to_owned(),
            bytes: bytes.into(),
            diff_id: None,
        }
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: sha256_digest(&self.bytes),
            size: self.bytes.len() as u64,
        }
    }

    fn descriptor_json(&self) -> Value {
        let d = self.descriptor();
        json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size})
    }
}

/// A built artifact: a manifest (or index) with everything it needs.
#[derive(Debug, Clone)]
pub struct Built {
    pub media_type: String,
    pub manifest: Bytes,
    pub blobs: Vec<Blob>,
    pub children: Vec<Built>,
}

impl Built {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: sha256_digest(&self.manifest),
            size: self.manifest.len() as u64,
        }
    }

    pub fn digest(&self) -> String {
        sha256_digest(&self.manifest)
    }
}

/// A gzip-compressed tar layer holding `files` (path, content), with fixed metadata.
pub fn tar_layer(media_type: &str, files: &[(&str, &[u8])]) -> Blob {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder
            .append_data(&mut header, path, *content)
            .expect("tar in memory");
    }
    let tar = builder.into_inner().expect("tar in memory");
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip in memory");
    Blob {
        media_type: media_type.to_owned(),
        bytes: Bytes::from(gz.finish().expect("gzip in memory")),
        diff_id: Some(sha256_digest(&tar)),
    }
}

/// Deterministic pseudo-random bytes (splitmix64), incompressible like real layer data.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut state = seed;
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A real layer (gzip-compressed tar) whose one file holds `len` noise bytes: as
/// incompressible as [`noise_layer`], and readable by whatever looks inside layers (SBOMs).
pub fn noise_tar_layer(media_type: &str, seed: u64, len: usize) -> Blob {
    let name = format!("noise/{seed}");
    tar_layer(media_type, &[(name.as_str(), &noise(seed, len))])
}

/// An opaque layer of `len` noise bytes (registries do not look inside layers).
pub fn noise_layer(media_type: &str, seed: u64, len: usize) -> Blob {
    Blob::new(media_type, noise(seed, len))
}

fn image_config(config_media_type: &str, architecture: &str, layers: &[Blob], label: &str) -> Blob {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| l.diff_id.clone().unwrap_or_else(|| sha256_digest(&l.bytes)))
        .collect();
    let config = json!({
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": {"test.image": label}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "houba test image generator"}],
    });
    Blob::new(
        config_media_type,
        serde_json::to_vec(&config).expect("json"),
    )
}

fn single(
    media_type: &str,
    config_media_type: &str,
    architecture: &str,
    layers: Vec<Blob>,
    label: &str,
    annotations: Option<Value>,
) -> Built {
    let config = image_config(config_media_type, architecture, &layers, label);
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.descriptor_json(),
        "layers": layers.iter().map(Blob::descriptor_json).collect::<Vec<_>>(),
    });
    if let Some(annotations) = annotations {
        manifest["annotations"] = annotations;
    }
    let mut blobs = vec![config];
    blobs.extend(layers);
    Built {
        media_type: media_type.to_owned(),
        manifest: Bytes::from(serde_json::to_vec(&manifest).expect("json")),
        blobs,
        children: Vec::new(),
    }
}

/// An OCI image for one architecture.
pub fn oci_image(label: &str, architecture: &str, layers: Vec<Blob>) -> Built {
    single(OCI_MANIFEST, OCI_CONFIG, architecture, layers, label, None)
}

/// An OCI image carrying manifest annotations.
pub fn oci_image_annotated(label: &str, layers: Vec<Blob>, annotations: Value) -> Built {
    single(
        OCI_MANIFEST,
        OCI_CONFIG,
        "amd64",
        layers,
        label,
        Some(annotations),
    )
}

/// A Docker v2 schema 2 image.
pub fn docker_image(label: &str, architecture: &str, layers: Vec<Blob>) -> Built {
    single(
        DOCKER_MANIFEST,
        DOCKER_CONFIG,
        architecture,
        layers,
        label,
        None,
    )
}

/// An index over per-platform images (OCI index or Docker manifest list by `media_type`).
pub fn index(media_type: &str, children: Vec<Built>) -> Built {
    let manifests: Vec<Value> = children
        .iter()
        .map(|child| {
            let d = child.descriptor();
            let arch = serde_json::from_slice::<Value>(&child.blobs[0].bytes)
                .ok()
                .and_then(|c| c.get("architecture").cloned())
                .unwrap_or(Value::String("unknown".into()));
            json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size,
                   "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    let manifest = json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests});
    Built {
        media_type: media_type.to_owned(),
        manifest: Bytes::from(serde_json::to_vec(&manifest).expect("json")),
        blobs: Vec::new(),
        children,
    }
}

/// A small multi-arch (amd64 + arm64) OCI image sharing a base layer.
pub fn multi_arch(label: &str) -> Built {
    let base = tar_layer(OCI_LAYER_GZIP, &[("etc/os-release", b"ID=houba-test\n")]);
    let children = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let app = tar_layer(
                OCI_LAYER_GZIP,
                &[
                    ("app/arch", arch.as_bytes()),
                    ("app/label", label.as_bytes()),
                ],
            );
            oci_image(label, arch, vec![base.clone(), app])
        })
        .collect();
    index(OCI_INDEX, children)
}

/// An OCI artifact (custom `artifactType`, empty config, arbitrary layer media type),
/// optionally a referrer of `subject`.
pub fn artifact(
    artifact_type: &str,
    layer_media_type: &str,
    payload: &[u8],
    subject: Option<&Descriptor>,
) -> Built {
    let config = Blob::new(OCI_EMPTY, &b"{}"[..]);
    let layer = Blob::new(layer_media_type, Bytes::copy_from_slice(payload));
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.descriptor_json(),
        "layers": [layer.descriptor_json()],
        "annotations": {"org.opencontainers.image.title": "payload"},
    });
    if let Some(subject) = subject {
        manifest["subject"] = json!({"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size});
    }
    Built {
        media_type: OCI_MANIFEST.to_owned(),
        manifest: Bytes::from(serde_json::to_vec(&manifest).expect("json")),
        blobs: vec![config, layer],
        children: Vec::new(),
    }
}

/// A stream yielding `bytes` in one chunk.
pub fn once_stream(bytes: Bytes) -> ByteStream {
    Box::pin(stream::iter([Ok(bytes)]))
}

/// Push blobs and child manifests (by digest), then the manifest under `reference` (a tag,
/// or its own digest). Returns its descriptor.
pub async fn push(
    registry: &dyn Registry,
    repository: &str,
    reference: &str,
    built: &Built,
) -> Result<Descriptor> {
    push_content(registry, repository, built).await?;
    registry
        .put_manifest(
            repository,
            reference,
            &built.media_type,
            built.manifest.clone(),
        )
        .await?;
    Ok(built.descriptor())
}

fn push_content<'a>(
    registry: &'a dyn Registry,
    repository: &'a str,
    built: &'a Built,
) -> futures::future::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        for blob in &built.blobs {
            let d = blob.descriptor();
            if !registry.blob_exists(repository, &d.digest).await? {
                registry
                    .put_blob(
                        repository,
                        &d.digest,
                        d.size,
                        once_stream(blob.bytes.clone()),
                    )
                    .await?;
            }
        }
        for child in &built.children {
            push_content(registry, repository, child).await?;
            registry
                .put_manifest(
                    repository,
                    &child.digest(),
                    &child.media_type,
                    child.manifest.clone(),
                )
                .await?;
        }
        Ok(())
    })
}

/// `push` under a tag, by name: the entry point other tests use.
pub async fn push_image(
    registry: &dyn Registry,
    repository: &str,
    tag: &str,
    built: &Built,
) -> Result<Descriptor> {
    push(registry, repository, tag, built).await
}

/// Push a referrer artifact through `attach_referrer` (its blobs first).
pub async fn attach(
    registry: &dyn Registry,
    repository: &str,
    subject: &Descriptor,
    referrer: &Built,
) -> Result<String> {
    push_content(registry, repository, referrer).await?;
    registry
        .attach_referrer(
            repository,
            subject,
            &referrer.media_type,
            referrer.manifest.clone(),
        )
        .await
}
