//! What a user hits in the first hour: drift that is really drift, refusals instead of silent
//! no-ops, saved plans that survive a comment, plan wording, output into a closed pipe.

mod support;

use support::houba::{Policy, Workspace, action, push_upstream, tag_digests};
use support::{Auth, distribution, ferro};

fn busybox() -> Policy {
    let mut p = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    p.aliases = vec!["latest".into()];
    p
}

/// An alias moved by hand to another placed digest is drift, and named as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_moved_by_hand_to_another_placed_tag_is_drift() {
    let (upstream, destination) = (ferro().await, distribution(Auth::None).await);
    for tag in ["1.36.1", "1.37.1"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let policy = busybox();
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    let dst = destination.client();
    let placed = tag_digests(dst.as_ref(), "mirror/busybox").await;
    assert_eq!(placed["latest"], placed["1.37.1"]);
    let (_, older) = dst
        .get_manifest("mirror/busybox", &placed["1.36.1"])
        .await
        .unwrap()
        .unwrap();
    dst.put_manifest(
        "mirror/busybox",
        "latest",
        support::images::OCI_MANIFEST,
        older,
    )
    .await
    .unwrap();

    let drift = ws.run(&["drift"]).await;
    drift.expect_code(2);
    assert!(
        drift
            .stdout
            .contains("alias latest was moved outside houba from 1.37.1 to 1.36.1"),
        "{}",
        drift.stdout
    );
    let plan = ws.plan_json(&[]).await;
    let latest = policy.address(destination.host(), "latest");
    assert_eq!(plan["drift"][0]["kind"], "alias-moved", "{plan:#}");
    assert_eq!(plan["drift"][0]["address"], latest.as_str());
    let a = action(&plan, &latest);
    assert_eq!(a["reason"], "moved_outside");
    assert_eq!(a["alias"]["current_tag"], "1.36.1");
    ws.apply(&[]).await;
    let after = tag_digests(dst.as_ref(), "mirror/busybox").await;
    assert_eq!(after["latest"], placed["1.37.1"], "houba points it back");
    ws.run(&["drift"]).await.expect_code(0);
}

/// Flags that would silently do nothing are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_no_ops_are_refused() {
    let (upstream, destination) = (ferro().await, ferro().await);
    push_upstream(upstream.client().as_ref(), "busybox", "1.37.0", 1).await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    ws.policy("busybox", &busybox().yaml());

    let unknown = ws.run(&["plan", "--target", "nosuchpolicy"]).await;
    unknown.expect_code(1);
    assert!(
        unknown
            .stderr_flat()
            .contains("--target nosuchpolicy selects nothing"),
        "{}",
        unknown.stderr
    );
    let typo = ws.run(&["plan", "--target", "busybox/stabel"]).await;
    typo.expect_code(1);
    assert!(
        typo.stderr_flat()
            .contains("did you mean `busybox/stable`?"),
        "{}",
        typo.stderr
    );

    let saved = ws.path("plan.json");
    ws.run(&["plan", "-o", saved.to_str().unwrap()])
        .await
        .expect_code(0);
    let narrowed = ws
        .run(&["apply", saved.to_str().unwrap(), "--target", "busybox"])
        .await;
    narrowed.expect_code(1);
    assert!(
        narrowed
            .stderr_flat()
            .contains("a saved plan is applied whole"),
        "{}",
        narrowed.stderr
    );
    assert!(
        tag_digests(destination.client().as_ref(), "mirror/busybox")
            .await
            .is_empty(),
        "nothing applied"
    );

    let drift = ws.run(&["drift", "--detailed-exitcode"]).await;
    drift.expect_code(1);
    assert!(
        drift
            .stderr_flat()
            .contains("`houba drift` already reports drift in its exit code"),
        "{}",
        drift.stderr
    );
}

/// A comment-only edit of a policy leaves a saved plan applicable; a real edit does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_does_not_make_a_saved_plan_stale() {
    let (upstream, destination) = (ferro().await, ferro().await);
    push_upstream(upstream.client().as_ref(), "busybox", "1.37.0", 1).await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let mut policy = busybox();
    ws.policy("busybox", &policy.yaml());
    let saved = ws.path("plan.json");
    ws.run(&["plan", "-o", saved.to_str().unwrap()])
        .await
        .expect_code(0);
    ws.policy(
        "busybox",
        &format!("# reviewed by the platform team\n{}", policy.yaml()),
    );
    ws.run(&["apply", saved.to_str().unwrap()])
        .await
        .expect_code(0);
    assert_eq!(
        tag_digests(destination.client().as_ref(), "mirror/busybox")
            .await
            .len(),
        2
    );

    push_upstream(upstream.client().as_ref(), "busybox", "1.36.0", 1).await;
    ws.run(&["plan", "-o", saved.to_str().unwrap()])
        .await
        .expect_code(0);
    policy.owners = vec!["group:default/sre".into()];
    ws.policy("busybox", &policy.yaml());
    let stale = ws.run(&["apply", saved.to_str().unwrap()]).await;
    stale.expect_code(1);
    assert!(
        stale
            .stderr_flat()
            .contains("the policies or the configuration changed since the plan was made"),
        "{}",
        stale.stderr
    );
}

/// `houba plan | head -1`: the reader goes away; houba ends without a panic or a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_quietly() {
    let (upstream, destination) = (ferro().await, ferro().await);
    for tag in ["1.36.0", "1.36.1", "1.37.0", "1.37.1"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    ws.policy("busybox", &busybox().yaml());
    let mut cmd = ws.command(&["plan"]);
    // The pipe is closed before houba writes: every write fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer);
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// A new alias is created (`+`), not "re-pointed (absent)"; a moved one compares tag with tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_wording_says_what_happens() {
    let (upstream, destination) = (ferro().await, ferro().await);
    push_upstream(upstream.client().as_ref(), "busybox", "1.37.0", 1).await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let policy = busybox();
    ws.policy("busybox", &policy.yaml());
    let host = destination.host();
    let text = ws.plan_text().await;
    assert!(
        text.contains(&format!(
            "# {} will be created",
            policy.address(host, "latest")
        )) && text.contains(&format!("+ alias \"{host}/mirror/busybox:latest\""))
            && text.contains("+ target = \"1.37.0\"")
            && !text.contains("re-pointed"),
        "{text}"
    );
    ws.apply_and_converge().await;
    push_upstream(upstream.client().as_ref(), "busybox", "1.37.1", 1).await;
    let text = ws.plan_text().await;
    assert!(
        text.contains("~ target = \"1.37.0\" -> \"1.37.1\""),
        "tag compared with tag: {text}"
    );
}

/// The manifests apply wrote go into the content-addressed cache: the first plan after
/// applying a rebuild reads nothing more than a fully warm one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_caches_what_it_placed() {
    let (upstream, destination) = (ferro().await, ferro().await);
    let image = support::images::multi_arch("busybox 1.37.0");
    support::images::push_image(
        upstream.client().as_ref(),
        "library/busybox",
        "1.37.0",
        &image,
    )
    .await
    .unwrap();
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    // No alias: pointing one at the rebuilt image would read it back and hide the point.
    let yaml = Policy::new("busybox", "busybox", r"^1\.37\.\d+$", "dest")
        .yaml()
        .replace(
            "      owners:",
            "      platforms: [linux/amd64]\n      owners:",
        );
    ws.policy("busybox", &yaml);
    let plan = ws.plan_json(&[]).await;
    assert_eq!(plan["summary"]["build"], 1, "{plan:#}");
    ws.apply(&[]).await;
    let requests = |plan: &serde_json::Value| plan["requests"]["dest"].clone();
    let first = ws.plan_json(&[]).await;
    assert!(first["actions"].as_array().unwrap().is_empty(), "{first:#}");
    let warm = ws.plan_json(&[]).await;
    assert_eq!(
        requests(&first),
        requests(&warm),
        "the first plan after apply re-read a manifest apply wrote"
    );
    assert_eq!(
        requests(&warm)["head"],
        1,
        "one HEAD per destination tag: {warm:#}"
    );
}

/// Every blob an apply needed is counted once: uploaded, mounted or already present. Two
/// images sharing a base layer: five blobs go up, the shared one is then present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apply_summary_blob_counters_add_up() {
    let (upstream, destination) = (ferro().await, ferro().await);
    for tag in ["1.36.0", "1.37.0"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    ws.policy(
        "busybox",
        &Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest").yaml(),
    );
    let report = ws.apply(&[]).await;
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(
        n("blobs_uploaded") + n("blobs_mounted") + n("blobs_skipped"),
        6,
        "2 configs + 2 own layers + the shared base layer twice: {report:#}"
    );
    assert_eq!(n("blobs_uploaded"), 5, "{report:#}");
    // Applying the same content again elsewhere finds every blob present.
    let mut again = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    again.vendor = Some("Another Team".into());
    ws.policy("busybox", &again.yaml());
    let text = ws
        .run(&["apply", "--auto"])
        .await
        .expect_code(0)
        .stdout
        .clone();
    assert!(
        text.contains("0 blobs uploaded, 0 mounted, 0 already present"),
        "a restamp moves no blob: {text}"
    );
}

/// A failure's cause is printed once: not again under the report's `╰─▶` chain, and the run
/// report carries it too (once). Two real failures: an OCI layout destination whose path runs
/// through a regular file (every read fails with ENOTDIR), and an upstream that refuses
/// connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_printed_once() {
    let upstream = ferro().await;
    push_upstream(upstream.client().as_ref(), "busybox", "1.37.0", 1).await;
    let ws = Workspace::new(upstream.host(), &[]);
    std::fs::write(ws.path("not-a-directory"), "x").unwrap();
    let roster = |upstream_host: &str, layout: std::path::PathBuf| {
        format!(
            "policies = [\"policies\"]\n\n[registries.upstream]\nhost = \"{upstream_host}\"\ntls_verify = false\nmirror_of = \"docker.io\"\n\n[registries.dest]\nlayout = \"{}\"\n",
            layout.display()
        )
    };
    let broken_layout = ws.path("not-a-directory").join("layout");
    std::fs::write(ws.config(), roster(upstream.host(), broken_layout)).unwrap();
    ws.policy("busybox", &busybox().yaml());
    let plan = ws.run(&["plan"]).await;
    plan.expect_code(1);
    let stderr = plan.stderr_flat();
    assert!(
        stderr.contains("cannot read the tags of dest/mirror/busybox"),
        "{}",
        plan.stderr
    );
    assert_eq!(
        stderr.matches("os error 20").count(),
        1,
        "the cause once:\n{}",
        plan.stderr
    );

    let refusing = format!("127.0.0.1:{}", support::free_port());
    std::fs::write(ws.config(), roster(&refusing, ws.path("layout"))).unwrap();
    let apply = ws.run(&["apply", "--auto", "--format", "json"]).await;
    apply.expect_code(1);
    let stderr = apply.stderr_flat();
    assert!(
        stderr.contains("cannot read the tags of docker.io/library/busybox")
            && stderr.contains("GET /v2/library/busybox/tags/list: "),
        "the request is named in registry terms: {}",
        apply.stderr
    );
    assert_eq!(
        stderr.matches("os error 111").count(),
        1,
        "the cause once:\n{}",
        apply.stderr
    );
    let report = apply.json();
    let error = report["error"].as_str().unwrap();
    assert!(
        error.starts_with("cannot read the tags of docker.io/library/busybox: ")
            && error.matches("os error 111").count() == 1,
        "the run report says why, once: {error}"
    );
}

/// The plan's `Requests:` line names requests as the registry's access log does
/// (`GET /v2/<repo>/tags/list`), and the JSON plan counts them the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_named_in_registry_terms() {
    let (upstream, destination) = (ferro().await, ferro().await);
    push_upstream(upstream.client().as_ref(), "busybox", "1.37.0", 1).await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    ws.policy("busybox", &busybox().yaml());
    ws.apply_and_converge().await;
    let text = ws.plan_text().await;
    let line = text
        .lines()
        .find(|l| l.starts_with("Requests:"))
        .unwrap_or_else(|| panic!("no request line:\n{text}"));
    assert!(
        line.contains(
            "docker.io 2 (1 GET /v2/<repo>/tags/list, 1 HEAD /v2/<repo>/manifests/<ref>)"
        ),
        "one tag list and one HEAD upstream: {line}"
    );
    assert!(
        line.contains("1 GET /v2/_catalog") && !line.contains("HEAD 1") && !line.contains(":tags"),
        "{line}"
    );
    let plan = ws.plan_json(&[]).await;
    let upstream_requests = &plan["requests"]["docker.io"];
    assert_eq!(
        upstream_requests["endpoints"]["GET /v2/<repo>/tags/list"], 1,
        "{upstream_requests:#}"
    );
    let dest = plan["requests"]["dest"]["endpoints"].as_object().unwrap();
    assert_eq!(
        dest.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        plan["requests"]["dest"]["total"].as_u64().unwrap(),
        "every request is counted under its endpoint: {dest:?}"
    );
}

/// A placement whose blobs were all at the destination says so on its own line, and the
/// summary adds up to the lines: the tag is overwritten by hand with the unstamped upstream
/// manifest (same blobs), so houba replaces it and moves no blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_blobs_were_present_says_so() {
    let (upstream, destination) = (ferro().await, ferro().await);
    push_upstream(upstream.client().as_ref(), "busybox", "1.37.0", 1).await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let policy = Policy::new("busybox", "busybox", r"^1\.37\.0$", "dest");
    ws.policy("busybox", &policy.yaml());
    let first = ws.apply(&[]).await;
    assert_eq!(
        first["results"][0]["blobs"],
        serde_json::json!({"uploaded": 3, "mounted": 0, "present": 0}),
        "config and two layers uploaded: {first:#}"
    );
    let (_, raw) = upstream
        .client()
        .get_manifest("library/busybox", "1.37.0")
        .await
        .unwrap()
        .unwrap();
    destination
        .client()
        .put_manifest(
            "mirror/busybox",
            "1.37.0",
            support::images::OCI_MANIFEST,
            raw,
        )
        .await
        .unwrap();
    let address = policy.address(destination.host(), "1.37.0");
    let text = ws
        .run(&["apply", "--auto"])
        .await
        .expect_code(0)
        .stdout
        .clone();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{address}: replace done")))
        .unwrap_or_else(|| panic!("no replace line:\n{text}"));
    assert!(
        line.ends_with("; every blob already present (3), none moved"),
        "{line}"
    );
    assert!(
        text.contains("0 blobs uploaded, 0 mounted, 3 already present"),
        "the summary adds up to the lines: {text}"
    );
}
