//! `houba gc`.

use std::process::ExitCode;

use serde::Serialize;

use super::Context;
use super::scan::{self, ScanArgs};
use crate::inventory::gc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GcFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Deletes evidence (SBOMs, signatures, scan reports, their referrers-fallback and cosign tags)
whose subject digest is no longer tagged in any repository houba manages. The subjects
considered are those evidence tags point at (`sha256-<hex>`, `sha256-<hex>.sig`) and the
stamped manifests in the manifest cache (HOUBA_CACHE_DIR) whose policy places into the
repository. A subject's evidence is deleted only when the subject manifest carries a houba
stamp: evidence of images houba did not place is never touched.

The plan is printed first. Without --auto nothing is deleted (a dry run). Under --auto, gc
refuses when it would collect the evidence of more than `max_prune_fraction` of the images
of a repository, unless --allow-mass-delete.

Exit codes: 0 planned (dry run) or deleted; 1 an error, or the mass-delete guard refused.

Examples:
  houba gc                        # what would be deleted
  houba gc --auto                 # delete it (CronJob)")]
pub struct GcArgs {
    /// Delete what the plan lists (without it, the plan is only printed).
    #[arg(long, conflicts_with = "dry_run")]
    pub auto: bool,
    /// Only show what would be deleted (the default without --auto).
    #[arg(long)]
    pub dry_run: bool,
    /// With --auto, allow collecting more than `max_prune_fraction` of a repository.
    #[arg(long)]
    pub allow_mass_delete: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: GcFormat,
    #[command(flatten)]
    pub scan: ScanArgs,
}

#[derive(Serialize)]
struct GcReport<'a> {
    format_version: &'static str,
    dry_run: bool,
    plan: &'a gc::GcPlan,
    deleted: usize,
}

pub fn run(args: &GcArgs, ctx: &Context) -> miette::Result<ExitCode> {
    let endpoints = scan::endpoints(ctx, &args.scan.registries)?;
    let inv = scan::scan(ctx, &args.scan, &endpoints, true)?;
    let cache = ctx.cache();
    let cache_dir = crate::observe::default_cache_dir(&ctx.env);
    let cached = gc::cached_subjects(cache_dir.as_deref(), &cache, &ctx.settings.label_prefix);
    let policies = scan::policies_by_repository(ctx);
    let request = gc::GcRequest {
        endpoints: &endpoints,
        inventory: &inv,
        policies: &policies,
        cached: &cached,
        cache: &cache,
        label_prefix: &ctx.settings.label_prefix,
    };
    let rt = ctx.runtime();
    let plan = rt.block_on(gc::plan(&request)).map_err(scan::scan_error)?;
    let dry_run = !args.auto;
    if args.format == GcFormat::Text {
        print!("{}", gc::text(&plan));
    }
    let mut deleted = 0;
    if !dry_run && plan.deletions() > 0 {
        let over = gc::mass_delete(&plan, ctx.settings.max_prune_fraction);
        if !over.is_empty() && !args.allow_mass_delete {
            return Err(miette::miette!(
                code = "houba::gc::mass_delete",
                help = "check why so many images lost their tags; if intended, re-run with --allow-mass-delete",
                "refusing to collect the evidence of more than {:.0}% of a repository's images under --auto; nothing was deleted:\n  {}",
                ctx.settings.max_prune_fraction * 100.0,
                over.join("\n  ")
            ));
        }
        deleted = rt
            .block_on(gc::execute(&plan, &endpoints))
            .map_err(scan::scan_error)?;
    }
    match args.format {
        GcFormat::Text if dry_run => {
            if plan.deletions() > 0 {
                println!("Dry run: nothing was deleted; run `houba gc --auto` to delete.");
            }
        }
        GcFormat::Text => println!("Deleted {deleted} evidence manifest(s)."),
        GcFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&GcReport {
                format_version: "1",
                dry_run,
                plan: &plan,
                deleted,
            })
            .expect("a report always serialises")
        ),
    }
    Ok(ExitCode::SUCCESS)
}
