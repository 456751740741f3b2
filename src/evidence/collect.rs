//! From an image in a registry to its SBOM inventory: layers are scanned once each (their
//! findings cached by layer digest, a pure function of the bytes), configs give the creation
//! time. [`tap`] lets a copy that already streams a layer scan it on the way.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};

use super::sbom::{self, Inventory, LayerFindings, ScanError};
use crate::registry::digest::sha256_hex;
use crate::registry::transfer::BlobTap;
use crate::registry::{ByteStream, Descriptor, Registry, RegistryError, manifest};

#[derive(Debug, thiserror::Error)]
/// Why evidence could not be made, read or attached.
pub enum EvidenceError {
    #[error(transparent)]
    /// A registry request failed.
    Registry(#[from] RegistryError),
    #[error(transparent)]
    /// A layer could not be scanned.
    Scan(#[from] ScanError),
    #[error(transparent)]
    /// A package database could not be read.
    Database(#[from] sbom::DatabaseError),
    #[error(transparent)]
    /// An SBOM could not be written.
    Sbom(#[from] sbom::SbomError),
    #[error(transparent)]
    /// The signature could not be made.
    Sign(#[from] super::sign::SignError),
    #[error(transparent)]
    /// syft failed.
    Syft(#[from] super::syft::SyftError),
    #[error("{registry}/{repository}@{digest}: {detail}")]
    /// A manifest is not what evidence needs.
    Manifest {
        /// Display name of the registry.
        registry: String,
        /// Repository path in the registry.
        repository: String,
        /// The manifest's digest.
        digest: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// A layer scan running on a blob stream a copy moves; `None` when it did not see the whole
/// blob or could not read it.
type PendingScan = Shared<BoxFuture<'static, Option<LayerFindings>>>;

/// Layer findings and evidence completeness, on disk beside the manifest cache. Both are keyed
/// by digests, so an entry is never stale; the directory may be deleted at any time. It also
/// holds, in memory, the scans of layers being uploaded right now (see [`BlobTap`]).
#[derive(Clone, Default)]
pub struct EvidenceCache {
    dir: Option<PathBuf>,
    scans: Arc<Mutex<HashMap<String, PendingScan>>>,
    /// The manifests houba already holds (content-addressed, verified on read), so an SBOM
    /// of content placed this run reads no manifest back from the destination.
    manifests: crate::observe::ManifestCache,
    /// This run's results, by manifest digest: an index's SBOM and its platforms' SBOMs share
    /// the platforms' contents.
    contents: Arc<Mutex<HashMap<String, ImageContents>>>,
    /// Creation times of image configs seen on their way through an upload, by digest.
    created: Arc<Mutex<HashMap<String, String>>>,
    /// Repositories where this run made sure of the empty config (`registry\nrepository`):
    /// placements attaching side by side in one repository ask for it once.
    empty_configs: Arc<Mutex<HashMap<String, Arc<tokio::sync::OnceCell<()>>>>>,
}

impl std::fmt::Debug for EvidenceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvidenceCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Image config media types (OCI and Docker): where an SBOM's creation time comes from.
fn is_config(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.config.v1+json"
        || media_type == "application/vnd.docker.container.image.v1+json"
}

/// Configs are small; a larger one is not read whole.
const CONFIG_LIMIT: usize = 4 * 1024 * 1024;

/// Layer media types (OCI and Docker; gzip, zstd or plain tar): what a scan can read.
fn is_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

impl BlobTap for EvidenceCache {
    /// Scan a layer while it uploads; the findings go to the cache when the whole blob went
    /// through. Layers already scanned, and blobs that are not layers, pass untouched.
    fn tap(&self, descriptor: &Descriptor, stream: ByteStream) -> ByteStream {
        if is_config(&descriptor.media_type) && descriptor.size <= CONFIG_LIMIT as u64 {
            return self.tap_config(descriptor, stream);
        }
        if !is_layer(&descriptor.media_type) || self.layer(&descriptor.digest).is_some() {
            return stream;
        }
        let seen = Arc::new(AtomicU64::new(0));
        let broken = Arc::new(AtomicBool::new(false));
        let counted = {
            let (seen, broken) = (seen.clone(), broken.clone());
            stream.inspect(move |item| match item {
                Ok(chunk) => {
                    seen.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                Err(_) => broken.store(true, Ordering::Relaxed),
            })
        };
        let (tapped, scan) = tap(&descriptor.digest, Box::pin(counted));
        let (cache, digest, size) = (self.clone(), descriptor.digest.clone(), descriptor.size);
        let pending = async move {
            // The scan ends when the upload drops the stream: only a blob that went through
            // whole, without a stream error, gives findings (a cut tar can look complete).
            let findings = scan.await.ok()?.ok()?;
            if broken.load(Ordering::Relaxed) || seen.load(Ordering::Relaxed) != size {
                return None;
            }
            cache.put_layer(&digest, &findings);
            Some(findings)
        }
        .boxed()
        .shared();
        // Runs to the end (and writes the cache) even when no SBOM waits for it.
        tokio::spawn(pending.clone());
        self.scans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(descriptor.digest.clone(), pending);
        tapped
    }

    /// Keeps the child manifests a copy writes, so their SBOMs read none back.
    fn manifest(&self, digest: &str, bytes: &Bytes) {
        self.manifests.put(digest, bytes);
    }
}

impl EvidenceCache {
    /// Keeps the creation time of a config that goes through an upload whole and verified.
    fn tap_config(&self, descriptor: &Descriptor, stream: ByteStream) -> ByteStream {
        let created = self.created.clone();
        let (digest, size) = (descriptor.digest.clone(), descriptor.size as usize);
        let mut seen = Vec::new();
        let mut broken = false;
        Box::pin(stream.inspect(move |item| match item {
            Ok(chunk) if !broken => {
                seen.extend_from_slice(chunk);
                if seen.len() == size && crate::registry::digest::sha256_digest(&seen) == digest {
                    created
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(digest.clone(), sbom::Subject::created_from_config(&seen));
                }
            }
            Ok(_) => {}
            Err(_) => broken = true,
        }))
    }

    /// Makes sure `repository` of `registry` holds the empty config every referrer names,
    /// once per run and repository however many placements attach there at once.
    pub async fn ensure_empty_config(
        &self,
        registry: &dyn Registry,
        repository: &str,
    ) -> Result<(), RegistryError> {
        let cell = self
            .empty_configs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{}\n{repository}", registry.display_name()))
            .or_default()
            .clone();
        cell.get_or_try_init(|| super::referrer::ensure_empty_config(registry, repository))
            .await
            .map(|_| ())
    }

    /// A cache under `cache_dir`; `None` remembers nothing between runs.
    pub fn new(cache_dir: Option<PathBuf>) -> EvidenceCache {
        EvidenceCache {
            manifests: crate::observe::ManifestCache::new(cache_dir.clone()),
            dir: cache_dir.map(|d| d.join("evidence")),
            ..EvidenceCache::default()
        }
    }

    /// The findings of a layer scanned on its way through an upload of this run.
    async fn scanned_in_transfer(&self, digest: &str) -> Option<LayerFindings> {
        let pending = self
            .scans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()?;
        pending.await
    }

    fn file(&self, kind: &str, key: &str) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(kind).join(key))
    }

    fn write(&self, path: Option<PathBuf>, bytes: &[u8]) {
        let Some(path) = path else { return };
        if let Some(parent) = path.parent()
            && std::fs::create_dir_all(parent).is_ok()
        {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }

    /// What the scan of layer `digest` found, when remembered.
    pub fn layer(&self, digest: &str) -> Option<LayerFindings> {
        let hex = sha256_hex(digest)?;
        let bytes = std::fs::read(self.file("layers", hex)?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Best effort: a cache that cannot be written only costs a re-scan later.
    pub fn put_layer(&self, digest: &str, findings: &LayerFindings) {
        let Some(hex) = sha256_hex(digest) else {
            return;
        };
        if let Ok(bytes) = serde_json::to_vec(findings) {
            self.write(self.file("layers", hex), &bytes);
        }
    }

    fn attached_key(registry: &str, repository: &str, subject: &str) -> String {
        let key = format!("{registry}\n{repository}\n{subject}");
        crate::registry::digest::sha256_digest(key.as_bytes())
            .trim_start_matches("sha256:")
            .to_owned()
    }

    /// The referrer digests houba attached (and saw accepted) for `subject` at
    /// `registry/repository`. Used so a warm run knows evidence is complete without asking.
    pub fn attached(&self, registry: &str, repository: &str, subject: &str) -> Vec<String> {
        self.file(
            "attached",
            &Self::attached_key(registry, repository, subject),
        )
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
    }

    /// Remembers the referrers attached to `subject` in `registry`/`repository`.
    pub fn record_attached(
        &self,
        registry: &str,
        repository: &str,
        subject: &str,
        referrers: &[String],
    ) {
        let mut all = self.attached(registry, repository, subject);
        all.extend(referrers.iter().cloned());
        all.sort();
        all.dedup();
        if let Ok(bytes) = serde_json::to_vec(&all) {
            self.write(
                self.file(
                    "attached",
                    &Self::attached_key(registry, repository, subject),
                ),
                &bytes,
            );
        }
    }

    /// Forgets what was attached (after drift found a referrer missing).
    pub fn forget_attached(&self, registry: &str, repository: &str, subject: &str) {
        if let Some(p) = self.file(
            "attached",
            &Self::attached_key(registry, repository, subject),
        ) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A blocking reader over chunks sent from async code.
struct ChannelReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The findings of a layer another consumer is reading.
pub type TapResult = tokio::task::JoinHandle<Result<LayerFindings, ScanError>>;

/// Wraps a layer's byte stream so the layer is scanned while it flows to its consumer (a
/// blob upload). The scan sees the bytes only; an error in the stream ends the scan with an
/// error, never the transfer.
pub fn tap(digest: &str, stream: ByteStream) -> (ByteStream, TapResult) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let digest_owned = digest.to_owned();
    let scan = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            chunks: rx,
            current: Bytes::new(),
        };
        let result = sbom::scan_layer(&digest_owned, Box::new(reader));
        // Drain what is left so the sender never waits on a finished scan.
        result
    });
    let tapped = stream.then(move |item| {
        let tx = tx.clone();
        async move {
            if let Ok(chunk) = &item {
                // A scan that stopped early (closed receiver) must not stall the upload.
                let _ = tx.send(chunk.clone()).await;
            }
            item
        }
    });
    (Box::pin(tapped), scan)
}

/// The findings of one layer: from the cache, else by streaming the blob once.
pub async fn layer_findings(
    registry: &dyn Registry,
    repository: &str,
    digest: &str,
    cache: &EvidenceCache,
) -> Result<LayerFindings, EvidenceError> {
    if let Some(found) = cache.layer(digest) {
        return Ok(found);
    }
    if let Some(found) = cache.scanned_in_transfer(digest).await {
        return Ok(found);
    }
    let stream = registry.get_blob(repository, digest).await?;
    let (mut tapped, scan) = tap(digest, stream);
    let mut failure = None;
    while let Some(item) = tapped.next().await {
        if let Err(e) = item {
            failure = Some(e);
            break;
        }
    }
    drop(tapped);
    if let Some(e) = failure {
        scan.abort();
        return Err(e.into());
    }
    let findings = scan.await.map_err(|e| ScanError::Layer {
        digest: digest.to_owned(),
        detail: format!("scan did not finish: {e}"),
    })??;
    cache.put_layer(digest, &findings);
    Ok(findings)
}

/// What an SBOM of one placed manifest is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageContents {
    /// The distribution and the installed packages.
    pub inventory: Inventory,
    /// RFC 3339 creation time (the config's `created`, else the epoch).
    pub created: String,
}

/// Reads the manifest `digest` (an image or an index) at `registry/repository` and the layers
/// it needs. An index's SBOM is the union of its platforms' packages.
pub async fn image_contents(
    registry: &dyn Registry,
    repository: &str,
    digest: &str,
    cache: &EvidenceCache,
) -> Result<ImageContents, EvidenceError> {
    if let Some(known) = cache
        .contents
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(digest)
    {
        return Ok(known.clone());
    }
    let bytes = match cache.manifests.get(digest) {
        Some(bytes) => bytes,
        None => {
            let (_, bytes) = registry
                .get_manifest(repository, digest)
                .await?
                .ok_or_else(|| manifest_error(registry, repository, digest, "not found".into()))?;
            cache.manifests.put(digest, &bytes);
            bytes
        }
    };
    let contents = contents_of(registry, repository, digest, &bytes, cache).await?;
    cache
        .contents
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(digest.to_owned(), contents.clone());
    Ok(contents)
}

fn manifest_error(
    registry: &dyn Registry,
    repository: &str,
    digest: &str,
    detail: String,
) -> EvidenceError {
    EvidenceError::Manifest {
        registry: registry.display_name().to_owned(),
        repository: repository.to_owned(),
        digest: digest.to_owned(),
        detail,
    }
}

/// [`image_contents`] of a manifest already read.
async fn contents_of(
    registry: &dyn Registry,
    repository: &str,
    digest: &str,
    bytes: &[u8],
    cache: &EvidenceCache,
) -> Result<ImageContents, EvidenceError> {
    let manifest_err = |detail| manifest_error(registry, repository, digest, detail);
    let value = manifest::parse(bytes).map_err(manifest_err)?;
    if let Some(children) = value.get("manifests").and_then(|m| m.as_array()) {
        let mut merged = Inventory::default();
        let mut created = None;
        for child in children {
            let Some(d) = manifest::descriptor_from_json(child) else {
                continue;
            };
            // Attestation manifests of BuildKit (`unknown/unknown`) describe, not contain.
            if child
                .pointer("/annotations/vnd.docker.reference.type")
                .is_some()
            {
                continue;
            }
            let contents = Box::pin(image_contents(registry, repository, &d.digest, cache)).await?;
            merged.distro = merged.distro.or(contents.inventory.distro);
            merged.packages.extend(contents.inventory.packages);
            created = created.or(Some(contents.created));
        }
        merged.packages.sort();
        merged.packages.dedup();
        return Ok(ImageContents {
            inventory: merged,
            created: created.unwrap_or_else(|| sbom::EPOCH.to_owned()),
        });
    }
    let refs = manifest::references(&value).map_err(manifest_err)?;
    let config = value
        .get("config")
        .and_then(manifest::descriptor_from_json)
        .ok_or_else(|| manifest_err("no config descriptor".into()))?;
    let seen = cache
        .created
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&config.digest)
        .cloned();
    let created = match seen {
        Some(created) => created,
        None => match fetch_small_blob(registry, repository, &config.digest).await? {
            Some(bytes) => sbom::Subject::created_from_config(&bytes),
            None => sbom::EPOCH.to_owned(),
        },
    };
    let layers: Vec<_> = value
        .get("layers")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .filter_map(manifest::descriptor_from_json)
        .collect();
    let _ = refs;
    let mut findings = Vec::with_capacity(layers.len());
    for layer in &layers {
        findings.push(layer_findings(registry, repository, &layer.digest, cache).await?);
    }
    let merged = sbom::merge(findings.iter());
    Ok(ImageContents {
        inventory: sbom::inventory(&merged)?,
        created,
    })
}

/// A config blob, read whole (configs are small; a huge one is not read).
async fn fetch_small_blob(
    registry: &dyn Registry,
    repository: &str,
    digest: &str,
) -> Result<Option<Vec<u8>>, EvidenceError> {
    let mut stream = registry.get_blob(repository, digest).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > CONFIG_LIMIT {
            return Ok(None);
        }
    }
    Ok(Some(out))
}

/// The SBOM documents of `digest`, one per format.
pub fn render_all(
    formats: &[sbom::SbomFormat],
    name: &str,
    digest: &str,
    contents: &ImageContents,
) -> Result<BTreeMap<sbom::SbomFormat, Vec<u8>>, EvidenceError> {
    let subject = sbom::Subject {
        name: name.to_owned(),
        digest: digest.to_owned(),
        created: contents.created.clone(),
    };
    formats
        .iter()
        .map(|f| Ok((*f, sbom::render(*f, &subject, &contents.inventory)?)))
        .collect()
}
