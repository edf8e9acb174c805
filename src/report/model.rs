//! The report of a run, rebuilt from its journal's events.

use super::objectives::{self, MilestoneReport, RpoReport};
use crate::event::{EventKind, Outcome, PlannedStep, RunEvent, RunOutcome};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// Version of the report document; bumped when its shape changes (2: `critical_path`,
/// `critical_path_seconds`, `milestones`, `rpo`, and `needs`/`on_critical_path` of steps).
pub const REPORT_VERSION: u32 = 2;

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
    /// Restored from an earlier run by `--resume`.
    pub reused: bool,
    /// The steps it waited for.
    pub needs: Vec<String>,
    /// On the chain of steps that decided when the run ended.
    pub on_critical_path: bool,
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
    /// Wall time from the first start to the last finish, gates included.
    pub duration_seconds: f64,
    /// Time spent waiting for people at gates.
    pub gate_wait_seconds: f64,
    /// `duration_seconds` minus `gate_wait_seconds`.
    pub machine_seconds: f64,
    pub rto_seconds: Option<f64>,
    /// RTO minus the duration; negative when over.
    pub rto_margin_seconds: Option<f64>,
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
    pub gates: Vec<GateReport>,
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
    let mut end = None;
    let mut outcome = None;
    let mut duration = 0.0;
    let mut gate_wait = 0.0;
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
                needs: Vec::new(),
                on_critical_path: false,
            });
            steps.len() - 1
        })
    };
    for e in events {
        match &e.kind {
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
                attempts,
                duration_seconds,
                outputs,
                error,
                reason,
                reused,
                ..
            } => {
                let i = index(&mut steps, step);
                let s = &mut steps[i];
                s.status = *o;
                s.end = Some(e.at);
                s.attempts = *attempts;
                s.duration_seconds = *duration_seconds;
                s.outputs.clone_from(outputs);
                s.error.clone_from(error);
                s.reason.clone_from(reason);
                s.reused = *reused;
                if s.start.is_none() || *reused || *attempts == 0 {
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
                duration_seconds,
                gate_wait_seconds,
            } => {
                end = Some(e.at);
                outcome = Some(*o);
                duration += duration_seconds;
                gate_wait += gate_wait_seconds;
            }
            _ => {}
        }
    }
    let margin = rto_seconds.map(|r| r - duration);
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
        duration_seconds: duration,
        gate_wait_seconds: gate_wait,
        machine_seconds: (duration - gate_wait).max(0.0),
        rto_seconds: *rto_seconds,
        rto_margin_seconds: margin,
        rto_met: margin.map(|m| m >= 0.0),
        rpo_seconds: *rpo_seconds,
        critical_path,
        critical_path_seconds,
        milestones,
        rpo,
        steps,
        gates,
    })
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
