//! Arbitrary bytes as a manifest or an index from a registry, through what houba does with
//! one: parse, media type, references (blobs, child manifests), artifact type, annotations,
//! a referrers listing, and adding an entry to a referrers fallback index.
//!
//! Run: `cargo fuzz run registry_manifest fuzz/corpus/registry_manifest fuzz/seeds/registry_manifest`

#![no_main]

use houba::registry::{manifest, referrers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = houba::stamp::manifest_annotations(data);
    let _ = houba::stamp::manifest_media_type(data, "application/octet-stream");
    let _ = referrers::parse_listing(data);
    if let Ok(value) = manifest::parse(data) {
        let _ = manifest::media_type_of(&value, "");
        let _ = manifest::references(&value);
        let _ = manifest::artifact_type(&value);
        let _ = manifest::annotations(&value);
        let _ = manifest::descriptor_from_json(&value);
    }
    let entry = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "size": 2,
    });
    let _ = referrers::add_to_index(Some(data), entry);
});
