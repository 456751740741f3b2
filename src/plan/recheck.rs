//! Which upstream tags a run may leave unchecked (`tags.recheck`). Pure: the records of past
//! checks, the live destination tags and "now" come in as inputs.
//!
//! An upstream tag is left unchecked only when every placement made from it agrees:
//!
//! - its import's rule is not `always`, and the last recorded check is not due yet;
//! - its destination tag holds content stamped for that placement (policy, import, variant)
//!   from the digest the last check saw: the tag is placed and was up to date then;
//! - a pin, if any, names that same digest.
//!
//! Anything else (no record, an absent or foreign destination tag, an upstream move seen but
//! not yet applied) makes the tag due, so an empty cache checks everything.

use std::collections::BTreeMap;

use crate::graph::Placement;
use crate::live::{LiveTag, RepositoryKey, TagKey, UpstreamCheck};
use crate::stamp::{self, Stamp};

/// The upstream tags not due for a check, each with the digest recorded at its last check
/// (what the diff plans against in place of a fresh HEAD).
pub fn not_due<'a>(
    placements: impl IntoIterator<Item = &'a Placement>,
    destinations: &BTreeMap<RepositoryKey, BTreeMap<String, LiveTag>>,
    checks: &BTreeMap<TagKey, UpstreamCheck>,
    now: u64,
    label_prefix: &str,
) -> BTreeMap<TagKey, String> {
    // Per upstream tag: whether every placement made from it may skip the check.
    let mut verdicts: BTreeMap<TagKey, bool> = BTreeMap::new();
    for p in placements {
        let key = (
            p.source.registry.clone(),
            p.source.repository.clone(),
            p.source.tag.clone(),
        );
        let skip = checks
            .get(&key)
            .is_some_and(|check| may_skip(p, check, destinations, now, label_prefix));
        verdicts
            .entry(key)
            .and_modify(|all| *all &= skip)
            .or_insert(skip);
    }
    verdicts
        .into_iter()
        .filter(|(_, skip)| *skip)
        .filter_map(|(key, _)| {
            let digest = checks.get(&key)?.digest.clone();
            Some((key, digest))
        })
        .collect()
}

fn may_skip(
    p: &Placement,
    check: &UpstreamCheck,
    destinations: &BTreeMap<RepositoryKey, BTreeMap<String, LiveTag>>,
    now: u64,
    label_prefix: &str,
) -> bool {
    if p.recheck.due(check.checked, now) {
        return false;
    }
    if p.pin.as_ref().is_some_and(|pin| *pin != check.digest) {
        return false;
    }
    let Some(live) = destinations
        .get(&(
            p.destination.registry.clone(),
            p.destination.repository.clone(),
        ))
        .and_then(|tags| tags.get(&p.tag))
    else {
        return false;
    };
    let Some((found, _)) = stamp::manifest_annotations(&live.manifest)
        .ok()
        .and_then(|a| Stamp::detect(&a, label_prefix))
    else {
        return false;
    };
    (found.policy.as_str(), found.import.as_str(), found.variant.as_str())
        == (p.policy.as_str(), p.import.as_str(), p.variant.as_str())
        && found.base_digest == check.digest
}

/// Upstream tags skipped, per upstream registry.
pub fn count_by_registry<'a>(skipped: impl IntoIterator<Item = &'a TagKey>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (registry, _, _) in skipped {
        *out.entry(registry.clone()).or_insert(0) += 1;
    }
    out
}
