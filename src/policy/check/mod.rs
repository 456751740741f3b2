//! Checking one MirrorPolicy document and resolving it into a [`ResolvedPolicy`].
//!
//! Values are checked where they are written (in `defaults` or in an import), so a bad value
//! inherited by ten imports is reported once, at its own line. Checks that depend on the merge
//! (an import left without destinations, aliases against the inherited `includeRegex`) run on
//! the merged import.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::config::Settings;

use crate::policy::diagnostic::{Code, Finding};
use crate::policy::locate::{At, Locator};
use crate::policy::merge::merge_import;
use crate::policy::model::{API_VERSION, Import, ImportDefaults, KIND, MirrorPolicy};
use crate::policy::node::{Loc, Node};
use crate::policy::resolved::{
    Archive, ArtifactType, Destination, Origin, ResolvedImport, ResolvedPolicy, Source,
    TransformStep, Variant,
};
use crate::policy::rules;
use crate::policy::structure::{Walker, policy_schema};

mod roster;
mod tags;
mod values;
pub(crate) mod zones;

/// What the cross-policy checks need to know about a document.
#[derive(Debug, Clone)]
pub(crate) struct Claims {
    pub name: String,
    pub name_loc: Loc,
    /// Each destination repository the policy writes, with the place it is declared.
    pub destinations: Vec<(Destination, Loc)>,
}

#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// Present only when the document has no problem.
    pub policy: Option<ResolvedPolicy>,
    pub findings: Vec<Finding>,
    pub claims: Option<Claims>,
}

/// Per-run memory shared by all documents.
pub(crate) struct RunContext<'a> {
    pub settings: &'a Settings,
    /// CA file path → why it cannot be read (`None`: readable). Each file is read once.
    pub ca_files: HashMap<PathBuf, Option<String>>,
    /// Regex source → its named groups, or why it does not compile. Compiling is the bulk of
    /// a document's checking cost, and policies of one organisation share many patterns.
    pub regexes: HashMap<String, Result<Vec<String>, String>>,
}

impl<'a> RunContext<'a> {
    pub fn new(settings: &'a Settings) -> RunContext<'a> {
        RunContext {
            settings,
            ca_files: HashMap::new(),
            regexes: HashMap::new(),
        }
    }

    /// Compiles `source` exactly as later stages will, returning its named groups or the
    /// compiler's explanation.
    pub fn compile_regex(&mut self, source: &str) -> Result<&[String], String> {
        if !self.regexes.contains_key(source) {
            let compiled = regex::Regex::new(source)
                .map(|regex| {
                    regex
                        .capture_names()
                        .flatten()
                        .map(str::to_string)
                        .collect()
                })
                .map_err(|error| {
                    let detail = error.to_string();
                    let last_line = detail.lines().last().unwrap_or_default().trim();
                    last_line
                        .strip_prefix("error: ")
                        .unwrap_or(last_line)
                        .to_string()
                });
            self.regexes.insert(source.to_string(), compiled);
        }
        match &self.regexes[source] {
            Ok(groups) => Ok(groups),
            Err(problem) => Err(problem.clone()),
        }
    }

    fn ca_file_problem(&mut self, path: &Path) -> Option<String> {
        self.ca_files
            .entry(path.to_path_buf())
            .or_insert_with(|| std::fs::read(path).err().map(|error| error.to_string()))
            .clone()
    }
}

pub(crate) fn check_document(
    doc: &Node,
    text: &str,
    file: &Path,
    run: &mut RunContext<'_>,
) -> Checked {
    if let Some(finding) = check_header(doc) {
        return Checked {
            findings: vec![finding],
            ..Checked::default()
        };
    }
    let mut walker = Walker::new(policy_schema(), text);
    let json = walker.check_document(doc);
    let structural = walker.findings;
    let Some(json) = json else {
        return Checked {
            findings: structural,
            ..Checked::default()
        };
    };
    let policy: MirrorPolicy = match serde_json::from_value(json) {
        Ok(policy) => policy,
        // With structural problems, the partial document may not fit the model; they are
        // already reported.
        Err(_) if !structural.is_empty() => {
            return Checked {
                findings: structural,
                ..Checked::default()
            };
        }
        Err(error) => {
            // The walk accepted the document, so this is a gap between schema and model;
            // still a diagnostic, never a panic.
            let finding = Finding::new(Code::InvalidValue, doc.loc, error.to_string())
                .help("check this document against docs/reference/mirrorpolicy.schema.json");
            return Checked {
                findings: vec![finding],
                ..Checked::default()
            };
        }
    };
    let mut checker = DocumentChecker {
        at: Locator::new(doc, text),
        run,
        findings: Vec::new(),
        artifact_type: policy.spec.artifact_type,
    };
    let resolved = checker.resolve(&policy, file);
    let claims = Claims {
        name: policy.metadata.name.clone(),
        name_loc: checker.at.value(&At::root().key("metadata").key("name")),
        destinations: checker.destination_claims(&policy),
    };
    let mut findings = structural;
    let partial = !findings.is_empty();
    // In a partially read document, an import may look destination-less only because its
    // destinations were unreadable.
    findings.extend(
        checker
            .findings
            .into_iter()
            .filter(|finding| !(partial && finding.code == Code::NoDestination)),
    );
    Checked {
        policy: findings.is_empty().then_some(resolved),
        findings,
        claims: Some(claims),
    }
}

/// A document for another tool (a Kubernetes manifest, another houba version) is reported as
/// such, rather than as a pile of unknown fields.
fn check_header(doc: &Node) -> Option<Finding> {
    if let Some(api_version) = doc.entry("apiVersion")
        && let Some(found) = api_version.value.as_str()
        && found != API_VERSION
    {
        return Some(
            Finding::new(
                Code::WrongApiVersion,
                api_version.value.loc,
                format!("apiVersion `{found}` is not supported"),
            )
            .label(format!("expected `{API_VERSION}`"))
            .help(format!(
                "houba reads `apiVersion: {API_VERSION}`; move other manifests out of the \
                 policy directories"
            )),
        );
    }
    if let Some(kind) = doc.entry("kind")
        && let Some(found) = kind.value.as_str()
        && found != KIND
    {
        return Some(
            Finding::new(
                Code::WrongKind,
                kind.value.loc,
                format!("kind `{found}` is not a policy kind"),
            )
            .label(format!("expected `{KIND}`"))
            .help(format!(
                "policy files hold `kind: {KIND}` documents only; move other manifests out \
                 of the policy directories"
            )),
        );
    }
    None
}

struct DocumentChecker<'a, 'r> {
    at: Locator<'a>,
    run: &'a mut RunContext<'r>,
    findings: Vec<Finding>,
    artifact_type: ArtifactType,
}

fn spec() -> At {
    At::root().key("spec")
}

impl DocumentChecker<'_, '_> {
    fn report(&mut self, code: Code, loc: Loc, message: String, label: &str, help: &str) {
        self.findings
            .push(Finding::new(code, loc, message).label(label).help(help));
    }

    fn resolve(&mut self, policy: &MirrorPolicy, file: &Path) -> ResolvedPolicy {
        let name_at = At::root().key("metadata").key("name");
        self.check_name(&policy.metadata.name, &name_at, "policy");
        let spec_doc = &policy.spec;
        let source_at = spec().key("source");
        if let Err(problem) = rules::check_host(&spec_doc.source.registry) {
            let loc = self.at.value(&source_at.key("registry"));
            self.report(
                Code::InvalidValue,
                loc,
                problem,
                "not a registry host",
                "write the upstream registry's host, e.g. `docker.io`",
            );
        }
        if let Err(problem) = rules::check_repository(&spec_doc.source.repository) {
            let loc = self.at.value(&source_at.key("repository"));
            self.report(
                Code::InvalidRepository,
                loc,
                problem,
                "invalid repository path",
                "Docker Hub official images live under `library/`, e.g. `library/busybox`",
            );
        }
        if spec_doc.imports.is_empty() {
            let loc = self.at.key(&spec().key("imports"));
            self.report(
                Code::EmptyImports,
                loc,
                "`spec.imports` is empty: this policy admits nothing".into(),
                "no imports",
                "add at least one import, e.g. `- name: stable` with `tags` and `destinations`",
            );
        }
        let defaults = spec_doc.defaults.clone().unwrap_or_default();
        self.check_defaults(&defaults);

        let mut imports = Vec::with_capacity(spec_doc.imports.len());
        let mut first_import: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, import) in spec_doc.imports.iter().enumerate() {
            let at = spec().key("imports").idx(index);
            if let Some(first) = first_import.insert(&import.name, index) {
                first_import.insert(&import.name, first);
                let first_line = self
                    .at
                    .value(&spec().key("imports").idx(first).key("name"))
                    .line;
                let loc = self.at.value(&at.key("name"));
                self.report(
                    Code::DuplicateImport,
                    loc,
                    format!("import name `{}` is used twice in this policy", import.name),
                    "second import with this name",
                    &format!("import names identify plan addresses and stamps; rename this import or the one on line {first_line}"),
                );
            }
            imports.push(self.resolve_import(&defaults, import, &at));
        }
        self.check_alias_collisions(&imports, spec_doc);

        let origin_loc = self.at.value(&name_at);
        ResolvedPolicy {
            name: policy.metadata.name.clone(),
            labels: policy.metadata.labels.clone(),
            origin: Origin {
                file: file.to_path_buf(),
                line: origin_loc.line,
                column: origin_loc.column,
            },
            artifact_type: spec_doc.artifact_type,
            source: Source {
                registry: spec_doc.source.registry.clone(),
                repository: spec_doc.source.repository.clone(),
            },
            deletion_mode: spec_doc.deletion_mode,
            imports,
        }
    }

    fn check_name(&mut self, name: &str, at: &At, what: &str) {
        if let Err(problem) = rules::check_name(name) {
            let loc = self.at.value(at);
            self.report(
                Code::InvalidName,
                loc,
                problem,
                "invalid name",
                &format!("the {what} name appears in plan addresses and stamps; e.g. `busybox`, `stable-1.37`"),
            );
        }
    }

    fn check_defaults(&mut self, defaults: &ImportDefaults) {
        let at = spec().key("defaults");
        if let Some(tags) = &defaults.tags {
            self.check_tags(tags, &at.key("tags"));
        }
        if let Some(platforms) = &defaults.platforms {
            self.check_platforms(platforms, &at.key("platforms"));
        }
        if let Some(owners) = &defaults.owners {
            self.check_owners(owners, &at.key("owners"));
        }
        if let Some(destinations) = &defaults.destinations {
            self.resolve_destinations(destinations, &at.key("destinations"));
        }
        if let Some(transform) = &defaults.transform {
            self.resolve_transform(transform, &at.key("transform"));
        }
    }

    fn resolve_import(
        &mut self,
        defaults: &ImportDefaults,
        import: &Import,
        at: &At,
    ) -> ResolvedImport {
        self.check_name(&import.name, &at.key("name"), "import");
        if let Some(tags) = &import.tags {
            self.check_tags(tags, &at.key("tags"));
        }
        let merged = merge_import(defaults, import);
        // Values are checked (and reported) where they are written; inherited ones were
        // checked in `check_defaults` and are only resolved here.
        let written_here = |own: bool| {
            if own {
                at.clone()
            } else {
                spec().key("defaults")
            }
        };
        let platforms_at = written_here(import.platforms.is_some()).key("platforms");
        let platforms = if import.platforms.is_some() {
            self.check_platforms(&merged.platforms, &platforms_at)
        } else {
            merged
                .platforms
                .iter()
                .filter_map(|p| rules::parse_platform(p).ok())
                .collect()
        };
        if import.owners.is_some() {
            self.check_owners(&merged.owners, &at.key("owners"));
        }
        let destinations = if import.destinations.is_some() {
            self.resolve_destinations(&merged.destinations, &at.key("destinations"))
        } else {
            self.quiet(|checker| checker.resolve_destinations(&merged.destinations, &At::root()))
        };
        if merged.destinations.is_empty() {
            let loc = self.at.value(&at.key("name"));
            self.report(
                Code::NoDestination,
                loc,
                format!("import `{}` has no destination", import.name),
                "placed nowhere",
                "add `destinations: [{registry: <roster name>, project: <project>, repository: <name>}]` to the import or to `spec.defaults`",
            );
        }
        let transform = if import.transform.is_some() {
            self.resolve_transform(&merged.transform, &at.key("transform"))
        } else {
            self.quiet(|checker| checker.resolve_transform(&merged.transform, &At::root()))
        };
        let variants = self.resolve_variants(import, at);
        let transform_at = written_here(import.transform.is_some()).key("transform");
        self.check_step_conflicts(&transform, &transform_at, &variants, at, platforms.len());
        let tags = self.resolve_tag_rules(&merged, import, at);
        let settle = self.resolve_settle(import, at);
        // Reported by `check_tags` where it is written (import or defaults).
        let recheck = merged
            .tags
            .recheck
            .as_deref()
            .and_then(|text| rules::parse_recheck(text).ok())
            .unwrap_or_default();
        ResolvedImport {
            name: import.name.clone(),
            tags,
            platforms,
            variants,
            destinations,
            transform,
            owners: merged.owners.clone(),
            vendor: merged.vendor.clone(),
            archive: merged.archive.as_ref().map(|archive| Archive {
                keep: archive.keep,
                older_than_days: archive.older_than_days,
            }),
            settle,
            recheck,
        }
    }

    /// Steps that cannot be built together, per variant (the import's steps, then the
    /// variant's): a `run` step makes the image a Dockerfile build, which neither rewrites
    /// package sources nor builds several platforms. Reported once at the `run` step.
    fn check_step_conflicts(
        &mut self,
        transform: &[TransformStep],
        transform_at: &At,
        variants: &[Variant],
        at: &At,
        platforms: usize,
    ) {
        let mut reported = std::collections::BTreeSet::new();
        for (v, variant) in variants.iter().enumerate() {
            let own_at = at.key("variants").idx(v).key("transform");
            let steps: Vec<(&TransformStep, At)> = transform
                .iter()
                .enumerate()
                .map(|(i, s)| (s, transform_at.idx(i)))
                .chain(
                    variant
                        .transform
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (s, own_at.idx(i))),
                )
                .collect();
            let Some((_, run_at)) = steps.iter().find(|(s, _)| s.runs_command()) else {
                continue;
            };
            let loc = self.at.key(&run_at.key("run"));
            let rewrite = steps
                .iter()
                .any(|(s, _)| matches!(s, TransformStep::RewritePackageSources { .. }));
            if rewrite && reported.insert((loc.line, loc.column, "rewrite")) {
                self.report(
                    Code::StepConflict,
                    loc,
                    format!("variant `{}` combines `run` with `rewritePackageSources`", variant.name),
                    "run with rewritePackageSources",
                    "an image with a `run` step is built from a Dockerfile, which does not rewrite package sources: rewrite them in the `run` command, or move `run` to another variant",
                );
            }
            if platforms > 1 && reported.insert((loc.line, loc.column, "platforms")) {
                self.report(
                    Code::StepConflict,
                    loc,
                    format!("variant `{}` has a `run` step but the import lists {platforms} platforms", variant.name),
                    "run over several platforms",
                    "an image with a `run` step is built for one platform: list one in `platforms`, or split the platforms into imports",
                );
            }
        }
    }

    /// Runs a resolution whose problems were already reported elsewhere (inherited values).
    fn quiet<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let reported = self.findings.len();
        let value = f(self);
        self.findings.truncate(reported);
        value
    }
}
