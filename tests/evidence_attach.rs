//! `houba attach`: a real grype-format SARIF report becomes a signed referrer of the image on
//! both registry kinds (ferro: referrers API; distribution 2.8: fallback tags and cosign's
//! `.sig` tag); `--fail-on` exit codes; an invalid report attaches nothing.

mod evidence_support;
mod support;

use std::path::Path;

use evidence_support::{COSIGN_SIG, openssl_key_pair, referrers_of, verify_signature_with_openssl};
use support::houba::Workspace;
use support::images::{self, OCI_LAYER_GZIP};
use support::{Auth, TestRegistry, distribution, ferro};

const SARIF: &str = "application/sarif+json";

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/sarif")
        .join(name)
        .display()
        .to_string()
}

async fn attach_records_reports(destination: TestRegistry, native_referrers: bool) {
    let client = destination.client();
    let layer = images::tar_layer(OCI_LAYER_GZIP, &[("etc/os-release", b"ID=alpine\n")]);
    let image = images::oci_image("attach", "amd64", vec![layer]);
    images::push_image(client.as_ref(), "demo/app", "1.0", &image)
        .await
        .unwrap();
    let digest = image.digest();
    let ws = Workspace::new(destination.host(), &[("dest", destination.host())]);
    std::fs::create_dir_all(ws.path("keys")).unwrap();
    let (private, public) = openssl_key_pair(&ws.path("keys"));
    ws.write_config(&format!(
        "[signing]\nkey_file = \"{}\"\n",
        private.display()
    ));
    let image_ref = format!("{}/demo/app:1.0", destination.host());

    // A report that is not SARIF: a clear error naming the first problem, nothing attached.
    std::fs::write(
        ws.path("bad.json"),
        r#"{"version":"2.1.0","runs":[{"tool":{}}]}"#,
    )
    .unwrap();
    let bad = ws
        .run(&[
            "attach",
            &image_ref,
            "--report",
            ws.path("bad.json").to_str().unwrap(),
        ])
        .await;
    bad.expect_code(1);
    assert!(
        bad.stderr_flat().contains("$.runs[0].tool.driver"),
        "{}",
        bad.stderr
    );
    assert!(
        client
            .referrer_details("demo/app", &digest)
            .await
            .unwrap()
            .is_empty()
    );

    // The grype report has a critical and a high finding: attached, then exit 3.
    let run = ws
        .run(&[
            "attach",
            &image_ref,
            "--report",
            &fixture("grype-alpine.sarif.json"),
            "--fail-on",
            "high",
        ])
        .await;
    run.expect_code(3);
    assert!(run.stdout.contains(&digest), "{}", run.stdout);
    let reports = referrers_of(client.as_ref(), "demo/app", &digest, SARIF).await;
    assert_eq!(reports.len(), 1);
    let counts = &reports[0].annotations;
    for (severity, n) in [
        ("critical", "1"),
        ("high", "1"),
        ("medium", "1"),
        ("low", "1"),
    ] {
        assert_eq!(
            counts[&format!("io.houba.scan.{severity}")],
            n,
            "{counts:?}"
        );
    }
    assert_eq!(counts["io.houba.scan.tool"], "grype");
    assert!(counts.contains_key("org.opencontainers.image.created"));
    let report_digest = reports[0].descriptor.digest.clone();
    let scratch = tempfile::tempdir().unwrap();
    let signed = verify_signature_with_openssl(
        client.as_ref(),
        "demo/app",
        &report_digest,
        &public,
        scratch.path(),
    )
    .await;
    assert_eq!(
        signed, report_digest,
        "the payload names the report it signs"
    );

    // Only a medium finding: --fail-on high passes, --fail-on medium does not.
    let medium = fixture("grype-alpine-medium.sarif.json");
    ws.run(&[
        "attach",
        &image_ref,
        "--report",
        &medium,
        "--fail-on",
        "high",
    ])
    .await
    .expect_code(0);
    ws.run(&[
        "attach",
        &image_ref,
        "--report",
        &medium,
        "--fail-on",
        "medium",
    ])
    .await
    .expect_code(3);
    // Without an end time in the report, each attach is recorded at its own time; the document
    // itself is stored once.
    let reports = referrers_of(client.as_ref(), "demo/app", &digest, SARIF).await;
    let mut documents = std::collections::BTreeSet::new();
    for r in &reports {
        let m = evidence_support::manifest_json(client.as_ref(), "demo/app", &r.descriptor.digest)
            .await;
        documents.insert(m["layers"][0]["digest"].as_str().unwrap().to_owned());
    }
    assert_eq!(documents.len(), 2, "two distinct reports: {reports:?}");

    let tags = client.list_tags("demo/app").await.unwrap();
    let hex = &report_digest[7..];
    let fallback = format!("sha256-{}", &digest[7..]);
    if native_referrers {
        assert!(!tags.contains(&fallback), "{tags:?}");
    } else {
        assert!(tags.contains(&fallback), "{tags:?}");
        assert!(
            tags.contains(&format!("sha256-{hex}.sig")),
            "cosign's tag: {tags:?}"
        );
    }
    let sigs = referrers_of(client.as_ref(), "demo/app", &report_digest, COSIGN_SIG).await;
    assert_eq!(sigs.len(), 1);
    // The private key never shows.
    let key = std::fs::read_to_string(&private).unwrap();
    let secret_line = key.lines().nth(1).unwrap();
    assert!(!run.stdout.contains(secret_line) && !run.stderr.contains(secret_line));
}

#[tokio::test]
async fn attach_on_a_registry_with_the_referrers_api() {
    attach_records_reports(ferro().await, true).await;
}

#[tokio::test]
async fn attach_on_a_registry_without_the_referrers_api() {
    attach_records_reports(distribution(Auth::None).await, false).await;
}
