//! The referrers fallback tag schema (OCI distribution 1.1): registries without the referrers
//! API keep an image index tagged `sha256-<hex of the subject digest>` listing the referrers.

use bytes::Bytes;
use serde_json::{Value, json};

use super::manifest::{self, OCI_INDEX};
use super::{Descriptor, Referrer};

pub use crate::oci::{
    is_referrers_fallback_tag as is_fallback_tag, referrers_fallback_tag as fallback_tag,
};

/// Referrers listed in an image index (a referrers API answer or a fallback index).
pub fn parse_listing(bytes: &[u8]) -> Result<Vec<Referrer>, String> {
    let value = manifest::parse(bytes)?;
    let Some(items) = value.get("manifests").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    // Some servers list a manifest pushed twice twice; a referrer is listed once.
    let mut seen = std::collections::HashSet::new();
    items
        .iter()
        .filter(|item| {
            seen.insert(
                item.get("digest")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .map(|item| {
            Ok(Referrer {
                descriptor: manifest::descriptor_from_json(item)
                    .ok_or("malformed descriptor in referrers listing")?,
                artifact_type: item
                    .get("artifactType")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                annotations: manifest::annotations(item),
            })
        })
        .collect()
}

/// The descriptor entry a referrer manifest gets in a listing.
pub fn listing_entry(media_type: &str, manifest_bytes: &[u8]) -> Result<Value, String> {
    let value = manifest::parse(manifest_bytes)?;
    let mut entry = json!({
        "mediaType": media_type,
        "digest": super::digest::sha256_digest(manifest_bytes),
        "size": manifest_bytes.len(),
    });
    if let Some(artifact_type) = manifest::artifact_type(&value) {
        entry["artifactType"] = Value::String(artifact_type);
    }
    if let Some(annotations) = value.get("annotations").filter(|a| a.is_object()) {
        entry["annotations"] = annotations.clone();
    }
    Ok(entry)
}

/// Whether an error answer names the repository (or the subject) as unknown: what a registry
/// that has the referrers API may answer for a repository it lacks, as opposed to a route it
/// does not serve.
pub fn names_unknown_repository(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    value
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|errors| {
            errors.iter().any(|e| {
                matches!(
                    e.get("code").and_then(Value::as_str),
                    Some("NAME_UNKNOWN" | "MANIFEST_UNKNOWN")
                )
            })
        })
}

/// The fallback index after adding `entry`; `None` when it is already listed. An existing index
/// is edited as a JSON value so fields we do not know survive.
pub fn add_to_index(existing: Option<&[u8]>, entry: Value) -> Result<Option<Bytes>, String> {
    add_all_to_index(existing, vec![entry])
}

/// The fallback index after adding every entry not yet listed; `None` when all are.
pub fn add_all_to_index(
    existing: Option<&[u8]>,
    entries: Vec<Value>,
) -> Result<Option<Bytes>, String> {
    let mut index = match existing {
        Some(bytes) => manifest::parse(bytes)?,
        None => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
    };
    let manifests = index
        .as_object_mut()
        .ok_or("fallback index is not an object")?
        .entry("manifests")
        .or_insert_with(|| Value::Array(Vec::new()));
    let list = manifests
        .as_array_mut()
        .ok_or("fallback index `manifests` is not an array")?;
    let mut added = false;
    for entry in entries {
        let digest = entry.get("digest").cloned();
        if list
            .iter()
            .any(|item| item.get("digest") == digest.as_ref())
        {
            continue;
        }
        list.push(entry);
        added = true;
    }
    if !added {
        return Ok(None);
    }
    serde_json::to_vec(&index)
        .map(|v| Some(Bytes::from(v)))
        .map_err(|e| e.to_string())
}

/// The descriptors of a listing.
pub fn descriptors(referrers: Vec<Referrer>) -> Vec<Descriptor> {
    referrers.into_iter().map(|r| r.descriptor).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tag_schema() {
        let digest = super::super::digest::sha256_digest(b"subject");
        let tag = fallback_tag(&digest).unwrap();
        assert_eq!(tag.len(), "sha256-".len() + 64);
        assert!(is_fallback_tag(&tag));
        assert!(!is_fallback_tag("sha256-short"));
        assert!(fallback_tag("md5:abc").is_none());
    }

    #[test]
    fn fallback_index_gains_each_referrer_once() {
        let sbom = br#"{"schemaVersion":2,"artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44","size":2},"layers":[],"annotations":{"k":"v"},"unknown":1}"#;
        let entry = listing_entry(manifest::OCI_MANIFEST, sbom).unwrap();
        let first = add_to_index(None, entry.clone()).unwrap().unwrap();
        assert!(add_to_index(Some(&first), entry).unwrap().is_none());
        let listed = parse_listing(&first).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].artifact_type.as_deref(),
            Some("application/spdx+json")
        );
        assert_eq!(
            listed[0].annotations.get("k").map(String::as_str),
            Some("v")
        );
        assert_eq!(listed[0].descriptor.size, sbom.len() as u64);
    }

    #[test]
    fn a_batch_adds_what_is_not_listed_once() {
        let spdx = br#"{"schemaVersion":2,"artifactType":"application/spdx+json"}"#;
        let cdx = br#"{"schemaVersion":2,"artifactType":"application/vnd.cyclonedx+json"}"#;
        let a = listing_entry(manifest::OCI_MANIFEST, spdx).unwrap();
        let b = listing_entry(manifest::OCI_MANIFEST, cdx).unwrap();
        let first = add_to_index(None, a.clone()).unwrap().unwrap();
        let both = add_all_to_index(Some(&first), vec![a.clone(), b.clone(), b.clone()])
            .unwrap()
            .unwrap();
        assert_eq!(parse_listing(&both).unwrap().len(), 2);
        assert!(add_all_to_index(Some(&both), vec![b, a]).unwrap().is_none());
    }

    #[test]
    fn only_an_unknown_repository_answer_keeps_the_api_possible() {
        assert!(names_unknown_repository(
            br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#
        ));
        assert!(!names_unknown_repository(b"404 page not found\n"));
        assert!(!names_unknown_repository(
            br#"{"errors":[{"code":"UNSUPPORTED"}]}"#
        ));
    }
}
