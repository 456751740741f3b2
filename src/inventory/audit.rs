//! The coverage report: per repository and in total, how many tagged images are unstamped,
//! stamped, and carry an SBOM, a signature and a scan report.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Inventory;
use crate::registry::RequestStats;

/// Version of the JSON report (dashboards key on it).
pub const FORMAT_VERSION: &str = "1";

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
/// How much of a repository (or of everything) carries houba's stamp and evidence.
pub struct Coverage {
    /// Distinct images (digests) with at least one tag.
    pub tagged_images: usize,
    /// Tagged images without a stamp.
    pub unstamped: usize,
    /// Tagged images with a stamp.
    pub stamped: usize,
    /// Images with at least one SBOM attached.
    pub with_sbom: usize,
    /// Images with a signature attached.
    pub signed: usize,
    /// Images with a scan report attached.
    pub scanned: usize,
    /// `stamped / tagged_images` (1.0 for an empty repository).
    pub coverage: f64,
}

impl Coverage {
    fn finish(mut self) -> Self {
        self.coverage = if self.tagged_images == 0 {
            1.0
        } else {
            self.stamped as f64 / self.tagged_images as f64
        };
        self
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
/// The coverage of one repository.
pub struct RepositoryCoverage {
    /// Roster entry name.
    pub registry: String,
    /// Repository path in the registry.
    pub repository: String,
    /// The repository is a destination of a policy.
    pub managed: bool,
    #[serde(flatten)]
    /// Its coverage.
    pub coverage: Coverage,
}

#[derive(Debug, Clone, Serialize)]
/// `houba audit`'s answer (its JSON document, `format_version` 1).
pub struct AuditReport {
    /// Version of this document's format.
    pub format_version: String,
    /// Every repository scanned.
    pub repositories: Vec<RepositoryCoverage>,
    /// The coverage over every repository.
    pub total: Coverage,
    /// `host/repository` of repositories no policy manages.
    pub unmanaged_repositories: Vec<String>,
    /// The `--min-coverage` asked for.
    pub min_coverage: Option<f64>,
    /// Whether `total.coverage` reaches `min_coverage` (true when none was asked for).
    pub passed: bool,
    /// Requests the scan cost, per registry.
    pub requests: BTreeMap<String, RequestStats>,
}

/// The coverage of a scan, against `min_coverage` when given.
pub fn audit(
    inventory: &Inventory,
    min_coverage: Option<f64>,
    requests: BTreeMap<String, RequestStats>,
) -> AuditReport {
    let mut per: BTreeMap<(String, String), RepositoryCoverage> = inventory
        .repositories
        .iter()
        .map(|r| {
            (
                (r.host.clone(), r.repository.clone()),
                RepositoryCoverage {
                    registry: r.host.clone(),
                    repository: r.repository.clone(),
                    managed: r.managed,
                    coverage: Coverage::default(),
                },
            )
        })
        .collect();
    let mut total = Coverage::default();
    for image in inventory.images.iter().filter(|i| !i.tags.is_empty()) {
        let key = (image.host.clone(), image.repository.clone());
        let Some(entry) = per.get_mut(&key) else {
            continue;
        };
        for c in [&mut entry.coverage, &mut total] {
            c.tagged_images += 1;
            if image.stamp.is_some() {
                c.stamped += 1;
            } else {
                c.unstamped += 1;
            }
            c.with_sbom += usize::from(!image.evidence.sbom.is_empty());
            c.signed += usize::from(image.evidence.signed());
            c.scanned += usize::from(image.evidence.scan.is_some());
        }
    }
    let repositories: Vec<RepositoryCoverage> = per
        .into_values()
        .map(|mut r| {
            r.coverage = r.coverage.finish();
            r
        })
        .collect();
    let total = total.finish();
    let unmanaged_repositories = repositories
        .iter()
        .filter(|r| !r.managed)
        .map(|r| format!("{}/{}", r.registry, r.repository))
        .collect();
    AuditReport {
        format_version: FORMAT_VERSION.to_string(),
        passed: min_coverage.is_none_or(|m| total.coverage >= m),
        repositories,
        total,
        unmanaged_repositories,
        min_coverage,
        requests,
    }
}

fn pct(c: &Coverage) -> String {
    format!("{:.1}%", c.coverage * 100.0)
}

/// The audit as a text table.
pub fn text(r: &AuditReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<44} {:>6} {:>6} {:>7} {:>5} {:>6} {:>7} {:>7}",
        "REPOSITORY", "IMAGES", "UNSTMP", "STAMPED", "SBOM", "SIGNED", "SCANNED", "COVER"
    );
    let row = |out: &mut String, name: &str, c: &Coverage| {
        let name = if name.chars().count() > 44 {
            let tail: String = name.chars().skip(name.chars().count() - 43).collect();
            format!("…{tail}")
        } else {
            name.to_string()
        };
        let _ = writeln!(
            out,
            "{:<44} {:>6} {:>6} {:>7} {:>5} {:>6} {:>7} {:>7}",
            name,
            c.tagged_images,
            c.unstamped,
            c.stamped,
            c.with_sbom,
            c.signed,
            c.scanned,
            pct(c)
        );
    };
    for repo in &r.repositories {
        let mark = if repo.managed { "" } else { " *" };
        row(
            &mut out,
            &format!("{}/{}{mark}", repo.registry, repo.repository),
            &repo.coverage,
        );
    }
    row(&mut out, "TOTAL", &r.total);
    if !r.unmanaged_repositories.is_empty() {
        let _ = writeln!(
            out,
            "\n* {} repositor{} no policy manages (their images bypass the front door).",
            r.unmanaged_repositories.len(),
            if r.unmanaged_repositories.len() == 1 {
                "y"
            } else {
                "ies"
            }
        );
    }
    if let Some(m) = r.min_coverage {
        let _ = writeln!(
            out,
            "\nCoverage {} {} the required {:.1}%.",
            pct(&r.total),
            if r.passed { "meets" } else { "is below" },
            m * 100.0
        );
    }
    let _ = writeln!(out, "\n{}", super::render::requests_line(&r.requests));
    out
}
