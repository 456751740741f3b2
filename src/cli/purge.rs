//! `houba purge --usage-oracle CMD`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::Context;
use super::scan::{self, ScanArgs};
use crate::inventory::purge;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PurgeFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Deletes the tags a `deletionMode: mark` prune retired (stamp annotation `<prefix>.pruned=true`)
in the repositories houba manages, when both hold:
  - the image is older than --grace (from the stamp's `org.opencontainers.image.created`,
    else the image config's `created`; an image of unknown age is kept), and
  - the usage oracle says nobody runs it.

The usage oracle is your executable, called once per image with one argument,
`registry/repository@sha256:…`. Exit 0 = in use (kept); exit 1 = unused (deleted); any other
exit, a signal, no answer within --oracle-timeout, or failing to start = unknown (kept). Its
first line of output is shown as the reason. It must not write anything. An example over
kube-state-metrics ships in docs/examples/oracle/.

The plan is printed first. Without --auto nothing is deleted (a dry run; the oracle is still
asked). Under --auto, purge refuses to delete more than `max_prune_fraction` of a
repository's stamped tags unless --allow-mass-delete. A tag that moved since it was
examined is not deleted.

Exit codes: 0 planned (dry run) or deleted; 1 an error, a deletion failed, or the
mass-delete guard refused.

Examples:
  houba purge --usage-oracle ./ksm-oracle.sh               # what would be deleted
  houba purge --usage-oracle ./ksm-oracle.sh --grace 30d --auto")]
pub struct PurgeArgs {
    /// The usage oracle: an executable given `registry/repository@digest`.
    #[arg(long, value_name = "CMD")]
    pub usage_oracle: PathBuf,
    /// Keep marked images younger than this (`30m`, `24h`, `7d`, `2w`).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    pub grace: Duration,
    /// How long the oracle may take per image before its answer counts as unknown.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub oracle_timeout: Duration,
    /// Delete what the plan lists (without it, the plan is only printed).
    #[arg(long, conflicts_with = "dry_run")]
    pub auto: bool,
    /// Only show what would be deleted (the default without --auto).
    #[arg(long)]
    pub dry_run: bool,
    /// With --auto, allow deleting more than `max_prune_fraction` of a repository's tags.
    #[arg(long)]
    pub allow_mass_delete: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: PurgeFormat,
    #[command(flatten)]
    pub scan: ScanArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. `30m`, `24h`, `7d`"))
}

#[derive(Serialize)]
struct PurgeReport<'a> {
    format_version: &'static str,
    dry_run: bool,
    plan: &'a purge::PurgePlan,
    deleted: usize,
    failed: Vec<String>,
}

pub fn run(args: &PurgeArgs, ctx: &Context) -> miette::Result<ExitCode> {
    let oracle = &args.usage_oracle;
    if !oracle.is_file() {
        return Err(miette::miette!(
            code = "houba::purge::oracle",
            help = "pass the path of an executable; see `houba purge --help` for its contract",
            "--usage-oracle {}: no such file",
            oracle.display()
        ));
    }
    let endpoints = scan::endpoints(ctx, &args.scan.registries)?;
    let inv = scan::scan(ctx, &args.scan, &endpoints, true)?;
    let cache = ctx.cache();
    let request = purge::PurgeRequest {
        endpoints: &endpoints,
        inventory: &inv,
        cache: &cache,
        grace: args.grace,
        oracle,
        oracle_timeout: args.oracle_timeout,
        now: SystemTime::now(),
    };
    let rt = ctx.runtime();
    let plan = rt
        .block_on(purge::plan(&request))
        .map_err(scan::scan_error)?;
    let dry_run = !args.auto;
    if args.format == PurgeFormat::Text {
        print!("{}", purge::text(&plan));
    }
    let (mut deleted, mut failed) = (0, Vec::new());
    if !dry_run && plan.deletions().next().is_some() {
        let over = purge::mass_delete(&plan, ctx.settings.max_prune_fraction);
        if !over.is_empty() && !args.allow_mass_delete {
            return Err(miette::miette!(
                code = "houba::purge::mass_delete",
                help = "check what the oracle answers; if the purge is intended, re-run with --allow-mass-delete",
                "refusing to delete more than {:.0}% of a repository's stamped tags under --auto; nothing was deleted:\n  {}",
                ctx.settings.max_prune_fraction * 100.0,
                over.join("\n  ")
            ));
        }
        (deleted, failed) = rt.block_on(purge::execute(&plan, &endpoints));
    }
    match args.format {
        PurgeFormat::Text if dry_run => {
            if plan.deletions().next().is_some() {
                println!("Dry run: nothing was deleted; run with --auto to delete.");
            }
        }
        PurgeFormat::Text => {
            println!("Deleted {deleted} tag(s).");
            for f in &failed {
                eprintln!("failed: {f}");
            }
        }
        PurgeFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&PurgeReport {
                format_version: "1",
                dry_run,
                plan: &plan,
                deleted,
                failed: failed.clone(),
            })
            .expect("a report always serialises")
        ),
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
