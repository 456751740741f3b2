//! The rebuild engine's inputs beyond a plain OCI image (Docker v2 manifests, indexes,
//! unterminated or truncated tar streams) and the errors a user sees.

mod build_support;

use build_support::fixtures::{all_steps, alpine_like, rebuild};
use build_support::*;
use houba::build::layout::LayoutDir;
use houba::build::{rebuild_image, rebuild_index};
use houba::policy::resolved::TransformStep;
use serde_json::json;

#[test]
fn docker_v2_base_becomes_an_oci_manifest_with_the_same_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(dir.path().join("layout")).unwrap();
    use Node::*;
    let image = store_image(
        &layout,
        "docker",
        vec![(
            vec![
                Dir("etc", 0o755),
                Dir("etc/apk", 0o755),
                File(
                    "etc/apk/repositories",
                    "http://dl-cdn.alpinelinux.org/alpine/v3.19/main\n",
                    0o644,
                ),
            ],
            Compression::Gzip,
        )],
        true,
    );
    let built = rebuild(&layout, &image, &all_steps()[1..2], &dir.path().join("w")).unwrap();
    let manifest = json_of(&built.manifest);
    let old = json_of(&image.manifest);
    assert_eq!(
        built.manifest_media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(manifest["layers"][0]["digest"], old["layers"][0]["digest"]);
    assert_eq!(manifest["layers"][0]["size"], old["layers"][0]["size"]);
    layout.store_image("oci", &built).unwrap();
    umoci_unpack(layout.root(), "oci", &dir.path().join("bundle"));
}

#[test]
fn every_platform_of_an_index_is_rebuilt_and_other_entries_are_dropped_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(dir.path().join("layout")).unwrap();
    let amd = alpine_like(&layout, Compression::Gzip);
    let arm = alpine_like(&layout, Compression::Zstd);
    let attestation = layout.write_blob(br#"{"schemaVersion":2}"#).unwrap();
    let desc = |digest: &str, len: usize, arch: &str| {
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": len,
               "platform": {"os": "linux", "architecture": arch}})
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            desc(&amd.digest, amd.manifest.len(), "amd64"),
            desc(&arm.digest, arm.manifest.len(), "arm64"),
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": attestation, "size": 19,
             "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd.digest}},
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": attestation, "size": 19}
        ]
    }))
    .unwrap();
    let built = rebuild_index(
        "registry.test/alpine:3.20",
        &index,
        &layout,
        &all_steps(),
        &rosters(&fake_pem(3)),
        &annotations(),
        &dir.path().join("w"),
    )
    .unwrap();
    assert_eq!(built.platforms.len(), 2);
    assert_eq!(built.dropped.len(), 2);
    assert!(
        built.dropped[0].reason.contains("attestation"),
        "{:?}",
        built.dropped
    );
    assert!(
        built.dropped[1].reason.contains("not an image manifest"),
        "{:?}",
        built.dropped
    );
    let new_index = json_of(&built.index);
    let manifests = new_index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    for (entry, platform) in manifests.iter().zip(&built.platforms) {
        assert_eq!(entry["digest"], json!(platform.image.manifest_digest()));
        assert_eq!(entry["size"], json!(platform.image.manifest.len()));
        assert_eq!(Some(&entry["platform"]), platform.platform.as_ref());
    }
    assert_eq!(manifests[1]["platform"]["architecture"], "arm64");
    assert_eq!(new_index["annotations"]["io.houba.recipe"], "sha256:test");
    layout.store_index("multi", &built).unwrap();
    let again = rebuild_index(
        "registry.test/alpine:3.20",
        &index,
        &layout,
        &all_steps(),
        &rosters(&fake_pem(3)),
        &annotations(),
        &dir.path().join("w2"),
    )
    .unwrap();
    assert_eq!(again.index_digest(), built.index_digest());
}

#[test]
fn transforms_that_find_nothing_fail_with_what_they_looked_for() {
    use Node::*;
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(dir.path().join("layout")).unwrap();
    let empty = store_image(
        &layout,
        "empty",
        vec![(
            vec![Dir("etc", 0o755), Dir("usr", 0o755)],
            Compression::Gzip,
        )],
        false,
    );
    let err = |steps: &[TransformStep], r: &houba::build::TransformRosters| {
        rebuild_image(
            "registry.test/scratch:1",
            &empty.manifest,
            &empty.config,
            &layout,
            steps,
            r,
            &annotations(),
            dir.path(),
        )
        .unwrap_err()
        .to_string()
    };
    let good = rosters(&fake_pem(1));
    let ca = err(&all_steps()[..1], &good);
    assert!(
        ca.starts_with("registry.test/scratch:1: injectCA: no CA bundle found"),
        "{ca}"
    );
    assert!(
        ca.contains("/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"),
        "{ca}"
    );
    let pkgs = err(&all_steps()[1..2], &good);
    assert!(
        pkgs.contains("rewritePackageSources: no package sources to rewrite")
            && pkgs.contains("/etc/yum.repos.d/*.repo"),
        "{pkgs}"
    );
    let tz = err(&all_steps()[2..], &good);
    assert!(
        tz.contains("setTimezone: zone `Asia/Tokyo` does not exist in this image")
            && tz.contains("install tzdata"),
        "{tz}"
    );

    let bad_pem = err(
        &all_steps()[..1],
        &rosters("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
    );
    assert!(
        bad_pem.contains("CA certificate `corp-root` is invalid")
            && bad_pem.contains("certificate #1"),
        "{bad_pem}"
    );
    let unknown = err(
        &[TransformStep::RewritePackageSources {
            mirror: "nope".into(),
            managers: vec![],
        }],
        &good,
    );
    assert!(
        unknown.contains("no `package_mirrors` roster entry named `nope`"),
        "{unknown}"
    );
    let zone = err(
        &[TransformStep::SetTimezone {
            zone: "../../etc/passwd".into(),
        }],
        &good,
    );
    assert!(zone.contains("is not an IANA zone name"), "{zone}");
}

#[test]
fn a_tar_without_end_blocks_is_read_and_a_truncated_one_is_refused() {
    use Node::*;
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutDir::init(dir.path().join("layout")).unwrap();
    let full = layer_tar(&[
        Dir("etc", 0o755),
        Dir("etc/apk", 0o755),
        File(
            "etc/apk/repositories",
            "http://dl-cdn.alpinelinux.org/alpine/v3.19/main\n",
            0o644,
        ),
    ]);
    // Header blocks for etc/, etc/apk/, the file's header, then 48 bytes of data.
    let data_end = 3 * 512 + 48;
    let unterminated = full[..data_end].to_vec();
    let image = store_tars(
        &layout,
        "unterminated",
        vec![(unterminated, Compression::Gzip)],
        false,
    );
    let built = rebuild(&layout, &image, &all_steps()[1..2], &dir.path().join("w")).unwrap();
    assert_eq!(
        entry(&read_new_layer(&built), "etc/apk/repositories").data,
        b"https://apk.mirror.test/alpine/v3.19/main\n".to_vec()
    );

    let truncated = full[..data_end - 10].to_vec();
    let image = store_tars(
        &layout,
        "truncated",
        vec![(truncated, Compression::Zstd)],
        false,
    );
    let msg = rebuild(&layout, &image, &all_steps()[1..2], dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("truncated: the tar stream ends at byte 1574"),
        "{msg}"
    );
}
