//! Plans and graphs for people (text, Markdown) and machines (JSON, DOT, Mermaid).

use super::build::{Plan, PlanStep};
use super::nested::SubPlan;
use crate::duration::human_secs;
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

/// Keys of a `for_each` group a text plan names.
const SHOWN_KEYS: usize = 5;

/// Version of the JSON plan document; bumped on incompatible changes.
pub const PLAN_JSON_VERSION: u32 = 1;

/// A config value on one line: argv joined with shell quoting, mappings as `{k: v}`.
pub(crate) fn inline(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Array(items) if items.iter().all(Json::is_string) => items
            .iter()
            .map(|s| crate::template::shell_quote(s.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" "),
        Json::Array(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        Json::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .filter(|(_, v)| !is_empty(v))
                .map(|(k, v)| format!("{k}: {}", inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn is_empty(v: &Json) -> bool {
    match v {
        Json::Null | Json::Bool(false) => true,
        Json::Array(a) => a.is_empty(),
        Json::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// The config fields worth showing, in declaration order.
pub(crate) fn fields(step: &PlanStep) -> Vec<(String, String)> {
    let Json::Object(map) = &step.config else {
        return Vec::new();
    };
    map.iter()
        .filter(|(k, v)| {
            !is_empty(v) && (k.as_str() != "ok_codes" || **v != serde_json::json!([0]))
        })
        .filter(|(k, v)| {
            !(matches!(k.as_str(), "stdout" | "stderr") && v.as_str() == Some("capture"))
        })
        .map(|(k, v)| {
            // A runbook step's `params` and an `env` are the author's values, where `false`
            // is a value like any other (elsewhere a `false` is a default left unshown).
            let text = match (k.as_str(), v) {
                ("params" | "env", Json::Object(m)) => format!(
                    "{{{}}}",
                    m.iter()
                        .map(|(k, v)| format!("{k}: {}", inline(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => inline(v),
            };
            (k.clone(), text)
        })
        .collect()
}

fn opt_secs(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), human_secs)
}

/// Where a step's estimate comes from, once some estimates come from history.
fn estimate_tag(plan: &Plan, s: &PlanStep) -> Option<String> {
    let uses_history = plan.steps.iter().any(|x| x.history.is_some());
    match (&s.history, s.estimate) {
        (Some(h), _) => Some(format!(
            "estimate {} (history, {} run{})",
            human_secs(h.median_seconds),
            h.runs,
            if h.runs == 1 { "" } else { "s" }
        )),
        (None, Some(e)) if uses_history => Some(format!("estimate {e} (estimate)")),
        (None, Some(e)) => Some(format!("estimate {e}")),
        (None, None) => None,
    }
}

/// The predicted finish against the RTO deadline (only with history).
fn finish_line(plan: &Plan) -> Option<String> {
    let finish = plan.predicted_finish.as_ref()?;
    let deadline = plan.rto_seconds.and_then(|rto| {
        let now = chrono::DateTime::parse_from_rfc3339(&plan.now).ok()?;
        #[expect(clippy::cast_possible_truncation, reason = "an RTO in milliseconds")]
        let ms = (rto * 1000.0).round() as i64;
        Some(
            (now + chrono::Duration::milliseconds(ms))
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    });
    Some(match deadline {
        Some(d) => format!("predicted finish {finish} (from history), RTO deadline {d}"),
        None => format!("predicted finish {finish} (from history), no RTO set"),
    })
}

/// A warning when the critical path does not fit the RTO.
fn warning_line(plan: &Plan) -> Option<String> {
    match (plan.rto_seconds, plan.rto_margin_seconds) {
        (Some(rto), Some(margin)) if margin < 0.0 => Some(format!(
            "WARNING: the critical path ({}) does not fit the RTO ({}): over by {}",
            human_secs(plan.critical_path_seconds),
            human_secs(rto),
            human_secs(-margin)
        )),
        _ => None,
    }
}

fn budget_line(plan: &Plan) -> String {
    match (plan.rto_seconds, plan.rto_margin_seconds) {
        (Some(rto), Some(margin)) if margin >= 0.0 => format!(
            "RTO {}: critical path {} fits with {} to spare",
            human_secs(rto),
            human_secs(plan.critical_path_seconds),
            human_secs(margin)
        ),
        (Some(rto), Some(margin)) => format!(
            "RTO {}: critical path {} is OVER by {}",
            human_secs(rto),
            human_secs(plan.critical_path_seconds),
            human_secs(-margin)
        ),
        _ => format!(
            "no RTO set; critical path {}",
            human_secs(plan.critical_path_seconds)
        ),
    }
}

/// The head of a text plan: name, description, time, params, secrets, vars, locks.
fn text_head(o: &mut String, plan: &Plan) {
    let _ = writeln!(o, "plan of `{}` ({})", plan.runbook, plan.file);
    if let Some(d) = &plan.description {
        let _ = writeln!(o, "{}", d.trim());
    }
    let _ = writeln!(o, "as of {}", plan.now);
    for (k, v) in &plan.params {
        let _ = writeln!(o, "  param  {k} = {}", inline(v));
    }
    for k in &plan.secrets {
        let _ = writeln!(o, "  secret {k} = ***");
    }
    for (k, v) in &plan.vars {
        let _ = writeln!(o, "  var    {k} = {v}");
    }
    for l in &plan.locks {
        let _ = writeln!(o, "  lock   {l}");
    }
    for s in &plan.stores {
        let _ = writeln!(o, "  store  {s}");
    }
    for n in &plan.notify {
        let _ = writeln!(o, "  notify {n}");
    }
}

/// The `for_each` groups: item count, the first keys and the slowest item by estimate.
fn for_each_text(o: &mut String, plan: &Plan) {
    if !plan.for_each.is_empty() {
        let _ = writeln!(o, "\nfor_each groups:");
        for g in &plan.for_each {
            let keys = &g.items;
            let more = keys.len().saturating_sub(SHOWN_KEYS);
            let shown = keys[..keys.len().min(SHOWN_KEYS)].join(", ");
            let tail = if more > 0 {
                format!(", … {more} more")
            } else {
                String::new()
            };
            let slowest = match (&g.slowest_item, g.slowest_item_seconds) {
                (Some(item), Some(secs)) => format!("; slowest: {item} ({})", human_secs(secs)),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "  {}: {} items ({shown}{tail}){slowest}",
                g.group,
                keys.len()
            );
        }
    }
}

/// Plain text for a terminal.
pub fn text(plan: &Plan) -> String {
    let mut o = String::new();
    text_head(&mut o, plan);
    let _ = writeln!(o, "\nsteps, in run order:");
    for (n, s) in plan.steps.iter().enumerate() {
        let mut tags = vec![format!("group {}", s.group + 1)];
        if let Some(e) = estimate_tag(plan, s) {
            tags.push(e);
        }
        if let Some(t) = s.timeout {
            tags.push(format!("timeout {t}"));
        }
        if s.retries > 0 {
            tags.push(format!("retries {}", s.retries));
        }
        if s.always {
            tags.push("always".into());
        }
        if s.continue_on_error {
            tags.push("continue on error".into());
        }
        if s.on_critical_path {
            tags.push("critical path".into());
        }
        let _ = writeln!(
            o,
            "{:>3}. {} ({}) [{}]",
            n + 1,
            s.id,
            s.type_name,
            tags.join(", ")
        );
        if let Some(d) = &s.description {
            let _ = writeln!(o, "       {}", d.trim());
        }
        if !s.needs.is_empty() {
            let _ = writeln!(o, "       needs: {}", s.needs.join(", "));
        }
        if let Some(w) = &s.when {
            let _ = writeln!(o, "       when: {w}");
        }
        for (k, v) in fields(s) {
            // A multi-line script keeps its lines, indented under the field.
            let _ = writeln!(o, "       {k}: {}", v.replace('\n', "\n         "));
        }
        if let Some(sub) = &s.sub {
            text_sub(&mut o, sub);
        }
    }
    gates_line(&mut o, plan);
    for_each_text(&mut o, plan);
    let _ = writeln!(o, "\nparallel groups:");
    for (g, ids) in plan.groups.iter().enumerate() {
        let _ = writeln!(o, "  {}: {}", g + 1, ids.join(", "));
    }
    let _ = writeln!(
        o,
        "critical path: {} ({})",
        plan.critical_path.join(" → "),
        human_secs(plan.critical_path_seconds)
    );
    if !plan.unestimated.is_empty() {
        let _ = writeln!(
            o,
            "without an estimate (counted as 0): {}",
            plan.unestimated.join(", ")
        );
    }
    let _ = writeln!(o, "{}", budget_line(plan));
    if let Some(l) = finish_line(plan) {
        let _ = writeln!(o, "{l}");
    }
    if let Some(l) = warning_line(plan) {
        let _ = writeln!(o, "{l}");
    }
    for m in &plan.milestones {
        let verdict = if m.fits { "fits" } else { "OVER" };
        let _ = writeln!(
            o,
            "milestone {}: RTO {}, estimate {} ({verdict})",
            m.name,
            human_secs(m.rto_seconds),
            human_secs(m.estimate_seconds)
        );
    }
    if let Some(l) = restore_point_line(plan) {
        let _ = writeln!(o, "{l}");
    }
    o
}

fn gates_line(o: &mut String, plan: &Plan) {
    if !plan.gates.is_empty() {
        let _ = writeln!(o, "\ngates (`--approve ID`): {}", plan.gates.join(", "));
    }
}

/// The "what it runs" cell: each field on a line; a script that spans lines is shown below
/// the table.
fn markdown_what(s: &PlanStep) -> String {
    fields(s)
        .into_iter()
        .map(|(k, v)| {
            if v.contains('\n') {
                format!("{k}: see [below](#{})", s.id)
            } else {
                format!("{k}: `{}`", md_code(&v))
            }
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// Fields whose value spans lines (scripts), as code blocks after the table: line breaks
/// matter in a script, and a table cell cannot keep them.
fn markdown_scripts(o: &mut String, plan: &Plan) {
    for s in &plan.steps {
        for (k, v) in fields(s).into_iter().filter(|(_, v)| v.contains('\n')) {
            let fence = "~".repeat(3 + v.matches('~').count().min(20));
            let _ = writeln!(
                o,
                "\n<a id=\"{id}\"></a>**`{id}`** `{k}`:\n\n{fence}sh\n{}\n{fence}",
                v.trim_end(),
                id = s.id
            );
        }
    }
}

/// The steps that are items of a `for_each` group (`GROUP[KEY]`), each with its group.
fn for_each_members(plan: &Plan) -> HashMap<&str, &str> {
    let ids: HashSet<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    let mut members = HashMap::new();
    for g in &plan.for_each {
        for key in &g.items {
            let id = format!("{}[{key}]", g.group);
            if let Some(id) = ids.get(id.as_str()) {
                members.insert(*id, g.group.as_str());
            }
        }
    }
    members
}

/// One step's node, the critical path in bold red and a gate as a hexagon.
fn dot_node(o: &mut String, s: &PlanStep, indent: &str) {
    let est = s.estimate.map_or_else(String::new, |e| format!("\\n~{e}"));
    let style = if s.on_critical_path {
        ", color=red, penwidth=2"
    } else {
        ""
    };
    let shape = if super::nested::is_gate(&s.type_name) {
        ", shape=hexagon"
    } else {
        ""
    };
    let _ = writeln!(
        o,
        "{indent}\"{id}\" [label=\"{id}\\n{t}{est}\"{style}{shape}];",
        id = dot_escape(&s.id),
        t = s.type_name
    );
}

/// A sub-runbook's steps as rows after its step's row (`3.1`, `3.2`, …).
fn markdown_sub(o: &mut String, n: usize, sub: &SubPlan) {
    for (k, c) in sub.steps.iter().enumerate() {
        let always = if c.always { " (always)" } else { "" };
        let _ = writeln!(
            o,
            "| {}.{} | {}↳ `{}`{always} | {} | {} | — | — | step of `{}` |",
            n + 1,
            k + 1,
            "&nbsp;&nbsp;".repeat(c.depth),
            md_cell(&c.id),
            md_cell(&c.type_name),
            md_cell(&c.needs.join(", ")),
            md_cell(&sub.file)
        );
    }
}

/// A sub-runbook's steps under its step, indented by depth.
fn text_sub(o: &mut String, sub: &SubPlan) {
    let _ = writeln!(o, "       runs the steps of {}:", sub.file);
    if let Some(p) = &sub.problem {
        let _ = writeln!(o, "         (not shown: {p})");
    }
    for c in &sub.steps {
        let pad = " ".repeat(7 + 2 * c.depth);
        let always = if c.always { ", always" } else { "" };
        let needs = if c.needs.is_empty() {
            String::new()
        } else {
            format!("; needs {}", c.needs.join(", "))
        };
        let _ = writeln!(o, "{pad}{} ({}{always}){needs}", c.id, c.type_name);
    }
}

/// Which value the report's achieved RPO will be the age of.
fn restore_point_line(plan: &Plan) -> Option<String> {
    let source = plan.restore_point.as_ref()?;
    let against = plan
        .rpo_seconds
        .map(|r| format!(", against the RPO of {}", human_secs(r)))
        .unwrap_or_default();
    Some(format!(
        "restore point: {source} (the report's achieved RPO is its age at the run's start{against})"
    ))
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Text for inside a Markdown code span in a table: no backtick can end the span early.
fn md_code(s: &str) -> String {
    md_cell(s).replace('`', "'")
}

/// Runbook text (a description) in Markdown: no HTML (`<!--` would hide the rest of a
/// pull-request comment, a `<details>` or `<img>` would change it), Markdown itself kept (a
/// description may use `code` spans).
pub(crate) fn md_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The params (secrets `***`) and target locks of a Markdown plan.
fn markdown_inputs(o: &mut String, plan: &Plan) {
    if !plan.params.is_empty() || !plan.secrets.is_empty() {
        let _ = writeln!(
            o,
            "**Params:** {}",
            plan.params
                .iter()
                .map(|(k, v)| format!("`{k}={}`", md_code(&inline(v))))
                .chain(plan.secrets.iter().map(|k| format!("`{k}=***`")))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(o);
    }
    if !plan.locks.is_empty() {
        let locks: Vec<String> = plan
            .locks
            .iter()
            .map(|l| format!("`{}`", md_code(l)))
            .collect();
        let _ = writeln!(o, "**Locks:** {}\n", locks.join(", "));
    }
    for s in &plan.stores {
        let _ = writeln!(o, "**Store:** `{}`\n", md_code(s));
    }
    if !plan.notify.is_empty() {
        let notify: Vec<String> = plan.notify.iter().map(|n| format!("`{n}`")).collect();
        let _ = writeln!(o, "**Notify:** {}\n", notify.join(", "));
    }
}

/// Markdown for a pull request or a wiki.
pub fn markdown(plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "### Plan: `{}`\n", plan.runbook);
    if let Some(d) = &plan.description {
        let _ = writeln!(o, "{}\n", md_text(d.trim()));
    }
    let verdict = match plan.rto_margin_seconds {
        Some(m) if m >= 0.0 => "✅ fits",
        Some(_) => "❌ over",
        None => "no RTO",
    };
    let _ = writeln!(
        o,
        "| file | steps | critical path | RTO | margin | |\n|---|---|---|---|---|---|"
    );
    let _ = writeln!(
        o,
        "| `{}` | {} | {} | {} | {} | {verdict} |\n",
        md_code(&plan.file),
        plan.steps.len(),
        human_secs(plan.critical_path_seconds),
        opt_secs(plan.rto_seconds),
        opt_secs(plan.rto_margin_seconds),
    );
    markdown_inputs(&mut o, plan);
    let _ = writeln!(
        o,
        "| # | step | type | needs | estimate | group | what it runs |\n|---|---|---|---|---|---|---|"
    );
    for (n, s) in plan.steps.iter().enumerate() {
        let what = markdown_what(s);
        let mut id = format!("`{}`", s.id);
        if s.on_critical_path {
            id = format!("**{id}**");
        }
        if s.always {
            id.push_str(" (always)");
        }
        let _ = writeln!(
            o,
            "| {} | {id} | {} | {} | {} | {} | {what} |",
            n + 1,
            s.type_name,
            s.needs.join(", "),
            estimate_tag(plan, s).map_or_else(
                || "—".into(),
                |e| e.trim_start_matches("estimate ").to_owned()
            ),
            s.group + 1,
        );
        if let Some(sub) = &s.sub {
            markdown_sub(&mut o, n, sub);
        }
    }
    markdown_scripts(&mut o, plan);
    markdown_for_each(&mut o, plan);
    if !plan.gates.is_empty() {
        let gates: Vec<String> = plan.gates.iter().map(|g| format!("`{g}`")).collect();
        let _ = writeln!(o, "\n**Gates** (`--approve ID`): {}", gates.join(", "));
    }
    let _ = writeln!(
        o,
        "\n**Critical path** (bold above): {} — {}",
        plan.critical_path
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" → "),
        human_secs(plan.critical_path_seconds)
    );
    if !plan.unestimated.is_empty() {
        let _ = writeln!(
            o,
            "\n⚠️ Without an estimate (counted as 0): {}",
            plan.unestimated
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    markdown_budget(&mut o, plan);
    o
}

/// The `for_each` groups of a Markdown plan: items and the slowest item by estimate.
fn markdown_for_each(o: &mut String, plan: &Plan) {
    if plan.for_each.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\n**`for_each` groups**\n\n| group | items | slowest item (chain) |\n|---|---|---|"
    );
    for g in &plan.for_each {
        let more = g.items.len().saturating_sub(SHOWN_KEYS);
        let mut keys: Vec<String> = g
            .items
            .iter()
            .take(SHOWN_KEYS)
            .map(|k| format!("`{k}`"))
            .collect();
        if more > 0 {
            keys.push(format!("… {more} more"));
        }
        let slowest = match (&g.slowest_item, g.slowest_item_seconds) {
            (Some(item), Some(secs)) => format!("`{item}` ({})", human_secs(secs)),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            o,
            "| `{}` | {}: {} | {slowest} |",
            g.group,
            g.items.len(),
            keys.join(", ")
        );
    }
}

/// The budget, milestones, predicted finish and warning of a Markdown plan.
fn markdown_budget(o: &mut String, plan: &Plan) {
    let _ = writeln!(o, "\n{}", budget_line(plan));
    for m in &plan.milestones {
        let _ = writeln!(
            o,
            "- milestone `{}`: RTO {}, estimate {} {}",
            m.name,
            human_secs(m.rto_seconds),
            human_secs(m.estimate_seconds),
            if m.fits { "✅" } else { "❌" }
        );
    }
    if let Some(l) = restore_point_line(plan) {
        let _ = writeln!(o, "\n{l}");
    }
    if let Some(l) = finish_line(plan) {
        let _ = writeln!(o, "\n{l}");
    }
    if let Some(l) = warning_line(plan) {
        let _ = writeln!(o, "\n> ⚠️ **{l}**");
    }
}

/// The JSON Schema of the JSON plan document (`schemas/plan.schema.json`).
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(Plan).to_value();
    if let Some(props) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        props.insert(
            "format_version".into(),
            serde_json::json!({ "const": PLAN_JSON_VERSION, "description": "Version of this document's format." }),
        );
    }
    serde_json::to_string_pretty(&schema).expect("a JSON value serializes") + "\n"
}

/// The stable JSON document.
pub fn json(plan: &Plan) -> String {
    let mut doc = serde_json::to_value(plan).unwrap_or(Json::Null);
    if let Json::Object(map) = &mut doc {
        map.insert("format_version".into(), Json::from(PLAN_JSON_VERSION));
    }
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

fn critical_edges(plan: &Plan) -> Vec<(&str, &str)> {
    plan.critical_path
        .windows(2)
        .map(|w| (w[0].as_str(), w[1].as_str()))
        .collect()
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT, the critical path in bold red.
pub fn dot(plan: &Plan) -> String {
    let crit = critical_edges(plan);
    let mut o = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n",
        dot_escape(&plan.runbook)
    );
    let grouped = for_each_members(plan);
    for s in plan
        .steps
        .iter()
        .filter(|s| !grouped.contains_key(s.id.as_str()))
    {
        dot_node(&mut o, s, "  ");
        if let Some(sub) = &s.sub {
            dot_cluster(&mut o, s, sub);
        }
    }
    for g in &plan.for_each {
        let _ = writeln!(
            o,
            "  subgraph \"cluster_for_each_{id}\" {{\n    label=\"{id}: for_each, {n} items\";\n    style=dotted;",
            id = dot_escape(&g.group),
            n = g.items.len()
        );
        for s in plan
            .steps
            .iter()
            .filter(|s| grouped.get(s.id.as_str()) == Some(&g.group.as_str()))
        {
            dot_node(&mut o, s, "    ");
        }
        o.push_str("  }\n");
        for s in plan
            .steps
            .iter()
            .filter(|s| grouped.get(s.id.as_str()) == Some(&g.group.as_str()))
        {
            if let Some(sub) = &s.sub {
                dot_cluster(&mut o, s, sub);
            }
        }
    }
    for s in &plan.steps {
        for n in &s.needs {
            let style = if crit.contains(&(n.as_str(), s.id.as_str())) {
                " [color=red, penwidth=2]"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "  \"{}\" -> \"{}\"{style};",
                dot_escape(n),
                dot_escape(&s.id)
            );
        }
    }
    o.push_str("}\n");
    o
}

/// A sub-runbook's steps as a cluster beside its step, joined to it by a dashed edge.
fn dot_cluster(o: &mut String, s: &PlanStep, sub: &SubPlan) {
    let _ = writeln!(
        o,
        "  subgraph \"cluster_{id}\" {{\n    label=\"{id}: {file}\";\n    style=dashed;",
        id = dot_escape(&s.id),
        file = dot_escape(&sub.file)
    );
    for c in &sub.steps {
        let shape = if super::nested::is_gate(&c.type_name) {
            ", shape=hexagon"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "    \"{id}\" [label=\"{id}\\n{t}\"{shape}];",
            id = dot_escape(&c.id),
            t = dot_escape(&c.type_name)
        );
    }
    o.push_str("  }\n");
    for c in &sub.steps {
        if c.needs.is_empty() {
            let _ = writeln!(
                o,
                "  \"{}\" -> \"{}\" [style=dashed];",
                dot_escape(&s.id),
                dot_escape(&c.id)
            );
        }
        for n in &c.needs {
            let _ = writeln!(o, "  \"{}\" -> \"{}\";", dot_escape(n), dot_escape(&c.id));
        }
    }
}

/// A Mermaid node id: letters, digits and `_` only (`dump[shop]` → `dump_shop_`, `a-b` → `a_b`,
/// `sub/step` → `sub__step`), the step's own id staying in the label.
fn mermaid_id(id: &str) -> String {
    id.replace('/', "__")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Mermaid flowchart, the critical path highlighted.
pub fn mermaid(plan: &Plan) -> String {
    let crit = critical_edges(plan);
    let mut o = String::from("flowchart TD\n");
    for s in &plan.steps {
        let est = s
            .estimate
            .map_or_else(String::new, |e| format!("<br/>~{e}"));
        let _ = writeln!(
            o,
            "  {}[\"{}<br/><small>{}</small>{est}\"]",
            mermaid_id(&s.id),
            s.id,
            s.type_name
        );
    }
    let grouped = for_each_members(plan);
    for g in &plan.for_each {
        let _ = writeln!(
            o,
            "  subgraph for_each_{}[\"{}: for_each, {} items\"]",
            mermaid_id(&g.group),
            g.group,
            g.items.len()
        );
        for s in plan
            .steps
            .iter()
            .filter(|s| grouped.get(s.id.as_str()) == Some(&g.group.as_str()))
        {
            let _ = writeln!(o, "    {}", mermaid_id(&s.id));
        }
        o.push_str("  end\n");
    }
    let mut edge = 0;
    for s in &plan.steps {
        let Some(sub) = &s.sub else { continue };
        let _ = writeln!(
            o,
            "  subgraph {}_sub[\"{}: {}\"]",
            mermaid_id(&s.id),
            s.id,
            sub.file
        );
        for c in &sub.steps {
            let _ = writeln!(
                o,
                "    {}[\"{}<br/><small>{}</small>\"]",
                mermaid_id(&c.id),
                c.id,
                c.type_name
            );
        }
        o.push_str("  end\n");
        for c in &sub.steps {
            if c.needs.is_empty() {
                let _ = writeln!(o, "  {} -.-> {}", mermaid_id(&s.id), mermaid_id(&c.id));
                edge += 1;
            }
            for n in &c.needs {
                let _ = writeln!(o, "  {} --> {}", mermaid_id(n), mermaid_id(&c.id));
                edge += 1;
            }
        }
    }
    let mut red = Vec::new();
    for s in &plan.steps {
        for n in &s.needs {
            let _ = writeln!(o, "  {} --> {}", mermaid_id(n), mermaid_id(&s.id));
            if crit.contains(&(n.as_str(), s.id.as_str())) {
                red.push(edge.to_string());
            }
            edge += 1;
        }
    }
    o.push_str("  classDef critical stroke:#d00,stroke-width:3px\n");
    let crit_nodes: Vec<String> = plan.critical_path.iter().map(|s| mermaid_id(s)).collect();
    if !crit_nodes.is_empty() {
        let _ = writeln!(o, "  class {} critical", crit_nodes.join(","));
    }
    if !red.is_empty() {
        let _ = writeln!(
            o,
            "  linkStyle {} stroke:#d00,stroke-width:3px",
            red.join(",")
        );
    }
    o
}
