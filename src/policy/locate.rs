//! Finding a value's place in the document it was read from, by its path in the model.
//!
//! The typed model carries no spans; a problem found on a typed value is pointed at by
//! walking the same path through the located node tree. The path is only walked when a
//! problem is reported, so valid documents pay nothing for it.

use super::node::{Loc, Node, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A path into a document: `spec.imports[2].tags.includeRegex`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct At(Vec<Seg>);

impl At {
    pub fn root() -> At {
        At::default()
    }

    pub fn key(&self, key: &str) -> At {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        At(segs)
    }

    pub fn idx(&self, index: usize) -> At {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        At(segs)
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => write!(f, "{key}")?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

pub struct Locator<'a> {
    root: &'a Node,
    text: &'a str,
}

impl<'a> Locator<'a> {
    pub fn new(root: &'a Node, text: &'a str) -> Locator<'a> {
        Locator { root, text }
    }

    /// Where the value at `at` is written (the closest existing ancestor when the path does
    /// not exist in the text, e.g. a defaulted field).
    pub fn value(&self, at: &At) -> Loc {
        self.walk(at).1
    }

    /// Where the key holding the value at `at` is written: the right place for "this field
    /// is wrong as a whole" (an empty list, a map key such as a pinned tag).
    pub fn key(&self, at: &At) -> Loc {
        self.walk(at).0
    }

    fn walk(&self, at: &At) -> (Loc, Loc) {
        let mut node = self.root;
        let mut key_loc = node.loc;
        for seg in &at.0 {
            match (seg, &node.value) {
                (Seg::Key(key), Value::Map(entries)) => {
                    match entries.iter().find(|entry| self.key_is(&entry.key, key)) {
                        Some(entry) => {
                            key_loc = entry.key.loc;
                            node = &entry.value;
                        }
                        None => break,
                    }
                }
                (Seg::Index(index), Value::Seq(items)) => match items.get(*index) {
                    Some(item) => {
                        key_loc = item.loc;
                        node = item;
                    }
                    None => break,
                },
                _ => break,
            }
        }
        (key_loc, node.loc)
    }

    fn key_is(&self, key: &Node, wanted: &str) -> bool {
        match &key.value {
            Value::Str(s) => s == wanted,
            _ => {
                let end = key.loc.offset.saturating_add(key.loc.len);
                self.text
                    .get(key.loc.offset..end)
                    .is_some_and(|raw| raw.trim() == wanted)
            }
        }
    }
}
