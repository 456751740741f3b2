//! Aliases: a moving tag is re-pointed only when it must point elsewhere.

use std::collections::BTreeMap;

use super::placement::Outcome;
use super::{DesiredPlacement, DiffInput, DiffOutput};
use crate::plan::model::{Action, Address, AliasReason, Drift, Finding, Header, Operation};

/// Decide every alias from its target placement's outcome and what the alias tag holds.
pub(super) fn diff_aliases(
    input: &DiffInput<'_>,
    outcomes: &BTreeMap<Address, Outcome>,
    out: &mut DiffOutput,
) {
    let placements: BTreeMap<&Address, &DesiredPlacement> =
        input.placements.iter().map(|p| (&p.address, p)).collect();
    for al in input.aliases {
        let Some(target) = placements.get(&al.target) else {
            continue;
        };
        let outcome = outcomes.get(&al.target).cloned().unwrap_or_default();
        if !outcome.changes && outcome.after.is_none() {
            // The target is not (and will not be) placed: nothing to point at yet.
            continue;
        }
        let tags = super::repo_tags(input.live, &al.destination);
        let live = tags.and_then(|t| t.get(&al.destination.tag));
        if let Some(l) = live
            && !outcome.changes
            && Some(&l.digest) == outcome.after.as_ref()
        {
            continue;
        }
        // The desired placement of this repository whose tag holds what the alias holds now.
        let placed_tag = live.and_then(|l| {
            input
                .placements
                .iter()
                .filter(|p| super::repo_key(&p.destination) == super::repo_key(&al.destination))
                .find(|p| {
                    outcomes
                        .get(&p.address)
                        .is_some_and(|o| o.live.as_ref() == Some(&l.digest))
                })
                .map(|p| p.destination.tag.clone())
        });
        // Any other tag holding it (a member that left the selection, about to be pruned).
        let other_tag = live.and_then(|l| {
            tags.into_iter()
                .flatten()
                .find(|(t, lt)| *t != &al.destination.tag && lt.digest == l.digest)
                .map(|(t, _)| t.clone())
        });
        let reason = match live {
            None => AliasReason::Absent,
            Some(l) if outcome.changes && outcome.live.as_ref() == Some(&l.digest) => {
                AliasReason::TargetChanged
            }
            Some(_) if outcome.live.is_none() => AliasReason::NewHighest,
            Some(_) if placed_tag.is_none() && other_tag.is_some() => AliasReason::NewHighest,
            Some(l) => {
                out.drift.push(Drift {
                    address: Some(al.address.clone()),
                    location: al.destination.clone(),
                    digest: l.digest.clone(),
                    finding: Finding::AliasMoved {
                        expected_tag: target.destination.tag.clone(),
                        found_tag: placed_tag.clone(),
                    },
                });
                AliasReason::MovedOutside
            }
        };
        out.actions.push(Action {
            header: Header {
                address: al.address.clone(),
                destination: al.destination.clone(),
                before: live.map(|t| t.digest.clone()),
                after: outcome.after.clone(),
                depends_on: if outcome.changes {
                    vec![al.target.clone()]
                } else {
                    vec![]
                },
                evidence: Default::default(),
            },
            operation: Operation::Alias {
                target: al.target.clone(),
                target_tag: target.destination.tag.clone(),
                target_digest: outcome.after.clone(),
                current_tag: placed_tag.or(other_tag),
                reason,
            },
        });
    }
}
