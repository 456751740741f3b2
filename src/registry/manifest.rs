//! Reading manifests as JSON values: what they reference, without re-serialising them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Descriptor;

/// Media types of manifests that list other manifests.
pub const INDEX_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// What a manifest points at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Child manifests (an index's `manifests`).
    pub manifests: Vec<Descriptor>,
    /// Blobs: config, layers (and an artifact manifest's `blobs`). Foreign layers that live
    /// at external URLs are left out: registries do not hold them.
    pub blobs: Vec<Descriptor>,
}

/// A descriptor object (`mediaType`, `digest`, `size`) read from JSON.
pub fn descriptor_from_json(value: &Value) -> Option<Descriptor> {
    Some(Descriptor {
        media_type: value.get("mediaType")?.as_str()?.to_owned(),
        digest: value.get("digest")?.as_str()?.to_owned(),
        size: value.get("size")?.as_u64()?,
    })
}

/// Parse manifest bytes as JSON, or explain why they are not a manifest.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
    if !value.is_object() {
        return Err("manifest is not a JSON object".into());
    }
    Ok(value)
}

/// The media type a manifest declares, else the one the transport reported.
pub fn media_type_of(value: &Value, reported: &str) -> String {
    value
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(reported)
        .to_owned()
}

/// Everything a manifest references.
pub fn references(value: &Value) -> Result<References, String> {
    let mut refs = References::default();
    let list = |key: &str| -> Result<Vec<Descriptor>, String> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .filter(|item| !is_foreign(item))
                .map(|item| {
                    descriptor_from_json(item)
                        .ok_or_else(|| format!("malformed descriptor in `{key}`"))
                })
                .collect(),
            Some(_) => Err(format!("`{key}` is not an array")),
        }
    };
    refs.manifests = list("manifests")?;
    if let Some(config) = value.get("config") {
        refs.blobs
            .push(descriptor_from_json(config).ok_or("malformed config descriptor")?);
    }
    refs.blobs.extend(list("layers")?);
    refs.blobs.extend(list("blobs")?);
    Ok(refs)
}

/// A layer that lives at external URLs (Docker foreign layers): never copied.
fn is_foreign(item: &Value) -> bool {
    item.get("urls")
        .and_then(Value::as_array)
        .is_some_and(|urls| !urls.is_empty())
        && item
            .get("mediaType")
            .and_then(Value::as_str)
            .is_some_and(|mt| mt.contains("foreign") || mt.contains("nondistributable"))
}

/// The artifact type a referrer listing shows for a manifest: its `artifactType`, else its
/// config media type (OCI 1.1 rule).
pub fn artifact_type(value: &Value) -> Option<String> {
    value
        .get("artifactType")
        .and_then(Value::as_str)
        .or_else(|| value.get("config")?.get("mediaType")?.as_str())
        .map(str::to_owned)
}

/// String annotations of a manifest or descriptor.
pub fn annotations(value: &Value) -> BTreeMap<String, String> {
    value
        .get("annotations")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_of_manifest_and_index() {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/x.custom", "digest": "sha256:aa", "size": 2},
            "layers": [
                {"mediaType": "application/x.layer", "digest": "sha256:bb", "size": 3},
                {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                 "digest": "sha256:cc", "size": 4, "urls": ["https://example.invalid/l"]}
            ]
        });
        let refs = references(&manifest).unwrap();
        assert!(refs.manifests.is_empty());
        let digests: Vec<_> = refs.blobs.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:aa", "sha256:bb"]);
        assert_eq!(
            artifact_type(&manifest).as_deref(),
            Some("application/x.custom")
        );

        let index =
            json!({"manifests": [{"mediaType": OCI_MANIFEST, "digest": "sha256:dd", "size": 9}]});
        assert_eq!(references(&index).unwrap().manifests[0].size, 9);
        assert!(references(&json!({"layers": [{"digest": 1}]})).is_err());
    }
}
