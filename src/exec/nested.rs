//! Sub-runbooks: the executor loads, validates and runs a `runbook` step's file inside the
//! run. Its steps are journaled as `parent/child`; the step's outputs are the children's
//! outputs by id.

use super::executor::{self, Request, Resume};
use crate::event::{EventKind, Outcome, RunEvent, RunOutcome};
use crate::runbook::params::Overrides;
use crate::steps::cx::{BoxFuture, Outputs, Runbooks, StepCx, StepError, StepResult};
use crate::template::{Context, Mode};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What a step's sub-runbook inherits from the run.
pub(super) struct SubRunbooks {
    /// What earlier attempts left and `--from`/`--only` select, for this step's sub-runbook
    /// (ids relative to it).
    pub resume: Resume,
    pub jobs: usize,
}

impl Runbooks for SubRunbooks {
    fn run<'a>(
        &'a self,
        cx: &'a StepCx,
        file: &'a str,
        params: &'a BTreeMap<String, Json>,
    ) -> BoxFuture<'a, StepResult> {
        Box::pin(self.run_file(cx, file, params))
    }
}

impl SubRunbooks {
    async fn run_file(
        &self,
        cx: &StepCx,
        file: &str,
        params: &BTreeMap<String, Json>,
    ) -> StepResult {
        let path = cx.path(file);
        let loaded = crate::runbook::load::load_file(&path);
        let mut diags = loaded.diagnostics;
        let Some(child) = loaded.runbook else {
            return Err(StepError::failed(describe(&path, &diags)));
        };
        let dag = crate::runbook::validate::validate(&child, &mut diags);
        let mut overrides = Overrides::default();
        overrides.files.push((
            format!("step `{}`", cx.step_id),
            params.clone().into_iter().collect(),
        ));
        let values = crate::runbook::params::resolve(&child, &overrides, &mut diags);
        let secrets = super::secrets::read(&child).map_err(StepError::Failed)?;
        if !diags.is_empty() {
            return Err(StepError::failed(describe(&path, &diags)));
        }
        let mut ctx = Context::new(
            &child,
            values,
            secrets,
            cx.now,
            cx.run_id.clone(),
            Mode::Run,
        );
        ctx.render_vars(&child, &crate::template::environment())
            .map_err(|d| StepError::failed(d.message))?;
        let (mut child, mut dag) = (child, dag);
        crate::runbook::for_each::apply(&mut child, &mut dag, &ctx)
            .map_err(|d| StepError::failed(describe(&path, &d)))?;
        let prefix = format!("{}/", cx.step_id);
        let collected: Arc<Mutex<Collected>> = Arc::default();
        let emit = forward(cx.emit.clone(), collected.clone(), prefix.clone());
        let request = Request {
            runbook: Arc::new(child),
            dag,
            ctx,
            jobs: self.jobs,
            resume: self.resume.clone(),
            approvals: cx
                .approvals
                .iter()
                .filter_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
                .collect(),
            approver: cx.approver.clone(),
            interactive: cx.interactive,
            resumed: cx.resumed,
            interrupt: cx.cancel.clone(),
        };
        let outcome = executor::execute(request, emit).await;
        let (mut outputs, failure, waited) =
            std::mem::take(&mut *collected.lock().expect("sub-runbook outputs"));
        match outcome {
            RunOutcome::Succeeded => {
                // The run counts this as gate wait, not machine time, as for a gate of its own.
                if waited > 0.0 {
                    outputs.insert("waited_seconds".into(), waited.into());
                }
                cx.gate_wait.add(waited);
                Ok(outputs)
            }
            RunOutcome::Interrupted => Err(StepError::Cancelled),
            RunOutcome::GatePending => Err(StepError::GatePending),
            RunOutcome::GateRejected => Err(StepError::GateRejected(
                failure.unwrap_or_else(|| "a gate was rejected".into()),
            )),
            RunOutcome::Failed => Err(StepError::failed(format!(
                "runbook `{file}` failed at {}",
                failure.unwrap_or_else(|| "a step".into())
            ))),
        }
    }
}

/// Outputs by child id, the first failure, and the time the child's gates (nested ones
/// included: their events pass through here) waited for people.
type Collected = (Outputs, Option<String>, f64);

type Emit = Arc<dyn Fn(RunEvent) + Send + Sync>;

/// The child's events, renamed `parent/child` and passed on (its run events dropped: they
/// belong to the parent run), collecting what the step reports when the child ends.
fn forward(parent_emit: Emit, sink: Arc<Mutex<Collected>>, pre: String) -> Emit {
    Arc::new(move |mut e: RunEvent| {
        match &mut e.kind {
            EventKind::RunStarted { .. } | EventKind::RunFinished { .. } => return,
            EventKind::StepFinished {
                step,
                outcome,
                outputs,
                error,
                ..
            } => {
                let mut s = sink.lock().expect("sub-runbook outputs");
                if *outcome == Outcome::Succeeded {
                    s.0.insert(step.clone(), Json::Object(outputs.clone()));
                } else if *outcome == Outcome::Failed && s.1.is_none() {
                    s.1 = Some(format!(
                        "step `{step}`: {}",
                        error.clone().unwrap_or_default()
                    ));
                }
                step.insert_str(0, &pre);
            }
            EventKind::GateAnswered {
                step,
                waited_seconds,
                ..
            } => {
                sink.lock().expect("sub-runbook outputs").2 += *waited_seconds;
                step.insert_str(0, &pre);
            }
            EventKind::StepStarted { step, .. }
            | EventKind::StepProgressed { step, .. }
            | EventKind::StepRetrying { step, .. }
            | EventKind::GateRequested { step, .. } => step.insert_str(0, &pre),
            EventKind::NotificationFailed { .. } => {}
        }
        parent_emit(e);
    })
}

fn describe(path: &std::path::Path, diags: &[crate::runbook::diagnostic::Diagnostic]) -> String {
    let list: Vec<&str> = diags.iter().take(5).map(|d| d.message.as_str()).collect();
    format!(
        "runbook `{}` is invalid: {}",
        path.display(),
        list.join("; ")
    )
}
