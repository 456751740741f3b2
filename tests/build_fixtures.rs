//! The rebuild engine on small images made in code: Alpine-like and UBI-like layouts, layer
//! formats, whiteouts, opaque directories, hardlinks and symlinks.

mod build_support;

use std::path::Path;

use build_support::fixtures::{all_steps, alpine_like, rebuild};
use build_support::*;
use houba::build::layout::LayoutDir;
use houba::build::{BlobSource, rebuild_image, recipe_digest};
use serde_json::json;

#[test]
fn alpine_like_image_gets_ca_mirror_and_zone_in_one_layer_umoci_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(dir.path().join("layout")).unwrap();
    let base = alpine_like(&layout, Compression::Gzip);
    let built = rebuild(&layout, &base, &all_steps(), &dir.path().join("work")).unwrap();
    let entries = read_new_layer(&built);
    let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "etc/",
            "etc/apk/",
            "etc/apk/repositories",
            "etc/localtime",
            "etc/ssl/",
            "etc/ssl/certs/",
            "etc/ssl/certs/ca-certificates.crt",
            "etc/timezone",
            "usr/",
            "usr/local/",
            "usr/local/share/",
            "usr/local/share/ca-certificates/",
            "usr/local/share/ca-certificates/corp-root.crt",
        ]
    );
    // The bundle is appended to once, through its real path (cert.pem is a symlink to it).
    let bundle = entry(&entries, "etc/ssl/certs/ca-certificates.crt");
    assert_eq!(
        bundle.data,
        format!("BASE BUNDLE\n{}", fake_pem(1)).into_bytes()
    );
    // The opaque upper layer's file is the one rewritten; its mode is kept.
    let repos = entry(&entries, "etc/apk/repositories");
    assert_eq!(
        repos.data,
        b"# upper\nhttps://apk.mirror.test/alpine/edge/main\n".to_vec()
    );
    assert_eq!(repos.mode, 0o600);
    // Parent directories copy the topmost layer's header; new directories copy their parent.
    assert_eq!(entry(&entries, "etc/apk/").mode, 0o700);
    assert_eq!(entry(&entries, "usr/local/").uid, 7);
    let anchors = entry(&entries, "usr/local/share/ca-certificates/");
    assert_eq!((anchors.mode, anchors.kind), (0o750, 'd'));
    let localtime = entry(&entries, "etc/localtime");
    assert_eq!(localtime.kind, 'l');
    assert_eq!(
        localtime.link.as_deref(),
        Some("/usr/share/zoneinfo/Asia/Tokyo")
    );
    assert_eq!(
        entry(&entries, "etc/timezone").data,
        b"Asia/Tokyo\n".to_vec()
    );
    assert!(
        entries
            .iter()
            .all(|(_, e)| e.mtime == CREATED_EPOCH && (e.uid == 0 || e.uid == 7))
    );

    // Config: everything kept, one more diff_id, a history entry, TZ replaced in place.
    let old = json_of(&base.config);
    let config = json_of(&built.config);
    assert_eq!(config["x-extension"], old["x-extension"]);
    assert_eq!(config["config"]["Labels"], old["config"]["Labels"]);
    assert_eq!(
        config["config"]["Env"],
        json!(["PATH=/usr/bin:/bin", "TZ=Asia/Tokyo"])
    );
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 3);
    assert_eq!(diff_ids[2], json!(built.new_layer.diff_id));
    assert_eq!(
        config["history"][1],
        json!({"created": CREATED, "created_by": "houba: injectCA(corp-root) rewritePackageSources(internal) setTimezone(Asia/Tokyo)"})
    );

    // Manifest: OCI, base layers verbatim, new layer last, caller's annotations only.
    let manifest = json_of(&built.manifest);
    let old_manifest = json_of(&base.manifest);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["layers"][0], old_manifest["layers"][0]);
    assert_eq!(manifest["layers"][1], old_manifest["layers"][1]);
    assert_eq!(
        manifest["layers"][2]["digest"],
        json!(built.new_layer.digest)
    );
    assert_eq!(
        manifest["annotations"],
        json!({"io.houba.recipe": "sha256:test"})
    );
    assert_eq!(manifest["config"]["digest"], json!(built.config_digest()));
    // Canonical JSON: re-serialising with sorted keys gives the same bytes.
    assert_eq!(serde_json::to_vec(&manifest).unwrap(), built.manifest);

    // umoci checks every diff_id while unpacking, then the files are where they should be.
    layout.store_image("hardened", &built).unwrap();
    let bundle = dir.path().join("bundle");
    umoci_unpack(layout.root(), "hardened", &bundle);
    let rootfs = bundle.join("rootfs");
    let cert_pem = std::fs::read_to_string(rootfs.join("etc/ssl/cert.pem")).unwrap();
    assert!(cert_pem.ends_with(&fake_pem(1)), "{cert_pem}");
    assert_eq!(
        std::fs::read_link(rootfs.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/Asia/Tokyo")
    );
    assert!(!rootfs.join("usr/share/zoneinfo/Europe").exists());
}

#[test]
fn the_same_build_twice_gives_identical_digests() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(dir.path().join("layout")).unwrap();
    let base = alpine_like(&layout, Compression::Gzip);
    let a = rebuild(&layout, &base, &all_steps(), &dir.path().join("a")).unwrap();
    let b = rebuild(&layout, &base, &all_steps(), &dir.path().join("b")).unwrap();
    assert_eq!(a.manifest_digest(), b.manifest_digest());
    assert_eq!(
        a.new_layer,
        houba::build::NewBlob {
            path: a.new_layer.path.clone(),
            ..b.new_layer.clone()
        }
    );
    assert_eq!(
        std::fs::read(&a.new_layer.path).unwrap(),
        std::fs::read(&b.new_layer.path).unwrap()
    );

    // The recipe digest moves with the certificate bytes, the base and the steps.
    let steps = all_steps();
    let r1 = recipe_digest(&steps, &[], &rosters(&fake_pem(1)), &base.digest).unwrap();
    assert_eq!(
        r1,
        recipe_digest(&steps, &[], &rosters(&fake_pem(1)), &base.digest).unwrap()
    );
    assert_ne!(
        r1,
        recipe_digest(&steps, &[], &rosters(&fake_pem(2)), &base.digest).unwrap()
    );
    assert_ne!(
        r1,
        recipe_digest(&steps, &[], &rosters(&fake_pem(1)), "sha256:other").unwrap()
    );
    assert_ne!(
        r1,
        recipe_digest(&steps[..2], &[], &rosters(&fake_pem(1)), &base.digest).unwrap()
    );
    assert!(r1.starts_with("sha256:") && r1.len() == 71);
}

fn ubi_like(layout: &LayoutDir) -> StoredImage {
    use Node::*;
    store_image(
        layout,
        "ubi",
        vec![
            (
                vec![
                    Dir("etc", 0o755),
                    Dir("etc/pki", 0o755),
                    Dir("etc/pki/ca-trust", 0o755),
                    Dir("etc/pki/ca-trust/extracted", 0o755),
                    Dir("etc/pki/ca-trust/extracted/pem", 0o755),
                    File(
                        "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
                        "RH BUNDLE",
                        0o444,
                    ),
                    Dir("etc/pki/ca-trust/source", 0o755),
                    Dir("etc/pki/ca-trust/source/anchors", 0o755),
                    Dir("etc/pki/tls", 0o755),
                    Dir("etc/pki/tls/certs", 0o755),
                    Symlink(
                        "etc/pki/tls/certs/ca-bundle.crt",
                        "../../ca-trust/extracted/pem/tls-ca-bundle.pem",
                    ),
                    Dir("etc/yum.repos.d", 0o755),
                    File(
                        "etc/yum.repos.d/old.repo",
                        "[old]\nbaseurl=http://old.test/os\n",
                        0o644,
                    ),
                ],
                Compression::Zstd,
            ),
            (
                vec![
                    Dir("opt", 0o755),
                    File(
                        "opt/base.repo",
                        "[tmpl]\nmirrorlist=https://mirrors.test/list?arch=$basearch\n",
                        0o640,
                    ),
                    Dir("etc/yum.repos.d", 0o750),
                    Opaque("etc/yum.repos.d"),
                    File(
                        "etc/yum.repos.d/ubi.repo",
                        "[ubi]\nbaseurl=https://cdn.redhat.test/ubi9/$basearch\ngpgkey=https://cdn.redhat.test/key\n",
                        0o644,
                    ),
                    File(
                        "etc/yum.repos.d/gone.repo",
                        "[gone]\nbaseurl=http://gone.test/\n",
                        0o644,
                    ),
                    Hardlink("etc/yum.repos.d/linked.repo", "opt/base.repo"),
                ],
                Compression::Plain,
            ),
            (
                vec![Whiteout("etc/yum.repos.d/gone.repo")],
                Compression::Zstd,
            ),
        ],
        false,
    )
}

#[test]
fn ubi_like_image_with_zstd_layers_opaque_dirs_whiteouts_and_hardlinks() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(dir.path().join("layout")).unwrap();
    let base = ubi_like(&layout);
    let steps = &all_steps()[..2];
    let built = rebuild(&layout, &base, steps, &dir.path().join("work")).unwrap();
    let entries = read_new_layer(&built);
    let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "etc/",
            "etc/pki/",
            "etc/pki/ca-trust/",
            "etc/pki/ca-trust/extracted/",
            "etc/pki/ca-trust/extracted/pem/",
            "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
            "etc/pki/ca-trust/source/",
            "etc/pki/ca-trust/source/anchors/",
            "etc/pki/ca-trust/source/anchors/corp-root.pem",
            "etc/yum.repos.d/",
            "etc/yum.repos.d/linked.repo",
            "etc/yum.repos.d/ubi.repo",
        ],
        "old.repo is hidden by the opaque directory, gone.repo by its whiteout"
    );
    let bundle = entry(&entries, "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem");
    assert_eq!(
        bundle.data,
        format!("RH BUNDLE\n{}", fake_pem(1)).into_bytes()
    );
    assert_eq!(bundle.mode, 0o444);
    assert_eq!(entry(&entries, "etc/yum.repos.d/").mode, 0o750);
    // The hardlink's content is its target's (which sits outside the asked paths).
    let linked = entry(&entries, "etc/yum.repos.d/linked.repo");
    assert_eq!(
        linked.data,
        b"[tmpl]\nmirrorlist=http://yum.mirror.test/rh/list?arch=$basearch\n".to_vec()
    );
    assert_eq!(linked.mode, 0o640);
    assert_eq!(
        entry(&entries, "etc/yum.repos.d/ubi.repo").data,
        b"[ubi]\nbaseurl=http://yum.mirror.test/rh/ubi9/$basearch\ngpgkey=https://cdn.redhat.test/key\n".to_vec()
    );
    let manifest = json_of(&built.manifest);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(built.layers_read, 3);
}

/// A blob source whose bottom layer is unreadable: proves which layers were opened.
struct Poisoned<'a> {
    layout: &'a LayoutDir,
    poisoned: String,
}

impl BlobSource for Poisoned<'_> {
    fn open_blob(&self, digest: &str) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        if digest == self.poisoned {
            return Err(std::io::Error::other("this layer must not be read"));
        }
        self.layout.open_blob(digest)
    }
}

#[test]
fn reading_stops_at_the_layer_that_settles_every_asked_path() {
    use Node::*;
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(dir.path().join("layout")).unwrap();
    let top = vec![
        Dir("etc", 0o755),
        File("etc/localtime", "x", 0o644),
        File("etc/timezone", "Etc/UTC\n", 0o644),
        Dir("usr", 0o755),
        Dir("usr/share", 0o755),
        Dir("usr/share/zoneinfo", 0o755),
        Dir("usr/share/zoneinfo/Asia", 0o755),
        File("usr/share/zoneinfo/Asia/Tokyo", "TZif2", 0o644),
    ];
    let image = store_image(
        &layout,
        "tz",
        vec![
            (vec![Dir("bin", 0o755)], Compression::Gzip),
            (top, Compression::Gzip),
        ],
        false,
    );
    let bottom = json_of(&image.manifest)["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blobs = Poisoned {
        layout: &layout,
        poisoned: bottom.clone(),
    };
    let steps = &all_steps()[2..];
    let built = rebuild_image(
        "tz",
        &image.manifest,
        &image.config,
        &blobs,
        steps,
        &rosters(&fake_pem(1)),
        &annotations(),
        dir.path(),
    )
    .unwrap();
    assert_eq!(built.layers_read, 1);
    assert_eq!(
        entry(&read_new_layer(&built), "etc/timezone").data,
        b"Asia/Tokyo\n".to_vec()
    );

    // injectCA must look for bundles further down: the unreadable layer is then reported.
    let err = rebuild_image(
        "tz",
        &image.manifest,
        &image.config,
        &blobs,
        &all_steps()[..1],
        &rosters(&fake_pem(1)),
        &annotations(),
        dir.path(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&bottom) && msg.contains("must not be read"),
        "{msg}"
    );
}

#[test]
fn symlinked_directories_are_followed_and_loops_are_reported() {
    use Node::*;
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(dir.path().join("layout")).unwrap();
    let image = store_image(
        &layout,
        "links",
        vec![(
            vec![
                Dir("etc", 0o755),
                Dir("etc/real-ssl", 0o711),
                Dir("etc/real-ssl/certs", 0o755),
                File("etc/real-ssl/certs/ca-certificates.crt", "B", 0o644),
                Symlink("etc/ssl", "/etc/real-ssl"),
                Dir("etc/apt", 0o755),
                Symlink("etc/apt/sources.list", "../../srv/sources"),
                Dir("srv", 0o755),
                File(
                    "srv/sources",
                    "deb http://deb.debian.org/debian bookworm main\n",
                    0o644,
                ),
                Dir("usr", 0o755),
                Dir("usr/local", 0o755),
                Dir("usr/local/share", 0o755),
                Dir("usr/local/share/ca-certificates", 0o755),
            ],
            Compression::Gzip,
        )],
        false,
    );
    let built = rebuild(&layout, &image, &all_steps()[..2], &dir.path().join("w")).unwrap();
    let entries = read_new_layer(&built);
    assert_eq!(
        entry(&entries, "etc/real-ssl/certs/ca-certificates.crt").data,
        format!("B\n{}", fake_pem(1)).into_bytes()
    );
    assert_eq!(entry(&entries, "etc/real-ssl/").mode, 0o711);
    assert_eq!(
        entry(&entries, "srv/sources").data,
        b"deb https://apt.mirror.test/proxy/debian bookworm main\n".to_vec()
    );
    assert!(
        entries
            .iter()
            .all(|(p, _)| p != "etc/ssl" && p != "etc/apt/sources.list")
    );

    let looped = store_image(
        &layout,
        "loop",
        vec![(
            vec![
                Dir("etc", 0o755),
                Dir("etc/ssl", 0o755),
                Dir("etc/ssl/certs", 0o755),
                Symlink("etc/ssl/certs/ca-certificates.crt", "a"),
                Symlink("etc/ssl/certs/a", "ca-certificates.crt"),
            ],
            Compression::Gzip,
        )],
        false,
    );
    let msg = rebuild(&layout, &looped, &all_steps()[..1], dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("injectCA") && msg.contains("too many levels of symbolic links"),
        "{msg}"
    );
}
