//! Tags dropped from the selection: pruned (deleted, or kept and marked), never more than the
//! configured share of a repository under `--auto` without `--allow-mass-prune`.

mod support;

use support::houba::{
    Policy, Workspace, action, actions, annotations, push_upstream, skopeo_raw, tag_digests,
};
use support::{Auth, TestRegistry, distribution, ferro};

async fn seeded(
    destination: &TestRegistry,
    tags: &[&str],
    policy: &Policy,
) -> (TestRegistry, Workspace) {
    let upstream = ferro().await;
    for tag in tags {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    (upstream, ws)
}

fn busybox_policy() -> Policy {
    let mut p = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    p.aliases = vec!["{major}.{minor}".into(), "latest".into()];
    p
}

/// Dropping the 1.37 line prunes 1.37.0 and its alias 1.37 (the same manifest) while `latest`
/// moves back to 1.36.1: on distribution, which cannot delete a tag, the tag is pruned without
/// taking the other tags of the same manifest with it.
async fn dropped_tags_are_deleted(destination: TestRegistry) {
    let mut policy = busybox_policy();
    let (_upstream, ws) = seeded(&destination, &["1.36.0", "1.36.1", "1.37.0"], &policy).await;
    let host = destination.host();
    let before = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    assert_eq!(before.len(), 6);

    policy.include = r"^1\.36\.\d+$".into();
    ws.policy("busybox", &policy.yaml());
    let text = ws.plan_text().await;
    assert!(
        text.contains(&format!("- prune \"{host}/mirror/busybox:1.37.0\""))
            && text.contains("deletionMode purge: the tag is deleted"),
        "{text}"
    );
    let plan = ws.plan_json(&[]).await;
    assert_eq!(
        actions(&plan),
        vec![
            ("alias".to_string(), policy.address(host, "latest")),
            ("prune".to_string(), policy.address(host, "1.37.0")),
            ("prune".to_string(), policy.address(host, "1.37")),
        ]
    );
    assert_eq!(
        action(&plan, &policy.address(host, "1.37.0"))["prune_mode"],
        "delete"
    );

    ws.apply_and_converge().await;
    let after = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    let tags: Vec<&str> = after.keys().map(String::as_str).collect();
    assert_eq!(tags, ["1.36", "1.36.0", "1.36.1", "latest"]);
    for tag in ["1.36", "1.36.0", "1.36.1"] {
        assert_eq!(after[tag], before[tag], "{tag} untouched");
    }
    assert_eq!(after["latest"], before["1.36.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_on_ferro() {
    dropped_tags_are_deleted(ferro().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_on_distribution() {
    dropped_tags_are_deleted(distribution(Auth::None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_mode_keeps_the_tag_and_marks_it_once() {
    let destination = distribution(Auth::None).await;
    let mut policy = busybox_policy();
    policy.deletion_mode = Some("mark".into());
    let (_upstream, ws) = seeded(&destination, &["1.36.0", "1.36.1", "1.37.0"], &policy).await;
    let host = destination.host();
    let before_raw = skopeo_raw(host, "mirror/busybox:1.36.0").await;

    policy.include = r"^1\.3[67]\.[1-9]\d*$|^1\.37\.0$".into();
    ws.policy("busybox", &policy.yaml());
    let plan = ws.plan_json(&[]).await;
    let address = policy.address(host, "1.36.0");
    assert_eq!(actions(&plan), vec![("prune".to_string(), address.clone())]);
    assert_eq!(action(&plan, &address)["prune_mode"], "mark");
    assert!(
        ws.plan_text()
            .await
            .contains("deletionMode mark: the tag is kept and marked pruned")
    );

    ws.apply_and_converge().await;
    let after_raw = skopeo_raw(host, "mirror/busybox:1.36.0").await;
    let mut marked = annotations(&after_raw);
    assert_eq!(
        marked.remove("io.houba.pruned").as_deref(),
        Some("true"),
        "the tag is kept and marked"
    );
    assert_eq!(
        marked,
        annotations(&before_raw),
        "the rest of the stamp stays"
    );
    let tags = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    assert_eq!(tags.len(), 6, "nothing deleted: {tags:?}");
    assert!(
        ws.run(&["drift"]).await.stdout.contains("No drift."),
        "a marked tag is not drift"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_prune_is_refused_under_auto() {
    let destination = ferro().await;
    let mut policy = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    let (_upstream, ws) = seeded(&destination, &["1.36.0", "1.36.1", "1.37.0"], &policy).await;
    let before = tag_digests(destination.client().as_ref(), "mirror/busybox").await;

    // Two of three managed tags: more than the default 50 %.
    policy.include = r"^1\.37\.\d+$".into();
    ws.policy("busybox", &policy.yaml());
    let refused = ws.run(&["apply", "--auto"]).await;
    refused.expect_code(1);
    let message = refused.stderr_flat();
    assert!(
        message.contains("refusing to prune more than 50%")
            && message.contains("2 of 3 managed tags")
            && message.contains("--allow-mass-prune"),
        "{message}"
    );
    assert_eq!(
        tag_digests(destination.client().as_ref(), "mirror/busybox").await,
        before,
        "nothing deleted"
    );

    ws.apply(&["--allow-mass-prune"]).await;
    let after = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    let tags: Vec<&str> = after.keys().map(String::as_str).collect();
    assert_eq!(tags, ["1.37.0"]);
}
