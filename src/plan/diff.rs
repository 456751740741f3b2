//! Diff: desired artifacts × live state → plan actions and drift. Pure.
//!
//! The live registries are the only state: every decision here is made from what the
//! destination tags hold and what their stamps say, compared with what the policies want.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;

use super::model::{Action, ActionKind, Change, Drift, DriftKind, Location, Note, PruneMode};
use crate::policy::resolved::{DeletionMode, TransformStep};
use crate::select::is_referrers_fallback_tag;
use crate::stamp::{self, Stamp};

/// Shown for a value only a rebuild can tell (Terraform's wording).
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// How a desired placement is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementKind {
    Copy,
    Build,
}

/// One desired tag holding content placed from an upstream tag.
#[derive(Debug, Clone)]
pub struct DesiredPlacement {
    pub address: String,
    pub policy: String,
    pub import: String,
    pub variant: String,
    pub destination: Location,
    pub source: Location,
    pub pin: Option<String>,
    pub kind: PlacementKind,
    /// Transform step names (builds).
    pub steps: Vec<String>,
    /// The steps themselves (builds).
    pub transform: Vec<TransformStep>,
    /// Platform filter (`os/arch[/variant]`); empty keeps every platform.
    pub platforms: Vec<String>,
    /// Recipe digest (builds), computed by the caller from the resolved steps and base digest.
    pub recipe: Option<String>,
    pub owners: Vec<String>,
    pub vendor: Option<String>,
    pub artifact_type: String,
    pub settle: Duration,
}

/// One desired moving tag pointing at a placement (same repository).
#[derive(Debug, Clone)]
pub struct DesiredAlias {
    pub address: String,
    pub destination: Location,
    /// Address of the placement it points at.
    pub target: String,
}

/// A repository houba manages, and who owns it (from the desired graph).
pub use crate::graph::ManagedRepository;

/// What an upstream tag held when observed.
#[derive(Debug, Clone)]
pub struct SourceObservation {
    pub digest: String,
    pub media_type: String,
    pub manifest: Bytes,
    /// Age of the upstream content, when it declares a creation time (for `settle`).
    pub age: Option<Duration>,
}

/// What a destination tag held when observed.
#[derive(Debug, Clone)]
pub struct LiveTag {
    pub digest: String,
    pub media_type: String,
    pub manifest: Bytes,
}

/// Everything observed in the registries, keyed by location.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    /// (registry, repository, tag) → observation. Absent: the tag vanished upstream.
    pub sources: BTreeMap<(String, String, String), SourceObservation>,
    /// (registry, repository) → tag → live content. A managed repository with no entry was not
    /// observed (an error); an empty map means it holds no tags.
    pub destinations: BTreeMap<(String, String), BTreeMap<String, LiveTag>>,
}

pub struct DiffInput<'a> {
    pub placements: &'a [DesiredPlacement],
    pub aliases: &'a [DesiredAlias],
    pub repositories: &'a [ManagedRepository],
    pub live: &'a LiveState,
    pub label_prefix: &'a str,
}

/// The stamp a placement's manifest must carry, given what upstream holds.
pub fn desired_stamp(p: &DesiredPlacement, src: &SourceObservation) -> Stamp {
    let upstream = stamp::manifest_annotations(&src.manifest).unwrap_or_default();
    let title = p
        .source
        .repository
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    Stamp {
        source: format!("{}/{}", p.source.display, p.source.repository),
        base_name: format!(
            "{}/{}:{}",
            p.source.display, p.source.repository, p.source.tag
        ),
        base_digest: src.digest.clone(),
        title,
        vendor: p.vendor.clone(),
        revision: upstream.get(stamp::OCI_REVISION).cloned(),
        created: upstream.get(stamp::OCI_CREATED).cloned(),
        policy: p.policy.clone(),
        import: p.import.clone(),
        variant: p.variant.clone(),
        owners: p.owners.clone(),
        artifact_type: p.artifact_type.clone(),
        transform_steps: p.steps.clone(),
        recipe: p.recipe.clone(),
        pruned: false,
    }
}

fn loc_key(l: &Location) -> (String, String) {
    (l.registry.clone(), l.repository.clone())
}

fn src_key(l: &Location) -> (String, String, String) {
    (l.registry.clone(), l.repository.clone(), l.tag.clone())
}

fn change(attribute: &str, before: Option<&str>, after: Option<&str>) -> Change {
    Change {
        attribute: attribute.to_string(),
        before: before.map(str::to_string),
        after: after.map(str::to_string),
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(86_400) && s > 0 {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3_600) && s > 0 {
        format!("{}h", s / 3_600)
    } else if s.is_multiple_of(60) && s > 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Compute the plan's drift, actions and notes. Requests and digests of inputs are filled in by
/// the caller.
pub fn diff(input: &DiffInput<'_>) -> (Vec<Drift>, Vec<Action>, Vec<Note>) {
    let prefix = input.label_prefix;
    let mut drift = Vec::new();
    let mut actions: Vec<Action> = Vec::new();
    let mut notes = Vec::new();
    let empty = BTreeMap::new();
    let repo_tags = |l: &Location| input.live.destinations.get(&loc_key(l)).unwrap_or(&empty);

    // Placement address → (digest the tag will hold after apply when known, has action).
    let mut placement_outcome: BTreeMap<&str, (Option<String>, bool)> = BTreeMap::new();

    for p in input.placements {
        let live = repo_tags(&p.destination).get(&p.destination.tag);
        let Some(src) = input.live.sources.get(&src_key(&p.source)) else {
            notes.push(Note {
                address: p.address.clone(),
                message: format!(
                    "upstream tag {} could not be observed; left as is",
                    p.source
                ),
            });
            placement_outcome.insert(&p.address, (live.map(|t| t.digest.clone()), false));
            continue;
        };
        if let Some(pin) = &p.pin
            && pin != &src.digest
        {
            notes.push(Note {
                address: p.address.clone(),
                message: format!(
                    "withheld: upstream {} is {} but the policy pins {}",
                    p.source, src.digest, pin
                ),
            });
            placement_outcome.insert(&p.address, (live.map(|t| t.digest.clone()), false));
            continue;
        }
        let want = desired_stamp(p, src);
        let annotations = want.to_annotations(prefix);
        let expected = match p.kind {
            PlacementKind::Copy => {
                match stamp::stamp_manifest(&src.manifest, &src.media_type, &annotations, prefix) {
                    Ok(m) => Some(m.digest),
                    Err(e) => {
                        notes.push(Note {
                            address: p.address.clone(),
                            message: format!(
                                "upstream manifest of {} cannot be stamped: {e}",
                                p.source
                            ),
                        });
                        placement_outcome
                            .insert(&p.address, (live.map(|t| t.digest.clone()), false));
                        continue;
                    }
                }
            }
            PlacementKind::Build => None,
        };
        let base_action = |kind: ActionKind, before: Option<&LiveTag>| Action {
            address: p.address.clone(),
            action: kind,
            destination: p.destination.clone(),
            source: Some(p.source.clone()),
            source_digest: Some(src.digest.clone()),
            source_media_type: Some(src.media_type.clone()),
            before: before.map(|t| t.digest.clone()),
            after: expected.clone(),
            reasons: vec![],
            changes: vec![],
            depends_on: vec![],
            alias_target: None,
            prune_mode: None,
            steps: p.steps.clone(),
            recipe: p.recipe.clone(),
            transform: p.transform.clone(),
            platforms: p.platforms.clone(),
            annotations: annotations.clone(),
        };
        let Some(live) = live else {
            let kind = match p.kind {
                PlacementKind::Copy => ActionKind::Copy,
                PlacementKind::Build => ActionKind::Build,
            };
            let mut a = base_action(kind, None);
            a.reasons
                .push("the tag is absent at the destination".into());
            a.changes
                .push(change("source", None, Some(&p.source.to_string())));
            a.changes
                .push(change("base.digest", None, Some(&src.digest)));
            if let Some(r) = &p.recipe {
                a.changes
                    .push(change("steps", None, Some(&p.steps.join(","))));
                a.changes.push(change("recipe", None, Some(r)));
            }
            if let Some(d) = &expected {
                a.changes.push(change("digest", None, Some(d)));
            }
            placement_outcome.insert(&p.address, (expected.clone(), true));
            actions.push(a);
            continue;
        };
        if Some(&live.digest) == expected.as_ref() {
            placement_outcome.insert(&p.address, (expected.clone(), false));
            continue;
        }
        let live_annotations = stamp::manifest_annotations(&live.manifest).unwrap_or_default();
        let found = Stamp::detect(&live_annotations, prefix);
        let replace = |reason: String, live_stamp: Option<&Stamp>| {
            let mut a = base_action(ActionKind::Replace, Some(live));
            a.reasons.push(reason);
            let before_base = live_stamp.map(|s| s.base_digest.as_str());
            if before_base != Some(src.digest.as_str()) {
                a.changes
                    .push(change("base.digest", before_base, Some(&src.digest)));
            }
            if p.recipe.is_some() && live_stamp.and_then(|s| s.recipe.as_ref()) != p.recipe.as_ref()
            {
                a.changes.push(change(
                    "recipe",
                    live_stamp.and_then(|s| s.recipe.as_deref()),
                    p.recipe.as_deref(),
                ));
            }
            a.changes.push(change(
                "digest",
                Some(&live.digest),
                Some(expected.as_deref().unwrap_or(KNOWN_AFTER_APPLY)),
            ));
            a
        };
        let Some((live_stamp, live_prefix)) = found else {
            drift.push(Drift {
                address: p.address.clone(),
                kind: DriftKind::Unstamped,
                location: p.destination.clone(),
                digest: live.digest.clone(),
                detail: "houba will put the desired content back".into(),
            });
            actions.push(replace(
                "the tag holds content houba did not place".into(),
                None,
            ));
            placement_outcome.insert(&p.address, (expected.clone(), true));
            continue;
        };
        if (
            live_stamp.policy.as_str(),
            live_stamp.import.as_str(),
            live_stamp.variant.as_str(),
        ) != (p.policy.as_str(), p.import.as_str(), p.variant.as_str())
        {
            drift.push(Drift {
                address: p.address.clone(),
                kind: DriftKind::Foreign,
                location: p.destination.clone(),
                digest: live.digest.clone(),
                detail: format!(
                    "stamped for {}/{}/{}; houba will put the desired content back",
                    live_stamp.policy, live_stamp.import, live_stamp.variant
                ),
            });
            actions.push(replace(
                "the tag holds content placed for another artifact".into(),
                Some(&live_stamp),
            ));
            placement_outcome.insert(&p.address, (expected.clone(), true));
            continue;
        }
        if live_stamp.base_digest != src.digest {
            if !p.settle.is_zero() {
                let settled = src.age.is_some_and(|age| age >= p.settle);
                if !settled {
                    notes.push(Note {
                        address: p.address.clone(),
                        message: match src.age {
                            Some(age) => format!(
                                "withheld: upstream {} moved to {} {} ago; it must be stable for {} (settle)",
                                p.source,
                                src.digest,
                                humanize(Duration::from_secs(age.as_secs())),
                                humanize(p.settle)
                            ),
                            None => format!(
                                "withheld: upstream {} moved to {} and declares no creation time, so its stability for {} (settle) cannot be shown; lower the import's settle to take it",
                                p.source,
                                src.digest,
                                humanize(p.settle)
                            ),
                        },
                    });
                    placement_outcome.insert(&p.address, (Some(live.digest.clone()), false));
                    continue;
                }
            }
            actions.push(replace(
                "the upstream digest moved".into(),
                Some(&live_stamp),
            ));
            placement_outcome.insert(&p.address, (expected.clone(), true));
            continue;
        }
        if p.kind == PlacementKind::Build && live_stamp.recipe != p.recipe {
            actions.push(replace(
                "the transform recipe changed".into(),
                Some(&live_stamp),
            ));
            placement_outcome.insert(&p.address, (expected.clone(), true));
            continue;
        }
        // Same upstream content. Either only the stamp differs (restamp), or the content no
        // longer matches what its own stamp claims (tampering): re-stamping the upstream bytes
        // with the live stamp must reproduce the live digest exactly.
        if p.kind == PlacementKind::Copy {
            let reproduced = stamp::stamp_manifest(
                &src.manifest,
                &src.media_type,
                &live_stamp.to_annotations(&live_prefix),
                &live_prefix,
            )
            .map(|m| m.digest)
            .ok();
            if reproduced.as_deref() != Some(live.digest.as_str()) {
                drift.push(Drift {
                    address: p.address.clone(),
                    kind: DriftKind::Tampered,
                    location: p.destination.clone(),
                    digest: live.digest.clone(),
                    detail: format!(
                        "its stamp claims {} but the content differs; houba will put the desired content back",
                        live_stamp.base_digest
                    ),
                });
                actions.push(replace(
                    "the content does not match its stamp".into(),
                    Some(&live_stamp),
                ));
                placement_outcome.insert(&p.address, (expected.clone(), true));
                continue;
            }
        }
        let mut changes: Vec<Change> = live_stamp
            .differences(&want)
            .into_iter()
            .map(|(k, b, a)| Change {
                attribute: k,
                before: Some(b),
                after: Some(a),
            })
            .collect();
        if live_prefix != prefix {
            changes.push(change("label.prefix", Some(&live_prefix), Some(prefix)));
        }
        if changes.is_empty() {
            placement_outcome.insert(&p.address, (Some(live.digest.clone()), false));
            continue;
        }
        let mut a = base_action(ActionKind::Restamp, Some(live));
        a.reasons
            .push("the content is unchanged; only the stamp differs".into());
        a.changes = changes;
        if let Some(d) = &expected {
            a.changes
                .push(change("digest", Some(&live.digest), Some(d)));
        }
        placement_outcome.insert(&p.address, (expected.clone(), true));
        actions.push(a);
    }

    // Aliases: only when the moving tag must point elsewhere.
    let placements_by_address: BTreeMap<&str, &DesiredPlacement> = input
        .placements
        .iter()
        .map(|p| (p.address.as_str(), p))
        .collect();
    for al in input.aliases {
        let Some(target) = placements_by_address.get(al.target.as_str()) else {
            continue;
        };
        let tags = repo_tags(&al.destination);
        let live = tags.get(&al.destination.tag);
        let (target_after, target_changes) = placement_outcome
            .get(al.target.as_str())
            .cloned()
            .unwrap_or((None, false));
        if !target_changes && target_after.is_none() {
            // The target is not (and will not be) placed: nothing to point at yet.
            continue;
        }
        if let (Some(l), false) = (live, target_changes)
            && Some(&l.digest) == target_after.as_ref()
        {
            continue;
        }
        let mut a = Action {
            address: al.address.clone(),
            action: ActionKind::Alias,
            destination: al.destination.clone(),
            source: None,
            source_digest: None,
            source_media_type: None,
            before: live.map(|t| t.digest.clone()),
            after: target_after.clone(),
            reasons: vec![],
            changes: vec![change("target", None, Some(&target.destination.tag))],
            depends_on: if target_changes {
                vec![al.target.clone()]
            } else {
                vec![]
            },
            alias_target: Some(al.target.clone()),
            prune_mode: None,
            steps: vec![],
            recipe: None,
            transform: vec![],
            platforms: vec![],
            annotations: BTreeMap::new(),
        };
        match live {
            None => a
                .reasons
                .push("the alias is absent at the destination".into()),
            Some(l) => {
                let points_at_placement = tags.iter().any(|(t, lt)| {
                    t != &al.destination.tag
                        && lt.digest == l.digest
                        && input.placements.iter().any(|p| {
                            p.destination.tag == *t
                                && loc_key(&p.destination) == loc_key(&al.destination)
                        })
                });
                if points_at_placement {
                    a.reasons.push(format!(
                        "the alias must move to the highest member, {}",
                        target.destination.tag
                    ));
                } else if target_changes && target_after.is_none() {
                    a.reasons.push(format!(
                        "its target {} gets new content",
                        target.destination.tag
                    ));
                } else {
                    drift.push(Drift {
                        address: al.address.clone(),
                        kind: DriftKind::AliasMoved,
                        location: al.destination.clone(),
                        digest: l.digest.clone(),
                        detail: format!(
                            "it should point at {}; houba will point it back",
                            target.destination.tag
                        ),
                    });
                    a.reasons.push("the alias was moved outside houba".into());
                }
                a.changes[0].before = Some(l.digest.clone());
            }
        }
        if let Some(after) = &target_after {
            a.changes.push(change(
                "digest",
                live.map(|t| t.digest.as_str()),
                Some(after),
            ));
        }
        actions.push(a);
    }

    // Prunes and bypass drift, per managed repository.
    let desired_tags: BTreeSet<(String, String, String)> = input
        .placements
        .iter()
        .map(|p| src_key(&p.destination))
        .chain(input.aliases.iter().map(|a| src_key(&a.destination)))
        .collect();
    for repo in input.repositories {
        let key = (repo.registry.clone(), repo.repository.clone());
        let Some(tags) = input.live.destinations.get(&key) else {
            continue;
        };
        for (tag, live) in tags {
            if is_referrers_fallback_tag(tag)
                || desired_tags.contains(&(
                    repo.registry.clone(),
                    repo.repository.clone(),
                    tag.clone(),
                ))
            {
                continue;
            }
            let location = Location {
                registry: repo.registry.clone(),
                display: repo.display.clone(),
                repository: repo.repository.clone(),
                tag: tag.clone(),
            };
            let annotations = stamp::manifest_annotations(&live.manifest).unwrap_or_default();
            match Stamp::detect(&annotations, prefix) {
                None => drift.push(Drift {
                    address: location.to_string(),
                    kind: DriftKind::Bypass,
                    location,
                    digest: live.digest.clone(),
                    detail: "an unstamped tag in a repository houba manages; houba never prunes it"
                        .into(),
                }),
                Some((s, _)) if s.policy != repo.policy => drift.push(Drift {
                    address: location.to_string(),
                    kind: DriftKind::Foreign,
                    location,
                    digest: live.digest.clone(),
                    detail: format!(
                        "stamped by policy {} but the repository belongs to {}",
                        s.policy, repo.policy
                    ),
                }),
                Some((s, _)) if s.pruned => {}
                Some((s, _)) => {
                    let mode = match repo.deletion_mode {
                        DeletionMode::Purge => PruneMode::Delete,
                        DeletionMode::Mark => PruneMode::Mark,
                    };
                    actions.push(Action {
                        address: format!("{}/{}/{}[{location}]", s.policy, s.import, s.variant),
                        action: ActionKind::Prune,
                        destination: location,
                        source: None,
                        source_digest: None,
                        source_media_type: None,
                        before: Some(live.digest.clone()),
                        after: None,
                        reasons: vec![format!(
                            "no longer selected by {}/{} ({})",
                            s.policy,
                            s.import,
                            match mode {
                                PruneMode::Delete => "deletionMode purge: the tag is deleted",
                                PruneMode::Mark =>
                                    "deletionMode mark: the tag is kept and marked pruned",
                            }
                        )],
                        changes: vec![change("digest", Some(&live.digest), None)],
                        depends_on: vec![],
                        alias_target: None,
                        prune_mode: Some(mode),
                        steps: vec![],
                        recipe: None,
                        transform: vec![],
                        platforms: vec![],
                        annotations: BTreeMap::new(),
                    });
                }
            }
        }
    }
    drift.sort_by(|a, b| a.address.cmp(&b.address));
    notes.sort_by(|a, b| a.address.cmp(&b.address));
    actions.sort_by(|a, b| (a.action.phase(), &a.address).cmp(&(b.action.phase(), &b.address)));
    (drift, actions, notes)
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
