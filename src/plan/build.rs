//! Building a plan: params and vars resolved, every step rendered, groups, critical path and
//! the RTO budget. Used by `rb plan` (runtime values as placeholders, secrets as `***`) and by
//! `rb run` (which renders each step again with real values right before it starts).

use crate::duration::Dur;
use crate::runbook::context::render_error;
use crate::runbook::diagnostic::Diagnostic;
use crate::runbook::graph::Dag;
use crate::runbook::model::{RenderError, Runbook, Step};
use crate::runbook::notify::Notify;
use crate::runbook::params::{self, Overrides};
use crate::steps::StepKind;
use crate::template::{self, Context, Masker, Mode, Placeholder};
use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{Environment, Value};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;

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
    /// The rendered configuration, typed (what `--check` probes is asked of it).
    #[serde(skip)]
    #[schemars(skip)]
    pub kind: StepKind,
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
    /// The object stores (`name: url …`), credentials shown as `***`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<String>,
    /// The stores as rendered for this run (`rb plan --check` lists them).
    #[serde(skip)]
    #[schemars(skip)]
    pub store_specs: std::collections::BTreeMap<String, crate::steps::store::StoreSpec>,
    /// The hosts as rendered for this run (`rb plan --check` connects to them).
    #[serde(skip)]
    #[schemars(skip)]
    pub host_specs: std::collections::BTreeMap<String, crate::docker::HostSpec>,
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
    /// The `for_each` groups: their items and each group's slowest item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub for_each: Vec<super::fleet::PlanGroup>,
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
    env: &Environment<'static>,
    ctx: &Value,
    masker: &Masker,
) -> Result<(Json, StepKind), Diagnostic> {
    let kind = step.render(env, ctx).map_err(|e| match e {
        RenderError::Template(e, span) => render_error(&e, span, &step.field_at(span), masker),
        RenderError::Decode(e) => Diagnostic::new(
            "rb::render",
            masker.mask(&format!(
                "step `{}` after rendering: {}",
                step.id(),
                e.message
            )),
        )
        .label(e.span.unwrap_or(step.node.span), "here"),
    })?;
    let config = masker.mask_json(serde_json::to_value(&kind).unwrap_or(Json::Null));
    Ok((config, kind))
}

/// Resolve the params (defaults, then `overrides`), render the vars, expand the `for_each`
/// steps (`runbook` and `dag` change) and build the plan of a validated runbook: what
/// `rb plan` and `rb run` do between validating and running. In [`Mode::Plan`] the secrets
/// are taken as declared (values unknown, shown as `***`).
pub fn resolve_and_build(
    runbook: &mut Runbook,
    dag: &mut Dag,
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
    crate::runbook::for_each::apply(runbook, dag, &ctx)?;
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
    let group_of = group_of(&groups, runbook.steps.len());
    let mut errors = Vec::new();
    let mut steps = Vec::new();
    // A host's `docker` may be a template of params (`{{ params.primary }}`): the transport
    // shown is the one its rendered endpoint gets.
    let hosts = crate::template::context::rendered_hosts(&runbook.hosts, &value);
    for i in dag.order() {
        let step = &runbook.steps[i];
        let (config, kind) = match render_step(step, &env, &value, &masker) {
            Ok(rendered) => rendered,
            Err(d) => {
                errors.push(d);
                continue;
            }
        };
        let fingerprint = step.fingerprint(&config);
        let config = crate::steps::transport::annotate(config, &kind, &hosts);
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
            kind,
        });
    }
    let store_specs = crate::steps::store::spec::rendered(&runbook.stores, &value);
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
        stores: crate::steps::store::spec::describe_all(&store_specs),
        store_specs,
        host_specs: hosts,
        notify: runbook.notify.iter().map(Notify::planned).collect(),
        missing_params: Vec::new(),
        gates: super::nested::attach(&mut steps, &runbook.base_dir()),
        for_each: super::fleet::groups(&steps, |s| s.estimate.map_or(0.0, Dur::secs)),
        groups: groups.iter().map(|g| ids(g)).collect(),
        critical_path: ids(&critical),
        critical_path_seconds: critical_secs,
        unestimated: unestimated(runbook),
        rto_seconds: rto,
        rpo_seconds: runbook.objectives.rpo.map(Dur::secs),
        restore_point: runbook
            .objectives
            .restore_point
            .as_ref()
            .map(crate::event::RestorePoint::describe),
        rto_margin_seconds: rto.map(|r| r - critical_secs),
        milestones,
        steps,
        predicted_finish: None,
    })
}

/// The steps without an `estimate` (the critical path counts them as zero).
fn unestimated(runbook: &Runbook) -> Vec<String> {
    runbook
        .steps
        .iter()
        .filter(|s| s.common.estimate.is_none())
        .map(|s| s.id().to_owned())
        .collect()
}

/// Each step's parallel group, by step index.
fn group_of(groups: &[Vec<usize>], steps: usize) -> Vec<usize> {
    let mut group_of = vec![0; steps];
    for (g, members) in groups.iter().enumerate() {
        for &i in members {
            group_of[i] = g;
        }
    }
    group_of
}

/// The runbook's `locks:` rendered (no step outputs: they are taken before the first step),
/// sorted and without duplicates, which is also the order they are taken in.
fn render_locks(
    runbook: &Runbook,
    env: &Environment<'static>,
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
    plan.for_each = super::fleet::groups(&plan.steps, |s| {
        s.history
            .map_or_else(|| s.estimate.map_or(0.0, Dur::secs), |h| h.median_seconds)
    });
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
