//! Removing one tag without touching the other tags of the same manifest.
//!
//! Registries without tag deletion (CNCF distribution) only delete manifests by digest, which
//! removes every tag pointing at it, aliases included. To remove just one tag: point it at a
//! placeholder manifest unique to the tag, then delete the placeholder by digest.
//!
//! distribution walks every tag link of the repository while it deletes a manifest; when
//! another write rewrites a tag link at that moment it answers `500 invalid checksum digest
//! format` after deleting half (the revision is gone, the tag is still listed with no
//! manifest behind it). So the HTTP backend runs this whole sequence under a per-repository
//! write lock that its tag writes share (`RepositoryLocks`), and every removal is verified
//! against the tag list afterwards; a tag still listed (dangling) is repaired by running the
//! placeholder cycle again, which rewrites the link and deletes it cleanly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::digest::sha256_digest;
use super::{ByteStream, Registry, RegistryError, Result, TagDeletion, manifest};

/// Media type of the placeholder houba points a tag at just before deleting it.
pub const PLACEHOLDER_ARTIFACT_TYPE: &str = "application/vnd.houba.pruned.v1";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY: &[u8] = b"{}";

/// How many placeholder cycles one removal may take before it gives up (the first, plus
/// repairs of a tag that is still listed).
const CYCLES: usize = 3;

/// The placeholder manifest for `tag`: unique to the tag (its name is an annotation), so its
/// deletion takes no other tag with it.
pub fn placeholder(tag: &str) -> Bytes {
    let empty = serde_json::json!({
        "mediaType": EMPTY_MEDIA_TYPE,
        "digest": sha256_digest(EMPTY),
        "size": EMPTY.len(),
    });
    let value = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "artifactType": PLACEHOLDER_ARTIFACT_TYPE,
        "config": empty,
        "layers": [empty],
        "annotations": {"org.opencontainers.image.ref.name": tag},
    });
    Bytes::from(crate::stamp::canonical_json(&value))
}

/// Remove `tag` from `repository`: a tag DELETE where the registry has one, else the
/// placeholder cycle, verified against the tag list and repeated while the tag is still
/// listed. A tag that is listed but has no manifest (left dangling by an interrupted delete)
/// is removed the same way.
pub async fn remove_tag(registry: &dyn Registry, repository: &str, tag: &str) -> Result<()> {
    match registry.delete_tag(repository, tag).await {
        Ok(TagDeletion::Deleted) => return Ok(()),
        Ok(TagDeletion::Unsupported) => {}
        // A dangling tag: nothing to delete by name, but the tag list still shows it.
        Err(RegistryError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let bytes = placeholder(tag);
    let digest = sha256_digest(&bytes);
    upload_empty_blob(registry, repository).await?;
    for _ in 0..CYCLES {
        registry
            .put_manifest(repository, tag, manifest::OCI_MANIFEST, bytes.clone())
            .await?;
        match registry.delete_manifest(repository, &digest).await {
            // A retried DELETE whose first attempt deleted the revision (and then failed)
            // answers 404: the tag list says whether the tag went with it.
            Ok(()) | Err(RegistryError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        if !registry
            .list_tags(repository)
            .await?
            .iter()
            .any(|t| t == tag)
        {
            return Ok(());
        }
        tracing::warn!(registry = %registry.display_name(), repository, tag, "tag still listed after its delete; deleting it again");
    }
    Err(RegistryError::Protocol {
        registry: registry.display_name().to_owned(),
        repository: repository.to_owned(),
        reference: tag.to_owned(),
        message: format!(
            "the tag is still listed after {CYCLES} deletes (the registry may be rewriting it concurrently); run again, or delete it on the registry"
        ),
    })
}

async fn upload_empty_blob(registry: &dyn Registry, repository: &str) -> Result<()> {
    let digest = sha256_digest(EMPTY);
    if registry.blob_exists(repository, &digest).await? {
        return Ok(());
    }
    let stream: ByteStream = Box::pin(futures::stream::once(async {
        Ok(Bytes::from_static(EMPTY))
    }));
    registry
        .put_blob(repository, &digest, EMPTY.len() as u64, stream)
        .await
}

/// The locks of one repository.
#[derive(Default)]
pub(crate) struct RepositoryLock {
    /// Tag writes share it; a manifest delete (which walks the tag links) takes it alone.
    pub(crate) links: tokio::sync::RwLock<()>,
    /// One placeholder cycle at a time.
    pub(crate) untag: tokio::sync::Mutex<()>,
}

/// Per-repository locks of one registry client.
#[derive(Default)]
pub(crate) struct RepositoryLocks {
    locks: Mutex<HashMap<String, Arc<RepositoryLock>>>,
}

impl RepositoryLocks {
    pub(crate) fn of(&self, repository: &str) -> Arc<RepositoryLock> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(repository.to_owned()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_unique_per_tag_and_valid_manifests() {
        let a = placeholder("1.0");
        assert_ne!(sha256_digest(&a), sha256_digest(&placeholder("1.1")));
        let value = manifest::parse(&a).unwrap();
        let refs = manifest::references(&value).unwrap();
        assert_eq!(refs.blobs.len(), 2);
        assert_eq!(
            refs.blobs[0], refs.blobs[1],
            "config and layer: the same empty blob"
        );
        assert_eq!(
            manifest::artifact_type(&value).as_deref(),
            Some(PLACEHOLDER_ARTIFACT_TYPE)
        );
    }
}
