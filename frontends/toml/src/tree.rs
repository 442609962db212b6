//! The parsed TOML as a plain tree in which every key and value keeps its
//! byte span, in document order. Built from `toml_edit`'s span-preserving
//! document so that every later error can point at what it is about.

use std::ops::Range;

use crate::error::{SourceMap, TomlError};

pub type Span = Range<usize>;

#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub span: Span,
    pub value: Val,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Tree>),
    Table(Table),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Tree,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    #[cfg(test)]
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_str())
    }

    /// Insert or replace, keeping the position of a replaced key.
    pub fn set(&mut self, entry: Entry) {
        match self.entries.iter_mut().find(|e| e.key == entry.key) {
            Some(slot) => *slot = entry,
            None => self.entries.push(entry),
        }
    }
}

impl Val {
    /// The TOML type name, for "expected …, found …" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::Int(_) => "an integer",
            Val::Float(_) => "a float",
            Val::Bool(_) => "a boolean",
            Val::Datetime(_) => "a datetime",
            Val::Array(_) => "an array",
            Val::Table(_) => "a table",
        }
    }
}

/// Parse a spec into its tree. TOML syntax errors are located too.
pub fn parse(text: &str, map: &SourceMap) -> Result<Table, TomlError> {
    let doc = toml_edit::Document::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().trim_end_matches('.').to_string();
        map.error(
            &span,
            format!("invalid TOML: {}", lowercase_first(&message)),
        )
    })?;
    Ok(table(doc.as_table(), 0..0))
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) if !c.clone().next().is_some_and(|n| n.is_ascii_uppercase()) => {
            f.to_lowercase().collect::<String>() + c.as_str()
        }
        _ => s.to_string(),
    }
}

fn table(t: &toml_edit::Table, fallback: Span) -> Table {
    let mut entries = Vec::new();
    for (k, item) in t.iter() {
        let key_span = t
            .key(k)
            .and_then(|key| key.span())
            .unwrap_or_else(|| fallback.clone());
        if let Some(value) = item_tree(item, key_span.clone()) {
            entries.push(Entry {
                key: k.to_string(),
                key_span,
                value,
            });
        }
    }
    Table { entries }
}

fn inline_table(t: &toml_edit::InlineTable, fallback: Span) -> Table {
    let mut entries = Vec::new();
    for (k, v) in t.iter() {
        let key_span = t
            .key(k)
            .and_then(|key| key.span())
            .unwrap_or_else(|| fallback.clone());
        entries.push(Entry {
            key: k.to_string(),
            key_span: key_span.clone(),
            value: value_tree(v, key_span),
        });
    }
    Table { entries }
}

fn item_tree(item: &toml_edit::Item, fallback: Span) -> Option<Tree> {
    match item {
        toml_edit::Item::None => None,
        toml_edit::Item::Value(v) => Some(value_tree(v, fallback)),
        toml_edit::Item::Table(t) => {
            let span = t.span().unwrap_or_else(|| fallback.clone());
            Some(Tree {
                value: Val::Table(table(t, span.clone())),
                span,
            })
        }
        toml_edit::Item::ArrayOfTables(a) => {
            let span = a.span().unwrap_or_else(|| fallback.clone());
            let items = a
                .iter()
                .map(|t| {
                    let s = t.span().unwrap_or_else(|| span.clone());
                    Tree {
                        value: Val::Table(table(t, s.clone())),
                        span: s,
                    }
                })
                .collect();
            Some(Tree {
                value: Val::Array(items),
                span,
            })
        }
    }
}

fn value_tree(v: &toml_edit::Value, fallback: Span) -> Tree {
    use toml_edit::Value as V;
    let span = v.span().unwrap_or(fallback);
    let value = match v {
        V::String(s) => Val::Str(s.value().clone()),
        V::Integer(i) => Val::Int(*i.value()),
        V::Float(f) => Val::Float(*f.value()),
        V::Boolean(b) => Val::Bool(*b.value()),
        V::Datetime(d) => Val::Datetime(d.value().to_string()),
        V::Array(a) => Val::Array(a.iter().map(|x| value_tree(x, span.clone())).collect()),
        V::InlineTable(t) => Val::Table(inline_table(t, span.clone())),
    };
    Tree { span, value }
}

/// The tree as JSON (for checking a spec against the JSON Schema).
pub fn to_json(t: &Table) -> serde_json::Value {
    fn val(v: &Val) -> serde_json::Value {
        match v {
            Val::Str(s) | Val::Datetime(s) => serde_json::Value::String(s.clone()),
            Val::Int(i) => serde_json::Value::from(*i),
            Val::Float(f) => serde_json::Value::from(*f),
            Val::Bool(b) => serde_json::Value::Bool(*b),
            Val::Array(a) => serde_json::Value::Array(a.iter().map(|t| val(&t.value)).collect()),
            Val::Table(t) => to_json(t),
        }
    }
    let mut m = serde_json::Map::new();
    for e in &t.entries {
        m.insert(e.key.clone(), val(&e.value.value));
    }
    serde_json::Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_order_survive() {
        let text = "[stage.b]\nfrom = \"x\"\nenv = { Z = \"1\", A = \"2\" }\n[[stage.b.steps]]\nrun = \"ls\"\n[stage.a]\n";
        let map = SourceMap::new("t.toml", text);
        let root = parse(text, &map).unwrap();
        let stage = root.get("stage").unwrap();
        let Val::Table(stages) = &stage.value.value else {
            panic!()
        };
        assert_eq!(stages.keys().collect::<Vec<_>>(), ["b", "a"]);
        let Val::Table(b) = &stages.get("b").unwrap().value.value else {
            panic!()
        };
        let from = b.get("from").unwrap();
        assert_eq!(&text[from.key_span.clone()], "from");
        assert_eq!(&text[from.value.span.clone()], "\"x\"");
        let Val::Table(env) = &b.get("env").unwrap().value.value else {
            panic!()
        };
        assert_eq!(env.keys().collect::<Vec<_>>(), ["Z", "A"]);
        let Val::Array(steps) = &b.get("steps").unwrap().value.value else {
            panic!()
        };
        assert_eq!(map.location(&steps[0].span).line, 4);
    }

    #[test]
    fn syntax_errors_are_located() {
        let text = "a = 1\nb = \n";
        let map = SourceMap::new("t.toml", text);
        let e = parse(text, &map).unwrap_err();
        assert_eq!(e.location.unwrap().line, 2);
        assert!(e.message.starts_with("invalid TOML"), "{}", e.message);
    }
}
