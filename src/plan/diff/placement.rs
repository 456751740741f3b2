//! Placements: copy, build, replace or restamp one desired tag, or leave it as it is.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{DesiredPlacement, DiffInput, DiffOutput, PlacementKind, desired_stamp, live_stamp};
use crate::live::{LiveTag, SourceObservation};
use crate::plan::model::{
    Action, Address, Build, Content, Drift, Finding, Header, Note, Operation, Place, PriorStamp,
    ReplaceReason, Source, StampChange,
};
use crate::stamp::{self, Stamp};

/// What a placement's tag will hold once the plan is applied, for the aliases pointing at it.
#[derive(Debug, Clone, Default)]
pub(super) struct Outcome {
    /// The digest after apply, when known (`None` for a rebuild, or nothing placed).
    pub after: Option<String>,
    /// Whether the plan changes the tag.
    pub changes: bool,
    /// What the tag holds now.
    pub live: Option<String>,
}

/// Humane duration: `2h`, `1d`, `90s`.
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

/// Decide every placement; returns each placement's outcome by address.
pub(super) fn diff_placements(
    input: &DiffInput<'_>,
    out: &mut DiffOutput,
) -> BTreeMap<Address, Outcome> {
    let mut outcomes = BTreeMap::new();
    for p in input.placements {
        let live =
            super::repo_tags(input.live, &p.destination).and_then(|t| t.get(&p.destination.tag));
        let outcome = diff_one(input, p, live, out);
        outcomes.insert(
            p.address.clone(),
            Outcome {
                live: live.map(|t| t.digest.clone()),
                ..outcome
            },
        );
    }
    outcomes
}

fn note(out: &mut DiffOutput, p: &DesiredPlacement, message: String) {
    out.notes.push(Note {
        address: p.address.clone(),
        message,
    });
}

fn unchanged(live: Option<&LiveTag>) -> Outcome {
    Outcome {
        after: live.map(|t| t.digest.clone()),
        changes: false,
        live: None,
    }
}

fn diff_one(
    input: &DiffInput<'_>,
    p: &DesiredPlacement,
    live: Option<&LiveTag>,
    out: &mut DiffOutput,
) -> Outcome {
    let prefix = input.label_prefix;
    let Some(src) = input.live.sources.get(&super::tag_key(&p.source)) else {
        note(
            out,
            p,
            format!(
                "upstream tag {} could not be observed; left as is",
                p.source
            ),
        );
        return unchanged(live);
    };
    if let Some(pin) = &p.pin
        && pin != &src.digest
    {
        note(
            out,
            p,
            format!(
                "withheld: upstream {} is {} but the policy pins {}",
                p.source, src.digest, pin
            ),
        );
        return unchanged(live);
    }
    let want = desired_stamp(p, src);
    let annotations = want.to_annotations(prefix);
    let expected = match p.kind {
        PlacementKind::Copy => {
            match stamp::stamp_manifest(&src.manifest, &src.media_type, &annotations, prefix) {
                Ok(m) => Some(m.digest),
                Err(e) => {
                    note(
                        out,
                        p,
                        format!("upstream manifest of {} cannot be stamped: {e}", p.source),
                    );
                    return unchanged(live);
                }
            }
        }
        PlacementKind::Build => None,
    };
    let place = Place {
        source: source_of(p, src),
        content: match (&p.kind, &p.recipe) {
            (PlacementKind::Build, Some(recipe)) => Content::Build(Build {
                recipe: recipe.clone(),
                steps: p.transform.clone(),
                platforms: p.platforms.clone(),
            }),
            _ => Content::Copy,
        },
        annotations: annotations.clone(),
    };
    let header = |before: Option<&LiveTag>| Header {
        address: p.address.clone(),
        destination: p.destination.clone(),
        before: before.map(|t| t.digest.clone()),
        after: expected.clone(),
        depends_on: vec![],
        // New content: it has none of its evidence yet.
        evidence: input.evidence.clone(),
    };
    let changed = Outcome {
        after: expected.clone(),
        changes: true,
        live: None,
    };
    let Some(live) = live else {
        out.actions.push(Action {
            header: header(None),
            operation: Operation::Place(place),
        });
        return changed;
    };
    if Some(&live.digest) == expected.as_ref() {
        return unchanged(Some(live));
    }
    let replace = |reason: ReplaceReason, prior: Option<&Stamp>| Action {
        header: header(Some(live)),
        operation: Operation::Replace {
            place: place.clone(),
            reason,
            prior: prior.map(|s| PriorStamp {
                base_digest: s.base_digest.clone(),
                recipe: s.recipe.clone(),
            }),
        },
    };
    let drift = |finding: Finding| Drift {
        address: Some(p.address.clone()),
        location: p.destination.clone(),
        digest: live.digest.clone(),
        finding,
    };
    let Some((found, live_prefix)) = live_stamp(live, prefix) else {
        out.drift.push(drift(Finding::Unstamped));
        out.actions.push(replace(ReplaceReason::Unstamped, None));
        return changed;
    };
    if (
        found.policy.as_str(),
        found.import.as_str(),
        found.variant.as_str(),
    ) != (p.policy.as_str(), p.import.as_str(), p.variant.as_str())
    {
        out.drift.push(drift(Finding::Foreign {
            stamped_for: format!("{}/{}/{}", found.policy, found.import, found.variant),
        }));
        out.actions
            .push(replace(ReplaceReason::Foreign, Some(&found)));
        return changed;
    }
    if found.base_digest != src.digest {
        if !p.settle.is_zero() && src.age.is_none_or(|age| age < p.settle) {
            note(out, p, withheld_by_settle(p, src));
            return unchanged(Some(live));
        }
        out.actions
            .push(replace(ReplaceReason::UpstreamMoved, Some(&found)));
        return changed;
    }
    if p.kind == PlacementKind::Build && found.recipe != p.recipe {
        out.actions
            .push(replace(ReplaceReason::RecipeChanged, Some(&found)));
        return changed;
    }
    // Same upstream content. Either only the stamp differs (restamp), or the content no
    // longer matches what its own stamp claims (tampering): re-stamping the upstream bytes
    // with the live stamp must reproduce the live digest exactly.
    if p.kind == PlacementKind::Copy {
        let reproduced = stamp::stamp_manifest(
            &src.manifest,
            &src.media_type,
            &found.to_annotations(&live_prefix),
            &live_prefix,
        )
        .map(|m| m.digest)
        .ok();
        if reproduced.as_deref() != Some(live.digest.as_str()) {
            out.drift.push(drift(Finding::Tampered {
                claimed_base: found.base_digest.clone(),
            }));
            out.actions
                .push(replace(ReplaceReason::Tampered, Some(&found)));
            return changed;
        }
    }
    let mut keys: Vec<StampChange> = found
        .differences(&want)
        .into_iter()
        .map(|(key, before, after)| StampChange { key, before, after })
        .collect();
    if live_prefix != prefix {
        keys.push(StampChange {
            key: "label.prefix".into(),
            before: live_prefix.clone(),
            after: prefix.to_string(),
        });
    }
    if keys.is_empty() {
        return unchanged(Some(live));
    }
    out.actions.push(Action {
        header: header(Some(live)),
        operation: Operation::Restamp {
            source: place.source,
            changed: keys,
            annotations,
        },
    });
    changed
}

fn source_of(p: &DesiredPlacement, src: &SourceObservation) -> Source {
    Source {
        location: p.source.clone(),
        digest: src.digest.clone(),
        media_type: src.media_type.clone(),
    }
}

fn withheld_by_settle(p: &DesiredPlacement, src: &SourceObservation) -> String {
    match src.age {
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
    }
}
