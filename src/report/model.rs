//! The report of a run, rebuilt from its journal's events.

use crate::event::{EventKind, Outcome, RunEvent, RunOutcome};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// Version of the report document; bumped on incompatible changes.
pub const REPORT_VERSION: u32 = 1;

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
    pub steps: Vec<StepReport>,
    pub gates: Vec<GateReport>,
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "step durations are far below i64::MAX milliseconds"
)]
fn millis(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

fn time_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "format": "date-time" })
}

fn optional_time_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
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
        ..
    } = &first.kind
    else {
        return None;
    };
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
        steps,
        gates,
    })
}
