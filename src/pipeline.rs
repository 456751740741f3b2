//! The plan pipeline: resolved policies → observe upstream → desired graph → observe
//! destinations → diff. The I/O happens in `observe`; everything else here is glue between
//! pure stages. It takes its inputs explicitly ([`PlanInputs`]): it knows nothing of the CLI.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::address::{self, Address};
use crate::build::TransformRosters;
use crate::config::Settings;
use crate::evidence::collect::EvidenceCache;
use crate::graph::{self, DesiredGraph, PlacementKind as GraphKind, UpstreamTags};
use crate::live::LiveState;
use crate::observe::{self, ManifestCache};
use crate::plan::diff::{
    self, DesiredAlias, DesiredPlacement, DiffInput, ManagedRepository, PlacementKind,
    UnclaimedRepository,
};
use crate::plan::model::{Location, Note, Operation, Plan, PruneReason, RequestCount};
use crate::plan::scope;
use crate::policy::resolved::{ResolvedPolicy, TransformStep};
use crate::rebuild;
use crate::registry::Registries;
use crate::stamp::{self, Stamp};

mod evidence;
mod sources;

pub use evidence::formats as evidence_formats;

mod error;

pub use error::PlanError;

/// What part of the policies to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// `--target` addresses; empty: everything.
    pub targets: Vec<Address>,
    /// `(index, count)` of the shard to plan.
    pub shard: Option<(u64, u64)>,
    /// List the referrers of every placed digest, even those the evidence cache knows complete
    /// (`houba drift --deep`): finds evidence deleted outside houba.
    pub deep_evidence: bool,
}

/// Everything a plan is made from, passed explicitly.
pub struct PlanInputs<'a> {
    /// Effective configuration.
    pub settings: &'a Settings,
    /// Valid, resolved policies.
    pub policies: &'a [ResolvedPolicy],
    /// Digest of the resolved policies and configuration, recorded in the plan.
    pub inputs_digest: &'a str,
    /// The registry pool.
    pub registries: &'a Registries,
    /// The content-addressed manifest cache.
    pub cache: &'a ManifestCache,
    /// What evidence houba attached (and saw accepted), per digest.
    pub evidence_cache: &'a EvidenceCache,
}

/// The digest a saved plan records of its inputs: the resolved policies (what the files say,
/// not their bytes: comments, key order, file layout and where each policy was read from do
/// not count) and the configuration that decides what is planned. Where the configuration was
/// read from and which image builders this machine has are left out, so a plan made in CI
/// applies in the CronJob.
pub fn inputs_digest(policies: &[ResolvedPolicy], settings: &Settings) -> String {
    let mut resolved: Vec<serde_json::Value> = policies
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).expect("policies serialise");
            if let Some(o) = v.as_object_mut() {
                o.remove("origin");
            }
            v
        })
        .collect();
    resolved.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut effective = settings.clone();
    effective.config_file = None;
    effective.policies.clear();
    effective.builders = Default::default();
    // Where a run reports to (metrics, notifications) changes nothing in what it plans.
    effective.operations = Default::default();
    let document = serde_json::json!({
        "policies": resolved,
        "settings": serde_json::to_value(&effective).expect("settings serialise"),
    });
    crate::oci::sha256_digest(&crate::oci::canonical_json(&document))
}

/// The transform rosters of the settings, as the rebuild engine takes them.
pub fn rosters(settings: &Settings) -> TransformRosters {
    TransformRosters {
        ca_certs: settings.ca_certs.clone(),
        package_mirrors: settings.package_mirrors.clone(),
    }
}

/// The policies of this shard.
pub fn shard_policies(
    policies: &[ResolvedPolicy],
    shard: Option<(u64, u64)>,
) -> Vec<ResolvedPolicy> {
    policies
        .iter()
        .filter(|p| shard.is_none_or(|(i, n)| scope::in_shard(&p.name, i, n)))
        .cloned()
        .collect()
}

/// Read every upstream tag list the policies need.
pub async fn upstream_tags(
    registries: &Registries,
    policies: &[ResolvedPolicy],
    concurrency: usize,
) -> Result<UpstreamTags, PlanError> {
    let repos: BTreeSet<(String, String)> = policies
        .iter()
        .map(|p| (p.source.registry.clone(), p.source.repository.clone()))
        .collect();
    let lists = observe::list_source_tags(registries, &repos, concurrency).await?;
    let mut upstream = UpstreamTags::new();
    for ((host, repo), tags) in lists {
        upstream.insert(host, repo, tags);
    }
    Ok(upstream)
}

/// Observe the registries and diff them against the policies.
pub async fn make_plan(inputs: &PlanInputs<'_>, request: &PlanRequest) -> Result<Plan, PlanError> {
    let settings = inputs.settings;
    let concurrency = settings.concurrency.max(1);
    let policies = shard_policies(inputs.policies, request.shard);
    let registries = inputs.registries;
    let cache = inputs.cache;

    // The destinations a policy writes to are known before any upstream answers, so they are
    // observed from the start, while the upstream tag lists are read, the graph compiled and
    // the upstream tags every run checks are HEADed: both sides' registries work at once.
    // Whether the other upstream tags are due for a check (`tags.recheck`) depends on what
    // their destination tags hold, so those wait for the destinations.
    let declared: BTreeSet<(String, String)> = policies
        .iter()
        .flat_map(|p| &p.imports)
        .flat_map(|i| &i.destinations)
        .map(|d| (d.registry.clone(), d.repository.clone()))
        .collect();
    let now = SystemTime::now();
    let upstream_side = async {
        let upstream = upstream_tags(registries, &policies, concurrency).await?;
        let graph = graph::compile(&policies, &upstream, settings);
        if let Some(c) = graph.collisions().first() {
            return Err(PlanError::Collision(Box::new(c.clone())));
        }
        let early = sources::always_due(&graph);
        let early = observe::observe_sources(registries, cache, &early, concurrency, now).await?;
        Ok((upstream, graph, early))
    };
    let destination_side = async {
        observe::observe_destinations(registries, cache, &declared, concurrency)
            .await
            .map_err(PlanError::from)
    };
    let (mut destinations, (upstream, graph, early)) =
        tokio::try_join!(destination_side, upstream_side)?;

    let repositories = graph.repositories();
    let repo_keys: BTreeSet<(String, String)> = repositories
        .iter()
        .map(|r| (r.registry.clone(), r.repository.clone()))
        .collect();
    // A policy whose upstream tag list is missing manages nothing this run.
    destinations.tags.retain(|k, _| repo_keys.contains(k));
    destinations.dangling.retain(|k, _| repo_keys.contains(k));
    let observed = sources::observe_upstream(
        registries,
        cache,
        &graph,
        &destinations.tags,
        early,
        concurrency,
        now,
        &settings.label_prefix,
    )
    .await?;

    let mut live = LiveState {
        sources: observed.observations,
        destinations: destinations.tags,
        dangling: destinations.dangling,
        evidence: BTreeMap::new(),
    };
    let unclaimed = find_orphans(inputs, &mut live).await?;
    let (placements, aliases) = desired(&graph, &live, settings)?;
    live.evidence = evidence::observe_placed(
        registries,
        inputs.evidence_cache,
        &placements,
        &live,
        settings,
        request.deep_evidence,
    )
    .await?;
    let wanted = evidence::wanted_plan(settings);
    settle_ages(registries, cache, &placements, &mut live, settings).await?;
    let deletion_modes = inputs
        .policies
        .iter()
        .map(|p| (p.name.clone(), p.deletion_mode))
        .collect();
    let archives = inputs
        .policies
        .iter()
        .flat_map(|p| {
            p.imports
                .iter()
                .filter_map(|i| Some(((p.name.clone(), i.name.clone()), i.archive.clone()?)))
        })
        .collect();
    let mut out = diff::diff(&DiffInput {
        placements: &placements,
        aliases: &aliases,
        repositories,
        unclaimed: &unclaimed,
        deletion_modes: &deletion_modes,
        archives: &archives,
        now: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        live: &live,
        label_prefix: &settings.label_prefix,
        evidence: &wanted,
    });
    evidence::count_upstream(registries, &upstream, &mut out.actions).await?;
    out.notes.extend(graph.warnings().iter().map(|w| Note {
        address: w.address.clone(),
        message: w.message.clone(),
    }));
    if let Some((index, count)) = request.shard {
        // An orphan belongs to the shard of the policy that stamped it, so that exactly one
        // job prunes it.
        out.actions.retain(|a| {
            !matches!(
                a.operation,
                Operation::Prune {
                    reason: PruneReason::Orphaned,
                    ..
                }
            ) || scope::in_shard(a.header.address.policy_name(), index, count)
        });
    }
    check_targets(&request.targets, &graph, &out)?;
    let (actions, drift, notes) =
        scope::select_targets(out.actions, out.drift, out.notes, &request.targets);
    let mut requests: BTreeMap<String, RequestCount> = registries
        .request_stats()
        .into_iter()
        .map(|(name, s)| {
            (
                name,
                RequestCount {
                    head: s.head,
                    get: s.get,
                    put: s.put,
                    post: s.post,
                    patch: s.patch,
                    delete: s.delete,
                    total: s.total(),
                    endpoints: s.by_endpoint().into_iter().collect(),
                    rate_limit: s.rate_limit.map(|r| (r.limit, r.remaining)),
                    recheck_skipped: 0,
                },
            )
        })
        .collect();
    for (registry, skipped) in observed.skipped {
        requests.entry(registry).or_default().recheck_skipped = skipped;
    }
    Ok(Plan {
        houba_version: env!("CARGO_PKG_VERSION").to_string(),
        inputs_digest: inputs.inputs_digest.to_string(),
        shard: request.shard,
        drift,
        actions,
        notes,
        requests,
        managed_tags: managed_tag_counts(repositories, &unclaimed, &live, &settings.label_prefix),
    })
}

/// A `--target` that selects nothing is an error naming the closest address: a typo must not
/// read as "No changes".
fn check_targets(
    targets: &[Address],
    graph: &DesiredGraph,
    out: &diff::DiffOutput,
) -> Result<(), PlanError> {
    let known: Vec<&Address> = graph
        .nodes()
        .map(graph::Node::address)
        .chain(out.actions.iter().map(|a| &a.header.address))
        .chain(out.drift.iter().filter_map(|d| d.address.as_ref()))
        .chain(out.notes.iter().map(|n| &n.address))
        .collect();
    for t in targets {
        if known.iter().any(|a| a.is_within(t)) {
            continue;
        }
        return Err(PlanError::UnknownTarget {
            target: Box::new(t.clone()),
            closest: address::closest(&t.to_string(), known.iter().copied()).map(Box::new),
        });
    }
    Ok(())
}

/// Learn the age of upstream content that moved under a `settle` window when its manifest
/// does not say (from the image config). Costs requests only for such moves.
async fn settle_ages(
    registries: &Registries,
    cache: &ManifestCache,
    placements: &[DesiredPlacement],
    live: &mut LiveState,
    settings: &Settings,
) -> Result<(), PlanError> {
    let now = SystemTime::now();
    for p in placements.iter().filter(|p| !p.settle.is_zero()) {
        let key = (
            p.source.registry.clone(),
            p.source.repository.clone(),
            p.source.tag.clone(),
        );
        let Some(src) = live.sources.get(&key) else {
            continue;
        };
        if src.age.is_some() {
            continue;
        }
        let live_base = live
            .destinations
            .get(&(
                p.destination.registry.clone(),
                p.destination.repository.clone(),
            ))
            .and_then(|tags| tags.get(&p.destination.tag))
            .and_then(|t| stamp::manifest_annotations(&t.manifest).ok())
            .and_then(|a| Stamp::detect(&a, &settings.label_prefix))
            .map(|(s, _)| s.base_digest);
        if live_base.is_none_or(|d| d == src.digest) {
            continue;
        }
        let age = observe::config_age(
            registries,
            cache,
            &p.source.registry,
            &p.source.repository,
            &src.manifest,
            now,
        )
        .await?;
        if let Some(src) = live.sources.get_mut(&key) {
            src.age = age;
        }
    }
    Ok(())
}

fn managed_tag_counts(
    repositories: &[ManagedRepository],
    unclaimed: &[UnclaimedRepository],
    live: &LiveState,
    prefix: &str,
) -> BTreeMap<String, usize> {
    // In an unclaimed repository, every stamped tag counts: pruning all of them is a mass
    // prune, refused under --auto unless allowed.
    let orphans = unclaimed.iter().map(|r| {
        let n = live
            .destinations
            .get(&(r.registry.clone(), r.repository.clone()))
            .map(|tags| {
                tags.values()
                    .filter(|t| {
                        stamp::manifest_annotations(&t.manifest)
                            .ok()
                            .and_then(|a| Stamp::detect(&a, prefix))
                            .is_some()
                    })
                    .count()
            })
            .unwrap_or(0);
        (format!("{}/{}", r.display, r.repository), n)
    });
    repositories
        .iter()
        .map(|r| {
            let n = live
                .destinations
                .get(&(r.registry.clone(), r.repository.clone()))
                .map(|tags| {
                    tags.values()
                        .filter(|t| {
                            stamp::manifest_annotations(&t.manifest)
                                .ok()
                                .and_then(|a| Stamp::detect(&a, prefix))
                                .is_some_and(|(s, _)| s.policy == r.policy)
                        })
                        .count()
                })
                .unwrap_or(0);
            (format!("{}/{}", r.display, r.repository), n)
        })
        .chain(orphans)
        .collect()
}

/// Observe the repositories of the destination registries that no policy claims but that
/// hold houba stamps (see `observe::find_unclaimed` for the cost), adding their tags to the
/// live state. Claims are those of every policy, not only this shard's.
async fn find_orphans(
    inputs: &PlanInputs<'_>,
    live: &mut LiveState,
) -> Result<Vec<UnclaimedRepository>, PlanError> {
    let settings = inputs.settings;
    let claimed: BTreeSet<(String, String)> = inputs
        .policies
        .iter()
        .flat_map(|p| p.imports.iter())
        .flat_map(|i| i.destinations.iter())
        .map(|d| (d.registry.clone(), d.repository.clone()))
        .collect();
    // A roster entry that policies read from and write to none of is an upstream: houba never
    // placed anything there to orphan, and listing its catalog would cost requests against its
    // rate limit on every run (Docker Hub refuses catalogs anyway).
    let written: BTreeSet<&str> = claimed.iter().map(|(r, _)| r.as_str()).collect();
    let upstream_only: BTreeSet<&str> = inputs
        .policies
        .iter()
        .filter_map(|p| settings.source_entry(&p.source.registry))
        .map(|e| e.name.as_str())
        .filter(|name| !written.contains(name))
        .collect();
    let destinations: Vec<String> = settings
        .registries
        .values()
        .filter(|e| e.mirror_of.is_none() && !upstream_only.contains(e.name.as_str()))
        .map(|e| e.name.clone())
        .collect();
    let found = observe::find_unclaimed(
        inputs.registries,
        inputs.cache,
        &destinations,
        &claimed,
        &settings.label_prefix,
        settings.concurrency.max(1),
    )
    .await?;
    for (registry, why) in &found.unreadable {
        tracing::warn!(
            registry = %registry,
            "cannot list the repositories of {registry} ({why}); orphaned tags there are not looked for"
        );
    }
    let unclaimed = found
        .repositories
        .keys()
        .map(|(registry, repository)| UnclaimedRepository {
            registry: registry.clone(),
            display: inputs.registries.destination_display(registry),
            repository: repository.clone(),
        })
        .collect();
    live.destinations.extend(found.repositories);
    Ok(unclaimed)
}

/// The graph's nodes as the diff sees them.
fn desired(
    graph: &DesiredGraph,
    live: &LiveState,
    settings: &Settings,
) -> Result<(Vec<DesiredPlacement>, Vec<DesiredAlias>), PlanError> {
    let rosters = rosters(settings);
    let placements = graph
        .placements()
        .map(|p| -> Result<DesiredPlacement, PlanError> {
            let kind = match p.kind() {
                GraphKind::Copy => PlacementKind::Copy,
                GraphKind::Build => PlacementKind::Build,
            };
            let base = live
                .sources
                .get(&(
                    p.source.registry.clone(),
                    p.source.repository.clone(),
                    p.source.tag.clone(),
                ))
                .map(|s| s.digest.clone())
                .unwrap_or_default();
            let platforms: Vec<String> = p.platforms.iter().map(ToString::to_string).collect();
            if p.transform.iter().any(TransformStep::runs_command) {
                if settings.builders.choose().is_none() {
                    return Err(PlanError::NoBuilder {
                        address: Box::new(p.address.clone()),
                    });
                }
                crate::build::dockerfile::check_steps(&p.address.to_string(), &p.transform)
                    .map_err(|e| PlanError::Recipe(Box::new(e)))?;
                if p.platforms.len() > 1 {
                    return Err(PlanError::RunPlatforms {
                        address: Box::new(p.address.clone()),
                        platforms: p.platforms.len(),
                    });
                }
            }
            let recipe = match kind {
                PlacementKind::Build => Some(
                    rebuild::recipe_digest(&p.transform, &platforms, &rosters, &base).map_err(
                        |error| PlanError::RecipeDigest {
                            address: Box::new(p.address.clone()),
                            error: Box::new(error),
                        },
                    )?,
                ),
                PlacementKind::Copy => None,
            };
            Ok(DesiredPlacement {
                address: p.address.clone(),
                policy: p.policy.clone(),
                import: p.import.clone(),
                variant: p.variant.clone(),
                destination: Location {
                    registry: p.destination.registry.clone(),
                    display: p.destination_host.clone(),
                    repository: p.destination.repository.clone(),
                    tag: p.tag.clone(),
                },
                source: Location {
                    registry: p.source.registry.clone(),
                    display: p.source.registry.clone(),
                    repository: p.source.repository.clone(),
                    tag: p.source.tag.clone(),
                },
                pin: p.pin.clone(),
                kind,
                transform: p.transform.clone(),
                platforms,
                recipe,
                owners: p.owners.clone(),
                vendor: p.vendor.clone(),
                artifact_type: p.artifact_type.as_str().to_string(),
                settle: p.settle,
            })
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    let aliases = graph
        .aliases()
        .map(|a| DesiredAlias {
            address: a.address.clone(),
            destination: Location {
                registry: a.destination.registry.clone(),
                display: a.destination_host.clone(),
                repository: a.destination.repository.clone(),
                tag: a.tag.clone(),
            },
            target: a.target.clone(),
        })
        .collect();
    Ok((placements, aliases))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn policy(name: &str, line: usize) -> ResolvedPolicy {
        let yaml = format!(
            "apiVersion: houba.io/v1alpha1\nkind: MirrorPolicy\nmetadata: {{name: {name}}}\nspec:\n  source: {{registry: docker.io, repository: library/{name}}}\n  imports:\n    - name: stable\n      tags: {{includeRegex: '^1'}}\n      destinations: [{{registry: local, repository: {name}}}]\n"
        );
        let mut settings = Settings::default();
        settings.registries.insert("local".into(), settings_entry());
        let outcome = crate::policy::load_policy_source("p.yaml", &yaml, &settings);
        assert!(outcome.diagnostics.is_empty(), "{:?}", outcome.diagnostics);
        let mut p = outcome.policies.into_iter().next().expect("valid policy");
        p.origin.line = line;
        p
    }

    fn settings_entry() -> crate::config::RegistryEntry {
        crate::config::RegistryEntry {
            name: "local".into(),
            endpoint: crate::config::RegistryEndpoint::Layout {
                path: PathBuf::from("/tmp/x"),
            },
            mirror_of: None,
            concurrency: 1,
        }
    }

    #[test]
    fn inputs_digest_covers_what_the_inputs_say_not_where_or_how_they_are_written() {
        let base = Settings::default();
        let (a, b) = (policy("busybox", 1), policy("alpine", 1));
        let digest = inputs_digest(&[a.clone(), b.clone()], &base);
        assert_eq!(
            digest,
            inputs_digest(&[b.clone(), policy("busybox", 7)], &base),
            "order and position in the files do not count"
        );
        let mut moved = base.clone();
        moved.config_file = Some(PathBuf::from("/elsewhere/houba.toml"));
        moved.policies = vec![PathBuf::from("/policies")];
        moved.builders.buildah = Some(PathBuf::from("/usr/bin/buildah"));
        assert_eq!(digest, inputs_digest(&[a.clone(), b.clone()], &moved));
        let mut prefix = base.clone();
        prefix.label_prefix = "com.example".into();
        assert_ne!(digest, inputs_digest(&[a.clone(), b.clone()], &prefix));
        let mut edited = a.clone();
        edited.imports[0].owners = vec!["group:default/sre".into()];
        assert_ne!(digest, inputs_digest(&[edited, b], &base));
    }
}
