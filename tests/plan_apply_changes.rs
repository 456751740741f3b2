//! Changes after a first apply: an upstream retag (`replace`, held back by `settle` while the
//! new content is fresh), a policy edit that only touches the stamp (`restamp`, no blob moves)
//! and moving aliases.

mod support;

use houba::registry::digest::sha256_digest;
use support::houba::{
    Policy, Workspace, action, actions, annotations, created, push_upstream, rfc3339_ago,
    skopeo_raw, tag_digests, upstream_image_annotated, without_annotations,
};
use support::images;
use support::{Auth, distribution, ferro};

fn busybox_policy() -> Policy {
    let mut p = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    p.aliases = vec!["{major}.{minor}".into(), "latest".into()];
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_retag_is_replaced_and_its_alias_follows() {
    let (upstream, destination) = (ferro().await, distribution(Auth::None).await);
    let up = upstream.client();
    for tag in ["1.36.0", "1.36.1", "1.37.0"] {
        push_upstream(up.as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let policy = busybox_policy();
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    let host = destination.host();
    let before = tag_digests(destination.client().as_ref(), "mirror/busybox").await;

    let moved = push_upstream(up.as_ref(), "busybox", "1.36.1", 2).await;
    let text = ws.run(&["plan", "--detailed-exitcode"]).await;
    text.expect_code(2);
    assert!(
        text.stdout
            .contains(&format!("-/+ replace \"{host}/mirror/busybox:1.36.1\"")),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("(the upstream digest moved)"));
    let plan = ws.plan_json(&[]).await;
    let replace_address = policy.address(host, "1.36.1");
    let alias_address = policy.address(host, "1.36");
    assert_eq!(
        actions(&plan),
        vec![
            ("replace".to_string(), replace_address.clone()),
            ("alias".to_string(), alias_address.clone())
        ]
    );
    let replace = action(&plan, &replace_address);
    assert_eq!(replace["source_digest"], moved.digest().as_str());
    assert_eq!(replace["before"], before["1.36.1"].as_str());
    let alias = action(&plan, &alias_address);
    assert_eq!(alias["depends_on"][0], replace_address.as_str());
    assert_eq!(alias["after"], replace["after"]);

    ws.apply_and_converge().await;
    let after = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    assert_eq!(after["1.36.1"], replace["after"].as_str().unwrap());
    assert_eq!(after["1.36"], after["1.36.1"]);
    for tag in ["1.36.0", "1.37.0", "1.37", "latest"] {
        assert_eq!(after[tag], before[tag], "{tag} untouched");
    }
    let raw = skopeo_raw(host, "mirror/busybox:1.36.1").await;
    assert_eq!(
        annotations(&raw)["org.opencontainers.image.base.digest"],
        moved.digest()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_withholds_fresh_upstream_content() {
    let (upstream, destination) = (ferro().await, ferro().await);
    let up = upstream.client();
    let push = |tag: &'static str, generation: u32, created_at: String| {
        let up = up.clone();
        async move {
            let image =
                upstream_image_annotated("redis", tag, generation, Some(created(&created_at)));
            images::push_image(up.as_ref(), "library/redis", tag, &image)
                .await
                .unwrap();
            image
        }
    };
    let ten_days_ago = rfc3339_ago(10 * 86_400);
    push("7.2.0", 1, ten_days_ago.clone()).await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let mut policy = Policy::new("redis", "redis", r"^7\.", "dest");
    policy.settle = Some("24h".into());
    ws.policy("redis", &policy.yaml());
    ws.apply_and_converge().await;
    let host = destination.host();
    let raw = skopeo_raw(host, "mirror/redis:7.2.0").await;
    assert_eq!(
        annotations(&raw)["org.opencontainers.image.created"],
        ten_days_ago,
        "the upstream creation time is propagated, never the wall clock"
    );
    let placed = tag_digests(destination.client().as_ref(), "mirror/redis").await;

    // Retagged upstream an hour ago: withheld, with a note saying why.
    push("7.2.0", 2, rfc3339_ago(3600)).await;
    let plan = ws.plan_json(&[]).await;
    assert!(actions(&plan).is_empty(), "{plan:#}");
    let note = plan["notes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["address"] == policy.address(host, "7.2.0").as_str())
        .unwrap_or_else(|| panic!("a note for the withheld tag: {plan:#}"));
    let message = note["message"].as_str().unwrap();
    assert!(
        message.contains("withheld")
            && message.contains(" ago; it must be stable")
            && message.contains("stable for 1d (settle)"),
        "{message}"
    );
    ws.run(&["plan", "--detailed-exitcode"])
        .await
        .expect_code(0);
    ws.apply(&[]).await;
    assert_eq!(
        tag_digests(destination.client().as_ref(), "mirror/redis").await,
        placed,
        "apply placed nothing"
    );

    // Two days old: settled, replaced.
    let settled = push("7.2.0", 3, rfc3339_ago(2 * 86_400)).await;
    let plan = ws.plan_json(&[]).await;
    let replace = action(&plan, &policy.address(host, "7.2.0"));
    assert_eq!(replace["action"], "replace");
    assert_eq!(replace["source_digest"], settled.digest().as_str());
    ws.apply_and_converge().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_edit_restamps_without_moving_blobs() {
    let (upstream, destination) = (ferro().await, ferro().await);
    for tag in ["1.36.0", "1.37.0"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let mut policy = busybox_policy();
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    let host = destination.host();
    let before_raw = skopeo_raw(host, "mirror/busybox:1.37.0").await;

    policy.owners = vec!["group:default/platform".into(), "group:default/sre".into()];
    ws.policy("busybox", &policy.yaml());
    let text = ws.plan_text().await;
    assert!(
        text.contains(&format!("~ restamp \"{host}/mirror/busybox:1.37.0\""))
            && text.contains(
                "~ owners = \"group:default/platform\" -> \"group:default/platform,group:default/sre\""
            ),
        "{text}"
    );
    let plan = ws.plan_json(&[]).await;
    let mut kinds: Vec<String> = actions(&plan).into_iter().map(|(k, _)| k).collect();
    kinds.sort();
    // Two placements restamped; the aliases follow their targets' new digests.
    assert_eq!(kinds, ["alias", "alias", "alias", "restamp", "restamp"]);
    let restamp = action(&plan, &policy.address(host, "1.37.0"));
    assert_eq!(restamp["before"], sha256_digest(&before_raw).as_str());

    let report = ws.apply_and_converge().await;
    assert_eq!(report["blobs_uploaded"], 0, "{report:#}");
    assert_eq!(report["bytes_uploaded"], 0, "{report:#}");
    let after_raw = skopeo_raw(host, "mirror/busybox:1.37.0").await;
    assert_eq!(
        sha256_digest(&after_raw),
        restamp["after"].as_str().unwrap()
    );
    assert_ne!(sha256_digest(&after_raw), sha256_digest(&before_raw));
    assert_eq!(
        without_annotations(&after_raw),
        without_annotations(&before_raw),
        "only the annotations changed"
    );
    let (mut a, mut b) = (annotations(&before_raw), annotations(&after_raw));
    assert_eq!(
        b.remove("io.houba.owners").as_deref(),
        Some("group:default/platform,group:default/sre")
    );
    a.remove("io.houba.owners");
    assert_eq!(a, b, "every other stamp key is unchanged");
    let tags = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    assert_eq!(tags["latest"], tags["1.37.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_move_to_a_new_highest_tag_and_cost_nothing_when_right() {
    let (upstream, destination) = (ferro().await, distribution(Auth::None).await);
    let up = upstream.client();
    for tag in ["1.36.0", "1.36.1", "1.37.0"] {
        push_upstream(up.as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let policy = busybox_policy();
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    let host = destination.host();
    let before = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    assert_eq!(before["1.36"], before["1.36.1"]);
    assert_eq!(before["latest"], before["1.37.0"]);

    push_upstream(up.as_ref(), "busybox", "1.37.1", 1).await;
    let text = ws.plan_text().await;
    assert!(
        text.contains(&format!(
            "# {} will be re-pointed",
            policy.address(host, "latest")
        )) && text.contains("(the alias must move to the highest member, 1.37.1)"),
        "{text}"
    );
    let plan = ws.plan_json(&[]).await;
    assert_eq!(
        actions(&plan),
        vec![
            ("copy".to_string(), policy.address(host, "1.37.1")),
            ("alias".to_string(), policy.address(host, "1.37")),
            ("alias".to_string(), policy.address(host, "latest")),
        ],
        "the 1.36 alias is already right: not in the plan"
    );
    let copy_after = action(&plan, &policy.address(host, "1.37.1"))["after"].clone();
    ws.apply_and_converge().await;
    let after = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    assert_eq!(after["1.37.1"], copy_after.as_str().unwrap());
    assert_eq!(after["1.37"], after["1.37.1"]);
    assert_eq!(after["latest"], after["1.37.1"]);
    assert_eq!(after["1.36"], before["1.36"]);
    assert_eq!(after["1.37.0"], before["1.37.0"], "the old member stays");
}
