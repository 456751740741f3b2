//! The evidence part of planning: which placed digests lack evidence (from the evidence cache,
//! else one referrers listing each), and how many upstream referrers travel with new content.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Settings;
use crate::evidence::collect::EvidenceCache;
use crate::evidence::observe::{self, Placed};
use crate::evidence::placement::Wanted;
use crate::evidence::sbom::SbomFormat;
use crate::evidence::upstream;
use crate::graph::UpstreamTags;
use crate::live::{EvidenceGap, LiveState, TagKey};
use crate::observe::Registries;
use crate::plan::diff::DesiredPlacement;
use crate::plan::model::{Action, EvidencePlan, Operation};
use crate::registry::{Descriptor, Registry};
use crate::stamp::{self, Stamp};

use super::PlanError;

/// The formats `[sbom]` names, in their fixed order.
pub fn formats(settings: &Settings) -> Vec<SbomFormat> {
    settings
        .sbom
        .formats
        .iter()
        .filter_map(|f| SbomFormat::parse(f))
        .collect()
}

/// What every placed digest must carry, by the configuration.
pub fn wanted(settings: &Settings) -> Wanted {
    Wanted {
        formats: formats(settings),
        signature: settings.signing.is_some(),
    }
}

/// The evidence new content gets, as the plan shows it.
pub fn wanted_plan(settings: &Settings) -> EvidencePlan {
    EvidencePlan {
        sbom: formats(settings)
            .iter()
            .map(|f| f.name().to_owned())
            .collect(),
        signature: settings.signing.is_some(),
        upstream: 0,
    }
}

/// Gaps in the evidence of content houba placed for the desired placements.
pub async fn observe_placed(
    registries: &Registries,
    cache: &EvidenceCache,
    placements: &[DesiredPlacement],
    live: &LiveState,
    settings: &Settings,
    deep: bool,
) -> Result<BTreeMap<TagKey, EvidenceGap>, PlanError> {
    let mut connected: Vec<(usize, Arc<dyn Registry>)> = Vec::new();
    for (i, p) in placements.iter().enumerate() {
        let Some(tag) = live
            .destinations
            .get(&(
                p.destination.registry.clone(),
                p.destination.repository.clone(),
            ))
            .and_then(|tags| tags.get(&p.destination.tag))
        else {
            continue;
        };
        // Only content houba placed for this very artifact: anything else is replaced anyway.
        let ours = stamp::manifest_annotations(&tag.manifest)
            .ok()
            .and_then(|a| Stamp::detect(&a, &settings.label_prefix))
            .is_some_and(|(s, _)| {
                s.policy == p.policy && s.import == p.import && s.variant == p.variant
            });
        if !ours {
            continue;
        }
        let registry = registries.destination(&p.destination.registry)?;
        connected.push((i, registry));
    }
    let mut placed = Vec::new();
    for (i, registry) in &connected {
        let p = &placements[*i];
        let tag = &live.destinations[&(
            p.destination.registry.clone(),
            p.destination.repository.clone(),
        )][&p.destination.tag];
        placed.push(Placed {
            registry_key: &p.destination.registry,
            registry: registry.as_ref(),
            repository: &p.destination.repository,
            top: Descriptor {
                media_type: tag.media_type.clone(),
                digest: tag.digest.clone(),
                size: tag.manifest.len() as u64,
            },
            manifest: &tag.manifest,
        });
    }
    observe::observe(&placed, cache, &wanted(settings), deep)
        .await
        .map_err(|e| PlanError::Evidence(Box::new(e)))
}

/// Counts, for each new content, the upstream referrers and cosign tags that travel with it:
/// at most one referrers listing per planned placement (cosign tags come from the tag list, and
/// so does the fallback index of a registry without the referrers API). The first listing of
/// each registry runs alone, so the rest know whether the registry has the API.
pub async fn count_upstream(
    registries: &Registries,
    upstream_tags: &UpstreamTags,
    actions: &mut [Action],
) -> Result<(), PlanError> {
    use futures::StreamExt;
    let mut work = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        let (Operation::Place(place) | Operation::Replace { place, .. }) = &action.operation else {
            continue;
        };
        let location = place.source.location.clone();
        let source = registries.source(&location.registry)?;
        work.push((i, location, place.source.digest.clone(), source));
    }
    let count = |(i, location, digest, source): (
        usize,
        crate::plan::model::Location,
        String,
        Arc<dyn Registry>,
    )| async move {
        let tags = upstream_tags.get(&location.registry, &location.repository);
        let found = upstream::discover(source.as_ref(), &location.repository, &digest, tags)
            .await
            .map_err(|error| PlanError::UpstreamReferrers {
                location: location.to_string(),
                error: Box::new(error),
            })?;
        Ok::<_, PlanError>((i, found.count()))
    };
    let mut probed = std::collections::BTreeSet::new();
    let (first, rest): (Vec<_>, Vec<_>) = work
        .into_iter()
        .partition(|(_, location, _, _)| probed.insert(location.registry.clone()));
    let mut counts = Vec::new();
    for item in first {
        counts.push(count(item).await?);
    }
    let mut listings = futures::stream::iter(rest.into_iter().map(count)).buffer_unordered(32);
    while let Some(result) = listings.next().await {
        counts.push(result?);
    }
    for (i, n) in counts {
        actions[i].header.evidence.upstream = n;
    }
    Ok(())
}
