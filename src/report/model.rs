//! The report of a run, rebuilt from its journal's events.

use super::objectives::{self, MilestoneReport, RpoReport};
use crate::event::{EventKind, Outcome, PlannedStep, RunEvent, RunOutcome};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// Version of the report document; bumped when its shape changes (2: `critical_path`,
/// `critical_path_seconds`, `milestones`, `rpo`, and `needs`/`on_critical_path` of steps;
/// 3: `attempts`, `between_attempts_seconds`, `derived_from`, `attempt` of steps, `artifacts`,
/// and no RTO verdict for a run that did not succeed).
pub const REPORT_VERSION: u32 = 3;

/// One step in a report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepReport {
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    #[schemars(schema_with = "outcome_schema")]
    pub status: Outcome,
    #[schemars(schema_with = "optional_time_schema")]
    pub start: Option<DateTime<Utc>>,
    #[schemars(schema_with = "optional_time_schema")]
    pub end: Option<DateTime<Utc>>,
    pub duration_seconds: f64,
    pub attempts: u32,
    pub outputs: Map<String, Value>,
    pub error: Option<String>,
    pub reason: Option<String>,
    /// Restored from an earlier attempt (or the run this one derives from) instead of run
    /// again; its times are those of the attempt that did the work.
    pub reused: bool,
    /// The attempt of the run (1, 2, …) that did the step's work; 0 when it did not run in
    /// this run at all (skipped, or taken from the run it derives from).
    pub attempt: u32,
    /// The steps it waited for.
    pub needs: Vec<String>,
    /// On the chain of steps that decided when the run ended.
    pub on_critical_path: bool,
}

/// A file the run wrote and reported (a dump, an archive, a compressed file).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Artifact {
    /// The step that wrote it.
    pub step: String,
    pub path: String,
    pub bytes: u64,
    /// SHA-256 of its bytes as written, when the step computed it.
    pub sha256: Option<String>,
}

/// An image a `container.run` step started its container from.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ImageUsed {
    pub step: String,
    /// The reference as the runbook gave it.
    pub image: String,
    /// Its registry digest (`sha256:…`), else its id for an image that came from no registry.
    pub digest: String,
    /// Pulled from its registry by this run.
    pub pulled: bool,
}

impl ImageUsed {
    fn of(s: &StepReport) -> Option<Self> {
        if s.status != Outcome::Succeeded {
            return None;
        }
        let text = |k: &str| s.outputs.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            step: s.id.clone(),
            image: text("image")?,
            digest: text("image_digest")?,
            pulled: s.outputs.get("pulled").and_then(Value::as_bool) == Some(true),
        })
    }
}

impl Artifact {
    /// The artifact of a step that succeeded and reported `file` and `bytes`.
    fn of(s: &StepReport) -> Option<Self> {
        if s.status != Outcome::Succeeded {
            return None;
        }
        Some(Self {
            step: s.id.clone(),
            path: s.outputs.get("file")?.as_str()?.to_owned(),
            bytes: s.outputs.get("bytes")?.as_u64()?,
            sha256: s
                .outputs
                .get("sha256")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// One attempt of a run: the first `rb run`, then each `--resume`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AttemptReport {
    pub number: u32,
    #[schemars(schema_with = "time_schema")]
    pub start: DateTime<Utc>,
    /// When it finished (for an attempt that was killed: its last journaled event).
    #[schemars(schema_with = "time_schema")]
    pub end: DateTime<Utc>,
    #[schemars(schema_with = "run_outcome_schema")]
    pub outcome: Option<RunOutcome>,
    pub duration_seconds: f64,
    /// Time its gates waited for people.
    pub gate_wait_seconds: f64,
    /// Steps that did their work in it.
    pub steps_run: usize,
}

/// A gate and who answered it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GateReport {
    pub step: String,
    pub approved: bool,
    pub by: String,
    #[schemars(schema_with = "time_schema")]
    pub at: DateTime<Utc>,
    pub waited_seconds: f64,
}

/// The report of one run of a runbook (`report.json`, `rb report RUN_ID --format json`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    pub format_version: u32,
    pub run_id: String,
    pub runbook: String,
    pub file: String,
    pub file_sha256: String,
    pub params: Map<String, Value>,
    #[schemars(schema_with = "time_schema")]
    pub start: DateTime<Utc>,
    #[schemars(schema_with = "optional_time_schema")]
    pub end: Option<DateTime<Utc>>,
    /// How the run's last attempt ended; null while it is still running.
    #[schemars(schema_with = "run_outcome_schema")]
    pub outcome: Option<RunOutcome>,
    /// The run this one derives from (`--from`/`--only` after it had finished).
    pub derived_from: Option<String>,
    /// The first `rb run` and each `--resume`, in order.
    pub attempts: Vec<AttemptReport>,
    /// Wall time from the first attempt's start to the last attempt's end: gates and the
    /// time between attempts included. The RTO and milestones are judged on it.
    pub duration_seconds: f64,
    /// Time spent waiting for people: at gates during an attempt, and stopped at a gate
    /// until a `--resume --approve`.
    pub gate_wait_seconds: f64,
    /// Time between attempts other than waiting at a gate (after a failure or Ctrl-C, until
    /// `--resume`).
    pub between_attempts_seconds: f64,
    /// Time the attempts ran, less their gate wait.
    pub machine_seconds: f64,
    pub rto_seconds: Option<f64>,
    /// RTO minus the duration; negative when over. Null unless the run succeeded.
    pub rto_margin_seconds: Option<f64>,
    /// Whether the run recovered within the RTO. Null unless the run succeeded: a run that
    /// failed or has not finished has recovered nothing.
    pub rto_met: Option<bool>,
    /// The runbook's recovery point objective, if it has one.
    pub rpo_seconds: Option<f64>,
    /// The actual critical path: the chain of steps, following `needs`, whose times decided
    /// when the run ended (from the step that ended last back along the need that ended
    /// last). Empty when the journal has no step graph (written by rb before 0.2).
    pub critical_path: Vec<String>,
    /// The durations of the critical path's steps added up; the rest of the run's duration
    /// was spent waiting for a free job slot or between attempts.
    pub critical_path_seconds: f64,
    /// Each milestone's verdict.
    pub milestones: Vec<MilestoneReport>,
    /// For a recovery run (`objectives.restore_point`): the age of the restored data.
    pub rpo: Option<RpoReport>,
    pub steps: Vec<StepReport>,
    /// `for_each` groups: their items counted by outcome, and which failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<super::groups::GroupReport>,
    pub gates: Vec<GateReport>,
    /// Files the run wrote (steps that report `file`, `bytes` and `sha256`), in step order.
    pub artifacts: Vec<Artifact>,
    /// The images `container.run` steps started containers from, with their digests.
    #[serde(default)]
    pub images: Vec<ImageUsed>,
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "step durations are far below i64::MAX milliseconds"
)]
pub(crate) fn millis(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

fn time_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "format": "date-time" })
}

pub(crate) fn optional_time_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": ["string", "null"], "format": "date-time" })
}

fn outcome_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "How the step ended.",
        "enum": ["succeeded", "failed", "skipped", "cancelled"]
    })
}

fn run_outcome_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "enum": ["succeeded", "failed", "gate_pending", "gate_rejected", "interrupted", null]
    })
}

/// The JSON Schema of the report document (`schemas/report.schema.json`).
pub fn schema() -> serde_json::Value {
    let g = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    g.into_root_schema_for::<Report>().to_value()
}

/// Build the report from a run's events (all attempts, resumed ones included).
#[expect(
    clippy::too_many_lines,
    reason = "one match over the event kinds, each arm short"
)]
pub fn build(events: &[RunEvent]) -> Option<Report> {
    let first = events.first()?;
    let EventKind::RunStarted {
        run_id,
        runbook,
        file,
        file_sha256,
        params,
        rto_seconds,
        rpo_seconds,
        now,
        derived_from,
        ..
    } = &first.kind
    else {
        return None;
    };
    // The newest start's graph and objectives: a resumed run may run a changed runbook.
    let (planned, planned_milestones, restore_point) = events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::RunStarted {
                steps,
                milestones,
                restore_point,
                ..
            } => Some((
                steps.as_slice(),
                milestones.as_slice(),
                restore_point.as_ref(),
            )),
            _ => None,
        })
        .unwrap_or_default();
    let mut steps: Vec<StepReport> = Vec::new();
    let mut gates = Vec::new();
    let mut outcome = None;
    let mut attempts: Vec<AttemptReport> = Vec::new();
    let mut ran_in_attempt = 0usize;
    let index = |steps: &mut Vec<StepReport>, id: &str| -> usize {
        steps.iter().position(|s| s.id == id).unwrap_or_else(|| {
            steps.push(StepReport {
                id: id.to_owned(),
                type_name: None,
                status: Outcome::Skipped,
                start: None,
                end: None,
                duration_seconds: 0.0,
                attempts: 0,
                outputs: Map::new(),
                error: None,
                reason: None,
                reused: false,
                attempt: 0,
                needs: Vec::new(),
                on_critical_path: false,
            });
            steps.len() - 1
        })
    };
    for e in events {
        if let Some(a) = attempts.last_mut()
            && a.outcome.is_none()
        {
            a.end = e.at; // a killed attempt ends with its last event
        }
        match &e.kind {
            EventKind::RunStarted { .. } => {
                attempts.push(AttemptReport {
                    number: u32::try_from(attempts.len() + 1).unwrap_or(u32::MAX),
                    start: e.at,
                    end: e.at,
                    outcome: None,
                    duration_seconds: 0.0,
                    gate_wait_seconds: 0.0,
                    steps_run: 0,
                });
                outcome = None;
            }
            EventKind::StepStarted {
                step,
                type_name,
                attempt,
                ..
            } => {
                let i = index(&mut steps, step);
                let s = &mut steps[i];
                s.type_name = Some(type_name.clone());
                if *attempt == 1 {
                    s.start = Some(e.at);
                }
            }
            EventKind::StepFinished {
                step,
                outcome: o,
                attempts: attempts_n,
                duration_seconds,
                outputs,
                error,
                reason,
                reused,
                ..
            } => {
                let i = index(&mut steps, step);
                let s = &mut steps[i];
                if *reused && s.attempt > 0 && s.status == Outcome::Succeeded {
                    // Reused in a later attempt: the report keeps the attempt that did it.
                    s.reused = true;
                    continue;
                }
                if *attempts_n > 0 {
                    ran_in_attempt += 1;
                    s.attempt = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
                } else {
                    s.attempt = 0;
                }
                s.status = *o;
                s.end = Some(e.at);
                s.attempts = *attempts_n;
                s.duration_seconds = *duration_seconds;
                s.outputs.clone_from(outputs);
                s.error.clone_from(error);
                s.reason.clone_from(reason);
                s.reused = *reused;
                if s.start.is_none() || *reused || *attempts_n == 0 {
                    s.start =
                        Some(e.at - chrono::Duration::milliseconds(millis(*duration_seconds)));
                }
            }
            EventKind::GateAnswered {
                step,
                approved,
                by,
                waited_seconds,
            } => gates.push(GateReport {
                step: step.clone(),
                approved: *approved,
                by: by.clone(),
                at: e.at,
                waited_seconds: *waited_seconds,
            }),
            EventKind::RunFinished {
                outcome: o,
                gate_wait_seconds,
                ..
            } => {
                outcome = Some(*o);
                if let Some(a) = attempts.last_mut() {
                    a.end = e.at;
                    a.outcome = Some(*o);
                    a.gate_wait_seconds = *gate_wait_seconds;
                    a.steps_run = std::mem::take(&mut ran_in_attempt);
                }
            }
            _ => {}
        }
    }
    if let Some(a) = attempts.last_mut()
        && a.outcome.is_none()
    {
        a.steps_run = ran_in_attempt;
    }
    let times = Times::of(&mut attempts);
    let end = attempts.last().map(|a| a.end).filter(|_| outcome.is_some());
    let duration = attempts
        .last()
        .map_or(0.0, |a| secs_between(first.at, a.end));
    let succeeded = outcome == Some(RunOutcome::Succeeded);
    let margin = rto_seconds.filter(|_| succeeded).map(|r| r - duration);
    let (critical_path, critical_path_seconds) = critical(&mut steps, planned);
    let milestones = objectives::milestones(planned_milestones, &steps, first.at);
    let rpo = restore_point.map(|p| objectives::rpo(p, &steps, params, *now, *rpo_seconds));
    Some(Report {
        format_version: REPORT_VERSION,
        run_id: run_id.clone(),
        runbook: runbook.clone(),
        file: file.clone(),
        file_sha256: file_sha256.clone(),
        params: params.clone(),
        start: first.at,
        end,
        outcome,
        derived_from: derived_from.clone(),
        attempts,
        duration_seconds: duration,
        gate_wait_seconds: times.gate_wait,
        between_attempts_seconds: times.between,
        machine_seconds: times.machine,
        rto_seconds: *rto_seconds,
        rto_margin_seconds: margin,
        rto_met: margin.map(|m| m >= 0.0),
        rpo_seconds: *rpo_seconds,
        critical_path,
        critical_path_seconds,
        milestones,
        rpo,
        artifacts: steps.iter().filter_map(Artifact::of).collect(),
        images: steps.iter().filter_map(ImageUsed::of).collect(),
        groups: super::groups::of(&steps),
        steps,
        gates,
    })
}

fn secs_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

/// Where a run's wall time went.
struct Times {
    gate_wait: f64,
    between: f64,
    machine: f64,
}

impl Times {
    /// Sets each attempt's duration from its start and end. A gap after an attempt that
    /// stopped at a gate is gate wait (the run waited for someone's `--approve`); any other
    /// gap is time between attempts.
    fn of(attempts: &mut [AttemptReport]) -> Self {
        let mut t = Self {
            gate_wait: 0.0,
            between: 0.0,
            machine: 0.0,
        };
        for a in attempts.iter_mut() {
            a.duration_seconds = secs_between(a.start, a.end).max(0.0);
            t.gate_wait += a.gate_wait_seconds;
            t.machine += (a.duration_seconds - a.gate_wait_seconds).max(0.0);
        }
        for w in attempts.windows(2) {
            let gap = secs_between(w[0].end, w[1].start).max(0.0);
            if w[0].outcome == Some(RunOutcome::GatePending) {
                t.gate_wait += gap;
            } else {
                t.between += gap;
            }
        }
        t
    }
}

/// Fill in each step's needs from the graph, mark the critical path; its ids and length.
fn critical(steps: &mut [StepReport], planned: &[PlannedStep]) -> (Vec<String>, f64) {
    for s in steps.iter_mut() {
        if let Some(p) = planned.iter().find(|p| p.id == s.id) {
            s.needs.clone_from(&p.needs);
        }
    }
    if planned.is_empty() {
        // Without the graph the chain cannot be followed: better none than a wrong one.
        return (Vec::new(), 0.0);
    }
    let path = objectives::critical_path(steps);
    let mut secs = 0.0;
    for s in steps.iter_mut() {
        s.on_critical_path = path.contains(&s.id);
        if s.on_critical_path {
            secs += s.duration_seconds;
        }
    }
    (path, secs)
}
