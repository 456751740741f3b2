//! Plan rendering: Terraform-style text, JSON for machines, Markdown for PR comments.
//! Pure functions from a `Plan` to a string.

use std::fmt::Write as _;

use super::model::{Action, ActionKind, Change, Drift, Plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

/// ANSI colours, or nothing.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn symbol(&self, sym: &str) -> String {
        let code = match sym {
            "+" => "32",
            "-" => "31",
            "-/+" => "33",
            "~" => "33",
            "!" => "35",
            _ => "0",
        };
        self.paint(code, sym)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

pub fn render(plan: &Plan, format: Format, style: Style) -> String {
    match format {
        Format::Text => render_text(plan, style),
        Format::Json => render_json(plan),
        Format::Markdown => render_markdown(plan),
    }
}

pub fn render_json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).expect("a plan always serialises");
    s.push('\n');
    s
}

/// Shorten a digest for humans: `sha256:0123456789ab…`. JSON output keeps full digests.
pub fn short(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}…", &hex[..12]),
        _ => d.to_string(),
    }
}

fn shorten_value(v: &str) -> String {
    if v.starts_with("sha256:") {
        short(v)
    } else {
        v.to_string()
    }
}

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
    out
}

fn write_legend(out: &mut String, plan: &Plan, style: Style) {
    let _ = writeln!(out, "Actions are indicated with the following symbols:");
    let mut seen = Vec::new();
    for a in &plan.actions {
        let entry = match a.action {
            ActionKind::Copy | ActionKind::Build => ("+", "place (copy or build)"),
            ActionKind::Replace => ("-/+", "replace with new content"),
            ActionKind::Restamp | ActionKind::Alias => {
                ("~", "update in place (restamp, re-point alias)")
            }
            ActionKind::Prune => ("-", "prune"),
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
    let _ = writeln!(out, "  # {} {}", d.location, d.kind.describe());
    let _ = writeln!(out, "  {} drift {{", style.symbol("!"));
    let _ = writeln!(out, "      address = \"{}\"", d.address);
    let _ = writeln!(out, "      digest  = \"{}\"", short(&d.digest));
    let _ = writeln!(out, "      # {}", d.detail);
    let _ = writeln!(out, "    }}");
}

fn write_action(out: &mut String, a: &Action, style: Style) {
    let _ = writeln!(out, "  # {} will be {}", a.address, a.action.will_be());
    for r in &a.reasons {
        let _ = writeln!(out, "  # ({r})");
    }
    let sym = a.action.symbol();
    let _ = writeln!(
        out,
        "  {} {} \"{}\" {{",
        style.symbol(sym),
        a.action.as_str(),
        a.destination
    );
    let width = a
        .changes
        .iter()
        .map(|c| c.attribute.len())
        .max()
        .unwrap_or(0);
    for c in &a.changes {
        write_change(out, c, width, style);
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

/// `Requests: docker.io 12 (HEAD 9, GET 3); local 4 (HEAD 4)`: what observing cost.
fn write_requests(out: &mut String, plan: &Plan) {
    if plan.requests.is_empty() {
        return;
    }
    let parts: Vec<String> = plan
        .requests
        .iter()
        .map(|(name, r)| {
            let by_method: Vec<String> = [
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
            .collect();
            let budget = r
                .rate_limit
                .map(|(limit, remaining)| format!(", rate limit {remaining} of {limit} left"))
                .unwrap_or_default();
            if by_method.is_empty() {
                format!("{name} 0{budget}")
            } else {
                format!("{name} {} ({}{budget})", r.total, by_method.join(", "))
            }
        })
        .collect();
    let _ = writeln!(out, "Requests: {}\n", parts.join("; "));
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

/// Lines above which the Markdown body is folded into `<details>`.
const MARKDOWN_FOLD_LINES: usize = 40;

pub fn render_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### houba plan\n");
    let _ = writeln!(out, "**{}**", plan.summary_line());
    if !plan.drift.is_empty() {
        let _ = writeln!(
            out,
            "\n:warning: **{} change(s) outside houba** (drift) — listed first below.",
            plan.drift.len()
        );
    }
    if !plan.notes.is_empty() {
        out.push('\n');
        for n in &plan.notes {
            let _ = writeln!(out, "- `{}`: {}", n.address, n.message);
        }
    }
    if plan.actions.is_empty() && plan.drift.is_empty() {
        return out;
    }
    let body = render_text(plan, Style { color: false });
    // In a ```diff block GitHub colours lines by their first character: keep +/- for
    // placements and prunes, and put `!` (drift) and `~` lines behind a neutral space.
    let diff: String = body
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let mark = if t.starts_with("-/+") {
                '!'
            } else if t.starts_with('+') {
                '+'
            } else if t.starts_with('-') {
                '-'
            } else {
                ' '
            };
            format!("{mark}{l}")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let fold = body.lines().count() > MARKDOWN_FOLD_LINES;
    out.push('\n');
    if fold {
        let _ = writeln!(
            out,
            "<details><summary>Show plan ({} lines)</summary>\n",
            body.lines().count()
        );
    }
    let _ = writeln!(out, "```diff\n{diff}\n```");
    if fold {
        let _ = writeln!(out, "\n</details>");
    }
    out
}

#[cfg(test)]
mod tests {
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

    fn action(kind: ActionKind, tag: &str) -> Action {
        Action {
            address: format!("busybox/stable/default[registry.local:5000/demo/busybox:{tag}]"),
            action: kind,
            destination: loc(tag),
            source: None,
            source_digest: None,
            source_media_type: None,
            before: None,
            after: Some(format!("sha256:{}", "b".repeat(64))),
            reasons: vec!["new upstream tag".into()],
            changes: vec![Change {
                attribute: "digest".into(),
                before: None,
                after: Some(format!("sha256:{}", "b".repeat(64))),
            }],
            depends_on: vec![],
            alias_target: None,
            prune_mode: None,
            steps: vec![],
            recipe: None,
            transform: vec![],
            platforms: vec![],
            annotations: BTreeMap::new(),
        }
    }

    fn plan(actions: Vec<Action>) -> Plan {
        Plan {
            format_version: FORMAT_VERSION.into(),
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
            action(ActionKind::Copy, "1"),
            action(ActionKind::Copy, "2"),
            action(ActionKind::Alias, "latest"),
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
        let p = plan(vec![action(ActionKind::Copy, "1.37.0")]);
        let t = render_text(&p, Style { color: false });
        assert!(t.contains(
            "  # busybox/stable/default[registry.local:5000/demo/busybox:1.37.0] will be copied\n"
        ));
        assert!(t.contains("+ digest = \"sha256:bbbbbbbbbbbb…\""));
        assert!(!t.contains('\x1b'));
        assert!(render_text(&p, Style { color: true }).contains("\x1b[32m+\x1b[0m"));
    }

    #[test]
    fn markdown_folds_long_plans() {
        let short_plan = plan(vec![action(ActionKind::Copy, "1")]);
        let md = render_markdown(&short_plan);
        assert!(md.starts_with("### houba plan\n\n**Plan: 1 to copy"));
        assert!(md.contains("```diff\n"));
        assert!(!md.contains("<details>"));
        let long: Vec<Action> = (0..20)
            .map(|i| action(ActionKind::Copy, &i.to_string()))
            .collect();
        assert!(render_markdown(&plan(long)).contains("<details>"));
    }
}
