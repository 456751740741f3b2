//! `houba graph`: print the desired graph the policies compile to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{Diagnostic, NamedSource, SourceSpan};

use super::Context;
use crate::config::Settings;
use crate::graph::{UpstreamTags, compile};
use crate::policy::resolved::ResolvedPolicy;

/// Shown after `houba graph --help`.
pub const GRAPH_EXAMPLES: &str = "\
Examples:
  # Render the graph as an image with Graphviz
  houba graph --tags tags.json | dot -Tsvg > desired.svg

  # Machine-readable: every placement with its source, transform steps and owners
  houba graph --format json --tags tags.json | jq '.nodes[] | select(.node == \"placement\") | .address'

  # Why was each upstream tag selected or dropped?
  houba graph --explain --tags tags.json
    busybox/stable (docker.io/library/busybox)
      1.38.0-rc1  dropped: pre-release (prerelease: false)
      1.37.0      selected: includeRegex, latest 2
      1.36.1      selected: includeRegex, latest 2
      1.36.0      dropped: not in latest 2
      musl        dropped: does not match includeRegex ^1\\.

The tag file maps `<upstream host>/<repository>` (as policies write `source`) to the tags
upstream holds:
  {
    \"docker.io/library/busybox\": [\"1.36.1\", \"1.37.0\", \"latest\", \"musl\"],
    \"quay.io/prometheus/node-exporter\": [\"v1.8.2\", \"v1.9.0\"]
  }

Addresses read `<policy>/<import>/<variant>[<registry>/<repository>:<tag>]`, e.g.
`busybox/stable/default[registry.local:5000/demo/busybox:1.37.0]`; `plan` and `apply` take
them (or a prefix such as `busybox/stable`) with `--target`.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT: placements are boxes (3-D when rebuilt), aliases ellipses with an edge to
    /// the placement they point at.
    Dot,
    /// A JSON document: `format_version`, `nodes`, `edges` (`from` depends on `to`),
    /// `warnings`, `collisions`.
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
    /// JSON file of upstream tag lists, `{"<host>/<repository>": ["tag", …], …}`: the tags
    /// selection runs against, so the graph can be inspected without network access.
    #[arg(long, value_name = "FILE")]
    pub tags: Option<PathBuf>,
    /// Instead of the graph, print per import why each upstream tag was selected or dropped
    /// (`selected: includeRegex`, `dropped: excludeRegex -rc`, `dropped: not in latest 5`).
    /// Text, or a JSON document with `--format json`.
    #[arg(long)]
    pub explain: bool,
}

/// A tag file that cannot be used.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}: {message}")]
#[diagnostic(code(houba::graph::tags))]
pub struct TagFileError {
    pub file: String,
    pub message: String,
    #[help]
    pub help: Option<String>,
    #[source_code]
    source_code: Option<NamedSource<String>>,
    #[label("here")]
    span: Option<SourceSpan>,
}

/// Compiles the policies against the upstream tag lists (read from the registries, or from
/// `--tags FILE`) and prints the graph on stdout; warnings and collisions go to stderr.
pub fn run(args: &GraphArgs, ctx: &Context) -> miette::Result<ExitCode> {
    let upstream = match &args.tags {
        Some(path) => read_tag_file(path)?,
        None => {
            let registries = ctx.registries();
            ctx.runtime().block_on(crate::pipeline::upstream_tags(
                &registries,
                &ctx.policies,
                ctx.settings.concurrency,
            ))?
        }
    };
    if args.explain {
        print!("{}", explain(args.format, &ctx.policies, &upstream));
    } else {
        print_graph(args, &ctx.settings, &ctx.policies, &upstream);
    }
    Ok(ExitCode::SUCCESS)
}

fn read_tag_file(path: &Path) -> miette::Result<UpstreamTags> {
    let text = std::fs::read_to_string(path).map_err(|e| TagFileError {
        file: path.display().to_string(),
        message: format!("cannot read the tag file: {e}"),
        help: Some("check the path given to --tags".into()),
        source_code: None,
        span: None,
    })?;
    Ok(parse_tag_file(path, &text).map_err(|e| *e)?)
}

fn print_graph(
    args: &GraphArgs,
    settings: &Settings,
    policies: &[ResolvedPolicy],
    upstream: &UpstreamTags,
) {
    let graph = compile(policies, upstream, settings);
    for warning in graph.warnings() {
        eprintln!("warning: {warning}");
    }
    for c in graph.collisions() {
        eprintln!(
            "warning: {} is wanted by both {} and {}; only the first is in the graph",
            c.destination, c.kept, c.dropped
        );
    }
    let out = match args.format {
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Json => graph.to_json(),
    };
    print!("{out}");
}

/// The selection report of `--explain`: per policy and import (by name), every upstream tag
/// with its verdict, from [`crate::select::explain_tags`].
pub fn explain(
    format: GraphFormat,
    policies: &[ResolvedPolicy],
    upstream: &UpstreamTags,
) -> String {
    let mut ordered: Vec<&ResolvedPolicy> = policies.iter().collect();
    ordered.sort_by(|a, b| a.name.cmp(&b.name));
    let mut text = String::new();
    let mut imports = Vec::new();
    for policy in ordered {
        let source = format!("{}/{}", policy.source.registry, policy.source.repository);
        let tags = upstream.get(&policy.source.registry, &policy.source.repository);
        for import in &policy.imports {
            text.push_str(&format!("{}/{} ({source})\n", policy.name, import.name));
            let Some(tags) = tags else {
                text.push_str("  no upstream tag list; nothing selected\n");
                imports.push(serde_json::json!({
                    "policy": policy.name, "import": import.name, "source": source, "tags": null,
                }));
                continue;
            };
            let explained = crate::select::explain_tags(&import.tags, tags);
            let width = explained.iter().map(|e| e.tag.len()).max().unwrap_or(0);
            for e in &explained {
                text.push_str(&format!("  {:width$}  {}\n", e.tag, e.verdict));
            }
            let rows: Vec<serde_json::Value> = explained
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "tag": e.tag,
                        "selected": e.verdict.is_selected(),
                        "reason": e.verdict.to_string(),
                        "verdict": e.verdict,
                    })
                })
                .collect();
            imports.push(serde_json::json!({
                "policy": policy.name, "import": import.name, "source": source, "tags": rows,
            }));
        }
    }
    match format {
        GraphFormat::Dot => text,
        GraphFormat::Json => {
            let doc = serde_json::json!({"format_version": 1, "imports": imports});
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).expect("JSON values serialise")
            )
        }
    }
}

/// Parses the `--tags` file format.
pub fn parse_tag_file(path: &Path, text: &str) -> Result<UpstreamTags, Box<TagFileError>> {
    let file = path.display().to_string();
    let error = |message: String, help: &str, offset: Option<usize>| {
        Box::new(TagFileError {
            file: file.clone(),
            message,
            help: Some(help.to_string()),
            source_code: offset.map(|_| NamedSource::new(file.clone(), text.to_string())),
            span: offset.map(|o| SourceSpan::new(o.into(), 0)),
        })
    };
    let lists: BTreeMap<String, Vec<String>> = serde_json::from_str(text).map_err(|e| {
        error(
            format!("line {}, column {}: {e}", e.line(), e.column()),
            r#"the file is a JSON object mapping "<host>/<repository>" to an array of tag strings"#,
            Some(offset_of(text, e.line(), e.column())),
        )
    })?;
    let mut upstream = UpstreamTags::new();
    for (key, tags) in lists {
        match key.split_once('/') {
            Some((host, repository)) if !host.is_empty() && !repository.is_empty() => {
                upstream.insert(host, repository, tags);
            }
            _ => {
                return Err(error(
                    format!("key `{key}` is not `<host>/<repository>`"),
                    "write the source as policies do, host first: `docker.io/library/busybox`",
                    text.find(&format!("\"{key}\"")),
                ));
            }
        }
    }
    Ok(upstream)
}

/// Byte offset of a 1-based line and column as serde_json reports them.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_file_is_parsed() {
        let u = parse_tag_file(
            Path::new("tags.json"),
            r#"{"docker.io/library/busybox": ["1.37.0", "latest"], "quay.io/x": []}"#,
        )
        .unwrap();
        assert_eq!(
            u.get("docker.io", "library/busybox").unwrap(),
            ["1.37.0", "latest"]
        );
        assert_eq!(u.get("quay.io", "x").unwrap().len(), 0);
        assert!(u.get("docker.io", "library/alpine").is_none());
    }

    #[test]
    fn tag_file_errors_point_at_the_problem() {
        let e = parse_tag_file(Path::new("t.json"), "{\n  \"docker.io/x\": [1]\n}").unwrap_err();
        assert!(e.message.starts_with("line 2, column"), "{}", e.message);
        assert_eq!(
            e.span.map(|s| s.offset()),
            Some(offset_of("{\n  \"docker.io/x\": [1]\n}", 2, 19))
        );
        let e = parse_tag_file(Path::new("t.json"), r#"{"busybox": ["1"]}"#).unwrap_err();
        assert!(e.message.contains("`busybox`"));
        assert_eq!(e.span.map(|s| s.offset()), Some(1));
        assert_eq!(offset_of("ab\ncd", 2, 2), 4);
    }

    #[test]
    fn unreadable_tag_file_is_named() {
        let e = read_tag_file(Path::new("/nonexistent/tags.json")).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        assert!(e.to_string().contains("/nonexistent/tags.json"), "{e}");
    }
}
