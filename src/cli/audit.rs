//! `houba audit`.

use std::process::ExitCode;

use super::Context;
use super::scan::{self, ScanArgs};
use crate::inventory::{self, audit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Walks every repository of the destination registries' catalogs and counts, per repository
and in total, the tagged images (distinct digests) that are unstamped, stamped, and carry an
SBOM, a signature and a scan report. Repositories no policy manages are marked `*` and listed
(their images bypass the front door). Coverage is stamped / tagged images. The JSON report
has a `format_version` for dashboards. Nothing is written to any registry.

Exit codes: 0 the report was made (and coverage reaches --min-coverage when given);
1 coverage is below --min-coverage, or an error.

Examples:
  houba audit
  houba audit --format json > coverage.json
  houba audit --min-coverage 0.95            # a CI or CronJob gate")]
pub struct AuditArgs {
    /// Fail (exit 1) when the total coverage (stamped / tagged images) is below this
    /// fraction, between 0 and 1.
    #[arg(long, value_name = "FRACTION")]
    pub min_coverage: Option<f64>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: AuditFormat,
    #[command(flatten)]
    pub scan: ScanArgs,
}

pub fn run(args: &AuditArgs, ctx: &Context) -> miette::Result<ExitCode> {
    if let Some(m) = args.min_coverage
        && !(0.0..=1.0).contains(&m)
    {
        return Err(miette::miette!(
            code = "houba::audit::bad_min_coverage",
            help = "write a fraction between 0 and 1, e.g. --min-coverage 0.95",
            "--min-coverage {m}: not between 0 and 1"
        ));
    }
    let endpoints = scan::endpoints(ctx, &args.scan.registries)?;
    let inv = scan::scan(ctx, &args.scan, &endpoints, false)?;
    let report = audit::audit(
        &inv,
        args.min_coverage,
        inventory::request_stats(&endpoints),
    );
    match args.format {
        AuditFormat::Text => print!("{}", audit::text(&report)),
        AuditFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report always serialises")
        ),
    }
    if !report.passed {
        eprintln!(
            "coverage {:.1}% is below the required {:.1}%",
            report.total.coverage * 100.0,
            args.min_coverage.unwrap_or_default() * 100.0
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
