//! Placing rebuilt images: the bridge between the rebuild engine (`build`, synchronous,
//! registry-agnostic) and the registries.
//!
//! Order is the same as for copies: the base's blobs and child manifests reach the destination
//! first (cross-repository mount when the base already sits in the same registry), then the new
//! layers and configs, then the rebuilt platform manifests by digest, and the tag last.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

use crate::build::{self, BlobSource, BuildError, NewBlob, TransformRosters};
use crate::policy::resolved::TransformStep;
use crate::registry::transfer::TransferSession;
use crate::registry::{ByteStream, Registry};
use crate::stamp;

mod content;
pub use content::rebuild_contents;

/// What to rebuild, and from where.
pub struct RebuildRequest<'a> {
    /// For messages: `docker.io/library/debian:bookworm-slim`.
    pub label: String,
    /// The registry holding the upstream image.
    pub source: Arc<dyn Registry>,
    /// The upstream repository in that registry.
    pub source_repository: &'a str,
    /// The upstream manifest or index, as observed.
    pub manifest: Bytes,
    /// The media type of `manifest`.
    pub media_type: String,
    /// The transform steps, in order.
    pub steps: &'a [TransformStep],
    /// `os/arch[/variant]` to keep; empty keeps every platform.
    pub platforms: &'a [String],
    /// The CA certificate and package-mirror rosters the steps name.
    pub rosters: &'a TransformRosters,
    /// The stamp, `io.houba.recipe` included.
    pub annotations: &'a BTreeMap<String, String>,
    /// Key prefix of houba's own annotations (`io.houba`).
    pub label_prefix: &'a str,
}

/// The recipe digest the plan records and the rebuild is checked against: one implementation,
/// in the pure build engine.
pub use crate::build::recipe_digest;

fn is_index(media_type: &str) -> bool {
    media_type == stamp::OCI_INDEX || media_type == stamp::DOCKER_LIST
}

/// Keep the index entries whose platform is listed (`os/arch[/variant]`).
fn filter_platforms(index: &[u8], platforms: &[String], label: &str) -> Result<Vec<u8>, String> {
    let mut value: Value = serde_json::from_slice(index)
        .map_err(|e| format!("{label}: the index is not JSON: {e}"))?;
    let wanted: BTreeSet<&str> = platforms.iter().map(String::as_str).collect();
    let manifests = value
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| format!("{label}: the index has no manifests"))?;
    manifests.retain(|m| {
        let p = m.get("platform");
        let field = |k: &str| p.and_then(|p| p.get(k)).and_then(Value::as_str);
        let (Some(os), Some(arch)) = (field("os"), field("architecture")) else {
            return false;
        };
        wanted.contains(format!("{os}/{arch}").as_str())
            || field("variant")
                .is_some_and(|v| wanted.contains(format!("{os}/{arch}/{v}").as_str()))
    });
    if manifests.is_empty() {
        return Err(format!(
            "{label}: none of the platforms {} is in the upstream index",
            platforms.join(", ")
        ));
    }
    Ok(stamp::canonical_json(&value))
}

/// Reads blobs (and an index's child manifests) from a registry for the synchronous engine:
/// each read streams through a small channel, so memory does not grow with blob size and a
/// layer is only read as far as the engine needs.
struct RegistryBlobs {
    handle: tokio::runtime::Handle,
    registry: Arc<dyn Registry>,
    repository: String,
    manifests: BTreeSet<String>,
}

struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

impl BlobSource for RegistryBlobs {
    fn open_blob(&self, digest: &str) -> std::io::Result<Box<dyn Read + Send>> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let registry = self.registry.clone();
        let repository = self.repository.clone();
        let digest = digest.to_string();
        let is_manifest = self.manifests.contains(&digest);
        self.handle.spawn(async move {
            let io = |e: crate::registry::RegistryError| std::io::Error::other(e.to_string());
            if is_manifest {
                let item = match registry.get_manifest(&repository, &digest).await {
                    Ok(Some((_, bytes))) => Ok(bytes),
                    Ok(None) => Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("manifest {digest} is not in {repository}"),
                    )),
                    Err(e) => Err(io(e)),
                };
                let _ = tx.send(item).await;
                return;
            }
            match registry.get_blob(&repository, &digest).await {
                Ok(mut stream) => {
                    while let Some(chunk) = stream.next().await {
                        let failed = chunk.is_err();
                        if tx.send(chunk.map_err(io)).await.is_err() || failed {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(io(e))).await;
                }
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            current: Bytes::new(),
        }))
    }
}

/// A stream over a file, in chunks, for uploads that must not be held in memory.
fn file_stream(path: &Path) -> std::io::Result<ByteStream> {
    let file = std::fs::File::open(path)?;
    let registry = path.display().to_string();
    let stream = futures::stream::unfold(Some(file), move |state| {
        let registry = registry.clone();
        async move {
            let mut file = state?;
            let mut buf = vec![0u8; 1 << 20];
            match file.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((
                    Err(crate::registry::RegistryError::Io {
                        registry,
                        message: "reading the rebuilt layer".into(),
                        error: e,
                    }),
                    None,
                )),
            }
        }
    });
    Ok(Box::pin(stream))
}

/// Upload a small blob held in memory, unless the repository already has it. Returns the
/// bytes uploaded (`None`: it was present).
pub(crate) async fn upload_bytes(
    dst: &dyn Registry,
    repo: &str,
    bytes: &[u8],
) -> Result<Option<u64>, RebuildError> {
    let digest = stamp::sha256_digest(bytes);
    if dst
        .blob_exists(repo, &digest)
        .await
        .map_err(RebuildError::from)?
    {
        return Ok(None);
    }
    let data = Bytes::copy_from_slice(bytes);
    let stream: ByteStream = Box::pin(futures::stream::once(async move { Ok(data) }));
    dst.put_blob(repo, &digest, bytes.len() as u64, stream)
        .await
        .map_err(RebuildError::from)?;
    Ok(Some(bytes.len() as u64))
}

/// Upload a rebuilt layer unless present; returns the bytes uploaded (`None`: present).
async fn upload_layer(
    dst: &dyn Registry,
    repo: &str,
    layer: &NewBlob,
) -> Result<Option<u64>, RebuildError> {
    let uploaded = if dst
        .blob_exists(repo, &layer.digest)
        .await
        .map_err(RebuildError::from)?
    {
        None
    } else {
        let stream = file_stream(&layer.path).map_err(|e| {
            format!(
                "cannot read the rebuilt layer {}: {e}",
                layer.path.display()
            )
        })?;
        dst.put_blob(repo, &layer.digest, layer.size, stream)
            .await
            .map_err(RebuildError::from)?;
        Some(layer.size)
    };
    let _ = std::fs::remove_file(&layer.path);
    Ok(uploaded)
}

/// Why a rebuild failed, keeping its kind: a registry error (with its registry, reference and
/// whether it is transient), a build error, or a problem with the image itself.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Reading or writing a registry failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The rebuild engine refused or failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The image cannot be rebuilt as asked (named in the message).
    #[error("{0}")]
    Image(String),
}

impl From<String> for RebuildError {
    fn from(message: String) -> Self {
        RebuildError::Image(message)
    }
}

impl RebuildError {
    /// Whether repeating the rebuild may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, RebuildError::Registry(e) if e.is_transient())
    }
}

/// The manifest a rebuild put under its tag: its digest and bytes (for the manifest cache, so
/// the next plan does not read it back).
pub type Placed = (String, Bytes);

/// Rebuild and place under `dst_repo:dst_tag`. Returns what the tag now holds.
pub async fn rebuild_and_place(
    req: RebuildRequest<'_>,
    session: &TransferSession,
    dst: &dyn Registry,
    dst_repo: &str,
    dst_tag: &str,
) -> Result<Placed, RebuildError> {
    let label = req.label.clone();
    let mut base = req.manifest.to_vec();
    let mut media_type = stamp::manifest_media_type(&base, &req.media_type);
    if !req.platforms.is_empty() {
        if !is_index(&media_type) {
            return Err(format!(
                "{label}: a platform filter needs a multi-platform upstream, but it is a single image"
            )
            .into());
        }
        base = filter_platforms(&base, req.platforms, &label)?;
        media_type = stamp::OCI_INDEX.to_string();
    }
    // Everything the base references must exist at the destination: the rebuilt manifests
    // keep the base layers as they are.
    session
        .place(
            req.source.as_ref(),
            req.source_repository,
            dst,
            dst_repo,
            &base,
        )
        .await
        .map_err(RebuildError::from)?;

    if req.steps.is_empty() {
        // Platform filter only: a new (stamped) index over the same platform manifests.
        let out = stamp::stamp_manifest(&base, &media_type, req.annotations, req.label_prefix)
            .map_err(|e| format!("{label}: {e}"))?;
        let bytes = Bytes::from(out.bytes);
        dst.put_manifest(dst_repo, dst_tag, &out.media_type, bytes.clone())
            .await
            .map_err(RebuildError::from)?;
        return Ok((out.digest, bytes));
    }

    let manifests: BTreeSet<String> = if is_index(&media_type) {
        serde_json::from_slice::<Value>(&base)
            .ok()
            .and_then(|v| {
                v.get("manifests").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .filter_map(|m| m.get("digest").and_then(Value::as_str).map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default()
    } else {
        BTreeSet::new()
    };
    let blobs = RegistryBlobs {
        handle: tokio::runtime::Handle::current(),
        registry: req.source.clone(),
        repository: req.source_repository.to_string(),
        manifests,
    };
    let workdir =
        tempfile::tempdir().map_err(|e| format!("{label}: cannot create a work directory: {e}"))?;
    let steps = req.steps.to_vec();
    let rosters = req.rosters.clone();
    let annotations = req.annotations.clone();
    let work = workdir.path().to_path_buf();
    let index_media = is_index(&media_type);
    let built = tokio::task::spawn_blocking(move || -> Result<Built, BuildError> {
        if index_media {
            build::rebuild_index(&label, &base, &blobs, &steps, &rosters, &annotations, &work)
                .map(Built::Index)
        } else {
            let value: Value =
                serde_json::from_slice(&base).map_err(|e| BuildError::Unsupported {
                    image: label.clone(),
                    detail: format!("the manifest is not JSON: {e}"),
                })?;
            let config_digest = value
                .get("config")
                .and_then(|c| c.get("digest"))
                .and_then(Value::as_str)
                .ok_or_else(|| BuildError::Unsupported {
                    image: label.clone(),
                    detail: "the manifest has no config".into(),
                })?
                .to_string();
            let mut config = Vec::new();
            blobs
                .open_blob(&config_digest)
                .and_then(|mut r| r.read_to_end(&mut config))
                .map_err(|e| BuildError::Unsupported {
                    image: label.clone(),
                    detail: format!("cannot read the config {config_digest}: {e}"),
                })?;
            build::rebuild_image(
                &label,
                &base,
                &config,
                &blobs,
                &steps,
                &rosters,
                &annotations,
                &work,
            )
            .map(Built::Image)
        }
    })
    .await
    .map_err(|e| format!("{}: the rebuild stopped: {e}", req.label))?
    .map_err(RebuildError::from)?;

    match built {
        Built::Image(image) => {
            session.record_blob(upload_layer(dst, dst_repo, &image.new_layer).await?);
            session.record_blob(upload_bytes(dst, dst_repo, &image.config).await?);
            let digest = image.manifest_digest();
            let bytes = Bytes::from(image.manifest);
            dst.put_manifest(dst_repo, dst_tag, &image.manifest_media_type, bytes.clone())
                .await
                .map_err(RebuildError::from)?;
            Ok((digest, bytes))
        }
        Built::Index(index) => {
            for p in &index.platforms {
                session.record_blob(upload_layer(dst, dst_repo, &p.image.new_layer).await?);
                session.record_blob(upload_bytes(dst, dst_repo, &p.image.config).await?);
                dst.put_manifest(
                    dst_repo,
                    &p.image.manifest_digest(),
                    &p.image.manifest_media_type,
                    Bytes::from(p.image.manifest.clone()),
                )
                .await
                .map_err(RebuildError::from)?;
            }
            for d in &index.dropped {
                tracing::info!(image = %req.label, digest = %d.digest, reason = %d.reason, "index entry not carried over");
            }
            let digest = index.index_digest();
            let bytes = Bytes::from(index.index);
            dst.put_manifest(dst_repo, dst_tag, &index.index_media_type, bytes.clone())
                .await
                .map_err(RebuildError::from)?;
            Ok((digest, bytes))
        }
    }
}

enum Built {
    Image(build::BuiltImage),
    Index(build::BuiltIndex),
}

/// How an external builder reaches a registry: `host[/prefix]` and whether it verifies TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuilderEndpoint {
    /// `host[/prefix]` of the registry, as a builder names it.
    pub host_path: String,
    /// Whether the builder verifies the registry's TLS certificate.
    pub tls_verify: bool,
}

impl BuilderEndpoint {
    /// The endpoint of a roster entry; a layout directory cannot be reached by a builder.
    pub fn of(entry: &crate::config::RegistryEntry) -> Result<Self, String> {
        match &entry.endpoint {
            crate::config::RegistryEndpoint::Http {
                host,
                prefix,
                tls_verify,
                ..
            } => Ok(BuilderEndpoint {
                host_path: match prefix {
                    Some(p) => format!("{host}/{p}"),
                    None => host.clone(),
                },
                tls_verify: *tls_verify,
            }),
            crate::config::RegistryEndpoint::Layout { .. } => Err(format!(
                "registry `{}` is an image layout directory, which an image builder cannot read or \
                 push to; images with `run` steps need HTTP registries",
                entry.name
            )),
        }
    }
}

/// Builds an image whose steps run commands from a rendered Dockerfile, then places it: the
/// builder pushes to a temporary tag, the pushed manifest is stamped and put under `dst_tag`
/// (the commit point), and the temporary tag is removed. Returns the digest `dst_tag` holds.
pub async fn build_dockerfile_and_place(
    req: RebuildRequest<'_>,
    builder: &crate::config::Builder,
    source: &BuilderEndpoint,
    destination: &BuilderEndpoint,
    dst: &dyn Registry,
    dst_repo: &str,
    dst_tag: &str,
) -> Result<Placed, RebuildError> {
    let label = req.label.clone();
    let platform = match req.platforms {
        [] => None,
        [one] => Some(one.clone()),
        _ => {
            return Err(format!(
                "{label}: images with `run` steps are built for one platform; list at most one \
                 in `platforms`"
            )
            .into());
        }
    };
    let base_digest = stamp::sha256_digest(&req.manifest);
    let base = format!(
        "{}/{}@{base_digest}",
        source.host_path, req.source_repository
    );
    let context = build::dockerfile::render(&label, &base, req.steps, req.rosters)
        .map_err(RebuildError::from)?;
    let temporary_tag = format!("houba-build-{:016x}", rand::random::<u64>());
    let push_to = format!("{}/{dst_repo}:{temporary_tag}", destination.host_path);
    let workdir =
        tempfile::tempdir().map_err(|e| format!("{label}: cannot create a work directory: {e}"))?;
    let builder = builder.clone();
    let (base_tls, push_tls) = (source.tls_verify, destination.tls_verify);
    let work = workdir.path().to_path_buf();
    let build_label = label.clone();
    let pushed = tokio::task::spawn_blocking(move || {
        build::dockerfile::build_and_push(&build::dockerfile::DockerfileBuild {
            image: &build_label,
            context: &context,
            builder: &builder,
            base_tls_verify: base_tls,
            push_to: &push_to,
            push_tls_verify: push_tls,
            platform: platform.as_deref(),
            workdir: &work,
        })
    })
    .await
    .map_err(|e| format!("{label}: the build stopped: {e}"))?
    .map_err(RebuildError::from)?;

    let placed = stamp_pushed(&req, dst, dst_repo, dst_tag, &pushed).await;
    // The temporary tag goes whether or not the stamp went through.
    remove_temporary_tag(
        dst,
        dst_repo,
        &temporary_tag,
        &pushed,
        placed.as_ref().ok().map(|(d, _)| d),
    )
    .await;
    placed
}

async fn stamp_pushed(
    req: &RebuildRequest<'_>,
    dst: &dyn Registry,
    dst_repo: &str,
    dst_tag: &str,
    pushed: &str,
) -> Result<Placed, RebuildError> {
    let (descriptor, bytes) = dst
        .get_manifest(dst_repo, pushed)
        .await
        .map_err(RebuildError::from)?
        .ok_or_else(|| {
            format!(
                "{}: the builder reported pushing {pushed} to {dst_repo}, but it is not there",
                req.label
            )
        })?;
    let media_type = stamp::manifest_media_type(&bytes, &descriptor.media_type);
    let out = stamp::stamp_manifest(&bytes, &media_type, req.annotations, req.label_prefix)
        .map_err(|e| format!("{}: {e}", req.label))?;
    let bytes = Bytes::from(out.bytes);
    dst.put_manifest(dst_repo, dst_tag, &out.media_type, bytes.clone())
        .await
        .map_err(RebuildError::from)?;
    Ok((out.digest, bytes))
}

/// Deletes the builder's temporary tag. Registries that cannot delete a tag alone get the
/// unstamped manifest deleted by digest, unless the final tag holds those very bytes.
async fn remove_temporary_tag(
    dst: &dyn Registry,
    repo: &str,
    tag: &str,
    pushed: &str,
    placed: Option<&String>,
) {
    let result = match dst.delete_tag(repo, tag).await {
        Ok(crate::registry::TagDeletion::Deleted) => Ok(()),
        Ok(crate::registry::TagDeletion::Unsupported)
            if placed.map(String::as_str) != Some(pushed) =>
        {
            dst.delete_manifest(repo, pushed).await
        }
        Ok(crate::registry::TagDeletion::Unsupported) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(repository = repo, tag, error = %e, "the builder's temporary tag could not be removed; delete it by hand");
    }
}
