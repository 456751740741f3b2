//! `tags.recheck`: a placed tag not due for a recheck costs no upstream request, and the plan
//! says how many checks it skipped; a moving tag under `always` is still seen to move; a
//! duration skips inside its window and checks after it; an empty cache checks everything.
//!
//! The upstream registry sits behind the fault proxy, whose request log is the registry's side
//! of the count: what houba did not send, the registry never saw.

mod support;

use std::path::Path;

use serde_json::Value;
use support::fault::FaultProxy;
use support::houba::{Workspace, action, push_upstream, tag_digests};
use support::{Auth, distribution, ferro};

const REPO: &str = "library/busybox";

/// Release tags rechecked per `releases`, `latest` on every run.
fn policy(releases: &str) -> String {
    format!(
        "apiVersion: houba.io/v1alpha1
kind: MirrorPolicy
metadata: {{name: busybox}}
spec:
  source: {{registry: docker.io, repository: {REPO}}}
  defaults:
    owners: [group:default/platform]
    destinations: [{{registry: dest, project: mirror, repository: busybox}}]
  imports:
    - name: releases
      tags: {{includeRegex: '^1\\.\\d+\\.\\d+$', recheck: {releases}}}
    - name: moving
      tags: {{names: [latest], semverOnly: false}}
"
    )
}

/// Manifest requests (HEAD or GET, by tag or digest) the upstream registry saw for `tag`.
fn manifest_requests(proxy: &FaultProxy, tag: &str) -> Vec<String> {
    let suffix = format!("/v2/{REPO}/manifests/{tag}");
    proxy
        .requests()
        .into_iter()
        .filter(|(_, path)| path.split('?').next() == Some(suffix.as_str()))
        .map(|(method, path)| format!("{method} {path}"))
        .collect()
}

/// Every manifest request the upstream registry saw.
fn all_manifest_requests(proxy: &FaultProxy) -> Vec<String> {
    proxy
        .requests()
        .into_iter()
        .filter(|(_, path)| path.contains("/manifests/"))
        .map(|(method, path)| format!("{method} {path}"))
        .collect()
}

fn skipped(plan: &Value) -> u64 {
    plan["requests"]["docker.io"]["recheck_skipped"]
        .as_u64()
        .unwrap_or_else(|| panic!("requests.docker.io.recheck_skipped: {plan:#}"))
}

/// Move every recorded check `secs` into the past, as if it had been made that long ago.
fn backdate_checks(cache: &Path, secs: u64) -> usize {
    let mut moved = 0;
    let dir = cache.join("upstream-checks");
    for entry in std::fs::read_dir(&dir).expect("the checks are recorded in the cache") {
        let path = entry.expect("entry").path();
        let mut record: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("record")).expect("JSON record");
        for (_, check) in record["tags"].as_object_mut().expect("tags").iter_mut() {
            let checked = check["checked"].as_u64().expect("checked");
            check["checked"] = Value::from(checked - secs);
            moved += 1;
        }
        std::fs::write(&path, serde_json::to_vec(&record).expect("JSON")).expect("write");
    }
    moved
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_skips_placed_release_tags_and_a_moved_latest_is_still_replaced() {
    let (upstream, destination) = (ferro().await, distribution(Auth::None).await);
    let up = upstream.client();
    for tag in ["1.36.0", "1.37.0", "latest"] {
        push_upstream(up.as_ref(), "busybox", tag, 1).await;
    }
    let proxy = FaultProxy::start(upstream.host()).await;
    let ws = Workspace::new(proxy.host(), &[("dest", destination.host())]);
    ws.policy("busybox", &policy("never"));
    ws.apply(&[]).await;

    proxy.forget_requests();
    let warm = ws.plan_json(&[]).await;
    assert!(warm["actions"].as_array().unwrap().is_empty(), "{warm:#}");
    for tag in ["1.36.0", "1.37.0"] {
        assert_eq!(
            manifest_requests(&proxy, tag),
            Vec::<String>::new(),
            "a placed release tag under `recheck: never` costs no upstream request"
        );
    }
    assert_eq!(
        manifest_requests(&proxy, "latest").len(),
        1,
        "latest (recheck always) is checked: {:?}",
        all_manifest_requests(&proxy)
    );
    assert_eq!(skipped(&warm), 2, "{warm:#}");
    assert_eq!(
        warm["requests"]["docker.io"]["head"], 1,
        "one HEAD upstream in all (latest): {warm:#}"
    );
    let dest = &warm["requests"]["dest"];
    assert_eq!(dest["head"], 3, "destination HEADs stay: {warm:#}");

    let text = ws.plan_text().await;
    assert!(
        text.contains("Not checked upstream (recheck not due): docker.io 2 tags"),
        "{text}"
    );
    let markdown = ws.run(&["plan", "--format", "markdown"]).await;
    markdown.expect_code(0);
    assert!(
        markdown
            .stdout
            .contains("Not checked upstream (recheck not due): docker.io 2 tags"),
        "{}",
        markdown.stdout
    );

    // latest moves upstream: it is seen and replaced; the release tags still cost nothing.
    let moved = push_upstream(up.as_ref(), "busybox", "latest", 2).await;
    proxy.forget_requests();
    let plan = ws.plan_json(&[]).await;
    let latest = format!(
        "busybox/moving/default[{}/mirror/busybox:latest]",
        destination.host()
    );
    let replace = action(&plan, &latest);
    assert_eq!(replace["action"], "replace", "{plan:#}");
    assert_eq!(replace["reason"], "upstream_moved", "{plan:#}");
    assert_eq!(replace["source_digest"], moved.digest().as_str());
    assert_eq!(plan["actions"].as_array().unwrap().len(), 1, "{plan:#}");
    assert!(manifest_requests(&proxy, "1.36.0").is_empty());
    assert!(manifest_requests(&proxy, "1.37.0").is_empty());
    ws.apply_and_converge().await;
    let placed = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    let (_, raw) = destination
        .client()
        .get_manifest("mirror/busybox", &placed["latest"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        support::houba::annotations(&raw)["org.opencontainers.image.base.digest"],
        moved.digest(),
        "the destination latest holds the new upstream content"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_skips_inside_its_window_and_checks_after_it() {
    let (upstream, destination) = (ferro().await, ferro().await);
    let up = upstream.client();
    push_upstream(up.as_ref(), "busybox", "1.37.0", 1).await;
    push_upstream(up.as_ref(), "busybox", "latest", 1).await;
    let proxy = FaultProxy::start(upstream.host()).await;
    let ws = Workspace::new(proxy.host(), &[("dest", destination.host())]);
    ws.policy("busybox", &policy("24h"));
    ws.apply(&[]).await;

    // The release is re-tagged upstream inside the window: not looked at, so not seen yet.
    let retagged = push_upstream(up.as_ref(), "busybox", "1.37.0", 2).await;
    proxy.forget_requests();
    let inside = ws.plan_json(&[]).await;
    assert!(manifest_requests(&proxy, "1.37.0").is_empty());
    assert_eq!(skipped(&inside), 1, "{inside:#}");
    assert!(
        inside["actions"].as_array().unwrap().is_empty(),
        "{inside:#}"
    );

    // 25 hours later the check is due: the move is seen.
    assert_eq!(backdate_checks(&ws.path("cache"), 25 * 3600), 1);
    proxy.forget_requests();
    let after = ws.plan_json(&[]).await;
    assert_eq!(
        manifest_requests(&proxy, "1.37.0").len(),
        1,
        "one HEAD once due: {:?}",
        all_manifest_requests(&proxy)
    );
    assert_eq!(skipped(&after), 0, "{after:#}");
    let release = format!(
        "busybox/releases/default[{}/mirror/busybox:1.37.0]",
        destination.host()
    );
    assert_eq!(action(&after, &release)["reason"], "upstream_moved");

    // Planned but not applied: the check just made saw content the destination does not hold
    // yet, so the tag stays due and the move is not forgotten.
    proxy.forget_requests();
    let again = ws.plan_json(&[]).await;
    assert_eq!(manifest_requests(&proxy, "1.37.0").len(), 1);
    assert_eq!(action(&again, &release)["reason"], "upstream_moved");

    ws.apply_and_converge().await;
    let placed = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    let (_, raw) = destination
        .client()
        .get_manifest("mirror/busybox", &placed["1.37.0"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        support::houba::annotations(&raw)["org.opencontainers.image.base.digest"],
        retagged.digest()
    );
    // Placed and checked: inside a new window again.
    proxy.forget_requests();
    let settled = ws.plan_json(&[]).await;
    assert!(manifest_requests(&proxy, "1.37.0").is_empty());
    assert_eq!(skipped(&settled), 1, "{settled:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_cache_checks_every_tag_and_plans_what_moved() {
    let (upstream, destination) = (ferro().await, ferro().await);
    let up = upstream.client();
    for tag in ["1.36.0", "1.37.0", "latest"] {
        push_upstream(up.as_ref(), "busybox", tag, 1).await;
    }
    let proxy = FaultProxy::start(upstream.host()).await;
    let ws = Workspace::new(proxy.host(), &[("dest", destination.host())]);
    ws.policy("busybox", &policy("never"));
    ws.apply(&[]).await;

    // A fresh pod: the cache is gone, and upstream re-tagged a release meanwhile.
    let retagged = push_upstream(up.as_ref(), "busybox", "1.36.0", 2).await;
    let cache = ws.path("cache");
    std::fs::remove_dir_all(&cache).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    proxy.forget_requests();
    let cold = ws.plan_json(&[]).await;
    for tag in ["1.36.0", "1.37.0", "latest"] {
        let heads: Vec<String> = manifest_requests(&proxy, tag)
            .into_iter()
            .filter(|r| r.starts_with("HEAD "))
            .collect();
        assert_eq!(heads.len(), 1, "{tag} is checked with no record");
    }
    assert_eq!(
        cold["requests"]["docker.io"]["recheck_skipped"], 0,
        "{cold:#}"
    );
    let release = format!(
        "busybox/releases/default[{}/mirror/busybox:1.36.0]",
        destination.host()
    );
    let replace = action(&cold, &release);
    assert_eq!(replace["reason"], "upstream_moved", "{cold:#}");
    assert_eq!(replace["source_digest"], retagged.digest().as_str());
    assert_eq!(cold["actions"].as_array().unwrap().len(), 1, "{cold:#}");

    ws.apply_and_converge().await;
    proxy.forget_requests();
    let warm = ws.plan_json(&[]).await;
    assert_eq!(skipped(&warm), 2, "the record is back: {warm:#}");
    assert!(manifest_requests(&proxy, "1.36.0").is_empty());
}
