//! Checking one MirrorPolicy document and resolving it into a [`ResolvedPolicy`].
//!
//! Values are checked where they are written (in `defaults` or in an import), so a bad value
//! inherited by ten imports is reported once, at its own line. Checks that depend on the merge
//! (an import left without destinations, aliases against the inherited `includeRegex`) run on
//! the merged import.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{CaSource, Settings};

use super::diagnostic::{Code, Finding};
use super::locate::{At, Locator};
use super::merge::{MergedImport, merge_import};
use super::model::{
    API_VERSION, DestinationSpec, Import, ImportDefaults, KIND, MirrorPolicy, TagSpec,
    TransformSpec,
};
use super::node::{Loc, Node};
use super::resolved::{
    Archive, ArtifactType, Destination, Origin, ResolvedImport, ResolvedPolicy, Source, TagRules,
    TransformStep, Variant,
};
use super::rules;
use super::structure::{Walker, policy_schema};
use super::suggest;

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
}

impl<'a> RunContext<'a> {
    pub fn new(settings: &'a Settings) -> RunContext<'a> {
        RunContext {
            settings,
            ca_files: HashMap::new(),
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
    let api_version = doc.entry("apiVersion")?;
    if let Some(found) = api_version.value.as_str()
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
    let kind = doc.entry("kind")?;
    if let Some(found) = kind.value.as_str()
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
        let tags = self.resolve_tag_rules(&merged, import, at);
        let settle = self.resolve_settle(import, at);
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
        }
    }

    /// Runs a resolution whose problems were already reported elsewhere (inherited values).
    fn quiet<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let reported = self.findings.len();
        let value = f(self);
        self.findings.truncate(reported);
        value
    }

    fn check_tags(&mut self, tags: &TagSpec, at: &At) {
        if let Some(include) = &tags.include_regex {
            self.check_regex(include, &at.key("includeRegex"));
        }
        for (index, exclude) in tags.exclude_regex.iter().flatten().enumerate() {
            self.check_regex(exclude, &at.key("excludeRegex").idx(index));
        }
        if let Some(range) = &tags.semver
            && let Err(problem) = rules::normalise_semver_range(range)
        {
            let loc = self.at.value(&at.key("semver"));
            self.report(
                Code::InvalidSemverRange,
                loc,
                problem,
                "invalid range",
                "write comparators separated by commas, e.g. `>=1.36, <2`, `~1.37`, `^3`",
            );
        }
        for (index, name) in tags.names.iter().flatten().enumerate() {
            if !rules::is_tag(name) {
                let loc = self.at.value(&at.key("names").idx(index));
                self.report(Code::InvalidValue, loc, format!("`{name}` is not a valid tag"), "not a tag", "a tag is up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`");
            }
        }
        for (tag, digest) in tags.pins.iter().flatten() {
            let pin_at = at.key("pins").key(tag);
            if !rules::is_tag(tag) {
                let loc = self.at.key(&pin_at);
                self.report(
                    Code::InvalidValue,
                    loc,
                    format!("pinned tag `{tag}` is not a valid tag"),
                    "not a tag",
                    "pins map a tag to its digest: `\"1.37.0\": sha256:…`",
                );
            }
            if let Err(problem) = rules::check_digest(digest) {
                let loc = self.at.value(&pin_at);
                self.report(Code::InvalidDigest, loc, problem, "malformed digest", "write `sha256:` followed by the 64 lowercase hex digits, e.g. from `skopeo inspect --format '{{.Digest}}' docker://…`");
            }
        }
    }

    fn check_regex(&mut self, source: &str, at: &At) {
        if let Err(error) = regex::Regex::new(source) {
            let loc = self.at.value(at);
            let detail = error.to_string();
            let last_line = detail.lines().last().unwrap_or_default().trim();
            let last_line = last_line.strip_prefix("error: ").unwrap_or(last_line);
            self.report(
                Code::InvalidRegex,
                loc,
                format!("`{source}` is not a valid regular expression: {last_line}"),
                "does not compile",
                "houba uses Rust `regex` syntax (no look-around or back-references); in YAML, single-quote patterns so that `\\` stays literal: '^1\\.37\\.\\d+$'",
            );
        }
    }

    fn check_platforms(&mut self, platforms: &[String], at: &At) -> Vec<super::resolved::Platform> {
        let mut parsed = Vec::new();
        for (index, text) in platforms.iter().enumerate() {
            match rules::parse_platform(text) {
                Ok(platform) => parsed.push(platform),
                Err(problem) => {
                    let loc = self.at.value(&at.idx(index));
                    self.report(Code::InvalidPlatform, loc, problem, "invalid platform", "write `os/arch[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`");
                }
            }
        }
        parsed
    }

    fn check_owners(&mut self, owners: &[String], at: &At) {
        for (index, owner) in owners.iter().enumerate() {
            if let Err(problem) = rules::check_owner(owner) {
                let loc = self.at.value(&at.idx(index));
                self.report(Code::InvalidOwner, loc, problem, "not an entity ref", "owners are Backstage entity refs; `io.houba.owners` carries them so incidents reach the right team");
            }
        }
    }

    fn resolve_destinations(
        &mut self,
        destinations: &[DestinationSpec],
        at: &At,
    ) -> Vec<Destination> {
        destinations
            .iter()
            .enumerate()
            .filter_map(|(index, destination)| {
                self.resolve_destination(destination, &at.idx(index))
            })
            .collect()
    }

    fn resolve_destination(
        &mut self,
        destination: &DestinationSpec,
        item: &At,
    ) -> Option<Destination> {
        let repository = match &destination.project {
            Some(project) => format!("{project}/{}", destination.repository),
            None => destination.repository.clone(),
        };
        let repository_ok = match rules::check_repository(&repository) {
            Ok(()) => true,
            Err(problem) => {
                let project_bad = destination
                    .project
                    .as_deref()
                    .is_some_and(|project| rules::check_repository(project).is_err());
                let field = if project_bad { "project" } else { "repository" };
                let loc = self.at.value(&item.key(field));
                self.report(
                    Code::InvalidRepository,
                    loc,
                    problem,
                    "invalid repository path",
                    "repository paths are lowercase: `mirror/busybox`",
                );
                false
            }
        };
        let registry = self.resolve_registry(destination.registry.as_deref(), item)?;
        repository_ok.then_some(Destination {
            registry,
            repository,
        })
    }

    fn resolve_registry(&mut self, name: Option<&str>, item: &At) -> Option<String> {
        let roster = &self.run.settings.registries;
        let names = suggest::list(roster.keys().map(String::as_str));
        match name {
            Some(name) if roster.contains_key(name) => Some(name.to_string()),
            Some(name) => {
                let help = match (suggest::closest(name, roster.keys().map(String::as_str)), roster.is_empty()) {
                    (_, true) => "the registry roster is empty: declare `[registries.<name>]` in houba.toml (or HOUBA_REGISTRIES)".to_string(),
                    (Some(close), _) => format!("did you mean `{close}`? The roster has {names}"),
                    (None, _) => format!("the roster has {names}; add `[registries.{name}]` to houba.toml to declare it"),
                };
                let loc = self.at.value(&item.key("registry"));
                self.report(
                    Code::UnknownRegistry,
                    loc,
                    format!("registry `{name}` is not in the registry roster"),
                    "unknown registry",
                    &help,
                );
                None
            }
            None if roster.len() == 1 => roster.keys().next().cloned(),
            None => {
                let help = if roster.is_empty() {
                    "the registry roster is empty: declare `[registries.<name>]` in houba.toml (or HOUBA_REGISTRIES) and name it here".to_string()
                } else {
                    format!(
                        "the roster has {} registries ({names}): add `registry: <name>`",
                        roster.len()
                    )
                };
                let loc = self.at.value(item);
                self.report(
                    Code::AmbiguousRegistry,
                    loc,
                    "this destination names no registry and the roster does not have exactly one"
                        .into(),
                    "which registry?",
                    &help,
                );
                None
            }
        }
    }

    fn resolve_transform(&mut self, steps: &[TransformSpec], at: &At) -> Vec<TransformStep> {
        if !steps.is_empty() && self.artifact_type != ArtifactType::Image {
            let loc = self.at.key(at);
            let kind = self.artifact_type.as_str();
            self.report(
                Code::TransformOnNonImage,
                loc,
                format!("transform steps on a `{kind}` policy"),
                "images only",
                &format!("transform steps rebuild container images; a {kind} artifact is copied as is. Remove `transform`, or set `artifactType: image`"),
            );
        }
        let mut resolved = Vec::with_capacity(steps.len());
        for (index, step) in steps.iter().enumerate() {
            let step_at = at.idx(index);
            match step {
                TransformSpec::InjectCa(inject) => {
                    let certs_at = step_at.key("injectCA").key("certs");
                    if inject.certs.is_empty() {
                        let loc = self.at.key(&certs_at);
                        self.report(Code::InvalidValue, loc, "`injectCA.certs` is empty".into(), "no certificate", "name at least one `ca_certs` roster entry, e.g. `certs: [corporate-root]`");
                    }
                    for (cert_index, cert) in inject.certs.iter().enumerate() {
                        self.check_ca(cert, &certs_at.idx(cert_index));
                    }
                    resolved.push(TransformStep::InjectCa {
                        certs: inject.certs.clone(),
                    });
                }
                TransformSpec::RewritePackageSources(rewrite) => {
                    let mirrors = &self.run.settings.package_mirrors;
                    if !mirrors.contains_key(&rewrite.mirror) {
                        let help = roster_help(
                            &rewrite.mirror,
                            mirrors.keys().map(String::as_str),
                            "package_mirrors",
                        );
                        let loc = self
                            .at
                            .value(&step_at.key("rewritePackageSources").key("mirror"));
                        self.report(
                            Code::UnknownMirror,
                            loc,
                            format!(
                                "package mirror `{}` is not in the `package_mirrors` roster",
                                rewrite.mirror
                            ),
                            "unknown mirror",
                            &help,
                        );
                    }
                    resolved.push(TransformStep::RewritePackageSources {
                        mirror: rewrite.mirror.clone(),
                    });
                }
                TransformSpec::SetTimezone(timezone) => {
                    if !is_zone_name(&timezone.zone) {
                        let loc = self.at.value(&step_at.key("setTimezone").key("zone"));
                        self.report(Code::InvalidValue, loc, format!("`{}` is not a time zone name", timezone.zone), "not a zone", "write an IANA zone name such as `UTC`, `Europe/Paris` or `America/New_York`");
                    }
                    resolved.push(TransformStep::SetTimezone {
                        zone: timezone.zone.clone(),
                    });
                }
            }
        }
        resolved
    }

    fn check_ca(&mut self, cert: &str, at: &At) {
        let source = self.run.settings.ca_certs.get(cert).cloned();
        match source {
            None => {
                let help = roster_help(
                    cert,
                    self.run.settings.ca_certs.keys().map(String::as_str),
                    "ca_certs",
                );
                let loc = self.at.value(at);
                self.report(
                    Code::UnknownCa,
                    loc,
                    format!("CA `{cert}` is not in the `ca_certs` roster"),
                    "unknown CA",
                    &help,
                );
            }
            Some(CaSource::Path(path)) => {
                if let Some(problem) = self.run.ca_file_problem(&path) {
                    let loc = self.at.value(at);
                    self.report(
                        Code::UnreadableCa,
                        loc,
                        format!(
                            "CA `{cert}` points at {} which cannot be read: {problem}",
                            path.display()
                        ),
                        "CA file unreadable",
                        &format!(
                            "fix `ca_certs.{cert}.path` in houba.toml, or make the file readable"
                        ),
                    );
                }
            }
            Some(CaSource::Pem(_)) => {}
        }
    }

    fn resolve_variants(&mut self, import: &Import, at: &At) -> Vec<Variant> {
        let Some(variants) = &import.variants else {
            return vec![Variant {
                name: "default".into(),
                suffix: String::new(),
                transform: Vec::new(),
            }];
        };
        let variants_at = at.key("variants");
        if variants.is_empty() {
            let loc = self.at.key(&variants_at);
            self.report(
                Code::InvalidValue,
                loc,
                "`variants` is empty: nothing would be placed".into(),
                "no variant",
                "remove `variants` to get one `default` variant, or list at least one",
            );
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut suffixes: BTreeMap<&str, &str> = BTreeMap::new();
        let mut resolved = Vec::with_capacity(variants.len());
        for (index, variant) in variants.iter().enumerate() {
            let item = variants_at.idx(index);
            self.check_name(&variant.name, &item.key("name"), "variant");
            if let Some(first) = names.get(variant.name.as_str()) {
                let first_line = self.at.value(&variants_at.idx(*first).key("name")).line;
                let loc = self.at.value(&item.key("name"));
                self.report(
                    Code::DuplicateVariant,
                    loc,
                    format!(
                        "variant name `{}` is used twice in import `{}`",
                        variant.name, import.name
                    ),
                    "second variant with this name",
                    &format!("rename this variant or the one on line {first_line}"),
                );
            } else {
                names.insert(&variant.name, index);
            }
            if let Err(problem) = rules::check_suffix(&variant.suffix) {
                let loc = self.at.value(&item.key("suffix"));
                self.report(
                    Code::InvalidSuffix,
                    loc,
                    problem,
                    "invalid suffix",
                    "a suffix is letters, digits, `.`, `_` and `-`, e.g. `-eu`",
                );
            } else if let Some(other) = suffixes.get(variant.suffix.as_str()) {
                let loc = self.at.value(&item.key("suffix"));
                self.report(
                    Code::VariantTagCollision,
                    loc,
                    if variant.suffix.is_empty() {
                        format!("variants `{other}` and `{}` both have the empty suffix: both would write the same tags", variant.name)
                    } else {
                        format!("variants `{other}` and `{}` have the same suffix `{}`: both would write the same tags", variant.name, variant.suffix)
                    },
                    "same tags as another variant",
                    "give each variant of an import a distinct `suffix` (e.g. `-eu`, `-us`); at most one may have the empty suffix",
                );
            } else {
                suffixes.insert(&variant.suffix, &variant.name);
            }
            let transform = match &variant.transform {
                Some(steps) => self.resolve_transform(steps, &item.key("transform")),
                None => Vec::new(),
            };
            resolved.push(Variant {
                name: variant.name.clone(),
                suffix: variant.suffix.clone(),
                transform,
            });
        }
        resolved
    }

    fn resolve_tag_rules(&mut self, merged: &MergedImport, import: &Import, at: &At) -> TagRules {
        let tags = &merged.tags;
        let own_tags = import.tags.as_ref();
        let tags_at = |own: bool| {
            if own {
                at.key("tags")
            } else {
                spec().key("defaults").key("tags")
            }
        };
        // Placeholders an alias may use: the semver parts and the named groups of the
        // effective includeRegex (which may be inherited).
        let mut placeholders = vec![
            "major".to_string(),
            "minor".to_string(),
            "patch".to_string(),
        ];
        if let Some(include) = &tags.include_regex
            && let Ok(regex) = regex::Regex::new(include)
        {
            placeholders.extend(regex.capture_names().flatten().map(str::to_string));
        }
        let aliases_at = tags_at(own_tags.is_some_and(|t| t.aliases.is_some())).key("aliases");
        let aliases = tags.aliases.clone().unwrap_or_default();
        for (index, alias) in aliases.iter().enumerate() {
            let problem = match rules::alias_placeholders(alias) {
                Err(problem) => Some(problem),
                Ok(used) => used.iter().find(|name| !placeholders.iter().any(|p| p == *name)).map(|unknown| {
                    format!("alias `{alias}` uses `{{{unknown}}}`, which is neither a semver part nor a named group of `includeRegex`")
                }),
            };
            if let Some(problem) = problem {
                let loc = self.at.value(&aliases_at.idx(index));
                let known = suggest::list(placeholders.iter().map(String::as_str));
                self.report(Code::InvalidAlias, loc, problem, "invalid alias", &format!("placeholders available here: {known}; name a group in includeRegex with `(?P<name>…)` to use it"));
            }
        }
        TagRules {
            include_regex: tags.include_regex.clone(),
            exclude_regex: tags.exclude_regex.clone().unwrap_or_default(),
            semver_only: tags.semver_only.unwrap_or(true),
            semver: tags
                .semver
                .as_deref()
                .and_then(|range| rules::normalise_semver_range(range).ok()),
            latest: tags.latest.map(|n| n as usize),
            names: tags.names.clone().unwrap_or_default(),
            aliases,
            pins: tags.pins.clone().unwrap_or_default(),
        }
    }

    fn resolve_settle(&mut self, import: &Import, at: &At) -> Duration {
        let Some(text) = &import.settle else {
            return Duration::ZERO;
        };
        rules::parse_settle(text).unwrap_or_else(|problem| {
            let loc = self.at.value(&at.key("settle"));
            self.report(Code::InvalidSettle, loc, problem, "invalid duration", "e.g. `settle: 24h` waits a day after an upstream digest last moved before updating");
            Duration::ZERO
        })
    }

    /// An alias is written once per repository: two imports (or two variants) of this policy
    /// writing the same literal alias into the same destination would fight over it.
    fn check_alias_collisions(
        &mut self,
        imports: &[ResolvedImport],
        spec_doc: &super::model::PolicySpec,
    ) {
        let mut written: BTreeMap<(Destination, String), (String, Loc)> = BTreeMap::new();
        for (index, import) in imports.iter().enumerate() {
            let own_aliases = spec_doc.imports[index]
                .tags
                .as_ref()
                .is_some_and(|t| t.aliases.is_some());
            let aliases_at = if own_aliases {
                spec().key("imports").idx(index).key("tags").key("aliases")
            } else {
                spec().key("defaults").key("tags").key("aliases")
            };
            for (alias_index, alias) in import.tags.aliases.iter().enumerate() {
                if !rules::alias_placeholders(alias).is_ok_and(|p| p.is_empty()) {
                    continue;
                }
                let loc = self.at.value(&aliases_at.idx(alias_index));
                for variant in &import.variants {
                    let tag = format!("{alias}{}", variant.suffix);
                    for destination in &import.destinations {
                        let key = (destination.clone(), tag.clone());
                        let writer = format!("{}/{}", import.name, variant.name);
                        match written.get(&key) {
                            Some((first, first_loc)) => {
                                let first_line = first_loc.line;
                                self.report(
                                    Code::DuplicateAlias,
                                    loc,
                                    format!("alias `{tag}` is written into {}/{} by both `{first}` and `{writer}`", destination.registry, destination.repository),
                                    "alias written twice",
                                    &format!("an alias names one image per repository; drop it here or on line {first_line}, or send one import to another repository"),
                                );
                            }
                            None => {
                                written.insert(key, (writer, loc));
                            }
                        }
                    }
                }
            }
        }
    }

    fn destination_claims(&mut self, policy: &MirrorPolicy) -> Vec<(Destination, Loc)> {
        let defaults = policy.spec.defaults.clone().unwrap_or_default();
        let mut claims: Vec<(Destination, Loc)> = Vec::new();
        let mut sites: Vec<(Vec<DestinationSpec>, At)> = Vec::new();
        if let Some(destinations) = &defaults.destinations {
            sites.push((
                destinations.clone(),
                spec().key("defaults").key("destinations"),
            ));
        }
        for (index, import) in policy.spec.imports.iter().enumerate() {
            if let Some(destinations) = &import.destinations {
                sites.push((
                    destinations.clone(),
                    spec().key("imports").idx(index).key("destinations"),
                ));
            }
        }
        for (destinations, at) in sites {
            for (index, destination) in destinations.iter().enumerate() {
                let item = at.idx(index);
                let resolved =
                    self.quiet(|checker| checker.resolve_destination(destination, &item));
                if let Some(found) = resolved
                    && !claims.iter().any(|(d, _)| *d == found)
                {
                    let loc = self.at.value(&item.key("repository"));
                    claims.push((found, loc));
                }
            }
        }
        claims
    }
}

fn roster_help<'a>(
    name: &str,
    known: impl Iterator<Item = &'a str> + Clone,
    roster: &str,
) -> String {
    let list = suggest::list(known.clone());
    match suggest::closest(name, known) {
        Some(close) => format!("did you mean `{close}`? The `{roster}` roster has {list}"),
        None if list.is_empty() => {
            format!("the `{roster}` roster is empty: declare `[{roster}.{name}]` in houba.toml")
        }
        None => format!(
            "the `{roster}` roster has {list}; declare `[{roster}.{name}]` in houba.toml to add it"
        ),
    }
}

/// IANA zone names are `Area/Location[/Sub]` or a few single words (`UTC`).
fn is_zone_name(zone: &str) -> bool {
    !zone.is_empty()
        && zone.split('/').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        })
}
