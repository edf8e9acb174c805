//! The report of a run, rebuilt from its journal's events.

use crate::event::{EventKind, Outcome, RunEvent, RunOutcome};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// Version of the report document; bumped on incompatible changes.
pub const REPORT_VERSION: u32 = 1;

/// One step in a report.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    pub status: Outcome,
    pub start: Option<DateTime<Utc>>,
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
#[derive(Debug, Clone, Serialize)]
pub struct GateReport {
    pub step: String,
    pub approved: bool,
    pub by: String,
    pub at: DateTime<Utc>,
    pub waited_seconds: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub run_id: String,
    pub runbook: String,
    pub file: String,
    pub file_sha256: String,
    pub params: Map<String, Value>,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
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
    pub steps: Vec<StepReport>,
    pub gates: Vec<GateReport>,
}

/// Build the report from a run's events (all attempts, resumed ones included).
#[expect(
    clippy::too_many_lines,
    reason = "one pass over the events, one arm per kind"
)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "step durations in milliseconds fit an i64"
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
                    s.start = Some(
                        e.at - chrono::Duration::milliseconds((duration_seconds * 1000.0) as i64),
                    );
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
        steps,
        gates,
    })
}
