//! The executor: runs the DAG on tokio with bounded parallelism, per-step timeouts, retries,
//! `when`, `continue_on_error`, `always`, fail-fast and cancellation. It emits events and
//! never prints.

use crate::event::{EventKind, Outcome, RunEvent, RunOutcome};
use crate::runbook::graph::Dag;
use crate::runbook::model::RenderError;
use crate::runbook::model::Runbook;
use crate::steps::common::Retries;
use crate::steps::cx::{Engines, Outputs, Progress, StepCx, StepError};
use crate::template;
use crate::template::Context;
use minijinja::Value;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A step that succeeded in an earlier attempt (or in the run a new one derives from).
#[derive(Debug, Clone)]
pub struct Done {
    pub fingerprint: String,
    pub outputs: Outputs,
    /// Position of its finish in the journal, to order it against later steps.
    pub seq: usize,
}

/// What earlier attempts left and what the operator selected: `--resume`, `--from`, `--only`.
/// Ids of a sub-runbook's steps are `parent/child`; [`Resume::child`] hands a sub-runbook its
/// part.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Steps that succeeded earlier, by id.
    pub done: HashMap<String, Done>,
    /// Every step that ran earlier (whatever its outcome): the journal position of its last
    /// finish. An `always` step that ran after a step it `undoes` succeeded undid it.
    pub last_ran: HashMap<String, usize>,
    /// `--from`: these steps and their dependents run again.
    pub from: Vec<String>,
    /// `--only`: only these steps run (the others must be in `done`).
    pub only: Option<Vec<String>>,
    /// Every step runs again (a sub-runbook whose step was selected as a whole).
    pub all: bool,
}

impl Resume {
    /// The part of it that belongs to sub-runbook step `parent`; `whole` when `parent` itself
    /// was selected (not one of its steps), so that every step of it runs again.
    #[must_use]
    pub fn child(&self, parent: &str, whole: bool) -> Self {
        let prefix = format!("{parent}/");
        let strip = |ids: &[String]| -> Vec<String> {
            ids.iter()
                .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned))
                .collect()
        };
        Self {
            done: child_entries(&self.done, &prefix),
            last_ran: child_entries(&self.last_ran, &prefix),
            from: strip(&self.from),
            only: self.only.as_deref().map(strip).filter(|o| !o.is_empty()),
            all: self.all || whole,
        }
    }
}

/// The entries of `map` under `prefix` (`parent/`), keyed without it.
fn child_entries<V: Clone>(map: &HashMap<String, V>, prefix: &str) -> HashMap<String, V> {
    map.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|c| (c.to_owned(), v.clone())))
        .collect()
}

/// What to run.
pub struct Request {
    pub runbook: Arc<Runbook>,
    pub dag: Dag,
    pub ctx: Context,
    pub jobs: usize,
    /// What earlier attempts left, and `--from`/`--only`.
    pub resume: Resume,
    pub approvals: Vec<String>,
    pub approver: String,
    pub interactive: bool,
    /// This run continues a run that stopped (`--resume`): steps stop what an earlier,
    /// killed attempt may have left running before they start.
    pub resumed: bool,
    /// Fires on Ctrl-C / SIGTERM.
    pub interrupt: CancellationToken,
}

type Emit = Arc<dyn Fn(RunEvent) + Send + Sync>;

#[derive(Debug, Clone, PartialEq)]
enum State {
    Pending,
    Running,
    Ended(Outcome),
}

struct Finished {
    index: usize,
    result: Result<Outputs, StepError>,
    attempts: u32,
    started: Instant,
    fingerprint: String,
    /// Seconds people took to approve its gates.
    gate_wait: f64,
}

/// Run the request; returns how the run ended.
pub async fn execute(req: Request, emit: Emit) -> RunOutcome {
    let mut run = Run::new(req, emit);
    run.go().await
}

struct Run {
    req: Request,
    emit: Emit,
    state: Vec<State>,
    outputs: BTreeMap<String, Json>,
    env: minijinja::Environment<'static>,
    engines: Arc<Engines>,
    stores: Arc<crate::steps::store::Stores>,
    /// A non-`continue_on_error` failure, a rejected gate, or an interrupt happened: only
    /// `always` steps start from now on.
    stopping: Option<RunOutcome>,
    step_cancel: CancellationToken,
    started: Instant,
    gate_wait: f64,
    /// Steps skipped by choice (`when` false, not selected by `--only`): unlike a skip caused
    /// by a failure upstream, it does not skip their dependents.
    skipped_by_choice: Vec<bool>,
    /// Ended steps as templates see them, and which steps are in it already.
    ended: Arc<std::sync::RwLock<BTreeMap<String, Value>>>,
    published: Vec<bool>,
    /// `req.resume`, shared with every step (sub-runbooks resume from it).
    resume_shared: Arc<Resume>,
    /// Selected by `--from` (or its dependents) or `--only`: run even if done before.
    forced: Vec<bool>,
    /// Selected as a whole (not through one of a sub-runbook's steps).
    whole: Vec<bool>,
    /// `--only`: the steps that run.
    only: Option<Vec<bool>>,
    /// Ran in this attempt (not reused, not skipped).
    ran: Vec<bool>,
    /// Done earlier, then undone by this `always` step: runs again.
    undone: Vec<Option<String>>,
    /// Running steps of each `for_each` group (for `max_parallel`).
    group_running: HashMap<String, usize>,
}

/// `steps.<id>` in templates: the steps that have ended, looked up on use.
#[derive(Debug)]
struct StepsView(Arc<std::sync::RwLock<BTreeMap<String, Value>>>);

impl minijinja::value::Object for StepsView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.read().ok()?.get(key.as_str()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        let keys: Vec<Value> = self
            .0
            .read()
            .map(|m| m.keys().map(|k| Value::from(k.as_str())).collect())
            .unwrap_or_default();
        minijinja::value::Enumerator::Values(keys)
    }
}

impl Run {
    fn new(mut req: Request, emit: Emit) -> Self {
        let n = req.runbook.steps.len();
        let base = req.runbook.base_dir();
        let hosts = crate::template::context::rendered_hosts(
            &req.runbook.hosts,
            &req.ctx.value(Value::UNDEFINED),
        );
        let engines = Arc::new(Engines::new(hosts, base));
        let step_cancel = req.interrupt.child_token();
        let stores = Arc::new(crate::steps::store::Stores::new(
            crate::steps::store::spec::rendered(
                &req.runbook.stores,
                &req.ctx.value(minijinja::Value::UNDEFINED),
            ),
            req.ctx.secrets.clone(),
            req.runbook.name.clone(),
        ));
        let selection = Selection::new(&req);
        let undone = undone(&req);
        // One copy, shared with every step (sub-runbooks take their part of it).
        let resume_shared = Arc::new(std::mem::take(&mut req.resume));
        Self {
            req,
            emit,
            state: vec![State::Pending; n],
            outputs: BTreeMap::new(),
            env: template::environment(),
            engines,
            stores,
            stopping: None,
            step_cancel,
            started: Instant::now(),
            gate_wait: 0.0,
            skipped_by_choice: vec![false; n],
            ended: Arc::default(),
            published: vec![false; n],
            resume_shared,
            forced: selection.forced,
            whole: selection.whole,
            only: selection.only,
            ran: vec![false; n],
            undone,
            group_running: HashMap::new(),
        }
    }

    fn emit(&self, kind: EventKind) {
        (self.emit)(RunEvent::now(kind));
    }

    fn id(&self, i: usize) -> &str {
        self.req.runbook.steps[i].id()
    }

    async fn go(&mut self) -> RunOutcome {
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        let mut running = 0usize;
        loop {
            if self.stopping.is_none() && self.req.interrupt.is_cancelled() {
                self.stopping = Some(RunOutcome::Interrupted);
                self.step_cancel.cancel();
            }
            self.settle();
            while running < self.req.jobs.max(1) {
                let Some(i) = self.next_startable() else {
                    break;
                };
                if let Some(task) = self.start(i) {
                    tasks.spawn(task);
                    running += 1;
                    if let Some(item) = &self.req.runbook.steps[i].item {
                        *self.group_running.entry(item.group.clone()).or_default() += 1;
                    }
                }
            }
            if running == 0 && self.next_startable().is_none() {
                self.settle();
                if self.state.iter().all(|s| matches!(s, State::Ended(_)))
                    || self.next_startable().is_none()
                {
                    break;
                }
            }
            tokio::select! {
                Some(joined) = tasks.join_next(), if running > 0 => {
                    running -= 1;
                    match joined {
                        Ok(f) => self.finish(f),
                        Err(e) => panic!("a step task panicked: {e}"),
                    }
                }
                () = self.req.interrupt.cancelled(), if self.stopping.is_none() => {}
            }
        }
        // Whatever never started is skipped (the run stopped before reaching it).
        for i in 0..self.state.len() {
            if self.state[i] == State::Pending {
                self.end_without_running(i, Outcome::Skipped, "the run stopped before this step");
            }
        }
        let outcome = self.stopping.unwrap_or_else(|| {
            let failed = self.req.runbook.steps.iter().enumerate().any(|(i, s)| {
                self.state[i] == State::Ended(Outcome::Failed) && !s.common.continue_on_error
            });
            if failed {
                RunOutcome::Failed
            } else {
                RunOutcome::Succeeded
            }
        });
        self.emit(EventKind::RunFinished {
            outcome,
            duration_seconds: self.started.elapsed().as_secs_f64(),
            gate_wait_seconds: self.gate_wait,
        });
        outcome
    }

    /// Decide the steps that end without running: restored from a resumed run, or skipped
    /// because a need failed.
    fn settle(&mut self) {
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..self.state.len() {
                if self.state[i] != State::Pending {
                    continue;
                }
                let needs = self.req.dag.needs[i].clone();
                if !needs
                    .iter()
                    .all(|&j| matches!(self.state[j], State::Ended(_)))
                {
                    continue;
                }
                let step = &self.req.runbook.steps[i];
                if self.only.as_ref().is_some_and(|only| !only[i]) {
                    // Not selected: what it did earlier stands (its outputs for the selected
                    // steps); a step that never succeeded is skipped.
                    if let Some(done) = self.resume_shared.done.get(step.id()) {
                        let fingerprint = done.fingerprint.clone();
                        self.reuse(i, fingerprint);
                    } else {
                        self.skipped_by_choice[i] = true;
                        self.end_without_running(i, Outcome::Skipped, "not selected by --only");
                    }
                    changed = true;
                    continue;
                }
                if step.common.always {
                    continue;
                }
                let broken = needs.iter().find(|&&j| {
                    let s = &self.req.runbook.steps[j];
                    match self.state[j] {
                        State::Ended(Outcome::Failed) => !s.common.continue_on_error,
                        State::Ended(Outcome::Cancelled) => true,
                        // A need skipped because of a failure upstream propagates the skip;
                        // one skipped by its own `when` does not.
                        State::Ended(Outcome::Skipped) => !self.skipped_by_choice[j],
                        _ => false,
                    }
                });
                if let Some(&j) = broken {
                    let reason = format!("needs `{}`, which did not succeed", self.id(j));
                    self.end_without_running(i, Outcome::Skipped, &reason);
                    changed = true;
                }
            }
        }
    }

    fn next_startable(&self) -> Option<usize> {
        (0..self.state.len()).find(|&i| {
            self.state[i] == State::Pending
                && self.req.dag.needs[i]
                    .iter()
                    .all(|&j| matches!(self.state[j], State::Ended(_)))
                && (self.stopping.is_none() || self.req.runbook.steps[i].common.always)
                && self.group_has_room(i)
        })
    }

    /// Whether step `i`'s `for_each` group runs fewer than its `max_parallel` items.
    fn group_has_room(&self, i: usize) -> bool {
        let Some(item) = &self.req.runbook.steps[i].item else {
            return true;
        };
        item.max_parallel
            .is_none_or(|max| self.group_running.get(&item.group).copied().unwrap_or(0) < max)
    }

    fn end_without_running(&mut self, i: usize, outcome: Outcome, reason: &str) {
        self.state[i] = State::Ended(outcome);
        self.emit(EventKind::StepFinished {
            step: self.id(i).to_owned(),
            outcome,
            attempts: 0,
            duration_seconds: 0.0,
            fingerprint: String::new(),
            outputs: Outputs::new(),
            error: None,
            reason: Some(reason.to_owned()),
            reused: false,
        });
    }

    /// The template context: `steps` is a view of the steps that have ended, kept up to date
    /// incrementally (rebuilding it for every step would cost O(steps²) over a run).
    fn template_context(&mut self) -> Value {
        for i in 0..self.state.len() {
            let State::Ended(outcome) = self.state[i] else {
                continue;
            };
            if self.published[i] {
                continue;
            }
            self.published[i] = true;
            let id = self.id(i).to_owned();
            let outputs = self
                .outputs
                .get(&id)
                .cloned()
                .unwrap_or(Json::Object(Outputs::new()));
            let entry = serde_json::json!({ "status": outcome, "outputs": outputs });
            self.ended
                .write()
                .expect("steps view")
                .insert(id, Value::from(minijinja::value::Serde(entry)));
        }
        self.req
            .ctx
            .value(Value::from_object(StepsView(self.ended.clone())))
    }

    /// Render, check `when` and resume state, and return the task that runs step `i`
    /// (`None` when it ended without running).
    fn start(&mut self, i: usize) -> Option<impl Future<Output = Finished> + Send + 'static> {
        let step = self.req.runbook.steps[i].clone();
        let id = step.id().to_owned();
        let ctx = step.scope(self.template_context());
        let masker = self.req.ctx.masker();
        if !self.when_allows(i, &ctx) {
            return None;
        }
        let rendered = self.render_kind(&step, &ctx, &masker);
        let kind = match rendered {
            Ok(k) => k,
            Err(msg) => {
                self.fail_now(i, &msg);
                return None;
            }
        };
        let masked_config = serde_json::to_value(&kind).map_or(Json::Null, |v| masker.mask_json(v));
        let fingerprint = step.fingerprint(&masked_config);
        let note = match self.resume_shared.done.get(&id) {
            Some(_) if self.forced[i] || self.resume_shared.all => {
                Some("asked to run again (--from/--only)".to_owned())
            }
            Some(_) if self.undone[i].is_some() => Some(format!(
                "`{}` undid it in an earlier attempt: running it again",
                self.undone[i].as_deref().unwrap_or_default()
            )),
            Some(_) if step.common.always && self.follows_work(i) => {
                Some("a step it follows ran in this attempt: running it again (always)".to_owned())
            }
            Some(done) if done.fingerprint == fingerprint => {
                self.reuse(i, fingerprint);
                return None;
            }
            Some(_) => {
                Some("its definition changed since the resumed run: running it again".to_owned())
            }
            None => None,
        };
        self.state[i] = State::Running;
        self.ran[i] = true;
        let cancel = if step.common.always {
            CancellationToken::new()
        } else {
            self.step_cancel.child_token()
        };
        let emit = self.emit.clone();
        let cx = StepCx {
            step_id: id.clone(),
            base_dir: self.req.runbook.base_dir(),
            engines: self.engines.clone(),
            stores: self.stores.clone(),
            progress: Progress::new(id.clone(), emit.clone()),
            cancel,
            masker,
            timeout: step.common.timeout.map(|d| d.0),
            approvals: Arc::new(self.req.approvals.clone()),
            approver: self.req.approver.clone(),
            interactive: self.req.interactive,
            emit: emit.clone(),
            now: self.req.ctx.now,
            run_id: self.req.ctx.run_id.clone(),
            resumed: self.req.resumed,
            template: ctx,
            runbooks: Arc::new(super::nested::SubRunbooks {
                resume: self.resume_shared.child(&id, self.whole[i]),
                jobs: self.req.jobs,
            }),
            gate_wait: crate::steps::cx::GateWait::default(),
        };
        let retries = step.common.retries.clone();
        let type_name = step.common.type_name.clone();
        Some(async move {
            let started = Instant::now();
            let (result, attempts) =
                attempt_loop(&kind, &cx, retries.as_ref(), &type_name, &fingerprint, note).await;
            Finished {
                index: i,
                result,
                attempts,
                started,
                fingerprint,
                gate_wait: cx.gate_wait.seconds(),
            }
        })
    }

    /// Render the step's configuration with real values and decode it into its type; the
    /// error names the field and the template.
    fn render_kind(
        &self,
        step: &crate::runbook::model::Step,
        ctx: &Value,
        masker: &crate::template::Masker,
    ) -> Result<crate::steps::StepKind, String> {
        step.render(&self.env, ctx).map_err(|e| match e {
            RenderError::Template(e, span) => masker.mask(&format!(
                "cannot render {}: {}",
                step.field_at(span),
                e.detail().unwrap_or(&e.to_string())
            )),
            RenderError::Decode(e) => masker.mask(&format!("after rendering: {}", e.message)),
        })
    }

    /// Evaluate the step's `when`; a false or failing one ends the step.
    fn when_allows(&mut self, i: usize, ctx: &Value) -> bool {
        let Some(when) = self.req.runbook.steps[i].common.when.clone() else {
            return true;
        };
        match template::eval(&self.env, &when, ctx.clone()) {
            Ok(v) if v.is_true() => true,
            Ok(_) => {
                self.skipped_by_choice[i] = true;
                self.end_without_running(i, Outcome::Skipped, &format!("`when: {when}` is false"));
                false
            }
            Err(e) => {
                let msg = self
                    .req
                    .ctx
                    .masker()
                    .mask(&format!("cannot evaluate `when`: {e}"));
                self.fail_now(i, &msg);
                false
            }
        }
    }

    /// Restore a step that succeeded in the resumed run with the same definition.
    fn reuse(&mut self, i: usize, fingerprint: String) {
        let id = self.id(i).to_owned();
        let outputs = self.resume_shared.done[&id].outputs.clone();
        self.state[i] = State::Ended(Outcome::Succeeded);
        self.outputs
            .insert(id.clone(), Json::Object(outputs.clone()));
        self.emit(EventKind::StepFinished {
            step: id,
            outcome: Outcome::Succeeded,
            attempts: 0,
            duration_seconds: 0.0,
            fingerprint,
            outputs,
            error: None,
            reason: Some("succeeded in the resumed run with the same definition".into()),
            reused: true,
        });
    }

    /// Whether a step that `i` follows (directly or not) ran in this attempt.
    fn follows_work(&self, i: usize) -> bool {
        let mut seen = vec![false; self.state.len()];
        let mut stack = self.req.dag.needs[i].clone();
        while let Some(j) = stack.pop() {
            if std::mem::replace(&mut seen[j], true) {
                continue;
            }
            if self.ran[j] {
                return true;
            }
            stack.extend(&self.req.dag.needs[j]);
        }
        false
    }

    fn fail_now(&mut self, i: usize, message: &str) {
        self.state[i] = State::Ended(Outcome::Failed);
        self.emit(EventKind::StepFinished {
            step: self.id(i).to_owned(),
            outcome: Outcome::Failed,
            attempts: 0,
            duration_seconds: 0.0,
            fingerprint: String::new(),
            outputs: Outputs::new(),
            error: Some(message.to_owned()),
            reason: None,
            reused: false,
        });
        self.note_failure(i);
    }

    fn note_failure(&mut self, i: usize) {
        let step = &self.req.runbook.steps[i];
        // An item of a group without `fail_fast` lets the other items go on; the run fails
        // at the end.
        if step.item.as_ref().is_some_and(|item| !item.fail_fast) {
            return;
        }
        if !step.common.continue_on_error && self.stopping.is_none() {
            self.stopping = Some(RunOutcome::Failed);
        }
    }

    fn finish(&mut self, f: Finished) {
        if let Some(item) = &self.req.runbook.steps[f.index].item
            && let Some(n) = self.group_running.get_mut(&item.group)
        {
            *n = n.saturating_sub(1);
        }
        let id = self.id(f.index).to_owned();
        let duration = f.started.elapsed().as_secs_f64();
        let (outcome, outputs, error) = match f.result {
            Ok(outputs) => (Outcome::Succeeded, outputs, None),
            Err(StepError::Failed(m)) => (Outcome::Failed, Outputs::new(), Some(m)),
            Err(StepError::Cancelled) => {
                (Outcome::Cancelled, Outputs::new(), Some("cancelled".into()))
            }
            Err(StepError::GatePending) => {
                // Not an outcome of the step: it stays pending for `--resume --approve`.
                if self.stopping.is_none() {
                    self.stopping = Some(RunOutcome::GatePending);
                }
                self.state[f.index] = State::Ended(Outcome::Skipped);
                self.emit(EventKind::StepFinished {
                    step: id,
                    outcome: Outcome::Skipped,
                    attempts: f.attempts,
                    duration_seconds: duration,
                    fingerprint: f.fingerprint,
                    outputs: Outputs::new(),
                    error: None,
                    reason: Some("waiting for approval".into()),
                    reused: false,
                });
                return;
            }
            Err(StepError::GateRejected(m)) => {
                if self.stopping.is_none() {
                    self.stopping = Some(RunOutcome::GateRejected);
                }
                (Outcome::Failed, Outputs::new(), Some(m))
            }
        };
        if outcome == Outcome::Succeeded {
            self.gate_wait += f.gate_wait;
        }
        self.state[f.index] = State::Ended(outcome);
        if outcome == Outcome::Succeeded {
            self.outputs
                .insert(id.clone(), Json::Object(outputs.clone()));
        }
        // Later steps of this run see the real values; what is recorded or shown is masked
        // (a secret in a file name, in an I/O error naming that file, …).
        let masker = self.req.ctx.masker();
        let outputs = masker.mask_map(outputs);
        let error = error.map(|e| masker.mask(&e));
        self.emit(EventKind::StepFinished {
            step: id,
            outcome,
            attempts: f.attempts,
            duration_seconds: duration,
            fingerprint: f.fingerprint,
            outputs,
            error,
            reason: None,
            reused: false,
        });
        if outcome == Outcome::Failed {
            self.note_failure(f.index);
        }
    }
}

/// Which steps `--from` and `--only` select, by index. An id of a sub-runbook's step
/// (`recover/start_web`) selects its parent step here; the sub-runbook selects the rest.
struct Selection {
    forced: Vec<bool>,
    whole: Vec<bool>,
    only: Option<Vec<bool>>,
}

impl Selection {
    fn new(req: &Request) -> Self {
        let steps = &req.runbook.steps;
        let n = steps.len();
        let index = |id: &str| {
            let top = id.split('/').next().unwrap_or_default();
            steps
                .iter()
                .position(|s| s.id() == top)
                .map(|i| (i, top == id))
        };
        let mut forced = vec![false; n];
        let mut whole = vec![false; n];
        let dependents = req.dag.dependents();
        for id in &req.resume.from {
            let Some((start, is_whole)) = index(id) else {
                continue;
            };
            whole[start] |= is_whole;
            let mut stack = vec![start];
            while let Some(i) = stack.pop() {
                if !std::mem::replace(&mut forced[i], true) {
                    stack.extend(&dependents[i]);
                    // Dependents of the selected step run again as a whole.
                    whole[i] |= i != start;
                }
            }
        }
        let only = req.resume.only.as_ref().map(|ids| {
            let mut sel = vec![false; n];
            for (i, is_whole) in ids.iter().filter_map(|id| index(id)) {
                sel[i] = true;
                forced[i] = true;
                whole[i] |= is_whole;
            }
            sel
        });
        Self {
            forced,
            whole,
            only,
        }
    }
}

/// For each step done earlier and undone since by an `always` step that ran after it (its
/// `undoes`), that step's id.
fn undone(req: &Request) -> Vec<Option<String>> {
    let steps = &req.runbook.steps;
    let mut out = vec![None; steps.len()];
    for undoer in steps.iter().filter(|s| s.common.always) {
        let Some(&ran) = req.resume.last_ran.get(undoer.id()) else {
            continue;
        };
        for target in &undoer.common.undoes {
            let Some(j) = steps.iter().position(|s| s.id() == target) else {
                continue;
            };
            if req.resume.done.get(target).is_some_and(|d| d.seq < ran) {
                out[j] = Some(undoer.id().to_owned());
            }
        }
    }
    out
}

/// How long a timed-out step may take to stop what it started, once cancelled (a container
/// exec's stop has its own 20 s deadline).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Attempts with timeout and retries. Returns the last result and the number of attempts.
async fn attempt_loop(
    kind: &crate::steps::StepKind,
    cx: &StepCx,
    retries: Option<&Retries>,
    type_name: &str,
    fingerprint: &str,
    note: Option<String>,
) -> (Result<Outputs, StepError>, u32) {
    let max = 1 + retries.map_or(0, |r| r.attempts);
    let mut delay = retries.map_or(Duration::ZERO, |r| r.delay.0);
    let mut attempt = 1;
    loop {
        cx.event(EventKind::StepStarted {
            step: cx.step_id.clone(),
            type_name: type_name.to_owned(),
            attempt,
            fingerprint: fingerprint.to_owned(),
            note: if attempt == 1 { note.clone() } else { None },
        });
        let attempt_cancel = cx.cancel.child_token();
        let mut acx = cx.clone();
        acx.cancel = attempt_cancel.clone();
        let fut = kind.run(&acx);
        let result = match cx.timeout {
            // Gates measure their own timeout (a person's time, not the machine's).
            Some(t) if !kind.step_type().gate => {
                tokio::pin!(fut);
                tokio::select! {
                    r = &mut fut => r,
                    () = tokio::time::sleep(t) => {
                        // Cancel, then let the step stop what it started (a process in a
                        // container is stopped through the engine, which takes round trips)
                        // instead of dropping it half way: rb may exit right after.
                        attempt_cancel.cancel();
                        let _ = tokio::time::timeout(STOP_GRACE, &mut fut).await;
                        Err(StepError::Failed(format!("timed out after {}", crate::duration::Dur(t))))
                    }
                }
            }
            _ => fut.await,
        };
        let retryable = matches!(result, Err(StepError::Failed(_)))
            && attempt < max
            && !cx.cancel.is_cancelled();
        if !retryable {
            return (result, attempt);
        }
        let Err(StepError::Failed(error)) = &result else {
            unreachable!("checked above")
        };
        cx.event(EventKind::StepRetrying {
            step: cx.step_id.clone(),
            attempt: attempt + 1,
            delay_seconds: delay.as_secs_f64(),
            error: cx.masker.mask(error),
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cx.cancel.cancelled() => return (Err(StepError::Cancelled), attempt),
        }
        if let Some(r) = retries {
            // Saturating: `mul_f64` panics past `Duration::MAX` (many retries, large backoff).
            delay = Duration::try_from_secs_f64(delay.as_secs_f64() * r.backoff.max(1.0))
                .unwrap_or(Duration::MAX);
            if let Some(m) = r.max_delay {
                delay = delay.min(m.0);
            }
        }
        attempt += 1;
    }
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
