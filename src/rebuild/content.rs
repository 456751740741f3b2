//! `houba plan --show-content`: reads the base layers of each planned rebuild (only the paths
//! its steps look at) and lets the build engine list what the steps change. Nothing is
//! written anywhere.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::{RegistryBlobs, is_index};
use crate::build::TransformRosters;
use crate::build::content::{self, ContentChanges};
use crate::observe::{ManifestCache, Registries};
use crate::plan::model::{Build, Content, Operation, Place, Plan};
use crate::registry::Registry;

/// One planned rebuild and what it changes inside the image, per group of platforms whose
/// changes are identical (or why that could not be read).
pub struct RebuildContent {
    /// The placement's address.
    pub address: String,
    /// Its transform step names, in order.
    pub steps: Vec<String>,
    /// What it changes, or why that could not be read.
    pub content: Result<Vec<ContentChanges>, String>,
}

/// What each rebuild of `plan` (a placement with transform steps) changes inside the image.
/// Platform-only rebuilds change no file and are left out.
pub async fn rebuild_contents(
    plan: &Plan,
    registries: &Registries,
    cache: &ManifestCache,
    rosters: &TransformRosters,
) -> Vec<RebuildContent> {
    let mut out = Vec::new();
    for a in &plan.actions {
        let place = match &a.operation {
            Operation::Place(place) | Operation::Replace { place, .. } => place,
            _ => continue,
        };
        let Content::Build(build) = &place.content else {
            continue;
        };
        if build.steps.is_empty() {
            continue;
        }
        let content = match registries.source(&place.source.location.registry) {
            Ok(registry) => read_content(registry, place, build, cache, rosters).await,
            Err(e) => Err(e.to_string()),
        };
        out.push(RebuildContent {
            address: a.address().to_string(),
            steps: build.step_names(),
            content,
        });
    }
    out
}

async fn read_content(
    registry: Arc<dyn Registry>,
    place: &Place,
    build: &Build,
    cache: &ManifestCache,
    rosters: &TransformRosters,
) -> Result<Vec<ContentChanges>, String> {
    let label = place.source.location.to_string();
    let repository = &place.source.location.repository;
    let digest = &place.source.digest;
    let manifest = match cache.get(digest) {
        Some(bytes) => bytes,
        None => {
            let (_, bytes) = registry
                .get_manifest(repository, digest)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{label}: upstream manifest {digest} is gone"))?;
            cache.put(digest, &bytes);
            bytes
        }
    };
    let media_type = stamp_media_type(&manifest, Some(place.source.media_type.as_str()));
    let manifests: BTreeSet<String> = if is_index(&media_type) {
        serde_json::from_slice::<Value>(&manifest)
            .ok()
            .and_then(|v| {
                v.get("manifests").and_then(Value::as_array).map(|list| {
                    list.iter()
                        .filter_map(|m| m.get("digest").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
            })
            .unwrap_or_default()
    } else {
        BTreeSet::new()
    };
    let blobs = RegistryBlobs {
        handle: tokio::runtime::Handle::current(),
        registry,
        repository: repository.to_string(),
        manifests,
    };
    let steps = build.steps.clone();
    let platforms = build.platforms.clone();
    let rosters = rosters.clone();
    tokio::task::spawn_blocking(move || {
        content::content_changes(&label, &manifest, &blobs, &steps, &platforms, &rosters)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("reading the base layers stopped: {e}"))?
}

fn stamp_media_type(manifest: &[u8], observed: Option<&str>) -> String {
    crate::stamp::manifest_media_type(manifest, observed.unwrap_or_default())
}
