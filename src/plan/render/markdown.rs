//! The Markdown view, for pull-request comments.

use std::fmt::Write as _;

use super::{Style, render_text};
use crate::plan::model::Plan;

/// Lines above which the Markdown body is folded into `<details>`.
const MARKDOWN_FOLD_LINES: usize = 40;

/// The Markdown view: summary, drift warning, notes and the text view in a ```diff block.
pub fn render_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### houba plan\n");
    let _ = writeln!(out, "**{}**", plan.summary_line());
    if let Some(line) = super::recheck_skipped_line(plan) {
        let _ = writeln!(out, "\n{line}");
    }
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
