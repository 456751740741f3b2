//! Talking to registries: the `Registry` abstraction and its backends.
//!
//! Only this module (and `build/`) performs I/O against registries. Manifests travel as raw
//! bytes so digests are preserved; nothing here re-serialises a manifest it did not create.

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

/// Every manifest media type houba accepts, in the order sent in `Accept`.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A content descriptor as seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Descriptor {
    pub media_type: String,
    /// `sha256:<64 hex>`
    pub digest: String,
    pub size: u64,
}

/// A stream of blob bytes. Streams returned by `get_blob` verify the digest and yield an error
/// as their last item when it does not match.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// Outcome of deleting a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagDeletion {
    /// The tag is gone; the manifest is untouched.
    Deleted,
    /// The server does not support deleting a tag on its own; the caller must delete the
    /// manifest by digest (which removes every tag pointing at it) or leave it.
    Unsupported,
}

/// Errors name the registry, repository and reference, and never contain a credential.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry}/{repository}:{reference}: not found")]
    NotFound {
        registry: String,
        repository: String,
        reference: String,
    },
    #[error(
        "{registry}: authentication failed for {repository} ({detail}); check the roster credentials or docker config.json"
    )]
    Auth {
        registry: String,
        repository: String,
        detail: String,
    },
    #[error(
        "{registry}/{repository}:{reference}: digest mismatch: expected {expected}, got {actual}"
    )]
    DigestMismatch {
        registry: String,
        repository: String,
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("{registry}/{repository}:{reference}: {operation} not supported by this registry")]
    Unsupported {
        registry: String,
        repository: String,
        reference: String,
        operation: String,
    },
    #[error("{registry}/{repository}:{reference}: {message}")]
    Protocol {
        registry: String,
        repository: String,
        reference: String,
        message: String,
    },
    #[error("{registry}: {message}")]
    Transport { registry: String, message: String },
    #[error("{registry}: {message}: {source}")]
    Io {
        registry: String,
        message: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// What houba needs from a registry. Repositories are paths relative to the registry (any
/// roster path prefix is applied by the backend).
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// Human name used in messages: the host (with prefix) or the layout directory.
    fn display_name(&self) -> &str;

    /// All tags, every page, sorted client-side. A repository that does not exist yields an
    /// empty list.
    async fn list_tags(&self, repository: &str) -> Result<Vec<String>>;

    /// HEAD a manifest by tag or digest. `None` when absent.
    async fn head_manifest(&self, repository: &str, reference: &str) -> Result<Option<Descriptor>>;

    /// GET a manifest as raw bytes (digest verified). `None` when absent.
    async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<(Descriptor, Bytes)>>;

    /// PUT raw manifest bytes under a tag or a digest. Returns the digest of `bytes`.
    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<String>;

    async fn blob_exists(&self, repository: &str, digest: &str) -> Result<bool>;

    /// Stream a blob; the stream verifies the digest.
    async fn get_blob(&self, repository: &str, digest: &str) -> Result<ByteStream>;

    /// Upload a blob from a stream without buffering it whole.
    async fn put_blob(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        data: ByteStream,
    ) -> Result<()>;

    /// Cross-repository mount inside this registry. `Ok(false)` when the server declined (202)
    /// and the caller must upload.
    async fn mount_blob(
        &self,
        repository: &str,
        from_repository: &str,
        digest: &str,
    ) -> Result<bool>;

    /// Delete a manifest by digest.
    async fn delete_manifest(&self, repository: &str, digest: &str) -> Result<()>;

    /// Delete a tag only, where the server supports it.
    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<TagDeletion>;

    /// Referrers of `digest` (native API, else the `sha256-<hex>` fallback tag schema).
    async fn referrers(&self, repository: &str, digest: &str) -> Result<Vec<Descriptor>>;

    /// Push a referrer manifest (one with a `subject`) and, when the registry has no referrers
    /// API, maintain the fallback index.
    async fn attach_referrer(
        &self,
        repository: &str,
        subject: &Descriptor,
        media_type: &str,
        manifest: Bytes,
    ) -> Result<String>;

    /// Repositories in the registry.
    async fn catalog(&self) -> Result<Vec<String>>;
}
