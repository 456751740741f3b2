//! Talking to registries: the `Registry` abstraction and its backends.
//!
//! Only this module (and `build/`) performs I/O against registries. Manifests travel as raw
//! bytes so digests are preserved; nothing here re-serialises a manifest it did not create.

use std::collections::BTreeMap;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

pub mod auth;
mod connect;
pub mod digest;
pub mod holders;
pub mod http;
mod http_ops;
pub mod layout;
pub mod manifest;
pub mod pool;
pub mod referrers;
pub mod stats;
mod tls;

/// Makes the process's TLS crypto provider (*ring*) the default, for HTTP clients that build
/// their own TLS configuration (notifications, the Pushgateway). Call it before building such a
/// client; idempotent.
pub fn install_crypto_provider() {
    tls::provider();
}
pub mod transfer;
pub mod untag;
pub mod wire;

pub use connect::{ConnectOptions, connect};
pub use pool::Registries;
pub use stats::RequestStats;

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
    /// The content's media type.
    pub media_type: String,
    /// `sha256:<64 hex>`
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// A stream of blob bytes. Streams returned by `get_blob` verify the digest and yield an error
/// as their last item when it does not match.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// A referrer as listed by the referrers API or the fallback index: its descriptor plus the
/// artifact type and annotations the listing carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referrer {
    /// The referrer manifest.
    pub descriptor: Descriptor,
    /// Its `artifactType` (`application/spdx+json`, …), when the listing gives one.
    pub artifact_type: Option<String>,
    /// The annotations the listing carries.
    pub annotations: BTreeMap<String, String>,
}

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
    /// The registry answered 404 for this reference.
    NotFound {
        /// Display name of the registry.
        registry: String,
        /// Repository path in the registry.
        repository: String,
        /// Tag or digest.
        reference: String,
    },
    #[error(
        "{registry}: authentication failed for {repository} ({detail}); check the roster credentials or docker config.json"
    )]
    /// The registry refused the credentials (401 after authenticating, or 403).
    Auth {
        /// Display name of the registry.
        registry: String,
        /// The request refused (`GET /v2/<repository>/tags/list`).
        repository: String,
        /// What the registry said, credentials removed.
        detail: String,
    },
    #[error(
        "{registry}/{repository}:{reference}: digest mismatch: expected {expected}, got {actual}"
    )]
    /// Content whose digest is not the one asked for or announced.
    DigestMismatch {
        /// Display name of the registry.
        registry: String,
        /// Repository path in the registry.
        repository: String,
        /// Tag or digest read or written.
        reference: String,
        /// The digest wanted.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    #[error("{registry}/{repository}:{reference}: {operation} not supported by this registry")]
    /// The registry cannot do this (a tag DELETE on distribution, the referrers API, …).
    Unsupported {
        /// Display name of the registry.
        registry: String,
        /// Repository path in the registry.
        repository: String,
        /// Tag or digest.
        reference: String,
        /// What was asked (`tag delete`).
        operation: String,
    },
    #[error("{registry}/{repository}:{reference}: {message}")]
    /// The registry answered something houba cannot read (an unexpected status, malformed JSON).
    Protocol {
        /// Display name of the registry.
        registry: String,
        /// Repository path in the registry.
        repository: String,
        /// Tag or digest.
        reference: String,
        /// What was wrong with the answer.
        message: String,
    },
    #[error("{registry}: {message}")]
    /// The request did not get an answer houba can use: a connection error, a time-out, or
    /// a server error that outlived the retries. Repeating it may succeed.
    Transport {
        /// Display name of the registry.
        registry: String,
        /// The request and what happened (`GET /v2/<repository>/tags/list: …`).
        message: String,
    },
    #[error("{registry}: {message}: {error}")]
    /// An OCI layout directory could not be read or written.
    Io {
        /// The layout directory.
        registry: String,
        /// What was being done (`cannot read …/index.json`).
        message: String,
        /// The cause; its text is part of the message, so it is not also a `source()` (a
        /// report would print it twice).
        error: std::io::Error,
    },
}

impl RegistryError {
    /// Whether repeating the operation may succeed: transport failures (connection errors,
    /// time-outs, server errors that outlived the request-level retries). Used by the transfer
    /// engine to retry a whole blob copy, whose streaming body cannot be replayed mid-request.
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Transport { .. })
    }
}

/// A registry operation's result.
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

    /// Whether the repository holds the blob (HEAD).
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

    /// Remove one tag, leaving every other tag of the same manifest in place, on any
    /// registry (the placeholder cycle where there is no tag DELETE), verified against the
    /// tag list. Implementations call `untag::remove_tag`.
    async fn remove_tag(&self, repository: &str, tag: &str) -> Result<()>;

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

    /// Push several referrer manifests of one subject (`(media type, bytes)` each); where the
    /// registry has no referrers API the fallback index is updated once for the whole batch.
    /// Returns the manifests' digests, in order.
    async fn attach_referrers(
        &self,
        repository: &str,
        subject: &Descriptor,
        manifests: Vec<(String, Bytes)>,
    ) -> Result<Vec<String>> {
        let mut digests = Vec::with_capacity(manifests.len());
        for (media_type, manifest) in manifests {
            digests.push(
                self.attach_referrer(repository, subject, &media_type, manifest)
                    .await?,
            );
        }
        Ok(digests)
    }

    /// Repositories in the registry.
    async fn catalog(&self) -> Result<Vec<String>>;

    /// Referrers of `digest` with their artifact types and annotations. The default drops
    /// nothing it does not have: it lists `referrers` without artifact types.
    async fn referrer_details(&self, repository: &str, digest: &str) -> Result<Vec<Referrer>> {
        Ok(self
            .referrers(repository, digest)
            .await?
            .into_iter()
            .map(|descriptor| Referrer {
                descriptor,
                artifact_type: None,
                annotations: BTreeMap::new(),
            })
            .collect())
    }

    /// Whether the registry serves the referrers API, once a request has shown it; `None`
    /// while unknown.
    fn referrers_api(&self) -> Option<bool> {
        None
    }

    /// Requests made so far, by method (a layout directory counts its reads and writes the
    /// same way), so a run can report how many requests it cost.
    fn request_stats(&self) -> RequestStats {
        RequestStats::default()
    }

    /// Answers, bytes and throttling so far (HTTP registries; a layout directory has none).
    fn traffic_stats(&self) -> stats::TrafficStats {
        stats::TrafficStats::default()
    }
}
