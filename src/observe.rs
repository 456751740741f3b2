//! Observing live state: upstream tag lists and digests, destination tags and their stamps.
//!
//! Read-only and concurrent. The request budget of a warm run with nothing to do is one tag list
//! per repository, one HEAD per selected upstream tag and one HEAD per destination tag; a
//! manifest is fetched only when its digest is not already in the content-addressed manifest
//! cache (a digest names its bytes, so the cache can never be stale).

pub mod recheck;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::{self, StreamExt};

use crate::live::{LiveTag, SourceObservation};
pub use crate::registry::pool::Registries;
use crate::registry::{Registry, RegistryError};
use crate::stamp;

/// An observation failed: names the registry and what was being read; the registry error is
/// its `source()`.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what}")]
pub struct ObserveError {
    /// What was being read (`the tags of docker.io/library/busybox`).
    pub what: String,
    #[source]
    /// The registry's error.
    pub source: Box<RegistryError>,
}

impl ObserveError {
    /// A failed read of `what`.
    pub fn new(what: impl Into<String>, source: RegistryError) -> Self {
        ObserveError {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

/// Content-addressed manifest cache on disk. Entries are verified on read.
#[derive(Debug, Clone, Default)]
pub struct ManifestCache {
    dir: Option<PathBuf>,
}

impl ManifestCache {
    /// A cache under `dir`; `None` caches nothing (every manifest is read from its registry).
    pub fn new(dir: Option<PathBuf>) -> Self {
        ManifestCache { dir }
    }

    fn path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(self.dir.as_ref()?.join("manifests").join(hex))
    }

    /// The cache directory, when there is one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The bytes cached under `digest`, verified against it (a damaged entry reads as absent).
    pub fn get(&self, digest: &str) -> Option<Bytes> {
        let bytes = std::fs::read(self.path(digest)?).ok()?;
        (stamp::sha256_digest(&bytes) == digest).then(|| Bytes::from(bytes))
    }

    /// Best effort: a cache that cannot be written only costs requests later.
    pub fn put(&self, digest: &str, bytes: &[u8]) {
        let Some(path) = self.path(digest) else {
            return;
        };
        if stamp::sha256_digest(bytes) != digest || path.exists() {
            return;
        }
        if let Some(parent) = path.parent()
            && std::fs::create_dir_all(parent).is_ok()
        {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }
}

/// Default cache location: `$XDG_CACHE_HOME/houba`, else `$HOME/.cache/houba`.
pub fn default_cache_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    if let Some(d) = env.get("HOUBA_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = env.get("XDG_CACHE_HOME") {
        return Some(Path::new(d).join("houba"));
    }
    env.get("HOME").map(|h| Path::new(h).join(".cache/houba"))
}

/// Upstream tag lists keyed by `(host, repository)`.
pub type UpstreamTags = BTreeMap<(String, String), Vec<String>>;

/// List the tags of every upstream repository, concurrently.
pub async fn list_source_tags(
    registries: &Registries,
    repositories: &BTreeSet<(String, String)>,
    concurrency: usize,
) -> Result<UpstreamTags, ObserveError> {
    let results: Vec<_> = stream::iter(repositories.iter().cloned())
        .map(|(host, repo)| async move {
            let r = registries
                .source(&host)
                .map_err(|e| ObserveError::new(format!("registry {host}"), e))?;
            let tags = r.list_tags(&repo).await.map_err(|source| {
                ObserveError::new(format!("the tags of {host}/{repo}"), source)
            })?;
            Ok::<_, ObserveError>(((host, repo), tags))
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

/// Fetch a manifest's bytes by digest through the cache.
async fn manifest_bytes(
    r: &dyn Registry,
    cache: &ManifestCache,
    repository: &str,
    digest: &str,
    what: &str,
) -> Result<Option<(String, Bytes)>, ObserveError> {
    if let Some(b) = cache.get(digest) {
        let mt = stamp::manifest_media_type(&b, "");
        return Ok(Some((mt, b)));
    }
    let got = r
        .get_manifest(repository, digest)
        .await
        .map_err(|source| ObserveError::new(what.to_string(), source))?;
    Ok(got.map(|(d, b)| {
        cache.put(digest, &b);
        (stamp::manifest_media_type(&b, &d.media_type), b)
    }))
}

/// Largest image config read to learn an image's creation time.
const MAX_CONFIG_BYTES: usize = 4 << 20;

/// The age of upstream content from its image config's `created` (the first platform's, for an
/// index). Only asked when an upstream digest moved under a `settle` window and the manifest
/// declares no creation time itself: most images carry `created` only in their config.
pub async fn config_age(
    registries: &Registries,
    cache: &ManifestCache,
    host: &str,
    repository: &str,
    manifest: &[u8],
    now: SystemTime,
) -> Result<Option<Duration>, ObserveError> {
    let r = registries
        .source(host)
        .map_err(|e| ObserveError::new(format!("registry {host}"), e))?;
    let what = format!("the image config of {host}/{repository}");
    let mut value: serde_json::Value = match serde_json::from_slice(manifest) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    if let Some(first) = value
        .get("manifests")
        .and_then(|m| m.as_array())
        .and_then(|m| m.first())
        .and_then(|d| d.get("digest"))
        .and_then(|d| d.as_str())
        .map(str::to_string)
    {
        let Some((_, child)) = manifest_bytes(r.as_ref(), cache, repository, &first, &what).await?
        else {
            return Ok(None);
        };
        value = match serde_json::from_slice(&child) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
    }
    let Some(config) = value
        .get("config")
        .and_then(|c| c.get("digest"))
        .and_then(|d| d.as_str())
    else {
        return Ok(None);
    };
    let mut stream = r
        .get_blob(repository, config)
        .await
        .map_err(|source| ObserveError::new(what.clone(), source))?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(|source| ObserveError::new(what.clone(), source))?);
        if bytes.len() > MAX_CONFIG_BYTES {
            return Ok(None);
        }
    }
    Ok(serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|c| {
            c.get("created")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .and_then(|c| age_of(&c, now)))
}

/// Age of content whose manifest declares its creation time.
fn declared_age(manifest: &[u8], now: SystemTime) -> Option<Duration> {
    stamp::manifest_annotations(manifest)
        .ok()
        .and_then(|a| a.get(stamp::OCI_CREATED).cloned())
        .and_then(|c| age_of(&c, now))
}

/// An upstream tag as last recorded, with no request: the manifest of `digest` read from the
/// cache. `None` when the cache does not hold it (then the tag must be checked upstream).
pub fn cached_source(
    cache: &ManifestCache,
    digest: &str,
    now: SystemTime,
) -> Option<SourceObservation> {
    let manifest = cache.get(digest)?;
    Some(SourceObservation {
        digest: digest.to_string(),
        media_type: stamp::manifest_media_type(&manifest, ""),
        age: declared_age(&manifest, now),
        manifest,
    })
}

/// HEAD each selected upstream tag and read its manifest (cache first). A tag that vanished
/// since the tag list is left out (the diff notes it).
pub async fn observe_sources(
    registries: &Registries,
    cache: &ManifestCache,
    sources: &BTreeSet<(String, String, String)>,
    concurrency: usize,
    now: SystemTime,
) -> Result<BTreeMap<(String, String, String), SourceObservation>, ObserveError> {
    let results: Vec<_> = stream::iter(sources.iter().cloned())
        .map(|(host, repo, tag)| async move {
            let r = registries
                .source(&host)
                .map_err(|e| ObserveError::new(format!("registry {host}"), e))?;
            let what = format!("{host}/{repo}:{tag}");
            let Some(head) = r
                .head_manifest(&repo, &tag)
                .await
                .map_err(|source| ObserveError::new(what.clone(), source))?
            else {
                return Ok(None);
            };
            let Some((media_type, manifest)) =
                manifest_bytes(r.as_ref(), cache, &repo, &head.digest, &what).await?
            else {
                return Ok(None);
            };
            let age = declared_age(&manifest, now);
            Ok::<_, ObserveError>(Some((
                (host, repo, tag),
                SourceObservation {
                    digest: head.digest,
                    media_type,
                    manifest,
                    age,
                },
            )))
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut out = BTreeMap::new();
    for r in results {
        if let Some((k, v)) = r? {
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// What the destination repositories hold: their tags with content, and the tags they list but
/// cannot serve.
#[derive(Debug, Default)]
pub struct DestinationTags {
    /// `(registry, repository)` → tag → live content.
    pub tags: BTreeMap<(String, String), BTreeMap<String, LiveTag>>,
    /// `(registry, repository)` → tags listed with no manifest behind them (dangling).
    pub dangling: BTreeMap<(String, String), BTreeSet<String>>,
}

/// Every tag of every managed destination repository, with its manifest (cache first).
///
/// A listed tag whose HEAD (or manifest GET) answers 404 is either dangling (the registry
/// keeps the tag link but lost the manifest: an interrupted delete on distribution) or was
/// deleted since the listing. The repository's tag list is read once more to tell the two
/// apart, which costs one request per repository only when that happens.
pub async fn observe_destinations(
    registries: &Registries,
    cache: &ManifestCache,
    repositories: &BTreeSet<(String, String)>,
    concurrency: usize,
) -> Result<DestinationTags, ObserveError> {
    let mut out = DestinationTags::default();
    let mut tag_refs = Vec::new();
    let list = |name: String, repo: String| async move {
        let r = registries
            .destination(&name)
            .map_err(|e| ObserveError::new(format!("registry {name}"), e))?;
        let tags = r.list_tags(&repo).await.map_err(|source| {
            ObserveError::new(
                format!(
                    "the tags of {}/{repo}",
                    registries.destination_display(&name)
                ),
                source,
            )
        })?;
        Ok::<_, ObserveError>(((name, repo), tags))
    };
    let listed: Vec<_> = stream::iter(repositories.iter().cloned())
        .map(|(name, repo)| list(name, repo))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for l in listed {
        let ((name, repo), tags) = l?;
        // Evidence tags (referrers fallback indexes, cosign's `.sig`) hold no images: the diff
        // never looks at them, so they cost no HEAD.
        for t in tags.into_iter().filter(|t| !crate::oci::is_evidence_tag(t)) {
            tag_refs.push((name.clone(), repo.clone(), t));
        }
        out.tags.insert((name, repo), BTreeMap::new());
    }
    let tags: Vec<_> = stream::iter(tag_refs)
        .map(|(name, repo, tag)| async move {
            let r = registries
                .destination(&name)
                .map_err(|e| ObserveError::new(format!("registry {name}"), e))?;
            let what = format!("{}/{repo}:{tag}", registries.destination_display(&name));
            let Some(head) = r
                .head_manifest(&repo, &tag)
                .await
                .map_err(|source| ObserveError::new(what.clone(), source))?
            else {
                return Ok(((name, repo), tag, None));
            };
            let Some((media_type, manifest)) =
                manifest_bytes(r.as_ref(), cache, &repo, &head.digest, &what).await?
            else {
                return Ok(((name, repo), tag, None));
            };
            Ok::<_, ObserveError>((
                (name, repo),
                tag,
                Some(LiveTag {
                    digest: head.digest,
                    media_type,
                    manifest,
                }),
            ))
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut unserved: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for t in tags {
        match t? {
            (key, tag, Some(live)) => {
                out.tags.entry(key).or_default().insert(tag, live);
            }
            (key, tag, None) => {
                unserved.entry(key).or_default().insert(tag);
            }
        }
    }
    let relisted: Vec<_> = stream::iter(unserved)
        .map(|((name, repo), missing)| async move {
            let (key, still) = list(name, repo).await?;
            let dangling: BTreeSet<String> =
                still.into_iter().filter(|t| missing.contains(t)).collect();
            Ok::<_, ObserveError>((key, dangling))
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for r in relisted {
        let (key, dangling) = r?;
        if !dangling.is_empty() {
            out.dangling.insert(key, dangling);
        }
    }
    Ok(out)
}

/// Repositories that hold houba stamps but that no current policy claims, with their tags.
#[derive(Debug, Default)]
pub struct Unclaimed {
    /// `(registry, repository)` → tag → live content, for every repository found stamped.
    pub repositories: BTreeMap<(String, String), BTreeMap<String, LiveTag>>,
    /// Registries whose catalog could not be read (orphans there are not looked for), with why.
    pub unreadable: Vec<(String, String)>,
}

/// Look for orphans: repositories of the destination registries that no policy claims now but
/// that hold tags houba stamped (a policy was deleted, or its destination moved).
///
/// Cost per destination registry: one catalog listing (paged), then per unclaimed repository
/// one tag list and one HEAD of a probe tag (its manifest is read once, then cached). Only a
/// repository whose probe tag carries a houba stamp is observed in full (one HEAD per tag), so
/// registries shared with content houba never placed cost two requests per repository. A
/// registry that refuses the catalog is reported, never an error.
pub async fn find_unclaimed(
    registries: &Registries,
    cache: &ManifestCache,
    destinations: &[String],
    claimed: &BTreeSet<(String, String)>,
    label_prefix: &str,
    concurrency: usize,
) -> Result<Unclaimed, ObserveError> {
    let mut out = Unclaimed::default();
    let mut candidates = Vec::new();
    for name in destinations {
        let r = registries
            .destination(name)
            .map_err(|e| ObserveError::new(format!("registry {name}"), e))?;
        match r.catalog().await {
            Ok(repos) => candidates.extend(
                repos
                    .into_iter()
                    .filter(|repo| !claimed.contains(&(name.clone(), repo.clone())))
                    .map(|repo| (name.clone(), repo)),
            ),
            Err(e) => out
                .unreadable
                .push((registries.destination_display(name), e.to_string())),
        }
    }
    let probed: Vec<_> = stream::iter(candidates)
        .map(|(name, repo)| async move {
            let r = registries
                .destination(&name)
                .map_err(|e| ObserveError::new(format!("registry {name}"), e))?;
            let display = registries.destination_display(&name);
            let mut tags = r
                .list_tags(&repo)
                .await
                .map_err(|e| ObserveError::new(format!("the tags of {display}/{repo}"), e))?;
            tags.sort();
            let Some(probe) = tags
                .iter()
                .find(|t| !crate::oci::is_referrers_fallback_tag(t))
            else {
                return Ok(None);
            };
            let what = format!("{display}/{repo}:{probe}");
            let Some(head) = r
                .head_manifest(&repo, probe)
                .await
                .map_err(|e| ObserveError::new(what.clone(), e))?
            else {
                return Ok(None);
            };
            let Some((_, manifest)) =
                manifest_bytes(r.as_ref(), cache, &repo, &head.digest, &what).await?
            else {
                return Ok(None);
            };
            let stamped = stamp::manifest_annotations(&manifest)
                .ok()
                .and_then(|a| stamp::Stamp::detect(&a, label_prefix))
                .is_some();
            Ok::<_, ObserveError>(stamped.then_some((name, repo)))
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut stamped = BTreeSet::new();
    for p in probed {
        if let Some(key) = p? {
            stamped.insert(key);
        }
    }
    if !stamped.is_empty() {
        // A dangling tag of an unclaimed repository carries no stamp to show whose it is: houba
        // leaves it alone there, as it leaves every unstamped tag of such a repository.
        out.repositories = observe_destinations(registries, cache, &stamped, concurrency)
            .await?
            .tags;
    }
    Ok(out)
}

pub use crate::oci::age_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_verifies_content() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ManifestCache::new(Some(dir.path().to_path_buf()));
        let d = stamp::sha256_digest(b"{}");
        cache.put(&d, b"{}");
        assert_eq!(cache.get(&d).as_deref(), Some(&b"{}"[..]));
        std::fs::write(dir.path().join("manifests").join(&d[7..]), b"{\"x\":1}").unwrap();
        assert_eq!(cache.get(&d), None, "a corrupted entry is ignored");
        cache.put(&stamp::sha256_digest(b"a"), b"b");
        assert_eq!(cache.get(&stamp::sha256_digest(b"a")), None);
    }
}
