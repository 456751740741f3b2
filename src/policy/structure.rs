//! Structural check of a document against the generated JSON Schema.
//!
//! The walk reports every unknown field, wrong type, missing field and invalid enum value of a
//! document (not only the first, as a typed deserializer would), and produces the JSON value
//! the typed model is then read from. Walking the schema generated from the serde types keeps
//! this check and the model in lockstep.

use std::sync::OnceLock;

use serde_json::{Map, Value as Json};

use super::diagnostic::{Code, Finding};
use super::node::{Loc, Node, Value};
use super::suggest;

/// The MirrorPolicy schema, generated once per process.
pub(crate) fn policy_schema() -> &'static Json {
    static SCHEMA: OnceLock<Json> = OnceLock::new();
    SCHEMA.get_or_init(super::model::json_schema)
}

pub(crate) struct Walker<'a> {
    root: &'a Json,
    /// The document's file text, for taking a scalar's spelling verbatim.
    text: &'a str,
    pub findings: Vec<Finding>,
}

/// Where the walk is: the dotted path for messages and the place to point at when something
/// is missing (the key that holds the current map).
#[derive(Clone)]
struct Place<'p> {
    path: String,
    anchor: Loc,
    /// The schema description of the field being read, quoted in help texts.
    description: Option<&'p str>,
}

impl<'a> Walker<'a> {
    pub fn new(root: &'a Json, text: &'a str) -> Walker<'a> {
        Walker {
            root,
            text,
            findings: Vec::new(),
        }
    }

    /// Checks `node` against the root schema, recording every problem in `findings`.
    ///
    /// Returns the document as JSON with every unusable part left out (unknown fields,
    /// optional fields of the wrong type), so that the rules of the language can still be
    /// checked on the rest; `None` when a required part is missing or unusable.
    pub fn check_document(&mut self, node: &Node) -> Option<Json> {
        let place = Place {
            path: String::new(),
            anchor: node.loc,
            description: None,
        };
        let root = self.root;
        self.walk(root, node, &place)
    }

    fn resolve(&self, mut schema: &'a Json) -> &'a Json {
        // `$ref` chains are short (one hop) in generated schemas; the bound guards against a
        // cycle in a hand-edited one.
        for _ in 0..8 {
            let Some(reference) = schema.get("$ref").and_then(Json::as_str) else {
                break;
            };
            let name = reference.trim_start_matches("#/$defs/");
            match self.root.pointer(&format!("/$defs/{name}")) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn walk(&mut self, schema: &'a Json, node: &Node, place: &Place<'a>) -> Option<Json> {
        let schema = self.resolve(schema);
        let description = schema
            .get("description")
            .and_then(Json::as_str)
            .or(place.description);
        let place = &Place {
            description,
            ..place.clone()
        };
        if let Some(branches) = schema.get("anyOf").and_then(Json::as_array) {
            return self.walk_any_of(branches, node, place);
        }
        if let Some(branches) = schema.get("oneOf").and_then(Json::as_array) {
            return self.walk_single_key_choice(branches, node, place);
        }
        let types = type_names(schema);
        if node.value == Value::Null && types.contains(&"null") {
            return Some(Json::Null);
        }
        match &node.value {
            Value::Map(_) if types.contains(&"object") => self.walk_object(schema, node, place),
            Value::Seq(items) if types.contains(&"array") => {
                let item_schema = schema.get("items").unwrap_or(&Json::Bool(true));
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (index, item) in items.iter().enumerate() {
                    let child = Place {
                        path: format!("{}[{index}]", place.path),
                        anchor: item.loc,
                        description: None,
                    };
                    match self.walk(item_schema, item, &child) {
                        Some(value) => out.push(value),
                        None => ok = false,
                    }
                }
                ok.then_some(Json::Array(out))
            }
            Value::Bool(b) if types.contains(&"boolean") => Some(Json::Bool(*b)),
            Value::Int(i) if types.contains(&"integer") || types.contains(&"number") => {
                self.check_integer(schema, *i, node, place)
            }
            Value::Float(f) if types.contains(&"number") => {
                serde_json::Number::from_f64(*f).map(Json::Number)
            }
            Value::Str(s) if types.contains(&"string") => self.check_string(schema, s, node, place),
            // A plain scalar such as `1.10` or `2024` where text is expected is taken as
            // written, the way a typed YAML reader does.
            Value::Bool(_) | Value::Int(_) | Value::Float(_) if types.contains(&"string") => {
                let raw = self.raw_text(node);
                self.check_string(schema, &raw, node, place)
            }
            _ => {
                self.wrong_type(&types, node, place);
                None
            }
        }
    }

    fn walk_any_of(
        &mut self,
        branches: &'a [Json],
        node: &Node,
        place: &Place<'a>,
    ) -> Option<Json> {
        let null_allowed = branches.iter().any(|branch| type_names(branch) == ["null"]);
        if node.value == Value::Null && null_allowed {
            return Some(Json::Null);
        }
        let branch = branches
            .iter()
            .find(|branch| type_names(branch) != ["null"])?;
        self.walk(branch, node, place)
    }

    /// An externally tagged enum: a map with exactly one key naming the variant.
    fn walk_single_key_choice(
        &mut self,
        branches: &'a [Json],
        node: &Node,
        place: &Place<'a>,
    ) -> Option<Json> {
        let choices: Vec<(&str, &'a Json)> = branches
            .iter()
            .filter_map(|branch| {
                let key = branch.get("required")?.get(0)?.as_str()?;
                Some((key, branch))
            })
            .collect();
        let names = suggest::list(choices.iter().map(|(name, _)| *name));
        let Value::Map(entries) = &node.value else {
            self.findings.push(
                Finding::new(
                    Code::WrongType,
                    node.loc,
                    format!(
                        "`{}` must be a single-key map naming a step, found {}",
                        place.path,
                        node.value.kind()
                    ),
                )
                .label("expected e.g. `setTimezone: {zone: Europe/Paris}`")
                .help(format!("write one of {names} as the only key")),
            );
            return None;
        };
        if entries.len() != 1 {
            let keys: Vec<String> = entries
                .iter()
                .map(|entry| format!("`{}`", self.key_text(&entry.key)))
                .collect();
            self.findings.push(
                Finding::new(
                    Code::InvalidValue,
                    node.loc,
                    format!(
                        "`{}` names {} steps ({}); a step is a map with exactly one key",
                        place.path,
                        entries.len(),
                        keys.join(", ")
                    ),
                )
                .label("one step per list item")
                .help(format!(
                    "split it into one list item per step; the steps are {names}"
                )),
            );
            return None;
        }
        let key = self.key_text(&entries[0].key);
        match choices.iter().find(|(name, _)| *name == key) {
            Some((_, branch)) => self.walk_object(branch, node, place),
            None => {
                let mut finding = Finding::new(
                    Code::UnknownTransform,
                    entries[0].key.loc,
                    format!("unknown transform step `{key}` in `{}`", place.path),
                )
                .label("not a transform step");
                finding = match suggest::closest(&key, choices.iter().map(|(name, _)| *name)) {
                    Some(close) => {
                        finding.help(format!("did you mean `{close}`? The steps are {names}"))
                    }
                    None => finding.help(format!("the steps are {names}")),
                };
                self.findings.push(finding);
                None
            }
        }
    }

    fn walk_object(&mut self, schema: &'a Json, node: &Node, place: &Place<'a>) -> Option<Json> {
        let properties = schema.get("properties").and_then(Json::as_object);
        let additional = schema.get("additionalProperties");
        let mut out = Map::new();
        let mut ok = true;
        for entry in node.entries() {
            if matches!(entry.key.value, Value::Seq(_) | Value::Map(_) | Value::Null) {
                self.findings.push(
                    Finding::new(
                        Code::WrongType,
                        entry.key.loc,
                        format!("a key{} is {}", in_path(&place.path), entry.key.value.kind()),
                    )
                    .label("expected a plain name")
                    .help("keys are plain names; quote the whole key if it must contain `[`, `{` or `:`"),
                );
                continue;
            }
            let key = self.key_text(&entry.key);
            let child_path = if place.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", place.path)
            };
            let child_place = Place {
                path: child_path,
                anchor: entry.key.loc,
                description: None,
            };
            let child_schema = match properties.and_then(|p| p.get(&key)) {
                Some(child) => Some(child),
                None => match additional {
                    Some(Json::Object(child)) if !child.is_empty() => additional,
                    Some(Json::Bool(true)) => additional,
                    _ => None,
                },
            };
            match child_schema {
                // An unusable value is left out (its problem is recorded); the object stays
                // usable unless the value was required.
                Some(child) => {
                    if let Some(value) = self.walk(child, &entry.value, &child_place) {
                        out.insert(key, value);
                    }
                }
                None => self.unknown_field(&key, entry.key.loc, properties, place),
            }
        }
        let required = schema.get("required").and_then(Json::as_array);
        for field in required.into_iter().flatten().filter_map(Json::as_str) {
            if out.contains_key(field) {
                continue;
            }
            ok = false;
            if node.entry(field).is_none() {
                let field_description = properties
                    .and_then(|p| p.get(field))
                    .map(|s| self.resolve(s))
                    .and_then(|s| s.get("description"))
                    .and_then(Json::as_str);
                let mut finding = Finding::new(
                    Code::MissingField,
                    place.anchor,
                    format!("missing field `{field}`{}", in_path(&place.path)),
                )
                .label(format!("`{field}` is required here"));
                finding = match field_description {
                    Some(text) => finding.help(format!("add `{field}`: {}", one_line(text))),
                    None => finding.help(format!("add `{field}`")),
                };
                self.findings.push(finding);
            }
        }
        ok.then_some(Json::Object(out))
    }

    fn unknown_field(
        &mut self,
        key: &str,
        loc: Loc,
        properties: Option<&'a Map<String, Json>>,
        place: &Place<'a>,
    ) {
        let known: Vec<&str> = properties
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let help = match suggest::closest(key, known.iter().copied()) {
            Some(close) => format!("did you mean `{close}`?"),
            None if known.is_empty() => "this map takes no fields".to_string(),
            None => format!(
                "the fields here are {}",
                suggest::list(known.iter().copied())
            ),
        };
        self.findings.push(
            Finding::new(
                Code::UnknownField,
                loc,
                format!("unknown field `{key}`{}", in_path(&place.path)),
            )
            .label("unknown field")
            .help(help),
        );
    }

    fn check_integer(
        &mut self,
        schema: &Json,
        value: i128,
        node: &Node,
        place: &Place,
    ) -> Option<Json> {
        let minimum = schema.get("minimum").and_then(Json::as_i64).map(i128::from);
        let maximum = match schema.get("format").and_then(Json::as_str) {
            Some("uint32") => Some(i128::from(u32::MAX)),
            Some("uint" | "uint64") => Some(i128::from(u64::MAX)),
            _ => None,
        };
        let below = minimum.is_some_and(|min| value < min);
        let above = maximum.is_some_and(|max| value > max);
        if below || above {
            let range = match (below, minimum, maximum) {
                (true, Some(min), _) => format!("at least {min}"),
                (_, _, Some(max)) => format!("at most {max}"),
                _ => "in range".to_string(),
            };
            self.findings.push(
                Finding::new(
                    Code::InvalidValue,
                    node.loc,
                    format!("`{}` is {value}, it must be {range}", place.path),
                )
                .label(format!("must be {range}"))
                .help(describe_help(place, &format!("use a whole number {range}"))),
            );
            return None;
        }
        if let Ok(v) = u64::try_from(value) {
            Some(Json::from(v))
        } else {
            i64::try_from(value).ok().map(Json::from)
        }
    }

    fn check_string(
        &mut self,
        schema: &Json,
        value: &str,
        node: &Node,
        place: &Place,
    ) -> Option<Json> {
        let allowed: Vec<&str> = match (schema.get("enum"), schema.get("const")) {
            (Some(Json::Array(values)), _) => values.iter().filter_map(Json::as_str).collect(),
            (_, Some(Json::String(constant))) => vec![constant.as_str()],
            _ => return Some(Json::String(value.to_string())),
        };
        if allowed.contains(&value) {
            return Some(Json::String(value.to_string()));
        }
        let choices = suggest::list(allowed.iter().copied());
        let help = match suggest::closest(value, allowed.iter().copied()) {
            Some(close) => format!("did you mean `{close}`? Allowed: {choices}"),
            None => format!("allowed: {choices}"),
        };
        self.findings.push(
            Finding::new(
                Code::InvalidValue,
                node.loc,
                format!("`{}` cannot be `{value}`", place.path),
            )
            .label("not an allowed value")
            .help(help),
        );
        None
    }

    fn wrong_type(&mut self, types: &[&str], node: &Node, place: &Place) {
        if place.path.is_empty() {
            self.findings.push(
                Finding::new(
                    Code::WrongType,
                    node.loc,
                    format!("a policy document must be a map, found {}", node.value.kind()),
                )
                .label("expected a map")
                .help("a document starts with `apiVersion: houba.io/v1alpha1`, `kind: MirrorPolicy`, `metadata` and `spec`; separate documents with `---`"),
            );
            return;
        }
        let expected: Vec<&str> = types
            .iter()
            .filter(|t| **t != "null")
            .map(|t| match *t {
                "string" => "a string",
                "array" => "a list",
                "object" => "a map",
                "integer" => "a whole number",
                "number" => "a number",
                "boolean" => "`true` or `false`",
                _ => "a value",
            })
            .collect();
        let expected = if expected.is_empty() {
            "a value".to_string()
        } else {
            expected.join(" or ")
        };
        let quoted = self
            .text
            .get(node.loc.offset..)
            .is_some_and(|rest| rest.starts_with(['"', '\'']));
        let mut fix = match (&node.value, types) {
            (Value::Str(_), t) if quoted && (t.contains(&"integer") || t.contains(&"boolean")) => {
                "remove the quotes".to_string()
            }
            (Value::Str(_), t) if t.contains(&"boolean") => {
                "write `true` or `false` (`yes`, `no`, `on` and `off` are text here)".to_string()
            }
            (Value::Str(_) | Value::Map(_), t) if t.contains(&"array") => {
                "write a list: `[a, b]` or one `- item` per line".to_string()
            }
            (Value::Null, _) => "give it a value, or remove the key".to_string(),
            _ => format!("write {expected}"),
        };
        if let Some(description) = place.description.filter(|_| !place.path.is_empty()) {
            fix = format!("{fix}. `{}`: {}", place.path, one_line(description));
        }
        self.findings.push(
            Finding::new(
                Code::WrongType,
                node.loc,
                if place.path.is_empty() {
                    format!(
                        "a policy document must be a map, found {}",
                        node.value.kind()
                    )
                } else {
                    format!(
                        "`{}` must be {expected}, found {}",
                        place.path,
                        node.value.kind()
                    )
                },
            )
            .label(format!("expected {expected}"))
            .help(fix),
        );
    }

    /// A key as text: plain scalars (`1.10`, `true`) as written.
    fn key_text(&self, key: &Node) -> String {
        match &key.value {
            Value::Str(s) => s.clone(),
            _ => self.raw_text(key),
        }
    }

    fn raw_text(&self, node: &Node) -> String {
        let start = node.loc.offset;
        let end = start.saturating_add(node.loc.len);
        match self.text.get(start..end) {
            Some(raw) if node.loc.len > 0 => raw.trim().to_string(),
            _ => match &node.value {
                Value::Bool(b) => b.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                _ => String::new(),
            },
        }
    }
}

fn type_names(schema: &Json) -> Vec<&str> {
    match schema.get("type") {
        Some(Json::String(name)) => vec![name.as_str()],
        Some(Json::Array(names)) => names.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `` in `spec.source` `` (or ` at the top level` for the document itself).
fn in_path(path: &str) -> String {
    if path.is_empty() {
        " at the top level".to_string()
    } else {
        format!(" in `{path}`")
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn describe_help(place: &Place, fix: &str) -> String {
    match place.description {
        Some(description) => format!("{fix}. `{}`: {}", place.path, one_line(description)),
        None => fix.to_string(),
    }
}
