//! The rebuild engine on a real Debian bookworm image, checked with tools nobody here wrote:
//! umoci (strict diff_id checks), openssl (the injected CA is trusted), chroot + date (the
//! zone is in effect), and the apt sources as apt reads them.

mod build_support;

use std::path::Path;
use std::process::Command;

use build_support::debian::{self, DEB822_SOURCES};
use build_support::{annotations, rosters, run, umoci_unpack};
use houba::build::layout::LayoutDir;
use houba::build::{BuiltImage, TransformRosters, rebuild_image};
use houba::config::CaSource;
use houba::policy::resolved::TransformStep;

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

/// A CA and a leaf it signs, as PEM files `<name>-ca.pem` and `<name>-leaf.pem` in `dir`.
fn make_ca_and_leaf(dir: &Path, name: &str) {
    let (ca_key, ca, leaf_key, csr, leaf) = (
        format!("{name}-ca.key"),
        format!("{name}-ca.pem"),
        format!("{name}-leaf.key"),
        format!("{name}-leaf.csr"),
        format!("{name}-leaf.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "3650",
            "-subj",
            &format!("/CN={name} test root"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &leaf_key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN=leaf.{name}.test"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &leaf,
            "-days",
            "365",
        ],
    );
}

fn verify(bundle: &Path, leaf: &Path) -> std::process::Output {
    Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(bundle)
        .arg(leaf)
        .output()
        .unwrap()
}

fn steps() -> Vec<TransformStep> {
    vec![
        TransformStep::InjectCa {
            certs: vec!["corp-root".into()],
        },
        TransformStep::RewritePackageSources {
            mirror: "internal".into(),
            managers: vec![],
        },
        TransformStep::SetTimezone {
            zone: "Asia/Tokyo".into(),
        },
    ]
}

fn rebuild(layout: &LayoutDir, rosters: &TransformRosters, work: &Path) -> BuiltImage {
    let (_, digest, _) = layout.resolve_ref("base").unwrap();
    let manifest = layout.read_blob(&digest).unwrap();
    let manifest_json: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let config = layout
        .read_blob(manifest_json["config"]["digest"].as_str().unwrap())
        .unwrap();
    rebuild_image(
        "debian:bookworm",
        &manifest,
        &config,
        layout,
        &steps(),
        rosters,
        &annotations(),
        work,
    )
    .unwrap()
}

#[test]
fn debian_bookworm_hardened_image_is_accepted_by_umoci_openssl_chroot_and_apt() {
    let base = debian::base_layout();
    let scratch = tempfile::tempdir().unwrap();
    // The result goes into a copy of the layout's index so the cached base stays untouched.
    let layout_dir = scratch.path().join("layout");
    std::fs::create_dir_all(&layout_dir).unwrap();
    for name in ["oci-layout", "index.json"] {
        std::fs::copy(base.join(name), layout_dir.join(name)).unwrap();
    }
    std::fs::create_dir_all(layout_dir.join("blobs/sha256")).unwrap();
    for blob in std::fs::read_dir(base.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        let to = layout_dir.join("blobs/sha256").join(blob.file_name());
        if std::fs::hard_link(blob.path(), &to).is_err() {
            std::fs::copy(blob.path(), &to).unwrap();
        }
    }
    let layout = LayoutDir::new(&layout_dir);

    let certs = scratch.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_ca_and_leaf(&certs, "corp");
    make_ca_and_leaf(&certs, "other");
    let mut rosters = rosters("unused");
    rosters.ca_certs.insert(
        "corp-root".into(),
        CaSource::Path(certs.join("corp-ca.pem")),
    );

    let built = rebuild(&layout, &rosters, &scratch.path().join("work"));
    let again = rebuild(&layout, &rosters, &scratch.path().join("work-again"));
    assert_eq!(
        built.manifest_digest(),
        again.manifest_digest(),
        "the same build twice differs"
    );
    assert_eq!(built.new_layer.digest, again.new_layer.digest);

    layout.store_image("hardened", &built).unwrap();
    let bundle = scratch.path().join("bundle");
    umoci_unpack(&layout_dir, "hardened", &bundle);
    let rootfs = bundle.join("rootfs");

    // The injected CA is trusted through the image's own bundle; another CA is not.
    let ca_bundle = rootfs.join("etc/ssl/certs/ca-certificates.crt");
    let ok = verify(&ca_bundle, &certs.join("corp-leaf.pem"));
    assert!(
        ok.status.success(),
        "openssl verify rejected the corp leaf: {ok:?}"
    );
    let rejected = verify(&ca_bundle, &certs.join("other-leaf.pem"));
    assert!(
        !rejected.status.success(),
        "a leaf of another CA was accepted: {rejected:?}"
    );
    // The distribution's tool keeps the anchor when it regenerates the bundle.
    assert!(
        rootfs
            .join("usr/local/share/ca-certificates/corp-root.crt")
            .is_file()
    );
    run(Command::new("chroot")
        .arg(&rootfs)
        .arg("update-ca-certificates")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"));
    let regenerated = verify(&ca_bundle, &certs.join("corp-leaf.pem"));
    assert!(
        regenerated.status.success(),
        "update-ca-certificates dropped the CA: {regenerated:?}"
    );

    // /etc/localtime is in effect for programs that do not read TZ.
    let zone = run(Command::new("chroot")
        .arg(&rootfs)
        .args(["date", "+%Z"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"));
    assert_eq!(zone.trim(), "JST");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/timezone")).unwrap(),
        "Asia/Tokyo\n"
    );
    let config: serde_json::Value = serde_json::from_slice(&built.config).unwrap();
    assert!(
        config["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&"TZ=Asia/Tokyo".into())
    );

    // apt sources point at the mirror, in both formats, everything else kept.
    let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(
        read("etc/apt/sources.list"),
        "deb https://apt.mirror.test/proxy/debian bookworm main\n"
    );
    assert_eq!(
        read("etc/apt/sources.list.d/extra.list"),
        "deb [arch=amd64] https://apt.mirror.test/proxy/debian bookworm contrib\n"
    );
    assert_eq!(
        read("etc/apt/sources.list.d/debian.sources"),
        DEB822_SOURCES.replace("http://deb.debian.org", "https://apt.mirror.test/proxy")
    );
    // apt itself reads both formats and would fetch everything from the mirror.
    let uris = run(Command::new("chroot")
        .arg(&rootfs)
        .args(["apt-get", "--print-uris", "update"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"));
    let fetched: Vec<&str> = uris.lines().filter_map(|l| l.split('\'').nth(1)).collect();
    assert!(fetched.len() >= 4, "apt would fetch nothing: {uris}");
    assert!(
        fetched
            .iter()
            .all(|u| u.starts_with("https://apt.mirror.test/proxy/debian")),
        "{uris}"
    );
    // A few files (the CA bundle is the largest, about 200 KiB), not a copy of the base.
    assert!(
        built.new_layer.size < 1024 * 1024,
        "new layer of {} bytes",
        built.new_layer.size
    );
}
