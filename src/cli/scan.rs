//! What the read-side commands (`blast-radius`, `audit`, `gc`, `purge`) share: which
//! registries and repositories they walk, and the scan itself.

use std::collections::{BTreeMap, BTreeSet};

use super::Context;
use crate::inventory::{self, Endpoint, Inventory, Scope};

/// Which registries and repositories to walk.
#[derive(Debug, Clone, clap::Args)]
pub struct ScanArgs {
    /// Only this destination registry (a roster entry name); repeat for several. Default:
    /// every roster entry that is not a mirror of an upstream.
    #[arg(long = "registry", value_name = "NAME")]
    pub registries: Vec<String>,
    /// Only repositories whose path starts with PREFIX (e.g. `team-a/`).
    #[arg(long = "repository", value_name = "PREFIX")]
    pub repository: Option<String>,
    /// Registry requests in flight at once (default: `concurrency` from the configuration).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
}

/// `(roster name, repository)` of every policy destination.
pub fn managed(ctx: &Context) -> BTreeSet<(String, String)> {
    policies_by_repository(ctx).into_keys().collect()
}

/// `(roster name, repository)` → the policies placing there.
pub fn policies_by_repository(ctx: &Context) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for p in &ctx.policies {
        for i in &p.imports {
            for d in &i.destinations {
                out.entry((d.registry.clone(), d.repository.clone()))
                    .or_default()
                    .insert(p.name.clone());
            }
        }
    }
    out
}

/// The destination registries to walk, connected.
pub fn endpoints(ctx: &Context, names: &[String]) -> miette::Result<Vec<Endpoint>> {
    let registries = ctx.registries();
    let roster = &ctx.settings.registries;
    for n in names {
        if !roster.contains_key(n) {
            return Err(miette::miette!(
                code = "houba::scan::unknown_registry",
                help = format!(
                    "use a roster entry name from the configuration: {}",
                    roster.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                "--registry {n}: no such entry in the registry roster"
            ));
        }
    }
    let chosen: Vec<&String> = if names.is_empty() {
        roster
            .iter()
            .filter(|(_, e)| e.mirror_of.is_none())
            .map(|(n, _)| n)
            .collect()
    } else {
        names.iter().collect()
    };
    if chosen.is_empty() {
        return Err(miette::miette!(
            code = "houba::scan::no_registry",
            help = "declare the destination registries in houba.toml `[registries.NAME]` or HOUBA_REGISTRIES",
            "no destination registry to read: the roster is empty or lists only upstream mirrors"
        ));
    }
    chosen
        .into_iter()
        .map(|name| {
            let registry = registries
                .destination(name)
                .map_err(|e| miette::miette!("{e}"))?;
            Ok(Endpoint {
                name: name.clone(),
                host: registries.destination_display(name),
                registry,
            })
        })
        .collect()
}

/// Walk the chosen registries (every repository in scope, managed or not).
pub fn scan(
    ctx: &Context,
    args: &ScanArgs,
    endpoints: &[Endpoint],
    only_managed: bool,
) -> miette::Result<Inventory> {
    let managed = managed(ctx);
    let cache = ctx.cache();
    let scope = Scope {
        repository_prefix: args.repository.clone(),
    };
    let request = inventory::ScanRequest {
        endpoints,
        scope: &scope,
        managed: &managed,
        cache: &cache,
        label_prefix: &ctx.settings.label_prefix,
        concurrency: args.jobs.unwrap_or(ctx.settings.concurrency),
        catalog: !only_managed,
    };
    let mut inv = ctx
        .runtime()
        .block_on(inventory::scan(&request))
        .map_err(scan_error)?;
    if only_managed {
        inv.repositories.retain(|r| r.managed);
        inv.images.retain(|i| i.managed);
    }
    Ok(inv)
}

pub fn scan_error(e: inventory::InventoryError) -> miette::Report {
    miette::miette!(
        code = "houba::scan",
        help = "check that the registry is reachable and that the roster credentials may list its catalog and read its repositories",
        "{e}"
    )
}
