//! Evidence of content already in place: a placement the plan leaves as it is, whose digest
//! lacks evidence the configuration asks for, gets an `attach` action; evidence houba had
//! attached and that is gone is drift as well.

use std::collections::BTreeMap;

use super::placement::Outcome;
use super::{DiffInput, DiffOutput, repo_tags};
use crate::live::EvidenceGap;
use crate::plan::model::{Action, Address, Drift, EvidencePlan, Finding, Header, Operation};

fn plan_of(sbom: &[String], signature: bool) -> EvidencePlan {
    EvidencePlan {
        sbom: sbom.to_vec(),
        signature,
        upstream: 0,
    }
}

/// One attach per unchanged placement whose content (or one of its platforms) lacks evidence.
pub(super) fn diff_evidence(
    input: &DiffInput<'_>,
    outcomes: &BTreeMap<Address, Outcome>,
    out: &mut DiffOutput,
) {
    for p in input.placements {
        if outcomes.get(&p.address).is_none_or(|o| o.changes) {
            continue;
        }
        let Some(live) =
            repo_tags(input.live, &p.destination).and_then(|t| t.get(&p.destination.tag))
        else {
            continue;
        };
        // The gaps of the digest and of its platforms, keyed under the placed digest.
        let key = (
            p.destination.registry.clone(),
            p.destination.repository.clone(),
            live.digest.clone(),
        );
        let Some(gap) = input.live.evidence.get(&key) else {
            continue;
        };
        let EvidenceGap {
            missing_sbom,
            missing_signature,
            vanished_sbom,
            vanished_signature,
        } = gap;
        let missing = plan_of(missing_sbom, *missing_signature);
        if missing.is_empty() {
            continue;
        }
        let vanished = plan_of(vanished_sbom, *vanished_signature);
        if !vanished.is_empty() {
            out.drift.push(Drift {
                address: Some(p.address.clone()),
                location: p.destination.clone(),
                digest: live.digest.clone(),
                finding: Finding::EvidenceMissing { missing: vanished },
            });
        }
        out.actions.push(Action {
            header: Header {
                address: p.address.clone(),
                destination: p.destination.clone(),
                before: Some(live.digest.clone()),
                after: Some(live.digest.clone()),
                depends_on: vec![],
                evidence: missing,
            },
            operation: Operation::Attach,
        });
    }
}
