//! `houba blast-radius`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use futures::StreamExt;

use super::Context;
use super::scan::{self, ScanArgs};
use crate::inventory::{self, Inventory, blast, evidence, render};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Csv,
    Markdown,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Walks every repository of the destination registries' catalogs (not only the repositories a
policy manages), reads each image's stamp and the evidence attached to it (SBOMs, signatures,
scan reports as OCI referrers), and lists the stamped images matching every filter given,
grouped by base digest and by owner. Images without a stamp are listed as the coverage gap:
houba cannot say what they derive from. Columns: SBOM (spdx, cdx), SIGNED (a signature is
attached; `houba verify --key` checks it), SCAN (newest report's counts, `C1 H3 M7 L2`, or -).
Nothing is written to any registry; manifests are read once per digest through the cache
(HOUBA_CACHE_DIR). The report ends with the requests made per registry.

Exit codes: 0 the report was made (whether or not anything matched); 1 an error.

Examples:
  houba blast-radius --base-digest sha256:4f…       # the CVE morning: who builds on this base?
  houba blast-radius --base-name docker.io/library/debian --format csv
  houba blast-radius --owner group:default/payments --format markdown
  houba blast-radius --cve CVE-2024-3094 --registry prod")]
pub struct BlastRadiusArgs {
    /// Images whose stamp's base digest is this (`org.opencontainers.image.base.digest`).
    #[arg(long, value_name = "sha256:…")]
    pub base_digest: Option<String>,
    /// Images built on this upstream: `registry/repository` (any tag) or with `:tag`.
    #[arg(long, value_name = "REGISTRY/REPOSITORY[:TAG]")]
    pub base_name: Option<String>,
    /// Images one of whose owners is this (an entry of the comma-joined owners annotation).
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
    /// Images placed by this policy.
    #[arg(long, value_name = "NAME")]
    pub policy: Option<String>,
    /// Images whose newest attached SARIF scan report has a finding for this CVE.
    #[arg(long, value_name = "CVE-YYYY-NNNN")]
    pub cve: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
    #[command(flatten)]
    pub scan: ScanArgs,
}

pub fn run(args: &BlastRadiusArgs, ctx: &Context) -> miette::Result<ExitCode> {
    let query = query(args)?;
    let endpoints = scan::endpoints(ctx, &args.scan.registries)?;
    let inv = scan::scan(ctx, &args.scan, &endpoints, false)?;
    let hits = match &query.cve {
        Some(cve) => cve_hits(ctx, &inv, &endpoints, &query, cve, args.scan.jobs)?,
        None => BTreeSet::new(),
    };
    let report = blast::answer(&inv, &query, &hits, inventory::request_stats(&endpoints));
    let out = match args.format {
        ReportFormat::Text => render::text(&report),
        ReportFormat::Json => {
            serde_json::to_string_pretty(&report).expect("a report always serialises") + "\n"
        }
        ReportFormat::Csv => render::csv(&report),
        ReportFormat::Markdown => render::markdown(&report),
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn query(args: &BlastRadiusArgs) -> miette::Result<blast::Query> {
    if let Some(d) = &args.base_digest
        && !crate::registry::digest::is_digest(d)
    {
        return Err(miette::miette!(
            code = "houba::blast_radius::bad_digest",
            help = "write the full digest, `sha256:` followed by 64 hex digits",
            "--base-digest {d}: not a digest"
        ));
    }
    let cve = match &args.cve {
        Some(c) => {
            let re = regex::Regex::new(r"(?i)^CVE-\d{4}-\d{4,}$").expect("valid regex");
            if !re.is_match(c) {
                return Err(miette::miette!(
                    code = "houba::blast_radius::bad_cve",
                    help = "write a CVE identifier such as CVE-2024-3094",
                    "--cve {c}: not a CVE identifier"
                ));
            }
            Some(c.to_ascii_uppercase())
        }
        None => None,
    };
    Ok(blast::Query {
        base_digest: args.base_digest.clone(),
        base_name: args.base_name.clone(),
        owner: args.owner.clone(),
        policy: args.policy.clone(),
        cve,
    })
}

/// References of the stamped images (matching the other filters) whose newest scan report
/// mentions `cve`: reads those reports' blobs, in parallel.
fn cve_hits(
    ctx: &Context,
    inv: &Inventory,
    endpoints: &[inventory::Endpoint],
    query: &blast::Query,
    cve: &str,
    jobs: Option<usize>,
) -> miette::Result<BTreeSet<String>> {
    let without_cve = blast::Query {
        cve: None,
        ..query.clone()
    };
    let cache = ctx.cache();
    let candidates: Vec<_> = inv
        .images
        .iter()
        .filter(|i| blast::matches(i, &without_cve, &BTreeSet::new()))
        .filter_map(|i| {
            let report = i.evidence.newest_scan_referrer()?;
            let ep = endpoints.iter().find(|e| e.name == i.registry)?;
            Some((i, report.descriptor.digest.clone(), ep.clone()))
        })
        .collect();
    let results: Vec<_> = ctx.runtime().block_on(
        futures::stream::iter(candidates)
            .map(|(image, report, ep)| {
                let cache = cache.clone();
                async move {
                    let got = evidence::read_evidence_layer(
                        ep.registry.as_ref(),
                        &cache,
                        &image.repository,
                        &report,
                    )
                    .await
                    .map_err(|e| {
                        inventory::InventoryError::read(
                            format!("the scan report {report} of {}", image.reference()),
                            e,
                        )
                    })?;
                    let found =
                        got.is_some_and(|(_, bytes)| evidence::sarif_cves(&bytes).contains(cve));
                    Ok::<_, inventory::InventoryError>(found.then(|| image.reference()))
                }
            })
            .buffer_unordered(jobs.unwrap_or(ctx.settings.concurrency).max(1))
            .collect(),
    );
    let mut hits = BTreeSet::new();
    for r in results {
        if let Some(h) = r.map_err(scan::scan_error)? {
            hits.insert(h);
        }
    }
    Ok(hits)
}
