//! What happens during a run, as typed events. The executor only emits these; the terminal,
//! the journal and the reports consume them, and `--resume` reads them back.

use chrono::{DateTime, Utc};
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
        /// Set when this process continues an earlier run.
        resumed: bool,
        pid: u32,
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
}

impl RunEvent {
    pub fn now(kind: EventKind) -> Self {
        Self {
            at: Utc::now(),
            kind,
        }
    }
}
