//! `assert`: expressions that must all be true.

use super::{ConfigProblem, Step, StepType, Touches};
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
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

impl Step for AssertConfig {
    const TYPE: StepType = StepType {
        outputs: Some(&[]),
        gate: false,
        expressions: &["that"],
        includes: None,
    };

    fn touches(&self) -> Touches {
        Touches::default()
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run(self, cx, &cx.template)
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        if self.that.is_empty() {
            vec![ConfigProblem::new("that", "`that` is empty")]
        } else {
            Vec::new()
        }
    }
}

/// Evaluate each expression against the step outputs and params so far.
pub fn run(cfg: &AssertConfig, cx: &StepCx, ctx: &minijinja::Value) -> StepResult {
    let env = crate::template::environment();
    for expr in &cfg.that {
        let value = crate::template::eval(&env, expr, ctx.clone()).map_err(|e| {
            StepError::failed(cx.masker.mask(&format!("cannot evaluate `{expr}`: {e}")))
        })?;
        if !value.is_true() {
            let msg = cfg
                .message
                .clone()
                .unwrap_or_else(|| format!("assertion failed: `{expr}`"));
            return Err(StepError::failed(cx.masker.mask(&msg)));
        }
    }
    Ok(Outputs::new())
}
