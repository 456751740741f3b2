//! Upstream evidence travels with the image: the signatures, attestations and SBOMs the
//! publisher attached to the source digest — OCI referrers (API or fallback index) and
//! cosign's `sha256-<hex>.sig` / `.att` / `.sbom` tags — are copied untouched.
//!
//! Stamping changes the top-level digest, so the publisher's signatures cannot name the placed
//! manifest. houba therefore also places the upstream manifest itself by digest (untagged)
//! beside the stamped one: `<destination>@<base.digest>` resolves, its referrers are the
//! publisher's, and `cosign verify --key publisher.pub <destination>@<base.digest>` works. The
//! stamped manifest names that digest in `org.opencontainers.image.base.digest`. Children of
//! an index keep their digests anyway.

use bytes::Bytes;

use crate::registry::transfer::TransferSession;
use crate::registry::{Descriptor, Referrer, Registry, RegistryError, referrers};

/// cosign's tag suffixes for a digest's signatures, attestations and SBOM.
pub const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// What the publisher attached to one source digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamEvidence {
    /// Referrers of the digest upstream.
    pub referrers: Vec<Referrer>,
    /// cosign tags present upstream (`sha256-<hex>.sig`, …).
    pub cosign_tags: Vec<String>,
}

impl UpstreamEvidence {
    /// How many documents travel with the content.
    pub fn count(&self) -> usize {
        self.referrers.len() + self.cosign_tags.len()
    }
}

/// cosign tags of `digest` among a repository's tags (no request: tags are listed anyway).
pub fn cosign_tags_in(tags: &[String], digest: &str) -> Vec<String> {
    let Some(base) = referrers::fallback_tag(digest) else {
        return Vec::new();
    };
    COSIGN_SUFFIXES
        .iter()
        .map(|s| format!("{base}.{s}"))
        .filter(|t| tags.contains(t))
        .collect()
}

/// Discovers the upstream evidence of `digest`: one referrers listing, plus the cosign tags
/// found in `tags` (the repository's tag list, when observing already read it). On a registry
/// known to lack the referrers API, the listing is the fallback tag, so a tag list without
/// it answers with no request at all.
pub async fn discover(
    source: &dyn Registry,
    repository: &str,
    digest: &str,
    tags: Option<&[String]>,
) -> Result<UpstreamEvidence, RegistryError> {
    let listed_without_api = tags.is_some_and(|tags| {
        source.referrers_api() == Some(false)
            && referrers::fallback_tag(digest).is_some_and(|t| !tags.contains(&t))
    });
    let referrers = if listed_without_api {
        Vec::new()
    } else {
        source.referrer_details(repository, digest).await?
    };
    Ok(UpstreamEvidence {
        referrers,
        cosign_tags: cosign_tags_in(tags.unwrap_or_default(), digest),
    })
}

/// Places the upstream manifest by digest at the destination (untagged) and copies its
/// evidence. Returns how many items were carried.
#[allow(clippy::too_many_arguments)]
pub async fn carry(
    session: &TransferSession,
    source: &dyn Registry,
    source_repository: &str,
    upstream: &Descriptor,
    upstream_bytes: &Bytes,
    destination: &dyn Registry,
    destination_repository: &str,
    evidence: &UpstreamEvidence,
) -> Result<usize, RegistryError> {
    if evidence.count() == 0 {
        return Ok(0);
    }
    if destination
        .head_manifest(destination_repository, &upstream.digest)
        .await?
        .is_none()
    {
        session
            .place(
                source,
                source_repository,
                destination,
                destination_repository,
                upstream_bytes,
            )
            .await?;
        destination
            .put_manifest(
                destination_repository,
                &upstream.digest,
                &upstream.media_type,
                upstream_bytes.clone(),
            )
            .await?;
    }
    for referrer in &evidence.referrers {
        let (fetched, bytes) = source
            .get_manifest(source_repository, &referrer.descriptor.digest)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                registry: source.display_name().to_owned(),
                repository: source_repository.to_owned(),
                reference: referrer.descriptor.digest.clone(),
            })?;
        session
            .place(
                source,
                source_repository,
                destination,
                destination_repository,
                &bytes,
            )
            .await?;
        let media_type = if referrer.descriptor.media_type.is_empty() {
            fetched.media_type
        } else {
            referrer.descriptor.media_type.clone()
        };
        destination
            .attach_referrer(destination_repository, upstream, &media_type, bytes)
            .await?;
    }
    for tag in &evidence.cosign_tags {
        session
            .copy(
                source,
                source_repository,
                tag,
                destination,
                destination_repository,
                tag,
                None,
            )
            .await?;
    }
    Ok(evidence.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_tags_are_found_in_the_tag_list() {
        let digest = crate::registry::digest::sha256_digest(b"x");
        let hex = &digest[7..];
        let tags = vec![
            "1.0".to_owned(),
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.sbom"),
            format!("sha256-{hex}"),
        ];
        assert_eq!(
            cosign_tags_in(&tags, &digest),
            vec![format!("sha256-{hex}.sig"), format!("sha256-{hex}.sbom")]
        );
    }
}
