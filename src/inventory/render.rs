//! Views of the blast radius: a text table that fits 100 columns, CSV, Markdown. (JSON is the
//! serialised report itself.)

use std::fmt::Write;

use super::blast::{Artifact, BlastRadius, Unstamped};
use super::evidence::ScanReport;
use crate::registry::RequestStats;

const IMAGE_WIDTH: usize = 28;
const POLICY_WIDTH: usize = 12;
const SOURCE_WIDTH: usize = 24;
const SBOM_WIDTH: usize = 8;
const SIGNED_WIDTH: usize = 6;

/// `spdx,cdx` or `-`.
pub fn sbom_cell(formats: &[String]) -> String {
    if formats.is_empty() {
        return "-".into();
    }
    formats
        .iter()
        .map(|f| if f == "cyclonedx" { "cdx" } else { f.as_str() })
        .collect::<Vec<_>>()
        .join(",")
}

/// An image's scan column: `C/H/M/L` counts, or `-`.
pub fn scan_cell(scan: &Option<ScanReport>) -> String {
    scan.as_ref().map_or("-".into(), ScanReport::counts)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "-" }
}

/// Cut `s` to `width` characters, keeping the end (where tags are) behind a `…`.
fn fit_end(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    let tail: String = s.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let head: String = s.chars().take(width - 1).collect();
    format!("{head}…")
}

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

/// `repository:tag1,tag2` (the registry is in the group header when there is one registry).
fn image_cell(registry: &str, repository: &str, tags: &[String], with_registry: bool) -> String {
    let repo = if with_registry {
        format!("{registry}/{repository}")
    } else {
        repository.to_string()
    };
    format!("{repo}:{}", tags.join(","))
}

fn header() -> String {
    format!(
        "  {} {} {} {} {} SCAN\n",
        pad("IMAGE", IMAGE_WIDTH),
        pad("POLICY", POLICY_WIDTH),
        pad("SOURCE", SOURCE_WIDTH),
        pad("SBOM", SBOM_WIDTH),
        pad("SIGNED", SIGNED_WIDTH)
    )
}

fn artifact_row(a: &Artifact, with_registry: bool) -> String {
    format!(
        "  {} {} {} {} {} {}\n",
        pad(
            &fit_end(
                &image_cell(&a.registry, &a.repository, &a.tags, with_registry),
                IMAGE_WIDTH
            ),
            IMAGE_WIDTH
        ),
        pad(&fit(&a.policy, POLICY_WIDTH), POLICY_WIDTH),
        pad(&fit_end(&a.source, SOURCE_WIDTH), SOURCE_WIDTH),
        pad(&sbom_cell(&a.sbom), SBOM_WIDTH),
        pad(yes_no(a.signed), SIGNED_WIDTH),
        scan_cell(&a.scan)
    )
}

fn unstamped_row(u: &Unstamped, with_registry: bool) -> String {
    format!(
        "  {} {} {} {} {} {}\n",
        pad(
            &fit_end(
                &image_cell(&u.registry, &u.repository, &u.tags, with_registry),
                IMAGE_WIDTH
            ),
            IMAGE_WIDTH
        ),
        pad("-", POLICY_WIDTH),
        pad(
            if u.managed_repository {
                "(managed repo)"
            } else {
                "-"
            },
            SOURCE_WIDTH
        ),
        pad(&sbom_cell(&u.sbom), SBOM_WIDTH),
        pad(yes_no(u.signed), SIGNED_WIDTH),
        scan_cell(&u.scan)
    )
}

fn short_digest(d: &str) -> String {
    d.strip_prefix("sha256:")
        .map(|h| format!("sha256:{}", &h[..h.len().min(12)]))
        .unwrap_or_else(|| d.to_string())
}

/// `Requests: host: N requests (…)`: what the answer cost.
pub fn requests_line(requests: &std::collections::BTreeMap<String, RequestStats>) -> String {
    if requests.is_empty() {
        return "Requests: none.".into();
    }
    let parts: Vec<String> = requests
        .iter()
        .map(|(host, s)| format!("{host}: {s}"))
        .collect();
    format!("Requests: {}.", parts.join("; "))
}

fn describe_query(r: &BlastRadius) -> String {
    let q = &r.query;
    let mut parts = Vec::new();
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k} {v}"));
        }
    };
    add("base digest", &q.base_digest);
    add("base name", &q.base_name);
    add("owner", &q.owner);
    add("policy", &q.policy);
    add("CVE", &q.cve);
    if parts.is_empty() {
        "every stamped image".into()
    } else {
        parts.join(", ")
    }
}

/// The blast radius as text: a table per base digest and owner.
pub fn text(r: &BlastRadius) -> String {
    let multi = r.scanned.registries > 1;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Scanned {} registr{}, {} repositories, {} images ({} tags).",
        r.scanned.registries,
        if r.scanned.registries == 1 {
            "y"
        } else {
            "ies"
        },
        r.scanned.repositories,
        r.scanned.images,
        r.scanned.tags
    );
    let _ = writeln!(
        out,
        "{} stamped image(s) match {}.",
        r.matched,
        describe_query(r)
    );
    if !r.by_base_digest.is_empty() {
        out.push_str("\nBy base digest\n");
        for g in &r.by_base_digest {
            let _ = writeln!(
                out,
                "\n{} {} ({} image{})",
                short_digest(&g.base_digest),
                g.base_names.join(", "),
                g.artifacts.len(),
                if g.artifacts.len() == 1 { "" } else { "s" }
            );
            out.push_str(&header());
            for a in &g.artifacts {
                out.push_str(&artifact_row(a, multi));
            }
        }
        out.push_str("\nBy owner\n");
        for g in &r.by_owner {
            let _ = writeln!(out, "\n{} ({} image(s))", g.owner, g.artifacts.len());
            out.push_str(&header());
            for a in &g.artifacts {
                out.push_str(&artifact_row(a, multi));
            }
        }
    }
    if r.unstamped.is_empty() {
        out.push_str("\nCoverage gap: none; every image carries a stamp.\n");
    } else {
        let _ = writeln!(
            out,
            "\nCoverage gap: {} unstamped image(s); houba cannot say what they derive from.",
            r.unstamped.len()
        );
        out.push_str(&header());
        for u in &r.unstamped {
            out.push_str(&unstamped_row(u, multi));
        }
    }
    let _ = writeln!(out, "\n{}", requests_line(&r.requests));
    out
}

/// The blast radius as CSV, one row per image.
pub fn csv(r: &BlastRadius) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "stamped",
        "registry",
        "repository",
        "digest",
        "tags",
        "policy",
        "import",
        "variant",
        "source",
        "base_name",
        "base_digest",
        "owners",
        "sbom",
        "signed",
        "scan",
    ]);
    for g in &r.by_base_digest {
        for a in &g.artifacts {
            let _ = w.write_record([
                "true",
                &a.registry,
                &a.repository,
                &a.digest,
                &a.tags.join(" "),
                &a.policy,
                &a.import,
                &a.variant,
                &a.source,
                &a.base_name,
                &a.base_digest,
                &a.owners.join(" "),
                &sbom_cell(&a.sbom),
                yes_no(a.signed),
                &scan_cell(&a.scan),
            ]);
        }
    }
    for u in &r.unstamped {
        let _ = w.write_record([
            "false",
            &u.registry,
            &u.repository,
            &u.digest,
            &u.tags.join(" "),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            &sbom_cell(&u.sbom),
            yes_no(u.signed),
            &scan_cell(&u.scan),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn md_row(image: &str, policy: &str, source: &str, sbom: &str, signed: bool, scan: &str) -> String {
    format!(
        "| `{}` | {} | {} | {} | {} | {} |\n",
        md_escape(image),
        md_escape(policy),
        md_escape(source),
        sbom,
        yes_no(signed),
        scan
    )
}

const MD_HEADER: &str =
    "| image | policy | source | SBOM | signed | scan |\n|---|---|---|---|---|---|\n";

/// The blast radius as Markdown.
pub fn markdown(r: &BlastRadius) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Blast radius: {}\n\n{} stamped image(s) matched; {} unstamped; scanned {} repositories, {} images.\n",
        describe_query(r),
        r.matched,
        r.unstamped.len(),
        r.scanned.repositories,
        r.scanned.images
    );
    let row = |a: &Artifact| {
        md_row(
            &image_cell(&a.registry, &a.repository, &a.tags, true),
            &a.policy,
            &a.source,
            &sbom_cell(&a.sbom),
            a.signed,
            &scan_cell(&a.scan),
        )
    };
    if !r.by_base_digest.is_empty() {
        out.push_str("#### By base digest\n\n");
        for g in &r.by_base_digest {
            let _ = writeln!(
                out,
                "**`{}`** {}\n",
                g.base_digest,
                md_escape(&g.base_names.join(", "))
            );
            out.push_str(MD_HEADER);
            g.artifacts.iter().for_each(|a| out.push_str(&row(a)));
            out.push('\n');
        }
        out.push_str("#### By owner\n\n");
        for g in &r.by_owner {
            let _ = writeln!(out, "**{}**\n", md_escape(&g.owner));
            out.push_str(MD_HEADER);
            g.artifacts.iter().for_each(|a| out.push_str(&row(a)));
            out.push('\n');
        }
    }
    if !r.unstamped.is_empty() {
        out.push_str("#### Coverage gap (unstamped)\n\n");
        out.push_str(MD_HEADER);
        for u in &r.unstamped {
            out.push_str(&md_row(
                &image_cell(&u.registry, &u.repository, &u.tags, true),
                "-",
                "-",
                &sbom_cell(&u.sbom),
                u.signed,
                &scan_cell(&u.scan),
            ));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", requests_line(&r.requests));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fit_100_columns() {
        let a = Artifact {
            registry: "registry.example.internal:5000".into(),
            repository: "very/long/project/path/to/an/application".into(),
            digest: "sha256:00".into(),
            tags: vec!["1.2.3-very-long-tag-name".into(), "latest".into()],
            policy: "a-policy-name-that-is-long".into(),
            import: "stable".into(),
            variant: "default".into(),
            source: "docker.io/library/a-very-long-upstream-name".into(),
            base_name: "docker.io/library/x:1".into(),
            base_digest: "sha256:11".into(),
            owners: vec![],
            sbom: vec!["cyclonedx".into(), "spdx".into()],
            signed: true,
            scan: Some(ScanReport {
                digest: "sha256:22".into(),
                tool: None,
                created: None,
                critical: 10,
                high: 99,
                medium: 999,
                low: 9,
            }),
        };
        let row = artifact_row(&a, true);
        assert!(row.trim_end().chars().count() <= 100, "{row}");
        assert!(row.contains("latest"), "the tag end is kept: {row}");
        assert!(header().trim_end().chars().count() <= 100);
    }
}
