//! Policy problems as miette diagnostics: a stable code, the place (file:line:col with a
//! labelled snippet), what is wrong and how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode, SourceSpan};

use super::node::Loc;

/// The stable identity of a kind of problem. Printed as `houba::policy::<name>`; scripts and
/// the golden tests match on it, so existing codes never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// A path given on the command line or in the config does not exist or cannot be read.
    UnreadablePath,
    /// The file is not valid YAML (or not UTF-8).
    Yaml,
    /// `apiVersion` is not `houba.io/v1alpha1`.
    WrongApiVersion,
    /// `kind` is not `MirrorPolicy` (another tool's manifest in a policy directory).
    WrongKind,
    /// A field the language does not have (the help suggests the closest one).
    UnknownField,
    /// A value of the wrong type, e.g. a string where a list is expected.
    WrongType,
    /// A required field is absent.
    MissingField,
    /// A value outside the allowed set or range (`artifactType`, `latest: 0`, …).
    InvalidValue,
    /// A policy, import or variant name outside `[a-z0-9._-]`.
    InvalidName,
    /// A source or destination repository path the distribution spec rejects.
    InvalidRepository,
    /// `spec.imports` is empty.
    EmptyImports,
    /// An import has no destination once the defaults are merged in.
    NoDestination,
    /// `includeRegex` or `excludeRegex` does not compile.
    InvalidRegex,
    /// `tags.semver` is not a semantic version range.
    InvalidSemverRange,
    /// A pin is not `sha256:` followed by 64 lowercase hex digits.
    InvalidDigest,
    /// An alias template uses an unknown placeholder or is not a valid tag.
    InvalidAlias,
    /// An owner is not a Backstage entity ref `[kind:][namespace/]name`.
    InvalidOwner,
    /// A platform is not `os/arch[/variant]`.
    InvalidPlatform,
    /// A variant suffix holds characters a tag cannot.
    InvalidSuffix,
    /// `settle` is not a duration such as `30m`, `24h`, `1h30m`, `7d`.
    InvalidSettle,
    /// `tags.recheck` is not `always`, `never` or a duration.
    InvalidRecheck,
    /// Two imports of a policy share a name.
    DuplicateImport,
    /// Two variants of an import share a name.
    DuplicateVariant,
    /// Two variants of an import have the same suffix, so would write the same tags.
    VariantTagCollision,
    /// The same alias is written twice into one repository.
    DuplicateAlias,
    /// A transform step other than `injectCA`, `rewritePackageSources`, `setTimezone`, `run`.
    UnknownTransform,
    /// Transform steps on a `generic` or `helmChart` policy.
    TransformOnNonImage,
    /// A destination names a registry absent from the roster.
    UnknownRegistry,
    /// A destination omits `registry` while the roster does not have exactly one entry.
    AmbiguousRegistry,
    /// `injectCA` names a CA absent from the `ca_certs` roster.
    UnknownCa,
    /// The CA file of a `ca_certs` roster entry cannot be read.
    UnreadableCa,
    /// `rewritePackageSources` names a mirror absent from the `package_mirrors` roster.
    UnknownMirror,
    /// A `setTimezone` zone that is not in the IANA time zone database.
    UnknownTimezone,
    /// Transform steps that cannot be built together (a `run` step with
    /// `rewritePackageSources`, or over several platforms).
    StepConflict,
    /// Two policies share a name (both places are shown).
    DuplicatePolicy,
    /// Two policies write the same destination repository (both places are shown).
    DestinationConflict,
}

impl Code {
    /// Every code, in declaration order.
    pub const ALL: &[Code] = &[
        Code::UnreadablePath,
        Code::Yaml,
        Code::WrongApiVersion,
        Code::WrongKind,
        Code::UnknownField,
        Code::WrongType,
        Code::MissingField,
        Code::InvalidValue,
        Code::InvalidName,
        Code::InvalidRepository,
        Code::EmptyImports,
        Code::NoDestination,
        Code::InvalidRegex,
        Code::InvalidSemverRange,
        Code::InvalidDigest,
        Code::InvalidAlias,
        Code::InvalidOwner,
        Code::InvalidPlatform,
        Code::InvalidSuffix,
        Code::InvalidSettle,
        Code::InvalidRecheck,
        Code::DuplicateImport,
        Code::DuplicateVariant,
        Code::VariantTagCollision,
        Code::DuplicateAlias,
        Code::UnknownTransform,
        Code::TransformOnNonImage,
        Code::UnknownRegistry,
        Code::AmbiguousRegistry,
        Code::UnknownCa,
        Code::UnreadableCa,
        Code::UnknownMirror,
        Code::UnknownTimezone,
        Code::StepConflict,
        Code::DuplicatePolicy,
        Code::DestinationConflict,
    ];

    /// The printed form, `houba::policy::<kebab-case name>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::UnreadablePath => "houba::policy::unreadable-path",
            Code::Yaml => "houba::policy::yaml",
            Code::WrongApiVersion => "houba::policy::wrong-api-version",
            Code::WrongKind => "houba::policy::wrong-kind",
            Code::UnknownField => "houba::policy::unknown-field",
            Code::WrongType => "houba::policy::wrong-type",
            Code::MissingField => "houba::policy::missing-field",
            Code::InvalidValue => "houba::policy::invalid-value",
            Code::InvalidName => "houba::policy::invalid-name",
            Code::InvalidRepository => "houba::policy::invalid-repository",
            Code::EmptyImports => "houba::policy::empty-imports",
            Code::NoDestination => "houba::policy::no-destination",
            Code::InvalidRegex => "houba::policy::invalid-regex",
            Code::InvalidSemverRange => "houba::policy::invalid-semver-range",
            Code::InvalidDigest => "houba::policy::invalid-digest",
            Code::InvalidAlias => "houba::policy::invalid-alias",
            Code::InvalidOwner => "houba::policy::invalid-owner",
            Code::InvalidPlatform => "houba::policy::invalid-platform",
            Code::InvalidSuffix => "houba::policy::invalid-suffix",
            Code::InvalidSettle => "houba::policy::invalid-settle",
            Code::InvalidRecheck => "houba::policy::invalid-recheck",
            Code::DuplicateImport => "houba::policy::duplicate-import",
            Code::DuplicateVariant => "houba::policy::duplicate-variant",
            Code::VariantTagCollision => "houba::policy::variant-tag-collision",
            Code::DuplicateAlias => "houba::policy::duplicate-alias",
            Code::UnknownTransform => "houba::policy::unknown-transform",
            Code::TransformOnNonImage => "houba::policy::transform-on-non-image",
            Code::UnknownRegistry => "houba::policy::unknown-registry",
            Code::AmbiguousRegistry => "houba::policy::ambiguous-registry",
            Code::UnknownCa => "houba::policy::unknown-ca",
            Code::UnreadableCa => "houba::policy::unreadable-ca",
            Code::UnknownMirror => "houba::policy::unknown-mirror",
            Code::UnknownTimezone => "houba::policy::unknown-timezone",
            Code::StepConflict => "houba::policy::step-conflict",
            Code::DuplicatePolicy => "houba::policy::duplicate-policy",
            Code::DestinationConflict => "houba::policy::destination-conflict",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem found in one document, before it is attached to its file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub code: Code,
    pub loc: Loc,
    pub message: String,
    /// Short text under the snippet's caret.
    pub label: String,
    pub help: Option<String>,
}

impl Finding {
    pub fn new(code: Code, loc: Loc, message: impl Into<String>) -> Finding {
        Finding {
            code,
            loc,
            message: message.into(),
            label: String::new(),
            help: None,
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Finding {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Finding {
        self.help = Some(help.into());
        self
    }
}

/// A policy file's text, shared by every diagnostic that points into it.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub path: PathBuf,
    pub text: Arc<NamedSource<String>>,
}

impl SourceFile {
    pub fn new(path: &Path, text: String) -> SourceFile {
        SourceFile {
            path: path.to_path_buf(),
            text: Arc::new(NamedSource::new(path.display().to_string(), text)),
        }
    }

    pub fn diagnostic(&self, finding: Finding) -> PolicyDiagnostic {
        let len = self.text.inner().len();
        let offset = finding.loc.offset.min(len);
        let span_len = finding.loc.len.min(len - offset);
        PolicyDiagnostic {
            code: finding.code,
            severity: Severity::Error,
            message: finding.message,
            help: finding.help,
            file: self.path.clone(),
            line: finding.loc.line,
            column: finding.loc.column,
            label: finding.label,
            span: (finding.loc.line > 0).then(|| SourceSpan::new(offset.into(), span_len)),
            source: Some(self.text.clone()),
            related: Vec::new(),
        }
    }
}

/// One problem of a policy run. `line` and `column` are 1-based; both are 0 when the problem
/// concerns a whole file or path (for example a path that does not exist).
#[derive(Debug, Clone)]
pub struct PolicyDiagnostic {
    code: Code,
    /// [`Severity::Error`] for a problem; [`Severity::Advice`] for a related place shown
    /// under it.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// The policy file (or path) concerned.
    pub file: PathBuf,
    /// 1-based line of the problem; 0 for a whole file or path.
    pub line: usize,
    /// 1-based column of the problem; 0 for a whole file or path.
    pub column: usize,
    label: String,
    span: Option<SourceSpan>,
    source: Option<Arc<NamedSource<String>>>,
    related: Vec<PolicyDiagnostic>,
}

impl PolicyDiagnostic {
    /// A problem with a whole path (nothing to point at inside a file).
    pub(crate) fn for_path(
        code: Code,
        path: &Path,
        message: String,
        help: impl Into<String>,
    ) -> PolicyDiagnostic {
        PolicyDiagnostic {
            code,
            severity: Severity::Error,
            message,
            help: Some(help.into()),
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            label: String::new(),
            span: None,
            source: None,
            related: Vec::new(),
        }
    }

    /// The stable code of this kind of problem.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The other places this problem involves (the first definition of a duplicated policy
    /// name, the other policy claiming a repository).
    pub fn related_places(&self) -> &[PolicyDiagnostic] {
        &self.related
    }

    pub(crate) fn with_related(mut self, related: PolicyDiagnostic) -> PolicyDiagnostic {
        self.related.push(related);
        self
    }

    /// `file:line:col` (or just the file for whole-file problems).
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }

    /// The ordering key of a run's report: file, line, column, then code and message so that
    /// the order never depends on discovery order.
    pub(crate) fn sort_key(&self) -> (&Path, usize, usize, Code, &str) {
        (&self.file, self.line, self.column, self.code, &self.message)
    }

    /// Two diagnostics with the same code at the same place are one problem, even when it is
    /// reached through several paths (a YAML anchor used twice, a default inherited by
    /// several imports).
    pub(crate) fn same_problem(&self, other: &PolicyDiagnostic) -> bool {
        (&self.file, self.line, self.column, self.code)
            == (&other.file, other.line, other.column, other.code)
    }
}

impl fmt::Display for PolicyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyDiagnostic {}

impl Diagnostic for PolicyDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source
            .as_ref()
            .filter(|_| self.span.is_some())
            .map(|source| source as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        let label = (!self.label.is_empty()).then(|| self.label.clone());
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(label, span),
        )))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related
                .iter()
                .map(|related| related as &dyn Diagnostic),
        ))
    }
}
