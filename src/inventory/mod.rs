//! The read side: what is in the destination registries, answered from the stamps and the
//! attached evidence alone.
//!
//! `scan` walks every repository of the registries' catalogs (not only those a policy manages:
//! images that never went through houba are the coverage gap), resolves every tag to a digest,
//! reads each manifest once per digest (through the content-addressed cache) and lists each
//! image's referrers. Everything after the scan (blast radius, audit, verify, gc, purge) is a
//! pure function over the `Inventory`, except where a command says it reads or writes more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream;
use serde::Serialize;

use crate::observe::ManifestCache;
use crate::registry::{Referrer, Registry, RegistryError, RequestStats, referrers};
use crate::stamp::{self, Stamp};

pub mod audit;
pub mod blast;
pub mod evidence;
pub mod gc;
pub mod purge;
pub mod render;
pub mod signature;
pub mod verify;

pub use evidence::{Evidence, ScanReport};

/// One destination registry, connected: the roster name, the host it is shown as, the client.
#[derive(Clone)]
pub struct Endpoint {
    /// Roster entry name.
    pub name: String,
    /// Host (and path prefix) the registry is shown as.
    pub host: String,
    /// The client.
    pub registry: Arc<dyn Registry>,
}

/// A read or a write failed; names the registry, the repository and the reference.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read {what}: {error}")]
    /// A registry read failed.
    Read {
        /// What was being read.
        what: String,
        /// The cause; its text is part of the message, so it is not also a `source()` (a
        /// report would print it twice).
        error: Box<RegistryError>,
    },
    #[error("cannot delete {what}: {error}")]
    /// A deletion failed.
    Delete {
        /// What was being deleted.
        what: String,
        /// The cause; its text is part of the message, so it is not also a `source()` (a
        /// report would print it twice).
        error: Box<RegistryError>,
    },
    #[error("{what}: {message}")]
    /// Something read is not what it should be.
    Invalid {
        /// What was read.
        what: String,
        /// What is wrong with it.
        message: String,
    },
}

impl InventoryError {
    /// A failed read of `what`.
    pub fn read(what: impl Into<String>, source: RegistryError) -> Self {
        InventoryError::Read {
            what: what.into(),
            error: Box::new(source),
        }
    }
}

/// Which repositories a scan covers.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only repositories whose path starts with this.
    pub repository_prefix: Option<String>,
}

impl Scope {
    /// Whether the scope covers `repository`.
    pub fn covers(&self, repository: &str) -> bool {
        self.repository_prefix
            .as_deref()
            .is_none_or(|p| repository.starts_with(p))
    }
}

/// One image (a digest) in one repository, with every tag pointing at it.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    /// Roster entry name.
    pub registry: String,
    /// Host (and path prefix) the registry is shown as.
    pub host: String,
    /// Repository path in the registry.
    pub repository: String,
    /// The image's digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Every tag pointing at it.
    pub tags: Vec<String>,
    /// The repository is a destination of a policy.
    pub managed: bool,
    /// houba's stamp, when the manifest carries one.
    pub stamp: Option<Stamp>,
    /// The key prefix the stamp was found under.
    pub stamp_prefix: Option<String>,
    /// SBOMs, signatures and scan reports attached.
    pub evidence: Evidence,
    #[serde(skip)]
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    #[serde(skip)]
    /// The manifest's bytes.
    pub manifest: Bytes,
}

impl Image {
    /// `host/repository@digest`: the reference the usage oracle and messages use.
    pub fn reference(&self) -> String {
        format!("{}/{}@{}", self.host, self.repository, self.digest)
    }
}

/// One repository as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Repository {
    /// Roster entry name.
    pub registry: String,
    /// Host (and path prefix) the registry is shown as.
    pub host: String,
    /// Repository path in the registry.
    pub repository: String,
    /// The repository is a destination of a policy.
    pub managed: bool,
    /// Tags naming images (referrers-fallback and cosign tags left out).
    pub tags: usize,
    /// `sha256-<hex>` referrers-fallback tags and cosign `sha256-<hex>.sig|.att|.sbom` tags.
    #[serde(skip)]
    pub evidence_tags: Vec<String>,
}

/// Everything a scan saw.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// The repositories listed.
    pub repositories: Vec<Repository>,
    /// The images found in them, one per repository and digest.
    pub images: Vec<Image>,
}

/// Whether a tag belongs to evidence rather than naming an image: the referrers fallback
/// (`sha256-<hex>`) and cosign's tag schema (`sha256-<hex>.sig`, `.att`, `.sbom`).
pub fn is_evidence_tag(tag: &str) -> bool {
    let base = [".sig", ".att", ".sbom"]
        .iter()
        .find_map(|s| tag.strip_suffix(s))
        .unwrap_or(tag);
    referrers::is_fallback_tag(base)
}

/// The subject digest an evidence tag is about.
pub fn evidence_tag_subject(tag: &str) -> Option<String> {
    let base = [".sig", ".att", ".sbom"]
        .iter()
        .find_map(|s| tag.strip_suffix(s))
        .unwrap_or(tag);
    referrers::is_fallback_tag(base).then(|| format!("sha256:{}", &base["sha256-".len()..]))
}

/// A manifest's bytes by digest, through the cache. `None` when the registry does not have it.
pub async fn manifest_by_digest(
    registry: &dyn Registry,
    cache: &ManifestCache,
    repository: &str,
    digest: &str,
) -> Result<Option<Bytes>, RegistryError> {
    if let Some(b) = cache.get(digest) {
        return Ok(Some(b));
    }
    let got = registry.get_manifest(repository, digest).await?;
    Ok(got.map(|(_, b)| {
        cache.put(digest, &b);
        b
    }))
}

/// Inputs of a scan.
pub struct ScanRequest<'a> {
    /// The destination registries to walk.
    pub endpoints: &'a [Endpoint],
    /// Which repositories.
    pub scope: &'a Scope,
    /// `(roster name, repository)` of every policy destination.
    pub managed: &'a BTreeSet<(String, String)>,
    /// The content-addressed manifest cache.
    pub cache: &'a ManifestCache,
    /// Key prefix of houba's own stamp keys.
    pub label_prefix: &'a str,
    /// Requests in flight at most, per registry.
    pub concurrency: usize,
    /// Walk every repository of the catalogs; `false`: only the managed repositories.
    pub catalog: bool,
}

/// Walk the catalogs, then every tag, manifest and referrer listing, concurrently (bounded).
pub async fn scan(req: &ScanRequest<'_>) -> Result<Inventory, InventoryError> {
    let concurrency = req.concurrency.max(1);
    // Catalogs, plus managed repositories a catalog may hide (or that do not exist yet).
    let catalogs: Vec<_> = stream::iter(req.endpoints.iter().cloned())
        .map(|ep| async move {
            if !req.catalog {
                return Ok((ep, Vec::new()));
            }
            let repos = ep
                .registry
                .catalog()
                .await
                .map_err(|e| InventoryError::read(format!("the catalog of {}", ep.host), e))?;
            Ok::<_, InventoryError>((ep, repos))
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut repo_keys: Vec<(Endpoint, String)> = Vec::new();
    for c in catalogs {
        let (ep, repos) = c?;
        let mut set: BTreeSet<String> = repos.into_iter().collect();
        set.extend(
            req.managed
                .iter()
                .filter(|(r, _)| *r == ep.name)
                .map(|(_, repo)| repo.clone()),
        );
        repo_keys.extend(
            set.into_iter()
                .filter(|r| req.scope.covers(r))
                .map(|r| (ep.clone(), r)),
        );
    }
    repo_keys.sort_by(|a, b| (&a.0.name, &a.1).cmp(&(&b.0.name, &b.1)));

    let listed: Vec<_> = stream::iter(repo_keys)
        .map(|(ep, repo)| async move {
            let tags =
                ep.registry.list_tags(&repo).await.map_err(|e| {
                    InventoryError::read(format!("the tags of {}/{repo}", ep.host), e)
                })?;
            Ok::<_, InventoryError>((ep, repo, tags))
        })
        .buffered(concurrency)
        .collect()
        .await;
    let mut inventory = Inventory::default();
    let mut tag_refs = Vec::new();
    for l in listed {
        let (ep, repo, tags) = l?;
        let (evidence_tags, image_tags): (Vec<String>, Vec<String>) =
            tags.into_iter().partition(|t| is_evidence_tag(t));
        let managed = req.managed.contains(&(ep.name.clone(), repo.clone()));
        inventory.repositories.push(Repository {
            registry: ep.name.clone(),
            host: ep.host.clone(),
            repository: repo.clone(),
            managed,
            tags: image_tags.len(),
            evidence_tags,
        });
        tag_refs.extend(
            image_tags
                .into_iter()
                .map(|t| (ep.clone(), repo.clone(), t)),
        );
    }

    let heads: Vec<_> = stream::iter(tag_refs)
        .map(|(ep, repo, tag)| async move {
            let head = ep
                .registry
                .head_manifest(&repo, &tag)
                .await
                .map_err(|e| InventoryError::read(format!("{}/{repo}:{tag}", ep.host), e))?;
            Ok::<_, InventoryError>((ep, repo, tag, head))
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    // (registry, repository, digest) → tags; the endpoint by roster name.
    let mut by_digest: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    let mut endpoints: BTreeMap<String, Endpoint> = BTreeMap::new();
    for h in heads {
        let (ep, repo, tag, head) = h?;
        // A tag deleted between the list and the HEAD is simply gone.
        let Some(head) = head else { continue };
        by_digest
            .entry((ep.name.clone(), repo, head.digest))
            .or_default()
            .insert(tag);
        endpoints.entry(ep.name.clone()).or_insert(ep);
    }
    let managed_of: BTreeMap<(String, String), bool> = inventory
        .repositories
        .iter()
        .map(|r| ((r.registry.clone(), r.repository.clone()), r.managed))
        .collect();
    let sig_tags: BTreeSet<(String, String, String)> = inventory
        .repositories
        .iter()
        .flat_map(|r| {
            r.evidence_tags
                .iter()
                .filter(|t| t.ends_with(".sig"))
                .filter_map(|t| evidence_tag_subject(t))
                .map(|d| (r.registry.clone(), r.repository.clone(), d))
        })
        .collect();

    let images: Vec<_> = stream::iter(by_digest)
        .map(|((name, repo, digest), tags)| {
            let ep = endpoints[&name].clone();
            let managed = managed_of
                .get(&(name.clone(), repo.clone()))
                .copied()
                .unwrap_or(false);
            let has_sig_tag = sig_tags.contains(&(name, repo.clone(), digest.clone()));
            async move { read_image(req, ep, repo, digest, tags, managed, has_sig_tag).await }
        })
        .buffered(concurrency)
        .collect()
        .await;
    for i in images {
        if let Some(image) = i? {
            inventory.images.push(image);
        }
    }
    Ok(inventory)
}

async fn read_image(
    req: &ScanRequest<'_>,
    ep: Endpoint,
    repository: String,
    digest: String,
    tags: BTreeSet<String>,
    managed: bool,
    has_sig_tag: bool,
) -> Result<Option<Image>, InventoryError> {
    let what = format!("{}/{repository}@{digest}", ep.host);
    let Some(manifest) = manifest_by_digest(ep.registry.as_ref(), req.cache, &repository, &digest)
        .await
        .map_err(|e| InventoryError::read(what.clone(), e))?
    else {
        return Ok(None);
    };
    let annotations = stamp::manifest_annotations(&manifest).unwrap_or_default();
    let found = Stamp::detect(&annotations, req.label_prefix);
    let listed = ep
        .registry
        .referrer_details(&repository, &digest)
        .await
        .map_err(|e| InventoryError::read(format!("the referrers of {what}"), e))?;
    let listed = complete_listing(req, &ep, &repository, listed).await?;
    let mut evidence = Evidence::from_referrers(&listed, req.label_prefix);
    if has_sig_tag {
        evidence.signature_tag = true;
    }
    Ok(Some(Image {
        registry: ep.name.clone(),
        host: ep.host.clone(),
        media_type: stamp::manifest_media_type(&manifest, ""),
        repository,
        digest,
        tags: tags.into_iter().collect(),
        managed,
        stamp_prefix: found.as_ref().map(|(_, p)| p.clone()),
        stamp: found.map(|(s, _)| s),
        evidence,
        annotations,
        manifest,
    }))
}

/// Listings from some servers carry neither artifact types nor annotations: read those
/// referrer manifests (cache first) to learn them.
pub async fn complete_listing(
    req: &ScanRequest<'_>,
    ep: &Endpoint,
    repository: &str,
    listed: Vec<Referrer>,
) -> Result<Vec<Referrer>, InventoryError> {
    let mut out = Vec::with_capacity(listed.len());
    for mut r in listed {
        if r.artifact_type.is_none() {
            let d = &r.descriptor.digest;
            let bytes = manifest_by_digest(ep.registry.as_ref(), req.cache, repository, d)
                .await
                .map_err(|e| InventoryError::read(format!("{}/{repository}@{d}", ep.host), e))?;
            if let Some(value) = bytes
                .as_deref()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            {
                r.artifact_type = crate::registry::manifest::artifact_type(&value);
                if r.annotations.is_empty() {
                    r.annotations = crate::registry::manifest::annotations(&value);
                }
            }
        }
        out.push(r);
    }
    Ok(out)
}

/// Requests made by these endpoints so far, per host.
pub fn request_stats(endpoints: &[Endpoint]) -> BTreeMap<String, RequestStats> {
    endpoints
        .iter()
        .map(|e| (e.host.clone(), e.registry.request_stats()))
        .collect()
}

/// A small blob's bytes (an image config, a signature payload), at most `limit` bytes: a
/// longer blob is an error rather than a memory hazard.
pub async fn read_small_blob(
    registry: &dyn Registry,
    repository: &str,
    digest: &str,
    limit: usize,
) -> Result<Vec<u8>, RegistryError> {
    let mut stream = registry.get_blob(repository, digest).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > limit {
            return Err(RegistryError::Protocol {
                registry: registry.display_name().to_string(),
                repository: repository.to_string(),
                reference: digest.to_string(),
                message: format!("blob larger than {limit} bytes; not read"),
            });
        }
    }
    Ok(out)
}
