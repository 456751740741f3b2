//! The in-process OCI registry (`ferro-oci-server`): native referrers API, no mount.

use super::{AbortOnDrop, TestRegistry};

/// Start an in-memory OCI registry on 127.0.0.1 for the current test.
pub async fn ferro() -> TestRegistry {
    let store = ferro_oci_server::Config::from_raw(None, None)
        .blob_store()
        .expect("in-memory store");
    let app = ferro_oci_server::build_app(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    TestRegistry::new(host, None, Box::new(AbortOnDrop(task)))
}
