//! One value tree for both configuration syntaxes (the TOML file and the JSON roster in
//! `HOUBA_REGISTRIES`), so that a single validator reports the same key names for both, and
//! the error type that points back at where a value came from.

use std::ops::Range;
use std::path::Path;

use miette::{NamedSource, SourceSpan};
use toml::de::{DeTable, DeValue};

/// A configuration value with the byte range it came from (TOML only; JSON has no spans).
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub value: Value,
    pub span: Option<Range<usize>>,
}

#[derive(Debug, Clone)]
pub(super) enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Node>),
    Table(Vec<Entry>),
    /// A value no key accepts (TOML datetimes, JSON null); kept for the error message.
    Other(&'static str),
}

/// A table entry: the key's own span is what errors about unknown keys underline.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub name: String,
    pub key_span: Option<Range<usize>>,
    pub node: Node,
}

impl Node {
    pub fn from_toml_document(table: &toml::Spanned<DeTable<'_>>) -> Node {
        Node {
            value: Value::Table(table_entries(table.get_ref())),
            span: Some(table.span()),
        }
    }

    fn from_toml(value: &toml::Spanned<DeValue<'_>>) -> Node {
        let span = Some(value.span());
        let value = match value.get_ref() {
            DeValue::String(s) => Value::Str(s.to_string()),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Value::Int(n),
                Err(_) => Value::Other("an integer out of range"),
            },
            DeValue::Float(f) => match f.as_str().parse::<f64>() {
                Ok(x) => Value::Float(x),
                Err(_) => Value::Other("a float"),
            },
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Datetime(_) => Value::Other("a datetime"),
            DeValue::Array(items) => Value::Array(items.iter().map(Node::from_toml).collect()),
            DeValue::Table(t) => Value::Table(table_entries(t)),
        };
        Node { value, span }
    }

    pub fn from_json(value: &serde_json::Value) -> Node {
        let value = match value {
            serde_json::Value::Null => Value::Other("null"),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Value::Int(i),
                (None, Some(x)) => Value::Float(x),
                _ => Value::Other("a number out of range"),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => {
                Value::Array(items.iter().map(Node::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Table(
                map.iter()
                    .map(|(k, v)| Entry {
                        name: k.clone(),
                        key_span: None,
                        node: Node::from_json(v),
                    })
                    .collect(),
            ),
        };
        Node { value, span: None }
    }

    /// How the value is described in "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match &self.value {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
            Value::Other(what) => what,
        }
    }
}

fn table_entries(table: &DeTable<'_>) -> Vec<Entry> {
    table
        .iter()
        .map(|(k, v)| Entry {
            name: k.get_ref().to_string(),
            key_span: Some(k.span()),
            node: Node::from_toml(v),
        })
        .collect()
}

/// Configuration problems, each naming the key, where it was read from and how to fix it.
/// Validation goes on after a problem, so one run reports every problem of the file and the
/// environment; the accessors describe the first one.
///
/// Messages never contain a credential: values of secret-bearing keys are masked in every
/// source snippet (see `redact_secrets`), and never echoed in messages.
#[derive(Debug)]
pub struct ConfigError(Vec<Details>);

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{headline}")]
#[diagnostic(code(houba::config))]
struct Details {
    /// Byte offset in the file, for reporting in document order; `None` for other origins,
    /// which come after the file's problems in the order found.
    offset: Option<usize>,
    key: String,
    location: String,
    message: String,
    headline: String,
    #[help]
    help: Option<String>,
    #[source_code]
    source_code: Option<NamedSource<String>>,
    #[label("here")]
    span: Option<SourceSpan>,
}

impl ConfigError {
    /// Dotted key the error is about (`registries.local.tls_verify`); empty when the problem
    /// is not about one key (unreadable file, syntax error).
    pub fn key(&self) -> &str {
        &self.0[0].key
    }

    /// Where the value came from: `houba.toml:3:14`, `environment variable HOUBA_CONCURRENCY`.
    pub fn location(&self) -> &str {
        &self.0[0].location
    }

    /// What is wrong, without key or location.
    pub fn message(&self) -> &str {
        &self.0[0].message
    }

    /// How to fix it.
    pub fn help_text(&self) -> Option<&str> {
        self.0[0].help.as_deref()
    }

    /// How many problems this error reports.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// Every problem as `location: key: message`, in the order found.
    pub fn headlines(&self) -> Vec<&str> {
        self.0.iter().map(|d| d.headline.as_str()).collect()
    }

    /// One error reporting every problem of `errors`; `None` when there is none.
    pub(super) fn merge(errors: Vec<ConfigError>) -> Option<ConfigError> {
        let mut all: Vec<Details> = errors.into_iter().flat_map(|e| e.0).collect();
        all.sort_by_key(|d| d.offset.map_or((1, 0), |o| (0, o)));
        (!all.is_empty()).then_some(ConfigError(all))
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => one.fmt(f),
            all => write!(
                f,
                "{} problems in the configuration (each is shown below)",
                all.len()
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl miette::Diagnostic for ConfigError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0[0].code()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        match self.0.as_slice() {
            [one] => one.help(),
            _ => None,
        }
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        match self.0.as_slice() {
            [one] => one.source_code(),
            _ => None,
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        match self.0.as_slice() {
            [one] => one.labels(),
            _ => None,
        }
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        match self.0.as_slice() {
            [_] => None,
            all => Some(Box::new(all.iter().map(|d| d as &dyn miette::Diagnostic))),
        }
    }
}

/// Keys whose value is a secret: masked wherever the file's text is shown.
/// `key`, `pem` and `private_key`: a signing key written inline under `[signing]` is refused,
/// and the refusal must not show it.
const SECRET_KEYS: &[&str] = &["password", "token", "hmac_key", "key", "pem", "private_key"];

/// The file's text with the value of every secret-bearing key (at any depth) replaced by `*`
/// byte for byte, so that spans and line numbers stay valid and no snippet (of this problem
/// or of one on a neighbouring line) can show the secret.
pub(super) fn redact_secrets(text: &str, root: &Node) -> String {
    fn walk(node: &Node, spans: &mut Vec<Range<usize>>) {
        match &node.value {
            Value::Table(entries) => {
                for e in entries {
                    if SECRET_KEYS.contains(&e.name.as_str()) {
                        spans.extend(e.node.span.clone());
                    }
                    walk(&e.node, spans);
                }
            }
            Value::Array(items) => items.iter().for_each(|n| walk(n, spans)),
            _ => {}
        }
    }
    let mut spans = Vec::new();
    walk(root, &mut spans);
    let mut bytes = text.as_bytes().to_vec();
    for span in spans {
        for b in &mut bytes[span.start.min(text.len())..span.end.min(text.len())] {
            if *b != b'\n' {
                *b = b'*';
            }
        }
    }
    // Only whole UTF-8 sequences inside a value were replaced, by ASCII: still UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|_| "*".repeat(text.len()))
}

/// Where the values being validated came from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin<'a> {
    File {
        path: &'a Path,
        text: &'a str,
    },
    Env {
        var: &'a str,
    },
    Flag {
        name: &'a str,
    },
    /// A rule over the merged file and environment roster.
    Merged,
}

impl ConfigError {
    pub(super) fn new(
        origin: Origin<'_>,
        key: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> ConfigError {
        Self::build(origin, key, span, message.into(), help)
    }

    fn build(
        origin: Origin<'_>,
        key: &str,
        span: Option<Range<usize>>,
        message: String,
        help: Option<String>,
    ) -> ConfigError {
        let offset = match origin {
            Origin::File { .. } => Some(span.as_ref().map_or(0, |r| r.start)),
            _ => None,
        };
        let (location, source_code, span) = match origin {
            Origin::File { path, text } => {
                let shown = path.display().to_string();
                match span {
                    Some(range) => {
                        let start = range.start.min(text.len());
                        let (line, col) = line_col(text, start);
                        let len = range.end.min(text.len()).saturating_sub(start);
                        let (source, span) = (
                            Some(NamedSource::new(shown.clone(), text.to_string())),
                            Some(SourceSpan::new(start.into(), len)),
                        );
                        (format!("{shown}:{line}:{col}"), source, span)
                    }
                    None => (shown, None, None),
                }
            }
            Origin::Env { var } => (format!("environment variable {var}"), None, None),
            Origin::Flag { name } => (format!("flag {name}"), None, None),
            Origin::Merged => (
                "configuration (houba.toml and HOUBA_* variables)".to_string(),
                None,
                None,
            ),
        };
        let headline = if key.is_empty() {
            format!("{location}: {message}")
        } else {
            format!("{location}: {key}: {message}")
        };
        ConfigError(vec![Details {
            offset,
            key: key.to_string(),
            location,
            message,
            headline,
            help,
            source_code,
            span,
        }])
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// `prefix.name`, quoting names that are not bare TOML keys.
pub(super) fn join_key(prefix: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let name = if bare {
        name.to_string()
    } else {
        format!("{name:?}")
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}.{name}")
    }
}
