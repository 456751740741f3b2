//! The transfer engine: copy an artifact (a manifest or an index, recursively, any media type)
//! between any two backends, moving raw bytes so digests are preserved.
//!
//! A `TransferSession` is shared across a run. It remembers, per destination registry and
//! digest, which repositories hold a blob, so a layer shared by many images crosses the wire
//! once per destination registry and later repositories get a cross-repository mount; with a
//! `HolderMemory` kept in the cache, a later run mounts from the repositories earlier runs
//! placed a blob in, instead of uploading it again. Blobs go
//! first, then child manifests by digest, and the tag is written last: the tag write is the
//! commit point, so a failure never leaves a tag pointing at incomplete content.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, try_join_all};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::holders::HolderMemory;
use super::stats::{ActionTally, BlobPlaced};
use super::{ByteStream, Descriptor, Registry, RegistryError, Result, manifest};

/// Sees the bytes of every blob a session uploads, on their way: evidence reads a layer's
/// package database from the stream a copy already moves, so an SBOM costs no second read.
/// It returns the stream to upload, which must yield the same bytes.
pub trait BlobTap: Send + Sync {
    /// Wrap the source stream of the blob `descriptor`.
    fn tap(&self, descriptor: &Descriptor, stream: ByteStream) -> ByteStream;

    /// A child manifest the session wrote, `bytes` verified against `digest`.
    fn manifest(&self, _digest: &str, _bytes: &Bytes) {}
}

/// Attempts of one blob copy when the failure is transient (a reset mid-stream cannot be
/// retried inside the request: the whole copy starts again from a fresh source stream).
const BLOB_ATTEMPTS: u32 = 3;

/// Remembered repositories tried as mount sources before uploading (each declined mount is
/// one request; a memory gone stale must not cost more than an upload saves).
const MEMORY_MOUNT_ATTEMPTS: usize = 2;

/// What a session has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransferStats {
    /// Blobs streamed from a source to a destination.
    pub blobs_uploaded: u64,
    /// Blobs placed by cross-repository mount.
    pub blobs_mounted: u64,
    /// Blobs already present at the destination.
    pub blobs_skipped: u64,
    /// Bytes streamed by uploads.
    pub bytes_uploaded: u64,
    /// Manifests written (children by digest and tags).
    pub manifests_put: u64,
    /// Child manifests already present at the destination.
    pub manifests_skipped: u64,
    /// Copies whose destination tag already held the wanted digest.
    pub tags_unchanged: u64,
}

#[derive(Default)]
struct Counters {
    blobs_uploaded: AtomicU64,
    blobs_mounted: AtomicU64,
    blobs_skipped: AtomicU64,
    bytes_uploaded: AtomicU64,
    manifests_put: AtomicU64,
    manifests_skipped: AtomicU64,
    tags_unchanged: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Result of one `copy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOutcome {
    /// The manifest the destination tag now points at.
    pub descriptor: Descriptor,
    /// The tag already pointed at it; nothing was written.
    pub unchanged: bool,
}

/// Repositories known (this run) to hold a blob in one destination registry.
type Holders = Arc<tokio::sync::Mutex<Vec<String>>>;

/// Shared state of a run of copies. Cheap to share behind an `Arc`.
pub struct TransferSession {
    holders: Mutex<HashMap<(String, String), Holders>>,
    placed_manifests: Mutex<HashSet<(String, String, String)>>,
    blob_slots: Semaphore,
    counters: Counters,
    memory: HolderMemory,
    blob_tap: Option<Arc<dyn BlobTap>>,
}

impl Default for TransferSession {
    fn default() -> Self {
        Self::new(16)
    }
}

impl TransferSession {
    /// A session moving at most `parallel_blobs` blobs at once (each registry's own
    /// concurrency bound applies as well).
    pub fn new(parallel_blobs: usize) -> Self {
        TransferSession {
            holders: Mutex::new(HashMap::new()),
            placed_manifests: Mutex::new(HashSet::new()),
            blob_slots: Semaphore::new(parallel_blobs.max(1)),
            counters: Counters::default(),
            memory: HolderMemory::new(None),
            blob_tap: None,
        }
    }

    /// Let `tap` see every blob this session uploads.
    pub fn tapping(mut self, tap: Arc<dyn BlobTap>) -> Self {
        self.blob_tap = Some(tap);
        self
    }

    /// Remember, under `cache_dir`, which repositories hold which blobs, and mount from those
    /// a previous run remembered (see `holders`). Call `save_memory` when the run is over.
    pub fn remembering(mut self, cache_dir: Option<std::path::PathBuf>) -> Self {
        self.memory = HolderMemory::new(cache_dir);
        self
    }

    /// Write back what this run learnt about where blobs are.
    pub fn save_memory(&self) {
        self.memory.save();
    }

    /// Count a blob placed outside the session's own copies (a rebuilt layer or config):
    /// `Some(bytes)` uploaded, `None` already present.
    pub fn record_blob(&self, uploaded: Option<u64>) {
        match uploaded {
            Some(bytes) => {
                self.count_blob(BlobPlaced::Uploaded);
                bump(&self.counters.bytes_uploaded, bytes);
            }
            None => self.count_blob(BlobPlaced::Present),
        }
    }

    /// Counts one blob in the session and in the action running in this task.
    fn count_blob(&self, placed: BlobPlaced) {
        let counter = match placed {
            BlobPlaced::Uploaded => &self.counters.blobs_uploaded,
            BlobPlaced::Mounted => &self.counters.blobs_mounted,
            BlobPlaced::Present => &self.counters.blobs_skipped,
        };
        bump(counter, 1);
        ActionTally::blob(placed);
    }

    /// What the session has done so far.
    pub fn stats(&self) -> TransferStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TransferStats {
            blobs_uploaded: load(&c.blobs_uploaded),
            blobs_mounted: load(&c.blobs_mounted),
            blobs_skipped: load(&c.blobs_skipped),
            bytes_uploaded: load(&c.bytes_uploaded),
            manifests_put: load(&c.manifests_put),
            manifests_skipped: load(&c.manifests_skipped),
            tags_unchanged: load(&c.tags_unchanged),
        }
    }

    /// Copy `src_repo:src_ref` to `dst_repo:dst_tag`. With `top_manifest_override` the tag
    /// receives those bytes (a stamped manifest referencing the same content) instead of the
    /// source manifest; everything they reference is copied from the source repository.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy(
        &self,
        src: &dyn Registry,
        src_repo: &str,
        src_ref: &str,
        dst: &dyn Registry,
        dst_repo: &str,
        dst_tag: &str,
        top_manifest_override: Option<(String, Bytes)>,
    ) -> Result<CopyOutcome> {
        let (descriptor, bytes) = match top_manifest_override {
            Some((media_type, bytes)) => {
                let descriptor = Descriptor {
                    media_type,
                    digest: super::digest::sha256_digest(&bytes),
                    size: bytes.len() as u64,
                };
                if let Some(unchanged) = self.unchanged(dst, dst_repo, dst_tag, &descriptor).await?
                {
                    return Ok(unchanged);
                }
                (descriptor, bytes)
            }
            None => {
                // HEAD before GET: an up-to-date destination costs no manifest download.
                let wanted = src.head_manifest(src_repo, src_ref).await?.ok_or_else(|| {
                    RegistryError::NotFound {
                        registry: src.display_name().to_owned(),
                        repository: src_repo.to_owned(),
                        reference: src_ref.to_owned(),
                    }
                })?;
                if let Some(unchanged) = self.unchanged(dst, dst_repo, dst_tag, &wanted).await? {
                    return Ok(unchanged);
                }
                let (descriptor, bytes) = src
                    .get_manifest(src_repo, &wanted.digest)
                    .await?
                    .ok_or_else(|| RegistryError::NotFound {
                        registry: src.display_name().to_owned(),
                        repository: src_repo.to_owned(),
                        reference: wanted.digest.clone(),
                    })?;
                (descriptor, bytes)
            }
        };
        self.place(src, src_repo, dst, dst_repo, &bytes).await?;
        dst.put_manifest(dst_repo, dst_tag, &descriptor.media_type, bytes)
            .await?;
        bump(&self.counters.manifests_put, 1);
        Ok(CopyOutcome {
            descriptor,
            unchanged: false,
        })
    }

    async fn unchanged(
        &self,
        dst: &dyn Registry,
        dst_repo: &str,
        dst_tag: &str,
        wanted: &Descriptor,
    ) -> Result<Option<CopyOutcome>> {
        let current = dst.head_manifest(dst_repo, dst_tag).await?;
        if current.as_ref().is_some_and(|d| d.digest == wanted.digest) {
            bump(&self.counters.tags_unchanged, 1);
            return Ok(Some(CopyOutcome {
                descriptor: wanted.clone(),
                unchanged: true,
            }));
        }
        Ok(None)
    }

    /// Make everything `manifest_bytes` references (blobs, and child manifests recursively)
    /// exist in `dst_repo`, copying from `src_repo`. Returns once all of it is in place, so
    /// the caller can then write its own top manifest.
    pub async fn place(
        &self,
        src: &dyn Registry,
        src_repo: &str,
        dst: &dyn Registry,
        dst_repo: &str,
        manifest_bytes: &[u8],
    ) -> Result<()> {
        let value = manifest::parse(manifest_bytes).map_err(|m| protocol(src, src_repo, m))?;
        let refs = manifest::references(&value).map_err(|m| protocol(src, src_repo, m))?;
        let blobs = refs
            .blobs
            .iter()
            .map(|d| self.place_blob(src, src_repo, dst, dst_repo, d).boxed());
        let children = refs
            .manifests
            .iter()
            .map(|d| self.place_manifest(src, src_repo, dst, dst_repo, d));
        try_join_all(blobs.chain(children)).await?;
        Ok(())
    }

    fn place_manifest<'a>(
        &'a self,
        src: &'a dyn Registry,
        src_repo: &'a str,
        dst: &'a dyn Registry,
        dst_repo: &'a str,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let key = (
                dst.display_name().to_owned(),
                dst_repo.to_owned(),
                descriptor.digest.clone(),
            );
            if self
                .placed_manifests
                .lock()
                .map(|s| s.contains(&key))
                .unwrap_or(false)
            {
                return Ok(());
            }
            if dst
                .head_manifest(dst_repo, &descriptor.digest)
                .await?
                .is_some()
            {
                bump(&self.counters.manifests_skipped, 1);
            } else {
                let (fetched, bytes) = src
                    .get_manifest(src_repo, &descriptor.digest)
                    .await?
                    .ok_or_else(|| RegistryError::NotFound {
                        registry: src.display_name().to_owned(),
                        repository: src_repo.to_owned(),
                        reference: descriptor.digest.clone(),
                    })?;
                self.place(src, src_repo, dst, dst_repo, &bytes).await?;
                // The descriptor's media type is what the parent promised; keep it.
                let media_type = if descriptor.media_type.is_empty() {
                    fetched.media_type
                } else {
                    descriptor.media_type.clone()
                };
                if let Some(tap) = &self.blob_tap {
                    tap.manifest(&descriptor.digest, &bytes);
                }
                dst.put_manifest(dst_repo, &descriptor.digest, &media_type, bytes)
                    .await?;
                bump(&self.counters.manifests_put, 1);
            }
            if let Ok(mut placed) = self.placed_manifests.lock() {
                placed.insert(key);
            }
            Ok(())
        }
        .boxed()
    }

    fn holders(&self, dst: &dyn Registry, digest: &str) -> Holders {
        let mut map = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((dst.display_name().to_owned(), digest.to_owned()))
            .or_default()
            .clone()
    }

    async fn place_blob(
        &self,
        src: &dyn Registry,
        src_repo: &str,
        dst: &dyn Registry,
        dst_repo: &str,
        descriptor: &Descriptor,
    ) -> Result<()> {
        let digest = descriptor.digest.as_str();
        // One placement of a digest per destination registry at a time: whoever comes second
        // finds it placed and mounts instead of uploading again.
        let holders = self.holders(dst, digest);
        let mut holders = holders.lock().await;
        if holders.iter().any(|r| r == dst_repo) {
            // Placed earlier in this run: present, and counted so the summary adds up.
            self.count_blob(BlobPlaced::Present);
            return Ok(());
        }
        let registry = dst.display_name();
        if dst.blob_exists(dst_repo, digest).await? {
            self.count_blob(BlobPlaced::Present);
            holders.push(dst_repo.to_owned());
            self.memory.learn(registry, digest, dst_repo);
            return Ok(());
        }
        let same_registry = src.display_name() == registry;
        let mount_from = holders
            .first()
            .cloned()
            .or_else(|| (same_registry && src_repo != dst_repo).then(|| src_repo.to_owned()));
        if let Some(from) = mount_from
            && dst.mount_blob(dst_repo, &from, digest).await?
        {
            self.count_blob(BlobPlaced::Mounted);
            holders.push(dst_repo.to_owned());
            self.memory.learn(registry, digest, dst_repo);
            return Ok(());
        }
        // Repositories an earlier run placed the blob in: a hint, checked by the mount itself.
        if holders.is_empty() {
            for from in self
                .memory
                .candidates(registry, digest, dst_repo)
                .into_iter()
                .take(MEMORY_MOUNT_ATTEMPTS)
            {
                if dst.mount_blob(dst_repo, &from, digest).await? {
                    self.count_blob(BlobPlaced::Mounted);
                    holders.push(dst_repo.to_owned());
                    self.memory.learn(registry, digest, dst_repo);
                    return Ok(());
                }
                self.memory.forget(registry, digest, &from);
            }
        }
        let _slot = self
            .blob_slots
            .acquire()
            .await
            .map_err(|_| RegistryError::Transport {
                registry: dst.display_name().to_owned(),
                message: "transfer session closed".into(),
            })?;
        let mut attempt = 1;
        loop {
            let outcome = async {
                let mut stream = src.get_blob(src_repo, digest).await?;
                if let Some(tap) = &self.blob_tap {
                    stream = tap.tap(descriptor, stream);
                }
                dst.put_blob(dst_repo, digest, descriptor.size, stream)
                    .await
            }
            .await;
            match outcome {
                Ok(()) => break,
                Err(e) if e.is_transient() && attempt < BLOB_ATTEMPTS => {
                    tracing::warn!(
                        source = %src.display_name(), destination = %dst.display_name(),
                        repository = dst_repo, digest, attempt, error = %e,
                        "blob copy failed; starting it again"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        self.count_blob(BlobPlaced::Uploaded);
        bump(&self.counters.bytes_uploaded, descriptor.size);
        holders.push(dst_repo.to_owned());
        self.memory.learn(dst.display_name(), digest, dst_repo);
        Ok(())
    }
}

fn protocol(registry: &dyn Registry, repository: &str, message: String) -> RegistryError {
    RegistryError::Protocol {
        registry: registry.display_name().to_owned(),
        repository: repository.to_owned(),
        reference: String::new(),
        message,
    }
}
