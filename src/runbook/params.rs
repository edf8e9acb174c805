//! Param values: defaults, `--params-file`, `-p key=value`, each checked against its type.

use super::diagnostic::{Diagnostic, suggest};
use super::model::{ParamSpec, ParamType, Runbook};
use crate::duration::Dur;
use crate::yaml::node::{self, NodeKind};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Values given on the command line, in the order given (later wins).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// From `--params-file` files, already decoded.
    pub files: Vec<(String, BTreeMap<String, Value>)>,
    /// From `-p key=value`, as text.
    pub pairs: Vec<(String, String)>,
}

impl Overrides {
    /// Read a `--params-file` (YAML or JSON mapping).
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        // As large as a runbook may be: a huge file would only take long to refuse.
        let max = super::load::MAX_FILE_BYTES;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.len() > max
        {
            return Err(format!(
                "params file `{}` is {:.1} MiB; a params file may be at most {} MiB",
                path.display(),
                meta.len() as f64 / 1_048_576.0,
                max / 1_048_576
            ));
        }
        let cannot = |e: &dyn std::fmt::Display| {
            format!("cannot read params file `{}`: {e}", path.display())
        };
        let bytes = match crate::io::bounded::read(path, max).map_err(|e| cannot(&e))? {
            crate::io::bounded::Bounded::Read(b) => b,
            crate::io::bounded::Bounded::TooLarge => {
                return Err(format!(
                    "params file `{}` holds more than {} MiB; a params file may be at most that",
                    path.display(),
                    max / 1_048_576
                ));
            }
        };
        let text = String::from_utf8(bytes).map_err(|e| cannot(&e))?;
        self.add_text(&path.display().to_string(), &text)
    }

    /// Read the text of a params file named `name` (YAML or JSON mapping).
    pub fn add_text(&mut self, name: &str, text: &str) -> Result<(), String> {
        let root = node::parse(text).map_err(|e| format!("params file `{name}`: {}", e.message))?;
        let Some(entries) = root.as_map() else {
            return Err(format!(
                "params file `{name}` must be a mapping of param names to values"
            ));
        };
        let map = entries
            .iter()
            .map(|(k, v)| (k.key_text(), v.to_json()))
            .collect();
        self.files.push((name.to_owned(), map));
        Ok(())
    }

    /// Parse `key=value`.
    pub fn add_pair(&mut self, pair: &str) -> Result<(), String> {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("`-p {pair}`: write `-p name=value`"))?;
        self.pairs.push((k.trim().to_owned(), v.to_owned()));
        Ok(())
    }
}

/// Check a value against a param type, converting text given on the command line.
pub fn coerce(ty: ParamType, value: &Value) -> Result<Value, String> {
    match (ty, value) {
        (ParamType::String | ParamType::Path, Value::String(_)) => Ok(value.clone()),
        (ParamType::String | ParamType::Path, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (ParamType::Int, Value::Number(n)) if n.is_i64() => Ok(value.clone()),
        (ParamType::Int, Value::String(s)) => {
            s.trim().parse::<i64>().map(Value::from).map_err(|_| {
                if crate::yaml::node::is_decimal_integer(s.trim()) {
                    format!("`{s}` is too large: integers are at most {}", i64::MAX)
                } else {
                    format!("expected an integer, found \"{s}\"")
                }
            })
        }
        (ParamType::Bool, Value::Bool(_)) => Ok(value.clone()),
        (ParamType::Bool, Value::String(s)) => match s.as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("expected true or false, found \"{s}\"")),
        },
        (ParamType::List, Value::Array(_)) => Ok(value.clone()),
        // A list written as JSON (`-p 'databases=["billing","shop"]'`, a resumed run's).
        (ParamType::List, Value::String(s)) if s.trim_start().starts_with('[') => {
            serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_array)
                .ok_or_else(|| format!("expected a list, found \"{s}\""))
        }
        // `-p databases=billing,shop`: a list of strings.
        (ParamType::List, Value::String(s)) => Ok(Value::Array(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )),
        (ParamType::Duration, Value::String(s)) => s
            .parse::<Dur>()
            .map(|d| Value::String(d.to_string()))
            .map_err(|e| e.to_string()),
        (ty, v) => Err(format!(
            "expected {}, found {}",
            type_word(ty),
            json_type(v)
        )),
    }
}

fn type_word(ty: ParamType) -> &'static str {
    match ty {
        ParamType::String => "a string",
        ParamType::Int => "an integer",
        ParamType::Bool => "a boolean",
        ParamType::Duration => "a duration",
        ParamType::Path => "a path",
        ParamType::List => "a list",
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Checks of the declarations alone (for `rb validate`).
pub fn check_specs(runbook: &Runbook, diags: &mut Vec<Diagnostic>) {
    for (name, spec) in &runbook.params {
        let node = runbook.root.get("params").and_then(|p| p.get(name));
        let span = node.map_or(runbook.root.span, |n| n.span);
        if let Some(default) = &spec.default {
            let default_span = node.and_then(|n| n.get("default")).map_or(span, |n| n.span);
            if spec.required {
                diags.push(
                    Diagnostic::new(
                        "rb::param",
                        format!("param `{name}` is required and has a default"),
                    )
                    .label(default_span, "a required param takes no default")
                    .help("remove `required: true` or the default"),
                );
            }
            if let Err(e) = coerce(spec.param_type, default) {
                diags.push(
                    Diagnostic::new("rb::param-type", format!("default of param `{name}`: {e}"))
                        .label(default_span, format!("not {}", type_word(spec.param_type))),
                );
            }
        } else if !spec.required {
            diags.push(
                Diagnostic::new(
                    "rb::param",
                    format!("param `{name}` has neither a default nor `required: true`"),
                )
                .label(span, "give it a default, or mark it required"),
            );
        }
    }
    if let Some(n) = runbook.root.get("params")
        && let Some(entries) = n.as_map()
    {
        for (_, v) in entries {
            if v.get("type")
                .is_some_and(|t| matches!(t.kind, NodeKind::Null))
            {
                diags.push(
                    Diagnostic::new("rb::param-type", "param `type` is empty")
                        .label(v.span, "here"),
                );
            }
        }
    }
}

/// The param a "missing required param" diagnostic is about.
pub fn missing_param(d: &Diagnostic) -> Option<String> {
    d.message
        .strip_prefix("missing required param `")?
        .strip_suffix('`')
        .map(str::to_owned)
}

/// The value of every param: defaults, then files, then pairs. Problems are diagnostics
/// (unknown names with did-you-mean, type errors, missing required params).
pub fn resolve(
    runbook: &Runbook,
    given: &Overrides,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Value> {
    let specs: BTreeMap<&str, &ParamSpec> = runbook
        .params
        .iter()
        .map(|(n, s)| (n.as_str(), s))
        .collect();
    let names: Vec<&str> = specs.keys().copied().collect();
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    for (name, spec) in &specs {
        if let Some(d) = &spec.default
            && let Ok(v) = coerce(spec.param_type, d)
        {
            values.insert((*name).to_owned(), v);
        }
    }
    let mut apply =
        |name: &str, value: Value, origin: &str, diags: &mut Vec<Diagnostic>| match specs.get(name)
        {
            None => diags.push(
                Diagnostic::new(
                    "rb::unknown-param",
                    format!("unknown param `{name}` ({origin})"),
                )
                .help(suggest(name, &names, "params")),
            ),
            Some(spec) => match coerce(spec.param_type, &value) {
                Ok(v) => {
                    values.insert(name.to_owned(), v);
                }
                Err(e) => diags.push(Diagnostic::new(
                    "rb::param-type",
                    format!("param `{name}` ({origin}): {e}"),
                )),
            },
        };
    for (file, map) in &given.files {
        for (k, v) in map {
            apply(k, v.clone(), &format!("from `{file}`"), diags);
        }
    }
    for (k, v) in &given.pairs {
        apply(k, Value::String(v.clone()), "from `-p`", diags);
    }
    for (name, spec) in &specs {
        if spec.required && !values.contains_key(*name) {
            let span = runbook
                .root
                .get("params")
                .and_then(|p| p.get_entry(name))
                .map_or(runbook.root.span, |(k, _)| k.span);
            diags.push(
                Diagnostic::new(
                    "rb::missing-param",
                    format!("missing required param `{name}`"),
                )
                .label(span, "declared here")
                .help(format!("give it with `-p {name}=…` or `--params-file`")),
            );
        }
    }
    values
}
