//! Command-line entry point: argument parsing and the mapping of outcomes to exit codes.

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
pub enum Command {}

pub fn main() -> ExitCode {
    let _cli = Cli::parse();
    ExitCode::SUCCESS
}
