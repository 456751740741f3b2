//! An apply killed mid-way (SIGKILL, no chance to clean up) leaves no tag pointing at
//! incomplete content, and the next run converges.

mod support;

use std::time::{Duration, Instant};

use support::fault::{Fault, FaultProxy, Rule};
use support::houba::{
    PREFIX, Policy, Workspace, annotations, assert_complete, push_upstream, skopeo_inspect,
    skopeo_raw, tag_digests, upstream_image,
};
use support::{Auth, distribution, ferro};

const TAGS: [&str; 6] = ["1.36.0", "1.36.1", "1.36.2", "1.36.3", "1.36.4", "1.37.0"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_mid_way_converges_on_the_next_run() {
    let (upstream, destination) = (ferro().await, distribution(Auth::None).await);
    for tag in TAGS {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    // The destination is reached through a proxy that holds back the commit point (the tag
    // write) of 1.37.0: its blobs are uploaded, then the run is killed.
    let proxy = FaultProxy::start(destination.host()).await;
    proxy.add(Rule::new(
        Some("PUT"),
        "/manifests/1.37.0",
        Fault::Stall(Duration::from_secs(600)),
        1,
    ));
    let ws = Workspace::new(upstream.host(), &[("dest", proxy.host())]);
    let mut policy = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    policy.aliases = vec!["{major}.{minor}".into(), "latest".into()];
    ws.policy("busybox", &policy.yaml());

    let dst = destination.client();
    let mut child = ws
        .command(&["apply", "--auto", "-j", "4"])
        .spawn()
        .expect("houba starts");
    let started = Instant::now();
    loop {
        let placed = tag_digests(dst.as_ref(), "mirror/busybox").await;
        if proxy.injected() >= 1 && placed.len() >= TAGS.len() - 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "apply never reached the held-back tag write (placed: {placed:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.start_kill().expect("SIGKILL");
    let status = child.wait().await.expect("wait");
    assert_eq!(status.code(), None, "killed by a signal, not finished");

    // Mid-way: the held-back image's own layer is uploaded, yet no tag points at it.
    let partial = tag_digests(dst.as_ref(), "mirror/busybox").await;
    assert!(!partial.contains_key("1.37.0"), "{partial:?}");
    assert!(!partial.contains_key("latest"), "{partial:?}");
    let own_layer = upstream_image("busybox", "1.37.0", 1).blobs[2].descriptor();
    assert!(
        dst.blob_exists("mirror/busybox", &own_layer.digest)
            .await
            .unwrap(),
        "the run was killed after the upload of 1.37.0's blobs"
    );

    proxy.clear();
    ws.apply_and_converge().await;
    let placed = tag_digests(dst.as_ref(), "mirror/busybox").await;
    let tags: Vec<&str> = placed.keys().map(String::as_str).collect();
    assert_eq!(
        tags,
        [
            "1.36", "1.36.0", "1.36.1", "1.36.2", "1.36.3", "1.36.4", "1.37", "1.37.0", "latest"
        ]
    );
    for tag in tags {
        let reference = format!("mirror/busybox:{tag}");
        skopeo_inspect(destination.host(), &reference)
            .await
            .unwrap_or_else(|e| panic!("{tag} does not resolve to a complete image: {e}"));
        let raw = skopeo_raw(destination.host(), &reference).await;
        assert_eq!(
            annotations(&raw)
                .get(&format!("{PREFIX}.policy"))
                .map(String::as_str),
            Some("busybox"),
            "{tag} is stamped"
        );
        assert_eq!(
            assert_complete(dst.as_ref(), "mirror/busybox", &raw).await,
            3
        );
    }
}
