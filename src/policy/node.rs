//! A YAML document as a tree of located nodes.
//!
//! serde-saphyr stops at the first error of a typed deserialization. To report every problem
//! of a document at once, documents are first read into this untyped tree (every node keeps
//! its location) and checked against the schema; only a document without structural problems
//! is turned into the typed model.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

/// Where a node's text sits in its file. `line`/`column` are 1-based; `offset`/`len` are
/// byte positions for the snippet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// 1-based line; 0 when unknown.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// Byte offset of the text from the start of the file.
    pub offset: usize,
    /// Length of the text in bytes.
    pub len: usize,
}

impl Loc {
    pub(crate) fn from_location(location: &Location) -> Loc {
        let span = location.span();
        Loc {
            line: usize::try_from(location.line()).unwrap_or(0),
            column: usize::try_from(location.column()).unwrap_or(0),
            offset: span
                .byte_offset()
                .and_then(|o| usize::try_from(o).ok())
                .unwrap_or(0),
            len: span
                .byte_len()
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(0),
        }
    }

    /// Like [`Loc::from_location`], for locations that carry only line and column (parser
    /// errors): the byte offset is recomputed from `text`.
    pub(crate) fn from_location_in(location: &Location, text: &str) -> Loc {
        let mut loc = Loc::from_location(location);
        if location.span().byte_offset().is_none() && loc.line > 0 {
            let line_start: usize = text
                .split_inclusive('\n')
                .take(loc.line - 1)
                .map(str::len)
                .sum();
            let line_text = text.get(line_start..).unwrap_or_default();
            let column_bytes: usize = line_text
                .chars()
                .take(loc.column.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            loc.offset = (line_start + column_bytes).min(text.len());
            loc.len = line_text[column_bytes.min(line_text.len())..]
                .chars()
                .next()
                .filter(|c| *c != '\n')
                .map_or(0, char::len_utf8);
        }
        loc
    }
}

/// One YAML value with the place it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value, with its children.
    pub value: Value,
    /// Where the value is written (for values coming through an alias or a merge key: the
    /// anchored definition, which is where the text to fix is).
    pub loc: Loc,
}

/// An untyped YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or an empty value.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer (every signed and unsigned 64-bit value fits).
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A string, quoted or plain.
    Str(String),
    /// A sequence (list).
    Seq(Vec<Node>),
    /// A mapping, its entries in file order (duplicate keys are refused when parsing).
    Map(Vec<Entry>),
}

/// One key/value pair of a mapping; both sides keep their location.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key (a string in every valid policy).
    pub key: Node,
    /// The value.
    pub value: Node,
}

impl Value {
    /// The word used in "expected …, found …" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

impl Node {
    /// The string, when the node is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries of a mapping; empty for any other value.
    pub fn entries(&self) -> &[Entry] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The items of a sequence; empty for any other value.
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    /// The entry whose key is the string `key`.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries()
            .iter()
            .find(|entry| entry.key.as_str() == Some(key))
    }

    /// The value under the string key `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|entry| &entry.value)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node {
            value: spanned.value,
            loc: Loc::from_location(&spanned.defined),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i128::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push(Entry { key, value });
        }
        Ok(Value::Map(entries))
    }
}

/// Options every policy file is read with: YAML merge keys expanded, duplicate keys
/// rejected, only `true`/`false` as booleans (so a tag named `no` stays a string).
pub fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        merge_keys: serde_saphyr::MergeKeyPolicy::Merge,
    }
}

/// Every non-empty document of `text`, or the parser's error.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, serde_saphyr::Error> {
    serde_saphyr::from_multiple_with_options::<Node>(text, yaml_options())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_carry_locations_and_merge_keys_expand() {
        let text = "base: &b\n  x: 1\n---\nmerged:\n  <<: {y: 2.5}\n  z: \"s\"\nlist: [a, ~]\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        let merged = docs[1].get("merged").unwrap();
        assert_eq!(merged.get("y").unwrap().value, Value::Float(2.5));
        let z = merged.get("z").unwrap();
        assert_eq!(z.value, Value::Str("s".into()));
        assert_eq!((z.loc.line, z.loc.column), (6, 6));
        assert_eq!(&text[z.loc.offset..z.loc.offset + z.loc.len], "\"s\"");
        let list = docs[1].get("list").unwrap().items();
        assert_eq!(list[1].value, Value::Null);
    }

    #[test]
    fn parser_errors_get_a_byte_offset_from_line_and_column() {
        let text = "a: 1\nb: [\n";
        let error = parse_documents(text).unwrap_err();
        let loc = Loc::from_location_in(&error.location().unwrap(), text);
        assert!(loc.line >= 2, "{loc:?}");
        assert!(loc.offset >= 5, "{loc:?}");
    }
}
