//! The YAML document as a tree of nodes that each know where they came from.
//!
//! serde deserializers for YAML keep no per-node positions (`serde_yaml`) or lose them inside
//! enums (serde-saphyr's `Spanned`), so rb builds its own small tree from the parser's events:
//! every scalar, sequence, mapping and key carries its byte span, and diagnostics can point at
//! the exact text. Aliases are expanded here under a node budget, which is what defuses an
//! alias bomb ("billion laughs") before anything else sees the document.

use granit_parser::{Event, Parser, ScalarStyle, Tag};
use miette::SourceSpan;
use std::collections::HashMap;

/// Most nodes one document may expand to (aliases included).
pub const MAX_NODES: usize = 200_000;
/// Most bytes of scalar text one document may expand to (aliases included): one large
/// scalar aliased many times is a bomb of bytes, not of nodes.
pub const MAX_EXPANDED_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of collections accepted.
pub const MAX_DEPTH: usize = 64;

/// One YAML node and the bytes of the source it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: SourceSpan,
}

/// What a node holds. Plain scalars are resolved with YAML 1.2's core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string, and whether it was quoted or a block scalar (never resolved to another type).
    Str(String),
    /// The text a template rendered to: a string, exactly as rendered, except where a field
    /// wants a number or boolean and the text reads as one (`level: "{{ params.level }}"`).
    Rendered(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// Why a document could not be read into a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub span: SourceSpan,
}

impl Node {
    pub fn new(kind: NodeKind, span: SourceSpan) -> Self {
        Self { kind, span }
    }

    /// The string of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) | NodeKind::Rendered(s) => Some(s),
            _ => None,
        }
    }

    /// The entries of a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.get_entry(key).map(|(_, v)| v)
    }

    /// The key node and value under a string key of a mapping.
    pub fn get_entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// A short name of the node's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) | NodeKind::Rendered(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// Visit every string scalar below this node (mapping values and sequence items, never keys).
    pub fn for_each_string<'a>(&'a self, f: &mut impl FnMut(&'a Node, &'a str)) {
        match &self.kind {
            NodeKind::Str(s) | NodeKind::Rendered(s) => f(self, s),
            NodeKind::Seq(items) => items.iter().for_each(|n| n.for_each_string(f)),
            NodeKind::Map(entries) => entries.iter().for_each(|(_, v)| v.for_each_string(f)),
            _ => {}
        }
    }

    /// The path (`command[1]`, `stdout.file`) and text of the string at `span` in this tree.
    pub fn string_at(&self, span: miette::SourceSpan) -> Option<(String, &str)> {
        match &self.kind {
            NodeKind::Str(s) | NodeKind::Rendered(s) if self.span == span => {
                Some((String::new(), s.as_str()))
            }
            NodeKind::Seq(items) => items.iter().enumerate().find_map(|(i, n)| {
                n.string_at(span)
                    .map(|(p, s)| (format!("[{i}]{}", dotted(&p)), s))
            }),
            NodeKind::Map(entries) => entries.iter().find_map(|(k, v)| {
                v.string_at(span)
                    .map(|(p, s)| (format!("{}{}", k.key_text(), dotted(&p)), s))
            }),
            _ => None,
        }
    }

    /// A node made of JSON (a list or mapping a template evaluated to), every part at `span`.
    /// Strings are `Rendered`: they stay text unless a field wants a number or boolean.
    pub fn from_json(v: &serde_json::Value, span: SourceSpan) -> Self {
        use serde_json::Value;
        let kind = match v {
            Value::Null => NodeKind::Null,
            Value::Bool(b) => NodeKind::Bool(*b),
            Value::Number(n) => n.as_i64().map_or_else(
                || NodeKind::Float(n.as_f64().unwrap_or(f64::NAN)),
                NodeKind::Int,
            ),
            Value::String(s) => NodeKind::Rendered(s.clone()),
            Value::Array(items) => {
                NodeKind::Seq(items.iter().map(|i| Self::from_json(i, span)).collect())
            }
            Value::Object(map) => NodeKind::Map(
                map.iter()
                    .map(|(k, v)| {
                        (
                            Self::new(NodeKind::Str(k.clone()), span),
                            Self::from_json(v, span),
                        )
                    })
                    .collect(),
            ),
        };
        Self::new(kind, span)
    }

    /// The node as JSON, for data that leaves the YAML world (params files, outputs).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::Float(f) => Value::from(*f),
            NodeKind::Str(s) | NodeKind::Rendered(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A key as text, whatever scalar it was written as.
    pub fn key_text(&self) -> String {
        match &self.kind {
            NodeKind::Str(s) | NodeKind::Rendered(s) => s.clone(),
            NodeKind::Null => "null".into(),
            NodeKind::Bool(b) => b.to_string(),
            NodeKind::Int(i) => i.to_string(),
            NodeKind::Float(f) => f.to_string(),
            NodeKind::Seq(_) | NodeKind::Map(_) => "<complex key>".into(),
        }
    }

    /// How many nodes, and how many bytes of scalar text, this node holds.
    fn weight(&self) -> (usize, usize) {
        let add = |(n, b): (usize, usize), (m, c): (usize, usize)| (n + m, b + c);
        match &self.kind {
            NodeKind::Seq(items) => items.iter().map(Node::weight).fold((1, 0), add),
            NodeKind::Map(entries) => entries
                .iter()
                .map(|(k, v)| add(k.weight(), v.weight()))
                .fold((1, 0), add),
            NodeKind::Str(s) | NodeKind::Rendered(s) => (1, s.len()),
            _ => (1, 8),
        }
    }
}

/// Parse the first document of `source`; an empty document is a `Null` node.
pub fn parse(source: &str) -> Result<Node, ParseError> {
    let mut builder = Builder {
        anchors: HashMap::new(),
        nodes: 0,
        bytes: 0,
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    for item in Parser::new_from_str(source) {
        let (event, span) = item.map_err(|e| {
            let at = e.marker().byte_offset().unwrap_or(0);
            let info = e.info();
            ParseError {
                message: if info.contains("recursion limit") {
                    format!("YAML nested deeper than {MAX_DEPTH} levels")
                } else {
                    format!("invalid YAML: {info}")
                },
                span: (at, 0).into(),
            }
        })?;
        let start = span.start.byte_offset().unwrap_or(0);
        let end = span.end.byte_offset().unwrap_or(start).max(start);
        let here: SourceSpan = (start, end - start).into();
        let finished = match event {
            Event::StreamStart | Event::DocumentStart(..) | Event::DocumentEnd => None,
            Event::StreamEnd => break,
            Event::Scalar(text, style, anchor, tag) => {
                if text.contains('\0') {
                    return Err(ParseError {
                        message: "a NUL character (`\\0`) cannot reach a command, a path or an \
                                  environment variable"
                            .into(),
                        span: here,
                    });
                }
                let kind = match tag {
                    None => resolve_scalar(&text, style),
                    Some(tag) => tagged_scalar(&text, &tag, here)?,
                };
                Some(builder.finish(Node::new(kind, here), anchor)?)
            }
            Event::SequenceStart(_, anchor, tag) => {
                collection_tag(tag.as_deref(), "seq", here)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(here));
                }
                stack.push(Frame::new(here.offset(), anchor, true));
                None
            }
            Event::MappingStart(_, anchor, tag) => {
                collection_tag(tag.as_deref(), "map", here)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(here));
                }
                stack.push(Frame::new(here.offset(), anchor, false));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = stack.pop().expect("parser balances collections");
                duplicate_key(source, &frame.pairs)?;
                let span: SourceSpan = (frame.start, end.saturating_sub(frame.start)).into();
                let kind = if frame.is_seq {
                    NodeKind::Seq(frame.items)
                } else {
                    NodeKind::Map(frame.pairs)
                };
                Some(builder.finish(Node::new(kind, span), frame.anchor)?)
            }
            Event::Alias(id) => Some(builder.alias(id, here)?),
            _ => None,
        };
        if let Some(node) = finished {
            match stack.last_mut() {
                Some(frame) => frame.push(node),
                None if root.is_none() => root = Some(node),
                // A second document in the stream: rb reads one runbook per file.
                None => {
                    return Err(ParseError {
                        message: "a runbook file holds one YAML document; found a second".into(),
                        span: here,
                    });
                }
            }
        }
    }
    Ok(root.unwrap_or_else(|| Node::new(NodeKind::Null, (0, 0).into())))
}

/// A key written twice in one mapping is an error naming both places: a reader sees one
/// value and a YAML reader keeps the other.
fn duplicate_key(source: &str, pairs: &[(Node, Node)]) -> Result<(), ParseError> {
    let mut seen: HashMap<String, SourceSpan> = HashMap::with_capacity(pairs.len());
    for (key, _) in pairs {
        if matches!(key.kind, NodeKind::Seq(_) | NodeKind::Map(_)) {
            continue;
        }
        let text = key.key_text();
        if let Some(first) = seen.get(&text) {
            let at = first.offset().min(source.len());
            let line = source[..at].bytes().filter(|&b| b == b'\n').count() + 1;
            let column = at - source[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
            return Err(ParseError {
                message: format!(
                    "duplicate key `{text}`: first at line {line}, column {column}; each key may \
                     appear once in a mapping"
                ),
                span: key.span,
            });
        }
        seen.insert(text, key.span);
    }
    Ok(())
}

/// The core schema's tags (`tag:yaml.org,2002:…`, written `!!str`, `!!int`…).
const CORE: &str = "tag:yaml.org,2002:";

/// A tag rb does not read is an error: ignoring it would give the value another type than
/// its author wrote (`!!binary` is not decoded, a custom `!env` is not expanded).
fn unsupported(tag: &Tag, span: SourceSpan) -> ParseError {
    let shown = if tag.handle() == CORE {
        format!("!!{}", tag.suffix())
    } else {
        format!("{}{}", tag.handle(), tag.suffix())
    };
    ParseError {
        message: format!(
            "YAML tag `{shown}` is not supported: rb reads `!!str`, `!!int`, `!!float`, \
             `!!bool`, `!!null`, `!!seq` and `!!map` only"
        ),
        span,
    }
}

/// A scalar with a tag: `!!str 0755` is the string `0755`, `!!int 10` must be an integer.
fn tagged_scalar(text: &str, tag: &Tag, span: SourceSpan) -> Result<NodeKind, ParseError> {
    if format!("{}{}", tag.handle(), tag.suffix()) == "!" {
        // The non-specific tag `!`: a string.
        return Ok(NodeKind::Str(text.to_owned()));
    }
    if tag.handle() != CORE {
        return Err(unsupported(tag, span));
    }
    let plain = resolve_scalar(text, ScalarStyle::Plain);
    let kind = match (tag.suffix(), plain) {
        ("str", _) => NodeKind::Str(text.to_owned()),
        ("int", k @ NodeKind::Int(_))
        | ("float", k @ NodeKind::Float(_))
        | ("bool", k @ NodeKind::Bool(_))
        | ("null", k @ NodeKind::Null) => k,
        ("float", NodeKind::Int(_)) if text.parse::<f64>().is_ok() => {
            NodeKind::Float(text.parse().unwrap_or_default())
        }
        (t @ ("int" | "float" | "bool" | "null"), _) => {
            return Err(ParseError {
                message: format!("`{text}` is not a valid `!!{t}`"),
                span,
            });
        }
        _ => return Err(unsupported(tag, span)),
    };
    Ok(kind)
}

/// A collection may carry only its own core tag.
fn collection_tag(tag: Option<&Tag>, own: &str, span: SourceSpan) -> Result<(), ParseError> {
    match tag {
        Some(t) if !(t.handle() == CORE && t.suffix() == own) => Err(unsupported(t, span)),
        _ => Ok(()),
    }
}

fn too_deep(span: SourceSpan) -> ParseError {
    ParseError {
        message: format!("YAML nested deeper than {MAX_DEPTH} levels"),
        span,
    }
}

struct Builder {
    anchors: HashMap<usize, Node>,
    nodes: usize,
    /// Scalar bytes added by aliases (the source's own text is bounded by the file size).
    bytes: usize,
}

impl Builder {
    /// The node an alias stands for, counted against the node and byte budgets.
    fn alias(&mut self, id: usize, here: SourceSpan) -> Result<Node, ParseError> {
        let node = self.anchors.get(&id).cloned().ok_or_else(|| ParseError {
            message: "alias to an unknown anchor".into(),
            span: here,
        })?;
        let (nodes, bytes) = node.weight();
        self.nodes += nodes;
        self.bytes += bytes;
        if self.nodes > MAX_NODES {
            return Err(ParseError {
                message: format!("document expands to more than {MAX_NODES} nodes (alias bomb?)"),
                span: here,
            });
        }
        if self.bytes > MAX_EXPANDED_BYTES {
            return Err(ParseError {
                message: format!(
                    "document expands to more than {} MiB of text (alias bomb?)",
                    MAX_EXPANDED_BYTES / 1_048_576
                ),
                span: here,
            });
        }
        Ok(node)
    }

    fn finish(&mut self, node: Node, anchor: usize) -> Result<Node, ParseError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(ParseError {
                message: format!("document has more than {MAX_NODES} nodes"),
                span: node.span,
            });
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

struct Frame {
    start: usize,
    anchor: usize,
    is_seq: bool,
    items: Vec<Node>,
    pairs: Vec<(Node, Node)>,
    pending_key: Option<Node>,
}

impl Frame {
    fn new(start: usize, anchor: usize, is_seq: bool) -> Self {
        Self {
            start,
            anchor,
            is_seq,
            items: Vec::new(),
            pairs: Vec::new(),
            pending_key: None,
        }
    }

    fn push(&mut self, node: Node) {
        if self.is_seq {
            self.items.push(node);
        } else if let Some(key) = self.pending_key.take() {
            self.pairs.push((key, node));
        } else {
            self.pending_key = Some(node);
        }
    }
}

/// Resolve text as a plain scalar would be (a rendered template read where a number is wanted).
pub fn resolve_plain(text: &str) -> NodeKind {
    resolve_scalar(text, ScalarStyle::Plain)
}

fn resolve_scalar(text: &str, style: ScalarStyle) -> NodeKind {
    if style != ScalarStyle::Plain {
        return NodeKind::Str(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return NodeKind::Int(i);
    }
    if is_decimal_integer(text) {
        // Too large for an integer: kept as written (never rounded to a float).
        return NodeKind::Str(text.to_owned());
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric && let Ok(f) = text.parse::<f64>() {
        return NodeKind::Float(f);
    }
    NodeKind::Str(text.to_owned())
}

/// Whether `text` is written as a decimal integer (`-12`, `+7`, `0042`), whatever its size.
pub fn is_decimal_integer(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if negative { -value } else { value })
}

/// A path suffix: `.key` for a key, as is for an index (`[1]`).
fn dotted(rest: &str) -> String {
    if rest.is_empty() || rest.starts_with('[') {
        rest.to_owned()
    } else {
        format!(".{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_scalars_and_keys() {
        let src = "a: 1\nb:\n  - \"x\"\n  - y\n";
        let root = parse(src).unwrap();
        let (k, v) = root.get_entry("b").unwrap();
        assert_eq!(&src[k.span.offset()..k.span.offset() + k.span.len()], "b");
        let items = v.as_seq().unwrap();
        assert_eq!(items[0].kind, NodeKind::Str("x".into()));
        assert_eq!(
            &src[items[1].span.offset()..items[1].span.offset() + items[1].span.len()],
            "y"
        );
        assert_eq!(root.get("a").unwrap().kind, NodeKind::Int(1));
    }

    #[test]
    fn core_schema_resolution() {
        let root = parse("[~, true, 0x10, -3, 1.5, '1', 30m, 1e3]").unwrap();
        let kinds: Vec<_> = root
            .as_seq()
            .unwrap()
            .iter()
            .map(|n| n.kind.clone())
            .collect();
        assert_eq!(
            kinds,
            vec![
                NodeKind::Null,
                NodeKind::Bool(true),
                NodeKind::Int(16),
                NodeKind::Int(-3),
                NodeKind::Float(1.5),
                NodeKind::Str("1".into()),
                NodeKind::Str("30m".into()),
                NodeKind::Float(1000.0),
            ]
        );
    }

    #[test]
    fn alias_bomb_is_refused() {
        use std::fmt::Write;
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            writeln!(src, "a{i}: &a{i} [{}]", vec![prev; 10].join(", ")).unwrap();
        }
        let err = parse(&src).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{}", err.message);
    }

    #[test]
    fn duplicate_keys_are_refused_with_both_places() {
        let src = "a: 1\nb:\n  x: 1\n  x: 2\n";
        let err = parse(src).unwrap_err();
        assert_eq!(
            err.message,
            "duplicate key `x`: first at line 3, column 3; each key may appear once in a mapping"
        );
        assert_eq!(err.span.offset(), src.rfind('x').unwrap());
        assert!(
            parse("a: 1\nb: {a: 1}\n").is_ok(),
            "the same key in two mappings"
        );
    }

    #[test]
    fn a_large_scalar_aliased_many_times_is_refused() {
        let big = "x".repeat(1024 * 1024);
        let src = format!("a: &a {big}\nb: [{}]\n", vec!["*a"; 40].join(", "));
        let err = parse(&src).unwrap_err();
        assert!(
            err.message.contains("MiB of text (alias bomb?)"),
            "{}",
            err.message
        );
        assert!(parse(&format!("a: &a {big}\nb: [*a, *a]\n")).is_ok());
    }

    #[test]
    fn tags_are_honoured_or_refused() {
        let root =
            parse("a: !!str 0755\nb: !!int 10\nc: !!float 1\nd: ! 12\ne: !!seq [1]\n").unwrap();
        assert_eq!(root.get("a").unwrap().kind, NodeKind::Str("0755".into()));
        assert_eq!(root.get("b").unwrap().kind, NodeKind::Int(10));
        assert_eq!(root.get("c").unwrap().kind, NodeKind::Float(1.0));
        assert_eq!(root.get("d").unwrap().kind, NodeKind::Str("12".into()));
        for (src, want) in [
            (
                "a: !!binary aGVsbG8=",
                "YAML tag `!!binary` is not supported",
            ),
            ("a: !env HOME", "YAML tag `!env` is not supported"),
            ("a: !!int x", "`x` is not a valid `!!int`"),
            ("a: !!map [1]", "YAML tag `!!map` is not supported"),
        ] {
            let err = parse(src).unwrap_err();
            assert!(err.message.starts_with(want), "{src}: {}", err.message);
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = "[".repeat(500) + &"]".repeat(500);
        let err = parse(&src).unwrap_err();
        assert!(err.message.contains("nested deeper"), "{}", err.message);
    }
}
