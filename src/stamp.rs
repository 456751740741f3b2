//! The provenance stamp: the OCI annotations houba writes on every manifest it places.
//!
//! The stamp is the product: "which of our images derive from base digest X, and who owns
//! them?" is one query over these annotations. The contract (key names, value formats) is fixed
//! here and nowhere else; the prefix of houba's own keys is configurable (`io.houba` by default).
//!
//! Determinism: no value here comes from the wall clock. `created` and `revision` are only ever
//! propagated from the upstream manifest.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// OCI annotation: `<registry>/<repository>` of the upstream.
pub const OCI_SOURCE: &str = "org.opencontainers.image.source";
/// OCI annotation: `<registry>/<repository>:<tag>` of the base image.
pub const OCI_BASE_NAME: &str = "org.opencontainers.image.base.name";
/// OCI annotation: digest of the base image.
pub const OCI_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// OCI annotation: the image's title.
pub const OCI_TITLE: &str = "org.opencontainers.image.title";
/// OCI annotation: who distributes the image.
pub const OCI_VENDOR: &str = "org.opencontainers.image.vendor";
/// OCI annotation: the source revision (propagated from the upstream).
pub const OCI_REVISION: &str = "org.opencontainers.image.revision";
/// OCI annotation: when the image was created (propagated from the upstream; houba writes no clock value).
pub const OCI_CREATED: &str = "org.opencontainers.image.created";

pub use crate::oci::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

/// Everything the stamp says about one placed artifact.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    /// `<registry>/<repository>` of the upstream.
    pub source: String,
    /// `<registry>/<repository>:<tag>` of the upstream.
    pub base_name: String,
    /// Upstream digest (the index digest when multi-platform).
    pub base_digest: String,
    /// `org.opencontainers.image.title`: the destination repository's name.
    pub title: String,
    /// `org.opencontainers.image.vendor`, when the import names one.
    pub vendor: Option<String>,
    /// The upstream's `org.opencontainers.image.revision`, propagated.
    pub revision: Option<String>,
    /// The upstream's `org.opencontainers.image.created`, propagated.
    pub created: Option<String>,
    /// The policy that placed the image.
    pub policy: String,
    /// Its import.
    pub import: String,
    /// Its variant.
    pub variant: String,
    /// The owners (Backstage entity refs).
    pub owners: Vec<String>,
    /// `image`, `helm-chart`, … (the policy's `artifactType`).
    pub artifact_type: String,
    /// Rebuilds only: transform step names.
    pub transform_steps: Vec<String>,
    /// Rebuilds only: `sha256:` recipe digest.
    pub recipe: Option<String>,
    /// Set on tags a `mark`-mode prune retired.
    pub pruned: bool,
}

impl Stamp {
    /// The annotations for this stamp, under the given prefix for houba's own keys.
    pub fn to_annotations(&self, prefix: &str) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        a.insert(OCI_SOURCE.to_string(), self.source.clone());
        a.insert(OCI_BASE_NAME.to_string(), self.base_name.clone());
        a.insert(OCI_BASE_DIGEST.to_string(), self.base_digest.clone());
        a.insert(OCI_TITLE.to_string(), self.title.clone());
        if let Some(v) = &self.vendor {
            a.insert(OCI_VENDOR.to_string(), v.clone());
        }
        if let Some(v) = &self.revision {
            a.insert(OCI_REVISION.to_string(), v.clone());
        }
        if let Some(v) = &self.created {
            a.insert(OCI_CREATED.to_string(), v.clone());
        }
        a.insert(format!("{prefix}.policy"), self.policy.clone());
        a.insert(format!("{prefix}.import"), self.import.clone());
        a.insert(format!("{prefix}.variant"), self.variant.clone());
        a.insert(format!("{prefix}.owners"), self.owners.join(","));
        a.insert(
            format!("{prefix}.artifact.type"),
            self.artifact_type.clone(),
        );
        if !self.transform_steps.is_empty() {
            a.insert(
                format!("{prefix}.transform.steps"),
                self.transform_steps.join(","),
            );
        }
        if let Some(r) = &self.recipe {
            a.insert(format!("{prefix}.recipe"), r.clone());
        }
        if self.pruned {
            a.insert(format!("{prefix}.pruned"), "true".to_string());
        }
        a
    }

    /// Read a stamp back from manifest annotations. `None` when the manifest carries no
    /// houba identity (`<prefix>.policy` absent): unstamped content.
    pub fn from_annotations(annotations: &BTreeMap<String, String>, prefix: &str) -> Option<Stamp> {
        let get = |k: &str| annotations.get(k).cloned();
        let own = |k: &str| annotations.get(&format!("{prefix}.{k}")).cloned();
        let policy = own("policy")?;
        Some(Stamp {
            source: get(OCI_SOURCE).unwrap_or_default(),
            base_name: get(OCI_BASE_NAME).unwrap_or_default(),
            base_digest: get(OCI_BASE_DIGEST).unwrap_or_default(),
            title: get(OCI_TITLE).unwrap_or_default(),
            vendor: get(OCI_VENDOR),
            revision: get(OCI_REVISION),
            created: get(OCI_CREATED),
            policy,
            import: own("import").unwrap_or_default(),
            variant: own("variant").unwrap_or_default(),
            owners: own("owners")
                .map(|s| {
                    s.split(',')
                        .filter(|o| !o.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            artifact_type: own("artifact.type").unwrap_or_default(),
            transform_steps: own("transform.steps")
                .map(|s| {
                    s.split(',')
                        .filter(|o| !o.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            recipe: own("recipe"),
            pruned: own("pruned").as_deref() == Some("true"),
        })
    }

    /// Find the stamp under the configured prefix, or under any other prefix that carries a
    /// complete houba identity (`<p>.policy`, `<p>.import`, `<p>.variant`): a changed
    /// `label_prefix` must lead to a restamp, not to "unstamped" drift. Returns the prefix found.
    pub fn detect(annotations: &BTreeMap<String, String>, prefix: &str) -> Option<(Stamp, String)> {
        if let Some(s) = Stamp::from_annotations(annotations, prefix) {
            return Some((s, prefix.to_string()));
        }
        annotations.keys().find_map(|k| {
            let p = k.strip_suffix(".policy")?;
            let complete = annotations.contains_key(&format!("{p}.import"))
                && annotations.contains_key(&format!("{p}.variant"));
            if !complete {
                return None;
            }
            Stamp::from_annotations(annotations, p).map(|s| (s, p.to_string()))
        })
    }

    /// The stamp fields that may be rewritten in place (a `restamp`) without touching content,
    /// as `(attribute, before, after)` triples for the plan.
    pub fn differences(&self, desired: &Stamp) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut cmp = |name: &str, a: String, b: String| {
            if a != b {
                out.push((name.to_string(), a, b));
            }
        };
        cmp("source", self.source.clone(), desired.source.clone());
        cmp(
            "base.name",
            self.base_name.clone(),
            desired.base_name.clone(),
        );
        cmp(
            "base.digest",
            self.base_digest.clone(),
            desired.base_digest.clone(),
        );
        cmp("title", self.title.clone(), desired.title.clone());
        cmp(
            "vendor",
            self.vendor.clone().unwrap_or_default(),
            desired.vendor.clone().unwrap_or_default(),
        );
        cmp(
            "revision",
            self.revision.clone().unwrap_or_default(),
            desired.revision.clone().unwrap_or_default(),
        );
        cmp(
            "created",
            self.created.clone().unwrap_or_default(),
            desired.created.clone().unwrap_or_default(),
        );
        cmp("policy", self.policy.clone(), desired.policy.clone());
        cmp("import", self.import.clone(), desired.import.clone());
        cmp("variant", self.variant.clone(), desired.variant.clone());
        cmp("owners", self.owners.join(","), desired.owners.join(","));
        cmp(
            "artifact.type",
            self.artifact_type.clone(),
            desired.artifact_type.clone(),
        );
        cmp(
            "transform.steps",
            self.transform_steps.join(","),
            desired.transform_steps.join(","),
        );
        cmp(
            "recipe",
            self.recipe.clone().unwrap_or_default(),
            desired.recipe.clone().unwrap_or_default(),
        );
        out
    }
}

/// Errors from reading or stamping a manifest.
#[derive(Debug, thiserror::Error)]
pub enum StampError {
    /// The bytes are not JSON (the parser's message is part of this one, so it is not also
    /// a `source()`).
    #[error("manifest is not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error("manifest is not a JSON object")]
    /// The manifest is JSON but not an object.
    NotAnObject,
    #[error("unsupported manifest media type {0:?}")]
    /// houba does not stamp this kind of manifest.
    UnsupportedMediaType(String),
}

impl From<serde_json::Error> for StampError {
    fn from(e: serde_json::Error) -> Self {
        StampError::Json(e)
    }
}

/// The `annotations` of a raw manifest (empty when it has none).
pub fn manifest_annotations(bytes: &[u8]) -> Result<BTreeMap<String, String>, StampError> {
    let value: Value = serde_json::from_slice(bytes)?;
    let obj = value.as_object().ok_or(StampError::NotAnObject)?;
    Ok(annotations_of(obj))
}

fn annotations_of(obj: &Map<String, Value>) -> BTreeMap<String, String> {
    obj.get("annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The media type of a raw manifest: its `mediaType` field, else the one the registry reported,
/// else (bytes read back from the manifest cache, which keeps no header) what the OCI image
/// spec implies. `mediaType` is optional in OCI manifests and indexes (umoci writes none) but
/// required in Docker's, so a manifest without one is OCI: an index when it lists
/// `manifests`, an image manifest when it has `config` and `layers`.
pub fn manifest_media_type(bytes: &[u8], reported: &str) -> String {
    let value = serde_json::from_slice::<Value>(bytes).ok();
    if let Some(declared) = value
        .as_ref()
        .and_then(|v| v.get("mediaType"))
        .and_then(Value::as_str)
    {
        return declared.to_string();
    }
    if !reported.is_empty() {
        return reported.to_string();
    }
    match value {
        Some(v) if v.get("manifests").is_some_and(Value::is_array) => {
            crate::oci::OCI_INDEX.to_string()
        }
        Some(v) if v.get("config").is_some() && v.get("layers").is_some() => {
            crate::oci::OCI_MANIFEST.to_string()
        }
        _ => String::new(),
    }
}

/// Which annotations count as "the stamp" (and are therefore replaced when stamping).
fn is_stamp_key(key: &str, prefix: &str) -> bool {
    matches!(
        key,
        OCI_SOURCE | OCI_BASE_NAME | OCI_BASE_DIGEST | OCI_TITLE | OCI_VENDOR
    ) || key
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// A stamped manifest, ready to be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedManifest {
    /// The manifest's media type.
    pub media_type: String,
    /// The stamped manifest bytes (canonical JSON).
    pub bytes: Vec<u8>,
    /// `sha256:` of `bytes`.
    pub digest: String,
}

/// Apply a stamp to a raw upstream manifest (image manifest or index), editing it as a JSON
/// value so that no field is lost. Docker v2 manifests and manifest lists cannot carry
/// annotations, so they are re-emitted as their OCI equivalents; the blobs and child manifests
/// they reference are unchanged. Previous stamp keys are removed first, so stamping is
/// idempotent and a restamp only changes what differs. Output is canonical JSON (keys sorted,
/// no insignificant whitespace), so the result is a pure function of its inputs.
pub fn stamp_manifest(
    bytes: &[u8],
    reported_media_type: &str,
    annotations: &BTreeMap<String, String>,
    prefix: &str,
) -> Result<StampedManifest, StampError> {
    restamp_manifest(bytes, reported_media_type, annotations, &[prefix])
}

/// `stamp_manifest`, removing the stamp keys of every listed prefix first (a restamp after the
/// label prefix changed must not leave the old keys behind).
pub fn restamp_manifest(
    bytes: &[u8],
    reported_media_type: &str,
    annotations: &BTreeMap<String, String>,
    prefixes: &[&str],
) -> Result<StampedManifest, StampError> {
    let mut value: Value = serde_json::from_slice(bytes)?;
    let media_type = manifest_media_type(bytes, reported_media_type);
    let obj = value.as_object_mut().ok_or(StampError::NotAnObject)?;
    let new_media_type = match media_type.as_str() {
        OCI_INDEX | OCI_MANIFEST => media_type.clone(),
        DOCKER_LIST => OCI_INDEX.to_string(),
        DOCKER_MANIFEST => OCI_MANIFEST.to_string(),
        other => return Err(StampError::UnsupportedMediaType(other.to_string())),
    };
    if new_media_type != media_type {
        convert_docker_descriptors(obj);
    }
    obj.insert("mediaType".into(), Value::String(new_media_type.clone()));
    let mut merged: BTreeMap<String, String> = annotations_of(obj)
        .into_iter()
        .filter(|(k, _)| !prefixes.iter().any(|p| is_stamp_key(k, p)))
        .collect();
    merged.extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
    obj.insert(
        "annotations".into(),
        Value::Object(
            merged
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
    );
    let bytes = canonical_json(&value);
    let digest = sha256_digest(&bytes);
    Ok(StampedManifest {
        media_type: new_media_type,
        bytes,
        digest,
    })
}

/// Docker v2 → OCI: the config and layer descriptors of an image manifest take their OCI media
/// types (the blob bytes are identical: Docker's gzip layer is an OCI gzip layer). Children of a
/// manifest list keep their own media type: they are placed byte for byte, unstamped.
fn convert_docker_descriptors(obj: &mut Map<String, Value>) {
    fn map_type(t: &str) -> Option<&'static str> {
        match t {
            "application/vnd.docker.container.image.v1+json" => {
                Some("application/vnd.oci.image.config.v1+json")
            }
            "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                Some("application/vnd.oci.image.layer.v1.tar+gzip")
            }
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
            }
            _ => None,
        }
    }
    let retype = |d: &mut Value| {
        if let Some(t) = d.get("mediaType").and_then(Value::as_str)
            && let Some(new) = map_type(t)
        {
            d["mediaType"] = Value::String(new.to_string());
        }
    };
    if let Some(c) = obj.get_mut("config") {
        retype(c);
    }
    if let Some(Value::Array(layers)) = obj.get_mut("layers") {
        layers.iter_mut().for_each(retype);
    }
}

pub use crate::oci::{canonical_json, sha256_digest};

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            source: "docker.io/library/busybox".into(),
            base_name: "docker.io/library/busybox:1.37.0".into(),
            base_digest: format!("sha256:{}", "a".repeat(64)),
            title: "busybox".into(),
            vendor: Some("Example".into()),
            policy: "busybox".into(),
            import: "stable".into(),
            variant: "default".into(),
            owners: vec!["group:default/platform".into(), "user:bob".into()],
            artifact_type: "image".into(),
            ..Stamp::default()
        }
    }

    #[test]
    fn annotations_round_trip_under_custom_prefix() {
        let s = stamp();
        let a = s.to_annotations("com.example");
        assert_eq!(a["com.example.owners"], "group:default/platform,user:bob");
        assert!(!a.contains_key("io.houba.policy"));
        assert_eq!(Stamp::from_annotations(&a, "com.example"), Some(s.clone()));
        assert_eq!(Stamp::from_annotations(&a, "io.houba"), None);
    }

    #[test]
    fn stamping_preserves_unknown_fields_and_is_deterministic() {
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00","size":2},
            "layers":[],"subject":{"mediaType":"x","digest":"sha256:11","size":3},
            "annotations":{"keep.me":"yes","io.houba.owners":"old"}}"#;
        let a = stamp().to_annotations("io.houba");
        let one = stamp_manifest(manifest, OCI_MANIFEST, &a, "io.houba").unwrap();
        let two = stamp_manifest(&one.bytes, OCI_MANIFEST, &a, "io.houba").unwrap();
        assert_eq!(
            one, two,
            "stamping a stamped manifest again changes nothing"
        );
        let v: Value = serde_json::from_slice(&one.bytes).unwrap();
        assert_eq!(v["subject"]["digest"], "sha256:11");
        assert_eq!(v["annotations"]["keep.me"], "yes");
        assert_eq!(
            v["annotations"]["io.houba.owners"],
            "group:default/platform,user:bob"
        );
        assert_eq!(one.digest, sha256_digest(&one.bytes));
    }

    #[test]
    fn docker_manifest_is_reemitted_as_oci_with_same_blobs() {
        let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:c","size":1},
            "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:l","size":9}]}"#;
        let out = stamp_manifest(manifest, DOCKER_MANIFEST, &BTreeMap::new(), "io.houba").unwrap();
        assert_eq!(out.media_type, OCI_MANIFEST);
        let v: Value = serde_json::from_slice(&out.bytes).unwrap();
        assert_eq!(
            v["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(v["config"]["digest"], "sha256:c");
        assert_eq!(
            v["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(v["layers"][0]["digest"], "sha256:l");
    }

    #[test]
    fn restamp_differences_name_the_attributes() {
        let a = stamp();
        let mut b = stamp();
        b.owners.push("group:sec".into());
        b.vendor = None;
        let d: Vec<String> = a.differences(&b).into_iter().map(|d| d.0).collect();
        assert_eq!(d, vec!["vendor", "owners"]);
    }

    #[test]
    fn a_manifest_without_media_type_read_from_the_cache_is_oci() {
        let image = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aa","size":2},"layers":[]}"#;
        assert_eq!(manifest_media_type(image, ""), crate::oci::OCI_MANIFEST);
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(manifest_media_type(index, ""), crate::oci::OCI_INDEX);
        assert_eq!(
            manifest_media_type(image, "application/x-reported"),
            "application/x-reported",
            "what the registry reported comes first"
        );
        assert_eq!(manifest_media_type(b"{}", ""), "");
    }
}
