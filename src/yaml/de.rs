//! A serde `Deserializer` over [`Node`], so that typed structs are decoded by serde derive while
//! every error keeps the span of the node (or key) it came from.
//!
//! A string holding a template (`{{ … }}`) where a number or boolean is expected decodes as that
//! type's zero value: its real value exists only once the template is rendered, and the step is
//! decoded again from the rendered tree then. So does a list or mapping given as one template
//! (empty until rendered).

use super::node::{Node, NodeKind, is_decimal_integer, resolve_plain};
use miette::SourceSpan;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::fmt;

/// A decoding error with the place it belongs to.
#[derive(Debug, Clone)]
pub struct DeError {
    pub message: String,
    pub span: Option<SourceSpan>,
    /// Set for an unknown key: the key and the keys that would be valid there.
    pub unknown_field: Option<(String, Vec<&'static str>)>,
    /// Set for an unknown enum variant: the variant and the valid ones.
    pub unknown_variant: Option<(String, Vec<&'static str>)>,
}

impl DeError {
    fn at(mut self, span: SourceSpan) -> Self {
        self.span.get_or_insert(span);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            message: msg.to_string(),
            span: None,
            unknown_field: None,
            unknown_variant: None,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut e = Self::custom(format_args!("unknown key `{field}`"));
        e.unknown_field = Some((field.to_owned(), expected.to_vec()));
        e
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = Self::custom(format_args!("unknown value `{variant}`"));
        e.unknown_variant = Some((variant.to_owned(), expected.to_vec()));
        e
    }

    fn missing_field(field: &'static str) -> Self {
        Self::custom(format_args!("missing required key `{field}`"))
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let exp = exp
            .to_string()
            .replace("a sequence", "a list")
            .replace("a map", "a mapping");
        Self::custom(format_args!("expected {exp}, found {}", describe(&unexp)))
    }
}

fn describe(unexp: &de::Unexpected<'_>) -> String {
    match unexp {
        de::Unexpected::Str(s) => format!("the string \"{s}\""),
        de::Unexpected::Map => "a mapping".into(),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Unit => "null".into(),
        other => other.to_string(),
    }
}

/// Decode a typed value from a node.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Node) -> Result<T, DeError> {
    T::deserialize(NodeDe(node)).map_err(|e| e.at(node.span))
}

/// The deserializer: a borrowed node.
#[derive(Clone, Copy)]
pub struct NodeDe<'de>(pub &'de Node);

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

macro_rules! lenient_number {
    ($($method:ident => $visit:ident($zero:expr)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            match &self.0.kind {
                NodeKind::Str(s) if is_template(s) => visitor.$visit($zero),
                NodeKind::Str(s) if is_decimal_integer(s) => Err(too_large(s).at(self.0.span)),
                NodeKind::Rendered(s) => visit_rendered(s, self.0.span, visitor),
                _ => self.deserialize_any(visitor),
            }
        }
    )*};
}

/// An integer written with more digits than any number rb reads can hold.
fn too_large(text: &str) -> DeError {
    de::Error::custom(format_args!(
        "`{text}` is too large: integers are at most {}",
        i64::MAX
    ))
}

/// Rendered text where a number or boolean is wanted: read as a plain YAML scalar would be.
fn visit_rendered<'de, V: Visitor<'de>>(
    text: &'de str,
    span: SourceSpan,
    visitor: V,
) -> Result<V::Value, DeError> {
    let result = match resolve_plain(text) {
        NodeKind::Str(s) if is_decimal_integer(&s) => Err(too_large(&s)),
        NodeKind::Int(i) => visitor.visit_i64(i),
        NodeKind::Float(f) => visitor.visit_f64(f),
        NodeKind::Bool(b) => visitor.visit_bool(b),
        _ => visitor.visit_borrowed_str(text),
    };
    result.map_err(|e: DeError| e.at(span))
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let span = self.0.span;
        let result = match &self.0.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Int(i) => visitor.visit_i64(*i),
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::Str(s) | NodeKind::Rendered(s) => visitor.visit_borrowed_str(s),
            NodeKind::Seq(items) => visitor.visit_seq(SeqAccess {
                items: items.iter(),
            }),
            NodeKind::Map(entries) => visitor.visit_map(MapAccess {
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|e| e.at(span))
    }

    lenient_number! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0), deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0), deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0), deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0), deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0), deserialize_f64 => visit_f64(0.0),
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0.kind {
            NodeKind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let span = self.0.span;
        let result = match &self.0.kind {
            NodeKind::Str(s) | NodeKind::Rendered(s) => {
                visitor.visit_enum(s.as_str().into_deserializer())
            }
            NodeKind::Map(entries) if entries.len() == 1 => visitor.visit_enum(EnumAccess {
                key: &entries[0].0,
                value: &entries[0].1,
            }),
            _ => Err(de::Error::custom(format_args!(
                "expected a name or a one-key mapping, found {}",
                self.0.type_name()
            ))),
        };
        result.map_err(|e| e.at(span))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // A string field given a plain number or boolean (`password: 1234`) takes its text.
        match &self.0.kind {
            NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => {
                visitor.visit_string(self.0.key_text())
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    /// A list given as one template (`command: "{{ [...] if x else omit }}"`) is empty until
    /// it is rendered, like a number given as a template.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            NodeKind::Str(s) if is_template(s) => visitor.visit_seq(SeqAccess { items: [].iter() }),
            _ => self.deserialize_any(visitor),
        }
    }

    /// A mapping given as one template is empty until it is rendered.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.0.kind {
            NodeKind::Str(s) if is_template(s) => visitor.visit_map(MapAccess {
                entries: [].iter(),
                value: None,
            }),
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct tuple tuple_struct
        struct identifier ignored_any i128 u128
    }
}

struct SeqAccess<'de> {
    items: std::slice::Iter<'de, Node>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(NodeDe(node))
                .map(Some)
                .map_err(|e| e.at(node.span)),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'de> {
    entries: std::slice::Iter<'de, (Node, Node)>,
    value: Option<&'de Node>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(NodeDe(key))
                    .map(Some)
                    .map_err(|e| e.at(key.span))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let node = self
            .value
            .take()
            .expect("serde asks for a value after its key");
        seed.deserialize(NodeDe(node)).map_err(|e| e.at(node.span))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumAccess<'de> {
    key: &'de Node,
    value: &'de Node,
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'de> {
    type Error = DeError;
    type Variant = NodeDe<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'de>), DeError> {
        let variant = seed
            .deserialize(NodeDe(self.key))
            .map_err(|e| e.at(self.key.span))?;
        Ok((variant, NodeDe(self.value)))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}
