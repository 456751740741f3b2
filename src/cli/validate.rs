//! `houba validate`: check policy files without touching any registry.

use std::path::PathBuf;
use std::process::ExitCode;

use miette::{GraphicalReportHandler, GraphicalTheme};
use serde_json::json;

use crate::config::Settings;
use crate::policy::{LoadOutcome, load_policies};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateFormat {
    /// Human-readable: each problem with its snippet and how to fix it.
    Text,
    /// One JSON object on stdout, for CI annotations and editors.
    Json,
}

/// Check MirrorPolicy files: YAML syntax, fields and types, regexes, semver ranges, digests,
/// owners, platforms, transforms against the rosters, and conflicts between policies.
///
/// Nothing is read from any registry. Every problem of the run is reported, each with its
/// file:line:col, a snippet, a stable code and how to fix it.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  houba validate                        # the policy directories of houba.toml (default ./policies)
  houba validate policies/busybox.yaml  # one file
  houba validate policies/ extra/       # several files or directories, read recursively
  houba validate --format json | jq '.diagnostics[] | .code'

Exit status: 0 when every policy is valid, 1 when there is at least one problem.
Output: `N policies, M imports: OK` on success; otherwise every problem on stderr and a
summary `K problems in F files`.
JSON: {\"ok\", \"policies\", \"imports\", \"diagnostics\": [{\"code\", \"severity\", \"message\",
\"file\", \"line\", \"column\", \"help\", \"related\": [{\"message\", \"file\", \"line\", \"column\"}]}]}
(line and column are 1-based; 0 for whole-file problems; `related` holds the other place of a
duplicate policy name or of a repository claimed twice).
The schema of a policy document: docs/reference/mirrorpolicy.schema.json.")]
pub struct ValidateArgs {
    /// Policy files or directories (`*.yaml`, `*.yml`, read recursively in sorted order).
    /// Default: the policy directories of the configuration.
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
    pub format: ValidateFormat,
}

pub fn run(args: &ValidateArgs, settings: &Settings) -> ExitCode {
    let paths = if args.paths.is_empty() {
        &settings.policies
    } else {
        &args.paths
    };
    let outcome = load_policies(paths, settings);
    if outcome.is_ok() && outcome.policies.is_empty() {
        eprintln!("warning: {}", super::no_policies_message(paths));
    }
    // stdout goes through `cli::output`: a reader that went away (`houba validate | head -1`)
    // ends the output quietly, and the exit status still says whether the policies are valid.
    match args.format {
        ValidateFormat::Text => print_text(&outcome),
        ValidateFormat::Json => print_json(&outcome),
    }
    if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_text(outcome: &LoadOutcome) {
    if outcome.is_ok() {
        crate::outln!(
            "{} {}, {} {}: OK",
            outcome.policies.len(),
            plural(outcome.policies.len(), "policy", "policies"),
            outcome.import_count(),
            plural(outcome.import_count(), "import", "imports"),
        );
        return;
    }
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::default());
    let mut report = String::new();
    for diagnostic in &outcome.diagnostics {
        // Rendering into a String cannot fail short of a formatter bug; fall back to the
        // plain line so no problem goes unreported.
        if handler.render_report(&mut report, diagnostic).is_err() {
            report.push_str(&format!("{}: {diagnostic}\n", diagnostic.location()));
        }
        report.push('\n');
    }
    let problems = outcome.diagnostics.len();
    let files = outcome.files_with_problems();
    eprint!("{report}");
    eprintln!(
        "{problems} {} in {files} {}",
        plural(problems, "problem", "problems"),
        plural(files, "file", "files"),
    );
}

fn print_json(outcome: &LoadOutcome) {
    let diagnostics: Vec<serde_json::Value> = outcome
        .diagnostics
        .iter()
        .map(|diagnostic| {
            json!({
                "code": diagnostic.code().as_str(),
                "severity": severity_name(diagnostic.severity),
                "message": diagnostic.message,
                "file": diagnostic.file.display().to_string(),
                "line": diagnostic.line,
                "column": diagnostic.column,
                "help": diagnostic.help,
                "related": diagnostic.related_places().iter().map(|related| json!({
                    "message": related.message,
                    "file": related.file.display().to_string(),
                    "line": related.line,
                    "column": related.column,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let document = json!({
        "ok": outcome.is_ok(),
        "policies": outcome.policies.len(),
        "imports": outcome.import_count(),
        "diagnostics": diagnostics,
    });
    crate::outln!("{document}");
}

fn severity_name(severity: miette::Severity) -> &'static str {
    match severity {
        miette::Severity::Error => "error",
        miette::Severity::Warning => "warning",
        miette::Severity::Advice => "advice",
    }
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}
