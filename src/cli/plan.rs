//! `houba plan`, `houba drift` and `houba show`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use super::Context;
use super::operations::{self, ReportArgs, RunCommand, error_text};
use crate::pipeline::{self, PlanRequest};
use crate::plan::file;
use crate::plan::model::{Address, Plan};
use crate::plan::render::{self, Format, Style};
use crate::report::RunSummary;

/// Options shared by commands that make a plan.
#[derive(Debug, Clone, clap::Args)]
pub struct ScopeArgs {
    /// Only plan these addresses, or address prefixes such as `busybox` or `busybox/stable`
    /// (repeatable). Actions they depend on are included.
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// This job's shard (0-based). Defaults to $JOB_COMPLETION_INDEX when set (Kubernetes
    /// indexed Jobs). Needs --shard-count.
    #[arg(
        long,
        value_name = "I",
        env = "JOB_COMPLETION_INDEX",
        requires = "shard_count"
    )]
    pub shard_index: Option<u64>,
    /// Split policies into N shards by a stable hash of the policy name; collision checks
    /// still cover every policy.
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u64>,
}

impl ScopeArgs {
    pub fn request(&self) -> miette::Result<PlanRequest> {
        let targets = self
            .targets
            .iter()
            .map(|t| {
                t.parse::<Address>().map_err(|e| {
                    miette::miette!(
                        code = "houba::cli::target",
                        help = "an address is <policy>[/<import>[/<variant>[<registry>/<repository>:<tag>]]]; `houba graph` lists them",
                        "--target {e}"
                    )
                })
            })
            .collect::<miette::Result<Vec<_>>>()?;
        let shard = match (self.shard_index, self.shard_count) {
            (_, None) | (_, Some(0 | 1)) => None,
            (None, Some(n)) => {
                return Err(miette::miette!(
                    help =
                        format!("pass --shard-index I (0 ≤ I < {n}) or set JOB_COMPLETION_INDEX"),
                    "--shard-count {n} needs a shard index"
                ));
            }
            (Some(i), Some(n)) if i >= n => {
                return Err(miette::miette!(
                    help = format!("shard indexes run from 0 to {}", n - 1),
                    "--shard-index {i} is out of range for --shard-count {n}"
                ));
            }
            (Some(i), Some(n)) => Some((i, n)),
        };
        Ok(PlanRequest {
            targets,
            shard,
            deep_evidence: false,
        })
    }
}

/// Output options shared by plan-rendering commands.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output format: `text` (Terraform-style), `json` (machines) or `markdown` (PR comments).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Never colour the output (colour is on only when stdout is a terminal).
    #[arg(long, env = "NO_COLOR", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_color: bool,
}

impl OutputArgs {
    pub fn style(&self) -> Style {
        Style {
            color: !self.no_color && std::io::stdout().is_terminal(),
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  houba plan                                   # what apply would change
  houba plan -o plan.json                      # save it for `houba apply plan.json`
  houba plan --format markdown > comment.md    # for a pull-request comment
  houba plan --detailed-exitcode               # exit 2 when there are changes (CI)
  houba plan --target busybox/stable           # one import of one policy")]
pub struct PlanArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Save the plan to FILE so that `houba apply FILE` applies exactly it.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error (as Terraform).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// After the plan, list per rebuild each file its steps add, change or remove, with the
    /// unified diff of text files (Markdown: folded in <details>). Reads the base images'
    /// layers from upstream, so it costs downloads; text and markdown formats only.
    #[arg(long)]
    pub show_content: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// Plans for `command`, recording in `summary` what the plan found and what it cost. On
/// error, the run is reported (metrics, report file) as failed before the error is returned.
fn plan_reported(
    ctx: &Context,
    request: &PlanRequest,
    report: &ReportArgs,
    summary: &mut RunSummary,
) -> miette::Result<crate::plan::model::Plan> {
    let registries = ctx.registries();
    let cache = ctx.cache();
    let evidence_cache = ctx.evidence_cache();
    let inputs = pipeline::PlanInputs {
        settings: &ctx.settings,
        policies: &ctx.policies,
        inputs_digest: &ctx.inputs_digest,
        registries: &registries,
        cache: &cache,
        evidence_cache: &evidence_cache,
    };
    let result = ctx
        .runtime()
        .block_on(pipeline::make_plan(&inputs, request))
        .map_err(miette::Report::new);
    operations::record_registries(summary, &registries);
    match result {
        Ok(plan) => {
            operations::record_plan(summary, &plan);
            Ok(plan)
        }
        Err(e) => {
            summary.error = Some(error_text(&e));
            operations::finish(ctx, report, summary, false, request.targets.is_empty());
            Err(e)
        }
    }
}

pub fn run_plan(args: &PlanArgs, ctx: &Context) -> miette::Result<ExitCode> {
    args.report.check(ctx)?;
    if args.show_content && args.output.format == Format::Json {
        return Err(miette::miette!(
            help = "use --format text or --format markdown with --show-content",
            "--show-content does not fit in the JSON plan document"
        ));
    }
    let request = args.scope.request()?;
    let mut summary = RunSummary::start(RunCommand::Plan, request.shard);
    let plan = plan_reported(ctx, &request, &args.report, &mut summary)?;
    let complete = request.targets.is_empty();
    crate::out!(
        "{}",
        render::render(&plan, args.output.format, args.output.style())
    );
    if args.show_content {
        print_content(ctx, &plan, args.output.format);
    }
    if let Some(out) = &args.out {
        if let Err(e) = save_plan(&plan, out) {
            summary.error = Some(error_text(&e));
            operations::finish(ctx, &args.report, &mut summary, false, complete);
            return Err(e);
        }
        eprintln!(
            "Saved the plan to {}. To apply exactly it: houba apply {}",
            out.display(),
            out.display()
        );
    }
    operations::finish(ctx, &args.report, &mut summary, true, complete);
    Ok(
        if args.detailed_exitcode && (plan.has_changes() || !plan.drift.is_empty()) {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        },
    )
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Drift is live state changed outside houba: a managed tag holding unstamped or foreign
content, stamped content that does not match its stamp, an alias moved by hand, or an
unstamped tag pushed into a managed repository. Upstream movement and merged policy edits
are pending changes, not drift (see `houba plan`).

Examples:
  houba drift                      # exit 2 when drift is found
  houba drift --format json        # for alerting")]
pub struct DriftArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Refused: `houba drift` always exits 2 when drift is found (and 0 when none is).
    #[arg(long, hide = true)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub report: ReportArgs,
    /// Also list the referrers of every placed digest, to find SBOMs and signatures deleted
    /// outside houba (without it, evidence the cache knows complete is not asked for again:
    /// one request per placed digest and platform).
    #[arg(long)]
    pub deep: bool,
}

pub fn run_drift(args: &DriftArgs, ctx: &Context) -> miette::Result<ExitCode> {
    if args.detailed_exitcode {
        return Err(miette::miette!(
            code = "houba::drift::detailed_exitcode",
            help = "drop the flag: `houba drift` always exits 2 when drift is found, 0 when none is, 1 on error",
            "--detailed-exitcode is a `houba plan` option; `houba drift` already reports drift in its exit code"
        ));
    }
    args.report.check(ctx)?;
    let mut request = args.scope.request()?;
    request.deep_evidence = args.deep;
    let mut summary = RunSummary::start(RunCommand::Drift, request.shard);
    let mut plan = plan_reported(ctx, &request, &args.report, &mut summary)?;
    plan.actions.clear();
    plan.notes.clear();
    match args.output.format {
        Format::Text if plan.drift.is_empty() => {
            crate::outln!("No drift. The registries hold what houba placed.")
        }
        Format::Text => {
            let text = render::render_text(&plan, args.output.style());
            // Only the drift section: the summary line speaks about actions.
            let drift_only: String = text
                .lines()
                .take_while(|l| !l.contains("No changes."))
                .map(|l| format!("{l}\n"))
                .collect();
            crate::out!("{drift_only}");
            crate::outln!("Drift: {} finding(s).", plan.drift.len());
        }
        f => crate::out!("{}", render::render(&plan, f, args.output.style())),
    }
    operations::finish(
        ctx,
        &args.report,
        &mut summary,
        true,
        request.targets.is_empty(),
    );
    Ok(if plan.drift.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  houba show plan.json
  houba show plan.json --format markdown")]
pub struct ShowArgs {
    /// A plan saved with `houba plan -o FILE`.
    pub plan: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run_show(args: &ShowArgs) -> miette::Result<ExitCode> {
    let plan = load_plan(&args.plan)?;
    crate::out!(
        "{}",
        render::render(&plan, args.output.format, args.output.style())
    );
    Ok(ExitCode::SUCCESS)
}

/// `--show-content`: read each rebuild's base layers and print what its steps change.
fn print_content(ctx: &Context, plan: &crate::plan::model::Plan, format: Format) {
    let rosters = crate::pipeline::rosters(&ctx.settings);
    let contents = ctx.runtime().block_on(crate::rebuild::rebuild_contents(
        plan,
        &ctx.registries(),
        &ctx.cache(),
        &rosters,
    ));
    let views: Vec<crate::plan::content::RebuildView<'_>> = contents
        .iter()
        .map(|c| crate::plan::content::RebuildView {
            address: &c.address,
            steps: &c.steps,
            content: c.content.as_deref().map_err(String::as_str),
        })
        .collect();
    let out = match format {
        Format::Markdown => crate::plan::content::render_markdown(&views),
        _ => crate::plan::content::render_text(&views),
    };
    crate::out!("{out}");
}

/// Write a plan file: the bytes the plan module produced, through a temporary file so that a
/// crash never leaves half a plan.
pub fn save_plan(plan: &Plan, path: &std::path::Path) -> miette::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, file::to_bytes(plan))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            miette::miette!(
                code = "houba::plan_file::write",
                help = "check that the directory exists and is writable",
                "cannot write plan file {}: {e}",
                path.display()
            )
        })
}

/// Read a plan file.
pub fn load_plan(path: &std::path::Path) -> miette::Result<Plan> {
    let bytes = std::fs::read(path).map_err(|e| {
        miette::miette!(
            code = "houba::plan_file::read",
            help = "give the file written by `houba plan -o FILE`",
            "cannot read plan file {}: {e}",
            path.display()
        )
    })?;
    Ok(file::from_bytes(&path.display().to_string(), &bytes)?)
}
