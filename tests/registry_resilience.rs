//! What real registries do, on loopback through the fault proxy: `Retry-After` as an HTTP date,
//! a 429 storm, a connection dropped in the middle of a blob upload, a registry that goes away
//! in the middle of a copy, a stall followed by a normal answer, and Docker Hub's rate-limit
//! headers. Every case ends in a complete copy (or a precise error), and the next run finds
//! nothing left to do: the tag is on complete content (a manifest walk, and `skopeo inspect`).

mod support;

use std::time::{Duration, Instant};

use houba::registry::transfer::{CopyOutcome, TransferSession};
use houba::registry::{ConnectOptions, Registry, connect};
use support::fault::{Fault, FaultProxy, Rule};
use support::houba::{Policy, Workspace, assert_complete, push_upstream, skopeo_inspect};
use support::images::{self, OCI_LAYER_GZIP};
use support::{Auth, TestRegistry, distribution, entry_for, ferro, quick_options};

const BLOB_SIZE: usize = 512 * 1024;

fn via(proxy: &FaultProxy, options: &ConnectOptions) -> std::sync::Arc<dyn Registry> {
    connect(&entry_for(proxy.host(), Default::default()), options).unwrap()
}

async fn setup() -> (TestRegistry, TestRegistry, images::Built) {
    let (source, destination) = (ferro().await, distribution(Auth::None).await);
    let built = images::oci_image(
        "resilience",
        "amd64",
        vec![images::noise_layer(OCI_LAYER_GZIP, 7, BLOB_SIZE)],
    );
    images::push_image(source.client().as_ref(), "app", "1", &built)
        .await
        .unwrap();
    (source, destination, built)
}

async fn copy(src: &dyn Registry, dst: &dyn Registry) -> houba::registry::Result<CopyOutcome> {
    TransferSession::default()
        .copy(src, "app", "1", dst, "app", "1", None)
        .await
}

/// The destination tag holds the source image, complete, and a second run changes nothing.
async fn assert_converged(
    source: &TestRegistry,
    destination: &TestRegistry,
    built: &images::Built,
) {
    let dst = destination.client();
    let (descriptor, raw) = dst.get_manifest("app", "1").await.unwrap().expect("tag");
    assert_eq!(descriptor.digest, built.digest());
    assert_eq!(assert_complete(dst.as_ref(), "app", &raw).await, 2);
    let inspected = skopeo_inspect(destination.host(), "app:1")
        .await
        .expect("skopeo inspects the copy");
    assert_eq!(inspected["Digest"], built.digest());
    let again = copy(source.client().as_ref(), dst.as_ref()).await.unwrap();
    assert!(again.unchanged, "the next run has nothing to do");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_an_http_date_is_honoured() {
    let (source, destination, built) = setup().await;
    let proxy = FaultProxy::start(source.host()).await;
    proxy.add(Rule::new(
        Some("HEAD"),
        "/manifests/1",
        Fault::TooManyRequestsUntil { secs_from_now: 2 },
        1,
    ));
    let src = via(&proxy, &quick_options());
    let started = Instant::now();
    copy(src.as_ref(), destination.client().as_ref())
        .await
        .unwrap();
    // An HTTP date has one-second resolution: two seconds from now is at least one away.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited until the date: {:?}",
        started.elapsed()
    );
    assert_eq!(proxy.injected(), 1);
    assert_eq!(src.request_stats().head, 2, "the HEAD was repeated once");
    assert_converged(&source, &destination, &built).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_waited_out_then_reported_when_it_does_not_end() {
    let (source, destination, built) = setup().await;
    let proxy = FaultProxy::start(destination.host()).await;
    // Every kind of request is refused a few times: the copy backs off and gets through.
    for (method, path) in [
        (Some("HEAD"), "/manifests/"),
        (Some("HEAD"), "/blobs/"),
        (Some("POST"), "/blobs/uploads/"),
        (Some("PUT"), "/manifests/"),
    ] {
        proxy.add(Rule::new(
            method,
            path,
            Fault::TooManyRequests {
                retry_after_secs: 0,
            },
            2,
        ));
    }
    let dst = via(&proxy, &quick_options());
    copy(source.client().as_ref(), dst.as_ref()).await.unwrap();
    assert!(proxy.injected() >= 7, "the storm hit: {}", proxy.injected());
    assert_converged(&source, &destination, &built).await;

    // A storm that outlasts the retries ends in an error naming the answer and the attempts.
    proxy.clear();
    proxy.add(Rule::new(
        Some("HEAD"),
        "/manifests/2",
        Fault::TooManyRequests {
            retry_after_secs: 0,
        },
        usize::MAX,
    ));
    let error = TransferSession::default()
        .copy(
            source.client().as_ref(),
            "app",
            "1",
            dst.as_ref(),
            "app",
            "2",
            None,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("429")
            && error.contains("attempts")
            && error.contains("HEAD /v2/app/manifests/2"),
        "{error}"
    );
    proxy.clear();
    assert!(
        destination
            .client()
            .head_manifest("app", "2")
            .await
            .unwrap()
            .is_none(),
        "no tag written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_upload_restarts_that_blob() {
    let (source, destination, built) = setup().await;
    let proxy = FaultProxy::start(destination.host()).await;
    proxy.add(Rule::new(
        Some("PUT"),
        "/blobs/uploads/",
        Fault::DropAfterRequestBytes(BLOB_SIZE / 3),
        1,
    ));
    let dst = via(&proxy, &quick_options());
    let session = TransferSession::default();
    session
        .copy(
            source.client().as_ref(),
            "app",
            "1",
            dst.as_ref(),
            "app",
            "1",
            None,
        )
        .await
        .unwrap();
    assert_eq!(proxy.injected(), 1);
    assert_eq!(
        session.stats().blobs_uploaded,
        2,
        "config and layer, once each"
    );
    assert_converged(&source, &destination, &built).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_gone_for_a_moment_mid_copy_is_retried() {
    let (source, destination, built) = setup().await;
    let proxy = FaultProxy::start(destination.host()).await;
    // The registry disappears for the next few requests of any kind (a restart): each is
    // answered by a dropped connection.
    proxy.add(Rule::new(None, "/v2/", Fault::DropAfterRequestBytes(0), 3));
    let dst = via(&proxy, &quick_options());
    copy(source.client().as_ref(), dst.as_ref()).await.unwrap();
    assert_eq!(proxy.injected(), 3);
    assert_converged(&source, &destination, &built).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_times_out_and_the_retry_succeeds() {
    let (source, destination, built) = setup().await;
    let proxy = FaultProxy::start(source.host()).await;
    proxy.add(Rule::new(
        Some("GET"),
        "/manifests/",
        Fault::Stall(Duration::from_secs(30)),
        1,
    ));
    let options = ConnectOptions {
        read_timeout: Duration::from_millis(700),
        max_retries: 2,
        ..quick_options()
    };
    let src = via(&proxy, &options);
    let started = Instant::now();
    copy(src.as_ref(), destination.client().as_ref())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up on the stalled request on its own"
    );
    assert_eq!(proxy.injected(), 1);
    assert_eq!(
        src.request_stats().get,
        2 + 2,
        "manifest GET repeated; two blob GETs"
    );
    assert_converged(&source, &destination, &built).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_hub_rate_limit_headers_show_in_the_plan() {
    let upstream = ferro().await;
    let destination = ferro().await;
    push_upstream(upstream.client().as_ref(), "busybox", "1.36.1", 1).await;
    let proxy = FaultProxy::start(upstream.host()).await;
    proxy.add(Rule::new(
        None,
        "/manifests/1.36.1",
        Fault::RateLimitHeaders {
            limit: 100,
            remaining: 76,
        },
        usize::MAX,
    ));
    let ws = Workspace::new(proxy.host(), &[("dest", destination.host())]);
    let policy = Policy::new("busybox", "busybox", r"^1\.36\.1$", "dest");
    ws.policy("busybox", &policy.yaml());
    let text = ws.plan_text().await;
    let line = text
        .lines()
        .find(|l| l.starts_with("Requests:"))
        .unwrap_or_else(|| panic!("no request line:\n{text}"));
    assert!(line.contains("rate limit 76 of 100 left"), "{line}");
    let plan = ws.plan_json(&[]).await;
    let budgets: Vec<&serde_json::Value> = plan["requests"]
        .as_object()
        .expect("requests")
        .values()
        .filter_map(|r| r.get("rate_limit"))
        .collect();
    assert_eq!(
        budgets,
        [&serde_json::json!([100, 76])],
        "{:#}",
        plan["requests"]
    );
}
