//! Building a plan: params and vars resolved, every step rendered, groups, critical path and
//! the RTO budget. Used by `rb plan` (runtime values as placeholders, secrets as `***`) and by
//! `rb run` (which renders each step again with real values right before it starts).

use super::graph::Dag;
use crate::duration::Dur;
use crate::runbook::diagnostic::Diagnostic;
use crate::runbook::model::{Runbook, Step};
use crate::runbook::node::{Node, NodeKind};
use crate::runbook::notify::Notify;
use crate::runbook::params::{self, Overrides};
use crate::steps::StepKind;
use crate::template::{self, Masker, Placeholder};
use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{Environment, Value};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// What a rendering context is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `rb plan`: secrets are `***`, step outputs are placeholders.
    Plan,
    /// `rb run`: real values.
    Run,
}

/// The values templates see, except step outputs.
#[derive(Debug, Clone)]
pub struct Context {
    pub params: BTreeMap<String, Json>,
    pub secrets: BTreeMap<String, String>,
    pub vars: Vec<(String, String)>,
    pub now: DateTime<Utc>,
    pub run_id: String,
    pub run_name: String,
    pub mode: Mode,
    /// The environment variables templates may read (`env.NAME`): those the runbook names,
    /// nothing else, so `{{ env }}` cannot dump the whole environment.
    pub env_names: BTreeSet<String>,
    /// Environment variables secrets are read from: `***` in a plan.
    pub secret_env: BTreeSet<String>,
}

impl Context {
    /// The base context (no vars yet).
    pub fn new(
        runbook: &Runbook,
        params: BTreeMap<String, Json>,
        secrets: BTreeMap<String, String>,
        now: DateTime<Utc>,
        run_id: String,
        mode: Mode,
    ) -> Self {
        Self {
            params,
            secrets,
            vars: Vec::new(),
            now,
            run_id,
            run_name: runbook.name.clone(),
            mode,
            env_names: env_names(runbook),
            secret_env: runbook
                .secrets
                .iter()
                .filter_map(|(_, s)| s.env.clone())
                .collect(),
        }
    }

    /// A masker for every secret value.
    pub fn masker(&self) -> Masker {
        Masker::new(self.secrets.values().cloned())
    }

    fn secrets_value(&self) -> Value {
        match self.mode {
            Mode::Plan => Value::from(minijinja::value::Serde(
                self.secrets
                    .keys()
                    .map(|k| (k.clone(), "***"))
                    .collect::<BTreeMap<_, _>>(),
            )),
            Mode::Run => Value::from(minijinja::value::Serde(&self.secrets)),
        }
    }

    /// The minijinja context, with `steps` as given.
    pub fn value(&self, steps: Value) -> Value {
        let vars: BTreeMap<&str, &str> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let env: BTreeMap<&str, String> = self
            .env_names
            .iter()
            .filter_map(|k| {
                let v = std::env::var(k).ok()?;
                let shown = self.mode == Mode::Plan && self.secret_env.contains(k);
                Some((k.as_str(), if shown { "***".to_owned() } else { v }))
            })
            .collect();
        minijinja::context! {
            params => Value::from(minijinja::value::Serde(&self.params)),
            secrets => self.secrets_value(),
            vars => Value::from(minijinja::value::Serde(vars)),
            steps => steps,
            run => minijinja::context! { id => self.run_id.clone(), name => self.run_name.clone() },
            now => self.now.to_rfc3339_opts(SecondsFormat::Secs, true),
            env => Value::from(minijinja::value::Serde(env)),
        }
    }

    /// Render the vars in order, each seeing the earlier ones.
    pub fn render_vars(
        &mut self,
        runbook: &Runbook,
        env: &Environment<'_>,
    ) -> Result<(), Diagnostic> {
        self.vars.clear();
        for (name, text) in &runbook.vars {
            let span = runbook
                .root
                .get("vars")
                .and_then(|v| v.get(name))
                .map_or(runbook.root.span, |n| n.span);
            let ctx = self.value(Value::UNDEFINED);
            let out = template::render(env, text, ctx)
                .map_err(|e| render_error(&e, span, &format!("var `{name}`"), &self.masker()))?;
            self.vars.push((name.clone(), out));
        }
        Ok(())
    }
}

/// The `NAME`s of every `env.NAME` the runbook's templates and expressions read.
fn env_names(runbook: &Runbook) -> BTreeSet<String> {
    let env = template::environment();
    let mut names = BTreeSet::new();
    runbook.root.for_each_string(&mut |_, text| {
        let refs = template::references(&env, text)
            .unwrap_or_default()
            .into_iter()
            .chain(template::expression_references(&env, text).unwrap_or_default());
        for r in refs {
            if let Some(name) = r.strip_prefix("env.") {
                names.insert(name.split('.').next().unwrap_or(name).to_owned());
            }
        }
    });
    names
}

/// A rendering failure as a diagnostic, secrets masked.
pub fn render_error(
    e: &minijinja::Error,
    span: miette::SourceSpan,
    what: &str,
    masker: &Masker,
) -> Diagnostic {
    let detail = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_owned);
    Diagnostic::new(
        "rb::render",
        masker.mask(&format!("cannot render {what}: {detail}")),
    )
    .label(span, "here")
}

/// Render every string of a node tree. A rendered string stays the exact text (`007` is not
/// `7`); a field that wants a number or boolean reads it as one (`level: "{{ params.level }}"`).
pub fn render_node(
    node: &Node,
    env: &Environment<'_>,
    ctx: &Value,
) -> Result<Node, (minijinja::Error, miette::SourceSpan)> {
    let kind = match &node.kind {
        NodeKind::Str(s) if s.contains("{{") || s.contains("{%") => {
            NodeKind::Rendered(template::render(env, s, ctx.clone()).map_err(|e| (e, node.span))?)
        }
        NodeKind::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for n in items {
                let r = render_node(n, env, ctx)?;
                // `omit` in a list leaves the item out.
                if !matches!(&r.kind, NodeKind::Rendered(s) if s == template::OMIT) {
                    out.push(r);
                }
            }
            NodeKind::Seq(out)
        }
        NodeKind::Map(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                match &v.kind {
                    NodeKind::Str(s) if s.contains("{{") || s.contains("{%") => {
                        match template::render_field(env, s, ctx.clone())
                            .map_err(|e| (e, v.span))?
                        {
                            template::Field::Omit => {}
                            template::Field::Text(t) => {
                                out.push((k.clone(), Node::new(NodeKind::Rendered(t), v.span)));
                            }
                            template::Field::Native(json) => {
                                out.push((k.clone(), Node::from_json(&json, v.span)));
                            }
                        }
                    }
                    _ => out.push((k.clone(), render_node(v, env, ctx)?)),
                }
            }
            NodeKind::Map(out)
        }
        other => other.clone(),
    };
    Ok(Node::new(kind, node.span))
}

/// One step as a plan shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlanStep {
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub description: Option<String>,
    pub needs: Vec<String>,
    /// The rendered configuration (secrets `***`, runtime values as placeholders).
    pub config: Json,
    pub when: Option<String>,
    pub timeout: Option<Dur>,
    pub retries: u32,
    pub always: bool,
    pub continue_on_error: bool,
    pub estimate: Option<Dur>,
    /// The median duration of this step over recent successful runs, when there are any;
    /// it replaces `estimate` in the critical path and the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryEstimate>,
    /// Parallel group (0-based): steps of one group can run together.
    pub group: usize,
    pub on_critical_path: bool,
    /// Hash of the rendered definition; resume re-runs a step whose fingerprint changed.
    pub fingerprint: String,
    /// For a `runbook` step: the steps of the sub-runbook (ids `parent/child`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<super::nested::SubPlan>,
}

/// An estimate taken from past runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct HistoryEstimate {
    /// Median duration of the step's successful finishes.
    pub median_seconds: f64,
    /// How many runs the median is over.
    pub runs: usize,
}

/// A milestone's budget.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MilestoneBudget {
    pub name: String,
    pub rto_seconds: f64,
    pub estimate_seconds: f64,
    pub fits: bool,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Plan {
    pub runbook: String,
    pub file: String,
    pub description: Option<String>,
    pub now: String,
    pub params: BTreeMap<String, Json>,
    pub secrets: Vec<String>,
    pub vars: BTreeMap<String, String>,
    /// Required params without a value, shown as placeholders (`<params.NAME>`); a run needs
    /// them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_params: Vec<String>,
    /// Target locks the run takes before its first step (rendered `locks:`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<String>,
    /// Webhooks told about the run: `***` (the URL is a secret), the secret's name and the
    /// events, e.g. `*** (ops_webhook) on failure, over_rto, gate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// Steps in run order.
    pub steps: Vec<PlanStep>,
    /// Every gate the run can ask for, sub-runbooks' included (`parent/child`): the ids
    /// `--approve` takes.
    pub gates: Vec<String>,
    /// Step ids of each parallel group.
    pub groups: Vec<Vec<String>>,
    pub critical_path: Vec<String>,
    pub critical_path_seconds: f64,
    /// Steps without an `estimate` (counted as zero).
    pub unestimated: Vec<String>,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    /// RTO minus the critical-path estimate; negative when the plan does not fit.
    pub rto_margin_seconds: Option<f64>,
    pub milestones: Vec<MilestoneBudget>,
    /// For recovery runbooks: where the time of the restored data comes from
    /// (`objectives.restore_point`); the report's achieved RPO is its age at the run's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<String>,
    /// `now` plus the critical path, when estimates come from history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_finish: Option<String>,
}

/// The placeholder-rendered step, decoded again, for plans and dry runs.
pub fn render_step(
    step: &Step,
    env: &Environment<'_>,
    ctx: &Value,
    masker: &Masker,
) -> Result<(Json, Option<StepKind>), Diagnostic> {
    let rendered = render_node(&step.config_node, env, ctx)
        .map_err(|(e, span)| render_error(&e, span, &format!("step `{}`", step.id()), masker))?;
    let kind = StepKind::decode(&step.common.type_name, &rendered).map_err(|e| {
        Diagnostic::new(
            "rb::render",
            masker.mask(&format!(
                "step `{}` after rendering: {}",
                step.id(),
                e.message
            )),
        )
        .label(e.span.unwrap_or(step.node.span), "here")
    })?;
    let config = mask_json(serde_json::to_value(&kind).unwrap_or(Json::Null), masker);
    Ok((config, Some(kind)))
}

/// Mask every string of a JSON value.
pub fn mask_json(v: Json, masker: &Masker) -> Json {
    if masker.is_empty() {
        return v;
    }
    match v {
        Json::String(s) => Json::String(masker.mask(&s)),
        Json::Array(a) => Json::Array(a.into_iter().map(|x| mask_json(x, masker)).collect()),
        Json::Object(o) => Json::Object(
            o.into_iter()
                .map(|(k, x)| (k, mask_json(x, masker)))
                .collect(),
        ),
        other => other,
    }
}

/// The fingerprint of a rendered step definition.
pub fn fingerprint(step: &Step, config: &Json) -> String {
    let doc = serde_json::json!({
        "type": step.common.type_name,
        "config": config,
        "when": step.common.when,
        "always": step.common.always,
        "continue_on_error": step.common.continue_on_error,
    });
    let digest = Sha256::digest(doc.to_string().as_bytes());
    hex::encode(&digest[..8])
}

/// Resolve the params (defaults, then `overrides`), render the vars and build the plan of a
/// validated runbook: what `rb plan` and `rb run` do between validating and running. In
/// [`Mode::Plan`] the secrets are taken as declared (values unknown, shown as `***`).
pub fn resolve_and_build(
    runbook: &Runbook,
    dag: &Dag,
    overrides: &Overrides,
    now: DateTime<Utc>,
    mode: Mode,
    run_id: &str,
    secrets: BTreeMap<String, String>,
) -> Result<(Context, Plan), Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut values = params::resolve(runbook, overrides, &mut diags);
    // A plan for review (a pull request) need not have every required value: each missing
    // one is a placeholder, as a step output is. `rb run` still refuses.
    let mut missing = Vec::new();
    if mode == Mode::Plan {
        diags.retain(|d| {
            let Some(name) = params::missing_param(d) else {
                return true;
            };
            values.insert(name.clone(), Json::String(format!("<params.{name}>")));
            missing.push(name);
            false
        });
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let secrets = if mode == Mode::Plan {
        runbook
            .secrets
            .iter()
            .map(|(k, _)| (k.clone(), String::new()))
            .collect()
    } else {
        secrets
    };
    let mut ctx = Context::new(runbook, values, secrets, now, run_id.to_owned(), mode);
    ctx.render_vars(runbook, &template::environment())
        .map_err(|d| vec![d])?;
    let mut plan = build(runbook, dag, &ctx)?;
    plan.missing_params = missing;
    Ok((ctx, plan))
}

/// Build the plan of a validated runbook.
pub fn build(runbook: &Runbook, dag: &Dag, ctx: &Context) -> Result<Plan, Vec<Diagnostic>> {
    let env = template::environment();
    let masker = ctx.masker();
    let value = ctx.value(Placeholder::value("steps"));
    let weights: Vec<f64> = runbook
        .steps
        .iter()
        .map(|s| s.common.estimate.map_or(0.0, Dur::secs))
        .collect();
    let (critical, critical_secs) = dag.critical_path(&weights);
    let groups = dag.groups();
    let mut group_of = vec![0; runbook.steps.len()];
    for (g, members) in groups.iter().enumerate() {
        for &i in members {
            group_of[i] = g;
        }
    }
    let mut errors = Vec::new();
    let mut steps = Vec::new();
    for i in dag.order() {
        let step = &runbook.steps[i];
        let Ok((config, kind)) =
            render_step(step, &env, &value, &masker).map_err(|d| errors.push(d))
        else {
            continue;
        };
        let fingerprint = fingerprint(step, &config);
        let config = crate::steps::transport::annotate(config, kind.as_ref(), &runbook.hosts);
        steps.push(PlanStep {
            id: step.id().to_owned(),
            type_name: step.common.type_name.clone(),
            description: step.common.description.clone(),
            needs: dag.needs[i]
                .iter()
                .map(|&j| runbook.steps[j].id().to_owned())
                .collect(),
            fingerprint,
            config,
            when: step.common.when.clone(),
            timeout: step.common.timeout,
            retries: step.common.retries.as_ref().map_or(0, |r| r.attempts),
            always: step.common.always,
            continue_on_error: step.common.continue_on_error,
            estimate: step.common.estimate,
            history: None,
            group: group_of[i],
            on_critical_path: critical.contains(&i),
            sub: None,
        });
    }
    let locks = render_locks(runbook, &env, ctx).unwrap_or_else(|d| {
        errors.push(d);
        Vec::new()
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    let ids = |v: &[usize]| {
        v.iter()
            .map(|&i| runbook.steps[i].id().to_owned())
            .collect::<Vec<_>>()
    };
    let rto = runbook.objectives.rto.map(Dur::secs);
    let milestones = milestone_budgets(runbook, dag, &weights);
    Ok(Plan {
        runbook: runbook.name.clone(),
        file: runbook.path.display().to_string(),
        description: runbook.description.clone(),
        now: ctx.now.to_rfc3339_opts(SecondsFormat::Secs, true),
        params: ctx.params.clone(),
        secrets: ctx.secrets.keys().cloned().collect(),
        vars: ctx
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), masker.mask(v)))
            .collect(),
        locks,
        notify: runbook.notify.iter().map(Notify::planned).collect(),
        missing_params: Vec::new(),
        gates: super::nested::attach(&mut steps, &runbook.base_dir()),
        groups: groups.iter().map(|g| ids(g)).collect(),
        critical_path: ids(&critical),
        critical_path_seconds: critical_secs,
        unestimated: runbook
            .steps
            .iter()
            .filter(|s| s.common.estimate.is_none())
            .map(|s| s.id().to_owned())
            .collect(),
        rto_seconds: rto,
        rpo_seconds: runbook.objectives.rpo.map(Dur::secs),
        restore_point: runbook
            .objectives
            .restore_point
            .as_ref()
            .map(crate::runbook::model::RestorePoint::describe),
        rto_margin_seconds: rto.map(|r| r - critical_secs),
        milestones,
        steps,
        predicted_finish: None,
    })
}

/// The runbook's `locks:` rendered (no step outputs: they are taken before the first step),
/// sorted and without duplicates, which is also the order they are taken in.
fn render_locks(
    runbook: &Runbook,
    env: &Environment<'_>,
    ctx: &Context,
) -> Result<Vec<String>, Diagnostic> {
    let nodes = runbook
        .root
        .get("locks")
        .and_then(|l| l.as_seq())
        .unwrap_or_default();
    let value = ctx.value(Value::UNDEFINED);
    let mut out = Vec::new();
    for (text, node) in runbook.locks.iter().zip(nodes) {
        let name = template::render(env, text, value.clone())
            .map_err(|e| render_error(&e, node.span, "a lock name", &ctx.masker()))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(Diagnostic::new(
                "rb::render",
                format!("the lock name `{text}` renders empty"),
            )
            .label(node.span, "here"));
        }
        out.push(name.to_owned());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Use the median durations of past runs (step id → estimate) instead of the `estimate`s:
/// critical path, budget, milestones and the predicted finish are computed again. Steps
/// without history keep their `estimate`. Nothing changes when `history` is empty.
pub fn apply_history(
    plan: &mut Plan,
    runbook: &Runbook,
    dag: &Dag,
    history: &BTreeMap<String, HistoryEstimate>,
    now: DateTime<Utc>,
) {
    if history.is_empty() {
        return;
    }
    let weights: Vec<f64> = runbook
        .steps
        .iter()
        .map(|s| {
            history.get(s.id()).map_or_else(
                || s.common.estimate.map_or(0.0, Dur::secs),
                |h| h.median_seconds,
            )
        })
        .collect();
    let (critical, critical_secs) = dag.critical_path(&weights);
    let on_path: Vec<&str> = critical.iter().map(|&i| runbook.steps[i].id()).collect();
    for s in &mut plan.steps {
        s.history = history.get(&s.id).copied();
        s.on_critical_path = on_path.contains(&s.id.as_str());
    }
    plan.critical_path = on_path.iter().map(|s| (*s).to_owned()).collect();
    plan.critical_path_seconds = critical_secs;
    plan.unestimated = runbook
        .steps
        .iter()
        .filter(|s| s.common.estimate.is_none() && !history.contains_key(s.id()))
        .map(|s| s.id().to_owned())
        .collect();
    plan.rto_margin_seconds = plan.rto_seconds.map(|r| r - critical_secs);
    plan.milestones = milestone_budgets(runbook, dag, &weights);
    let finish = now
        + chrono::Duration::milliseconds(
            #[expect(clippy::cast_possible_truncation, reason = "durations of runs")]
            {
                (critical_secs * 1000.0).round() as i64
            },
        );
    plan.predicted_finish = Some(finish.to_rfc3339_opts(SecondsFormat::Secs, true));
}

fn milestone_budgets(runbook: &Runbook, dag: &Dag, weights: &[f64]) -> Vec<MilestoneBudget> {
    // Earliest finish of each step with unlimited parallelism.
    let mut finish = vec![0.0f64; weights.len()];
    for i in dag.order() {
        let start = dag.needs[i].iter().map(|&j| finish[j]).fold(0.0, f64::max);
        finish[i] = start + weights[i];
    }
    runbook
        .objectives
        .milestones
        .iter()
        .map(|m| {
            let est = m
                .steps
                .iter()
                .filter_map(|s| runbook.steps.iter().position(|x| x.id() == s))
                .map(|i| finish[i])
                .fold(0.0, f64::max);
            MilestoneBudget {
                name: m.name.clone(),
                rto_seconds: m.rto.secs(),
                estimate_seconds: est,
                fits: est <= m.rto.secs(),
            }
        })
        .collect()
}
