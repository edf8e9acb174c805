//! `fake`: a step type for the executor's unit tests (built only for them). It runs for a
//! while, then succeeds with the outputs it was given, fails or waits for approval, as told.

use super::{Step, StepType, Touches};
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Behave as told.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FakeConfig {
    /// How long an attempt runs (milliseconds), unless cancelled.
    #[serde(default)]
    pub millis: u64,
    /// Fail every attempt with this message.
    pub fail: Option<String>,
    /// Wait for an approval this run cannot give.
    #[serde(default)]
    pub pending: bool,
    /// Seconds of gate wait it reports (whether it then succeeds or not).
    #[serde(default)]
    pub waited: f64,
    /// The outputs on success.
    #[serde(default)]
    pub outputs: BTreeMap<String, serde_json::Value>,
}

impl Step for FakeConfig {
    const TYPE: StepType = StepType {
        outputs: None,
        gate: false,
        expressions: &[],
        includes: None,
    };

    fn touches(&self) -> Touches {
        Touches::default()
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(self.millis)) => {}
            () = cx.cancel.cancelled() => return Err(StepError::Cancelled),
        }
        cx.gate_wait.add(self.waited);
        if self.pending {
            return Err(StepError::GatePending);
        }
        if let Some(m) = &self.fail {
            return Err(StepError::failed(m.clone()));
        }
        Ok(self.outputs.clone().into_iter().collect::<Outputs>())
    }
}
