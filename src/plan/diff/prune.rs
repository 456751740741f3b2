//! Prunes and bypass drift: tags in managed repositories that no desired artifact claims, and
//! orphans (houba-stamped tags in repositories no current policy claims).

use std::collections::BTreeSet;

use super::{DiffInput, DiffOutput, live_stamp};
use crate::live::LiveTag;
use crate::oci::is_evidence_tag;
use crate::plan::model::{
    Action, Address, Drift, Finding, Header, Location, Operation, PruneMode, PruneReason,
};
use crate::policy::resolved::DeletionMode;

fn mode_of(d: DeletionMode) -> PruneMode {
    match d {
        DeletionMode::Purge => PruneMode::Delete,
        DeletionMode::Mark => PruneMode::Mark,
    }
}

fn prune(
    location: Location,
    live: &LiveTag,
    stamp: &crate::stamp::Stamp,
    mode: PruneMode,
    reason: PruneReason,
) -> Action {
    Action {
        header: Header {
            address: Address::artifact(
                &stamp.policy,
                &stamp.import,
                &stamp.variant,
                &location.display,
                &location.repository,
                &location.tag,
            ),
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
                Some((s, _)) => out.actions.push(prune(
                    location,
                    live,
                    &s,
                    mode_of(repo.deletion_mode),
                    PruneReason::NoLongerSelected,
                )),
            }
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
