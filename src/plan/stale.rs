//! Staleness of a saved plan: applying a plan nobody reviewed must be impossible.

use std::collections::BTreeMap;

use super::model::Plan;

/// Why a saved plan cannot be applied as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    /// The policies or the configuration changed since the plan was made.
    Inputs { saved: String, current: String },
    /// Live digests moved under these addresses (address, what changed).
    Addresses(Vec<(String, String)>),
}

/// Compare a saved plan with a plan made now from the same inputs. `None`: still valid.
pub fn check(saved: &Plan, fresh: &Plan) -> Option<Staleness> {
    if saved.inputs_digest != fresh.inputs_digest {
        return Some(Staleness::Inputs {
            saved: saved.inputs_digest.clone(),
            current: fresh.inputs_digest.clone(),
        });
    }
    let now: BTreeMap<&str, _> = fresh
        .actions
        .iter()
        .map(|a| (a.address.as_str(), a))
        .collect();
    let mut stale = Vec::new();
    for a in &saved.actions {
        let Some(f) = now.get(a.address.as_str()) else {
            stale.push((
                a.address.clone(),
                "no longer needed: the registries changed since the plan was made".into(),
            ));
            continue;
        };
        if f.action != a.action {
            stale.push((
                a.address.clone(),
                format!(
                    "now needs {} instead of {}",
                    f.action.as_str(),
                    a.action.as_str()
                ),
            ));
        } else if f.before != a.before {
            stale.push((
                a.address.clone(),
                format!(
                    "destination digest moved: {} -> {}",
                    a.before.as_deref().unwrap_or("absent"),
                    f.before.as_deref().unwrap_or("absent")
                ),
            ));
        } else if f.source_digest != a.source_digest {
            stale.push((
                a.address.clone(),
                format!(
                    "upstream digest moved: {} -> {}",
                    a.source_digest.as_deref().unwrap_or("none"),
                    f.source_digest.as_deref().unwrap_or("none")
                ),
            ));
        } else if f.after != a.after || f.annotations != a.annotations {
            stale.push((a.address.clone(), "the desired content changed".into()));
        }
    }
    (!stale.is_empty()).then_some(Staleness::Addresses(stale))
}
