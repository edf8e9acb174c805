//! `runbook`: run another runbook's steps as part of this run.

use super::StepConfig;
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

impl StepConfig for RunbookConfig {}
