//! Failure injection: every scenario ends in a successful copy after retries or in a clear
//! error, and never with a destination tag pointing at incomplete content.

mod support;

use std::time::{Duration, Instant};

use houba::registry::transfer::TransferSession;
use houba::registry::{ConnectOptions, Registry, connect, manifest};
use support::fault::{Fault, FaultProxy, Rule};
use support::images::{self, OCI_LAYER_GZIP};
use support::{Auth, TestRegistry, distribution, entry_for, ferro, quick_options};

const BLOB_SIZE: usize = 256 * 1024;

fn image() -> images::Built {
    images::oci_image(
        "faults",
        "amd64",
        vec![images::noise_layer(OCI_LAYER_GZIP, 42, BLOB_SIZE)],
    )
}

fn via(proxy: &FaultProxy, options: &ConnectOptions) -> std::sync::Arc<dyn Registry> {
    connect(&entry_for(proxy.host(), Default::default()), options).unwrap()
}

/// The tag is absent, or everything it references is present.
async fn assert_absent_or_complete(registry: &dyn Registry, repository: &str, tag: &str) {
    let Some((_, bytes)) = registry.get_manifest(repository, tag).await.unwrap() else {
        return;
    };
    let refs = manifest::references(&manifest::parse(&bytes).unwrap()).unwrap();
    for blob in refs.blobs {
        assert!(
            registry
                .blob_exists(repository, &blob.digest)
                .await
                .unwrap(),
            "tag {tag} points at missing {}",
            blob.digest
        );
    }
}

async fn setup() -> (TestRegistry, TestRegistry, images::Built) {
    let (source, destination) = (ferro().await, distribution(Auth::None).await);
    let built = image();
    images::push_image(source.client().as_ref(), "app", "1", &built)
        .await
        .unwrap();
    (source, destination, built)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_the_copy_succeeds() {
    let (source, destination, built) = setup().await;
    let proxy = FaultProxy::start(destination.host()).await;
    proxy.add(Rule::new(Some("HEAD"), "/blobs/", Fault::Status(503), 2));
    proxy.add(Rule::new(
        Some("PUT"),
        "/manifests/1",
        Fault::Status(500),
        2,
    ));
    proxy.add(Rule::new(
        Some("POST"),
        "/blobs/uploads/",
        Fault::Status(502),
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
    assert_eq!(proxy.injected(), 5);
    let head = destination
        .client()
        .head_manifest("app", "1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.digest, built.digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_server_errors_end_in_a_clear_error_and_no_tag() {
    let (source, destination, _) = setup().await;
    let proxy = FaultProxy::start(destination.host()).await;
    proxy.add(Rule::new(
        Some("PUT"),
        "/blobs/uploads/",
        Fault::Status(500),
        usize::MAX,
    ));
    let dst = via(
        &proxy,
        &ConnectOptions {
            max_retries: 2,
            ..quick_options()
        },
    );
    let error = TransferSession::default()
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
        .unwrap_err()
        .to_string();
    // The server answers 500 before reading the upload: the client sees either that answer
    // or the connection closing under its body. Either way the message names the upload.
    assert!(
        error.contains(proxy.host())
            && error.contains("PUT /v2/app/blobs/uploads/")
            && error.contains("?digest=sha256:"),
        "{error}"
    );
    assert!(
        destination
            .client()
            .head_manifest("app", "1")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_honour_retry_after() {
    let (source, destination, _) = setup().await;
    let proxy = FaultProxy::start(source.host()).await;
    proxy.add(Rule::new(
        Some("HEAD"),
        "/manifests/1",
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        1,
    ));
    let src = via(&proxy, &quick_options());
    let started = Instant::now();
    TransferSession::default()
        .copy(
            src.as_ref(),
            "app",
            "1",
            destination.client().as_ref(),
            "app",
            "1",
            None,
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as told"
    );
    assert_eq!(proxy.injected(), 1);
    assert_eq!(src.request_stats().head, 2, "the HEAD was repeated once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_mid_blob_restarts_that_blob() {
    let (source, destination, built) = setup().await;
    let proxy = FaultProxy::start(source.host()).await;
    proxy.add(Rule::new(
        Some("GET"),
        "/blobs/sha256:",
        Fault::ResetAfter(BLOB_SIZE / 3),
        1,
    ));
    let src = via(&proxy, &quick_options());
    let session = TransferSession::default();
    session
        .copy(
            src.as_ref(),
            "app",
            "1",
            destination.client().as_ref(),
            "app",
            "1",
            None,
        )
        .await
        .unwrap();
    assert_eq!(proxy.injected(), 1);
    let dst = destination.client();
    assert_eq!(
        dst.head_manifest("app", "1").await.unwrap().unwrap().digest,
        built.digest()
    );
    assert_absent_or_complete(dst.as_ref(), "app", "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_on_every_attempt_end_in_an_error_and_no_tag() {
    let (source, destination, _) = setup().await;
    let proxy = FaultProxy::start(source.host()).await;
    proxy.add(Rule::new(
        Some("GET"),
        "/blobs/sha256:",
        Fault::ResetAfter(BLOB_SIZE / 3),
        usize::MAX,
    ));
    let src = via(&proxy, &quick_options());
    let error = TransferSession::default()
        .copy(
            src.as_ref(),
            "app",
            "1",
            destination.client().as_ref(),
            "app",
            "1",
            None,
        )
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(
        error.to_string().contains("/v2/app/blobs/sha256:"),
        "names the blob: {error}"
    );
    assert!(
        destination
            .client()
            .head_manifest("app", "1")
            .await
            .unwrap()
            .is_none()
    );
    assert_absent_or_complete(destination.client().as_ref(), "app", "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_registry_times_out_without_leaving_a_tag() {
    let (source, destination, _) = setup().await;
    let proxy = FaultProxy::start(destination.host()).await;
    proxy.add(Rule::new(
        Some("PUT"),
        "/manifests/1",
        Fault::Stall(Duration::from_secs(20)),
        usize::MAX,
    ));
    let options = ConnectOptions {
        read_timeout: Duration::from_millis(700),
        max_retries: 1,
        ..quick_options()
    };
    let dst = via(&proxy, &options);
    let started = Instant::now();
    let error = TransferSession::default()
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
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the client gave up on its own"
    );
    assert!(error.contains("PUT /v2/app/manifests/1"), "{error}");
    assert_absent_or_complete(destination.client().as_ref(), "app", "1").await;
    assert!(
        destination
            .client()
            .head_manifest("app", "1")
            .await
            .unwrap()
            .is_none()
    );
}
