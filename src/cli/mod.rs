//! Command-line entry point: argument parsing and the mapping of outcomes to exit codes.

pub mod graph;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// houba — the single front door for the external container images an organisation runs.
///
/// Policies (MirrorPolicy YAML) declare which upstream images are admitted, where they are
/// placed, how they are hardened and who owns them. houba compiles them, compares them with the
/// live registries and prints a reviewable plan; `houba apply` carries it out.
#[derive(Debug, Parser)]
#[command(name = "houba", version, propagate_version = true)]
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
    #[arg(long, global = true, value_name = "FILE", env = "HOUBA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Policy directory; repeat for several. Overrides `policies` in the config file.
    /// Default: ./policies.
    #[arg(long = "policies", global = true, value_name = "DIR")]
    pub policies: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the desired graph the policies compile to (Graphviz DOT or JSON).
    ///
    /// Every artifact the policies ask for is a node with a stable address
    /// `<policy>/<import>/<variant>[<registry>/<repository>:<tag>]`: a placement puts one
    /// selected upstream tag at one destination tag (copied as-is, or rebuilt when the import
    /// has transform steps or a platform filter); an alias is a moving tag (`latest`,
    /// `{major}.{minor}`, …) that depends on the placement it points at. Nothing is written
    /// anywhere: this shows what `plan` compares with the registries.
    #[command(after_long_help = graph::GRAPH_EXAMPLES)]
    Graph(graph::GraphArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> miette::Result<()> {
    let env = crate::config::process_env();
    let settings =
        crate::config::load_settings(cli.inputs.config.as_deref(), &cli.inputs.policies, &env)?;
    match cli.command {
        Command::Graph(args) => graph::run(&args, &settings, &load_policies(&settings)?),
    }
}

/// Loading policy directories is provided by the policy module; until it is part of this
/// build, commands that need policies stop here with a clear message.
fn load_policies(
    settings: &crate::config::Settings,
) -> miette::Result<Vec<crate::policy::resolved::ResolvedPolicy>> {
    Err(miette::miette!(
        "reading policies from {} is not available in this build",
        settings
            .policies
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
