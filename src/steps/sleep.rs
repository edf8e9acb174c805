//! `sleep`: wait a fixed time (for drills; readiness is a `health` step).

use super::{Step, StepType, Touches, plain};
use crate::duration::Dur;
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Wait.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepConfig {
    /// How long.
    pub duration: Dur,
}

impl Step for SleepConfig {
    const TYPE: StepType = plain(&[]);

    fn touches(&self) -> Touches {
        Touches::default()
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run(self, cx).await
    }
}

/// Wait, unless cancelled.
pub async fn run(cfg: &SleepConfig, cx: &StepCx) -> StepResult {
    tokio::select! {
        () = tokio::time::sleep(cfg.duration.0) => Ok(Outputs::new()),
        () = cx.cancel.cancelled() => Err(StepError::Cancelled),
    }
}
