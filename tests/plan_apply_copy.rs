//! `houba plan` / `houba apply` end to end, placing new upstream tags: the plan shows copies,
//! apply places exactly the planned bytes with the stamp contract, and a second plan is empty.
//! Run against both destination kinds (ferro: native referrers and tag delete; distribution
//! 2.8: neither).

mod support;

use houba::registry::Registry;
use houba::registry::digest::sha256_digest;
use serde_json::Value;
use support::houba::{
    Policy, Workspace, action, actions, annotations, expected_stamp, push_upstream, skopeo_inspect,
    skopeo_raw, tag_digests,
};
use support::images::{self, DOCKER_LAYER_GZIP};
use support::{Auth, TestRegistry, distribution, ferro};

const TAGS: [&str; 3] = ["1.36.0", "1.36.1", "1.37.0"];

/// Upstream busybox with three selected tags and two that the policy leaves out.
async fn seed_busybox(upstream: &dyn Registry) -> Vec<(String, String)> {
    let mut digests = vec![];
    for tag in TAGS {
        digests.push((
            tag.to_string(),
            push_upstream(upstream, "busybox", tag, 1).await.digest(),
        ));
    }
    push_upstream(upstream, "busybox", "1.38.0-rc1", 1).await;
    push_upstream(upstream, "busybox", "1.37.0-glibc", 1).await;
    digests
}

fn busybox_policy() -> Policy {
    let mut p = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    p.aliases = vec!["{major}.{minor}".into(), "latest".into()];
    p
}

async fn new_tags_are_copied_with_the_stamp_contract(destination: TestRegistry) {
    let upstream = ferro().await;
    let upstream_digests = seed_busybox(upstream.client().as_ref()).await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let policy = busybox_policy();
    ws.policy("busybox", &policy.yaml());
    let host = destination.host();

    // Changes pending: --detailed-exitcode says 2; the text plan shows the copies.
    let text = ws.run(&["plan", "--detailed-exitcode"]).await;
    text.expect_code(2);
    for tag in TAGS {
        assert!(
            text.stdout
                .contains(&format!("# {} will be copied", policy.address(host, tag))),
            "{}",
            text.stdout
        );
        assert!(
            text.stdout
                .contains(&format!("+ copy \"{host}/mirror/busybox:{tag}\""))
        );
    }
    assert!(
        text.stdout.contains(
            "Plan: 3 to copy, 0 to build, 0 to replace, 0 to restamp, 3 to alias, 0 to prune."
        ),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("1.38.0-rc1") && !text.stdout.contains("glibc"));

    let plan = ws.plan_json(&[]).await;
    assert_eq!(plan["format_version"], "1.0");
    let mut kinds: Vec<String> = actions(&plan).into_iter().map(|(k, _)| k).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["alias", "alias", "alias", "copy", "copy", "copy"],
        "{plan:#}"
    );
    for (tag, digest) in &upstream_digests {
        let a = action(&plan, &policy.address(host, tag));
        assert_eq!(a["action"], "copy");
        assert_eq!(a["source_digest"], digest.as_str());
        assert_eq!(a["before"], Value::Null);
    }

    let report = ws.apply_and_converge().await;
    assert_eq!(report["results"].as_array().unwrap().len(), 6);
    assert!(
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "done"),
        "{report:#}"
    );
    // Three images share one base layer: 1 base + 3 own layers + 3 configs.
    assert_eq!(report["blobs_uploaded"], 7, "{report:#}");

    for (tag, base) in &upstream_digests {
        let planned = action(&plan, &policy.address(host, tag))["after"]
            .as_str()
            .unwrap()
            .to_string();
        let raw = skopeo_raw(host, &format!("mirror/busybox:{tag}")).await;
        assert_eq!(sha256_digest(&raw), planned, "{tag}: placed bytes = plan");
        assert_eq!(
            annotations(&raw),
            expected_stamp(&policy, tag, base),
            "{tag}: exactly the stamp contract"
        );
        let inspected = skopeo_inspect(host, &format!("mirror/busybox:{tag}"))
            .await
            .expect("skopeo inspect succeeds on a placed image");
        assert_eq!(inspected["Digest"], planned.as_str());
        assert_eq!(inspected["Architecture"], "amd64");
    }

    let placed = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    let tags: Vec<&str> = placed.keys().map(String::as_str).collect();
    assert_eq!(
        tags,
        ["1.36", "1.36.0", "1.36.1", "1.37", "1.37.0", "latest"]
    );
    assert_eq!(placed["1.36"], placed["1.36.1"]);
    assert_eq!(placed["1.37"], placed["1.37.0"]);
    assert_eq!(placed["latest"], placed["1.37.0"]);

    // Nothing left to do: exit 0 with --detailed-exitcode, and JSON with no actions.
    ws.run(&["plan", "--detailed-exitcode"])
        .await
        .expect_code(0);
    let again = ws.plan_json(&[]).await;
    assert!(actions(&again).is_empty(), "{again:#}");
    assert!(again["drift"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_ferro() {
    new_tags_are_copied_with_the_stamp_contract(ferro().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_distribution() {
    new_tags_are_copied_with_the_stamp_contract(distribution(Auth::None).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_policies_give_identical_digests_on_two_empty_registries() {
    let upstream = ferro().await;
    seed_busybox(upstream.client().as_ref()).await;
    let (one, two) = (ferro().await, distribution(Auth::None).await);
    let ws = Workspace::new(upstream.host(), &[("one", one.host()), ("two", two.host())]);
    let mut policy = busybox_policy();
    policy.destinations = vec!["one".into(), "two".into()];
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;

    let a = tag_digests(one.client().as_ref(), "mirror/busybox").await;
    let b = tag_digests(two.client().as_ref(), "mirror/busybox").await;
    assert_eq!(a.len(), 6, "{a:?}");
    assert_eq!(a, b, "same upstream bytes + same policies = same digests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_v2_upstream_is_placed_as_oci_with_the_same_blobs() {
    let upstream = distribution(Auth::None).await;
    let destination = ferro().await;
    let layer = images::tar_layer(DOCKER_LAYER_GZIP, &[("bin/tool", b"#!/bin/sh\necho hi\n")]);
    let image = images::docker_image("docker-v2", "amd64", vec![layer]);
    images::push_image(upstream.client().as_ref(), "library/tool", "2.0.0", &image)
        .await
        .unwrap();
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let policy = Policy::new("tool", "tool", r"^2\.", "dest");
    ws.policy("tool", &policy.yaml());

    let plan = ws.plan_json(&[]).await;
    let copy = action(&plan, &policy.address(destination.host(), "2.0.0"));
    assert_eq!(
        copy["source_media_type"],
        images::DOCKER_MANIFEST,
        "{copy:#}"
    );
    ws.apply_and_converge().await;

    let raw = skopeo_raw(destination.host(), "mirror/tool:2.0.0").await;
    assert_eq!(sha256_digest(&raw), copy["after"].as_str().unwrap());
    let placed: Value = serde_json::from_slice(&raw).unwrap();
    let upstream_manifest: Value = serde_json::from_slice(&image.manifest).unwrap();
    assert_eq!(placed["mediaType"], images::OCI_MANIFEST);
    assert_eq!(placed["config"]["mediaType"], images::OCI_CONFIG);
    assert_eq!(
        placed["config"]["digest"],
        upstream_manifest["config"]["digest"]
    );
    let digests = |m: &Value| -> Vec<Value> {
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].clone())
            .collect()
    };
    assert_eq!(digests(&placed), digests(&upstream_manifest));
    assert!(
        placed["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["mediaType"] == images::OCI_LAYER_GZIP)
    );
    skopeo_inspect(destination.host(), "mirror/tool:2.0.0")
        .await
        .expect("skopeo inspect succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_without_a_terminal_or_auto_refuses() {
    let upstream = ferro().await;
    seed_busybox(upstream.client().as_ref()).await;
    let destination = ferro().await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    ws.policy("busybox", &busybox_policy().yaml());

    let run = ws.run(&["apply"]).await;
    run.expect_code(1);
    let message = run.stderr_flat();
    assert!(
        message
            .contains("refusing to apply without confirmation: standard input is not a terminal")
            && message.contains("pass --auto"),
        "{message}"
    );
    assert!(
        tag_digests(destination.client().as_ref(), "mirror/busybox")
            .await
            .is_empty(),
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_and_shards_narrow_the_plan() {
    let upstream = ferro().await;
    let destination = ferro().await;
    let names = ["alpine", "busybox", "debian", "nginx", "redis", "ubuntu"];
    for n in names {
        push_upstream(upstream.client().as_ref(), n, "1.0.0", 1).await;
        push_upstream(upstream.client().as_ref(), n, "1.1.0", 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    for n in names {
        ws.policy(n, &Policy::new(n, n, r"^1\.", "dest").yaml());
    }
    let addresses = |plan: &Value| -> Vec<String> {
        let mut a: Vec<String> = actions(plan).into_iter().map(|(_, a)| a).collect();
        a.sort();
        a
    };
    let all = addresses(&ws.plan_json(&[]).await);
    assert_eq!(all.len(), 12, "{all:?}");

    let busybox = addresses(&ws.plan_json(&["--target", "busybox"]).await);
    assert_eq!(busybox.len(), 2);
    assert!(busybox.iter().all(|a| a.starts_with("busybox/")));
    let one = Policy::new("redis", "redis", "", "dest").address(destination.host(), "1.1.0");
    assert_eq!(
        addresses(&ws.plan_json(&["--target", &one]).await),
        vec![one.clone()]
    );
    // A target matches whole address segments only, and one that selects nothing is an
    // error naming the closest address (never an empty "No changes").
    let typo = ws
        .run(&["plan", "--format", "json", "--target", "busy"])
        .await;
    typo.expect_code(1);
    let message = typo.stderr_flat();
    assert!(
        message.contains("--target busy selects nothing") && message.contains("`busybox`"),
        "{message}"
    );
    assert!(typo.stdout.is_empty(), "{}", typo.stdout);

    let mut union = vec![];
    for i in 0..3 {
        let shard = addresses(
            &ws.plan_json(&["--shard-count", "3", "--shard-index", &i.to_string()])
                .await,
        );
        assert!(shard.len() < all.len(), "shard {i} holds every policy");
        for a in &shard {
            assert!(!union.contains(a), "{a} in two shards");
        }
        union.extend(shard);
    }
    union.sort();
    assert_eq!(union, all, "the shards together are the whole plan");
}
