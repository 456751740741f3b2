//! Prunes and bypass drift: tags in managed repositories that no desired artifact claims, and
//! orphans (houba-stamped tags in repositories no current policy claims).

use std::collections::{BTreeMap, BTreeSet};

use super::{DiffInput, DiffOutput, live_stamp};
use crate::live::LiveTag;
use crate::oci::is_evidence_tag;
use crate::plan::model::{
    Action, Address, Drift, Finding, Header, Location, Note, Operation, PruneMode, PruneReason,
};
use crate::policy::resolved::{Archive, DeletionMode};
use crate::stamp::Stamp;

/// A tag an import no longer selects, before `archive` decides whether it is pruned.
struct Dropped {
    location: Location,
    live: LiveTag,
    stamp: Stamp,
    mode: PruneMode,
}

/// Seconds since the epoch the content was created, from its stamp.
fn created(s: &Stamp) -> Option<u64> {
    s.created.as_deref().and_then(crate::oci::rfc3339_seconds)
}

/// Apply an import's `archive` to the tags it dropped: keep the `keep` most recent (by
/// creation time, then by version) and those younger than `olderThanDays`; prune the rest.
fn archive(
    mut dropped: Vec<Dropped>,
    archive: Option<&Archive>,
    now: u64,
    out: &mut DiffOutput,
) -> Vec<Dropped> {
    let Some(archive) = archive else {
        return dropped;
    };
    dropped.sort_by(|a, b| {
        created(&b.stamp).cmp(&created(&a.stamp)).then_with(|| {
            crate::select::parse_version(&b.location.tag)
                .cmp(&crate::select::parse_version(&a.location.tag))
        })
    });
    let keep = archive.keep.map_or(0, |k| k as usize);
    let young = |d: &Dropped| {
        archive.older_than_days.is_some_and(|days| {
            created(&d.stamp).is_some_and(|c| now.saturating_sub(c) < u64::from(days) * 86_400)
        })
    };
    let mut pruned = Vec::new();
    for (i, d) in dropped.into_iter().enumerate() {
        let why = if i < keep {
            Some(format!(
                "kept by archive.keep ({keep} most recent dropped tags)"
            ))
        } else if young(&d) {
            Some(format!(
                "kept by archive.olderThanDays ({}): created {}",
                archive.older_than_days.unwrap_or_default(),
                d.stamp.created.as_deref().unwrap_or_default()
            ))
        } else {
            None
        };
        match why {
            Some(message) => out.notes.push(Note {
                address: address_of(&d.stamp, &d.location),
                message: format!("no longer selected; {message}"),
            }),
            None => pruned.push(d),
        }
    }
    pruned
}

fn address_of(stamp: &Stamp, location: &Location) -> Address {
    Address::artifact(
        &stamp.policy,
        &stamp.import,
        &stamp.variant,
        &location.display,
        &location.repository,
        &location.tag,
    )
}

fn mode_of(d: DeletionMode) -> PruneMode {
    match d {
        DeletionMode::Purge => PruneMode::Delete,
        DeletionMode::Mark => PruneMode::Mark,
    }
}

fn prune(
    location: Location,
    live: &LiveTag,
    stamp: &Stamp,
    mode: PruneMode,
    reason: PruneReason,
) -> Action {
    Action {
        header: Header {
            address: address_of(stamp, &location),
            destination: location,
            before: Some(live.digest.clone()),
            after: None,
            evidence: Default::default(),
            depends_on: vec![],
        },
        operation: Operation::Prune { mode, reason },
    }
}

/// Plan prunes for stamped tags no longer desired, report unstamped and foreign tags of managed
/// repositories as drift, and plan orphans of unclaimed repositories as prunes.
pub(super) fn diff_prunes(input: &DiffInput<'_>, out: &mut DiffOutput) {
    let prefix = input.label_prefix;
    let desired: BTreeSet<(String, String, String)> = input
        .placements
        .iter()
        .map(|p| super::tag_key(&p.destination))
        .chain(input.aliases.iter().map(|a| super::tag_key(&a.destination)))
        .collect();
    let mut dropped: BTreeMap<(String, String), Vec<Dropped>> = BTreeMap::new();
    for repo in input.repositories {
        let key = (repo.registry.clone(), repo.repository.clone());
        let Some(tags) = input.live.destinations.get(&key) else {
            continue;
        };
        for (tag, live) in tags {
            if is_evidence_tag(tag)
                || desired.contains(&(key.0.clone(), key.1.clone(), tag.clone()))
            {
                continue;
            }
            let location = Location {
                registry: repo.registry.clone(),
                display: repo.display.clone(),
                repository: repo.repository.clone(),
                tag: tag.clone(),
            };
            let drift = |finding| Drift {
                address: None,
                location: location.clone(),
                digest: live.digest.clone(),
                finding,
            };
            match live_stamp(live, prefix) {
                None => out.drift.push(drift(Finding::Bypass)),
                Some((s, _)) if s.policy != repo.policy => {
                    out.drift.push(drift(Finding::ForeignInRepository {
                        stamped_by: s.policy.clone(),
                        owner: repo.policy.clone(),
                    }))
                }
                Some((s, _)) if s.pruned => {}
                Some((s, _)) => dropped
                    .entry((s.policy.clone(), s.import.clone()))
                    .or_default()
                    .push(Dropped {
                        location,
                        live: live.clone(),
                        stamp: s,
                        mode: mode_of(repo.deletion_mode),
                    }),
            }
        }
    }
    for (key, tags) in dropped {
        for d in archive(tags, input.archives.get(&key), input.now, out) {
            out.actions.push(prune(
                d.location,
                &d.live,
                &d.stamp,
                d.mode,
                PruneReason::NoLongerSelected,
            ));
        }
    }
    for repo in input.unclaimed {
        let key = (repo.registry.clone(), repo.repository.clone());
        let Some(tags) = input.live.destinations.get(&key) else {
            continue;
        };
        for (tag, live) in tags {
            if is_evidence_tag(tag) {
                continue;
            }
            // Only what houba stamped is ever touched; an unstamped tag here is not ours.
            let Some((s, _)) = live_stamp(live, prefix) else {
                continue;
            };
            if s.pruned {
                continue;
            }
            let mode = input
                .deletion_modes
                .get(&s.policy)
                .map_or(PruneMode::Mark, |d| mode_of(*d));
            let location = Location {
                registry: repo.registry.clone(),
                display: repo.display.clone(),
                repository: repo.repository.clone(),
                tag: tag.clone(),
            };
            out.actions
                .push(prune(location, live, &s, mode, PruneReason::Orphaned));
        }
    }
}
