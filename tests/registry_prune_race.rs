//! Many prunes in one repository of a registry without tag DELETE (CNCF distribution), at
//! once, repeated. distribution walks the repository's tag links while it deletes a manifest;
//! a tag link rewritten at that moment makes it answer `500 invalid checksum digest format`
//! after deleting half, leaving the tag listed with no manifest behind it. Every round must
//! leave exactly the kept tags listed, each on complete content.

mod support;

use support::houba::{Policy, Workspace, assert_complete, push_upstream, skopeo_raw};
use support::{Auth, distribution, ferro};

const TAGS: usize = 12;

/// The listed tags that hold images: the referrers fallback tags of their SBOMs are left out.
async fn image_tags(client: &dyn houba::registry::Registry, repository: &str) -> Vec<String> {
    let mut tags = client.list_tags(repository).await.unwrap();
    tags.retain(|t| !houba::oci::is_evidence_tag(t));
    tags
}
const ROUNDS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_prunes_in_one_distribution_repository() {
    let upstream = ferro().await;
    let destination = distribution(Auth::None).await;
    let tags: Vec<String> = (0..TAGS).map(|i| format!("1.0.{i}")).collect();
    for (i, tag) in tags.iter().enumerate() {
        push_upstream(upstream.client().as_ref(), "busybox", tag, i as u32).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let all = Policy::new("busybox", "busybox", r"^1\.0\.\d+$", "dest");
    let mut kept = all.clone();
    kept.include = r"^1\.0\.0$".into();
    let client = destination.client();
    for round in 0..ROUNDS {
        ws.policy("busybox", &all.yaml());
        ws.apply_and_converge().await;
        assert_eq!(
            image_tags(client.as_ref(), "mirror/busybox").await.len(),
            TAGS,
            "round {round}: every tag placed"
        );

        ws.policy("busybox", &kept.yaml());
        let pruned = ws.run(&["apply", "--auto", "--allow-mass-prune"]).await;
        assert_eq!(
            pruned.code,
            0,
            "round {round}: the prune of {} tags must succeed:\n{}",
            TAGS - 1,
            pruned.stderr
        );
        assert_eq!(
            image_tags(client.as_ref(), "mirror/busybox").await,
            ["1.0.0"],
            "round {round}: no pruned tag left listed (dangling)"
        );
        let plan = ws.plan_text().await;
        assert!(
            plan.contains("No changes. The registries match the policies."),
            "round {round}: converged:\n{plan}"
        );
        let raw = skopeo_raw(destination.host(), "mirror/busybox:1.0.0").await;
        assert_complete(client.as_ref(), "mirror/busybox", &raw).await;
    }
}

/// A tag left dangling by an interrupted delete (listed, its manifest revision gone: what the
/// race leaves behind) is removed by the next removal of that tag, and the other tags of the
/// repository stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dangling_tag_is_repaired() {
    let destination = distribution(Auth::None).await;
    let client = destination.client();
    let kept = support::images::oci_image("kept", "amd64", vec![]);
    let dangling = support::images::oci_image("dangling", "amd64", vec![]);
    support::images::push_image(client.as_ref(), "mirror/app", "kept", &kept)
        .await
        .unwrap();
    support::images::push_image(client.as_ref(), "mirror/app", "dangling", &dangling)
        .await
        .unwrap();
    // Storage layout of distribution's filesystem driver: drop the manifest's revision link,
    // as the half-done delete does, and the tag lists with no manifest behind it.
    let digest = dangling.digest();
    let revision = destination
        .dir
        .as_ref()
        .expect("distribution keeps its storage in the scratch directory")
        .path()
        .join("storage/docker/registry/v2/repositories/mirror/app/_manifests/revisions/sha256")
        .join(digest.trim_start_matches("sha256:"));
    std::fs::remove_dir_all(&revision).expect("remove the revision");
    assert!(
        client
            .head_manifest("mirror/app", "dangling")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        image_tags(client.as_ref(), "mirror/app").await,
        ["dangling", "kept"],
        "dangling: listed, no manifest"
    );

    client.remove_tag("mirror/app", "dangling").await.unwrap();
    assert_eq!(image_tags(client.as_ref(), "mirror/app").await, ["kept"]);
    assert_eq!(
        client
            .head_manifest("mirror/app", "kept")
            .await
            .unwrap()
            .map(|d| d.digest),
        Some(kept.digest())
    );
}
