//! Conversions between the internal plan model and the saved-file types: the `*_out`
//! functions and `From<&Plan>` write a plan file, the `*_in` functions and `TryFrom<PlanFile>`
//! read one back, checking every address on the way in.

use super::{
    FILE_FORMAT_VERSION, FileAction, FileContent, FileDrift, FileEvidence, FileLocation, FileNote,
    FileOperation, FilePlace, FileSource, FileStep, PlanFile,
};
use crate::plan::model::{
    Action, Address, Build, Content, Drift, EvidencePlan, Header, Location, Note, Operation, Place,
    Plan, PriorStamp, Source, StampChange,
};
use crate::policy::resolved::TransformStep;

fn loc_out(l: &Location) -> FileLocation {
    FileLocation {
        registry: l.registry.clone(),
        display: l.display.clone(),
        repository: l.repository.clone(),
        tag: l.tag.clone(),
    }
}

fn loc_in(l: FileLocation) -> Location {
    Location {
        registry: l.registry,
        display: l.display,
        repository: l.repository,
        tag: l.tag,
    }
}

fn source_out(s: &Source) -> FileSource {
    FileSource {
        location: loc_out(&s.location),
        digest: s.digest.clone(),
        media_type: s.media_type.clone(),
    }
}

fn source_in(s: FileSource) -> Source {
    Source {
        location: loc_in(s.location),
        digest: s.digest,
        media_type: s.media_type,
    }
}

fn step_out(s: &TransformStep) -> FileStep {
    match s {
        TransformStep::InjectCa { certs } => FileStep::InjectCa {
            certs: certs.clone(),
        },
        TransformStep::RewritePackageSources { mirror, managers } => {
            FileStep::RewritePackageSources {
                mirror: mirror.clone(),
                managers: managers.clone(),
            }
        }
        TransformStep::SetTimezone { zone } => FileStep::SetTimezone { zone: zone.clone() },
        TransformStep::Run { command } => FileStep::Run {
            command: command.clone(),
        },
    }
}

fn step_in(s: FileStep) -> TransformStep {
    match s {
        FileStep::InjectCa { certs } => TransformStep::InjectCa { certs },
        FileStep::RewritePackageSources { mirror, managers } => {
            TransformStep::RewritePackageSources { mirror, managers }
        }
        FileStep::SetTimezone { zone } => TransformStep::SetTimezone { zone },
        FileStep::Run { command } => TransformStep::Run { command },
    }
}

fn place_out(p: &Place) -> FilePlace {
    FilePlace {
        source: source_out(&p.source),
        content: match &p.content {
            Content::Copy => FileContent::Copy,
            Content::Build(b) => FileContent::Build {
                recipe: b.recipe.clone(),
                steps: b.steps.iter().map(step_out).collect(),
                platforms: b.platforms.clone(),
            },
        },
        annotations: p.annotations.clone(),
    }
}

fn place_in(p: FilePlace) -> Place {
    Place {
        source: source_in(p.source),
        content: match p.content {
            FileContent::Copy => Content::Copy,
            FileContent::Build {
                recipe,
                steps,
                platforms,
            } => Content::Build(Build {
                recipe,
                steps: steps.into_iter().map(step_in).collect(),
                platforms,
            }),
        },
        annotations: p.annotations,
    }
}

fn operation_out(o: &Operation) -> FileOperation {
    match o {
        Operation::Place(p) => FileOperation::Place {
            place: place_out(p),
        },
        Operation::Replace {
            place,
            reason,
            prior,
        } => FileOperation::Replace {
            place: place_out(place),
            reason: reason.clone(),
            prior_base_digest: prior.as_ref().map(|p| p.base_digest.clone()),
            prior_recipe: prior.as_ref().and_then(|p| p.recipe.clone()),
        },
        Operation::Restamp {
            source,
            changed,
            annotations,
        } => FileOperation::Restamp {
            source: source_out(source),
            changed: changed
                .iter()
                .map(|c| [c.key.clone(), c.before.clone(), c.after.clone()])
                .collect(),
            annotations: annotations.clone(),
        },
        Operation::Alias {
            target,
            target_tag,
            target_digest,
            current_tag,
            reason,
        } => FileOperation::Alias {
            target: target.to_string(),
            target_tag: target_tag.clone(),
            target_digest: target_digest.clone(),
            current_tag: current_tag.clone(),
            reason: reason.clone(),
        },
        Operation::Prune { mode, reason } => FileOperation::Prune {
            mode: *mode,
            reason: reason.clone(),
        },
        Operation::Attach => FileOperation::Attach,
    }
}

fn address(text: &str) -> Result<Address, String> {
    text.parse()
        .map_err(|e: crate::address::AddressError| e.to_string())
}

fn operation_in(o: FileOperation) -> Result<Operation, String> {
    Ok(match o {
        FileOperation::Place { place } => Operation::Place(place_in(place)),
        FileOperation::Replace {
            place,
            reason,
            prior_base_digest,
            prior_recipe,
        } => Operation::Replace {
            place: place_in(place),
            reason,
            prior: prior_base_digest.map(|base_digest| PriorStamp {
                base_digest,
                recipe: prior_recipe,
            }),
        },
        FileOperation::Restamp {
            source,
            changed,
            annotations,
        } => Operation::Restamp {
            source: source_in(source),
            changed: changed
                .into_iter()
                .map(|[key, before, after]| StampChange { key, before, after })
                .collect(),
            annotations,
        },
        FileOperation::Alias {
            target,
            target_tag,
            target_digest,
            current_tag,
            reason,
        } => Operation::Alias {
            target: address(&target)?,
            target_tag,
            target_digest,
            current_tag,
            reason,
        },
        FileOperation::Prune { mode, reason } => Operation::Prune { mode, reason },
        FileOperation::Attach => Operation::Attach,
    })
}

impl From<&Plan> for PlanFile {
    fn from(plan: &Plan) -> Self {
        PlanFile {
            format_version: FILE_FORMAT_VERSION.to_string(),
            houba_version: plan.houba_version.clone(),
            inputs_digest: plan.inputs_digest.clone(),
            shard: plan.shard.map(|(i, n)| [i, n]),
            drift: plan
                .drift
                .iter()
                .map(|d| FileDrift {
                    address: d.address.as_ref().map(ToString::to_string),
                    location: loc_out(&d.location),
                    digest: d.digest.clone(),
                    finding: d.finding.clone(),
                })
                .collect(),
            actions: plan
                .actions
                .iter()
                .map(|a| FileAction {
                    address: a.header.address.to_string(),
                    destination: loc_out(&a.header.destination),
                    before: a.header.before.clone(),
                    after: a.header.after.clone(),
                    depends_on: a
                        .header
                        .depends_on
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    evidence: (!a.header.evidence.is_empty()).then(|| FileEvidence {
                        sbom: a.header.evidence.sbom.clone(),
                        signature: a.header.evidence.signature,
                        upstream: a.header.evidence.upstream,
                    }),
                    operation: operation_out(&a.operation),
                })
                .collect(),
            notes: plan
                .notes
                .iter()
                .map(|n| FileNote {
                    address: n.address.to_string(),
                    message: n.message.clone(),
                })
                .collect(),
            requests: plan.requests.clone(),
            managed_tags: plan.managed_tags.clone(),
        }
    }
}

impl TryFrom<PlanFile> for Plan {
    type Error = String;

    fn try_from(f: PlanFile) -> Result<Plan, String> {
        let actions = f
            .actions
            .into_iter()
            .map(|a| {
                Ok(Action {
                    header: Header {
                        address: address(&a.address)?,
                        destination: loc_in(a.destination),
                        before: a.before,
                        after: a.after,
                        depends_on: a
                            .depends_on
                            .iter()
                            .map(|d| address(d))
                            .collect::<Result<_, _>>()?,
                        evidence: a
                            .evidence
                            .map(|e| EvidencePlan {
                                sbom: e.sbom,
                                signature: e.signature,
                                upstream: e.upstream,
                            })
                            .unwrap_or_default(),
                    },
                    operation: operation_in(a.operation)?,
                })
            })
            .collect::<Result<_, String>>()?;
        let drift = f
            .drift
            .into_iter()
            .map(|d| {
                Ok(Drift {
                    address: d.address.as_deref().map(address).transpose()?,
                    location: loc_in(d.location),
                    digest: d.digest,
                    finding: d.finding,
                })
            })
            .collect::<Result<_, String>>()?;
        let notes = f
            .notes
            .into_iter()
            .map(|n| {
                Ok(Note {
                    address: address(&n.address)?,
                    message: n.message,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Plan {
            houba_version: f.houba_version,
            inputs_digest: f.inputs_digest,
            shard: f.shard.map(|[i, n]| (i, n)),
            drift,
            actions,
            notes,
            requests: f.requests,
            managed_tags: f.managed_tags,
        })
    }
}
