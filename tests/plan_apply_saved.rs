//! Saved plans: `houba apply plan.json` applies exactly what was reviewed, and refuses a plan
//! the registries or the policies moved away from, writing nothing.

mod support;

use serde_json::Value;
use support::houba::{Policy, Workspace, action, push_upstream, tag_digests};
use support::{Auth, distribution, ferro};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_saved_plan_is_refused_and_a_fresh_one_applies() {
    let (upstream, destination) = (ferro().await, distribution(Auth::None).await);
    let up = upstream.client();
    for tag in ["1.36.0", "1.37.0"] {
        push_upstream(up.as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let mut policy = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    ws.policy("busybox", &policy.yaml());
    let host = destination.host();
    let stale = ws.path("stale.json");
    let saved = ws.run(&["plan", "-o", stale.to_str().unwrap()]).await;
    saved.expect_code(0);
    assert!(
        saved.stderr.contains("Saved the plan to"),
        "{}",
        saved.stderr
    );

    // Upstream moves after the review.
    let moved = push_upstream(up.as_ref(), "busybox", "1.37.0", 2).await;
    let refused = ws.run(&["apply", stale.to_str().unwrap()]).await;
    refused.expect_code(1);
    let message = refused.stderr_flat();
    let address = policy.address(host, "1.37.0");
    assert!(
        message.contains("is stale; nothing was applied")
            && message.contains(&address)
            && message.contains("upstream digest moved")
            && message.contains(&moved.digest()),
        "{message}"
    );
    assert!(
        !message.contains(&policy.address(host, "1.36.0")),
        "only the stale address is named: {}",
        refused.stderr
    );
    assert!(
        tag_digests(destination.client().as_ref(), "mirror/busybox")
            .await
            .is_empty(),
        "nothing written"
    );

    // A plan made now applies as it is, and places exactly what it said.
    let fresh = ws.path("fresh.json");
    ws.run(&["plan", "-o", fresh.to_str().unwrap()])
        .await
        .expect_code(0);
    let shown = ws
        .run(&["show", fresh.to_str().unwrap(), "--format", "json"])
        .await;
    shown.expect_code(0);
    let plan: Value = shown.json();
    let applied = ws.run(&["apply", fresh.to_str().unwrap()]).await;
    applied.expect_code(0);
    assert!(
        applied.stdout.contains("Apply complete"),
        "{}",
        applied.stdout
    );
    let placed = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    for tag in ["1.36.0", "1.37.0"] {
        assert_eq!(
            placed[tag],
            action(&plan, &policy.address(host, tag))["after"]
                .as_str()
                .unwrap()
        );
    }
    assert!(
        ws.plan_text()
            .await
            .contains("No changes. The registries match the policies.")
    );

    // A policy edit after saving makes the saved plan stale too.
    let edited = ws.path("edited.json");
    push_upstream(up.as_ref(), "busybox", "1.37.1", 1).await;
    ws.run(&["plan", "-o", edited.to_str().unwrap()])
        .await
        .expect_code(0);
    policy.owners = vec!["group:default/sre".into()];
    ws.policy("busybox", &policy.yaml());
    let refused = ws.run(&["apply", edited.to_str().unwrap()]).await;
    refused.expect_code(1);
    assert!(
        refused
            .stderr_flat()
            .contains("the policies or the configuration changed since the plan was made"),
        "{}",
        refused.stderr
    );
    assert!(
        !tag_digests(destination.client().as_ref(), "mirror/busybox")
            .await
            .contains_key("1.37.1"),
        "nothing written"
    );
}
