//! `houba attach`: record a scan report (SARIF 2.1.0) as an OCI referrer of an image.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use miette::{IntoDiagnostic, miette};

use super::InputArgs;
use crate::config::{self, RegistryEndpoint, Settings};
use crate::evidence::referrer::{self, Evidence};
use crate::evidence::sarif::{self, Severity};
use crate::evidence::sign::KeySigner;
use crate::observe::Registries;
use crate::registry::ConnectOptions;

/// Exit code when findings at or above `--fail-on` exist (the report is attached anyway).
pub const FINDINGS_EXIT: u8 = 3;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
The report is stored as an OCI referrer of the image's digest (artifactType
application/sarif+json), with the finding counts per severity as annotations on the
referrer manifest (<prefix>.scan.critical/high/medium/low, <prefix>.scan.tool), so that
dashboards read them without downloading the report. With [signing] configured the
referrer is signed too. Registries without the referrers API get the sha256-<hex>
fallback tag.

A result's severity is its rule's properties.security-severity (CVSS: >=9 critical,
>=7 high, >=4 medium, >0 low), else its level (error high, warning medium, note low).

Examples:
  grype registry.example/demo/app:1.2 -o sarif | houba attach registry.example/demo/app:1.2 --report -
  houba attach registry.example/demo/app@sha256:… --report trivy.sarif --fail-on high

Exit codes: 0 attached; 1 error (an invalid report attaches nothing); 3 attached, and
findings at or above --fail-on exist.")]
pub struct AttachArgs {
    /// The image: `<registry>/<repository>:<tag>` or `…@sha256:<hex>`; the registry must be in
    /// the roster (by host, with its path prefix if it has one).
    #[arg(value_name = "IMAGE_REF")]
    pub image: String,
    /// The SARIF 2.1.0 report; `-` reads it from standard input.
    #[arg(long, value_name = "FILE|-")]
    pub report: PathBuf,
    /// Exit 3 when findings at or above this severity exist (the report is still attached:
    /// houba records, it does not gate).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<Severity>,
}

/// `<host>[/prefix]/<repository>` split against the roster, and the tag or digest.
struct ImageRef {
    entry: String,
    display: String,
    repository: String,
    reference: String,
}

fn parse_ref(settings: &Settings, image: &str) -> miette::Result<ImageRef> {
    let (name, reference) = match image.rsplit_once('@') {
        Some((name, digest)) => (name, digest.to_owned()),
        None => match image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag.to_owned()),
            _ => (image, "latest".to_owned()),
        },
    };
    let mut best: Option<(usize, &config::RegistryEntry, String)> = None;
    for entry in settings.registries.values() {
        let display = match &entry.endpoint {
            RegistryEndpoint::Http { .. } => settings.display_host(entry),
            RegistryEndpoint::Layout { .. } => entry.name.clone(),
        };
        if let Some(repo) = name.strip_prefix(&format!("{display}/"))
            && best.as_ref().is_none_or(|(len, ..)| display.len() > *len)
        {
            best = Some((display.len(), entry, repo.to_owned()));
        }
    }
    let Some((_, entry, repository)) = best else {
        return Err(miette!(
            help = "write the image as <registry host>/<repository>:<tag> with a host from the roster (houba.toml [registries] or HOUBA_REGISTRIES)",
            "{image}: no roster registry matches this reference"
        ));
    };
    Ok(ImageRef {
        entry: entry.name.clone(),
        display: settings.display_host(entry),
        repository,
        reference,
    })
}

fn read_report(path: &PathBuf) -> miette::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).into_diagnostic()?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|e| miette!("cannot read the report {}: {e}", path.display()))
}

pub fn run(inputs: &InputArgs, args: &AttachArgs) -> miette::Result<ExitCode> {
    let env = config::process_env();
    let settings = super::load_settings(inputs, &env)?;
    super::init_logging(settings.log_format, &env);
    let document = read_report(&args.report)?;
    let source = if args.report.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        args.report.display().to_string()
    };
    let report = sarif::parse(&document).map_err(|e| {
        miette!(
            help = "give a SARIF 2.1.0 log (grype -o sarif, trivy --format sarif, …); nothing was attached",
            "{source}: not a valid SARIF 2.1.0 report: {e}"
        )
    })?;
    let target = parse_ref(&settings, &args.image)?;
    let signer = settings
        .signing
        .as_ref()
        .map(|s| KeySigner::from_pkcs8_pem(s.key.expose(), &s.origin))
        .transpose()
        .map_err(|e| miette!("{e}"))?;
    let options = ConnectOptions {
        env: std::sync::Arc::new({
            let env = env.clone();
            move |name: &str| env.get(name).cloned()
        }),
        docker_config: super::docker_config_path(&env),
        ..ConnectOptions::default()
    };
    let registries = Registries::new(&settings, options);
    let runtime = tokio::runtime::Runtime::new().into_diagnostic()?;
    let attached_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let evidence: Evidence = report.evidence(document, &settings.label_prefix, &attached_at);
    let (subject, referrer_descriptor, signature) = runtime.block_on(async {
        let registry = registries
            .destination(&target.entry)
            .map_err(|e| miette!("{e}"))?;
        let subject = registry
            .head_manifest(&target.repository, &target.reference)
            .await
            .map_err(|e| miette!("{e}"))?
            .ok_or_else(|| {
                miette!(
                    help = "check the tag or digest; houba attaches reports to images that exist",
                    "{}/{}:{}: not found",
                    target.display,
                    target.repository,
                    target.reference
                )
            })?;
        let attached = referrer::attach(registry.as_ref(), &target.repository, &subject, &evidence)
            .await
            .map_err(|e| miette!("{e}"))?;
        let signature = match &signer {
            Some(signer) => Some(
                referrer::attach_signature(
                    registry.as_ref(),
                    &target.repository,
                    &format!("{}/{}", target.display, target.repository),
                    &attached,
                    signer,
                    Default::default(),
                )
                .await
                .map_err(|e| miette!("{e}"))?,
            ),
            None => None,
        };
        Ok::<_, miette::Report>((subject, attached, signature))
    })?;
    let counts: Vec<String> = Severity::ALL
        .iter()
        .map(|s| format!("{} {}", report.count(*s), s.name()))
        .collect();
    println!(
        "Attached the {} report ({}) to {}/{}@{} as {}{}.",
        report.tools.join(","),
        counts.join(", "),
        target.display,
        target.repository,
        subject.digest,
        referrer_descriptor.digest,
        signature
            .map(|s| format!(", signed ({})", s.digest))
            .unwrap_or_default()
    );
    if let Some(threshold) = args.fail_on {
        let n = report.at_or_above(threshold);
        if n > 0 {
            eprintln!(
                "{n} finding(s) at or above {}: exiting {FINDINGS_EXIT} (the report is attached).",
                threshold.name()
            );
            return Ok(ExitCode::from(FINDINGS_EXIT));
        }
    }
    Ok(ExitCode::SUCCESS)
}
