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

/// A configuration problem, naming the key, where it was read from and how to fix it.
///
/// Messages never contain a credential: values of secret-bearing keys are not echoed and no
/// source snippet is attached to them. Boxed: errors are rare and results are passed around a
/// lot during validation.
#[derive(Debug)]
pub struct ConfigError(Box<Details>);

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{headline}")]
#[diagnostic(code(houba::config))]
struct Details {
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
        &self.0.key
    }

    /// Where the value came from: `houba.toml:3:14`, `environment variable HOUBA_CONCURRENCY`.
    pub fn location(&self) -> &str {
        &self.0.location
    }

    /// What is wrong, without key or location.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// How to fix it.
    pub fn help_text(&self) -> Option<&str> {
        self.0.help.as_deref()
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ConfigError {}

impl miette::Diagnostic for ConfigError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0.code()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0.help()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.0.labels()
    }
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
        Self::build(origin, key, span, message.into(), help, true)
    }

    /// Same as `new`, without the source snippet: for keys whose line may hold a secret.
    pub(super) fn without_snippet(
        origin: Origin<'_>,
        key: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> ConfigError {
        Self::build(origin, key, span, message.into(), help, false)
    }

    fn build(
        origin: Origin<'_>,
        key: &str,
        span: Option<Range<usize>>,
        message: String,
        help: Option<String>,
        snippet: bool,
    ) -> ConfigError {
        let (location, source_code, span) = match origin {
            Origin::File { path, text } => {
                let shown = path.display().to_string();
                match span {
                    Some(range) => {
                        let start = range.start.min(text.len());
                        let (line, col) = line_col(text, start);
                        let len = range.end.min(text.len()).saturating_sub(start);
                        let (source, span) = if snippet {
                            (
                                Some(NamedSource::new(shown.clone(), text.to_string())),
                                Some(SourceSpan::new(start.into(), len)),
                            )
                        } else {
                            (None, None)
                        };
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
        ConfigError(Box::new(Details {
            key: key.to_string(),
            location,
            message,
            headline,
            help,
            source_code,
            span,
        }))
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
