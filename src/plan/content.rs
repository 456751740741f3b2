//! Rendering `houba plan --show-content`: per rebuild, each file its steps add, change or
//! remove, with the unified diff of text files, and the config's environment edits. Text for
//! terminals; Markdown (diffs folded in `<details>`) for pull-request comments. Pure.

use crate::build::content::{ChangeDetail, ChangeKind, ContentChanges, FileChange};

/// One rebuild to render: its address, step names, and what it changes (or why that could
/// not be read).
pub struct RebuildView<'a> {
    /// The placement's address.
    pub address: &'a str,
    /// Its transform step names, in order.
    pub steps: &'a [String],
    /// What it changes inside the image, per group of platforms whose changes are identical
    /// (one entry for a single image), or why that could not be read.
    pub content: Result<&'a [ContentChanges], &'a str>,
}

fn sign(kind: ChangeKind) -> char {
    match kind {
        ChangeKind::Added => '+',
        ChangeKind::Changed => '~',
        ChangeKind::Removed => '-',
    }
}

/// The one-line summary of a file change (without its diff).
fn summary(f: &FileChange) -> String {
    let what = match &f.detail {
        ChangeDetail::Text { diff } => {
            let (added, removed) = diff.lines().fold((0, 0), |(a, r), l| {
                if l.starts_with('+') && !l.starts_with("+++") {
                    (a + 1, r)
                } else if l.starts_with('-') && !l.starts_with("---") {
                    (a, r + 1)
                } else {
                    (a, r)
                }
            });
            format!("text, +{added} -{removed} lines")
        }
        ChangeDetail::Binary {
            before: Some(b),
            after,
        } => {
            format!("binary, {b} → {after} bytes")
        }
        ChangeDetail::Binary {
            before: None,
            after,
        } => format!("binary, {after} bytes"),
        ChangeDetail::Symlink {
            before: Some(b),
            after,
        } => format!("symlink {b} → {after}"),
        ChangeDetail::Symlink {
            before: None,
            after,
        } => format!("symlink → {after}"),
        ChangeDetail::Directory => "directory".to_string(),
        ChangeDetail::Metadata { before, after } => format!("{before} → {after}"),
        ChangeDetail::Other => "special file".to_string(),
    };
    format!("{} {} ({what})", sign(f.kind), f.path)
}

fn env_line(key: &str, before: Option<&str>, after: &str) -> String {
    match before {
        Some(b) => format!("~ env {key}: {b} → {after}"),
        None => format!("+ env {key}={after}"),
    }
}

/// `address (steps: a, b, files of linux/amd64)`: one heading per group of platforms, so
/// every platform of a multi-platform rebuild is covered, and platforms whose changes are
/// identical are said to be once.
fn heading(r: &RebuildView<'_>, group: Option<&ContentChanges>) -> String {
    let platforms = match group.map(|g| g.platforms.as_slice()) {
        None | Some([]) => String::new(),
        Some([one]) => format!(", files of {one}"),
        Some(several) => format!(
            ", files of {}: the same changes on each of these {} platforms",
            several.join(", "),
            several.len()
        ),
    };
    format!("{} (steps: {}{platforms})", r.address, r.steps.join(", "))
}

/// Terminal view: each rebuild, its changed files with their diffs indented below.
pub fn render_text(rebuilds: &[RebuildView<'_>]) -> String {
    let mut out = String::from("\nContent changes of the rebuilds (--show-content):\n");
    if rebuilds.is_empty() {
        out.push_str("  No rebuild with transform steps in this plan.\n");
        return out;
    }
    for r in rebuilds {
        let groups = match r.content {
            Ok(groups) => groups,
            Err(e) => {
                out.push_str(&format!("\n  {}\n", heading(r, None)));
                out.push_str(&format!("    cannot read the base image: {e}\n"));
                continue;
            }
        };
        for content in groups {
            out.push_str(&format!("\n  {}\n", heading(r, Some(content))));
            text_changes(&mut out, content);
        }
    }
    out
}

fn text_changes(out: &mut String, content: &ContentChanges) {
    if content.files.is_empty() && content.env.is_empty() {
        out.push_str("    no change inside the image\n");
    }
    for f in &content.files {
        out.push_str(&format!("    {}\n", summary(f)));
        if let ChangeDetail::Text { diff } = &f.detail {
            for line in diff.lines() {
                out.push_str(&format!("        {line}\n"));
            }
        }
    }
    for e in &content.env {
        out.push_str(&format!(
            "    {}\n",
            env_line(&e.key, e.before.as_deref(), &e.after)
        ));
    }
}

/// Markdown view: a section per rebuild, one bullet per file, text diffs folded in
/// `<details>` so a long CA bundle does not bury the comment.
pub fn render_markdown(rebuilds: &[RebuildView<'_>]) -> String {
    let mut out = String::from("\n### Content changes of the rebuilds\n\n");
    if rebuilds.is_empty() {
        out.push_str("No rebuild with transform steps in this plan.\n");
        return out;
    }
    for r in rebuilds {
        let groups = match r.content {
            Ok(groups) => groups,
            Err(e) => {
                out.push_str(&format!("#### `{}`\n\n", heading(r, None)));
                out.push_str(&format!("Cannot read the base image: {e}\n\n"));
                continue;
            }
        };
        for content in groups {
            out.push_str(&format!("#### `{}`\n\n", heading(r, Some(content))));
            markdown_changes(&mut out, content);
        }
    }
    out
}

fn markdown_changes(out: &mut String, content: &ContentChanges) {
    if content.files.is_empty() && content.env.is_empty() {
        out.push_str("No change inside the image.\n\n");
    }
    for f in &content.files {
        out.push_str(&format!("- `{}`\n", summary(f)));
        if let ChangeDetail::Text { diff } = &f.detail {
            // A fence longer than any backtick run in the diff keeps it one code block.
            let longest = diff.split(|c| c != '`').map(str::len).max().unwrap_or(0);
            let fence = "`".repeat(longest.max(2) + 1);
            out.push_str(&format!(
                "\n  <details><summary>diff {}</summary>\n\n  {fence}diff\n",
                f.path
            ));
            for line in diff.lines() {
                out.push_str(&format!("  {line}\n"));
            }
            out.push_str(&format!("  {fence}\n\n  </details>\n\n"));
        }
    }
    for e in &content.env {
        out.push_str(&format!(
            "- `{}`\n",
            env_line(&e.key, e.before.as_deref(), &e.after)
        ));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::content::EnvChange;

    fn sample() -> ContentChanges {
        ContentChanges {
            platforms: vec!["linux/amd64".into()],
            files: vec![
                FileChange {
                    path: "/etc/localtime".into(),
                    kind: ChangeKind::Changed,
                    detail: ChangeDetail::Symlink {
                        before: Some("/usr/share/zoneinfo/Etc/UTC".into()),
                        after: "/usr/share/zoneinfo/Europe/Paris".into(),
                    },
                },
                FileChange {
                    path: "/etc/timezone".into(),
                    kind: ChangeKind::Changed,
                    detail: ChangeDetail::Text {
                        diff: "--- a/etc/timezone\n+++ b/etc/timezone\n@@ -1 +1 @@\n-Etc/UTC\n+Europe/Paris\n".into(),
                    },
                },
            ],
            env: vec![EnvChange {
                key: "TZ".into(),
                before: None,
                after: "Europe/Paris".into(),
            }],
        }
    }

    #[test]
    fn text_lists_files_with_indented_diffs() {
        let content = sample();
        let steps = vec!["setTimezone".to_string()];
        let out = render_text(&[RebuildView {
            address: "debian/tz/default[r/debian:12]",
            steps: &steps,
            content: Ok(std::slice::from_ref(&content)),
        }]);
        assert!(
            out.contains(
                "  debian/tz/default[r/debian:12] (steps: setTimezone, files of linux/amd64)\n"
            ),
            "{out}"
        );
        assert!(out.contains("    ~ /etc/localtime (symlink /usr/share/zoneinfo/Etc/UTC → /usr/share/zoneinfo/Europe/Paris)\n"), "{out}");
        assert!(
            out.contains("    ~ /etc/timezone (text, +1 -1 lines)\n        --- a/etc/timezone\n"),
            "{out}"
        );
        assert!(out.contains("        +Europe/Paris\n"), "{out}");
        assert!(out.contains("    + env TZ=Europe/Paris\n"), "{out}");
    }

    #[test]
    fn markdown_folds_diffs_in_details() {
        let content = sample();
        let steps = vec!["setTimezone".to_string()];
        let out = render_markdown(&[
            RebuildView {
                address: "a",
                steps: &steps,
                content: Ok(std::slice::from_ref(&content)),
            },
            RebuildView {
                address: "b",
                steps: &steps,
                content: Err("401 from the registry"),
            },
        ]);
        assert!(out.contains("<details><summary>diff /etc/timezone</summary>\n\n  ```diff\n  --- a/etc/timezone\n"), "{out}");
        assert!(out.contains("  ```\n\n  </details>"), "{out}");
        assert_eq!(out.matches("<details>").count(), 1, "{out}");
        assert!(
            out.contains("Cannot read the base image: 401 from the registry"),
            "{out}"
        );
    }
}
