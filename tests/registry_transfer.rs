//! The transfer engine between real registries (and OCI layout directories): digests
//! preserved, blobs deduplicated and mounted, warm repeats nearly free.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use houba::registry::transfer::TransferSession;
use houba::registry::{Registry, connect, digest::sha256_digest};
use support::images::{self, OCI_LAYER_GZIP};
use support::{Auth, distribution, ferro, layout_entry, quick_options, skopeo_raw, skopeo_raw_ref};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_arch_index_copy_preserves_every_digest() {
    let (source, destination) = (ferro().await, distribution(Auth::None).await);
    let (src, dst) = (source.client(), destination.client());
    let image = images::multi_arch("multi");
    images::push_image(src.as_ref(), "upstream/app", "1.0", &image)
        .await
        .unwrap();

    let session = TransferSession::default();
    let outcome = session
        .copy(
            src.as_ref(),
            "upstream/app",
            "1.0",
            dst.as_ref(),
            "mirror/app",
            "1.0",
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome.descriptor.digest, image.digest());
    assert!(!outcome.unchanged);

    let raw = skopeo_raw(&destination, "mirror/app:1.0").await;
    assert_eq!(
        raw,
        image.manifest.as_ref(),
        "index bytes identical at the destination"
    );
    for child in &image.children {
        let raw = skopeo_raw(&destination, &format!("mirror/app@{}", child.digest())).await;
        assert_eq!(sha256_digest(&raw), child.digest());
    }
    // base layer shared by both platforms + one app layer and one config each.
    let stats = session.stats();
    assert_eq!(stats.blobs_uploaded, 5, "{stats:?}");
    assert_eq!(stats.manifests_put, 3, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_v2_image_and_manifest_list_copy() {
    let (source, destination) = (distribution(Auth::None).await, ferro().await);
    let (src, dst) = (source.client(), destination.client());
    let layer = images::tar_layer(images::DOCKER_LAYER_GZIP, &[("bin/tool", b"#!/bin/sh\n")]);
    let single = images::docker_image("docker", "amd64", vec![layer.clone()]);
    let list = images::index(
        images::DOCKER_LIST,
        vec![
            single.clone(),
            images::docker_image("docker", "arm64", vec![layer]),
        ],
    );
    images::push_image(src.as_ref(), "lib/tool", "single", &single)
        .await
        .unwrap();
    images::push_image(src.as_ref(), "lib/tool", "list", &list)
        .await
        .unwrap();

    let session = TransferSession::default();
    for tag in ["single", "list"] {
        session
            .copy(
                src.as_ref(),
                "lib/tool",
                tag,
                dst.as_ref(),
                "lib/tool",
                tag,
                None,
            )
            .await
            .unwrap();
        let before = skopeo_raw(&source, &format!("lib/tool:{tag}")).await;
        let after = skopeo_raw(&destination, &format!("lib/tool:{tag}")).await;
        assert_eq!(sha256_digest(&before), sha256_digest(&after), "{tag}");
    }
    let head = dst
        .head_manifest("lib/tool", "list")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.media_type, images::DOCKER_LIST);
    assert_eq!(head.digest, list.digest());
}

fn family(count: usize) -> Vec<images::Built> {
    let base = images::noise_layer(OCI_LAYER_GZIP, 7, 64 * 1024);
    (0..count)
        .map(|i| {
            images::oci_image(
                &format!("svc{i}"),
                "amd64",
                vec![
                    base.clone(),
                    images::noise_layer(OCI_LAYER_GZIP, 100 + i as u64, 4096),
                ],
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_base_crosses_once_then_mounts_and_a_warm_repeat_only_heads() {
    let (source, destination) = (ferro().await, distribution(Auth::None).await);
    let (src, dst) = (source.client(), destination.client());
    let images = family(4);
    for (i, image) in images.iter().enumerate() {
        images::push_image(src.as_ref(), &format!("svc{i}"), "1", image)
            .await
            .unwrap();
    }
    let copy_all = |session: Arc<TransferSession>,
                    src: Arc<dyn Registry>,
                    dst: Arc<dyn Registry>| async move {
        let copies = (0..4).map(|i| {
            let (session, src, dst) = (session.clone(), src.clone(), dst.clone());
            async move {
                let repo = format!("svc{i}");
                session
                    .copy(
                        src.as_ref(),
                        &repo,
                        "1",
                        dst.as_ref(),
                        &format!("mirror/{repo}"),
                        "1",
                        None,
                    )
                    .await
            }
        });
        futures::future::try_join_all(copies).await.unwrap()
    };

    let cold = Arc::new(TransferSession::default());
    copy_all(cold.clone(), src.clone(), dst.clone()).await;
    let stats = cold.stats();
    // 4 configs + 4 app layers + the base once; the base reaches the 3 other repos by mount.
    assert_eq!(stats.blobs_uploaded, 9, "{stats:?}");
    assert_eq!(stats.blobs_mounted, 3, "{stats:?}");
    assert_eq!(
        stats.bytes_uploaded,
        images
            .iter()
            .flat_map(|i| &i.blobs)
            .map(|b| b.bytes.len() as u64)
            .sum::<u64>()
            - 3 * 64 * 1024
    );
    for (i, image) in images.iter().enumerate() {
        let raw = skopeo_raw(&destination, &format!("mirror/svc{i}:1")).await;
        assert_eq!(sha256_digest(&raw), image.digest());
    }

    let (src_before, dst_before) = (src.request_stats(), dst.request_stats());
    let warm = Arc::new(TransferSession::default());
    let outcomes = copy_all(warm.clone(), src.clone(), dst.clone()).await;
    assert!(outcomes.iter().all(|o| o.unchanged));
    let stats = warm.stats();
    assert_eq!(
        (
            stats.blobs_uploaded,
            stats.blobs_mounted,
            stats.manifests_put,
            stats.tags_unchanged
        ),
        (0, 0, 0, 4)
    );
    let (src_delta, dst_delta) = (
        src.request_stats().since(&src_before),
        dst.request_stats().since(&dst_before),
    );
    assert_eq!(
        (src_delta.head, src_delta.total()),
        (4, 4),
        "source: one HEAD per manifest, {src_delta}"
    );
    assert_eq!(
        (dst_delta.head, dst_delta.total()),
        (4, 4),
        "destination: one HEAD per manifest, {dst_delta}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_registry_copy_mounts_and_falls_back_to_upload_when_declined() {
    // distribution mounts across repositories.
    let server = distribution(Auth::None).await;
    let registry = server.client();
    let image = &family(1)[0];
    images::push_image(registry.as_ref(), "team/a", "1", image)
        .await
        .unwrap();
    let session = TransferSession::default();
    session
        .copy(
            registry.as_ref(),
            "team/a",
            "1",
            registry.as_ref(),
            "team/b",
            "1",
            None,
        )
        .await
        .unwrap();
    let stats = session.stats();
    assert_eq!(
        (stats.blobs_mounted, stats.blobs_uploaded),
        (3, 0),
        "{stats:?}"
    );
    assert!(registry.request_stats().post >= 3);

    // A server that declines mounts (202, as ferro-oci-server does): the engine uploads.
    let ferro_server = ferro().await;
    let image_digest = &image.blobs[1].descriptor().digest;
    images::push_image(ferro_server.client().as_ref(), "team/a", "1", image)
        .await
        .unwrap();
    assert!(
        !ferro_server
            .client()
            .mount_blob("team/b", "team/a", image_digest)
            .await
            .unwrap()
    );

    let proxy = support::fault::FaultProxy::start(server.host()).await;
    proxy.add(support::fault::Rule::new(
        Some("POST"),
        "mount=",
        support::fault::Fault::Status(202),
        usize::MAX,
    ));
    let declining = connect(
        &support::entry_for(proxy.host(), Default::default()),
        &quick_options(),
    )
    .unwrap();
    let session = TransferSession::default();
    session
        .copy(
            declining.as_ref(),
            "team/a",
            "1",
            declining.as_ref(),
            "team/c",
            "1",
            None,
        )
        .await
        .unwrap();
    let stats = session.stats();
    assert_eq!(
        (stats.blobs_mounted, stats.blobs_uploaded),
        (0, 3),
        "{stats:?}"
    );
    assert_eq!(proxy.injected(), 3);
    let raw = skopeo_raw(&server, "team/c:1").await;
    assert_eq!(sha256_digest(&raw), image.digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamped_top_manifest_and_artifacts_are_placed() {
    let (source, destination) = (ferro().await, distribution(Auth::None).await);
    let (src, dst) = (source.client(), destination.client());
    let image = &family(1)[0];
    images::push_image(src.as_ref(), "app", "1", image)
        .await
        .unwrap();

    // The caller's stamp: an edit of the JSON value, serialised by the caller.
    let mut stamped: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    stamped["annotations"] = serde_json::json!({"io.houba.policy": "app"});
    let stamped = Bytes::from(serde_json::to_vec(&stamped).unwrap());
    let session = TransferSession::default();
    let outcome = session
        .copy(
            src.as_ref(),
            "app",
            "1",
            dst.as_ref(),
            "app",
            "1",
            Some((images::OCI_MANIFEST.into(), stamped.clone())),
        )
        .await
        .unwrap();
    assert_eq!(outcome.descriptor.digest, sha256_digest(&stamped));
    assert_eq!(skopeo_raw(&destination, "app:1").await, stamped.as_ref());

    let artifact = images::artifact(
        "application/vnd.example.chart",
        "application/vnd.example.chart.layer",
        b"chart",
        None,
    );
    images::push_image(src.as_ref(), "charts/x", "0.1.0", &artifact)
        .await
        .unwrap();
    session
        .copy(
            src.as_ref(),
            "charts/x",
            "0.1.0",
            dst.as_ref(),
            "charts/x",
            "0.1.0",
            None,
        )
        .await
        .unwrap();
    let (_, bytes) = dst
        .get_manifest("charts/x", "0.1.0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes, artifact.manifest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_directory_as_destination_and_source() {
    let (source, destination) = (ferro().await, distribution(Auth::None).await);
    let src = source.client();
    let dir = tempfile::tempdir().unwrap();
    let layout = connect(&layout_entry(dir.path().to_path_buf()), &quick_options()).unwrap();
    let image = images::multi_arch("layout");
    images::push_image(src.as_ref(), "upstream/app", "2.0", &image)
        .await
        .unwrap();

    let session = TransferSession::default();
    session
        .copy(
            src.as_ref(),
            "upstream/app",
            "2.0",
            layout.as_ref(),
            "mirror/app",
            "2.0",
            None,
        )
        .await
        .unwrap();
    let oci_ref = format!("oci:{}:2.0", dir.path().join("mirror/app").display());
    assert_eq!(
        skopeo_raw_ref(&oci_ref).await,
        image.manifest.as_ref(),
        "skopeo reads the layout"
    );
    assert_eq!(layout.list_tags("mirror/app").await.unwrap(), ["2.0"]);
    assert_eq!(layout.catalog().await.unwrap(), ["mirror/app"]);

    // Referrers in a layout use the fallback tag schema.
    let subject = image.descriptor();
    let sbom = images::artifact(
        "application/spdx+json",
        "application/spdx+json",
        b"{}",
        Some(&subject),
    );
    images::attach(layout.as_ref(), "mirror/app", &subject, &sbom)
        .await
        .unwrap();
    assert_eq!(
        layout
            .referrers("mirror/app", &subject.digest)
            .await
            .unwrap()[0]
            .digest,
        sbom.digest()
    );

    let dst = destination.client();
    session
        .copy(
            layout.as_ref(),
            "mirror/app",
            "2.0",
            dst.as_ref(),
            "from-layout/app",
            "2.0",
            None,
        )
        .await
        .unwrap();
    let raw = skopeo_raw(&destination, "from-layout/app:2.0").await;
    assert_eq!(sha256_digest(&raw), image.digest());

    // Within one layout directory a copy links blobs instead of rewriting them.
    let session = TransferSession::default();
    session
        .copy(
            layout.as_ref(),
            "mirror/app",
            "2.0",
            layout.as_ref(),
            "copy/app",
            "2.0",
            None,
        )
        .await
        .unwrap();
    assert_eq!(session.stats().blobs_uploaded, 0);
    assert_eq!(session.stats().blobs_mounted, 5);
    assert_eq!(
        layout.delete_tag("copy/app", "2.0").await.unwrap(),
        houba::registry::TagDeletion::Deleted
    );
    assert!(layout.list_tags("copy/app").await.unwrap().is_empty());
}

/// A later run (a new session) remembers, from the cache directory, which repositories of
/// the destination hold a blob: a new repository gets the blobs by mount, not by upload. A
/// remembered repository that no longer holds the blob is only a declined mount, then an
/// upload; the copy is complete either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_run_mounts_blobs_an_earlier_run_placed() {
    let (source, destination) = (ferro().await, distribution(Auth::None).await);
    let (src, dst) = (source.client(), destination.client());
    let image = images::oci_image(
        "remembered",
        "amd64",
        vec![images::noise_layer(OCI_LAYER_GZIP, 11, 64 * 1024)],
    );
    images::push_image(src.as_ref(), "upstream/app", "1", &image)
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let run = |repository: &'static str| {
        let (src, dst) = (src.clone(), dst.clone());
        let cache = cache.path().to_path_buf();
        async move {
            let session = TransferSession::default().remembering(Some(cache));
            session
                .copy(
                    src.as_ref(),
                    "upstream/app",
                    "1",
                    dst.as_ref(),
                    repository,
                    "1",
                    None,
                )
                .await
                .unwrap();
            session.save_memory();
            session.stats()
        }
    };
    let first = run("mirror/one").await;
    assert_eq!((first.blobs_uploaded, first.blobs_mounted), (2, 0));
    let second = run("mirror/two").await;
    assert_eq!(
        (
            second.blobs_uploaded,
            second.blobs_mounted,
            second.bytes_uploaded
        ),
        (0, 2, 0),
        "both blobs mounted from mirror/one"
    );
    let raw = skopeo_raw(&destination, "mirror/two:1").await;
    assert_eq!(sha256_digest(&raw), image.digest());

    // Without the memory the same copy uploads: the mount above came from it.
    let forgetful = TransferSession::default();
    forgetful
        .copy(
            src.as_ref(),
            "upstream/app",
            "1",
            dst.as_ref(),
            "mirror/three",
            "1",
            None,
        )
        .await
        .unwrap();
    assert_eq!(forgetful.stats().blobs_uploaded, 2);

    // A memory naming a repository that never held the blobs: declined, then uploaded.
    let stale = tempfile::tempdir().unwrap();
    let memory = houba::registry::holders::HolderMemory::new(Some(stale.path().to_path_buf()));
    for blob in &image.blobs {
        memory.learn(
            destination.host(),
            &blob.descriptor().digest,
            "mirror/ghost",
        );
    }
    memory.save();
    let session = TransferSession::default().remembering(Some(stale.path().to_path_buf()));
    session
        .copy(
            src.as_ref(),
            "upstream/app",
            "1",
            dst.as_ref(),
            "mirror/four",
            "1",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            session.stats().blobs_uploaded,
            session.stats().blobs_mounted
        ),
        (2, 0)
    );
    let raw = skopeo_raw(&destination, "mirror/four:1").await;
    assert_eq!(sha256_digest(&raw), image.digest());
}
