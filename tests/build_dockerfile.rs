//! The Dockerfile backend: the rendered Dockerfile, a real build with buildah through the
//! `houba` binary (a Debian base in a distribution registry, checked with skopeo and umoci),
//! and the plan-time error when no builder is installed.

mod build_support;
#[allow(unused_imports)]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use build_support::{debian, fake_pem, run, umoci_unpack};
use houba::build::TransformRosters;
use houba::build::dockerfile::render;
use houba::config::CaSource;
use houba::policy::resolved::TransformStep;
use serde_json::Value;
use support::{Auth, distribution};

const BASE: &str = "127.0.0.1:5000/library/debian@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn the_dockerfile_is_rendered_deterministically() {
    let steps = [
        TransformStep::SetTimezone {
            zone: "Europe/Paris".into(),
        },
        TransformStep::InjectCa {
            certs: vec!["corp root".into()],
        },
        TransformStep::Run {
            command: "echo hardened > /etc/hardened".into(),
        },
    ];
    let mut rosters = TransformRosters::default();
    let pem = fake_pem(7);
    rosters
        .ca_certs
        .insert("corp root".into(), CaSource::Pem(pem.clone()));
    let first = render("debian", BASE, &steps, &rosters).unwrap();
    let second = render("debian", BASE, &steps, &rosters).unwrap();
    assert_eq!(first, second);
    let expected = format!(
        "# Rendered by houba from the policy's transform steps.\n\
         FROM {BASE}\n\
         ENV TZ=Europe/Paris\n\
         RUN ln -sf /usr/share/zoneinfo/Europe/Paris /etc/localtime && echo Europe/Paris > /etc/timezone\n\
         COPY ca-1/ /tmp/houba-ca/\n\
         RUN if [ -f /etc/ssl/certs/ca-certificates.crt ]; then mkdir -p /usr/local/share/ca-certificates && \
         cp /tmp/houba-ca/corp_root.pem /usr/local/share/ca-certificates/corp_root.crt && \
         cat /tmp/houba-ca/corp_root.pem >> /etc/ssl/certs/ca-certificates.crt; \
         elif [ -f /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem ]; then mkdir -p /etc/pki/ca-trust/source/anchors && \
         cp /tmp/houba-ca/corp_root.pem /etc/pki/ca-trust/source/anchors/corp_root.pem && \
         cat /tmp/houba-ca/corp_root.pem >> /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem; \
         else echo 'injectCA: no known CA bundle in this image' >&2; exit 1; fi && rm -rf /tmp/houba-ca\n\
         RUN echo hardened > /etc/hardened\n"
    );
    assert_eq!(first.dockerfile, expected);
    assert_eq!(
        first.files,
        vec![("ca-1/corp_root.pem".to_string(), pem.into_bytes())]
    );
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn houba(dir: &Path, path_var: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_houba"))
        .args(args)
        .arg("--config")
        .arg(dir.join("houba.toml"))
        .current_dir(dir)
        .env("HOUBA_CACHE_DIR", dir.join("cache"))
        .env("PATH", path_var)
        .env_remove("BUILDKIT_HOST")
        .env_remove("HOUBA_REGISTRIES")
        .env_remove("HOUBA_CONFIG")
        .output()
        .unwrap()
}

/// A config reading Docker Hub through `upstream` and placing into `local`, plus a policy
/// whose only step is `command`.
fn write_setup(dir: &Path, upstream: &str, local: &str, command: &str) {
    write_setup_with_platforms(dir, upstream, local, command, "[]");
}

fn write_setup_with_platforms(
    dir: &Path,
    upstream: &str,
    local: &str,
    command: &str,
    platforms: &str,
) {
    std::fs::write(
        dir.join("houba.toml"),
        format!(
            "policies = [\"policies\"]\n\n\
             [registries.hub]\n{upstream}\nmirror_of = \"docker.io\"\n\n\
             [registries.local]\n{local}\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/debian-hardened.yaml"),
        format!(
            "apiVersion: houba.io/v1alpha1\n\
             kind: MirrorPolicy\n\
             metadata:\n  name: debian-hardened\n\
             spec:\n\
             \x20 source: {{registry: docker.io, repository: library/debian}}\n\
             \x20 imports:\n\
             \x20   - name: bookworm\n\
             \x20     tags: {{semverOnly: false, names: [bookworm-slim]}}\n\
             \x20     platforms: {platforms}\n\
             \x20     transform:\n\
             \x20       - run: {{command: {command:?}}}\n\
             \x20     destinations:\n\
             \x20       - {{registry: local, repository: debian-hardened}}\n"
        ),
    )
    .unwrap();
}

#[test]
fn without_a_builder_the_plan_fails_and_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/upstream/docker.io");
    let local = dir.path().join("local");
    write_setup(
        dir.path(),
        &format!("layout = {:?}", upstream.display().to_string()),
        &format!("layout = {:?}", local.display().to_string()),
        "echo hardened > /etc/hardened",
    );
    // A PATH holding neither buildah nor buildctl.
    let empty = tempfile::tempdir().unwrap();
    let out = houba(dir.path(), &empty.path().display().to_string(), &["plan"]);
    assert!(!out.status.success(), "{}", text(&out));
    let message = text(&out);
    assert!(
        message.contains("install buildah (apt-get install buildah) or set BUILDKIT_HOST"),
        "{message}"
    );
    assert!(
        message.contains("debian-hardened/bookworm"),
        "the error names the placement: {message}"
    );
    assert!(!local.exists(), "nothing was written");
}

#[test]
fn a_run_step_builds_one_platform_only() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/upstream/docker.io");
    write_setup_with_platforms(
        dir.path(),
        &format!("layout = {:?}", upstream.display().to_string()),
        &format!(
            "layout = {:?}",
            dir.path().join("local").display().to_string()
        ),
        "true",
        "[linux/amd64, linux/arm64]",
    );
    // A PATH with a builder, so that the platform check is what fails.
    let bin = tempfile::tempdir().unwrap();
    let buildah = bin.path().join("buildah");
    std::fs::write(&buildah, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(
        &buildah,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let out = houba(dir.path(), &bin.path().display().to_string(), &["plan"]);
    assert!(!out.status.success(), "{}", text(&out));
    // Refused by validation, at the `run` step, before any registry is read.
    for expected in [
        "houba::policy::step-conflict",
        "debian-hardened.yaml:12:11",
        "has a `run` step but the import lists 2 platforms",
    ] {
        assert!(text(&out).contains(expected), "{expected}: {}", text(&out));
    }
}

fn skopeo_raw(reference: &str) -> Value {
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(reference));
    serde_json::from_str(&raw).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn buildah_builds_a_run_step_and_houba_stamps_the_result() {
    let base = debian::base_layout();
    let upstream = distribution(Auth::None).await;
    let local = distribution(Auth::None).await;
    run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:base", base.display()))
        .arg(format!(
            "docker://{}/library/debian:bookworm-slim",
            upstream.host()
        )));
    let base_manifest = skopeo_raw(&format!(
        "docker://{}/library/debian:bookworm-slim",
        upstream.host()
    ));
    let base_layers = base_manifest["layers"].as_array().unwrap().len();

    let dir = tempfile::tempdir().unwrap();
    write_setup(
        dir.path(),
        &format!("host = {:?}\ntls_verify = false", upstream.host()),
        &format!("host = {:?}\ntls_verify = false", local.host()),
        "echo hardened > /etc/hardened",
    );
    let path_var = std::env::var("PATH").unwrap_or_default();
    let apply = houba(dir.path(), &path_var, &["apply", "--auto"]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(
        text(&apply).contains("Apply complete: 1 done, 0 failed"),
        "{}",
        text(&apply)
    );

    let placed = format!("docker://{}/debian-hardened:bookworm-slim", local.host());
    let manifest = skopeo_raw(&placed);
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["io.houba.policy"], "debian-hardened");
    assert_eq!(annotations["io.houba.transform.steps"], "run");
    assert!(
        annotations["io.houba.recipe"]
            .as_str()
            .is_some_and(|r| r.starts_with("sha256:")),
        "{manifest}"
    );
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        base_layers + 1,
        "one new layer on top of the base: {manifest}"
    );

    // The builder's temporary tag is gone; only the final tag remains (beside the referrers
    // fallback tags of the image's evidence, which this registry needs for its SBOMs).
    let tags: Value = serde_json::from_str(&run(Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/debian-hardened", local.host()))))
    .unwrap();
    let image_tags: Vec<&str> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| !houba::oci::is_evidence_tag(t))
        .collect();
    assert_eq!(image_tags, vec!["bookworm-slim"]);

    // The command's effect is in the image, as an independent unpacker sees it.
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("oci");
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(&placed)
        .arg(format!("oci:{}:hardened", layout.display())));
    let bundle = out.path().join("bundle");
    umoci_unpack(&layout, "hardened", &bundle);
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/etc/hardened")).unwrap(),
        "hardened\n"
    );

    // The stamp records the recipe: planning again finds nothing to do.
    let again = houba(dir.path(), &path_var, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
}
