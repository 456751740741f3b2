//! `houba verify`: a good image passes every check; each kind of bad image fails with its own
//! precise reason (unstamped, edited base digest, wrong key, no SBOM, scan over threshold).
//! The images are placed by a real `houba apply`; the evidence is attached per the referrer
//! contract, and the signature is also checked with `openssl dgst -sha256 -verify`.

mod consumers_support;
mod support;

use bytes::Bytes;
use serde_json::Value;
use support::houba::{Policy, Workspace, push_upstream};
use support::images::{self, OCI_LAYER_GZIP, OCI_MANIFEST};
use support::{Auth, TestRegistry, distribution, ferro};

use consumers_support::{
    Counts, attach_sarif, attach_sbom, attach_signature, key, openssl_verifies, public_pem,
};

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

#[track_caller]
fn expect_check(report: &Value, name: &str, status: &str, detail: &str) {
    let c = check(report, name);
    assert_eq!(c["status"], status, "{name}: {c:#}");
    assert!(
        c["detail"].as_str().unwrap().contains(detail),
        "{name}: expected {detail:?} in {c:#}"
    );
}

async fn scenario(dest: TestRegistry, sig_tag: bool) {
    let upstream = ferro().await;
    for tag in ["1.37.0", "1.37.1"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", dest.host())]);
    let policy = Policy::new("busybox", "busybox", r"^1\.37\.[01]$", "dest");
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;

    let client = dest.client();
    let r = client.as_ref();
    let repo = "mirror/busybox";
    let good = r.head_manifest(repo, "1.37.0").await.unwrap().unwrap();
    let other = r.head_manifest(repo, "1.37.1").await.unwrap().unwrap();
    let signer = key(11);
    std::fs::write(ws.path("cosign.pub"), public_pem(&signer)).unwrap();
    std::fs::write(ws.path("wrong.pub"), public_pem(&key(12))).unwrap();

    attach_sbom(r, repo, &good, true).await;
    let signed = attach_signature(r, dest.host(), repo, &good, &signer, sig_tag).await;
    assert!(
        openssl_verifies(ws.dir.path(), &public_pem(&signer), &signed),
        "openssl rejects the test signature"
    );
    let clean = Counts {
        high: 1,
        medium: 2,
        ..Counts::default()
    };
    attach_sarif(r, repo, &good, clean, &[], "2024-06-01T00:00:00Z").await;
    // 1.37.1: signed and scanned, but no SBOM and a critical finding in the newest report.
    attach_signature(r, dest.host(), repo, &other, &signer, sig_tag).await;
    attach_sarif(
        r,
        repo,
        &other,
        Counts::default(),
        &[],
        "2024-01-01T00:00:00Z",
    )
    .await;
    let bad_scan = Counts {
        critical: 1,
        ..Counts::default()
    };
    attach_sarif(
        r,
        repo,
        &other,
        bad_scan,
        &["CVE-2024-3094"],
        "2024-06-02T00:00:00Z",
    )
    .await;

    let verify = |image: String, key: &'static str| {
        let ws = &ws;
        async move {
            ws.run(&[
                "verify",
                &image,
                "--key",
                key,
                "--max-severity",
                "high",
                "--format",
                "json",
            ])
            .await
        }
    };
    let host = dest.host();

    // The good image, by tag and by digest.
    let run = verify(format!("{host}/{repo}:1.37.0"), "cosign.pub").await;
    let report = run.expect_code(0).json();
    for name in ["stamp", "provenance", "signature", "sbom", "scan"] {
        assert_eq!(check(&report, name)["status"], "pass", "{report:#}");
    }
    expect_check(
        &report,
        "provenance",
        "pass",
        "reproduces from docker.io/library/busybox@",
    );
    expect_check(&report, "sbom", "pass", "cyclonedx");
    expect_check(&report, "scan", "pass", "C0 H1 M2 L0");
    let by_digest = verify(format!("{host}/{repo}@{}", good.digest), "cosign.pub").await;
    assert_eq!(
        by_digest.expect_code(0).json()["digest"],
        good.digest.as_str()
    );
    // Text output names each check.
    let text = ws
        .run(&[
            "verify",
            &format!("{host}/{repo}:1.37.0"),
            "--key",
            "cosign.pub",
        ])
        .await;
    assert!(
        text.expect_code(0).stdout.contains("PASS signature"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("SKIP scan"), "{}", text.stdout);

    // Wrong key.
    let report = verify(format!("{host}/{repo}:1.37.0"), "wrong.pub")
        .await
        .expect_code(1)
        .json();
    expect_check(
        &report,
        "signature",
        "fail",
        "does not verify with this key",
    );
    expect_check(&report, "stamp", "pass", "");

    // houba's own SBOMs only (apply attaches them to every placed digest), scan over the
    // threshold.
    let report = verify(format!("{host}/{repo}:1.37.1"), "cosign.pub")
        .await
        .expect_code(1)
        .json();
    expect_check(&report, "signature", "pass", "verified");
    expect_check(&report, "sbom", "pass", "cyclonedx, spdx");
    expect_check(
        &report,
        "scan",
        "fail",
        "C1 H0 M0 L0: 1 finding(s) above high",
    );

    // Unstamped: pushed by hand.
    let layer = images::tar_layer(OCI_LAYER_GZIP, &[("hand", b"made\n")]);
    let hand = images::oci_image("by hand", "amd64", vec![layer]);
    images::push_image(r, repo, "hand", &hand).await.unwrap();
    let report = verify(format!("{host}/{repo}:hand"), "cosign.pub")
        .await
        .expect_code(1)
        .json();
    expect_check(&report, "stamp", "fail", "unstamped");
    expect_check(&report, "signature", "fail", "no signature attached");
    expect_check(&report, "sbom", "fail", "no SBOM attached");

    // The stamp's base digest edited by hand (the rest of the manifest untouched).
    let (_, raw) = r.get_manifest(repo, "1.37.0").await.unwrap().unwrap();
    let mut v: Value = serde_json::from_slice(&raw).unwrap();
    let forged = houba::registry::digest::sha256_digest(b"another base");
    v["annotations"]["org.opencontainers.image.base.digest"] = Value::String(forged.clone());
    r.put_manifest(
        repo,
        "edited",
        OCI_MANIFEST,
        Bytes::from(serde_json::to_vec(&v).unwrap()),
    )
    .await
    .unwrap();
    let report = verify(format!("{host}/{repo}:edited"), "cosign.pub")
        .await
        .expect_code(1)
        .json();
    expect_check(&report, "stamp", "pass", "");
    expect_check(
        &report,
        "provenance",
        "fail",
        &format!("{forged} does not exist upstream"),
    );

    // The base digest pointed at another real upstream image: the content does not match.
    let sibling = upstream
        .client()
        .head_manifest("library/busybox", "1.37.1")
        .await
        .unwrap()
        .unwrap();
    v["annotations"]["org.opencontainers.image.base.digest"] = Value::String(sibling.digest);
    r.put_manifest(
        repo,
        "edited2",
        OCI_MANIFEST,
        Bytes::from(serde_json::to_vec(&v).unwrap()),
    )
    .await
    .unwrap();
    let report = verify(format!("{host}/{repo}:edited2"), "cosign.pub")
        .await
        .expect_code(1)
        .json();
    expect_check(
        &report,
        "provenance",
        "fail",
        "the content does not match its stamp",
    );

    // An unknown image and an unknown registry are errors that name them.
    let missing = ws.run(&["verify", &format!("{host}/{repo}:nope")]).await;
    missing.expect_code(1);
    assert!(
        missing
            .stderr_flat()
            .contains(&format!("{host}/{repo}:nope")),
        "{}",
        missing.stderr
    );
    let foreign = ws.run(&["verify", "elsewhere.example/x:1"]).await;
    foreign.expect_code(1);
    assert!(
        foreign.stderr_flat().contains("no registry of the roster"),
        "{}",
        foreign.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_on_ferro() {
    scenario(ferro().await, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_on_docker_registry() {
    scenario(distribution(Auth::None).await, true).await;
}
