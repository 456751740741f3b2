//! The plan pipeline: resolved policies → observe upstream → desired graph → observe
//! destinations → diff. The I/O happens in `observe`; everything else here is glue between
//! pure stages. It takes its inputs explicitly ([`PlanInputs`]): it knows nothing of the CLI.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::build::TransformRosters;
use crate::config::Settings;
use crate::evidence::collect::EvidenceCache;
use crate::graph::{self, DesiredGraph, PlacementKind as GraphKind, UpstreamTags};
use crate::live::LiveState;
use crate::observe::{self, ManifestCache, Registries};
use crate::plan::address::{self, Address};
use crate::plan::diff::{
    self, DesiredAlias, DesiredPlacement, DiffInput, ManagedRepository, PlacementKind,
};
use crate::plan::model::{Location, Note, Plan, RequestCount};
use crate::plan::scope;
use crate::policy::resolved::{ResolvedPolicy, TransformStep};
use crate::rebuild;
use crate::stamp::{self, Stamp};

mod evidence;

pub use evidence::formats as evidence_formats;

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
) -> miette::Result<UpstreamTags> {
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
pub async fn make_plan(inputs: &PlanInputs<'_>, request: &PlanRequest) -> miette::Result<Plan> {
    let settings = inputs.settings;
    let concurrency = settings.concurrency.max(1);
    let policies = shard_policies(inputs.policies, request.shard);
    let registries = inputs.registries;
    let cache = inputs.cache;

    let upstream = upstream_tags(registries, &policies, concurrency).await?;
    let graph = graph::compile(&policies, &upstream, settings);
    if let Some(c) = graph.collisions().first() {
        return Err(miette::miette!(
            code = "houba::plan::collision",
            help = "give the imports or variants distinct destinations or suffixes",
            "{} is wanted by both {} and {}; nothing was planned",
            c.destination,
            c.kept,
            c.dropped
        ));
    }

    let sources: BTreeSet<(String, String, String)> = graph
        .placements()
        .map(|p| {
            (
                p.source.registry.clone(),
                p.source.repository.clone(),
                p.source.tag.clone(),
            )
        })
        .collect();
    let source_obs =
        observe::observe_sources(registries, cache, &sources, concurrency, SystemTime::now())
            .await?;

    let repositories = graph.repositories();
    let repo_keys: BTreeSet<(String, String)> = repositories
        .iter()
        .map(|r| (r.registry.clone(), r.repository.clone()))
        .collect();
    let destinations =
        observe::observe_destinations(registries, cache, &repo_keys, concurrency).await?;

    let mut live = LiveState {
        sources: source_obs,
        destinations,
        evidence: BTreeMap::new(),
    };
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
    let mut out = diff::diff(&DiffInput {
        placements: &placements,
        aliases: &aliases,
        repositories,
        unclaimed: &[],
        deletion_modes: &deletion_modes,
        live: &live,
        label_prefix: &settings.label_prefix,
        evidence: &wanted,
    });
    evidence::count_upstream(registries, &upstream, &mut out.actions).await?;
    out.notes.extend(graph.warnings().iter().map(|w| Note {
        address: w.address.clone(),
        message: w.message.clone(),
    }));
    check_targets(&request.targets, &graph, &out)?;
    let (actions, drift, notes) =
        scope::select_targets(out.actions, out.drift, out.notes, &request.targets);
    let requests = registries
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
                    rate_limit: s.rate_limit.map(|r| (r.limit, r.remaining)),
                },
            )
        })
        .collect();
    Ok(Plan {
        houba_version: env!("CARGO_PKG_VERSION").to_string(),
        inputs_digest: inputs.inputs_digest.to_string(),
        shard: request.shard,
        drift,
        actions,
        notes,
        requests,
        managed_tags: managed_tag_counts(repositories, &live, &settings.label_prefix),
    })
}

/// A `--target` that selects nothing is an error naming the closest address: a typo must not
/// read as "No changes".
fn check_targets(
    targets: &[Address],
    graph: &DesiredGraph,
    out: &diff::DiffOutput,
) -> miette::Result<()> {
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
        let help = match address::closest(&t.to_string(), known.iter().copied()) {
            Some(c) => format!("did you mean `{c}`? `houba graph` lists every address"),
            None => "`houba graph` lists every address".to_string(),
        };
        return Err(miette::miette!(
            code = "houba::plan::unknown_target",
            help = help,
            "--target {t} selects nothing: no policy, import or artifact has that address"
        ));
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
) -> miette::Result<()> {
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
    live: &LiveState,
    prefix: &str,
) -> BTreeMap<String, usize> {
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
        .collect()
}

/// A `run` step needs an image builder; none was found in the environment.
fn no_builder_error(address: &Address) -> miette::Report {
    miette::miette!(
        code = "houba::plan::no_builder",
        help = "install buildah (apt-get install buildah) or set BUILDKIT_HOST to a BuildKit daemon (with `buildctl` on PATH), then plan again",
        "{address}: a `run` step needs an image builder and none is available: install buildah (apt-get install buildah) or set BUILDKIT_HOST"
    )
}

/// The graph's nodes as the diff sees them.
fn desired(
    graph: &DesiredGraph,
    live: &LiveState,
    settings: &Settings,
) -> miette::Result<(Vec<DesiredPlacement>, Vec<DesiredAlias>)> {
    let rosters = rosters(settings);
    let placements = graph
        .placements()
        .map(|p| -> miette::Result<DesiredPlacement> {
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
                    return Err(no_builder_error(&p.address));
                }
                crate::build::dockerfile::check_steps(&p.address.to_string(), &p.transform)
                    .map_err(|e| miette::miette!(code = "houba::plan::recipe", "{e}"))?;
                if p.platforms.len() > 1 {
                    return Err(miette::miette!(
                        code = "houba::plan::recipe",
                        help = "list at most one platform, or split the platforms into variants",
                        "{}: images with `run` steps are built for one platform, but {} are listed",
                        p.address,
                        p.platforms.len()
                    ));
                }
            }
            let recipe = match kind {
                PlacementKind::Build => Some(
                    rebuild::recipe_digest(&p.transform, &platforms, &rosters, &base).map_err(
                        |e| miette::miette!(code = "houba::plan::recipe", "{}: {e}", p.address),
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
        .collect::<miette::Result<Vec<_>>>()?;
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
