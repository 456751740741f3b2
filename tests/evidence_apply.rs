//! Evidence through `houba plan` / `apply` / `drift` end to end, on both registry kinds
//! (ferro: referrers API; distribution 2.8: fallback tags): the plan lists and counts the
//! evidence of each placement; after apply every placed digest has its SPDX and CycloneDX SBOM
//! and a signature `openssl` verifies; the publisher's signature and SBOM travel and verify at
//! `<destination>@<upstream digest>`; a second apply adds nothing and the warm plan asks the
//! destination nothing about evidence; a deleted SBOM is reported by `drift --deep` and put
//! back by the next apply.

mod evidence_support;
mod support;

use evidence_support::{
    COSIGN_SIG, alpine_index, openssl_key_pair, publisher_signature, referrers_of,
    verify_signature_with_openssl,
};
use houba::evidence::placement::subjects;
use support::fault::{Fault, FaultProxy, Rule};
use support::houba::{Policy, Workspace, tag_digests};
use support::images;
use support::{Auth, TestRegistry, distribution, ferro};

const SPDX: &str = "application/spdx+json";
const CYCLONEDX: &str = "application/vnd.cyclonedx+json";

async fn evidence_end_to_end(destination: TestRegistry) {
    let upstream = ferro().await;
    let up = upstream.client();
    let image = alpine_index();
    let upstream_digest = images::push_image(up.as_ref(), "library/alpine", "3.20.3", &image)
        .await
        .unwrap();
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    std::fs::create_dir_all(ws.path("keys")).unwrap();
    let (houba_key, houba_pub) = openssl_key_pair(&ws.path("keys"));
    let (publisher_key, publisher_pub) = {
        let dir = ws.path("publisher");
        std::fs::create_dir_all(&dir).unwrap();
        openssl_key_pair(&dir)
    };
    let signature = publisher_signature(
        &ws.path("publisher"),
        &publisher_key,
        "docker.io/library/alpine",
        &upstream_digest,
    );
    images::attach(up.as_ref(), "library/alpine", &upstream_digest, &signature)
        .await
        .unwrap();
    let upstream_sbom = images::artifact(
        SPDX,
        SPDX,
        br#"{"spdxVersion":"SPDX-2.3"}"#,
        Some(&upstream_digest),
    );
    images::attach(
        up.as_ref(),
        "library/alpine",
        &upstream_digest,
        &upstream_sbom,
    )
    .await
    .unwrap();
    ws.write_config(&format!(
        "[signing]\nkey_file = \"{}\"\n",
        houba_key.display()
    ));
    let policy = Policy::new("alpine", "alpine", r"^3\.20\.\d+$", "dest");
    ws.policy("alpine", &policy.yaml());

    // The plan lists the evidence under the placement and counts it.
    let text = ws.plan_text().await;
    assert!(text.contains("+ sbom spdx,cyclonedx"), "{text}");
    assert!(text.contains("+ signature"), "{text}");
    assert!(text.contains("+ 2 upstream referrers"), "{text}");
    assert!(
        text.contains("Evidence: 2 SBOMs, 1 signature, 2 upstream referrers"),
        "{text}"
    );
    let plan = ws.plan_json(&[]).await;
    assert_eq!(
        plan["actions"][0]["evidence"]["sbom"][1], "cyclonedx",
        "{plan}"
    );

    ws.apply_and_converge().await;
    let dst = destination.client();
    let repo = policy.destination_repository();
    let placed = tag_digests(dst.as_ref(), &repo).await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    let top = dst.head_manifest(&repo, "3.20.3").await.unwrap().unwrap();
    let (_, bytes) = dst.get_manifest(&repo, &top.digest).await.unwrap().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    for subject in subjects(&top, &bytes) {
        let d = &subject.digest;
        assert_eq!(
            referrers_of(dst.as_ref(), &repo, d, SPDX).await.len(),
            1,
            "{d}"
        );
        assert_eq!(
            referrers_of(dst.as_ref(), &repo, d, CYCLONEDX).await.len(),
            1,
            "{d}"
        );
        let signed =
            verify_signature_with_openssl(dst.as_ref(), &repo, d, &houba_pub, scratch.path()).await;
        assert_eq!(&signed, d, "houba's signature names the placed digest");
    }
    // The publisher's evidence, at the upstream digest, which resolves at the destination.
    let signed = verify_signature_with_openssl(
        dst.as_ref(),
        &repo,
        &upstream_digest.digest,
        &publisher_pub,
        scratch.path(),
    )
    .await;
    assert_eq!(signed, upstream_digest.digest);
    assert_eq!(
        referrers_of(dst.as_ref(), &repo, &upstream_digest.digest, SPDX)
            .await
            .len(),
        1
    );

    // A second apply adds nothing; the warm plan asks the destination nothing about evidence.
    let before = dst.referrer_details(&repo, &top.digest).await.unwrap();
    let again = ws.run(&["apply", "--auto"]).await;
    again.expect_code(0);
    assert_eq!(
        dst.referrer_details(&repo, &top.digest).await.unwrap(),
        before
    );
    let warm = ws.plan_json(&[]).await;
    let requests = &warm["requests"]["dest"];
    // The tag list and the catalog (the orphan scan); nothing about evidence.
    assert_eq!(requests["get"], 2, "the tag list and the catalog: {warm}");
    assert_eq!(requests["head"], 1, "one HEAD per destination tag: {warm}");

    // Someone deletes the SPDX SBOM of the index: the cache still believes it complete, so
    // `drift` stays quiet and cheap; `drift --deep` asks the registry and reports it.
    let spdx = referrers_of(dst.as_ref(), &repo, &top.digest, SPDX).await;
    dst.delete_manifest(&repo, &spdx[0].descriptor.digest)
        .await
        .unwrap();
    ws.run(&["drift"]).await.expect_code(0);
    let deep = ws.run(&["drift", "--deep"]).await;
    deep.expect_code(2);
    assert!(
        deep.stdout.contains("lost evidence houba attached"),
        "{}",
        deep.stdout
    );
    assert!(deep.stdout.contains("sbom spdx"), "{}", deep.stdout);
    let text = ws.plan_text().await;
    assert!(
        text.contains("will be completed with its evidence"),
        "{text}"
    );
    assert!(text.contains("Plan: 0 to copy, 0 to build, 0 to replace, 0 to restamp, 0 to alias, 0 to prune, 1 to attach."), "{text}");
    ws.apply_and_converge().await;
    assert_eq!(
        referrers_of(dst.as_ref(), &repo, &top.digest, SPDX)
            .await
            .len(),
        1
    );
    assert!(
        dst.head_manifest(&repo, &spdx[0].descriptor.digest)
            .await
            .unwrap()
            .is_some(),
        "the same deterministic SBOM is back"
    );
    assert_eq!(
        referrers_of(dst.as_ref(), &repo, &top.digest, COSIGN_SIG)
            .await
            .len(),
        1
    );
    ws.run(&["drift", "--deep"]).await.expect_code(0);
}

#[tokio::test]
async fn evidence_end_to_end_with_the_referrers_api() {
    evidence_end_to_end(ferro().await).await;
}

#[tokio::test]
async fn evidence_end_to_end_with_fallback_tags() {
    evidence_end_to_end(distribution(Auth::None).await).await;
}

/// A copy scans each layer for its packages while it uploads it: making the SBOM reads no
/// layer back from the destination (every such read would fail here), and the SBOM still
/// lists the packages of the image's database.
#[tokio::test]
async fn sboms_read_the_layers_the_copy_streams() {
    let upstream = ferro().await;
    let destination = ferro().await;
    let proxy = FaultProxy::start(destination.host()).await;
    let image = alpine_index();
    images::push_image(
        upstream.client().as_ref(),
        "library/alpine",
        "3.20.3",
        &image,
    )
    .await
    .unwrap();
    let mut layers: Vec<String> = image
        .children
        .iter()
        .flat_map(|c| c.blobs.iter())
        .filter(|b| b.media_type == images::OCI_LAYER_GZIP)
        .map(|b| b.descriptor().digest)
        .collect();
    layers.sort();
    layers.dedup();
    assert_eq!(layers.len(), 3, "one shared base and two app layers");
    // Nor the configs (their creation time is read on the way too), nor the manifests (the
    // run holds every manifest it placed).
    let configs: Vec<String> = image
        .children
        .iter()
        .flat_map(|c| c.blobs.iter())
        .filter(|b| b.media_type == images::OCI_CONFIG)
        .map(|b| b.descriptor().digest)
        .collect();
    assert_eq!(configs.len(), 2, "one config per platform");
    for blob in layers.iter().chain(&configs) {
        proxy.add(Rule::new(
            Some("GET"),
            &format!("/blobs/{blob}"),
            Fault::Status(500),
            100,
        ));
    }
    proxy.add(Rule::new(
        Some("GET"),
        "/manifests/sha256:",
        Fault::Status(500),
        100,
    ));
    let ws = Workspace::new(upstream.host(), &[("dest", proxy.host())]);
    let policy = Policy::new("alpine", "alpine", r"^3\.20\.\d+$", "dest");
    ws.policy("alpine", &policy.yaml());
    ws.apply_and_converge().await;
    assert_eq!(
        proxy.injected(),
        0,
        "no layer, config or manifest was read back from the destination"
    );

    let dst = destination.client();
    let repo = policy.destination_repository();
    let top = dst.head_manifest(&repo, "3.20.3").await.unwrap().unwrap();
    let spdx = referrers_of(dst.as_ref(), &repo, &top.digest, SPDX).await;
    assert_eq!(spdx.len(), 1);
    let manifest =
        evidence_support::manifest_json(dst.as_ref(), &repo, &spdx[0].descriptor.digest).await;
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let document =
        String::from_utf8(evidence_support::blob(dst.as_ref(), &repo, layer).await).unwrap();
    assert!(document.contains("\"musl\""), "{document}");
    assert!(document.contains("1.36.1-r29"), "{document}");
}

/// `[sbom] generator = "syft"`: syft scans the placed image from the destination registry and
/// its documents are attached (no signing configured: no signature is asked for).
#[tokio::test]
async fn the_syft_generator_attaches_what_syft_writes() {
    let upstream = ferro().await;
    let destination = ferro().await;
    images::push_image(
        upstream.client().as_ref(),
        "library/alpine",
        "3.20.3",
        &alpine_index(),
    )
    .await
    .unwrap();
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    ws.write_config("[sbom]\nformats = [\"cyclonedx\"]\ngenerator = \"syft\"\n");
    let policy = Policy::new("alpine", "alpine", r"^3\.20\.\d+$", "dest");
    ws.policy("alpine", &policy.yaml());
    let text = ws.plan_text().await;
    assert!(text.contains("+ sbom cyclonedx"), "{text}");
    assert!(!text.contains("+ signature"), "{text}");
    ws.apply_and_converge().await;
    let dst = destination.client();
    let repo = policy.destination_repository();
    let top = dst.head_manifest(&repo, "3.20.3").await.unwrap().unwrap();
    let boms = referrers_of(dst.as_ref(), &repo, &top.digest, CYCLONEDX).await;
    assert_eq!(boms.len(), 1);
    assert!(
        referrers_of(dst.as_ref(), &repo, &top.digest, SPDX)
            .await
            .is_empty()
    );
    let manifest =
        evidence_support::manifest_json(dst.as_ref(), &repo, &boms[0].descriptor.digest).await;
    let bom = evidence_support::blob(
        dst.as_ref(),
        &repo,
        manifest["layers"][0]["digest"].as_str().unwrap(),
    )
    .await;
    let bom: serde_json::Value = serde_json::from_slice(&bom).unwrap();
    assert_eq!(
        bom["metadata"]["tools"]["components"][0]["name"], "syft",
        "{bom}"
    );
    let names: Vec<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"musl") && names.contains(&"busybox"),
        "{names:?}"
    );
}

/// On a registry without the referrers API, the evidence of a placement costs one
/// read-modify-write of each subject's fallback index (not one per document), one probe of the
/// referrers API for the whole run, and one question (and upload) of the empty config per
/// repository.
#[tokio::test]
async fn fallback_evidence_writes_each_index_once() {
    let upstream = ferro().await;
    let destination = distribution(Auth::None).await;
    let proxy = FaultProxy::start(destination.host()).await;
    let image = alpine_index();
    let up = upstream.client();
    images::push_image(up.as_ref(), "library/alpine", "3.20.3", &image)
        .await
        .unwrap();
    let single = images::oci_image(
        "alpine-single",
        "amd64",
        vec![images::tar_layer(
            images::OCI_LAYER_GZIP,
            &[("etc/os-release", b"ID=alpine\nVERSION_ID=3.20.4\n")],
        )],
    );
    images::push_image(up.as_ref(), "library/alpine", "3.20.4", &single)
        .await
        .unwrap();
    let ws = Workspace::new(upstream.host(), &[("dest", proxy.host())]);
    let policy = Policy::new("alpine", "alpine", r"^3\.20\.\d+$", "dest");
    ws.policy("alpine", &policy.yaml());
    ws.apply_and_converge().await;

    let dst = destination.client();
    let repo = policy.destination_repository();
    let index = dst.head_manifest(&repo, "3.20.3").await.unwrap().unwrap();
    let (_, index_bytes) = dst
        .get_manifest(&repo, &index.digest)
        .await
        .unwrap()
        .unwrap();
    let single = dst.head_manifest(&repo, "3.20.4").await.unwrap().unwrap();
    // The index and its two platforms, plus the single-platform image.
    let subjects = subjects(&index, &index_bytes).len() + 1;
    assert_eq!(subjects, 4);
    for digest in [&index.digest, &single.digest] {
        assert_eq!(
            referrers_of(dst.as_ref(), &repo, digest, SPDX).await.len(),
            1
        );
        assert_eq!(
            referrers_of(dst.as_ref(), &repo, digest, CYCLONEDX)
                .await
                .len(),
            1
        );
    }
    let requests = proxy.requests();
    let count = |method: &str, part: &str| {
        requests
            .iter()
            .filter(|(m, p)| m == method && p.contains(part))
            .count()
    };
    assert_eq!(
        count("PUT", "/manifests/sha256-"),
        subjects,
        "one fallback-index write per subject: {requests:?}"
    );
    assert_eq!(count("GET", "/referrers/"), 1, "{requests:?}");
    let empty = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    let empty_uploads = requests
        .iter()
        .filter(|(m, p)| m == "PUT" && p.contains("/blobs/uploads/") && p.contains(empty))
        .count();
    // Two placements attach side by side in one repository: one asks, the other waits for
    // its answer (it was once per document: eight here).
    assert_eq!(empty_uploads, 1, "{requests:?}");
    assert_eq!(
        count("HEAD", &format!("/blobs/{empty}")),
        1,
        "the empty config is asked for once per repository: {requests:?}"
    );
}

/// Planning new content from an upstream without the referrers API asks it nothing per
/// placement about evidence: one listing tells the API is absent, and the fallback tags of
/// the other digests are looked up in the tag list the plan read anyway.
#[tokio::test]
async fn planning_asks_an_upstream_without_the_api_once() {
    let upstream = distribution(Auth::None).await;
    let destination = ferro().await;
    let up = upstream.client();
    for version in ["3.20.1", "3.20.2", "3.20.3"] {
        let image = images::oci_image(
            version,
            "amd64",
            vec![images::tar_layer(
                images::OCI_LAYER_GZIP,
                &[("etc/os-release", version.as_bytes())],
            )],
        );
        images::push_image(up.as_ref(), "library/alpine", version, &image)
            .await
            .unwrap();
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let policy = Policy::new("alpine", "alpine", r"^3\.20\.\d+$", "dest");
    ws.policy("alpine", &policy.yaml());
    let plan = ws.plan_json(&[]).await;
    assert_eq!(plan["actions"].as_array().unwrap().len(), 3, "{plan}");
    let endpoints = &plan["requests"]["docker.io"]["endpoints"];
    assert_eq!(
        endpoints["GET /v2/<repo>/referrers/<digest>"], 1,
        "one probe for three placements: {endpoints:#}"
    );
    // The three manifests, and the fallback tag of the probed digest (absent); the other two
    // digests cost nothing (it was one referrers listing and one fallback read each).
    assert_eq!(
        endpoints["GET /v2/<repo>/manifests/<ref>"], 4,
        "{endpoints:#}"
    );
}
