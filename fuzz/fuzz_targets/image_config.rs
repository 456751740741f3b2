//! Arbitrary bytes as the image config of a base image, through a rebuild (`setTimezone`):
//! the config is parsed, its `rootfs.diff_ids` checked against the layers, then edited (new
//! diff_id, history, environment). The base image is generated here: one gzip layer holding
//! `/usr/share/zoneinfo/UTC`.
//!
//! Run: `cargo fuzz run image_config fuzz/corpus/image_config fuzz/seeds/image_config`

#![no_main]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::OnceLock;

use houba::build::{BlobSource, TransformRosters, rebuild_image, sha256_digest};
use houba::policy::resolved::TransformStep;
use libfuzzer_sys::fuzz_target;

struct Base {
    layer: Vec<u8>,
    layer_digest: String,
    workdir: tempfile::TempDir,
}

impl BlobSource for Base {
    fn open_blob(&self, digest: &str) -> std::io::Result<Box<dyn Read + Send>> {
        if digest == self.layer_digest {
            Ok(Box::new(std::io::Cursor::new(self.layer.clone())))
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                digest.to_string(),
            ))
        }
    }
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut tar = tar::Builder::new(Vec::new());
        let content = b"TZif2 fuzz";
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, "usr/share/zoneinfo/UTC", &content[..])
            .expect("tar entry");
        let raw = tar.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).expect("gzip");
        let layer = gz.finish().expect("gzip");
        Base {
            layer_digest: sha256_digest(&layer),
            layer,
            workdir: tempfile::tempdir().expect("workdir"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256_digest(data),
            "size": data.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": base.layer_digest,
            "size": base.layer.len(),
        }],
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest");
    let steps = [TransformStep::SetTimezone { zone: "UTC".into() }];
    let _ = rebuild_image(
        "fuzz",
        &manifest,
        data,
        base,
        &steps,
        &TransformRosters::default(),
        &BTreeMap::new(),
        base.workdir.path(),
    );
});
