//! `assert`: expressions that must all be true.

use super::{ConfigProblem, StepConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Fail unless every expression is true.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertConfig {
    /// Expressions, e.g. `steps.count.outputs.stdout | trim | int > 0`.
    pub that: Vec<String>,
    /// Message on failure (a template).
    pub message: Option<String>,
}

impl StepConfig for AssertConfig {
    fn problems(&self) -> Vec<ConfigProblem> {
        if self.that.is_empty() {
            vec![ConfigProblem::new("that", "`that` is empty")]
        } else {
            Vec::new()
        }
    }
}
