//! Manifests and configs: read the base's raw JSON, write the new manifest, index and config.
//!
//! The base manifest and config are only read (as `serde_json::Value`); the config is edited
//! as a value so no field is dropped. The manifests houba creates go through typed structs and
//! are serialised canonically (sorted keys, no whitespace).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::BuildError;
use super::transform::{Changes, ResolvedStep};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Layer media types the engine reads, and the OCI type each is written as.
const LAYER_MEDIA_TYPES: &[(&str, &str)] = &[
    (
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar",
    ),
    (OCI_LAYER_GZIP, OCI_LAYER_GZIP),
    (
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        OCI_LAYER_GZIP,
    ),
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ),
    (
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ),
];

pub use crate::registry::digest::sha256_digest;

/// Serialises through `serde_json::Value` with every object's keys sorted.
pub(crate) fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    crate::stamp::canonical_json(&serde_json::to_value(value).unwrap_or(Value::Null))
}

/// A content descriptor in a manifest houba writes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DescriptorOut {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// The OCI image manifest houba writes for a rebuilt image.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageManifestOut<'a> {
    pub schema_version: u32,
    pub media_type: &'static str,
    pub config: DescriptorOut,
    pub layers: Vec<Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

/// The OCI image index houba writes for a rebuilt multi-platform image.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageIndexOut<'a> {
    pub schema_version: u32,
    pub media_type: &'static str,
    pub manifests: Vec<Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

/// What the engine needs from a base image manifest.
pub(crate) struct BaseManifest {
    /// Layer descriptors as they appear in the base (bottom-up), media types mapped to OCI.
    pub layers: Vec<Value>,
    pub layer_digests: Vec<String>,
}

fn unsupported(image: &str, detail: String) -> BuildError {
    BuildError::Unsupported {
        image: image.to_string(),
        detail,
    }
}

/// The media type a manifest declares, or the one its shape implies (older Docker manifests
/// rely on the `Content-Type` alone).
pub(crate) fn manifest_media_type(value: &Value) -> Option<&str> {
    if let Some(mt) = value.get("mediaType").and_then(Value::as_str) {
        return Some(mt);
    }
    if value.get("manifests").is_some() {
        Some(OCI_INDEX)
    } else if value.get("layers").is_some() {
        Some(OCI_MANIFEST)
    } else {
        None
    }
}

pub(crate) fn parse_json(image: &str, what: &str, bytes: &[u8]) -> Result<Value, BuildError> {
    serde_json::from_slice(bytes)
        .map_err(|e| unsupported(image, format!("the {what} is not valid JSON: {e}")))
}

pub(crate) fn read_base_manifest(
    image: &str,
    manifest: &Value,
) -> Result<BaseManifest, BuildError> {
    match manifest_media_type(manifest) {
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => {}
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => {
            return Err(unsupported(
                image,
                "this is an image index; rebuild it with rebuild_index, which rebuilds every platform"
                    .to_string(),
            ));
        }
        other => {
            return Err(unsupported(
                image,
                format!(
                    "manifest media type {} cannot be rebuilt (only OCI and Docker v2 image manifests)",
                    other.unwrap_or("(none)")
                ),
            ));
        }
    }
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| unsupported(image, "the manifest has no `layers` array".to_string()))?;
    let mut out = BaseManifest {
        layers: Vec::new(),
        layer_digests: Vec::new(),
    };
    for layer in layers {
        let media_type = layer.get("mediaType").and_then(Value::as_str).unwrap_or("");
        let digest = layer
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| unsupported(image, "a layer descriptor has no digest".to_string()))?;
        let Some((_, oci)) = LAYER_MEDIA_TYPES
            .iter()
            .find(|(from, _)| *from == media_type)
        else {
            return Err(unsupported(
                image,
                format!(
                    "layer {digest} has media type `{media_type}`, which is not a filesystem layer the engine can read"
                ),
            ));
        };
        let mut descriptor = layer.clone();
        descriptor["mediaType"] = Value::String(oci.to_string());
        out.layers.push(descriptor);
        out.layer_digests.push(digest.to_string());
    }
    Ok(out)
}

/// Applies the rebuild to the base config: a new diff_id, a history entry when the base keeps
/// history, the environment the steps set. Everything else is kept as it is.
pub(crate) fn edit_config(
    image: &str,
    mut config: Value,
    diff_id: &str,
    steps: &[ResolvedStep],
    changes: &Changes,
) -> Result<Value, BuildError> {
    let Some(root) = config.as_object_mut() else {
        return Err(unsupported(
            image,
            "the image config is not a JSON object".to_string(),
        ));
    };
    let created = root.get("created").cloned();
    let diff_ids = root
        .get_mut("rootfs")
        .and_then(|r| r.get_mut("diff_ids"))
        .and_then(Value::as_array_mut)
        .ok_or_else(|| unsupported(image, "the image config has no rootfs.diff_ids".to_string()))?;
    diff_ids.push(Value::String(diff_id.to_string()));

    if let Some(history) = root.get_mut("history").and_then(Value::as_array_mut)
        && !history.is_empty()
    {
        let described: Vec<String> = steps.iter().map(ResolvedStep::describe).collect();
        let mut entry = Map::new();
        if let Some(created) = created {
            entry.insert("created".to_string(), created);
        }
        entry.insert(
            "created_by".to_string(),
            Value::String(format!("houba: {}", described.join(" "))),
        );
        history.push(Value::Object(entry));
    }

    if !changes.env.is_empty() {
        let container = root
            .entry("config")
            .or_insert_with(|| Value::Object(Map::new()));
        if container.is_null() {
            *container = Value::Object(Map::new());
        }
        let Some(container) = container.as_object_mut() else {
            return Err(unsupported(
                image,
                "the image config's `config` is not an object".to_string(),
            ));
        };
        let env = container
            .entry("Env")
            .or_insert_with(|| Value::Array(Vec::new()));
        if env.is_null() {
            *env = Value::Array(Vec::new());
        }
        let Some(env) = env.as_array_mut() else {
            return Err(unsupported(
                image,
                "the image config's `config.Env` is not an array".to_string(),
            ));
        };
        for (key, value) in &changes.env {
            let assignment = Value::String(format!("{key}={value}"));
            let prefix = format!("{key}=");
            match env
                .iter_mut()
                .find(|v| v.as_str().is_some_and(|s| s.starts_with(&prefix)))
            {
                Some(existing) => *existing = assignment,
                None => env.push(assignment),
            }
        }
    }
    Ok(config)
}

/// Whether a config descriptor is one the engine can edit.
pub(crate) fn check_config_media_type(image: &str, manifest: &Value) -> Result<(), BuildError> {
    let mt = manifest
        .get("config")
        .and_then(|c| c.get("mediaType"))
        .and_then(Value::as_str)
        .unwrap_or(OCI_CONFIG);
    if mt == OCI_CONFIG || mt == DOCKER_CONFIG {
        Ok(())
    } else {
        Err(unsupported(
            image,
            format!(
                "config media type `{mt}` is not an image config; only container images can be rebuilt"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_history_or_env_gains_neither_history_nor_lost_fields() {
        let base = serde_json::json!({
            "architecture": "arm64",
            "config": null,
            "rootfs": {"type": "layers", "diff_ids": ["sha256:a"]},
            "x-vendor": {"kept": true}
        });
        let changes = Changes {
            env: BTreeMap::from([("TZ".to_string(), "Europe/Paris".to_string())]),
            ..Changes::default()
        };
        let steps = [ResolvedStep::SetTimezone("Europe/Paris".to_string())];
        let edited = edit_config("img", base, "sha256:b", &steps, &changes).unwrap();
        assert_eq!(
            edited,
            serde_json::json!({
                "architecture": "arm64",
                "config": {"Env": ["TZ=Europe/Paris"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:a", "sha256:b"]},
                "x-vendor": {"kept": true}
            })
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": null}});
        assert_eq!(
            String::from_utf8(canonical_json(&value)).unwrap(),
            r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#
        );
    }
}
