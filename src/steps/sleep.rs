//! `sleep`: wait a fixed time (for drills; readiness is a `health` step).

use super::StepConfig;
use crate::duration::Dur;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Wait.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepConfig {
    /// How long.
    pub duration: Dur,
}

impl StepConfig for SleepConfig {}
