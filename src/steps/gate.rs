//! `gate`: wait for a person to approve.

use super::{Step, StepType, Touches};
use crate::event::EventKind;
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Wait for approval. Without a terminal only `rb run --approve ID` approves; a timeout rejects.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// What the approver must know (a template).
    pub message: String,
}

impl Step for GateConfig {
    const TYPE: StepType = StepType {
        outputs: Some(&["approved_by", "approved_at", "waited_seconds"]),
        gate: true,
        expressions: &[],
        includes: None,
    };

    fn touches(&self) -> Touches {
        Touches::default()
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run(self, cx).await
    }
}

/// Ask for approval: `--approve ID` approves at once; on a terminal, a prompt; otherwise the
/// run stops here (exit 3). A timeout rejects.
pub async fn run(cfg: &GateConfig, cx: &StepCx) -> StepResult {
    let started = std::time::Instant::now();
    let message = cx.masker.mask(&cfg.message);
    cx.event(EventKind::GateRequested {
        step: cx.step_id.clone(),
        message: message.clone(),
    });
    let answer = if cx.approvals.iter().any(|a| a == &cx.step_id) {
        Some((true, cx.approver.clone()))
    } else if cx.interactive {
        let prompt = format!(
            "\n── gate `{}` ──\n{}\napprove? [y/N] ",
            cx.step_id,
            message.trim_end()
        );
        let ask = tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut err = std::io::stderr();
            let _ = write!(err, "{prompt}");
            let _ = err.flush();
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        });
        let deadline = cx.timeout.unwrap_or(std::time::Duration::MAX / 4);
        tokio::select! {
            r = ask => {
                let line = r.map_err(|e| StepError::failed(e.to_string()))?.map_err(|e| StepError::failed(e.to_string()))?;
                Some((matches!(line.trim(), "y" | "Y" | "yes" | "YES"), cx.approver.clone()))
            }
            () = tokio::time::sleep(deadline) => {
                let waited = started.elapsed().as_secs_f64();
                cx.event(EventKind::GateAnswered { step: cx.step_id.clone(), approved: false, by: "timeout".into(), waited_seconds: waited });
                return Err(StepError::GateRejected(format!("gate `{}` timed out after {} without an answer", cx.step_id, crate::duration::Dur(deadline))));
            }
            () = cx.cancel.cancelled() => return Err(StepError::Cancelled),
        }
    } else {
        None
    };
    let waited = started.elapsed().as_secs_f64();
    match answer {
        None => Err(StepError::GatePending),
        Some((approved, by)) => {
            cx.event(EventKind::GateAnswered {
                step: cx.step_id.clone(),
                approved,
                by: by.clone(),
                waited_seconds: waited,
            });
            if !approved {
                return Err(StepError::GateRejected(format!(
                    "gate `{}` was rejected by {by}",
                    cx.step_id
                )));
            }
            let mut out = Outputs::new();
            out.insert("approved_by".into(), by.into());
            out.insert("approved_at".into(), chrono::Utc::now().to_rfc3339().into());
            out.insert("waited_seconds".into(), waited.into());
            cx.gate_wait.add(waited);
            Ok(out)
        }
    }
}
