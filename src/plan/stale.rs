//! Staleness of a saved plan: applying a plan nobody reviewed must be impossible.

use std::collections::BTreeMap;

use super::model::{Address, Plan};

/// Why a saved plan cannot be applied as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    /// The policies or the configuration changed since the plan was made.
    Inputs {
        /// Inputs digest recorded in the plan.
        saved: String,
        /// Inputs digest now.
        current: String,
    },
    /// Live digests moved under these addresses (address, what changed).
    Addresses(Vec<(Address, String)>),
}

/// Compare a saved plan with a plan made now from the same inputs. `None`: still valid.
pub fn check(saved: &Plan, fresh: &Plan) -> Option<Staleness> {
    if saved.inputs_digest != fresh.inputs_digest {
        return Some(Staleness::Inputs {
            saved: saved.inputs_digest.clone(),
            current: fresh.inputs_digest.clone(),
        });
    }
    let now: BTreeMap<&Address, _> = fresh
        .actions
        .iter()
        .map(|a| (&a.header.address, a))
        .collect();
    let mut stale = Vec::new();
    for a in &saved.actions {
        let address = a.header.address.clone();
        let Some(f) = now.get(&a.header.address) else {
            stale.push((
                address,
                "no longer needed: the registries changed since the plan was made".into(),
            ));
            continue;
        };
        let digest = |d: Option<&String>, none: &str| d.cloned().unwrap_or_else(|| none.into());
        if f.kind() != a.kind() {
            stale.push((
                address,
                format!(
                    "now needs {} instead of {}",
                    f.kind().as_str(),
                    a.kind().as_str()
                ),
            ));
        } else if f.header.before != a.header.before {
            stale.push((
                address,
                format!(
                    "destination digest moved: {} -> {}",
                    digest(a.header.before.as_ref(), "absent"),
                    digest(f.header.before.as_ref(), "absent")
                ),
            ));
        } else if f.source().map(|s| &s.digest) != a.source().map(|s| &s.digest) {
            stale.push((
                address,
                format!(
                    "upstream digest moved: {} -> {}",
                    digest(a.source().map(|s| &s.digest), "none"),
                    digest(f.source().map(|s| &s.digest), "none")
                ),
            ));
        } else if f.header.after != a.header.after || f.operation != a.operation {
            stale.push((address, "the desired content changed".into()));
        }
    }
    (!stale.is_empty()).then_some(Staleness::Addresses(stale))
}
