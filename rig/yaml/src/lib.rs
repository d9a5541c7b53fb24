//! `rig-yaml`: a YAML document as a tree of nodes that remember where they were written, and a serde
//! [`Deserializer`](serde::Deserializer) over that tree that reports errors with the node's
//! line, column and field path.
//!
//! yaml-rust2's event parser gives the positions; the tree is built iteratively with a depth
//! limit, so no input makes the builder or the deserializer recurse without bound. The
//! deserializer is strict the way scenario files want: quoted scalars are strings, plain scalars
//! resolve per the YAML 1.2 core schema (null, bool, int, float, else string), duplicate keys,
//! aliases, tags and multiple documents are errors.

use serde::de::Unexpected;
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

/// `text` as a YAML single-quoted scalar (`'` doubled), for writing YAML: a quoted scalar is
/// always a string. Line breaks inside it fold to spaces when read back, so it round-trips text
/// of one line.
pub fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

mod de;
pub use de::{from_node, DeError};

#[cfg(test)]
mod tests;
