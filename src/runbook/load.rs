//! Reading a runbook file into the typed model, collecting every problem on the way.

use super::diagnostic::{Diagnostic, suggest};
use super::model::{FORMAT_VERSION, Objectives, Runbook, Step};
use crate::io::bounded::Bounded;
use crate::steps::common::{COMMON_KEYS, StepCommon};
use crate::steps::{STEP_TYPES, StepKind};
use crate::yaml::de::{DeError, from_node};
use crate::yaml::node::{self, Node, NodeKind};
use miette::SourceSpan;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest runbook file read.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Top-level keys of a runbook.
pub const TOP_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "objectives",
    "params",
    "secrets",
    "vars",
    "hosts",
    "stores",
    "locks",
    "notify",
    "steps",
];

/// The outcome of loading: the source (when it could be read), the model (when the YAML
/// parsed into a mapping) and every problem found.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub source: Option<Arc<String>>,
    pub runbook: Option<Runbook>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Read and decode a runbook file.
pub fn load_file(path: &Path) -> Loaded {
    let fail = |message: String| Loaded {
        path: path.to_owned(),
        source: None,
        runbook: None,
        diagnostics: vec![Diagnostic::new("rb::read", message)],
    };
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(format!("cannot read `{shown}`: no such file"));
        }
        Err(e) => return fail(format!("cannot read `{shown}`: {e}")),
    };
    if meta.is_dir() {
        return fail(format!("`{shown}` is a directory, not a runbook file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return fail(format!(
            "`{shown}` is {:.1} MiB; a runbook may be at most {} MiB",
            meta.len() as f64 / 1_048_576.0,
            MAX_FILE_BYTES / 1_048_576
        ));
    }
    // The metadata of a device, FIFO or process substitution says 0: the read is bounded.
    match crate::io::bounded::read(path, MAX_FILE_BYTES) {
        Ok(Bounded::Read(bytes)) => load_bytes(path, bytes),
        Ok(Bounded::TooLarge) => fail(format!(
            "`{shown}` holds more than {} MiB; a runbook may be at most that",
            MAX_FILE_BYTES / 1_048_576
        )),
        Err(e) => fail(format!("cannot read `{shown}`: {e}")),
    }
}

/// Decode a runbook from the bytes of a file (`path` names it in diagnostics); text that is
/// not UTF-8 is a diagnostic pointing at the first invalid byte.
pub fn load_bytes(path: &Path, bytes: Vec<u8>) -> Loaded {
    let shown = path.display();
    match String::from_utf8(bytes) {
        Ok(text) => load_str(path, text),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let mut loaded = Loaded {
                path: path.to_owned(),
                source: None,
                runbook: None,
                diagnostics: vec![Diagnostic::new(
                    "rb::read",
                    format!("`{shown}` is not UTF-8 text"),
                )],
            };
            let shown_at = lossy
                .char_indices()
                .map(|(i, _)| i)
                .take_while(|i| *i <= at)
                .last()
                .unwrap_or(0);
            loaded.diagnostics[0]
                .labels
                .push(((shown_at, 1).into(), format!("invalid byte at offset {at}")));
            loaded.source = Some(Arc::new(lossy));
            loaded
        }
    }
}

/// Decode a runbook from text (`path` names it in diagnostics and resolves relative files).
pub fn load_str(path: &Path, text: String) -> Loaded {
    let source = Arc::new(text);
    let mut diags = Vec::new();
    let root = match node::parse(&source) {
        Ok(root) => root,
        Err(e) => {
            diags.push(Diagnostic::new("rb::yaml", e.message).label(e.span, "here"));
            return Loaded {
                path: path.to_owned(),
                source: Some(source),
                runbook: None,
                diagnostics: diags,
            };
        }
    };
    let runbook = decode_root(path, &source, &root, &mut diags);
    Loaded {
        path: path.to_owned(),
        source: Some(source),
        runbook,
        diagnostics: diags,
    }
}

/// Turn a decoding error into a diagnostic, with did-you-mean for unknown keys and values.
pub fn de_diagnostic(e: &DeError, fallback: SourceSpan, extra_keys: &[&'static str]) -> Diagnostic {
    let span = e.span.unwrap_or(fallback);
    if let Some((key, expected)) = &e.unknown_field {
        let mut all: Vec<&str> = expected.clone();
        all.extend(extra_keys.iter().copied());
        return Diagnostic::new("rb::unknown-key", format!("unknown key `{key}`"))
            .label(span, "not a valid key here")
            .help(suggest(key, &all, "keys"));
    }
    if let Some((value, expected)) = &e.unknown_variant {
        return Diagnostic::new("rb::unknown-value", format!("unknown value `{value}`"))
            .label(span, "not one of the valid values")
            .help(suggest(value, expected, "values"));
    }
    let code = if e.message.starts_with("invalid duration") {
        "rb::duration"
    } else {
        "rb::invalid-value"
    };
    Diagnostic::new(code, e.message.clone()).label(span, "here")
}

/// Decode `node` as `T`, collecting every unknown key (each one removed and decoding retried)
/// and then the first other error.
pub fn decode_all<T: serde::de::DeserializeOwned>(
    node: &Node,
    extra_keys: &[&'static str],
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    decode_collecting(node, extra_keys, diags, |n| from_node::<T>(n))
}

/// Run `decode` on `node` until it succeeds or fails on something other than an unknown key;
/// every unknown key is reported (and removed for the next try). `Some` only when the node
/// decoded as written.
fn decode_collecting<T>(
    node: &Node,
    extra_keys: &[&'static str],
    diags: &mut Vec<Diagnostic>,
    decode: impl Fn(&Node) -> Result<T, DeError>,
) -> Option<T> {
    let mut current = node.clone();
    let mut suggested: Vec<String> = Vec::new();
    for _ in 0..64 {
        match decode(&current) {
            Ok(v) => return (current == *node).then_some(v),
            Err(e) => {
                // "missing `container`" after "unknown `contianer`, did you mean `container`?"
                // says the same thing twice.
                if suggested
                    .iter()
                    .any(|k| e.message == format!("missing required key `{k}`"))
                {
                    return None;
                }
                let d = de_diagnostic(&e, node.span, extra_keys);
                if let Some(k) = d
                    .help
                    .as_deref()
                    .and_then(|h| h.strip_prefix("did you mean `"))
                    .and_then(|r| r.strip_suffix("`?"))
                {
                    suggested.push(k.to_owned());
                }
                diags.push(d);
                let removed = e.unknown_field.is_some()
                    && e.span.is_some_and(|s| remove_key_at(&mut current, s));
                if !removed {
                    return None;
                }
            }
        }
    }
    None
}

/// Remove the mapping entry whose key is at `span` (anywhere in the tree).
fn remove_key_at(node: &mut Node, span: SourceSpan) -> bool {
    match &mut node.kind {
        NodeKind::Map(entries) => {
            if let Some(i) = entries.iter().position(|(k, _)| k.span == span) {
                entries.remove(i);
                return true;
            }
            entries.iter_mut().any(|(_, v)| remove_key_at(v, span))
        }
        NodeKind::Seq(items) => items.iter_mut().any(|v| remove_key_at(v, span)),
        _ => false,
    }
}

fn decode_root(
    path: &Path,
    source: &Arc<String>,
    root: &Node,
    diags: &mut Vec<Diagnostic>,
) -> Option<Runbook> {
    let Some(entries) = root.as_map() else {
        diags.push(
            Diagnostic::new(
                "rb::not-a-runbook",
                format!(
                    "a runbook is a YAML mapping; this file holds {}",
                    root.type_name()
                ),
            )
            .label(root.span, "expected `version`, `name`, `steps`, …")
            .help("start from `version: 1`, `name: …`, `steps: [...]`"),
        );
        return None;
    };
    for (key, _) in entries {
        let name = key.key_text();
        if !TOP_KEYS.contains(&name.as_str()) {
            diags.push(
                Diagnostic::new("rb::unknown-key", format!("unknown key `{name}`"))
                    .label(key.span, "not a runbook key")
                    .help(suggest(&name, TOP_KEYS, "keys")),
            );
        }
    }
    check_version(root, diags);
    let name = match root.get_entry("name") {
        Some((_, v)) => match v.as_str() {
            Some(s) => {
                if !valid_name(s) {
                    diags.push(
                        Diagnostic::new("rb::invalid-name", format!("invalid runbook name `{s}`"))
                            .label(v.span, "names the run history")
                            .help("use lowercase letters, digits, `_` and `-`, starting with a letter or digit"),
                    );
                }
                s.to_owned()
            }
            None => {
                diags.push(
                    Diagnostic::new("rb::invalid-value", "`name` must be a string")
                        .label(v.span, "here"),
                );
                String::new()
            }
        },
        None => {
            diags.push(
                Diagnostic::new("rb::missing-key", "missing required key `name`")
                    .label((0, 0).into(), "the runbook starts here")
                    .help("add `name: my-runbook` (lowercase, digits, `_`, `-`)"),
            );
            String::new()
        }
    };
    let description = root
        .get("description")
        .and_then(|d| d.as_str())
        .map(str::to_owned);
    let objectives = root
        .get("objectives")
        .and_then(|n| decode_all::<Objectives>(n, &[], diags))
        .unwrap_or_default();
    let params = decode_named(root.get("params"), "params", diags);
    let secrets = decode_named(root.get("secrets"), "secrets", diags);
    let hosts: BTreeMap<_, _> = decode_named(root.get("hosts"), "hosts", diags)
        .into_iter()
        .collect();
    let stores: BTreeMap<_, _> = decode_named(root.get("stores"), "stores", diags)
        .into_iter()
        .collect();
    let vars = decode_vars(root.get("vars"), diags);
    let locks = decode_locks(root.get("locks"), diags);
    let notify = super::notify::decode(root.get("notify"), diags);
    let steps = match root.get_entry("steps") {
        Some((_, n)) => decode_steps(n, diags),
        None => {
            diags.push(
                Diagnostic::new("rb::missing-key", "missing required key `steps`")
                    .label((0, 0).into(), "the runbook starts here")
                    .help("add `steps:` with a list of steps"),
            );
            Vec::new()
        }
    };
    Some(Runbook {
        path: path.to_owned(),
        source: source.clone(),
        root: root.clone(),
        name,
        description,
        objectives,
        params,
        secrets,
        vars,
        hosts,
        stores,
        locks,
        notify,
        steps,
    })
}

/// `locks:` a list of strings (templates, rendered when the run starts).
fn decode_locks(node: Option<&Node>, diags: &mut Vec<Diagnostic>) -> Vec<String> {
    let Some(node) = node else {
        return Vec::new();
    };
    let Some(items) = node.as_seq() else {
        diags.push(
            Diagnostic::new("rb::invalid-value", "`locks` must be a list of names")
                .label(node.span, "here")
                .help("write `locks: [\"postgres/{{ params.container }}\"]`"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        match item.as_str() {
            Some(s) if !s.trim().is_empty() => out.push(s.to_owned()),
            _ => diags.push(
                Diagnostic::new(
                    "rb::invalid-value",
                    "a lock name must be a non-empty string",
                )
                .label(item.span, "here")
                .help("name what the runbook changes, e.g. `postgres/{{ params.container }}`"),
            ),
        }
    }
    out
}

fn check_version(root: &Node, diags: &mut Vec<Diagnostic>) {
    match root.get("version") {
        Some(v) if v.kind == NodeKind::Int(i64::from(FORMAT_VERSION)) => {}
        Some(v) => diags.push(
            Diagnostic::new("rb::version", "unsupported runbook format version")
                .label(v.span, "this build reads `version: 1`"),
        ),
        None => diags.push(
            Diagnostic::new("rb::missing-key", "missing required key `version`")
                .label((0, 0).into(), "the runbook starts here")
                .help("add `version: 1` as the first line"),
        ),
    }
}

/// `[a-z0-9][a-z0-9_-]*`
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `[a-z][a-z0-9_-]*`
pub fn valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn decode_named<T: serde::de::DeserializeOwned>(
    node: Option<&Node>,
    section: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(String, T)> {
    let Some(node) = node else { return Vec::new() };
    if node.kind == NodeKind::Null {
        return Vec::new();
    }
    let Some(entries) = node.as_map() else {
        diags.push(
            Diagnostic::new(
                "rb::invalid-value",
                format!("`{section}` must be a mapping of names"),
            )
            .label(node.span, format!("found {}", node.type_name())),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let name = k.key_text();
        if !valid_id(&name) && !valid_name(&name) {
            diags.push(
                Diagnostic::new(
                    "rb::invalid-name",
                    format!("invalid name `{name}` in `{section}`"),
                )
                .label(k.span, "names are lowercase letters, digits, `_` and `-`"),
            );
        }
        if let Some(value) = decode_all::<T>(v, &[], diags) {
            out.push((name, value));
        }
    }
    out
}

fn decode_vars(node: Option<&Node>, diags: &mut Vec<Diagnostic>) -> Vec<(String, String)> {
    let Some(node) = node.filter(|n| n.kind != NodeKind::Null) else {
        return Vec::new();
    };
    let Some(entries) = node.as_map() else {
        diags.push(
            Diagnostic::new(
                "rb::invalid-value",
                "`vars` must be a mapping of names to templates",
            )
            .label(node.span, format!("found {}", node.type_name())),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let text = match &v.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => v.key_text(),
            _ => {
                diags.push(
                    Diagnostic::new("rb::invalid-value", "a var is a string (a template)")
                        .label(v.span, format!("found {}", v.type_name())),
                );
                continue;
            }
        };
        out.push((k.key_text(), text));
    }
    out
}

fn decode_steps(node: &Node, diags: &mut Vec<Diagnostic>) -> Vec<Step> {
    let Some(items) = node.as_seq() else {
        diags.push(
            Diagnostic::new("rb::invalid-value", "`steps` must be a list of steps")
                .label(node.span, format!("found {}", node.type_name())),
        );
        return Vec::new();
    };
    if items.is_empty() {
        diags.push(
            Diagnostic::new("rb::no-steps", "`steps` is empty")
                .label(node.span, "add at least one step"),
        );
    }
    items
        .iter()
        .filter_map(|item| decode_step(item, diags))
        .collect()
}

fn decode_step(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Step> {
    let Some(entries) = node.as_map() else {
        diags.push(
            Diagnostic::new(
                "rb::invalid-value",
                "a step is a mapping with `id` and `type`",
            )
            .label(node.span, format!("found {}", node.type_name())),
        );
        return None;
    };
    let (common_entries, config_entries): (Vec<_>, Vec<_>) = entries
        .iter()
        .cloned()
        .partition(|(k, _)| k.as_str().is_some_and(|k| COMMON_KEYS.contains(&k)));
    let common_node = Node::new(NodeKind::Map(common_entries), node.span);
    let config_node = Node::new(NodeKind::Map(config_entries), node.span);

    let type_entry = node.get_entry("type");
    let type_name = type_entry.and_then(|(_, v)| v.as_str()).map(str::to_owned);
    let known_type = type_name.as_deref().filter(|t| STEP_TYPES.contains(t));
    match (type_entry, &type_name, known_type) {
        (None, _, _) => diags.push(
            Diagnostic::new("rb::missing-key", "step has no `type`")
                .label(node.span, "this step")
                .help(format!("valid types: {}", STEP_TYPES.join(", "))),
        ),
        (Some((_, v)), Some(t), None) => diags.push(
            Diagnostic::new("rb::unknown-type", format!("unknown step type `{t}`"))
                .label(v.span, "not a step type")
                .help(suggest(t, STEP_TYPES, "types")),
        ),
        (Some((_, v)), None, _) => diags.push(
            Diagnostic::new("rb::invalid-value", "`type` must be a string").label(v.span, "here"),
        ),
        _ => {}
    }
    let kind = known_type.and_then(|t| {
        let before = diags.len();
        let kind = decode_config(t, &config_node, diags);
        (diags.len() == before).then_some(kind).flatten()
    });
    let common = if node.get("id").is_none() {
        diags.push(
            Diagnostic::new("rb::missing-key", "step has no `id`")
                .label(node.span, "this step")
                .help("add `id: some_name` ([a-z][a-z0-9_-]*)"),
        );
        None
    } else {
        fixed_keys(&common_node, diags);
        // A step whose shared keys do not decode still takes part in the other checks.
        decode_all::<StepCommon>(&common_node, &[], diags)
            .or_else(|| Some(fallback_common(node, type_name)))
    };
    Some(Step {
        common: common?,
        kind,
        node: node.clone(),
        config_node,
        item: None,
    })
}

/// The shared keys the executor reads before a step is rendered: a template there would be
/// read as zero (a timeout of 0 s, no retries), so it is refused.
fn fixed_keys(common: &Node, diags: &mut Vec<Diagnostic>) {
    for key in ["timeout", "estimate", "retries"] {
        let Some(value) = common.get(key) else {
            continue;
        };
        let mut templated = None;
        value.for_each_string(&mut |n, s| {
            if s.contains("{{") || s.contains("{%") {
                templated.get_or_insert(n.span);
            }
        });
        if let Some(span) = templated {
            diags.push(
                Diagnostic::new(
                    "rb::template-not-allowed",
                    format!("`{key}` cannot be a template: it is read before the step is rendered"),
                )
                .label(span, "here"),
            );
        }
    }
}

fn decode_config(type_name: &str, node: &Node, diags: &mut Vec<Diagnostic>) -> Option<StepKind> {
    decode_collecting(node, COMMON_KEYS, diags, |n| StepKind::decode(type_name, n))
}

/// The shared keys that can be read, for a step whose shared keys have errors.
fn fallback_common(node: &Node, type_name: Option<String>) -> StepCommon {
    let text = |k: &str| node.get(k).and_then(Node::as_str).map(str::to_owned);
    StepCommon {
        id: text("id").unwrap_or_default(),
        type_name: type_name.unwrap_or_default(),
        description: text("description"),
        needs: node.get("needs").and_then(Node::as_seq).map(|items| {
            items
                .iter()
                .filter_map(Node::as_str)
                .map(str::to_owned)
                .collect()
        }),
        when: text("when"),
        timeout: None,
        retries: None,
        continue_on_error: false,
        always: false,
        undoes: Vec::new(),
        estimate: None,
        tags: Vec::new(),
        for_each: None,
        item_key: None,
        max_parallel: None,
        fail_fast: None,
    }
}
