//! Command-line entry point: argument parsing and the mapping of outcomes to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{CaSource, PackageMirror, RegistryEndpoint, RegistryEntry, Settings};

pub mod validate;

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
    /// Check policy files and report every problem (no registry is contacted).
    Validate(validate::ValidateArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match interim_settings(&cli.inputs) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    match &cli.command {
        Command::Validate(args) => validate::run(args, &settings),
    }
}

/// Settings from `--policies` and the roster names of `--config`, enough for `validate`.
/// Superseded by `config::load_settings` (full keys, `HOUBA_*` variables, diagnostics).
fn interim_settings(inputs: &InputArgs) -> Result<Settings, String> {
    let mut settings = Settings {
        config_file: inputs.config.clone(),
        policies: if inputs.policies.is_empty() {
            vec![PathBuf::from("policies")]
        } else {
            inputs.policies.clone()
        },
        registries: Default::default(),
        ca_certs: Default::default(),
        package_mirrors: Default::default(),
        log_format: Default::default(),
        label_prefix: "io.houba".into(),
        concurrency: 8,
        max_prune_fraction: 0.5,
    };
    let Some(path) = &inputs.config else {
        return Ok(settings);
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let section = |name: &str| table.get(name).and_then(toml::Value::as_table).cloned();
    let base = path.parent().unwrap_or(std::path::Path::new(""));
    for (name, entry) in section("registries").unwrap_or_default() {
        let text = |key: &str| {
            entry
                .get(key)
                .and_then(toml::Value::as_str)
                .map(str::to_string)
        };
        let endpoint = match text("layout") {
            Some(layout) => RegistryEndpoint::Layout {
                path: base.join(layout),
            },
            None => RegistryEndpoint::Http {
                host: text("host").unwrap_or_default(),
                prefix: None,
                tls_verify: entry
                    .get("tls_verify")
                    .and_then(toml::Value::as_bool)
                    .unwrap_or(true),
                ca_cert: None,
                credentials: Default::default(),
            },
        };
        let entry = RegistryEntry {
            name: name.clone(),
            endpoint,
            mirror_of: text("mirror_of"),
            concurrency: 8,
        };
        settings.registries.insert(name, entry);
    }
    for (name, entry) in section("ca_certs").unwrap_or_default() {
        let source = match (
            entry.get("path").and_then(toml::Value::as_str),
            entry.get("pem").and_then(toml::Value::as_str),
        ) {
            (Some(file), _) => CaSource::Path(base.join(file)),
            (None, pem) => CaSource::Pem(pem.unwrap_or_default().to_string()),
        };
        settings.ca_certs.insert(name, source);
    }
    for (name, _) in section("package_mirrors").unwrap_or_default() {
        settings
            .package_mirrors
            .insert(name, PackageMirror::default());
    }
    if inputs.policies.is_empty()
        && let Some(dirs) = table.get("policies").and_then(toml::Value::as_array)
    {
        settings.policies = dirs
            .iter()
            .filter_map(toml::Value::as_str)
            .map(|dir| base.join(dir))
            .collect();
    }
    Ok(settings)
}
