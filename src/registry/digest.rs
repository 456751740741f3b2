//! sha256 digests: computing them, checking their shape, and verifying streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use sha2::{Digest as _, Sha256};

use super::{ByteStream, RegistryError};

pub use crate::oci::{sha256_digest, sha256_hex};

pub(crate) use crate::oci::hex;

/// Whether a manifest reference is a digest rather than a tag.
pub fn is_digest(reference: &str) -> bool {
    reference.contains(':')
}

/// Where a verification failure is reported from.
#[derive(Debug, Clone)]
pub struct BlobLocation {
    /// Display name of the registry.
    pub registry: String,
    /// Repository path in the registry.
    pub repository: String,
    /// The blob's expected digest.
    pub digest: String,
}

/// Wraps a blob stream: hashes every chunk and, at the end, yields a `DigestMismatch` error
/// instead of finishing cleanly when the content does not match the expected digest.
pub fn verify_stream(inner: ByteStream, location: BlobLocation) -> ByteStream {
    Box::pin(VerifyingStream {
        inner,
        hasher: Some(Sha256::new()),
        location,
    })
}

struct VerifyingStream {
    inner: ByteStream,
    hasher: Option<Sha256>,
    location: BlobLocation,
}

impl Stream for VerifyingStream {
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(hasher) = this.hasher.as_mut() else {
            return Poll::Ready(None);
        };
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                hasher.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.hasher = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                let actual = format!(
                    "sha256:{}",
                    hex(&this.hasher.take().unwrap_or_default().finalize())
                );
                if actual == this.location.digest {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(RegistryError::DigestMismatch {
                        registry: this.location.registry.clone(),
                        repository: this.location.repository.clone(),
                        reference: this.location.digest.clone(),
                        expected: this.location.digest.clone(),
                        actual,
                    })))
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(sha256_hex(&sha256_digest(b"x")).is_some());
        assert!(sha256_hex("sha256:ABC").is_none());
        assert!(is_digest("sha256:abc") && !is_digest("1.0"));
    }

    fn location(digest: String) -> BlobLocation {
        BlobLocation {
            registry: "r".into(),
            repository: "repo".into(),
            digest,
        }
    }

    #[tokio::test]
    async fn verifying_stream_passes_good_content_and_flags_bad() {
        let chunks = || {
            Box::pin(futures::stream::iter(vec![
                Ok(Bytes::from_static(b"hello ")),
                Ok(Bytes::from_static(b"world")),
            ])) as ByteStream
        };
        let good: Vec<_> = verify_stream(chunks(), location(sha256_digest(b"hello world")))
            .collect()
            .await;
        assert_eq!(good.len(), 2);
        assert!(good.iter().all(Result::is_ok));

        let bad: Vec<_> = verify_stream(chunks(), location(sha256_digest(b"other")))
            .collect()
            .await;
        assert!(matches!(
            bad.last(),
            Some(Err(RegistryError::DigestMismatch { .. }))
        ));
    }
}
