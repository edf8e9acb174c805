//! Entry points for the fuzz targets in `fuzz/` and for the stable tests that replay their
//! corpus (`tests/properties/fuzz_corpus.rs`): each takes arbitrary bytes and drives the real code the
//! way `rb` does. None of them may panic, hang or exhaust memory, whatever the input.

use crate::plan::build;
use crate::plan::{diff, render};
use crate::runbook::diagnostic::Diagnostic;
use crate::runbook::load;
use crate::runbook::model::{ParamType, Runbook};
use crate::runbook::params::Overrides;
use crate::runbook::validate;
use crate::template::{self, Placeholder};
use crate::template::{Context, Mode};
use chrono::{DateTime, Utc};
use minijinja::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The secret value the fuzzed templates run with; no output may show it unmasked.
pub const SECRET: &str = "fuzz-s3cr3t-value";

/// How far a fuzzed runbook got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not UTF-8, not YAML, or not a mapping: no model.
    Unreadable,
    /// Decoded, but the loader or validator reported problems.
    Invalid,
    /// Valid, but params, vars or step templates did not render.
    PlanFailed,
    /// Planned, and the plan rendered in every format.
    Planned,
}

fn fixed_now() -> DateTime<Utc> {
    template::parse_time("2026-01-31T02:00:00Z").expect("a fixed time")
}

/// Bytes → load → validate → plan → every plan format (text, markdown, json, dot, mermaid,
/// and a diff against itself). Every diagnostic is rendered as `rb` prints it. Required
/// params get a value of their type, so runbooks that need them still reach the planner.
pub fn load_and_plan(data: &[u8]) -> Stage {
    let path = Path::new("fuzz.yaml");
    let loaded = load::load_bytes(path, data.to_vec());
    let mut diags = loaded.diagnostics;
    let Some(mut runbook) = loaded.runbook else {
        show(path, loaded.source.as_ref(), &diags);
        return Stage::Unreadable;
    };
    let mut dag = validate::validate(&runbook, &mut diags);
    if !diags.is_empty() {
        show(path, Some(&runbook.source), &diags);
        return Stage::Invalid;
    }
    let overrides = required_params(&runbook);
    let secrets = runbook
        .secrets
        .iter()
        .map(|(k, _)| (k.clone(), SECRET.to_owned()))
        .collect::<BTreeMap<_, _>>();
    let plan = match build::resolve_and_build(
        &mut runbook,
        &mut dag,
        &overrides,
        fixed_now(),
        Mode::Plan,
        "<run.id>",
        secrets.clone(),
    ) {
        Ok((_, plan)) => plan,
        Err(d) => {
            show(path, Some(&runbook.source), &d);
            return Stage::PlanFailed;
        }
    };
    let outputs = [
        render::text(&plan),
        render::markdown(&plan),
        render::json(&plan),
        render::dot(&plan),
        render::mermaid(&plan),
        diff::text(&diff::diff(&plan, &plan)),
        diff::markdown(&diff::diff(&plan, &plan)),
    ];
    for out in &outputs {
        assert!(!out.contains(SECRET), "a plan shows a secret value:\n{out}");
    }
    // `rb run` renders each step again with real values: no panic there either.
    if let Ok((ctx, _)) = build::resolve_and_build(
        &mut runbook,
        &mut dag,
        &overrides,
        fixed_now(),
        Mode::Run,
        "fuzz-run",
        secrets,
    ) {
        let env = template::environment();
        let value = ctx.value(Placeholder::value("steps"));
        for step in &runbook.steps {
            let _ = build::render_step(step, &env, &value, &ctx.masker());
        }
    }
    Stage::Planned
}

/// A value of its type for every required param (`-p name=value` as an operator would give).
fn required_params(runbook: &Runbook) -> Overrides {
    let mut o = Overrides::default();
    for (name, spec) in runbook.params.iter().filter(|(_, s)| s.required) {
        let value = match spec.param_type {
            ParamType::String => "value",
            ParamType::Path => "/tmp/rb-fuzz",
            ParamType::Int => "3",
            ParamType::Bool => "true",
            ParamType::Duration => "90s",
            ParamType::List => "a,b",
        };
        o.pairs.push((name.clone(), value.to_owned()));
    }
    o
}

/// Render diagnostics as `rb` prints them (miette, with source snippets) and discard them.
fn show(path: &Path, source: Option<&std::sync::Arc<String>>, diags: &[Diagnostic]) {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    for d in diags {
        let fd = crate::cli::diagnostics::file_diagnostic(path, source, d);
        let mut out = String::new();
        let _ = handler.render_report(&mut out, &fd);
    }
}

/// Bytes (lossy UTF-8) → a template rendered with rb's environment (filters, strict
/// undefined, fuel) against a fixed context, as a plan (placeholders, secrets `***`) and as a
/// run (step outputs and the secret's value, output masked); also read as a `when`
/// expression and for its references. Returns the run rendering, masked, or the error.
pub fn render_template(data: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(data);
    let env = template::environment();
    let _ = template::references(&env, &text);
    let _ = template::expression_references(&env, &text);
    let mut ctx = fixed_context(Mode::Plan);
    let plan_value = ctx.value(Placeholder::value("steps"));
    let _ = env.render_str(&text, plan_value.clone());
    let _ = env
        .compile_expression(&text)
        .and_then(|e| e.eval(plan_value));
    ctx.mode = Mode::Run;
    ctx.secrets = BTreeMap::from([("db_password".to_owned(), SECRET.to_owned())]);
    let masker = ctx.masker();
    let steps = Value::from(minijinja::value::Serde(serde_json::json!({
        "dump": {"outputs": {"file": "/backups/app-20260131.dump", "bytes": 1234, "sha256": "ab12"}},
        "check": {"outputs": {"stdout": "ok\n", "exit_code": 0}},
    })));
    let run_value = ctx.value(steps);
    let _ = env
        .compile_expression(&text)
        .and_then(|e| e.eval(run_value.clone()));
    let out = env
        .render_str(&text, run_value)
        .map(|s| masker.mask(&s))
        .map_err(|e| masker.mask(&e.to_string()));
    let shown = out.as_ref().unwrap_or_else(|e| e);
    assert!(
        !shown.contains(SECRET),
        "a masked rendering shows the secret"
    );
    out
}

/// Params, vars and secrets of a small backup runbook.
fn fixed_context(mode: Mode) -> Context {
    Context {
        params: BTreeMap::from([
            ("database".to_owned(), serde_json::json!("app")),
            ("keep".to_owned(), serde_json::json!(7)),
            ("verify".to_owned(), serde_json::json!(true)),
            ("backup_dir".to_owned(), serde_json::json!("/backups")),
        ]),
        secrets: BTreeMap::from([("db_password".to_owned(), String::new())]),
        vars: vec![
            ("stamp".to_owned(), "20260131_020000".to_owned()),
            ("file".to_owned(), "/backups/app-20260131.dump".to_owned()),
        ],
        now: fixed_now(),
        run_id: "fuzz-run".to_owned(),
        run_name: "fuzz".to_owned(),
        mode,
        env_names: std::collections::BTreeSet::from(["HOME".to_owned()]),
        secret_env: std::collections::BTreeSet::new(),
    }
}

/// Journal bytes → events, damage → a report of the run. None may panic, whatever the
/// journal holds (garbage, unknown events, events out of order, torn lines). Returns how
/// many events were read.
pub fn read_journal(data: &[u8]) -> usize {
    let contents = crate::journal::parse(data);
    let _ = crate::report::model::build(&contents.events);
    contents.events.len()
}

/// A runbook declaring a param of every type, for [`read_params`].
const PARAMS_RUNBOOK: &str = "version: 1\nname: fuzz\nparams:\n  s: { type: string, default: a }\n  i: { type: int, default: 1 }\n  b: { type: bool, default: true }\n  d: { type: duration, default: 1s }\n  p: { type: path, default: /x }\nsteps:\n  - { id: a, type: exec, command: [true] }\n";

/// Bytes → a params file, `-p` pairs (one per line) and a secret file's value, resolved
/// against params of every type. None may panic. Returns how many params resolved.
pub fn read_params(data: &[u8]) -> usize {
    let text = String::from_utf8_lossy(data);
    let mut given = Overrides::default();
    let _ = given.add_text("fuzz-params.yaml", &text);
    for line in text.lines().take(64) {
        let _ = given.add_pair(line);
    }
    let _ = crate::exec::secrets::decode(data.to_vec());
    let loaded = load::load_str(Path::new("fuzz.yaml"), PARAMS_RUNBOOK.to_owned());
    let runbook = loaded.runbook.expect("the fixed runbook loads");
    let mut diags = Vec::new();
    crate::runbook::params::resolve(&runbook, &given, &mut diags).len()
}
