//! What happens during a run, as typed events. The executor only emits these; the terminal,
//! the journal and the reports consume them, and `--resume` reads them back.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Version of the journal's event format; bumped on incompatible changes.
pub const JOURNAL_VERSION: u32 = 1;

/// One event, with the time it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A step of the run's graph as the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub id: String,
    /// The steps it waits for (its `needs`; absent there, the step before it).
    #[serde(default)]
    pub needs: Vec<String>,
    /// Median of recent successful runs, else the runbook's `estimate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_seconds: Option<f64>,
}

/// A milestone as the run started: its steps must be done within `rto_seconds` of the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedMilestone {
    pub name: String,
    pub rto_seconds: f64,
    pub steps: Vec<String>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed,
    /// Stopped at a gate that nobody approved (resume with `--approve`).
    GatePending,
    /// A gate was rejected or timed out.
    GateRejected,
    Interrupted,
}

/// The events.
#[expect(
    clippy::large_enum_variant,
    reason = "one RunStarted a run; boxing it would only move the bytes"
)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        version: u32,
        run_id: String,
        runbook: String,
        file: String,
        file_sha256: String,
        /// The run's `now`, fixed for the whole run and kept on resume.
        now: DateTime<Utc>,
        /// Param values (secrets never appear here).
        params: Map<String, Value>,
        vars: Map<String, Value>,
        secrets: Vec<String>,
        rto_seconds: Option<f64>,
        /// The runbook's recovery point objective (for `rb status`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rpo_seconds: Option<f64>,
        /// Set when this process continues an earlier run (a later attempt of it).
        resumed: bool,
        /// A new run started by `--from`/`--only` after the run named here had finished:
        /// steps it does not run are taken from that run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        derived_from: Option<String>,
        pid: u32,
        /// The step graph with each step's estimate, for the critical path in reports and
        /// the projected finish (empty in journals written before it was recorded).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        steps: Vec<PlannedStep>,
        /// The runbook's milestones, judged in reports.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        milestones: Vec<PlannedMilestone>,
        /// Where the time of the restored data comes from (achieved RPO in reports).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restore_point: Option<RestorePoint>,
    },
    StepStarted {
        step: String,
        #[serde(rename = "type")]
        type_name: String,
        attempt: u32,
        fingerprint: String,
        /// Why a step that succeeded in the resumed run runs again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    StepProgressed {
        step: String,
        bytes: u64,
    },
    StepRetrying {
        step: String,
        attempt: u32,
        delay_seconds: f64,
        error: String,
    },
    GateRequested {
        step: String,
        message: String,
    },
    GateAnswered {
        step: String,
        approved: bool,
        by: String,
        waited_seconds: f64,
    },
    StepFinished {
        step: String,
        outcome: Outcome,
        attempts: u32,
        duration_seconds: f64,
        fingerprint: String,
        #[serde(default)]
        outputs: Map<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Why a step was skipped or reused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Restored from an earlier run by `--resume` instead of run again.
        #[serde(default)]
        reused: bool,
    },
    RunFinished {
        outcome: RunOutcome,
        duration_seconds: f64,
        gate_wait_seconds: f64,
    },
    /// A `notify:` webhook could not be told (refused, timed out, not found): recorded, never
    /// a failure of the run. The URL is a secret and never appears, only the secret's name.
    NotificationFailed {
        /// The secret holding the webhook's URL.
        webhook: String,
        /// What it was to be told: `start`, `success`, `failure`, `over_rto`, `gate`.
        notification: String,
        error: String,
    },
}

impl RunEvent {
    pub fn now(kind: EventKind) -> Self {
        Self {
            at: Utc::now(),
            kind,
        }
    }
}

/// Where a recovery run finds the time of the data it restores: one step output, or one
/// param. The value is an RFC 3339 time (a space for `T` and an offset of hours only, as
/// `PostgreSQL` prints them, are accepted) or Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestorePoint {
    /// The step whose output holds the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// With `step`: the output's name (default `stdout`); `child.name` for an output of a
    /// sub-runbook's step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The param holding the time (instead of `step`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

impl RestorePoint {
    /// `step `choose` output `stdout`` / `param `target_time``, for reports.
    pub fn describe(&self) -> String {
        match (&self.step, &self.param) {
            (Some(s), _) => format!(
                "step `{s}` output `{}`",
                self.output.as_deref().unwrap_or("stdout")
            ),
            (None, Some(p)) => format!("param `{p}`"),
            (None, None) => "nothing".to_owned(),
        }
    }
}
