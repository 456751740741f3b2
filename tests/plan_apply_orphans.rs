//! Orphans: tags a policy stamped in a repository no current policy claims (the policy was
//! deleted, or its destination moved) are planned as prunes, shown as such and guarded like
//! any mass prune; a repository houba never stamped is never touched.

mod support;

use support::houba::{Policy, Workspace, action, actions, push_upstream, tag_digests};
use support::{Auth, TestRegistry, distribution, ferro, images};

async fn orphans_are_pruned(destination: TestRegistry) {
    let upstream = ferro().await;
    for tag in ["1.36.0", "1.37.0"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
        push_upstream(upstream.client().as_ref(), "nginx", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let mut busybox = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    let nginx = Policy::new("nginx", "nginx", r"^1\.3[67]\.\d+$", "dest");
    ws.policy("busybox", &busybox.yaml());
    ws.policy("nginx", &nginx.yaml());
    ws.apply_and_converge().await;
    let dst = destination.client();
    // A repository houba never stamped, in the same registry.
    let hand = images::oci_image(
        "hand-built",
        "amd64",
        vec![images::tar_layer(
            images::OCI_LAYER_GZIP,
            &[("hack", b"x".as_slice())],
        )],
    );
    images::push_image(dst.as_ref(), "team/tool", "v1", &hand)
        .await
        .unwrap();
    let host = destination.host();

    // busybox moves to another repository: the old one is orphaned, pruned in busybox's own
    // deletion mode (purge).
    busybox.repository = "busybox-new".into();
    ws.policy("busybox", &busybox.yaml());
    let text = ws.plan_text().await;
    assert!(
        text.contains(&format!("- prune \"{host}/mirror/busybox:1.37.0\""))
            && text.contains(
                "an orphan: stamped by policy busybox, in a repository no policy claims now"
            ),
        "{text}"
    );
    let plan = ws.plan_json(&[]).await;
    let old = |tag: &str| format!("busybox/stable/default[{host}/mirror/busybox:{tag}]");
    let orphan = action(&plan, &old("1.36.0"));
    assert_eq!(orphan["reason"], "orphaned");
    assert_eq!(orphan["prune_mode"], "delete");
    assert!(
        !actions(&plan).iter().any(|(_, a)| a.contains("team/tool")),
        "an unstamped repository is never touched: {plan:#}"
    );
    assert!(plan["drift"].as_array().unwrap().is_empty(), "{plan:#}");
    // Under --auto the whole repository going is a mass prune.
    let refused = ws.run(&["apply", "--auto"]).await;
    refused.expect_code(1);
    assert!(
        refused.stderr_flat().contains("--allow-mass-prune"),
        "{}",
        refused.stderr
    );
    ws.apply(&["--allow-mass-prune"]).await;
    assert!(tag_digests(dst.as_ref(), "mirror/busybox").await.is_empty());
    assert_eq!(
        tag_digests(dst.as_ref(), "mirror/busybox-new").await.len(),
        2
    );

    // nginx is deleted: its tags are orphans of a policy that is gone, so they are marked, not
    // deleted.
    std::fs::remove_file(ws.path("policies/nginx.yaml")).unwrap();
    let plan = ws.plan_json(&[]).await;
    let gone = format!("nginx/stable/default[{host}/mirror/nginx:1.37.0]");
    assert_eq!(action(&plan, &gone)["prune_mode"], "mark", "{plan:#}");
    ws.apply(&["--allow-mass-prune"]).await;
    assert_eq!(
        tag_digests(dst.as_ref(), "mirror/nginx").await.len(),
        2,
        "marked, kept"
    );
    let again = ws.plan_json(&[]).await;
    assert!(again["actions"].as_array().unwrap().is_empty(), "{again:#}");
    assert_eq!(
        tag_digests(dst.as_ref(), "team/tool").await["v1"],
        hand.digest(),
        "never touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_on_ferro() {
    orphans_are_pruned(ferro().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_on_distribution() {
    orphans_are_pruned(distribution(Auth::None).await).await;
}

/// A roster entry the policies only read from is an upstream: no orphan search lists its
/// catalog or probes its repositories (a warm plan asks it for the tag list and the tag's
/// HEAD only).
#[tokio::test]
async fn upstreams_are_not_searched_for_orphans() {
    let upstream = ferro().await;
    push_upstream(upstream.client().as_ref(), "busybox", "1.37.0", 1).await;
    // Another repository upstream, which a catalog probe would list and HEAD.
    push_upstream(upstream.client().as_ref(), "nginx", "1.37.0", 1).await;
    let destination = ferro().await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    std::fs::write(
        ws.config(),
        format!(
            "policies = [\"policies\"]\n\n[registries.src]\nhost = \"{}\"\ntls_verify = false\n\n[registries.dest]\nhost = \"{}\"\ntls_verify = false\n",
            upstream.host(),
            destination.host()
        ),
    )
    .unwrap();
    let yaml = Policy::new("busybox", "busybox", r"^1\.37\.\d+$", "dest")
        .yaml()
        .replace(
            "registry: docker.io",
            &format!("registry: \"{}\"", upstream.host()),
        );
    ws.policy("busybox", &yaml);
    ws.apply_and_converge().await;
    let plan = ws.plan_json(&[]).await;
    let src = &plan["requests"][upstream.host()];
    assert_eq!(src["get"], 1, "the tag list only: {plan}");
    assert_eq!(src["head"], 1, "the tag's HEAD only: {plan}");
    assert_eq!(src["total"], 2, "{plan}");
}
