//! The evidence contract as read back: which referrers are SBOMs, signatures and scan reports.
//!
//! Every evidence item is an OCI image manifest whose `subject` is the image digest, with an
//! empty config and one layer; its `artifactType` says what it is. Scan reports carry their
//! finding counts as annotations on the referrer manifest (`<prefix>.scan.critical|high|
//! medium|low`), so the SCAN column costs no blob read.

use std::collections::BTreeSet;

use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::registry::{Referrer, Registry, RegistryError};

/// `artifactType` of an SPDX SBOM.
pub const SPDX: &str = "application/spdx+json";
/// `artifactType` of a CycloneDX SBOM.
pub const CYCLONEDX: &str = "application/vnd.cyclonedx+json";
/// `artifactType` of a cosign signature.
pub const COSIGN_SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Media type of the payload cosign signs.
pub const COSIGN_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 DER signature over the layer (the payload).
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `artifactType` of a SARIF scan report.
pub const SARIF: &str = "application/sarif+json";
/// Media type of an empty config (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Largest evidence blob read (a SARIF report or a signature payload).
const MAX_EVIDENCE_BYTES: usize = 64 << 20;

/// What is attached to one image.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Evidence {
    /// SBOM formats present: `spdx`, `cyclonedx`.
    pub sbom: Vec<String>,
    /// Signature referrers listed.
    pub signatures: usize,
    /// A cosign `sha256-<hex>.sig` tag exists for the image.
    pub signature_tag: bool,
    /// The newest scan report, when any.
    pub scan: Option<ScanReport>,
    /// Scan reports attached.
    pub scan_reports: usize,
    #[serde(skip)]
    /// Every referrer of the image.
    pub referrers: Vec<Referrer>,
}

/// A scan report's finding counts, from its referrer annotations.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ScanReport {
    /// Digest of the report's referrer manifest.
    pub digest: String,
    /// The scanner, from the report's annotations.
    pub tool: Option<String>,
    /// When it ran.
    pub created: Option<String>,
    /// Critical findings.
    pub critical: u64,
    /// High findings.
    pub high: u64,
    /// Medium findings.
    pub medium: u64,
    /// Low findings.
    pub low: u64,
}

impl ScanReport {
    /// `C1 H3 M7 L2`.
    pub fn counts(&self) -> String {
        format!(
            "C{} H{} M{} L{}",
            self.critical, self.high, self.medium, self.low
        )
    }

    /// Findings at `severity` or above.
    pub fn at_or_above(&self, severity: Severity) -> u64 {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.critical + self.high,
            Severity::Medium => self.critical + self.high + self.medium,
            Severity::Low => self.critical + self.high + self.medium + self.low,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
/// A finding's severity, in scan reports and `--max-severity`.
// clap shows a variant's doc comment in `--help`: the names say it all.
#[allow(missing_docs)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The next severity up, `None` above critical.
    pub fn above(self) -> Option<Severity> {
        match self {
            Severity::Low => Some(Severity::Medium),
            Severity::Medium => Some(Severity::High),
            Severity::High => Some(Severity::Critical),
            Severity::Critical => None,
        }
    }
}

impl Evidence {
    /// What an image's referrers say (`prefix`: houba's stamp key prefix, for its own annotations on them).
    pub fn from_referrers(referrers: &[Referrer], prefix: &str) -> Evidence {
        let mut sbom = BTreeSet::new();
        let mut e = Evidence {
            referrers: referrers.to_vec(),
            ..Evidence::default()
        };
        let mut reports = Vec::new();
        for r in referrers {
            match r.artifact_type.as_deref() {
                Some(SPDX) => {
                    sbom.insert("spdx".to_string());
                }
                Some(CYCLONEDX) => {
                    sbom.insert("cyclonedx".to_string());
                }
                Some(COSIGN_SIGNATURE) => e.signatures += 1,
                Some(SARIF) => reports.push(scan_report(r, prefix)),
                _ => {}
            }
        }
        e.scan_reports = reports.len();
        e.scan = newest(reports);
        e.sbom = sbom.into_iter().collect();
        e
    }

    /// Whether a signature is attached (a referrer or cosign's `.sig` tag).
    pub fn signed(&self) -> bool {
        self.signatures > 0 || self.signature_tag
    }

    /// The newest scan report's referrer, for reading its blob.
    pub fn newest_scan_referrer(&self) -> Option<&Referrer> {
        let d = &self.scan.as_ref()?.digest;
        self.referrers.iter().find(|r| &r.descriptor.digest == d)
    }
}

fn scan_report(r: &Referrer, prefix: &str) -> ScanReport {
    let count = |k: &str| {
        r.annotations
            .get(&format!("{prefix}.scan.{k}"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    ScanReport {
        digest: r.descriptor.digest.clone(),
        tool: r.annotations.get(&format!("{prefix}.scan.tool")).cloned(),
        created: r.annotations.get(crate::stamp::OCI_CREATED).cloned(),
        critical: count("critical"),
        high: count("high"),
        medium: count("medium"),
        low: count("low"),
    }
}

/// The report with the latest `created` (reports without one are older than any with one;
/// ties are broken by digest so the choice is stable).
fn newest(reports: Vec<ScanReport>) -> Option<ScanReport> {
    reports.into_iter().max_by(|a, b| {
        let t = |r: &ScanReport| r.created.as_deref().and_then(crate::oci::rfc3339_seconds);
        (t(a), &a.digest).cmp(&(t(b), &b.digest))
    })
}

/// Read a referrer manifest and its first layer's bytes (size-bounded).
pub async fn read_evidence_layer(
    registry: &dyn Registry,
    cache: &crate::observe::ManifestCache,
    repository: &str,
    referrer_digest: &str,
) -> Result<Option<(Value, Vec<u8>)>, RegistryError> {
    let Some(bytes) =
        super::manifest_by_digest(registry, cache, repository, referrer_digest).await?
    else {
        return Ok(None);
    };
    let Ok(manifest) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(None);
    };
    let Some(layer) = manifest
        .get("layers")
        .and_then(Value::as_array)
        .and_then(|l| l.first())
        .cloned()
    else {
        return Ok(None);
    };
    let Some(digest) = layer.get("digest").and_then(Value::as_str) else {
        return Ok(None);
    };
    let mut stream = registry.get_blob(repository, digest).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > MAX_EVIDENCE_BYTES {
            return Ok(None);
        }
    }
    Ok(Some((layer, out)))
}

/// The CVE identifiers a SARIF report's results mention (rule ids, messages, properties),
/// upper-cased.
pub fn sarif_cves(report: &[u8]) -> BTreeSet<String> {
    let Ok(value) = serde_json::from_slice::<Value>(report) else {
        return BTreeSet::new();
    };
    let re = regex::Regex::new(r"(?i)\bCVE-\d{4}-\d{4,}\b").expect("valid regex");
    let mut out = BTreeSet::new();
    let runs = value.get("runs").and_then(Value::as_array);
    for run in runs.into_iter().flatten() {
        let results = run.get("results").and_then(Value::as_array);
        for result in results.into_iter().flatten() {
            collect_strings(result, &mut |s| {
                out.extend(re.find_iter(s).map(|m| m.as_str().to_ascii_uppercase()));
            });
        }
    }
    out
}

fn collect_strings(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, f)),
        Value::Object(m) => m.values().for_each(|x| collect_strings(x, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Descriptor;
    use std::collections::BTreeMap;

    fn referrer(t: &str, digest: &str, annotations: &[(&str, &str)]) -> Referrer {
        Referrer {
            descriptor: Descriptor {
                media_type: crate::stamp::OCI_MANIFEST.into(),
                digest: digest.into(),
                size: 1,
            },
            artifact_type: Some(t.into()),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn newest_scan_report_wins_and_counts_read_from_annotations() {
        let old = referrer(
            SARIF,
            "sha256:1",
            &[
                ("io.houba.scan.critical", "9"),
                ("org.opencontainers.image.created", "2024-01-01T00:00:00Z"),
            ],
        );
        let new = referrer(
            SARIF,
            "sha256:2",
            &[
                ("io.houba.scan.critical", "1"),
                ("io.houba.scan.high", "3"),
                ("io.houba.scan.medium", "7"),
                ("io.houba.scan.low", "2"),
                (
                    "org.opencontainers.image.created",
                    "2024-01-01T03:00:00+02:00",
                ),
            ],
        );
        let e = Evidence::from_referrers(&[old, new, referrer(SPDX, "sha256:3", &[])], "io.houba");
        let scan = e.scan.clone().unwrap();
        assert_eq!(scan.counts(), "C1 H3 M7 L2");
        assert_eq!(scan.at_or_above(Severity::High), 4);
        assert_eq!(e.sbom, vec!["spdx"]);
        assert_eq!(e.scan_reports, 2);
        assert!(!e.signed());
    }

    #[test]
    fn cves_come_from_results_only() {
        let sarif = br#"{"runs":[{"tool":{"driver":{"rules":[{"id":"CVE-2000-0001"}]}},
            "results":[{"ruleId":"cve-2024-12345","message":{"text":"see CVE-2023-0002"}}]}]}"#;
        let got: Vec<String> = sarif_cves(sarif).into_iter().collect();
        assert_eq!(got, vec!["CVE-2023-0002", "CVE-2024-12345"]);
    }
}
