//! `for_each`: one step definition run once per item of a list.
//!
//! A step with `for_each` is a group. At plan time (params and vars resolved) it is expanded
//! into one step per item, with the id `GROUP[KEY]` (`dump[billing]`): from then on the plan,
//! the executor, the journal, `--resume`, `--only` and `--from` see ordinary steps. Each
//! expanded step carries its [`Item`], which templates read as `item`, `item_index` and
//! `item_key`.
//!
//! `needs` are rewired by the group's items: a step of a group that needs another group over
//! the same keys needs the same item (`upload[shop]` needs `dump[shop]`); any other step that
//! needs a group needs every item of it.

use crate::runbook::diagnostic::Diagnostic;
use crate::runbook::graph::{self, Dag};
use crate::runbook::model::{Item, Runbook, Step};
use crate::steps::common::{ForEach, MaxParallel};
use crate::template::Context;
use miette::SourceSpan;
use minijinja::{Environment, Value};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// The field of a mapping item that forms its id when the step names none (`item_key`).
pub const DEFAULT_ITEM_KEY: &str = "name";

/// The longest item key.
const MAX_KEY_LEN: usize = 64;

/// The items of one group, in list order.
struct Items {
    keys: Vec<String>,
    values: Vec<Json>,
    /// `max_parallel`, evaluated.
    max_parallel: Option<usize>,
}

/// The id of a group's item: `dump[billing]`.
pub fn item_id(group: &str, key: &str) -> String {
    format!("{group}[{key}]")
}

/// The group and key of an expanded step's id: `dump[shop]` → (`dump`, `shop`). A
/// sub-runbook's steps (`each[a]/hello`) are not items of their parent's group.
pub fn split_id(id: &str) -> Option<(&str, &str)> {
    let inner = id.strip_suffix(']')?;
    let (group, key) = inner.rsplit_once('[')?;
    (!group.is_empty() && !key.is_empty() && !key.contains(['[', ']', '/'])).then_some((group, key))
}

/// Each group's keys, in plan order: what a plan shows of the expansion.
pub fn groups_of<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for (group, key) in ids.filter_map(split_id) {
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, keys)) => keys.push(key),
            None => out.push((group, vec![key])),
        }
    }
    out
}

/// Whether `key` can form part of a step id: letters, digits, `_`, `-`, `.`, starting with a
/// letter or digit.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && key.len() <= MAX_KEY_LEN
}

/// Expand every `for_each` step of a validated runbook (with its `dag`) into one step per
/// item, with `ctx`'s params and vars. Nothing changes when no step has `for_each`.
pub fn apply(runbook: &mut Runbook, dag: &mut Dag, ctx: &Context) -> Result<(), Vec<Diagnostic>> {
    if runbook.steps.iter().all(|s| s.common.for_each.is_none()) {
        return Ok(());
    }
    let groups = groups(runbook, ctx)?;
    let expanded: Vec<Vec<String>> = runbook
        .steps
        .iter()
        .zip(&groups)
        .map(|(s, g)| match g {
            None => vec![s.id().to_owned()],
            Some(g) => g.keys.iter().map(|k| item_id(s.id(), k)).collect(),
        })
        .collect();
    // Groups over the same keys (in any order) share a number: compared once per need, not
    // once per item.
    let mut lists: HashMap<Vec<&str>, usize> = HashMap::new();
    let key_sets: Vec<Option<usize>> = groups
        .iter()
        .map(|g| {
            let mut keys: Vec<&str> = g.as_ref()?.keys.iter().map(String::as_str).collect();
            keys.sort_unstable();
            let next = lists.len();
            Some(*lists.entry(keys).or_insert(next))
        })
        .collect();
    let by_id: HashMap<&str, usize> = runbook
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id(), i))
        .collect();
    let expand_names = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .flat_map(|n| {
                by_id
                    .get(n.as_str())
                    .map_or_else(|| vec![n.clone()], |&j| expanded[j].clone())
            })
            .collect()
    };
    // A step of group `i` for item `key`: the same item of a group over the same keys, else
    // every item of the group it needs.
    let needs_of = |i: usize, key: Option<&str>| -> Vec<String> {
        let mut out = Vec::new();
        for &j in &dag.needs[i] {
            match (key, &key_sets[i], &key_sets[j]) {
                (Some(key), Some(mine), Some(theirs)) if mine == theirs => {
                    out.push(item_id(runbook.steps[j].id(), key));
                }
                _ => out.extend(expanded[j].iter().cloned()),
            }
        }
        out
    };
    let mut steps = Vec::with_capacity(expanded.iter().map(Vec::len).sum());
    for (i, step) in runbook.steps.iter().enumerate() {
        let undoes = expand_names(&step.common.undoes);
        let Some(group) = &groups[i] else {
            let mut s = step.clone();
            s.common.needs = Some(needs_of(i, None));
            s.common.undoes = undoes;
            steps.push(s);
            continue;
        };
        for (index, (key, value)) in group.keys.iter().zip(&group.values).enumerate() {
            let mut s = step.clone();
            s.common.id = item_id(step.id(), key);
            // Expanded once: applying again changes nothing.
            s.common.for_each = None;
            s.common.needs = Some(needs_of(i, Some(key)));
            s.common.undoes.clone_from(&undoes);
            s.item = Some(Arc::new(Item {
                group: step.id().to_owned(),
                key: key.clone(),
                index,
                value: value.clone(),
                max_parallel: group.max_parallel,
                fail_fast: step.common.fail_fast.unwrap_or(false),
            }));
            steps.push(s);
        }
    }
    for m in &mut runbook.objectives.milestones {
        m.steps = expand_names(&m.steps);
    }
    let mut diags = Vec::new();
    let new_dag = graph::resolve(&steps, &mut diags);
    if !diags.is_empty() {
        return Err(diags);
    }
    runbook.steps = steps;
    *dag = new_dag;
    Ok(())
}

/// Each step's items (`None`: not a `for_each` step), its expression evaluated with `ctx`.
fn groups(runbook: &Runbook, ctx: &Context) -> Result<Vec<Option<Items>>, Vec<Diagnostic>> {
    let env = crate::template::environment();
    let value = ctx.value(Value::UNDEFINED);
    let mut diags = Vec::new();
    let groups: Vec<Option<Items>> = runbook
        .steps
        .iter()
        .map(|s| {
            let list = match s.common.for_each.as_ref()? {
                ForEach::List(items) => Json::Array(items.clone()),
                ForEach::Expression(text) => match eval(&env, text, &value) {
                    Ok(list) => list,
                    Err(message) => {
                        diags.push(
                            Diagnostic::new("rb::for-each", ctx.masker().mask(&message))
                                .label(for_each_span(s), "here"),
                        );
                        return None;
                    }
                },
            };
            let mut items = items(s, &list, false)
                .map_err(|mut d| diags.append(&mut d))
                .ok()?;
            match max_parallel(s, &env, &value) {
                Ok(n) => items.max_parallel = n,
                Err(d) => diags.push(d),
            }
            Some(items)
        })
        .collect();
    if diags.is_empty() {
        Ok(groups)
    } else {
        Err(diags)
    }
}

/// Evaluate a `for_each` expression: a list, or why not.
fn eval(env: &Environment<'_>, text: &str, ctx: &Value) -> Result<Json, String> {
    let value = env
        .compile_expression(text)
        .and_then(|e| e.eval(ctx.clone()))
        .map_err(|e| format!("cannot evaluate `for_each: {text}`: {e}"))?;
    let list = serde_json::to_value(&value)
        .map_err(|e| format!("`for_each: {text}` does not give a list: {e}"))?;
    // A plan without a required param's value shows it as `<params.NAME>`; a group over it
    // cannot be expanded.
    if let Json::String(s) = &list
        && let Some(name) = s.strip_prefix("<params.").and_then(|n| n.strip_suffix('>'))
    {
        return Err(format!(
            "`for_each: {text}` cannot be expanded: the param `{name}` has no value \
             (give it with `-p {name}=a,b` or `--params-file`)"
        ));
    }
    Ok(list)
}

/// A group's `max_parallel`: the number written, or its expression's value (1 or more).
fn max_parallel(
    step: &Step,
    env: &Environment<'_>,
    ctx: &Value,
) -> Result<Option<usize>, Diagnostic> {
    let text = match &step.common.max_parallel {
        None => return Ok(None),
        Some(MaxParallel::Count(n)) => return Ok(Some(n.get())),
        Some(MaxParallel::Expression(text)) => text,
    };
    let value = env
        .compile_expression(text)
        .and_then(|e| e.eval(ctx.clone()))
        .map_err(|e| format!("cannot evaluate `max_parallel: {text}`: {e}"))
        .and_then(|v| {
            // A param given on the command line is a string: `-p max_parallel=4`.
            let n = v
                .as_usize()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            n.filter(|n| *n > 0).ok_or_else(|| {
                format!("`max_parallel: {text}` of step `{}` must give a number of 1 or more, found `{v}`", step.id())
            })
        });
    value.map(Some).map_err(|message| {
        let span = step
            .node
            .get("max_parallel")
            .map_or(step.node.span, |n| n.span);
        Diagnostic::new("rb::for-each", message).label(span, "here")
    })
}

fn for_each_span(step: &Step) -> SourceSpan {
    step.node.get("for_each").map_or(step.node.span, |n| n.span)
}

/// The items of `step`'s list, keyed; diagnostics for an empty list, an item without a key,
/// a key that cannot form an id and duplicate keys. `static_list`: the list is the one written
/// in the file (labels point at each item).
fn items(step: &Step, list: &Json, static_list: bool) -> Result<Items, Vec<Diagnostic>> {
    let whole = for_each_span(step);
    let nodes = if static_list {
        step.node
            .get("for_each")
            .and_then(|n| n.as_seq())
            .unwrap_or(&[])
    } else {
        &[]
    };
    let span_of = |k: usize| nodes.get(k).map_or(whole, |n| n.span);
    let id = step.id();
    let Json::Array(list) = list else {
        return Err(vec![
            Diagnostic::new(
                "rb::for-each",
                format!(
                    "`for_each` of step `{id}` must be a list, found {}",
                    json_kind(list)
                ),
            )
            .label(whole, "not a list"),
        ]);
    };
    if list.is_empty() {
        return Err(vec![
            Diagnostic::new(
                "rb::for-each-empty",
                format!("`for_each` of step `{id}` has no items"),
            )
            .label(whole, "an empty list")
            .help("a group without items would do nothing; remove the step or give it items"),
        ]);
    }
    let field = step.common.item_key.as_deref().unwrap_or(DEFAULT_ITEM_KEY);
    let mut diags = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut keys = Vec::with_capacity(list.len());
    for (k, item) in list.iter().enumerate() {
        let Some(key) = key_of(item, field) else {
            let (message, help) = if item.is_object() {
                (
                    format!("item {k} of step `{id}` has no string field `{field}`"),
                    "name the field that identifies each item with `item_key`",
                )
            } else {
                (
                    format!("item {k} of step `{id}` is {}", json_kind(item)),
                    "items are strings or mappings",
                )
            };
            diags.push(
                Diagnostic::new("rb::item-key", message)
                    .label(span_of(k), "no key")
                    .help(help),
            );
            continue;
        };
        if !valid_key(&key) {
            diags.push(
                Diagnostic::new(
                    "rb::item-key",
                    format!("item key `{key}` of step `{id}` cannot form a step id"),
                )
                .label(span_of(k), "this item")
                .help(format!(
                    "keys are letters, digits, `_`, `-` and `.` (at most {MAX_KEY_LEN}), \
                     starting with a letter or digit"
                )),
            );
        } else if let Some(&first) = seen.get(&key) {
            diags.push(
                Diagnostic::new(
                    "rb::item-duplicate",
                    format!("step `{id}` has two items with key `{key}`"),
                )
                .label(span_of(k), "this item")
                .label(span_of(first), "the first one")
                .help("each item's key forms its step id, and ids are unique"),
            );
        } else {
            seen.insert(key.clone(), k);
        }
        keys.push(key);
    }
    if diags.is_empty() {
        Ok(Items {
            keys,
            values: list.clone(),
            max_parallel: None,
        })
    } else {
        Err(diags)
    }
}

/// The key of an item: a string or number itself, or a mapping's `field`.
fn key_of(item: &Json, field: &str) -> Option<String> {
    let scalar = |v: &Json| match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match item {
        Json::Object(map) => map.get(field).and_then(scalar),
        other => scalar(other),
    }
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// What `rb validate` can tell about the `for_each` keys before params are known: a written
/// list's items (empty, keys, duplicates), an expression that reads more than params and vars,
/// and the group keys on a step without `for_each`.
pub fn check(runbook: &Runbook, diags: &mut Vec<Diagnostic>) {
    let env = crate::template::environment();
    for step in &runbook.steps {
        let span = |key: &str| step.node.get(key).map(|n| n.span);
        match &step.common.for_each {
            None => {
                for key in ["item_key", "max_parallel", "fail_fast"] {
                    if let Some(at) = span(key) {
                        diags.push(
                            Diagnostic::new(
                                "rb::for-each",
                                format!("`{key}` of step `{}` without `for_each`", step.id()),
                            )
                            .label(at, "only for a step with `for_each`"),
                        );
                    }
                }
            }
            Some(ForEach::List(list)) => {
                if let Err(mut d) = items(step, &Json::Array(list.clone()), true) {
                    diags.append(&mut d);
                }
            }
            Some(ForEach::Expression(text)) => {
                check_expression(&env, step, "for_each", text, diags);
            }
        }
        if step.common.for_each.is_some()
            && let Some(MaxParallel::Expression(text)) = &step.common.max_parallel
        {
            check_expression(&env, step, "max_parallel", text, diags);
        }
    }
}

/// A `for_each` or `max_parallel` expression (`key`): it parses and reads only params and vars.
fn check_expression(
    env: &Environment<'_>,
    step: &Step,
    key: &str,
    text: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let at = step.node.get(key).map_or(step.node.span, |n| n.span);
    let (what, help) = if key == "for_each" {
        (
            "the list is expanded",
            "name a list: `params.databases`, `vars.targets`, or write the list",
        )
    } else {
        (
            "it is evaluated",
            "name a number: `params.max_parallel`, or write it",
        )
    };
    match crate::template::expression_references(env, text) {
        Err(_) => diags.push(
            Diagnostic::new(
                "rb::for-each",
                format!("`{key}: {text}` is not an expression"),
            )
            .label(at, "here")
            .help(help),
        ),
        Ok(refs) => {
            for name in refs {
                let root = name.split('.').next().unwrap_or_default();
                if !matches!(root, "params" | "vars") {
                    diags.push(
                        Diagnostic::new(
                            "rb::for-each",
                            format!(
                                "`{key}` of step `{}` reads `{name}`: {what} before any step \
                                 runs, from params and vars only",
                                step.id()
                            ),
                        )
                        .label(at, "here"),
                    );
                }
            }
        }
    }
}
