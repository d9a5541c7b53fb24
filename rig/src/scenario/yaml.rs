//! A YAML document as a tree of nodes that remember where they were written, and a serde
//! [`Deserializer`](serde::Deserializer) over that tree that reports errors with the node's
//! line, column and field path.
//!
//! yaml-rust2's event parser gives the positions; the tree is built iteratively with a depth
//! limit, so no input makes the builder or the deserializer recurse without bound. The
//! deserializer is strict the way scenario files want: quoted scalars are strings, plain scalars
//! resolve per the YAML 1.2 core schema (null, bool, int, float, else string), duplicate keys,
//! aliases, tags and multiple documents are errors.

use serde::de::{self, DeserializeSeed, Error as _, IntoDeserializer, Unexpected, Visitor};
use std::fmt;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 64;

/// A position in the text: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl Mark {
    pub const START: Mark = Mark { line: 1, column: 1 };

    fn from_marker(m: &Marker) -> Mark {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Mark {
            line: m.line().max(1),
            column: m.col() + 1,
        }
    }
}

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path such as `steps[3].pci_hotplug.driver`; empty for the document root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Seg>);

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }

    pub fn key(&self, k: &str) -> Path {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        Path(v)
    }

    pub fn index(&self, i: usize) -> Path {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Path(v)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub mark: Mark,
}

#[derive(Debug, Clone)]
pub enum Node {
    Scalar {
        value: String,
        /// Plain (unquoted, not a block scalar): subject to type resolution.
        plain: bool,
        mark: Mark,
    },
    Seq {
        items: Vec<Node>,
        mark: Mark,
    },
    Map {
        entries: Vec<(Key, Node)>,
        mark: Mark,
    },
}

impl Node {
    pub fn mark(&self) -> Mark {
        match self {
            Node::Scalar { mark, .. } | Node::Seq { mark, .. } | Node::Map { mark, .. } => *mark,
        }
    }

    /// The node at `path` below this one, if the document has it.
    pub fn get(&self, path: &Path) -> Option<&Node> {
        let mut node = self;
        for seg in &path.0 {
            node = match (seg, node) {
                (Seg::Key(k), Node::Map { entries, .. }) => {
                    &entries.iter().find(|(key, _)| &key.name == k)?.1
                }
                (Seg::Index(i), Node::Seq { items, .. }) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Where `path` was written: the value's position, or failing that the nearest ancestor's.
    pub fn locate(&self, path: &Path) -> Mark {
        let mut p = path.0.clone();
        loop {
            if let Some(n) = self.get(&Path(p.clone())) {
                return n.mark();
            }
            if p.pop().is_none() {
                return self.mark();
            }
        }
    }

    /// Where the key that ends `path` was written (its value's position for an index).
    pub fn locate_key(&self, path: &Path) -> Mark {
        if let Some((Seg::Key(k), parent)) = path.0.split_last() {
            if let Some(Node::Map { entries, .. }) = self.get(&Path(parent.to_vec())) {
                if let Some((key, _)) = entries.iter().find(|(key, _)| &key.name == k) {
                    return key.mark;
                }
            }
        }
        self.locate(path)
    }

    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Node::Seq { .. } => Unexpected::Seq,
            Node::Map { .. } => Unexpected::Map,
            Node::Scalar { value, plain, .. } => {
                if !*plain {
                    return Unexpected::Str(value);
                }
                match resolve(value) {
                    Resolved::Null => Unexpected::Other("null"),
                    Resolved::Bool(b) => Unexpected::Bool(b),
                    Resolved::Int(i) => Unexpected::Signed(i),
                    Resolved::UInt(u) => Unexpected::Unsigned(u),
                    Resolved::Float(f) => Unexpected::Float(f),
                    Resolved::Str => Unexpected::Str(value),
                }
            }
        }
    }
}

/// A YAML syntax or structure problem found while building the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub mark: Mark,
    pub path: Path,
    pub message: String,
}

enum Frame {
    Seq {
        items: Vec<Node>,
        mark: Mark,
    },
    Map {
        entries: Vec<(Key, Node)>,
        mark: Mark,
        pending: Option<Key>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
}

impl Builder {
    fn path(&self) -> Path {
        let mut p = Path::root();
        for f in &self.stack {
            match f {
                Frame::Seq { items, .. } => p.0.push(Seg::Index(items.len())),
                Frame::Map {
                    pending: Some(k), ..
                } => p.0.push(Seg::Key(k.name.clone())),
                Frame::Map { pending: None, .. } => break,
            }
        }
        p
    }

    fn err(&self, mark: Mark, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            mark,
            path: self.path(),
            message: message.into(),
        }
    }

    fn open(&mut self, frame: Frame, mark: Mark) -> Result<(), SyntaxError> {
        if let Some(Frame::Map { pending: None, .. }) = self.stack.last() {
            return Err(self.err(mark, "mapping keys must be plain strings"));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.err(mark, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn add(&mut self, node: Node) -> Result<(), SyntaxError> {
        let Some(top) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match top {
            Frame::Seq { items, .. } => items.push(node),
            Frame::Map {
                entries, pending, ..
            } => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let Node::Scalar { value, mark, .. } = node else {
                        return Err(self.err(node.mark(), "mapping keys must be plain strings"));
                    };
                    if entries.iter().any(|(k, _)| k.name == value) {
                        let m = SyntaxError {
                            mark,
                            path: self.path().key(&value),
                            message: format!("duplicate key `{value}`"),
                        };
                        return Err(m);
                    }
                    *pending = Some(Key { name: value, mark });
                }
            },
        }
        Ok(())
    }

    fn close(&mut self, mark: Mark) -> Result<(), SyntaxError> {
        let node = match self.stack.pop() {
            Some(Frame::Seq { items, mark }) => Node::Seq { items, mark },
            Some(Frame::Map { entries, mark, .. }) => {
                // Block mappings start where their first key is.
                let mark = entries.first().map(|(k, _)| k.mark).unwrap_or(mark);
                Node::Map { entries, mark }
            }
            None => return Err(self.err(mark, "unbalanced YAML structure")),
        };
        self.add(node)
    }
}

/// Parses `text` (one YAML document) into a tree.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        root: None,
    };
    let mut documents = 0;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| SyntaxError {
            mark: Mark::from_marker(e.marker()),
            path: b.path(),
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        let mark = Mark::from_marker(&marker);
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(b.err(
                        mark,
                        "a scenario file holds one YAML document, found a second",
                    ));
                }
            }
            Event::Alias(_) => return Err(b.err(mark, "YAML aliases (`*name`) are not supported")),
            Event::Scalar(value, style, _anchor, tag) => {
                if tag.is_some() {
                    return Err(b.err(mark, "YAML tags (`!tag`) are not supported"));
                }
                let plain = matches!(style, TScalarStyle::Plain);
                b.add(Node::Scalar { value, plain, mark })?;
            }
            Event::SequenceStart(_, tag) => {
                if tag.is_some() {
                    return Err(b.err(mark, "YAML tags (`!tag`) are not supported"));
                }
                b.open(
                    Frame::Seq {
                        items: Vec::new(),
                        mark,
                    },
                    mark,
                )?;
            }
            Event::MappingStart(_, tag) => {
                if tag.is_some() {
                    return Err(b.err(mark, "YAML tags (`!tag`) are not supported"));
                }
                b.open(
                    Frame::Map {
                        entries: Vec::new(),
                        mark,
                        pending: None,
                    },
                    mark,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => b.close(mark)?,
        }
    }
    b.root.ok_or(SyntaxError {
        mark: Mark::START,
        path: Path::root(),
        message: "the file is empty".into(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str,
}

/// Resolves a plain scalar per the YAML 1.2 core schema.
fn resolve(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let int = |digits: &str, radix: u32, neg: bool| -> Option<Resolved> {
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        let u = u64::from_str_radix(digits, radix).ok()?;
        if neg {
            // -(2^63) fits; anything larger does not.
            let i = 0i64.checked_sub_unsigned(u)?;
            Some(Resolved::Int(i))
        } else {
            Some(i64::try_from(u).map_or(Resolved::UInt(u), Resolved::Int))
        }
    };
    if let Some(h) = s.strip_prefix("0x") {
        if let Some(r) = int(h, 16, false) {
            return r;
        }
    }
    if let Some(o) = s.strip_prefix("0o") {
        if let Some(r) = int(o, 8, false) {
            return r;
        }
    }
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if let Some(r) = int(digits, 10, neg) {
        return r;
    }
    let float_chars = s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if float_chars && s.chars().any(|c| c.is_ascii_digit()) {
        if let Ok(f) = s.parse::<f64>() {
            return Resolved::Float(f);
        }
    }
    Resolved::Str
}

/// An error from deserializing the tree: a message, and where it happened once known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    pub message: String,
    pub at: Option<(Mark, Path)>,
    /// Set by `unknown_variant`, so the enum that failed can name what it chooses between.
    unknown_variant: Option<(String, String)>,
}

impl DeError {
    fn locate(mut self, mark: Mark, path: &Path) -> DeError {
        if self.at.is_none() {
            self.at = Some((mark, path.clone()));
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

fn join_names(names: &[&str]) -> String {
    names.join(", ")
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            at: None,
            unknown_variant: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let known = if expected.is_empty() {
            "none".to_string()
        } else {
            join_names(expected)
        };
        DeError::custom(format!("unknown field `{field}` (known: {known})"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::custom(format!(
            "unknown value `{variant}` (known: {})",
            join_names(expected)
        ));
        e.unknown_variant = Some((variant.to_string(), join_names(expected)));
        e
    }

    fn invalid_type(unexp: Unexpected, exp: &dyn de::Expected) -> Self {
        DeError::custom(format!("invalid type: {unexp}, expected {}", expected(exp)))
    }

    fn invalid_value(unexp: Unexpected, exp: &dyn de::Expected) -> Self {
        DeError::custom(format!(
            "invalid value: {unexp}, expected {}",
            expected(exp)
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::custom(format!("missing required field `{field}`"))
    }
}

/// serde names primitive types the Rust way; say it the YAML way.
fn expected(exp: &dyn de::Expected) -> String {
    let e = exp.to_string();
    match e.as_str() {
        "u8" => format!("a non-negative integer up to {}", u8::MAX),
        "u16" => format!("a non-negative integer up to {}", u16::MAX),
        "u32" => format!("a non-negative integer up to {}", u32::MAX),
        "u64" | "u128" => "a non-negative integer".into(),
        "i32" => format!("an integer between {} and {}", i32::MIN, i32::MAX),
        "i8" | "i16" | "i64" | "i128" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        _ => e,
    }
}

/// What an enum's choices are called in messages, by the enum's Rust name.
fn enum_noun(name: &str) -> &'static str {
    match name {
        "RawStep" => "step kind",
        "Via" => "transport",
        "Zone" => "zone",
        "ReloadAction" => "reload action",
        "Since" => "`since` value",
        _ => "value",
    }
}

/// Deserializes `T` from the tree.
pub fn from_node<'de, T: serde::Deserialize<'de>>(node: &'de Node) -> Result<T, DeError> {
    let path = Path::root();
    T::deserialize(NodeDe { node, path: &path }).map_err(|e| e.locate(node.mark(), &path))
}

struct NodeDe<'a, 'p> {
    node: &'a Node,
    path: &'p Path,
}

impl<'a> NodeDe<'a, '_> {
    fn scalar_text(&self) -> Option<&'a str> {
        match self.node {
            Node::Scalar { value, plain, .. } => {
                if *plain && resolve(value) == Resolved::Null {
                    None
                } else {
                    Some(value.as_str())
                }
            }
            _ => None,
        }
    }

    fn resolved(&self) -> Option<Resolved> {
        match self.node {
            Node::Scalar {
                value, plain: true, ..
            } => Some(resolve(value)),
            _ => None,
        }
    }

    fn invalid<V: Visitor<'a>>(&self, visitor: &V) -> DeError {
        de::Error::invalid_type(self.node.unexpected(), visitor)
    }

    fn here<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|e| e.locate(self.node.mark(), self.path))
    }

    fn visit_int<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.resolved() {
            Some(Resolved::Int(i)) => visitor.visit_i64(i),
            Some(Resolved::UInt(u)) => visitor.visit_u64(u),
            _ => Err(self.invalid(&visitor)),
        };
        self.here(r)
    }
}

macro_rules! ints {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.visit_int(visitor)
        }
    )*};
}

impl<'a> de::Deserializer<'a> for NodeDe<'a, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.node {
            Node::Seq { items, .. } => visitor.visit_seq(SeqAcc {
                items: items.iter(),
                index: 0,
                path: self.path,
            }),
            Node::Map { entries, .. } => visitor.visit_map(MapAcc {
                entries: entries.iter(),
                value: None,
                path: self.path,
            }),
            Node::Scalar { value, plain, .. } => {
                if !*plain {
                    visitor.visit_str(value)
                } else {
                    match resolve(value) {
                        Resolved::Null => visitor.visit_unit(),
                        Resolved::Bool(b) => visitor.visit_bool(b),
                        Resolved::Int(i) => visitor.visit_i64(i),
                        Resolved::UInt(u) => visitor.visit_u64(u),
                        Resolved::Float(f) => visitor.visit_f64(f),
                        Resolved::Str => visitor.visit_str(value),
                    }
                }
            }
        };
        self.here(r)
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.resolved() {
            Some(Resolved::Bool(b)) => visitor.visit_bool(b),
            _ => Err(self.invalid(&visitor)),
        };
        self.here(r)
    }

    ints!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
          deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.resolved() {
            Some(Resolved::Float(f)) => visitor.visit_f64(f),
            Some(Resolved::Int(i)) => visitor.visit_f64(i as f64),
            Some(Resolved::UInt(u)) => visitor.visit_f64(u as f64),
            _ => Err(self.invalid(&visitor)),
        };
        self.here(r)
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    /// Any scalar but null reads as a string: `run: true` is the command `true`.
    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.scalar_text() {
            Some(s) => visitor.visit_borrowed_str(s),
            None => Err(self.invalid(&visitor)),
        };
        self.here(r)
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let e = self.invalid(&visitor);
        self.here(Err(e))
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.resolved() == Some(Resolved::Null) {
            let r = visitor.visit_none();
            return self.here(r);
        }
        let (node, path) = (self.node, self.path);
        visitor
            .visit_some(NodeDe { node, path })
            .map_err(|e| e.locate(node.mark(), path))
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.resolved() {
            Some(Resolved::Null) => visitor.visit_unit(),
            _ => Err(self.invalid(&visitor)),
        };
        self.here(r)
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (node, path) = (self.node, self.path);
        visitor
            .visit_newtype_struct(NodeDe { node, path })
            .map_err(|e| e.locate(node.mark(), path))
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.node {
            Node::Seq { items, .. } => visitor.visit_seq(SeqAcc {
                items: items.iter(),
                index: 0,
                path: self.path,
            }),
            _ => Err(self.invalid(&visitor)),
        };
        self.here(r)
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match self.node {
            Node::Map { entries, .. } => visitor.visit_map(MapAcc {
                entries: entries.iter(),
                value: None,
                path: self.path,
            }),
            _ => Err(self.invalid(&visitor)),
        };
        self.here(r)
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    /// Externally tagged: `kind` (a unit variant) or `{kind: content}` with exactly one key.
    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let noun = enum_noun(name);
        let (key, key_mark, key_path, content): (&str, Mark, Path, Option<&Node>) = match self.node
        {
            Node::Scalar { .. } => match self.scalar_text() {
                Some(s) => (s, self.node.mark(), self.path.clone(), None),
                None => {
                    let e = self.invalid(&visitor);
                    return self.here(Err(e));
                }
            },
            Node::Map { entries, mark } if entries.len() == 1 => {
                let (k, v) = &entries[0];
                (&k.name, k.mark, self.path.key(&k.name), Some(v))
            }
            Node::Map { entries, mark } => {
                let keys: Vec<&str> = entries.iter().map(|(k, _)| k.name.as_str()).collect();
                let mut msg = if keys.is_empty() {
                    format!(
                        "expected one key naming the {noun} (one of: {})",
                        join_names(variants)
                    )
                } else {
                    format!(
                        "expected one key naming the {noun}, found {} ({})",
                        keys.len(),
                        keys.join(", ")
                    )
                };
                if noun == "step kind" && keys.contains(&"name") {
                    msg.push_str("; `name` goes inside the step: `- guest: {name: …, run: …}`");
                }
                return Err(DeError::custom(msg).locate(*mark, self.path));
            }
            Node::Seq { .. } => {
                let e = self.invalid(&visitor);
                return self.here(Err(e));
            }
        };
        let access = EnumAcc {
            key,
            key_mark,
            key_path: &key_path,
            content,
            noun,
        };
        let r = visitor.visit_enum(access);
        self.here(r)
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqAcc<'a, 'p> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: &'p Path,
}

impl<'a> de::SeqAccess<'a> for SeqAcc<'a, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = self.path.index(self.index);
        self.index += 1;
        seed.deserialize(NodeDe { node, path: &path })
            .map(Some)
            .map_err(|e| e.locate(node.mark(), &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAcc<'a, 'p> {
    entries: std::slice::Iter<'a, (Key, Node)>,
    value: Option<&'a (Key, Node)>,
    path: &'p Path,
}

impl<'a> de::MapAccess<'a> for MapAcc<'a, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        let key = &entry.0;
        let path = self.path.key(&key.name);
        seed.deserialize(key.name.as_str().into_deserializer())
            .map(Some)
            .map_err(|e: DeError| e.locate(key.mark, &path))
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, node)) = self.value.take() else {
            return Err(DeError::custom("value requested before its key"));
        };
        let path = self.path.key(&key.name);
        seed.deserialize(NodeDe { node, path: &path })
            .map_err(|e| e.locate(node.mark(), &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumAcc<'a, 'p> {
    key: &'a str,
    key_mark: Mark,
    key_path: &'p Path,
    content: Option<&'a Node>,
    noun: &'static str,
}

impl<'a, 'p> de::EnumAccess<'a> for EnumAcc<'a, 'p> {
    type Error = DeError;
    type Variant = VariantAcc<'a, 'p>;

    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let noun = self.noun;
        let v = seed
            .deserialize(self.key.into_deserializer())
            .map_err(|e: DeError| {
                let e = match &e.unknown_variant {
                    Some((given, known)) => {
                        DeError::custom(format!("unknown {noun} `{given}` (known: {known})"))
                    }
                    None => e,
                };
                e.locate(self.key_mark, self.key_path)
            })?;
        Ok((
            v,
            VariantAcc {
                key: self.key,
                key_mark: self.key_mark,
                path: self.key_path,
                content: self.content,
            },
        ))
    }
}

struct VariantAcc<'a, 'p> {
    key: &'a str,
    key_mark: Mark,
    path: &'p Path,
    content: Option<&'a Node>,
}

impl<'a> VariantAcc<'a, '_> {
    fn needs_content(&self) -> DeError {
        DeError::custom(format!("`{}` needs a value: `{}: …`", self.key, self.key))
            .locate(self.key_mark, self.path)
    }
}

impl<'a> de::VariantAccess<'a> for VariantAcc<'a, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.content {
            None => Ok(()),
            Some(Node::Scalar {
                plain: true, value, ..
            }) if resolve(value) == Resolved::Null => Ok(()),
            Some(node) => Err(DeError::custom(format!("`{}` takes no value", self.key))
                .locate(node.mark(), self.path)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, DeError> {
        let Some(node) = self.content else {
            return Err(self.needs_content());
        };
        seed.deserialize(NodeDe {
            node,
            path: self.path,
        })
        .map_err(|e| e.locate(node.mark(), self.path))
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        let Some(node) = self.content else {
            return Err(self.needs_content());
        };
        de::Deserializer::deserialize_seq(
            NodeDe {
                node,
                path: self.path,
            },
            visitor,
        )
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let Some(node) = self.content else {
            return Err(self.needs_content());
        };
        de::Deserializer::deserialize_map(
            NodeDe {
                node,
                path: self.path,
            },
            visitor,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_follows_the_core_schema() {
        assert_eq!(resolve("~"), Resolved::Null);
        assert_eq!(resolve("True"), Resolved::Bool(true));
        assert_eq!(resolve("yes"), Resolved::Str);
        assert_eq!(resolve("-12"), Resolved::Int(-12));
        assert_eq!(resolve("0x1F"), Resolved::Int(31));
        assert_eq!(resolve("18446744073709551615"), Resolved::UInt(u64::MAX));
        assert_eq!(resolve("-9223372036854775808"), Resolved::Int(i64::MIN));
        assert!(matches!(
            resolve("-9223372036854775809"),
            Resolved::Float(_)
        ));
        assert_eq!(resolve("1.5e3"), Resolved::Float(1500.0));
        assert_eq!(resolve("inf"), Resolved::Str);
        assert_eq!(resolve("30s"), Resolved::Str);
        assert_eq!(resolve("-"), Resolved::Str);
    }

    #[test]
    fn marks_and_paths() {
        let t = parse("a: 1\nsteps:\n  - guest: {run: \"x\"}\n  - sleep: 1s\n").unwrap();
        let p = Path::root().key("steps").index(0).key("guest").key("run");
        assert_eq!(p.to_string(), "steps[0].guest.run");
        assert_eq!(
            t.locate(&p),
            Mark {
                line: 3,
                column: 18
            }
        );
        assert_eq!(
            t.locate_key(&p),
            Mark {
                line: 3,
                column: 13
            }
        );
        // A block mapping is where its first key is.
        let p = Path::root().key("steps").index(1);
        assert_eq!(t.locate(&p), Mark { line: 4, column: 5 });
        // Missing paths fall back to the nearest ancestor.
        let p = Path::root().key("steps").index(1).key("sleep").key("nope");
        assert_eq!(
            t.locate(&p),
            Mark {
                line: 4,
                column: 12
            }
        );
    }

    #[test]
    fn structure_errors() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(
            (e.mark, e.path.to_string()),
            (Mark { line: 2, column: 1 }, "a".into())
        );
        assert!(e.message.contains("duplicate key `a`"), "{e:?}");
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.mark.line, 2);
        let e = parse("a: &x 1\nb: *x\n").unwrap_err();
        assert_eq!(
            (e.mark, e.path.to_string()),
            (Mark { line: 2, column: 4 }, "b".into())
        );
        let e = parse("").unwrap_err();
        assert_eq!(e.mark, Mark::START);
        let deep = "[".repeat(200);
        let e = parse(&deep).unwrap_err();
        assert!(e.message.contains("nesting"), "{e:?}");
        let e = parse("? [a]\n: 1\n").unwrap_err();
        assert!(e.message.contains("keys"), "{e:?}");
    }
}
