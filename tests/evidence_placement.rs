//! Evidence of placed images on both registry kinds (ferro: referrers API; distribution 2.8:
//! fallback tags): every digest of a multi-platform image gets its SPDX and CycloneDX SBOMs and
//! signatures that `openssl` verifies; attaching again adds nothing; a deleted SBOM is found
//! missing and restored. Upstream referrers travel and the publisher's signature verifies
//! against `<destination>@<upstream digest>`.

mod evidence_support;
mod support;

use std::sync::Arc;

use evidence_support::{
    COSIGN_SIG, alpine_index, openssl_key_pair, publisher_signature, referrers_of,
    verify_signature_with_openssl,
};
use houba::evidence::collect::EvidenceCache;
use houba::evidence::placement::{
    Attached, EvidenceSpec, attach_missing, complete_in_cache, live_missing, subjects,
};
use houba::evidence::sbom::SbomFormat;
use houba::evidence::sign::KeySigner;
use houba::evidence::upstream;
use houba::registry::Registry;
use houba::registry::transfer::TransferSession;
use support::images;
use support::{Auth, TestRegistry, distribution, ferro};

const SPDX: &str = "application/spdx+json";
const CYCLONEDX: &str = "application/vnd.cyclonedx+json";

async fn count(registry: &dyn Registry, repo: &str, digest: &str, artifact: &str) -> usize {
    referrers_of(registry, repo, digest, artifact).await.len()
}

async fn placed_images_carry_complete_evidence(destination: TestRegistry) {
    let client = destination.client();
    let repo = "demo/alpine";
    let image = alpine_index();
    let top = images::push_image(client.as_ref(), repo, "3.20", &image)
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (private, public) = openssl_key_pair(scratch.path());
    let signer =
        KeySigner::from_pkcs8_pem(&std::fs::read_to_string(&private).unwrap(), "test").unwrap();
    let spec = EvidenceSpec {
        formats: SbomFormat::ALL.to_vec(),
        signer: Some(Arc::new(signer)),
        syft: None,
    };
    let cache = EvidenceCache::new(Some(scratch.path().join("cache")));
    let identity = format!("{}/{repo}", destination.host());
    let all = subjects(&top, &image.manifest);
    assert_eq!(all.len(), 3, "the index and its two platforms");
    assert!(!complete_in_cache(
        &cache,
        "dest",
        repo,
        &all,
        &spec.wanted()
    ));

    let attach = || {
        attach_missing(
            client.as_ref(),
            "dest",
            &identity,
            repo,
            &top,
            &image.manifest,
            &spec,
            &cache,
            false,
        )
    };
    let first = attach().await.unwrap();
    assert_eq!(
        first,
        Attached {
            sboms: 6,
            signatures: 9
        },
        "3 digests, 2 SBOMs each, all signed"
    );
    for subject in &all {
        let d = &subject.digest;
        assert_eq!(count(client.as_ref(), repo, d, SPDX).await, 1);
        assert_eq!(count(client.as_ref(), repo, d, CYCLONEDX).await, 1);
        let signed =
            verify_signature_with_openssl(client.as_ref(), repo, d, &public, scratch.path()).await;
        assert_eq!(&signed, d, "the payload's digest is the placed digest");
        for sbom in referrers_of(client.as_ref(), repo, d, SPDX).await {
            let signed = verify_signature_with_openssl(
                client.as_ref(),
                repo,
                &sbom.descriptor.digest,
                &public,
                scratch.path(),
            )
            .await;
            assert_eq!(signed, sbom.descriptor.digest, "every SBOM is signed");
        }
    }
    assert!(complete_in_cache(
        &cache,
        "dest",
        repo,
        &all,
        &spec.wanted()
    ));
    let tags_before = client.list_tags(repo).await.unwrap();

    // A second run adds nothing.
    assert_eq!(attach().await.unwrap(), Attached::default());
    assert_eq!(count(client.as_ref(), repo, &top.digest, SPDX).await, 1);
    assert_eq!(
        count(client.as_ref(), repo, &top.digest, COSIGN_SIG).await,
        1
    );
    assert_eq!(client.list_tags(repo).await.unwrap(), tags_before);

    // Someone deletes the index's SPDX SBOM: the registry says it is missing, attaching restores it.
    let spdx = referrers_of(client.as_ref(), repo, &top.digest, SPDX).await;
    client
        .delete_manifest(repo, &spdx[0].descriptor.digest)
        .await
        .unwrap();
    let missing = live_missing(client.as_ref(), repo, &all, &spec.wanted())
        .await
        .unwrap();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[&top.digest].sbom, vec![SbomFormat::Spdx]);
    let restored = attach().await.unwrap();
    assert_eq!(restored.sboms, 1);
    assert!(
        live_missing(client.as_ref(), repo, &all, &spec.wanted())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client
            .head_manifest(repo, &spdx[0].descriptor.digest)
            .await
            .unwrap()
            .is_some(),
        "the same deterministic SBOM is back"
    );
}

#[tokio::test]
async fn evidence_on_a_registry_with_the_referrers_api() {
    placed_images_carry_complete_evidence(ferro().await).await;
}

#[tokio::test]
async fn evidence_on_a_registry_without_the_referrers_api() {
    placed_images_carry_complete_evidence(distribution(Auth::None).await).await;
}

async fn upstream_evidence_travels(destination: TestRegistry) {
    let source = ferro().await;
    let up = source.client();
    let dst = destination.client();
    let image = images::multi_arch("signed-upstream");
    let upstream_digest = images::push_image(up.as_ref(), "library/app", "1.0", &image)
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let (publisher_key, publisher_pub) = openssl_key_pair(scratch.path());
    let signature = publisher_signature(
        scratch.path(),
        &publisher_key,
        "docker.io/library/app",
        &upstream_digest,
    );
    images::attach(up.as_ref(), "library/app", &upstream_digest, &signature)
        .await
        .unwrap();
    // cosign's own tag for the same signature, as cosign writes it on registries without the API.
    let sig_tag = format!("sha256-{}.sig", &upstream_digest.digest[7..]);
    up.put_manifest(
        "library/app",
        &sig_tag,
        images::OCI_MANIFEST,
        signature.manifest.clone(),
    )
    .await
    .unwrap();
    let sbom = images::artifact(
        SPDX,
        SPDX,
        br#"{"spdxVersion":"SPDX-2.3"}"#,
        Some(&upstream_digest),
    );
    images::attach(up.as_ref(), "library/app", &upstream_digest, &sbom)
        .await
        .unwrap();

    let tags = up.list_tags("library/app").await.unwrap();
    let found = upstream::discover(
        up.as_ref(),
        "library/app",
        &upstream_digest.digest,
        Some(&tags),
    )
    .await
    .unwrap();
    assert_eq!(found.referrers.len(), 2);
    assert_eq!(found.cosign_tags, vec![sig_tag.clone()]);
    let session = TransferSession::default();
    let carried = upstream::carry(
        &session,
        up.as_ref(),
        "library/app",
        &upstream_digest,
        &image.manifest,
        dst.as_ref(),
        "mirror/app",
        &found,
    )
    .await
    .unwrap();
    assert_eq!(carried, 3);

    // `<destination>@<upstream digest>` resolves and carries the publisher's evidence.
    assert!(
        dst.head_manifest("mirror/app", &upstream_digest.digest)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        count(dst.as_ref(), "mirror/app", &upstream_digest.digest, SPDX).await,
        1
    );
    let signed = verify_signature_with_openssl(
        dst.as_ref(),
        "mirror/app",
        &upstream_digest.digest,
        &publisher_pub,
        scratch.path(),
    )
    .await;
    assert_eq!(signed, upstream_digest.digest);
    assert!(
        dst.list_tags("mirror/app")
            .await
            .unwrap()
            .contains(&sig_tag)
    );
    // Carrying again changes nothing.
    let listed = dst
        .referrer_details("mirror/app", &upstream_digest.digest)
        .await
        .unwrap();
    upstream::carry(
        &session,
        up.as_ref(),
        "library/app",
        &upstream_digest,
        &image.manifest,
        dst.as_ref(),
        "mirror/app",
        &found,
    )
    .await
    .unwrap();
    assert_eq!(
        dst.referrer_details("mirror/app", &upstream_digest.digest)
            .await
            .unwrap(),
        listed
    );
}

#[tokio::test]
async fn upstream_evidence_travels_to_a_registry_with_the_referrers_api() {
    upstream_evidence_travels(ferro().await).await;
}

#[tokio::test]
async fn upstream_evidence_travels_to_a_registry_without_the_referrers_api() {
    upstream_evidence_travels(distribution(Auth::None).await).await;
}
