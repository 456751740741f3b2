//! Observing the upstream tags a plan needs, leaving out those not due for a check
//! (`tags.recheck`): the decision is `plan::recheck`'s, the records are `observe::recheck`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::graph::{DesiredGraph, Placement};
use crate::live::{LiveTag, RepositoryKey, SourceObservation, TagKey};
use crate::observe::recheck::UpstreamChecks;
use crate::observe::{self, ManifestCache, ObserveError};
use crate::plan::recheck;
use crate::registry::Registries;

/// What upstream holds, as far as this run needs to know.
pub(super) struct Upstream {
    /// Every selected upstream tag still present: observed now, or as last recorded.
    pub observations: BTreeMap<TagKey, SourceObservation>,
    /// Upstream tags left unchecked, per upstream registry.
    pub skipped: BTreeMap<String, u64>,
}

fn source_key(p: &Placement) -> TagKey {
    (
        p.source.registry.clone(),
        p.source.repository.clone(),
        p.source.tag.clone(),
    )
}

/// The upstream tags every run checks (some placement made from them rechecks `always`):
/// they need nothing from the destinations, so they are observed while the destinations are.
pub(super) fn always_due(graph: &DesiredGraph) -> BTreeSet<TagKey> {
    graph
        .placements()
        .filter(|p| p.recheck.is_always())
        .map(source_key)
        .collect()
}

/// HEAD every selected upstream tag that is due for a check and not in `early` (the
/// [`always_due`] tags, observed already); take the others from the record of their last
/// check and the manifest cache. Records this run's checks.
#[allow(clippy::too_many_arguments)]
pub(super) async fn observe_upstream(
    registries: &Registries,
    cache: &ManifestCache,
    graph: &DesiredGraph,
    destinations: &BTreeMap<RepositoryKey, BTreeMap<String, LiveTag>>,
    early: BTreeMap<TagKey, SourceObservation>,
    concurrency: usize,
    now: SystemTime,
    label_prefix: &str,
) -> Result<Upstream, ObserveError> {
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sources: BTreeSet<TagKey> = graph.placements().map(source_key).collect();
    let recorded: BTreeSet<TagKey> = graph
        .placements()
        .filter(|p| !p.recheck.is_always())
        .map(source_key)
        .collect();
    let repositories: BTreeSet<(String, String)> = recorded
        .iter()
        .map(|(registry, repository, _)| (registry.clone(), repository.clone()))
        .collect();
    let records = UpstreamChecks::new(cache.dir());
    let checks = records.load(&repositories);
    let mut observations = BTreeMap::new();
    for (key, digest) in recheck::not_due(
        graph.placements(),
        destinations,
        &checks,
        now_secs,
        label_prefix,
    ) {
        if let Some(seen) = observe::cached_source(cache, &digest, now) {
            observations.insert(key, seen);
        }
    }
    let skipped = recheck::count_by_registry(observations.keys());
    let early_keys = always_due(graph);
    let due: BTreeSet<TagKey> = sources
        .into_iter()
        .filter(|k| !observations.contains_key(k) && !early_keys.contains(k))
        .collect();
    let mut observed = observe::observe_sources(registries, cache, &due, concurrency, now).await?;
    observed.extend(early);
    let checked: BTreeMap<TagKey, Option<String>> = due
        .iter()
        .chain(&early_keys)
        .filter(|k| recorded.contains(*k))
        .map(|k| (k.clone(), observed.get(k).map(|o| o.digest.clone())))
        .collect();
    records.save(&recorded, &checked, now_secs);
    observations.extend(observed);
    Ok(Upstream {
        observations,
        skipped,
    })
}
