//! Reading policy files and checking what spans several documents.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use miette::Severity;
use sha2::{Digest, Sha256};

use crate::config::Settings;

use super::check::{Claims, RunContext, check_document};
use super::diagnostic::{Code, Finding, PolicyDiagnostic, SourceFile};
use super::node::{Loc, parse_documents};
use super::resolved::{Destination, ResolvedPolicy};

/// Everything one load produced: the valid policies and every problem found.
#[derive(Debug)]
pub struct LoadOutcome {
    /// Policies without any problem, sorted by name. A policy involved in a cross-policy
    /// conflict is left out (the later one in file order). Callers that act on registries
    /// must refuse to run while `diagnostics` is not empty.
    pub policies: Vec<ResolvedPolicy>,
    /// Every problem, ordered by file, line and column.
    pub diagnostics: Vec<PolicyDiagnostic>,
    /// Policy files read.
    pub files: usize,
    /// Non-empty YAML documents read.
    pub documents: usize,
    /// `sha256:` over the relative path and bytes of every file read, in sorted order: equal
    /// when the policy inputs are byte-identical.
    pub content_digest: String,
}

impl LoadOutcome {
    /// True when no problem was found: only then may callers act on registries.
    pub fn is_ok(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// Imports across the valid policies.
    pub fn import_count(&self) -> usize {
        self.policies
            .iter()
            .map(|policy| policy.imports.len())
            .sum()
    }

    /// Distinct files (or paths) with at least one problem.
    pub fn files_with_problems(&self) -> usize {
        let mut files: Vec<&Path> = self.diagnostics.iter().map(|d| d.file.as_path()).collect();
        files.dedup();
        files.len()
    }
}

/// Loads every `*.yaml` / `*.yml` file under `paths` (files or directories, read
/// recursively in sorted order; hidden entries skipped) and checks them against `settings`.
pub fn load_policies(paths: &[PathBuf], settings: &Settings) -> LoadOutcome {
    let mut loader = Loader::new();
    let mut inputs: Vec<(PathBuf, String)> = Vec::new();
    for root in paths {
        match fs::metadata(root) {
            Ok(meta) if meta.is_dir() => walk_directory(root, root, &mut inputs, &mut loader.diagnostics),
            Ok(_) => {
                let relative = root
                    .file_name()
                    .map_or_else(|| root.display().to_string(), |name| name.to_string_lossy().into_owned());
                inputs.push((root.clone(), relative));
            }
            Err(error) => loader.diagnostics.push(PolicyDiagnostic::for_path(
                Code::UnreadablePath,
                root,
                format!("cannot read policy path {}: {error}", root.display()),
                "check the path given with `--policies` / `policies` in houba.toml, relative to the current directory",
            )),
        }
    }
    let mut seen = std::collections::HashSet::new();
    inputs.retain(|(path, _)| seen.insert(path.clone()));
    for result in check_files(&inputs, settings) {
        loader.absorb(result);
    }
    loader.finish()
}

/// Below this many files, starting threads costs more than it saves.
const FILES_PER_WORKER: usize = 32;

/// Reads and checks every file, on several threads for large policy sets. Each thread takes a
/// contiguous run of files, so results come back in input order.
fn check_files(inputs: &[(PathBuf, String)], settings: &Settings) -> Vec<FileResult> {
    let check_run = |run: &[(PathBuf, String)]| {
        let mut context = RunContext::new(settings);
        run.iter()
            .map(|(path, relative)| read_and_check(path, relative, &mut context))
            .collect::<Vec<_>>()
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(inputs.len() / FILES_PER_WORKER)
        .max(1);
    if workers == 1 {
        return check_run(inputs);
    }
    let per_worker = inputs.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .chunks(per_worker)
            .map(|run| scope.spawn(move || check_run(run)))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn read_and_check(path: &Path, relative: &str, run: &mut RunContext<'_>) -> FileResult {
    match fs::read(path) {
        Ok(bytes) => check_file(path, relative, bytes, run),
        Err(error) => FileResult {
            diagnostics: vec![PolicyDiagnostic::for_path(
                Code::UnreadablePath,
                path,
                format!("cannot read {}: {error}", path.display()),
                "make the file readable, or move it out of the policy directories",
            )],
            ..FileResult::default()
        },
    }
}

/// Loads one policy file given as text, exactly as `load_policies` would load a file named
/// `name` with this content.
pub fn load_policy_source(name: &str, text: &str, settings: &Settings) -> LoadOutcome {
    let mut loader = Loader::new();
    let mut run = RunContext::new(settings);
    loader.absorb(check_file(
        Path::new(name),
        name,
        text.as_bytes().to_vec(),
        &mut run,
    ));
    loader.finish()
}

fn walk_directory(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(PathBuf, String)>,
    diagnostics: &mut Vec<PolicyDiagnostic>,
) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            diagnostics.push(PolicyDiagnostic::for_path(
                Code::UnreadablePath,
                dir,
                format!("cannot list {}: {error}", dir.display()),
                "make the directory readable, or remove it from the policy paths",
            ));
            return;
        }
    };
    let mut entries: Vec<fs::DirEntry> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        // Symlinked directories are not followed (no cycles); symlinked files are, as in
        // Kubernetes ConfigMap mounts.
        let is_file = file_type.is_file()
            || (file_type.is_symlink() && fs::metadata(&path).is_ok_and(|meta| meta.is_file()));
        if file_type.is_dir() {
            walk_directory(root, &path, out, diagnostics);
        } else if is_file && is_policy_file(&path) {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((path, relative));
        }
    }
}

fn is_policy_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// One document that reached the typed model, remembered for the cross-policy checks.
struct Document {
    /// Index into `Loader::files`.
    file: usize,
    claims: Claims,
    policy: Option<ResolvedPolicy>,
}

/// What reading and checking one file produced.
#[derive(Default)]
struct FileResult {
    /// Present when the file was read as text.
    source: Option<SourceFile>,
    /// Relative path and `sha256(len ‖ bytes)`, for the content digest; absent when the file
    /// could not be read.
    digest: Option<(String, [u8; 32])>,
    documents: Vec<(Claims, Option<ResolvedPolicy>)>,
    document_count: usize,
    diagnostics: Vec<PolicyDiagnostic>,
}

fn check_file(path: &Path, relative: &str, bytes: Vec<u8>, run: &mut RunContext<'_>) -> FileResult {
    let mut hasher = Sha256::new();
    hasher.update(bytes.len().to_le_bytes());
    hasher.update(&bytes);
    let mut result = FileResult {
        digest: Some((relative.to_string(), hasher.finalize().into())),
        ..FileResult::default()
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            result.diagnostics.push(PolicyDiagnostic::for_path(
                Code::Yaml,
                path,
                format!(
                    "{} is not UTF-8 text (invalid byte at offset {})",
                    path.display(),
                    error.utf8_error().valid_up_to()
                ),
                "save the file as UTF-8",
            ));
            return result;
        }
    };
    let source = SourceFile::new(path, text);
    let text = source.text.inner().as_str();
    match parse_documents(text) {
        Err(error) => {
            let loc = error
                .location()
                .map(|l| Loc::from_location_in(&l, text))
                .unwrap_or_default();
            let (message, help) = describe_yaml_error(&error);
            let finding = Finding::new(Code::Yaml, loc, message)
                .label("here")
                .help(help);
            result.diagnostics.push(source.diagnostic(finding));
        }
        Ok(docs) => {
            for doc in &docs {
                result.document_count += 1;
                let checked = check_document(doc, text, path, run);
                for finding in checked.findings {
                    result.diagnostics.push(source.diagnostic(finding));
                }
                if let Some(claims) = checked.claims {
                    result.documents.push((claims, checked.policy));
                }
            }
        }
    }
    result.source = Some(source);
    result
}

struct Loader {
    files: Vec<SourceFile>,
    files_read: usize,
    digest_inputs: Vec<(String, [u8; 32])>,
    documents: Vec<Document>,
    document_count: usize,
    diagnostics: Vec<PolicyDiagnostic>,
}

impl Loader {
    fn new() -> Loader {
        Loader {
            files: Vec::new(),
            files_read: 0,
            digest_inputs: Vec::new(),
            documents: Vec::new(),
            document_count: 0,
            diagnostics: Vec::new(),
        }
    }

    fn absorb(&mut self, result: FileResult) {
        if let Some(digest) = result.digest {
            self.files_read += 1;
            self.digest_inputs.push(digest);
        }
        self.document_count += result.document_count;
        self.diagnostics.extend(result.diagnostics);
        if let Some(source) = result.source {
            let file = self.files.len();
            self.files.push(source);
            self.documents.extend(
                result
                    .documents
                    .into_iter()
                    .map(|(claims, policy)| Document {
                        file,
                        claims,
                        policy,
                    }),
            );
        }
    }

    fn finish(mut self) -> LoadOutcome {
        self.check_across_policies();
        let mut policies: Vec<ResolvedPolicy> = self
            .documents
            .into_iter()
            .filter_map(|doc| doc.policy)
            .collect();
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        let mut diagnostics = self.diagnostics;
        diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        // A value shared through a YAML anchor, or inherited by several imports, can raise
        // the same problem more than once.
        diagnostics.dedup_by(|later, first| later.same_problem(first));
        let mut digest_inputs = self.digest_inputs;
        digest_inputs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut digest = Sha256::new();
        for (relative, content) in digest_inputs {
            digest.update(relative.len().to_le_bytes());
            digest.update(relative.as_bytes());
            digest.update(content);
        }
        LoadOutcome {
            policies,
            diagnostics,
            files: self.files_read,
            documents: self.document_count,
            content_digest: format!("sha256:{:x}", digest.finalize()),
        }
    }

    /// Policy names are unique, and a destination repository belongs to one policy. The
    /// later document (in file order) is the one reported and left out.
    fn check_across_policies(&mut self) {
        let mut names: BTreeMap<String, (usize, Loc)> = BTreeMap::new();
        let mut repositories: BTreeMap<Destination, (String, usize, Loc)> = BTreeMap::new();
        for doc in &mut self.documents {
            let claims = &doc.claims;
            let file = &self.files[doc.file];
            if let Some((first_file, first_loc)) = names.get(&claims.name) {
                let first = &self.files[*first_file];
                let primary = file.diagnostic(
                    Finding::new(Code::DuplicatePolicy, claims.name_loc, format!("policy name `{}` is already used in {}:{}", claims.name, first.path.display(), first_loc.line))
                        .label("second policy with this name")
                        .help("policy names are unique across all policy files: they identify plan addresses and stamps. Rename one of the two"),
                );
                let related = related(
                    Code::DuplicatePolicy,
                    first,
                    *first_loc,
                    format!("`{}` first defined here", claims.name),
                );
                self.diagnostics.push(primary.with_related(related));
                doc.policy = None;
                continue;
            }
            names.insert(claims.name.clone(), (doc.file, claims.name_loc));
            for (destination, loc) in &claims.destinations {
                match repositories.get(destination) {
                    Some((owner, first_file, first_loc)) if *owner != claims.name => {
                        let first = &self.files[*first_file];
                        let primary = file.diagnostic(
                            Finding::new(
                                Code::DestinationConflict,
                                *loc,
                                format!("repository {}/{} is already written by policy `{owner}` ({}:{})", destination.registry, destination.repository, first.path.display(), first_loc.line),
                            )
                            .label("claimed twice")
                            .help("a destination repository is owned by exactly one policy, so that prunes and drift checks know whose tags they are. Choose another repository (or project), or merge the two policies"),
                        );
                        let related = related(
                            Code::DestinationConflict,
                            first,
                            *first_loc,
                            format!("claimed by `{owner}` here"),
                        );
                        self.diagnostics.push(primary.with_related(related));
                        doc.policy = None;
                    }
                    Some(_) => {}
                    None => {
                        repositories
                            .insert(destination.clone(), (claims.name.clone(), doc.file, *loc));
                    }
                }
            }
        }
    }
}

/// The parser's message without its developer hints and trailing position (the snippet
/// shows the position), and a help text for the usual causes.
fn describe_yaml_error(error: &serde_saphyr::Error) -> (String, String) {
    let text = error.without_snippet().to_string();
    let first_line = text.lines().next().unwrap_or("invalid YAML");
    let without_position = match first_line.rfind(" at line ") {
        Some(index) => &first_line[..index],
        None => first_line,
    };
    if let serde_saphyr::Error::DuplicateMappingKey { .. } = error.without_snippet() {
        let key = without_position
            .split_once("key: ")
            .map(|(_, rest)| rest.split(',').next().unwrap_or(rest).trim())
            .unwrap_or("?");
        return (
            format!("invalid YAML: the key `{key}` appears twice in the same map"),
            "a key may appear once per map: merge the two values or remove one".to_string(),
        );
    }
    (
        format!("invalid YAML: {without_position}"),
        "fix the YAML syntax here: indentation is significant, and a value containing `: ` \
         or starting with `*`, `&`, `!`, `%`, `@`, `[` or `{` must be quoted"
            .to_string(),
    )
}

/// The other place of a cross-policy problem, shown under the primary diagnostic.
fn related(code: Code, file: &SourceFile, loc: Loc, message: String) -> PolicyDiagnostic {
    let mut diagnostic = file.diagnostic(Finding::new(code, loc, message).label("first here"));
    diagnostic.severity = Severity::Advice;
    diagnostic
}
