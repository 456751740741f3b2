//! Test images made in code: tiny layers (gzip, zstd or plain tar) with directories, files,
//! symlinks, hardlinks, whiteouts and opaque markers, stored in an OCI layout directory.

#![allow(dead_code)]

pub mod debian;
pub mod fixtures;
pub mod packages;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use houba::build::layout::LayoutDir;
use houba::build::{BuiltImage, TransformRosters, sha256_digest};
use houba::config::{CaSource, PackageMirror};
use serde_json::{Value, json};

pub const CREATED: &str = "2024-01-02T03:04:05Z";
pub const CREATED_EPOCH: u64 = 1_704_164_645;

pub enum Node {
    Dir(&'static str, u32),
    /// A directory with an owner other than root.
    OwnedDir(&'static str, u32, u64, u64),
    File(&'static str, &'static str, u32),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    /// `.wh.<name>` next to the path: hides it in lower layers.
    Whiteout(&'static str),
    /// `.wh..wh..opq` inside the directory.
    Opaque(&'static str),
}

#[derive(Clone, Copy)]
pub enum Compression {
    Plain,
    Gzip,
    Zstd,
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A tar stream holding `nodes` in the given order (paths written `./etc/x` like many tools).
pub fn layer_tar(nodes: &[Node]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for node in nodes {
        match node {
            Node::Dir(p, mode) => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                b.append_data(&mut h, format!("./{p}/"), &[][..]).unwrap();
            }
            Node::OwnedDir(p, mode, uid, gid) => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                h.set_uid(*uid);
                h.set_gid(*gid);
                b.append_data(&mut h, format!("./{p}/"), &[][..]).unwrap();
            }
            Node::File(p, data, mode) => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, format!("./{p}"), data.as_bytes())
                    .unwrap();
            }
            Node::Symlink(p, target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, format!("./{p}"), target).unwrap();
            }
            Node::Hardlink(p, target) => {
                let mut h = header(tar::EntryType::Link, 0o644, 0);
                b.append_link(&mut h, format!("./{p}"), target).unwrap();
            }
            Node::Whiteout(p) => {
                let (dir, name) = p.rsplit_once('/').unwrap();
                let mut h = header(tar::EntryType::Regular, 0o644, 0);
                b.append_data(&mut h, format!("./{dir}/.wh.{name}"), &[][..])
                    .unwrap();
            }
            Node::Opaque(dir) => {
                let mut h = header(tar::EntryType::Regular, 0o644, 0);
                b.append_data(&mut h, format!("./{dir}/.wh..wh..opq"), &[][..])
                    .unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn compress(tar: &[u8], c: Compression) -> (Vec<u8>, &'static str) {
    match c {
        Compression::Plain => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).unwrap();
            (
                gz.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Compression::Zstd => (
            ruzstd::encoding::compress_to_vec(tar, ruzstd::encoding::CompressionLevel::Fastest),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

/// An image stored in a layout: its manifest and config bytes.
pub struct StoredImage {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub digest: String,
}

/// Stores an image made of `layers` (bottom-up) in `layout` under `name`. With `docker`, the
/// manifest uses Docker v2 media types (gzip layers only).
pub fn store_image(
    layout: &LayoutDir,
    name: &str,
    layers: Vec<(Vec<Node>, Compression)>,
    docker: bool,
) -> StoredImage {
    let tars = layers
        .into_iter()
        .map(|(nodes, c)| (layer_tar(&nodes), c))
        .collect();
    store_tars(layout, name, tars, docker)
}

/// Like [`store_image`], from tar streams given as bytes.
pub fn store_tars(
    layout: &LayoutDir,
    name: &str,
    layers: Vec<(Vec<u8>, Compression)>,
    docker: bool,
) -> StoredImage {
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for (tar, compression) in layers {
        diff_ids.push(sha256_digest(&tar));
        let (blob, mut media_type) = compress(&tar, compression);
        if docker {
            media_type = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        }
        let digest = layout.write_blob(&blob).unwrap();
        descriptors.push(json!({"mediaType": media_type, "digest": digest, "size": blob.len()}));
    }
    let config = json!({
        "created": CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin", "TZ=UTC"], "Labels": {"vendor": "fixture"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": "fixture"}],
        "x-extension": {"kept": [1, 2, 3]}
    });
    let config = serde_json::to_vec_pretty(&config).unwrap();
    let config_digest = layout.write_blob(&config).unwrap();
    let (manifest_type, config_type) = if docker {
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
        )
    } else {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
        )
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
        "layers": descriptors,
        "annotations": {"upstream": "annotation"}
    });
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
    let digest = layout.write_blob(&manifest).unwrap();
    layout
        .set_ref(name, manifest_type, &digest, manifest.len() as u64)
        .unwrap();
    StoredImage {
        manifest,
        config,
        digest,
    }
}

/// A syntactically valid certificate PEM (an ASN.1 SEQUENCE) for tests that do not need a
/// real certificate.
pub fn fake_pem(seed: u8) -> String {
    use base64::Engine as _;
    let der = [0x30, 0x04, 0x02, 0x02, seed, seed];
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n")
}

pub fn rosters(pem: &str) -> TransformRosters {
    let mut r = TransformRosters::default();
    r.ca_certs
        .insert("corp-root".into(), CaSource::Pem(pem.to_string()));
    r.package_mirrors.insert(
        "internal".into(),
        PackageMirror {
            apt: Some("https://apt.mirror.test/proxy".into()),
            apk: Some("https://apk.mirror.test".into()),
            yum: Some("http://yum.mirror.test/rh".into()),
        },
    );
    r
}

pub fn annotations() -> BTreeMap<String, String> {
    BTreeMap::from([("io.houba.recipe".to_string(), "sha256:test".to_string())])
}

/// One entry of a written layer, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub mtime: u64,
    pub data: Vec<u8>,
    pub link: Option<String>,
}

/// Reads the new layer of a built image: path → entry, in archive order.
pub fn read_new_layer(built: &BuiltImage) -> Vec<(String, TarEntry)> {
    let file = std::fs::File::open(&built.new_layer.path).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(sha256_digest(&raw), built.new_layer.diff_id);
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(raw.as_slice());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Regular => 'f',
            tar::EntryType::Symlink => 'l',
            other => panic!("unexpected entry type {other:?} for {path}"),
        };
        out.push((
            path,
            TarEntry {
                kind,
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                mtime: h.mtime().unwrap(),
                data,
                link,
            },
        ));
    }
    out
}

pub fn entry<'a>(entries: &'a [(String, TarEntry)], path: &str) -> &'a TarEntry {
    &entries
        .iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("{path} is not in the new layer: {entries:#?}"))
        .1
}

pub fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Runs a command, failing the test with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `umoci unpack` (strict: it checks every layer's diff_id) of `name` into `bundle`.
pub fn umoci_unpack(layout: &Path, name: &str, bundle: &Path) {
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{name}", layout.display()))
        .arg(bundle));
}
