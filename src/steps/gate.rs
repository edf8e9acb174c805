//! `gate`: wait for a person to approve.

use super::StepConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Wait for approval. Without a terminal only `rb run --approve ID` approves; a timeout rejects.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// What the approver must know (a template).
    pub message: String,
}

impl StepConfig for GateConfig {}
