//! `houba verify IMAGE_REF`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use super::{Context, InputArgs};
use crate::inventory::evidence::Severity;
use crate::inventory::signature::CosignPublicKey;
use crate::inventory::verify::{self, VerifyOptions};
use crate::inventory::{Endpoint, InventoryError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The admission check a deploy pipeline or an admission controller calls. Checks, each printed
with PASS, FAIL or SKIP and why:
  stamp       a houba stamp with every required key, consistent with itself
  provenance  the stamp's claim holds: a copy re-stamped from the upstream base digest gives
              exactly this digest; a rebuild's base digest exists upstream
  signature   (with --key) a cosign simple-signing signature attached to this digest
              verifies with the key and names this digest and repository
  sbom        an SPDX or CycloneDX SBOM is attached
  scan        (with --max-severity) the newest attached SARIF report has no finding above it
Never writes. IMAGE_REF is `registry/repository:tag` or `registry/repository@sha256:…`, where
`registry` is a roster entry's host (or its name).

Exit codes: 0 every check that ran passed; 1 a check failed, or an error (unreachable
registry, unknown image).

Examples:
  houba verify registry.example.com/mirror/debian:12.5 --key cosign.pub --max-severity high
  houba verify local/mirror/busybox@sha256:4f… --format json")]
pub struct VerifyArgs {
    /// The image: `registry/repository:tag` or `registry/repository@sha256:…`.
    pub image: String,
    /// Public key (PEM, ECDSA P-256, as written by `cosign generate-key-pair`) the signature
    /// must verify with. Without it the signature is not checked (SKIP).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Highest severity the newest scan report may contain (critical, high, medium, low).
    /// Without it the scan is not checked (SKIP).
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub max_severity: Option<Severity>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: VerifyFormat,
}

pub fn run(
    args: &VerifyArgs,
    inputs: &InputArgs,
    env: BTreeMap<String, String>,
) -> miette::Result<ExitCode> {
    let settings = super::load_settings(inputs, &env)?;
    super::init_logging(settings.log_format, &env);
    let ctx = Context {
        settings,
        env,
        policies: Vec::new(),
        inputs_digest: String::new(),
        runtime: OnceLock::new(),
    };
    let key = match &args.key {
        Some(path) => {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                miette::miette!(
                    code = "houba::verify::key",
                    help = "pass the public key file written by `cosign generate-key-pair` (cosign.pub)",
                    "cannot read --key {}: {e}",
                    path.display()
                )
            })?;
            Some(CosignPublicKey::from_pem(&pem).map_err(|e| {
                miette::miette!(
                    code = "houba::verify::key",
                    help =
                        "pass an ECDSA P-256 public key in PEM form (`-----BEGIN PUBLIC KEY-----`)",
                    "--key {}: {e}",
                    path.display()
                )
            })?)
        }
        None => None,
    };
    let (endpoint, repository, reference) = resolve(&ctx, &args.image)?;
    let registries = ctx.registries();
    let upstream = |host: &str| registries.source(host).map_err(|e| e.to_string());
    let options = VerifyOptions {
        key: key.as_ref(),
        max_severity: args.max_severity,
        label_prefix: &ctx.settings.label_prefix,
    };
    let report = ctx
        .runtime()
        .block_on(verify::verify(
            &endpoint,
            &repository,
            &reference,
            &ctx.cache(),
            &upstream,
            &options,
        ))
        .map_err(|e: InventoryError| {
            miette::miette!(
                code = "houba::verify",
                help = "check the image reference and that the registry is reachable with the roster credentials",
                "{e}"
            )
        })?;
    match args.format {
        VerifyFormat::Text => print!("{}", verify::text(&report)),
        VerifyFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report always serialises")
        ),
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Split `registry/repository:tag|@digest` against the roster (longest matching host wins).
fn resolve(ctx: &Context, image: &str) -> miette::Result<(Endpoint, String, String)> {
    let registries = ctx.registries();
    let bad = |why: &str| {
        miette::miette!(
            code = "houba::verify::reference",
            help = format!(
                "write `registry/repository:tag` or `registry/repository@sha256:…` with a registry from the roster: {}",
                ctx.settings
                    .registries
                    .values()
                    .map(|e| ctx.settings.display_host(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "{image}: {why}"
        )
    };
    let mut best: Option<(&String, usize)> = None;
    for (name, entry) in &ctx.settings.registries {
        for host in [ctx.settings.display_host(entry), name.clone()] {
            if image.starts_with(&format!("{host}/")) && best.is_none_or(|(_, n)| host.len() > n) {
                best = Some((name, host.len()));
            }
        }
    }
    let (name, len) = best.ok_or_else(|| bad("no registry of the roster"))?;
    let rest = &image[len + 1..];
    let (repository, reference) = match rest.split_once('@') {
        Some((repo, digest)) => {
            if !crate::registry::digest::is_digest(digest) {
                return Err(bad("the part after `@` is not a digest"));
            }
            (repo.to_string(), digest.to_string())
        }
        None => {
            let slash = rest.rfind('/').map_or(0, |i| i + 1);
            match rest[slash..].rsplit_once(':') {
                Some((_, tag)) if !tag.is_empty() => {
                    let repo = &rest[..rest.len() - tag.len() - 1];
                    (repo.to_string(), tag.to_string())
                }
                _ => return Err(bad("no tag or digest")),
            }
        }
    };
    if repository.is_empty() {
        return Err(bad("no repository"));
    }
    let registry = registries
        .destination(name)
        .map_err(|e| miette::miette!("{e}"))?;
    Ok((
        Endpoint {
            name: name.clone(),
            host: registries.destination_display(name),
            registry,
        },
        repository,
        reference,
    ))
}
