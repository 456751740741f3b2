//! The Terraform-style text view.

use std::fmt::Write as _;

use super::{Change, Style, changes, drift_detail, drift_heading, reason, short, symbol, will_be};
use crate::plan::model::{Action, Drift, Plan};

fn shorten_value(v: &str) -> String {
    if v.starts_with("sha256:") {
        short(v)
    } else {
        v.to_string()
    }
}

/// The Terraform-style text view.
pub fn render_text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    if !plan.drift.is_empty() {
        let _ = writeln!(out, "{}", style.bold("Changed outside houba"));
        let _ = writeln!(
            out,
            "houba found live state that does not match what it placed:\n"
        );
        for d in &plan.drift {
            write_drift(&mut out, d, style);
        }
        out.push('\n');
    }
    if plan.actions.is_empty() {
        write_notes(&mut out, plan);
        write_requests(&mut out, plan);
        let _ = writeln!(out, "{}", style.bold(&plan.summary_line()));
        return out;
    }
    write_legend(&mut out, plan, style);
    let _ = writeln!(out, "houba will perform the following actions:\n");
    for a in &plan.actions {
        write_action(&mut out, a, style);
    }
    write_notes(&mut out, plan);
    write_requests(&mut out, plan);
    let _ = writeln!(out, "{}", style.bold(&plan.summary_line()));
    if let Some(line) = plan.evidence_line() {
        let _ = writeln!(out, "{line}");
    }
    out
}

fn write_legend(out: &mut String, plan: &Plan, style: Style) {
    let _ = writeln!(out, "Actions are indicated with the following symbols:");
    let mut seen = Vec::new();
    for a in &plan.actions {
        let entry = match symbol(a) {
            "+" => ("+", "create (copy, build, new alias)"),
            "-/+" => ("-/+", "replace with new content"),
            "~" => ("~", "update in place (restamp, re-point alias)"),
            _ => ("-", "prune"),
        };
        if !seen.contains(&entry) {
            seen.push(entry);
        }
    }
    if !plan.drift.is_empty() {
        seen.push(("!", "changed outside houba"));
    }
    seen.sort_by_key(|e| ["+", "-/+", "~", "-", "!"].iter().position(|s| *s == e.0));
    for (sym, what) in seen {
        let _ = writeln!(out, "  {:<3} {what}", style.symbol(sym));
    }
    out.push('\n');
}

fn write_drift(out: &mut String, d: &Drift, style: Style) {
    let _ = writeln!(out, "  # {} {}", d.location, drift_heading(d));
    let _ = writeln!(out, "  {} drift {{", style.symbol("!"));
    let _ = writeln!(out, "      address = \"{}\"", d.label());
    match &d.digest {
        Some(digest) => {
            let _ = writeln!(out, "      digest  = \"{}\"", short(digest));
        }
        None => {
            let _ = writeln!(out, "      digest  = (no manifest)");
        }
    }
    let _ = writeln!(out, "      # {}", drift_detail(d));
    let _ = writeln!(out, "    }}");
}

fn write_action(out: &mut String, a: &Action, style: Style) {
    let _ = writeln!(out, "  # {} will be {}", a.header.address, will_be(a));
    let _ = writeln!(out, "  # ({})", reason(a));
    let _ = writeln!(
        out,
        "  {} {} \"{}\" {{",
        style.symbol(symbol(a)),
        a.kind().as_str(),
        a.header.destination
    );
    let changes = changes(a);
    let width = changes.iter().map(|c| c.attribute.len()).max().unwrap_or(0);
    for c in &changes {
        write_change(out, c, width, style);
    }
    for line in a.header.evidence.lines() {
        let _ = writeln!(out, "      {} {line}", style.symbol("+"));
    }
    let _ = writeln!(out, "    }}\n");
}

fn write_change(out: &mut String, c: &Change, width: usize, style: Style) {
    let name = format!("{:<width$}", c.attribute);
    let line = match (&c.before, &c.after) {
        (None, Some(a)) => format!("{} {name} = \"{}\"", style.symbol("+"), shorten_value(a)),
        (Some(b), None) => format!("{} {name} = \"{}\"", style.symbol("-"), shorten_value(b)),
        (Some(b), Some(a)) => format!(
            "{} {name} = \"{}\" -> \"{}\"",
            style.symbol("~"),
            shorten_value(b),
            shorten_value(a)
        ),
        (None, None) => return,
    };
    let _ = writeln!(out, "      {line}");
}

/// `Requests: docker.io 12 (3 GET /v2/<repo>/tags/list, 9 HEAD /v2/<repo>/manifests/<ref>)`:
/// what observing cost, in the distribution API's terms (what the registry's access log
/// shows). A plan saved before endpoints were counted falls back to `HEAD 9, GET 3`.
fn write_requests(out: &mut String, plan: &Plan) {
    if plan.requests.is_empty() {
        return;
    }
    let parts: Vec<String> = plan
        .requests
        .iter()
        .map(|(name, r)| {
            let breakdown: Vec<String> = if r.endpoints.is_empty() {
                [
                    ("HEAD", r.head),
                    ("GET", r.get),
                    ("PUT", r.put),
                    ("POST", r.post),
                    ("PATCH", r.patch),
                    ("DELETE", r.delete),
                ]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(m, n)| format!("{m} {n}"))
                .collect()
            } else {
                r.endpoints
                    .iter()
                    .map(|(request, n)| format!("{n} {request}"))
                    .collect()
            };
            let budget = r
                .rate_limit
                .map(|(limit, remaining)| format!(", rate limit {remaining} of {limit} left"))
                .unwrap_or_default();
            if breakdown.is_empty() {
                format!("{name} 0{budget}")
            } else {
                format!("{name} {} ({}{budget})", r.total, breakdown.join(", "))
            }
        })
        .collect();
    let _ = writeln!(out, "Requests: {}", parts.join("; "));
    if let Some(line) = super::recheck_skipped_line(plan) {
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

fn write_notes(out: &mut String, plan: &Plan) {
    if plan.notes.is_empty() {
        return;
    }
    let _ = writeln!(out, "Notes:");
    for n in &plan.notes {
        let _ = writeln!(out, "  * {}: {}", n.address, n.message);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::super::render_markdown;
    use super::*;
    use crate::plan::model::*;
    use std::collections::BTreeMap;

    fn loc(tag: &str) -> Location {
        Location {
            registry: "local".into(),
            display: "registry.local:5000".into(),
            repository: "demo/busybox".into(),
            tag: tag.into(),
        }
    }

    fn address(tag: &str) -> Address {
        Address::artifact(
            "busybox",
            "stable",
            "default",
            "registry.local:5000",
            "demo/busybox",
            tag,
        )
    }

    fn source() -> Source {
        Source {
            location: Location {
                registry: "docker.io".into(),
                display: "docker.io".into(),
                repository: "library/busybox".into(),
                tag: "1.37.0".into(),
            },
            digest: format!("sha256:{}", "a".repeat(64)),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        }
    }

    fn copy(tag: &str) -> Action {
        Action {
            header: Header {
                address: address(tag),
                destination: loc(tag),
                before: None,
                after: Some(format!("sha256:{}", "b".repeat(64))),
                depends_on: vec![],
                evidence: Default::default(),
            },
            operation: Operation::Place(Place {
                source: source(),
                content: Content::Copy,
                annotations: BTreeMap::new(),
            }),
        }
    }

    fn alias(before: Option<&str>, current: Option<&str>, reason: AliasReason) -> Action {
        Action {
            header: Header {
                address: address("latest"),
                destination: loc("latest"),
                before: before.map(str::to_string),
                after: Some(format!("sha256:{}", "b".repeat(64))),
                depends_on: vec![],
                evidence: Default::default(),
            },
            operation: Operation::Alias {
                target: address("1.37.0"),
                target_tag: "1.37.0".into(),
                target_digest: Some(format!("sha256:{}", "b".repeat(64))),
                current_tag: current.map(str::to_string),
                reason,
            },
        }
    }

    fn plan(actions: Vec<Action>) -> Plan {
        Plan {
            houba_version: "0".into(),
            inputs_digest: "sha256:00".into(),
            shard: None,
            drift: vec![],
            actions,
            notes: vec![],
            requests: BTreeMap::new(),
            managed_tags: BTreeMap::new(),
        }
    }

    #[test]
    fn summary_lists_every_kind_in_order() {
        let p = plan(vec![
            copy("1"),
            copy("2"),
            alias(None, None, AliasReason::Absent),
        ]);
        assert_eq!(
            p.summary_line(),
            "Plan: 2 to copy, 0 to build, 0 to replace, 0 to restamp, 1 to alias, 0 to prune."
        );
        assert_eq!(
            plan(vec![]).summary_line(),
            "No changes. The registries match the policies."
        );
    }

    #[test]
    fn text_uses_terraform_grammar_without_colour() {
        let p = plan(vec![copy("1.37.0")]);
        let t = render_text(&p, Style { color: false });
        assert!(t.contains(
            "  # busybox/stable/default[registry.local:5000/demo/busybox:1.37.0] will be copied\n"
        ));
        assert!(
            t.contains("+ digest      = \"sha256:bbbbbbbbbbbb…\""),
            "{t}"
        );
        assert!(!t.contains('\x1b'));
        assert!(render_text(&p, Style { color: true }).contains("\x1b[32m+\x1b[0m"));
    }

    #[test]
    fn a_new_alias_is_created_and_a_moved_one_compares_tags_and_digests() {
        let new = render_text(
            &plan(vec![alias(None, None, AliasReason::Absent)]),
            Style { color: false },
        );
        assert!(
            new.contains("[registry.local:5000/demo/busybox:latest] will be created"),
            "{new}"
        );
        assert!(
            new.contains("+ alias \"registry.local:5000/demo/busybox:latest\""),
            "{new}"
        );
        assert!(new.contains("+ target = \"1.37.0\""), "{new}");
        let before = format!("sha256:{}", "c".repeat(64));
        let moved = render_text(
            &plan(vec![alias(
                Some(&before),
                Some("1.36.1"),
                AliasReason::NewHighest,
            )]),
            Style { color: false },
        );
        assert!(moved.contains("will be re-pointed"), "{moved}");
        assert!(
            moved.contains("~ target = \"1.36.1\" -> \"1.37.0\""),
            "{moved}"
        );
        assert!(
            moved.contains("~ digest = \"sha256:cccccccccccc…\" -> \"sha256:bbbbbbbbbbbb…\""),
            "{moved}"
        );
    }

    #[test]
    fn a_platform_only_build_prints_no_empty_steps() {
        let mut a = copy("1.37.0");
        a.header.after = None;
        a.operation = Operation::Place(Place {
            source: source(),
            content: Content::Build(Build {
                recipe: format!("sha256:{}", "d".repeat(64)),
                steps: vec![],
                platforms: vec!["linux/amd64".into()],
            }),
            annotations: BTreeMap::new(),
        });
        let t = render_text(&plan(vec![a]), Style { color: false });
        assert!(t.contains("will be built"), "{t}");
        assert!(!t.contains("steps"), "{t}");
        assert!(t.contains("+ platforms   = \"linux/amd64\""), "{t}");
    }

    #[test]
    fn markdown_folds_long_plans() {
        let short_plan = plan(vec![copy("1")]);
        let md = render_markdown(&short_plan);
        assert!(md.starts_with("### houba plan\n\n**Plan: 1 to copy"));
        assert!(md.contains("```diff\n"));
        assert!(!md.contains("<details>"));
        let long: Vec<Action> = (0..20).map(|i| copy(&i.to_string())).collect();
        assert!(render_markdown(&plan(long)).contains("<details>"));
    }
}
