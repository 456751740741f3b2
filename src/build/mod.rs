//! The native rebuild engine: applies hardening steps to an image as one new, reproducible
//! OCI layer, without a daemon or a Dockerfile.
//!
//! Flow: the steps say which paths they need ([`transform`]); a merged view of the base's
//! layers reads just those ([`rootfs`]); the steps edit them; the changed entries become one
//! deterministic layer ([`layer`]); the config gains its diff_id and the new manifest is
//! written ([`image`]). The bytes produced are a pure function of the base bytes, the resolved
//! recipe and [`ENGINE_FORMAT_VERSION`].
//!
//! The engine reads blobs through [`BlobSource`] and knows nothing of registries.

pub mod content;
pub(crate) mod decompress;
pub mod dockerfile;
mod error;
mod image;
mod layer;
pub mod layout;
pub(crate) mod rootfs;
mod transform;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

pub use error::BuildError;
pub use image::sha256_digest;
pub use layer::NewBlob;

use crate::config::{CaSource, PackageMirror};
use crate::policy::resolved::TransformStep;
use image::{
    BaseManifest, DescriptorOut, ImageIndexOut, ImageManifestOut, OCI_CONFIG, OCI_INDEX,
    OCI_LAYER_GZIP, OCI_MANIFEST, canonical_json, parse_json,
};
use rootfs::{Entry, EntryKind, LayerBlob, MergedView};

/// Version of the engine's output format. Part of every recipe digest: bump it whenever the
/// bytes the engine writes for the same inputs change (layer layout, compression, config
/// edits), so that stamped images are rebuilt.
pub const ENGINE_FORMAT_VERSION: &str = "houba-build/1";

/// Where the engine reads blobs (layers, configs, and child manifests of an index) from.
pub trait BlobSource: Send + Sync {
    /// Opens the blob (or child manifest) `digest` for reading.
    fn open_blob(&self, digest: &str) -> std::io::Result<Box<dyn Read + Send>>;
}

/// The transform rosters of the settings, by entry name.
#[derive(Debug, Clone, Default)]
pub struct TransformRosters {
    /// CA certificates, by roster name.
    pub ca_certs: BTreeMap<String, CaSource>,
    /// Package mirrors, by roster name.
    pub package_mirrors: BTreeMap<String, PackageMirror>,
}

/// A rebuilt image: the new manifest and config (to upload as they are) and the new layer.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The new image manifest (canonical JSON).
    pub manifest: Vec<u8>,
    /// Its media type (always an OCI image manifest).
    pub manifest_media_type: String,
    /// The new image config.
    pub config: Vec<u8>,
    /// The one layer the steps added.
    pub new_layer: NewBlob,
    /// How many of the base's layers were read (top-down) before every asked path was known.
    pub layers_read: usize,
}

impl BuiltImage {
    /// `sha256:` of the new manifest.
    pub fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest)
    }

    /// `sha256:` of the new config.
    pub fn config_digest(&self) -> String {
        sha256_digest(&self.config)
    }
}

/// One platform of a rebuilt index.
#[derive(Debug, Clone)]
pub struct BuiltPlatform {
    /// Digest of the base image manifest this one was rebuilt from.
    pub base_digest: String,
    /// The base descriptor's `platform`, as it was.
    pub platform: Option<Value>,
    /// The rebuilt image of this platform.
    pub image: BuiltImage,
}

/// An index entry that was deliberately not carried over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedEntry {
    /// The entry's digest.
    pub digest: String,
    /// The entry's media type.
    pub media_type: String,
    /// Why it was dropped (an attestation, a platform the import filters out, …).
    pub reason: String,
}

/// A rebuilt multi-platform image.
#[derive(Debug, Clone)]
pub struct BuiltIndex {
    /// The new index (canonical JSON).
    pub index: Vec<u8>,
    /// Its media type.
    pub index_media_type: String,
    /// Upload these (blobs, then manifests) before the index.
    pub platforms: Vec<BuiltPlatform>,
    /// Entries of the base index not carried over, with the reason.
    pub dropped: Vec<DroppedEntry>,
}

impl BuiltIndex {
    /// `sha256:` of the new index.
    pub fn index_digest(&self) -> String {
        sha256_digest(&self.index)
    }
}

/// The recipe digest of a rebuild (`io.houba.recipe`): `sha256:` over the canonical resolved
/// recipe, the one value the plan compares and the stamp records. It covers the base digest,
/// [`ENGINE_FORMAT_VERSION`], the platform filter (which changes the bytes placed), the
/// Dockerfile rendering version when a step runs a command, and each step with exactly the
/// roster values it uses (the certificates' PEM bytes; the mirror URLs of the package
/// managers it rewrites). Equal digests mean equal output bytes. Pure; fails when a step names
/// a roster entry that is missing or invalid.
pub fn recipe_digest(
    steps: &[TransformStep],
    platforms: &[String],
    rosters: &TransformRosters,
    base_digest: &str,
) -> Result<String, BuildError> {
    let resolved = transform::resolve_steps(base_digest, steps, rosters)?;
    let mut recipe = serde_json::json!({
        "engine": ENGINE_FORMAT_VERSION,
        "base": base_digest,
        "steps": resolved.iter().map(|s| s.canonical()).collect::<Vec<_>>(),
        "platforms": platforms,
    });
    if steps.iter().any(TransformStep::runs_command) {
        // Built from a rendered Dockerfile: a change in the rendering must rebuild.
        recipe["dockerfile"] = serde_json::Value::from(dockerfile::RENDER_VERSION);
    }
    Ok(sha256_digest(&canonical_json(&recipe)))
}

/// Rebuilds one image (an OCI or Docker v2 image manifest) with `steps`. The result is an OCI
/// manifest carrying `annotations`; the new layer is left in `workdir`.
#[allow(clippy::too_many_arguments)]
pub fn rebuild_image(
    image_label: &str,
    manifest: &[u8],
    config: &[u8],
    blobs: &dyn BlobSource,
    steps: &[TransformStep],
    rosters: &TransformRosters,
    annotations: &BTreeMap<String, String>,
    workdir: &Path,
) -> Result<BuiltImage, BuildError> {
    let resolved = transform::resolve_steps(image_label, steps, rosters)?;
    rebuild_resolved(
        image_label,
        manifest,
        config,
        blobs,
        &resolved,
        annotations,
        workdir,
    )
}

fn rebuild_resolved(
    image: &str,
    manifest: &[u8],
    config: &[u8],
    blobs: &dyn BlobSource,
    steps: &[transform::ResolvedStep],
    annotations: &BTreeMap<String, String>,
    workdir: &Path,
) -> Result<BuiltImage, BuildError> {
    if steps.is_empty() {
        return Err(BuildError::Unsupported {
            image: image.to_string(),
            detail: "no transform steps: an image without steps is copied, not rebuilt".to_string(),
        });
    }
    let manifest_value = parse_json(image, "manifest", manifest)?;
    image::check_config_media_type(image, &manifest_value)?;
    let BaseManifest {
        layers,
        layer_digests,
    } = image::read_base_manifest(image, &manifest_value)?;
    let config_value = parse_json(image, "image config", config)?;
    let diff_ids = config_value
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if diff_ids != layers.len() {
        return Err(BuildError::Unsupported {
            image: image.to_string(),
            detail: format!(
                "the config lists {diff_ids} diff_ids for {} layers; the base image is inconsistent",
                layers.len()
            ),
        });
    }

    let layer_blobs: Vec<LayerBlob<'_>> = layer_digests
        .iter()
        .map(|d| LayerBlob { digest: d })
        .collect();
    let view = MergedView::read(image, &layer_blobs, blobs, transform::query_for(steps))?;
    let changes = transform::apply_steps(image, &view, steps)?;
    let entries = with_parent_dirs(image, &view, &changes.entries)?;

    let mtime = config_value
        .get("created")
        .and_then(Value::as_str)
        .and_then(crate::oci::rfc3339_seconds)
        .unwrap_or(0);
    let new_layer = layer::write_layer(image, &entries, mtime, workdir)?;

    let new_config = image::edit_config(image, config_value, &new_layer.diff_id, steps, &changes)?;
    let config_bytes = serde_json::to_vec(&new_config).map_err(|e| BuildError::Unsupported {
        image: image.to_string(),
        detail: format!("the edited config cannot be serialised: {e}"),
    })?;

    let mut all_layers = layers;
    all_layers.push(
        serde_json::to_value(DescriptorOut {
            media_type: OCI_LAYER_GZIP.to_string(),
            digest: new_layer.digest.clone(),
            size: new_layer.size,
        })
        .unwrap_or(Value::Null),
    );
    let manifest_out = ImageManifestOut {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        config: DescriptorOut {
            media_type: OCI_CONFIG.to_string(),
            digest: sha256_digest(&config_bytes),
            size: config_bytes.len() as u64,
        },
        layers: all_layers,
        annotations,
    };
    Ok(BuiltImage {
        manifest: canonical_json(&manifest_out),
        manifest_media_type: OCI_MANIFEST.to_string(),
        config: config_bytes,
        new_layer,
        layers_read: view.layers_read,
    })
}

/// The changed entries plus a header for every parent directory, copied from the base.
fn with_parent_dirs(
    image: &str,
    view: &MergedView,
    changed: &BTreeMap<String, Entry>,
) -> Result<BTreeMap<String, Entry>, BuildError> {
    let mut all = changed.clone();
    for path in changed.keys() {
        let mut dir = rootfs::parent(path);
        while !dir.is_empty() {
            if !all.contains_key(dir) {
                match view.entry(dir) {
                    Some(e) if e.kind == EntryKind::Dir => {
                        all.insert(dir.to_string(), e.clone());
                    }
                    _ => {
                        return Err(BuildError::Unsupported {
                            image: image.to_string(),
                            detail: format!(
                                "/{dir}, parent of /{path}, is not a directory in the base image"
                            ),
                        });
                    }
                }
            }
            dir = rootfs::parent(dir);
        }
    }
    Ok(all)
}

fn read_verified(
    image: &str,
    blobs: &dyn BlobSource,
    digest: &str,
    what: &str,
) -> Result<Vec<u8>, BuildError> {
    let blob_err = |source| BuildError::Blob {
        image: image.to_string(),
        digest: digest.to_string(),
        error: source,
    };
    let mut bytes = Vec::new();
    blobs
        .open_blob(digest)
        .and_then(|mut r| r.read_to_end(&mut bytes))
        .map_err(blob_err)?;
    let actual = sha256_digest(&bytes);
    if actual != digest {
        return Err(BuildError::Unsupported {
            image: image.to_string(),
            detail: format!(
                "the {what} {digest} read back as {actual}; the blob source is corrupt"
            ),
        });
    }
    Ok(bytes)
}

/// Rebuilds every platform of an image index (OCI or Docker manifest list) and writes a new
/// OCI index carrying `annotations` (also set on every rebuilt platform manifest). Attestation
/// manifests (they attest the base, not the rebuild) and entries that are not image manifests
/// are dropped and reported in [`BuiltIndex::dropped`].
#[allow(clippy::too_many_arguments)]
pub fn rebuild_index(
    image_label: &str,
    index: &[u8],
    blobs: &dyn BlobSource,
    steps: &[TransformStep],
    rosters: &TransformRosters,
    annotations: &BTreeMap<String, String>,
    workdir: &Path,
) -> Result<BuiltIndex, BuildError> {
    let resolved = transform::resolve_steps(image_label, steps, rosters)?;
    let index_value = parse_json(image_label, "index", index)?;
    let entries = index_value
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| BuildError::Unsupported {
            image: image_label.to_string(),
            detail: "the index has no `manifests` array".to_string(),
        })?;
    let mut platforms = Vec::new();
    let mut dropped = Vec::new();
    let mut new_entries = Vec::new();
    for entry in entries {
        let digest = entry
            .get("digest")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let media_type = entry
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let reference_type = entry
            .get("annotations")
            .and_then(|a| a.get("vnd.docker.reference.type"))
            .and_then(Value::as_str);
        if reference_type == Some("attestation-manifest") {
            dropped.push(DroppedEntry {
                digest,
                media_type,
                reason: "attestation manifest: it attests the base image, not the rebuilt one"
                    .to_string(),
            });
            continue;
        }
        if media_type != OCI_MANIFEST && media_type != image::DOCKER_MANIFEST {
            dropped.push(DroppedEntry {
                reason: format!("`{media_type}` is not an image manifest; only images are rebuilt"),
                digest,
                media_type,
            });
            continue;
        }
        let platform = entry.get("platform").cloned();
        let label = match platform.as_ref().and_then(platform_label) {
            Some(p) => format!("{image_label} [{p}]"),
            None => format!("{image_label} [{digest}]"),
        };
        let manifest = read_verified(&label, blobs, &digest, "manifest")?;
        let manifest_value = parse_json(&label, "manifest", &manifest)?;
        let config_digest = manifest_value
            .get("config")
            .and_then(|c| c.get("digest"))
            .and_then(Value::as_str)
            .ok_or_else(|| BuildError::Unsupported {
                image: label.clone(),
                detail: "the manifest has no config descriptor".to_string(),
            })?;
        let config = read_verified(&label, blobs, config_digest, "config")?;
        let built = rebuild_resolved(
            &label,
            &manifest,
            &config,
            blobs,
            &resolved,
            annotations,
            workdir,
        )?;
        let mut descriptor = serde_json::Map::new();
        descriptor.insert("mediaType".into(), Value::String(OCI_MANIFEST.to_string()));
        descriptor.insert("digest".into(), Value::String(built.manifest_digest()));
        descriptor.insert("size".into(), Value::from(built.manifest.len() as u64));
        for key in ["platform", "annotations"] {
            if let Some(v) = entry.get(key) {
                descriptor.insert(key.into(), v.clone());
            }
        }
        new_entries.push(Value::Object(descriptor));
        platforms.push(BuiltPlatform {
            base_digest: digest,
            platform,
            image: built,
        });
    }
    if platforms.is_empty() {
        return Err(BuildError::Unsupported {
            image: image_label.to_string(),
            detail: "the index holds no image manifest to rebuild".to_string(),
        });
    }
    let index_out = ImageIndexOut {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests: new_entries,
        annotations,
    };
    Ok(BuiltIndex {
        index: canonical_json(&index_out),
        index_media_type: OCI_INDEX.to_string(),
        platforms,
        dropped,
    })
}

fn platform_label(platform: &Value) -> Option<String> {
    let os = platform.get("os")?.as_str()?;
    let arch = platform.get("architecture")?.as_str()?;
    Some(match platform.get("variant").and_then(Value::as_str) {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    })
}

/// The media type of a manifest's bytes: `mediaType` when present, else inferred from its
/// shape. Lets callers choose between [`rebuild_image`] and [`rebuild_index`].
pub fn manifest_media_type(manifest: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(manifest).ok()?;
    image::manifest_media_type(&value).map(str::to_string)
}

#[cfg(test)]
mod recipe_tests {
    use super::*;
    use crate::policy::resolved::PackageManager;

    fn rosters(apt: &str) -> TransformRosters {
        TransformRosters {
            ca_certs: BTreeMap::new(),
            package_mirrors: BTreeMap::from([(
                "corp".to_string(),
                PackageMirror {
                    apt: Some(apt.to_string()),
                    apk: Some("https://apk.corp.example/alpine".to_string()),
                    yum: Some("https://yum.corp.example/ubi".to_string()),
                },
            )]),
        }
    }

    fn rewrite(managers: &[PackageManager]) -> Vec<TransformStep> {
        vec![
            TransformStep::RewritePackageSources {
                mirror: "corp".into(),
                managers: managers.to_vec(),
            },
            TransformStep::SetTimezone {
                zone: "Europe/Paris".into(),
            },
        ]
    }

    #[test]
    fn a_mirror_change_moves_only_the_recipes_that_use_it() {
        let (before, after) = (
            rosters("https://deb.corp.example/debian"),
            rosters("https://deb2.corp.example/debian"),
        );
        let recipe = |steps: &[TransformStep], r: &TransformRosters| {
            recipe_digest(steps, &[], r, "sha256:base").unwrap()
        };
        let debian = rewrite(&[PackageManager::Apt]);
        let alpine = rewrite(&[PackageManager::Apk]);
        let ubi = rewrite(&[PackageManager::Yum]);
        assert_ne!(recipe(&debian, &before), recipe(&debian, &after));
        assert_eq!(recipe(&alpine, &before), recipe(&alpine, &after));
        assert_eq!(recipe(&ubi, &before), recipe(&ubi, &after));
        // Without `managers` the step may rewrite any of them: every URL is in its recipe.
        let any = rewrite(&[]);
        assert_ne!(recipe(&any, &before), recipe(&any, &after));
        // The platform filter and a Dockerfile build are part of the one recipe.
        assert_ne!(
            recipe(&alpine, &before),
            recipe_digest(&alpine, &["linux/amd64".into()], &before, "sha256:base").unwrap()
        );
    }

    #[test]
    fn a_named_manager_the_mirror_lacks_is_an_error() {
        let mut r = rosters("https://deb.corp.example/debian");
        r.package_mirrors.get_mut("corp").unwrap().yum = None;
        let err = recipe_digest(&rewrite(&[PackageManager::Yum]), &[], &r, "sha256:base")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no `yum` URL"), "{err}");
    }
}
