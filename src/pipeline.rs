//! The plan pipeline: resolved policies → observe upstream → desired graph → observe
//! destinations → diff. The I/O happens in `observe`; everything else here is glue between
//! pure stages.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::build::TransformRosters;
use crate::cli::Context;
use crate::config::Settings;
use crate::graph::{self, DesiredGraph, PlacementKind as GraphKind, UpstreamTags};
use crate::observe;
use crate::plan::diff::{
    self, DesiredAlias, DesiredPlacement, DiffInput, LiveState, ManagedRepository, PlacementKind,
};
use crate::plan::model::{FORMAT_VERSION, Location, Note, Plan, RequestCount};
use crate::plan::scope;
use crate::policy::resolved::{ResolvedPolicy, TransformStep};
use crate::rebuild;
use crate::stamp::{self, Stamp};

/// What part of the policies to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    pub targets: Vec<String>,
    pub shard: Option<(u64, u64)>,
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
    registries: &observe::Registries,
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

pub async fn make_plan(ctx: &Context, request: &PlanRequest) -> miette::Result<Plan> {
    make_plan_with(ctx, &ctx.registries(), request).await
}

/// [`make_plan`] over given registry clients, so the caller can read what they cost.
pub async fn make_plan_with(
    ctx: &Context,
    registries: &observe::Registries,
    request: &PlanRequest,
) -> miette::Result<Plan> {
    let settings = &ctx.settings;
    let concurrency = settings.concurrency.max(1);
    let policies = shard_policies(&ctx.policies, request.shard);
    let cache = ctx.cache();

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
        observe::observe_sources(registries, &cache, &sources, concurrency, SystemTime::now())
            .await?;

    let repositories = graph.repositories();
    let repo_keys: BTreeSet<(String, String)> = repositories
        .iter()
        .map(|r| (r.registry.clone(), r.repository.clone()))
        .collect();
    let destinations =
        observe::observe_destinations(registries, &cache, &repo_keys, concurrency).await?;

    let mut live = LiveState {
        sources: source_obs,
        destinations,
    };
    let (placements, aliases) = desired(&graph, &live, settings)?;
    settle_ages(registries, &cache, &placements, &mut live, settings).await?;
    let (drift, actions, mut notes) = diff::diff(&DiffInput {
        placements: &placements,
        aliases: &aliases,
        repositories,
        live: &live,
        label_prefix: &settings.label_prefix,
    });
    // Graph warnings read `<policy>[/<import>]: <message>`.
    notes.extend(graph.warnings().iter().map(|w| {
        let (address, message) = w.split_once(": ").unwrap_or(("", w));
        Note {
            address: address.to_string(),
            message: message.to_string(),
        }
    }));
    let (actions, drift) = scope::select_targets(actions, drift, &request.targets);
    if !request.targets.is_empty() {
        notes.retain(|n| {
            request
                .targets
                .iter()
                .any(|t| scope::matches_target(&n.address, t))
        });
    }
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
                },
            )
        })
        .collect();
    Ok(Plan {
        format_version: FORMAT_VERSION.to_string(),
        houba_version: env!("CARGO_PKG_VERSION").to_string(),
        inputs_digest: ctx.inputs_digest.clone(),
        shard: request.shard,
        drift,
        actions,
        notes,
        requests,
        managed_tags: managed_tag_counts(repositories, &live, &settings.label_prefix),
    })
}

/// Learn the age of upstream content that moved under a `settle` window when its manifest
/// does not say (from the image config). Costs requests only for such moves.
async fn settle_ages(
    registries: &observe::Registries,
    cache: &observe::ManifestCache,
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
fn no_builder_error(address: &str) -> miette::Report {
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
                crate::build::dockerfile::check_steps(&p.address, &p.transform)
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
                steps: p.transform.iter().map(|s| s.name().to_string()).collect(),
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
