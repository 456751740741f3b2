//! `houba gc` deletes exactly the evidence of images houba placed that lost their tags, and
//! nothing else (listed on the registry before and after). `houba purge` deletes only the
//! marked tags the usage oracle calls unused, keeps what it calls in use or cannot answer for,
//! and respects the grace period. On ferro-oci-server and on docker-registry.

mod consumers_support;
mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use houba::registry::Descriptor;
use serde_json::{Value, json};
use support::houba::{Policy, Workspace, all_tag_digests, push_upstream, tag_digests};
use support::images::{self, OCI_LAYER_GZIP};
use support::{Auth, TestRegistry, distribution, ferro};

use consumers_support::{
    Counts, attach_sarif, attach_sbom, attach_signature, key, manifest_exists, referrer_digests,
};

const REPO: &str = "mirror/busybox";

async fn attach_all(dest: &TestRegistry, subject: &Descriptor, sig_tag: bool) -> Vec<String> {
    let client = dest.client();
    let r = client.as_ref();
    let mut out = vec![attach_sbom(r, REPO, subject, false).await];
    out.push(
        attach_signature(r, dest.host(), REPO, subject, &key(3), sig_tag)
            .await
            .digest,
    );
    out.push(
        attach_sarif(
            r,
            REPO,
            subject,
            Counts::default(),
            &[],
            "2024-06-01T00:00:00Z",
        )
        .await,
    );
    out.sort();
    out
}

async fn gc_scenario(dest: TestRegistry, sig_tag: bool) {
    let upstream = ferro().await;
    for tag in ["1.37.0", "1.37.1", "1.37.2"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", dest.host())]);
    let mut policy = Policy::new("busybox", "busybox", r"^1\.37\.[012]$", "dest");
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    let client = dest.client();
    let r = client.as_ref();

    let mut subjects = BTreeMap::new();
    let mut evidence = BTreeMap::new();
    for tag in ["1.37.0", "1.37.1", "1.37.2"] {
        let d = r.head_manifest(REPO, tag).await.unwrap().unwrap();
        // What the subject carries: houba's own SBOMs (attached by the apply) and ours.
        let attached = attach_all(&dest, &d, sig_tag).await;
        let all = referrer_digests(r, REPO, &d.digest).await;
        assert!(attached.iter().all(|a| all.contains(a)), "{all:?}");
        evidence.insert(tag, all);
        subjects.insert(tag, d);
    }
    // An image pushed by hand, with evidence, then untagged: not houba's, never touched.
    let layer = images::tar_layer(OCI_LAYER_GZIP, &[("hand", b"made\n")]);
    let hand = images::oci_image("by hand", "amd64", vec![layer]);
    let hand_d = images::push_image(r, REPO, "hand", &hand).await.unwrap();
    let hand_evidence = vec![attach_sbom(r, REPO, &hand_d, false).await];
    r.remove_tag(REPO, "hand").await.unwrap();

    // 1.37.2 leaves the selection: the prune deletes its tag, its evidence stays behind.
    policy.include = r"^1\.37\.[01]$".into();
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    let orphan = &subjects["1.37.2"];
    assert!(!tag_digests(r, REPO).await.contains_key("1.37.2"));
    assert_eq!(
        referrer_digests(r, REPO, &orphan.digest).await,
        evidence["1.37.2"]
    );

    // The plan: exactly the orphan's evidence; a dry run deletes nothing.
    let plan = ws
        .run(&["gc", "--format", "json"])
        .await
        .expect_code(0)
        .json();
    assert_eq!(plan["dry_run"], true);
    let orphans = plan["plan"]["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{plan:#}");
    assert_eq!(orphans[0]["subject"], orphan.digest.as_str());
    let mut planned: Vec<String> = orphans[0]["deletions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["tag"].is_null())
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    planned.sort();
    assert_eq!(planned, evidence["1.37.2"]);
    let evidence_tags: Vec<&str> = orphans[0]["deletions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["tag"].as_str())
        .collect();
    let fallback = format!("sha256-{}", &orphan.digest["sha256:".len()..]);
    if sig_tag {
        // The .sig tag holds the signature referrer itself, already listed by digest.
        assert_eq!(evidence_tags, vec![fallback.as_str()], "{plan:#}");
    } else {
        assert!(evidence_tags.is_empty(), "{plan:#}");
    }
    if sig_tag {
        // The hand-pushed subject is visible through its fallback tag, and kept.
        assert!(
            plan["plan"]["kept"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["subject"] == hand_d.digest.as_str()
                    && k["reason"].as_str().unwrap().contains("not stamped")),
            "{plan:#}"
        );
    }
    assert_eq!(
        referrer_digests(r, REPO, &orphan.digest).await,
        evidence["1.37.2"]
    );
    let text = ws.run(&["gc"]).await.expect_code(0).stdout.clone();
    assert!(text.contains("Dry run: nothing was deleted"), "{text}");

    let tags_before = all_tag_digests(r, REPO).await;
    let done = ws
        .run(&["gc", "--auto", "--format", "json"])
        .await
        .expect_code(0)
        .json();
    assert_eq!(done["deleted"], planned.len() + evidence_tags.len());
    // After: the orphan's evidence is gone, everything else is exactly as before.
    assert!(referrer_digests(r, REPO, &orphan.digest).await.is_empty());
    for d in &evidence["1.37.2"] {
        assert!(!manifest_exists(r, REPO, d).await, "{d} survived");
    }
    for tag in ["1.37.0", "1.37.1"] {
        assert_eq!(
            referrer_digests(r, REPO, &subjects[tag].digest).await,
            evidence[tag]
        );
    }
    assert_eq!(
        referrer_digests(r, REPO, &hand_d.digest).await,
        hand_evidence
    );
    let tags_after = all_tag_digests(r, REPO).await;
    let mut expected_tags = tags_before.clone();
    if sig_tag {
        assert!(expected_tags.remove(&fallback).is_some());
        expected_tags.remove(&format!("{fallback}.sig"));
    }
    if sig_tag {
        assert!(
            tags_before.contains_key(&format!("{fallback}.sig")),
            "{tags_before:?}"
        );
    }
    assert_eq!(tags_after, expected_tags);
    // Nothing left to collect.
    let again = ws
        .run(&["gc", "--format", "json"])
        .await
        .expect_code(0)
        .json();
    assert!(
        again["plan"]["orphans"].as_array().unwrap().is_empty(),
        "{again:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_on_ferro() {
    gc_scenario(ferro().await, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_on_docker_registry() {
    gc_scenario(distribution(Auth::None).await, true).await;
}

fn write_oracle(ws: &Workspace, answers: &BTreeMap<String, i32>) -> String {
    let table: String = answers
        .iter()
        .map(|(d, code)| format!("{d} {code}\n"))
        .collect();
    std::fs::write(ws.path("answers"), table).unwrap();
    // Answers by digest; an image it was not told about is "unknown" (exit 3). Every call is
    // logged, so the test can see what was asked.
    let script = format!(
        "#!/bin/sh\necho \"$1\" >> {calls}\ncode=$(grep \"^${{1##*@}} \" {answers} | cut -d' ' -f2)\n[ -n \"$code\" ] || {{ echo \"no idea\"; exit 3; }}\necho \"answer $code\"\nexit \"$code\"\n",
        calls = ws.path("calls").display(),
        answers = ws.path("answers").display(),
    );
    let path = ws.path("oracle.sh");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

async fn purge_scenario(dest: TestRegistry) {
    let upstream = ferro().await;
    let old = "2020-01-01T00:00:00Z".to_string();
    let young = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(3600))
        .to_string();
    let u = upstream.client();
    for (tag, created) in [
        ("1.0.0", &old),
        ("1.1.0", &old),
        ("1.2.0", &old),
        ("1.3.0", &young),
        ("2.0.0", &old),
    ] {
        let image = support::houba::upstream_image_annotated(
            "busybox",
            tag,
            1,
            Some(json!({"org.opencontainers.image.created": created})),
        );
        images::push_image(u.as_ref(), "library/busybox", tag, &image)
            .await
            .unwrap();
    }
    let ws = Workspace::new(upstream.host(), &[("dest", dest.host())]);
    let mut policy = Policy::new("busybox", "busybox", r"^[12]\.\d\.0$", "dest");
    policy.deletion_mode = Some("mark".into());
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    policy.include = r"^2\.0\.0$".into();
    ws.policy("busybox", &policy.yaml());
    ws.apply(&["--allow-mass-prune"]).await;
    let client = dest.client();
    let r = client.as_ref();
    let marked = tag_digests(r, REPO).await;
    assert_eq!(marked.len(), 5, "{marked:?}");

    let answers: BTreeMap<String, i32> = [
        (marked["1.0.0"].clone(), 1), // unused: deleted
        (marked["1.1.0"].clone(), 0), // in use: kept
        (marked["1.2.0"].clone(), 7), // cannot tell: kept
        (marked["1.3.0"].clone(), 1), // unused, but younger than the grace period: kept
        (marked["2.0.0"].clone(), 1), // unused, but not marked: never asked, kept
    ]
    .into_iter()
    .collect();
    let oracle = write_oracle(&ws, &answers);

    let plan = ws
        .run(&["purge", "--usage-oracle", &oracle, "--format", "json"])
        .await
        .expect_code(0)
        .json();
    let verdict = |tag: &str| -> Value {
        plan["plan"]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["tag"] == tag)
            .map(|c| c["verdict"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(verdict("1.0.0"), "delete", "{plan:#}");
    assert_eq!(verdict("1.1.0"), "keep-in-use");
    assert_eq!(verdict("1.2.0"), "keep-unknown-usage");
    assert_eq!(verdict("1.3.0"), "keep-in-grace");
    assert_eq!(verdict("2.0.0"), Value::Null, "not marked, not a candidate");
    assert_eq!(
        tag_digests(r, REPO).await,
        marked,
        "a dry run deletes nothing"
    );
    let calls = std::fs::read_to_string(ws.path("calls")).unwrap();
    let asked: Vec<&str> = calls.lines().collect();
    assert_eq!(
        asked.len(),
        3,
        "the oracle is asked only past the grace period: {calls}"
    );
    assert!(asked.contains(&format!("{}/{REPO}@{}", dest.host(), marked["1.0.0"]).as_str()));

    // The mass-delete guard: with no grace and an oracle calling everything unused, 4 of 5
    // stamped tags would go: refused, nothing deleted.
    let all_unused: BTreeMap<String, i32> = marked.values().map(|d| (d.clone(), 1)).collect();
    let greedy = write_oracle(&ws, &all_unused);
    let refused = ws
        .run(&[
            "purge",
            "--usage-oracle",
            &greedy,
            "--grace",
            "0s",
            "--auto",
        ])
        .await;
    refused.expect_code(1);
    assert!(
        refused
            .stderr_flat()
            .contains("refusing to delete more than 50%"),
        "{}",
        refused.stderr
    );
    assert_eq!(tag_digests(r, REPO).await, marked);

    let oracle = write_oracle(&ws, &answers);
    ws.run(&["purge", "--usage-oracle", &oracle, "--auto"])
        .await
        .expect_code(0);
    let mut expected = marked.clone();
    expected.remove("1.0.0");
    assert_eq!(tag_digests(r, REPO).await, expected);

    // A missing oracle is an error, not "unknown for everything".
    let missing = ws
        .run(&["purge", "--usage-oracle", "./no-such-oracle"])
        .await;
    missing.expect_code(1);
    assert!(
        missing.stderr_flat().contains("no-such-oracle"),
        "{}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_on_ferro() {
    purge_scenario(ferro().await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_on_docker_registry() {
    purge_scenario(distribution(Auth::None).await).await;
}

/// The shipped example oracle, against a stand-in for Prometheus's query API
/// (`GET /api/v1/query?query=…` → `{"status":"success","data":{"result":[{"value":[t,"N"]}]}}`)
/// answering for kube-state-metrics' `kube_pod_container_info`.
#[tokio::test(flavor = "multi_thread")]
async fn example_kube_state_metrics_oracle() {
    use axum::extract::Query;
    use axum::http::StatusCode;
    use axum::routing::get;

    let running = houba::registry::digest::sha256_digest(b"running");
    let idle = houba::registry::digest::sha256_digest(b"idle");
    let broken = houba::registry::digest::sha256_digest(b"broken");
    let (r, b) = (running.clone(), broken.clone());
    let app = axum::Router::new().route(
        "/api/v1/query",
        get(move |Query(q): Query<BTreeMap<String, String>>| {
            let (r, b) = (r.clone(), b.clone());
            async move {
                let query = q.get("query").cloned().unwrap_or_default();
                assert!(query.contains("kube_pod_container_info"), "{query}");
                if query.contains(&b) {
                    return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
                }
                let n = if query.contains(&r) { "2" } else { "0" };
                let body = json!({"status": "success", "data": {"resultType": "vector",
                    "result": [{"metric": {}, "value": [1_700_000_000, n]}]}});
                (StatusCode::OK, body.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _server = support::AbortOnDrop(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/oracle/ksm-oracle.sh");
    let ask = |image: String| {
        let (script, url) = (script.clone(), url.clone());
        async move {
            tokio::process::Command::new(&script)
                .arg(image)
                .env("PROMETHEUS_URL", url)
                .output()
                .await
                .expect("oracle runs")
                .status
                .code()
        }
    };
    assert_eq!(ask(format!("r.example/app@{running}")).await, Some(0));
    assert_eq!(ask(format!("r.example/app@{idle}")).await, Some(1));
    assert_eq!(ask(format!("r.example/app@{broken}")).await, Some(3));
    assert_eq!(ask("r.example/app:latest".into()).await, Some(3));
}
