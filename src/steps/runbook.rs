//! `runbook`: run another runbook's steps as part of this run.

use super::{Step, StepType, Touches};
use crate::steps::cx::{StepCx, StepResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Include a runbook; its steps are journaled as `parent/child`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookConfig {
    /// The runbook file, relative to this runbook.
    pub file: String,
    /// Its params (templates).
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

impl Step for RunbookConfig {
    const TYPE: StepType = StepType {
        // The outputs are the children's, by id.
        outputs: None,
        gate: false,
        expressions: &[],
        includes: Some("file"),
    };

    /// What the sub-runbook's steps touch is known once it is planned.
    fn touches(&self) -> Touches {
        Touches::default()
    }

    /// The executor loads, validates and runs the child inside this run: its steps are
    /// journaled as `parent/child`; its outputs are the children's outputs by id.
    async fn run(&self, cx: &StepCx) -> StepResult {
        cx.runbooks.run(cx, &self.file, &self.params).await
    }
}
