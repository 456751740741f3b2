//! Command-line entry point: argument parsing, input discovery and the mapping of outcomes to
//! exit codes (Terraform's: 0 success, 1 error, 2 "changes present" where asked for).

pub mod apply;
pub mod attach;
pub mod diagnose;
pub mod graph;
pub mod operations;
pub mod output;
pub mod plan;
pub mod validate;

pub mod audit;
pub mod blast_radius;
pub mod gc;
pub mod purge;
mod scan;
pub mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};

use crate::config::{self, LogFormat, Settings};
use crate::observe::{self, ManifestCache};
use crate::policy::{self, resolved::ResolvedPolicy};
use crate::registry::ConnectOptions;
use crate::registry::Registries;

/// houba — the single front door for the external container images an organisation runs.
///
/// Policies (MirrorPolicy YAML) declare which upstream images are admitted, where they are
/// placed, how they are hardened and who owns them. houba compiles them, compares them with the
/// live registries and prints a reviewable plan; `houba apply` carries it out. Every image
/// houba places carries a provenance stamp (OCI annotations).
#[derive(Debug, Parser)]
#[command(
    name = "houba",
    version,
    propagate_version = true,
    after_help = "\
Inputs: every command reads ./houba.toml when present (or --config FILE) and the policy
directories it names (default ./policies; --policies DIR overrides). HOUBA_* environment
variables override the file (HOUBA_REGISTRIES, HOUBA_LOG_FORMAT, HOUBA_LABEL_PREFIX, …).

Typical loop:
  houba validate                  # are the policies right?
  houba plan -o plan.json         # what would change? (post it on the pull request)
  houba apply plan.json           # do exactly that
  houba drift                     # did anything change outside houba? (exit 2 if so)"
)]
pub struct Cli {
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How every command finds its inputs.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// Configuration file (registry roster, transform rosters, policy directories).
    /// Default: ./houba.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Policy directory; repeat for several. Overrides `policies` in the configuration.
    /// Default: ./policies.
    #[arg(long = "policies", global = true, value_name = "DIR")]
    pub policies: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check policies and configuration; report every problem with file:line:col.
    Validate(validate::ValidateArgs),
    /// Print the desired graph the policies compile to (Graphviz DOT or JSON).
    ///
    /// Every artifact the policies ask for is a node with a stable address
    /// `<policy>/<import>/<variant>[<registry>/<repository>:<tag>]`: a placement puts one
    /// selected upstream tag at one destination tag (copied as-is, or rebuilt when the import
    /// has transform steps or a platform filter); an alias is a moving tag (`latest`,
    /// `{major}.{minor}`, …) that depends on the placement it points at. Upstream tag lists
    /// are read from the registries, or from `--tags FILE`. Nothing is written anywhere.
    #[command(after_long_help = graph::GRAPH_EXAMPLES)]
    Graph(graph::GraphArgs),
    /// Compare the policies with the live registries and show what apply would change.
    Plan(plan::PlanArgs),
    /// Carry out a plan: a saved one, or a fresh one after confirmation.
    Apply(apply::ApplyArgs),
    /// Show only what changed outside houba; exit 2 when drift is found.
    Drift(plan::DriftArgs),
    /// Render a saved plan file.
    Show(plan::ShowArgs),
    /// Which images derive from a base digest, a base image, an owner, a policy or a CVE?
    BlastRadius(blast_radius::BlastRadiusArgs),
    /// Coverage report: stamped, SBOM, signed and scanned images per repository.
    Audit(audit::AuditArgs),
    /// Admission check of one image: stamp, provenance, signature, SBOM, scan (exit 0/1).
    Verify(verify::VerifyArgs),
    /// Delete evidence (referrers) of images houba placed that are no longer tagged.
    Gc(gc::GcArgs),
    /// Delete marked-pruned tags past their grace period that the usage oracle calls unused.
    Purge(purge::PurgeArgs),
    /// Attach a scan report (SARIF 2.1.0) to an image as an OCI referrer.
    Attach(attach::AttachArgs),
}

/// Everything a command needs, found once.
pub struct Context {
    pub settings: Settings,
    pub env: BTreeMap<String, String>,
    pub policies: Vec<ResolvedPolicy>,
    /// `sha256:` over the policy files and the effective configuration.
    pub inputs_digest: String,
    runtime: OnceLock<tokio::runtime::Runtime>,
}

impl Context {
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("the tokio runtime starts")
        })
    }

    pub fn registries(&self) -> Registries {
        let env = self.env.clone();
        let options = ConnectOptions {
            env: std::sync::Arc::new(move |name: &str| env.get(name).cloned()),
            docker_config: docker_config_path(&self.env),
            ..ConnectOptions::default()
        };
        Registries::new(&self.settings, options)
    }

    /// What evidence houba attached, beside the manifest cache.
    pub fn evidence_cache(&self) -> crate::evidence::collect::EvidenceCache {
        crate::evidence::collect::EvidenceCache::new(observe::default_cache_dir(&self.env))
    }

    pub fn cache(&self) -> ManifestCache {
        ManifestCache::new(observe::default_cache_dir(&self.env))
    }

    /// Make a plan from this context's inputs.
    pub fn make_plan(
        &self,
        request: &crate::pipeline::PlanRequest,
    ) -> miette::Result<crate::plan::model::Plan> {
        let registries = self.registries();
        let cache = self.cache();
        let inputs = crate::pipeline::PlanInputs {
            settings: &self.settings,
            policies: &self.policies,
            inputs_digest: &self.inputs_digest,
            registries: &registries,
            cache: &cache,
            evidence_cache: &self.evidence_cache(),
        };
        self.runtime()
            .block_on(crate::pipeline::make_plan(&inputs, request))
            .map_err(miette::Report::new)
    }
}

/// Docker's `config.json`: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let p = match env.get("DOCKER_CONFIG") {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => PathBuf::from(env.get("HOME")?).join(".docker/config.json"),
    };
    p.exists().then_some(p)
}

fn init_logging(format: LogFormat, env: &BTreeMap<String, String>) {
    let default = match format {
        LogFormat::Json => "houba=info",
        LogFormat::Text => "houba=warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_new(
        env.get("HOUBA_LOG").map(String::as_str).unwrap_or(default),
    )
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.without_time().try_init(),
    };
}

fn load_settings(inputs: &InputArgs, env: &BTreeMap<String, String>) -> miette::Result<Settings> {
    config::load_settings(inputs.config.as_deref(), &inputs.policies, env)
        .map_err(miette::Report::new)
}

/// Load and validate the policies; any problem stops the command (exit 1) with every
/// diagnostic shown.
fn load_context(inputs: &InputArgs, env: BTreeMap<String, String>) -> Result<Context, ExitCode> {
    let settings = match load_settings(inputs, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e:?}");
            return Err(ExitCode::FAILURE);
        }
    };
    init_logging(settings.log_format, &env);
    let outcome = policy::load_policies(&settings.policies, &settings);
    if !outcome.diagnostics.is_empty() {
        let n = outcome.diagnostics.len();
        for d in outcome.diagnostics {
            eprintln!("{:?}", miette::Report::new(d));
        }
        eprintln!(
            "{n} problem(s) in the policies; run `houba validate` for details. Nothing was read from or written to any registry."
        );
        return Err(ExitCode::FAILURE);
    }
    let inputs_digest = crate::pipeline::inputs_digest(&outcome.policies, &settings);
    Ok(Context {
        settings,
        env,
        policies: outcome.policies,
        inputs_digest,
        runtime: OnceLock::new(),
    })
}

/// Parses the command line. A usage error exits 1 with clap's message (clap's own default, 2,
/// is the code CI reads as "changes present"); `--help` and `--version` exit 0.
fn parse_args() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// The warning printed when the policy directories hold no MirrorPolicy: with nothing to
/// compare, a plan is empty and an apply does nothing, which is almost always a path mistake
/// or a volume that is not mounted.
pub fn no_policies_message(paths: &[PathBuf]) -> String {
    let read: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    format!(
        "no policies found in {}: is the volume mounted?",
        if read.is_empty() {
            "(no policy directory configured)".to_string()
        } else {
            read.join(", ")
        }
    )
}

pub fn main() -> ExitCode {
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let env = config::process_env();
    let result = match &cli.command {
        Command::Validate(args) => match load_settings(&cli.inputs, &env) {
            Ok(settings) => return validate::run(args, &settings),
            Err(e) => Err(e),
        },
        Command::Show(args) => plan::run_show(args),
        Command::Verify(args) => verify::run(args, &cli.inputs, env),
        Command::Attach(args) => attach::run(&cli.inputs, args),
        other => {
            let ctx = match load_context(&cli.inputs, env) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if ctx.policies.is_empty() {
                let message = no_policies_message(&ctx.settings.policies);
                if let Command::Apply(args) = other
                    && args.auto
                {
                    eprintln!(
                        "error: {message} Nothing was applied (--auto refuses an empty policy set)."
                    );
                    return ExitCode::FAILURE;
                }
                eprintln!("warning: {message}");
            }
            match other {
                Command::Graph(args) => graph::run(args, &ctx),
                Command::Plan(args) => plan::run_plan(args, &ctx),
                Command::Apply(args) => apply::run(args, &ctx),
                Command::Drift(args) => plan::run_drift(args, &ctx),
                Command::BlastRadius(args) => blast_radius::run(args, &ctx),
                Command::Audit(args) => audit::run(args, &ctx),
                Command::Gc(args) => gc::run(args, &ctx),
                Command::Purge(args) => purge::run(args, &ctx),
                Command::Validate(_)
                | Command::Show(_)
                | Command::Verify(_)
                | Command::Attach(_) => {
                    unreachable!("handled above")
                }
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:?}");
            ExitCode::FAILURE
        }
    }
}
