//! The serde deserializer over a [`Node`] tree: strict, and every error carries the line,
//! column and field path of the node it is about.

use super::*;
use serde::de::{self, DeserializeSeed, Error as _, IntoDeserializer, Unexpected, Visitor};

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
