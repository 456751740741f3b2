//! Live state changed outside houba: drift is shown first, `houba drift` exits 2, apply puts
//! the desired content back, and an unstamped extra tag is reported but never pruned.

mod support;

use serde_json::Value;
use support::houba::{Policy, Workspace, action, push_upstream, tag_digests};
use support::images;
use support::{Auth, distribution, ferro};

fn drift_of<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["address"] == address)
        .unwrap_or_else(|| panic!("no drift at {address}: {:#}", plan["drift"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_outside_houba_are_drift() {
    let (upstream, destination) = (ferro().await, distribution(Auth::None).await);
    for tag in ["1.36.0", "1.37.0"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let mut policy = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    policy.aliases = vec!["latest".into()];
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    let host = destination.host();
    let placed = tag_digests(destination.client().as_ref(), "mirror/busybox").await;
    let no_drift = ws.run(&["drift"]).await;
    no_drift.expect_code(0);
    assert!(no_drift.stdout.contains("No drift."), "{}", no_drift.stdout);

    // Someone pushes their own image over a managed tag, an extra unstamped tag, and moves
    // `latest` back by hand.
    let dst = destination.client();
    let foreign = images::oci_image(
        "hand-built",
        "amd64",
        vec![images::tar_layer(
            images::OCI_LAYER_GZIP,
            &[("hack", b"x".as_slice())],
        )],
    );
    images::push_image(dst.as_ref(), "mirror/busybox", "1.36.0", &foreign)
        .await
        .unwrap();
    images::push_image(dst.as_ref(), "mirror/busybox", "debug", &foreign)
        .await
        .unwrap();
    let (_, first) = dst
        .get_manifest("mirror/busybox", &placed["1.36.0"])
        .await
        .unwrap()
        .unwrap();
    dst.put_manifest("mirror/busybox", "latest", images::OCI_MANIFEST, first)
        .await
        .unwrap();

    let text = ws.plan_text().await;
    assert!(
        text.starts_with("Changed outside houba"),
        "drift comes first:\n{text}"
    );
    assert!(
        text.contains(&format!(
            "# {host}/mirror/busybox:1.36.0 holds content houba did not place (no stamp)"
        )) && text.contains(&format!(
            "# {host}/mirror/busybox:debug was pushed into a managed repository outside houba"
        )) && text.contains(&format!(
            "# {host}/mirror/busybox:latest is an alias that was moved outside houba"
        )),
        "{text}"
    );
    let plan = ws.plan_json(&[]).await;
    assert_eq!(plan["drift"].as_array().unwrap().len(), 3, "{plan:#}");
    assert_eq!(
        drift_of(&plan, &policy.address(host, "1.36.0"))["kind"],
        "unstamped"
    );
    assert_eq!(
        drift_of(&plan, &policy.address(host, "1.36.0"))["digest"],
        foreign.digest().as_str()
    );
    assert_eq!(
        drift_of(&plan, &format!("{host}/mirror/busybox:debug"))["kind"],
        "bypass"
    );
    assert_eq!(
        drift_of(&plan, &policy.address(host, "latest"))["kind"],
        "alias-moved"
    );
    assert_eq!(
        action(&plan, &policy.address(host, "1.36.0"))["action"],
        "replace"
    );
    assert!(
        !plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["destination"]["tag"] == "debug"),
        "an unstamped tag is never pruned"
    );

    let drift = ws.run(&["drift"]).await;
    drift.expect_code(2);
    assert!(
        drift.stdout.contains("Drift: 3 finding(s).") && !drift.stdout.contains("will be"),
        "{}",
        drift.stdout
    );
    let drift_json = ws.run(&["drift", "--format", "json"]).await;
    drift_json.expect_code(2);
    assert_eq!(drift_json.json()["drift"].as_array().unwrap().len(), 3);

    // Apply puts the desired content back and leaves the bypass tag alone.
    ws.apply(&[]).await;
    let after = tag_digests(dst.as_ref(), "mirror/busybox").await;
    assert_eq!(after["1.36.0"], placed["1.36.0"]);
    assert_eq!(after["latest"], placed["1.37.0"]);
    assert_eq!(after["debug"], foreign.digest(), "never pruned");
    assert_eq!(after["1.37.0"], placed["1.37.0"]);
    let plan = ws.plan_json(&[]).await;
    assert!(plan["actions"].as_array().unwrap().is_empty(), "{plan:#}");
    assert_eq!(
        plan["drift"].as_array().unwrap().len(),
        1,
        "the bypass tag stays reported"
    );
    ws.run(&["drift"]).await.expect_code(2);
    ws.run(&["plan", "--detailed-exitcode"])
        .await
        .expect_code(2);
}
