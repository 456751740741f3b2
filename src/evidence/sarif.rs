//! SARIF 2.1.0 scan reports: structural validation and finding counts per severity.
//!
//! The counts go on the referrer manifest as annotations so readers (dashboards, `houba
//! verify`) need no blob download. A result's severity is its rule's
//! `properties.security-severity` (a CVSS score, as GitHub and grype write it) when present,
//! else the result's `level` (or the rule's default level, else SARIF's default `warning`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::SARIF_MEDIA_TYPE;
use super::referrer::Evidence;

/// Severities, lowest first (so `>=` means "at or above").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
// clap shows a variant's doc comment in `--help`: the names say it all.
#[allow(missing_docs)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    /// The severity's name (`critical`, …).
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn from_cvss(score: f64) -> Option<Severity> {
        match score {
            s if s >= 9.0 => Some(Severity::Critical),
            s if s >= 7.0 => Some(Severity::High),
            s if s >= 4.0 => Some(Severity::Medium),
            s if s > 0.0 => Some(Severity::Low),
            _ => None,
        }
    }

    fn from_level(level: &str) -> Option<Severity> {
        match level {
            "error" => Some(Severity::High),
            "warning" => Some(Severity::Medium),
            "note" => Some(Severity::Low),
            _ => None,
        }
    }
}

/// A validated report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Results by severity.
    pub counts: BTreeMap<Severity, u64>,
    /// Driver names of the runs, in order, each once.
    pub tools: Vec<String>,
    /// The latest `invocations[].endTimeUtc`, when any run has one.
    pub end_time: Option<String>,
}

impl Report {
    /// Results of one severity.
    pub fn count(&self, severity: Severity) -> u64 {
        self.counts.get(&severity).copied().unwrap_or(0)
    }

    /// Findings at or above `threshold`.
    pub fn at_or_above(&self, threshold: Severity) -> u64 {
        self.counts
            .iter()
            .filter(|(s, _)| **s >= threshold)
            .map(|(_, n)| n)
            .sum()
    }

    /// The referrer for this report: the document untouched, counts as annotations under
    /// `<prefix>.scan.*`, `org.opencontainers.image.created` = the scan's end time, else
    /// `attached_at`.
    pub fn evidence(&self, document: Vec<u8>, prefix: &str, attached_at: &str) -> Evidence {
        let mut evidence = Evidence::document(SARIF_MEDIA_TYPE, document);
        for severity in Severity::ALL {
            evidence.annotations.insert(
                format!("{prefix}.scan.{}", severity.name()),
                self.count(severity).to_string(),
            );
        }
        evidence
            .annotations
            .insert(format!("{prefix}.scan.tool"), self.tools.join(","));
        evidence.annotations.insert(
            "org.opencontainers.image.created".to_owned(),
            self.end_time
                .clone()
                .unwrap_or_else(|| attached_at.to_owned()),
        );
        evidence
    }
}

/// Why a document is not a SARIF 2.1.0 report: the JSON path of the first problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct Invalid {
    /// JSON path of the first problem (`$.runs[0].results`).
    pub path: String,
    /// What is wrong there.
    pub problem: String,
}

fn invalid(path: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        problem: problem.into(),
    }
}

fn field<'v>(value: &'v Value, path: &str, key: &str) -> Result<&'v Value, Invalid> {
    value
        .get(key)
        .ok_or_else(|| invalid(format!("{path}.{key}"), "missing (required by SARIF 2.1.0)"))
}

fn array<'v>(value: &'v Value, path: &str) -> Result<&'v Vec<Value>, Invalid> {
    value
        .as_array()
        .ok_or_else(|| invalid(path, "must be an array"))
}

fn rfc3339(text: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| {
        t.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    })
}

/// Validates the structure SARIF 2.1.0 requires and counts results per severity.
pub fn parse(document: &[u8]) -> Result<Report, Invalid> {
    let root: Value = serde_json::from_slice(document).map_err(|e| {
        invalid(
            format!("line {} column {}", e.line(), e.column()),
            format!("not JSON: {e}"),
        )
    })?;
    if !root.is_object() {
        return Err(invalid("$", "a SARIF log is a JSON object"));
    }
    match field(&root, "$", "version")?.as_str() {
        Some("2.1.0") => {}
        Some(other) => return Err(invalid("$.version", format!("`{other}`, expected `2.1.0`"))),
        None => return Err(invalid("$.version", "must be the string `2.1.0`")),
    }
    let runs = array(field(&root, "$", "runs")?, "$.runs")?;
    let mut report = Report {
        counts: BTreeMap::new(),
        tools: Vec::new(),
        end_time: None,
    };
    for (r, run) in runs.iter().enumerate() {
        let path = format!("$.runs[{r}]");
        if !run.is_object() {
            return Err(invalid(path, "a run is a JSON object"));
        }
        let driver = field(
            field(run, &path, "tool")?,
            &format!("{path}.tool"),
            "driver",
        )?;
        let driver_path = format!("{path}.tool.driver");
        let name = field(driver, &driver_path, "name")?
            .as_str()
            .ok_or_else(|| invalid(format!("{driver_path}.name"), "must be a string"))?;
        if !report.tools.iter().any(|t| t == name) {
            report.tools.push(name.to_owned());
        }
        let rules = match driver.get("rules") {
            Some(rules) => array(rules, &format!("{driver_path}.rules"))?.as_slice(),
            None => &[],
        };
        let mut rule_ids: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, rule) in rules.iter().enumerate() {
            let id = field(rule, &format!("{driver_path}.rules[{i}]"), "id")?
                .as_str()
                .ok_or_else(|| {
                    invalid(format!("{driver_path}.rules[{i}].id"), "must be a string")
                })?;
            rule_ids.entry(id).or_insert(i);
        }
        if let Some(invocations) = run.get("invocations") {
            for (i, invocation) in array(invocations, &format!("{path}.invocations"))?
                .iter()
                .enumerate()
            {
                if let Some(end) = invocation.get("endTimeUtc") {
                    let end_path = format!("{path}.invocations[{i}].endTimeUtc");
                    let end = end
                        .as_str()
                        .and_then(rfc3339)
                        .ok_or_else(|| invalid(end_path, "must be an RFC 3339 date-time"))?;
                    if report.end_time.as_ref().is_none_or(|e| *e < end) {
                        report.end_time = Some(end);
                    }
                }
            }
        }
        let Some(results) = run.get("results") else {
            continue;
        };
        for (i, result) in array(results, &format!("{path}.results"))?
            .iter()
            .enumerate()
        {
            let result_path = format!("{path}.results[{i}]");
            let message = field(result, &result_path, "message")?;
            if message.get("text").is_none() && message.get("id").is_none() {
                return Err(invalid(
                    format!("{result_path}.message"),
                    "needs `text` or `id`",
                ));
            }
            let rule = match (result.get("ruleIndex"), result.get("ruleId")) {
                (Some(index), _) => {
                    let index = index.as_u64().ok_or_else(|| {
                        invalid(
                            format!("{result_path}.ruleIndex"),
                            "must be a non-negative integer",
                        )
                    })? as usize;
                    Some(rules.get(index).ok_or_else(|| {
                        invalid(
                            format!("{result_path}.ruleIndex"),
                            format!("{index} is past the {} rules of the driver", rules.len()),
                        )
                    })?)
                }
                (None, Some(id)) => id
                    .as_str()
                    .and_then(|id| rule_ids.get(id))
                    .map(|i| &rules[*i]),
                (None, None) => None,
            };
            let cvss = rule
                .and_then(|r| r.pointer("/properties/security-severity"))
                .and_then(|s| match s {
                    Value::String(text) => text.trim().parse::<f64>().ok(),
                    Value::Number(n) => n.as_f64(),
                    _ => None,
                });
            let level = result
                .get("level")
                .or_else(|| rule.and_then(|r| r.pointer("/defaultConfiguration/level")))
                .map(|l| {
                    l.as_str()
                        .ok_or_else(|| invalid(format!("{result_path}.level"), "must be a string"))
                })
                .transpose()?
                .unwrap_or("warning");
            if !matches!(level, "none" | "note" | "warning" | "error") {
                return Err(invalid(
                    format!("{result_path}.level"),
                    format!("`{level}` is not one of none, note, warning, error"),
                ));
            }
            let severity = match cvss {
                Some(score) => Severity::from_cvss(score),
                None => Severity::from_level(level),
            };
            if let Some(severity) = severity {
                *report.counts.entry(severity).or_default() += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRYPE: &[u8] = include_bytes!("../../testdata/sarif/grype-alpine.sarif.json");

    #[test]
    fn the_grype_fixture_counts_by_security_severity() {
        let report = parse(GRYPE).unwrap();
        assert_eq!(report.tools, vec!["grype".to_owned()]);
        assert_eq!(report.count(Severity::Critical), 1);
        assert_eq!(report.count(Severity::High), 1);
        assert_eq!(report.count(Severity::Medium), 1);
        assert_eq!(report.count(Severity::Low), 1);
        assert_eq!(report.at_or_above(Severity::High), 2);
        let evidence = report.evidence(GRYPE.to_vec(), "io.houba", "2026-01-01T00:00:00Z");
        assert_eq!(evidence.annotations["io.houba.scan.critical"], "1");
        assert_eq!(evidence.annotations["io.houba.scan.tool"], "grype");
    }

    #[test]
    fn levels_apply_without_a_cvss_score() {
        let doc = br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"t","rules":[{"id":"R","defaultConfiguration":{"level":"note"}}]}},
            "results":[{"ruleId":"R","message":{"text":"a"}},{"level":"error","message":{"text":"b"}},{"level":"none","message":{"text":"c"}},{"message":{"text":"d"}}]}]}"#;
        let report = parse(doc).unwrap();
        assert_eq!(report.count(Severity::Low), 1);
        assert_eq!(report.count(Severity::High), 1);
        assert_eq!(report.count(Severity::Medium), 1);
        assert_eq!(report.at_or_above(Severity::Critical), 0);
    }

    #[test]
    fn the_first_problem_is_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "line 1 column 2"),
            (br#"{"version":"2.0.0","runs":[]}"#, "$.version"),
            (br#"{"version":"2.1.0"}"#, "$.runs"),
            (br#"{"version":"2.1.0","runs":[{"tool":{}}]}"#, "$.runs[0].tool.driver"),
            (
                br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleIndex":3,"message":{"text":""}}]}]}"#,
                "$.runs[0].results[0].ruleIndex",
            ),
            (
                br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{}]}]}"#,
                "$.runs[0].results[0].message",
            ),
        ];
        for (doc, path) in cases {
            let e = parse(doc).unwrap_err();
            assert!(e.path.starts_with(path), "{e} should name {path}");
        }
    }
}
