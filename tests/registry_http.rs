//! The HTTP backend against real registries on loopback: ferro-oci-server (referrers API)
//! and CNCF distribution 2.8 (fallback tag schema, basic and token auth).

mod support;

use std::sync::Arc;

use bytes::Bytes;
use houba::config::Credentials;
use houba::registry::{Registry, RegistryError, TagDeletion, connect, referrers};
use support::images::{self, OCI_LAYER_GZIP};
use support::{Auth, PASSWORD, USERNAME, distribution, entry_for, ferro, quick_options};

async fn exercise_basics(registry: &dyn Registry) {
    let image = images::oci_image(
        "basics",
        "amd64",
        vec![images::tar_layer(OCI_LAYER_GZIP, &[("a", b"1")])],
    );
    for tag in ["v2", "v10", "v1", "latest"] {
        images::push_image(registry, "team/app", tag, &image)
            .await
            .unwrap();
    }
    assert_eq!(
        registry.list_tags("team/app").await.unwrap(),
        ["latest", "v1", "v10", "v2"]
    );
    assert!(registry.list_tags("team/absent").await.unwrap().is_empty());

    let head = registry
        .head_manifest("team/app", "v1")
        .await
        .unwrap()
        .expect("tag present");
    assert_eq!(head.digest, image.digest());
    assert_eq!(head.media_type, images::OCI_MANIFEST);
    assert_eq!(head.size, image.manifest.len() as u64);
    let (descriptor, bytes) = registry
        .get_manifest("team/app", &image.digest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes, image.manifest, "raw bytes come back untouched");
    assert_eq!(descriptor, head);
    assert!(
        registry
            .head_manifest("team/app", "nope")
            .await
            .unwrap()
            .is_none()
    );

    let layer = &image.blobs[1];
    let digest = layer.descriptor().digest;
    assert!(registry.blob_exists("team/app", &digest).await.unwrap());
    let mut stream = registry.get_blob("team/app", &digest).await.unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(read, layer.bytes.as_ref());
    assert!(matches!(
        registry
            .get_blob(
                "team/app",
                &images::Blob::new("x", &b"absent"[..]).descriptor().digest
            )
            .await,
        Err(RegistryError::NotFound { .. })
    ));

    let catalog = registry.catalog().await.unwrap();
    assert!(catalog.contains(&"team/app".to_owned()), "{catalog:?}");

    // Deleting by tag is refused by both servers; deleting by digest removes every tag.
    assert_eq!(
        registry.delete_tag("team/app", "latest").await.unwrap(),
        TagDeletion::Unsupported
    );
    registry
        .delete_manifest("team/app", &image.digest())
        .await
        .unwrap();
    assert!(
        registry
            .head_manifest("team/app", "v1")
            .await
            .unwrap()
            .is_none()
    );

    let stats = registry.request_stats();
    assert!(
        stats.head >= 3 && stats.put >= 4 && stats.delete >= 2,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_operations_on_ferro() {
    let server = ferro().await;
    exercise_basics(server.client().as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_operations_on_distribution() {
    let server = distribution(Auth::None).await;
    exercise_basics(server.client().as_ref()).await;
}

async fn exercise_referrers(registry: &dyn Registry) {
    let image = images::oci_image(
        "subject",
        "amd64",
        vec![images::tar_layer(OCI_LAYER_GZIP, &[("s", b"s")])],
    );
    let subject = images::push_image(registry, "app", "1.0", &image)
        .await
        .unwrap();
    let sbom = images::artifact(
        "application/spdx+json",
        "application/spdx+json",
        b"{\"spdx\":1}",
        Some(&subject),
    );
    let sig = images::artifact(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        "application/octet-stream",
        b"sig",
        Some(&subject),
    );
    images::attach(registry, "app", &subject, &sbom)
        .await
        .unwrap();
    images::attach(registry, "app", &subject, &sig)
        .await
        .unwrap();
    // Attaching twice does not list it twice.
    images::attach(registry, "app", &subject, &sbom)
        .await
        .unwrap();

    let mut listed = registry
        .referrer_details("app", &subject.digest)
        .await
        .unwrap();
    listed.sort_by(|a, b| a.artifact_type.cmp(&b.artifact_type));
    let types: Vec<_> = listed
        .iter()
        .map(|r| r.artifact_type.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "application/spdx+json",
            "application/vnd.dev.cosign.simplesigning.v1+json"
        ]
    );
    assert!(listed.iter().any(|r| r.descriptor.digest == sbom.digest()));
    assert_eq!(
        registry
            .referrers("app", &subject.digest)
            .await
            .unwrap()
            .len(),
        2
    );
    let other = images::Blob::new("x", &b"unrelated"[..])
        .descriptor()
        .digest;
    assert!(registry.referrers("app", &other).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_through_the_native_api() {
    let server = ferro().await;
    let registry = server.client();
    exercise_referrers(registry.as_ref()).await;
    let tags = registry.list_tags("app").await.unwrap();
    assert!(
        !tags.iter().any(|t| referrers::is_fallback_tag(t)),
        "no fallback tag needed: {tags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_through_the_fallback_tag_schema() {
    let server = distribution(Auth::None).await;
    let registry = server.client();
    exercise_referrers(registry.as_ref()).await;
    let tags = registry.list_tags("app").await.unwrap();
    assert_eq!(
        tags.iter()
            .filter(|t| referrers::is_fallback_tag(t))
            .count(),
        1,
        "{tags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_works_and_a_wrong_password_fails_clearly() {
    let server = distribution(Auth::Basic).await;
    let registry = server.client();
    let image = images::oci_image(
        "auth",
        "amd64",
        vec![images::tar_layer(OCI_LAYER_GZIP, &[("x", b"x")])],
    );
    images::push_image(registry.as_ref(), "secure/app", "1", &image)
        .await
        .unwrap();
    assert_eq!(registry.list_tags("secure/app").await.unwrap(), ["1"]);

    let env: houba::registry::auth::EnvLookup = Arc::new(|_| Some("wrong-Secret-123".to_owned()));
    let options = houba::registry::ConnectOptions {
        env,
        ..quick_options()
    };
    let creds = Credentials::PasswordEnv {
        username: USERNAME.into(),
        env: "HOUBA_TEST_PW".into(),
    };
    let wrong = connect(&entry_for(server.host(), creds), &options).unwrap();
    let error = wrong.head_manifest("secure/app", "1").await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, RegistryError::Auth { .. }), "{message}");
    assert!(
        message.contains(server.host()) && message.contains("secure/app"),
        "{message}"
    );
    assert!(
        message.contains("rejected the configured username/password"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-Secret-123") && !format!("{error:?}").contains("wrong-Secret-123")
    );

    let anonymous = connect(
        &entry_for(server.host(), Credentials::Ambient),
        &quick_options(),
    )
    .unwrap();
    let message = anonymous
        .list_tags("secure/app")
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("none are configured"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_with_multi_scope_mount_and_clear_failures() {
    let server = distribution(Auth::Token).await;
    let registry = server.client();
    let image = images::oci_image(
        "token",
        "amd64",
        vec![images::tar_layer(OCI_LAYER_GZIP, &[("t", b"t")])],
    );
    images::push_image(registry.as_ref(), "src/app", "1", &image)
        .await
        .unwrap();
    let layer = image.blobs[1].descriptor().digest;
    // A mount needs push on the target and pull on the source in one token.
    assert!(
        registry
            .mount_blob("dst/app", "src/app", &layer)
            .await
            .unwrap(),
        "mounted under token auth"
    );
    assert!(registry.blob_exists("dst/app", &layer).await.unwrap());
    assert!(registry.list_tags("src/app").await.unwrap() == ["1"]);

    let env: houba::registry::auth::EnvLookup = Arc::new(|_| Some("not-the-password".to_owned()));
    let options = houba::registry::ConnectOptions {
        env,
        ..quick_options()
    };
    let creds = Credentials::PasswordEnv {
        username: USERNAME.into(),
        env: "PW".into(),
    };
    let wrong = connect(&entry_for(server.host(), creds), &options).unwrap();
    let message = wrong.list_tags("src/app").await.unwrap_err().to_string();
    assert!(
        message.contains("token server") && message.contains("401"),
        "{message}"
    );
    assert!(
        !message.contains("not-the-password") && !message.contains(PASSWORD),
        "{message}"
    );
}

/// A server that ignores `n`/`last` and keeps sending the same page with a `Link` header
/// (as some distribution versions do): the listing must end, with every tag once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_listing_stops_when_a_page_repeats() {
    use axum::http::header;
    let app = axum::Router::new().route(
        "/v2/{*rest}",
        axum::routing::get(|| async {
            (
                [(
                    header::LINK,
                    "</v2/loop/tags/list?last=b&n=2>; rel=\"next\"",
                )],
                axum::Json(serde_json::json!({"name": "loop", "tags": ["b", "a", "c"]})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let _server = support::AbortOnDrop(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }));
    let registry = connect(&entry_for(&host, Credentials::Ambient), &quick_options()).unwrap();
    assert_eq!(registry.list_tags("loop").await.unwrap(), ["a", "b", "c"]);
    assert_eq!(
        registry.request_stats().get,
        2,
        "one page, one repeat, then stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_prefix_is_applied_and_put_by_digest_is_checked() {
    let server = distribution(Auth::None).await;
    let mut entry = server.entry();
    if let houba::config::RegistryEndpoint::Http { prefix, .. } = &mut entry.endpoint {
        *prefix = Some("org".into());
    }
    let prefixed = connect(&entry, &quick_options()).unwrap();
    assert_eq!(prefixed.display_name(), format!("{}/org", server.host()));
    let image = images::oci_image(
        "prefix",
        "amd64",
        vec![images::tar_layer(OCI_LAYER_GZIP, &[("p", b"p")])],
    );
    images::push_image(prefixed.as_ref(), "app", "1", &image)
        .await
        .unwrap();
    let plain = server.client();
    assert_eq!(plain.list_tags("org/app").await.unwrap(), ["1"]);
    assert_eq!(prefixed.catalog().await.unwrap(), ["app"]);

    let wrong_digest = images::Blob::new("x", &b"other"[..]).descriptor().digest;
    let error = prefixed
        .put_manifest(
            "app",
            &wrong_digest,
            images::OCI_MANIFEST,
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, RegistryError::DigestMismatch { .. }),
        "{error}"
    );
}
