//! The executor with fake steps (the test-only `fake` type): order, parallelism, failures,
//! `always`, timeouts, retries, cancellation, resume and the typed gate signals. Time is
//! tokio's paused clock, so a step that "runs 10 s" costs nothing.

use super::{Done, Request, Resume, execute};
use crate::event::{EventKind, Outcome, RunEvent, RunOutcome};
use crate::template::{Context, Mode};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A request for the runbook with these steps (YAML list items).
fn request(steps: &str, jobs: usize) -> Request {
    let text = format!("version: 1\nname: t\nsteps:\n{steps}");
    let loaded = crate::runbook::load::load_str(Path::new("/tmp/executor-test.yaml"), text);
    let mut diags = loaded.diagnostics;
    let runbook = loaded.runbook.expect("the runbook loads");
    let dag = crate::runbook::validate::validate(&runbook, &mut diags);
    assert!(
        diags.is_empty(),
        "{:?}",
        diags.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
    let ctx = Context::new(
        &runbook,
        BTreeMap::new(),
        BTreeMap::new(),
        chrono::Utc::now(),
        "run".into(),
        Mode::Run,
    );
    Request {
        runbook: Arc::new(runbook),
        dag,
        ctx,
        jobs,
        resume: Resume::default(),
        approvals: Vec::new(),
        approver: "tester".into(),
        interactive: false,
        resumed: false,
        interrupt: CancellationToken::new(),
    }
}

/// What a run emitted.
struct Ran {
    outcome: RunOutcome,
    events: Vec<EventKind>,
}

async fn run(req: Request) -> Ran {
    let events: Arc<Mutex<Vec<EventKind>>> = Arc::default();
    let sink = events.clone();
    let emit = Arc::new(move |e: RunEvent| sink.lock().expect("events").push(e.kind));
    let outcome = execute(req, emit).await;
    let events = std::mem::take(&mut *events.lock().expect("events"));
    Ran { outcome, events }
}

/// A step's finish as the executor reported it.
#[derive(Debug)]
struct Finish {
    outcome: Outcome,
    attempts: u32,
    error: Option<String>,
    reason: Option<String>,
    reused: bool,
    fingerprint: String,
}

impl Ran {
    /// `start ID` and `end ID` in the order they happened.
    fn log(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                EventKind::StepStarted { step, .. } => Some(format!("start {step}")),
                EventKind::StepFinished { step, attempts, .. } if *attempts > 0 => {
                    Some(format!("end {step}"))
                }
                _ => None,
            })
            .collect()
    }

    fn finish(&self, id: &str) -> Finish {
        self.events
            .iter()
            .find_map(|e| match e {
                EventKind::StepFinished {
                    step,
                    outcome,
                    attempts,
                    error,
                    reason,
                    reused,
                    fingerprint,
                    ..
                } if step == id => Some(Finish {
                    outcome: *outcome,
                    attempts: *attempts,
                    error: error.clone(),
                    reason: reason.clone(),
                    reused: *reused,
                    fingerprint: fingerprint.clone(),
                }),
                _ => None,
            })
            .unwrap_or_else(|| panic!("step `{id}` never finished"))
    }

    fn gate_wait(&self) -> f64 {
        self.events
            .iter()
            .find_map(|e| match e {
                EventKind::RunFinished {
                    gate_wait_seconds, ..
                } => Some(*gate_wait_seconds),
                _ => None,
            })
            .expect("the run finished")
    }
}

#[tokio::test(start_paused = true)]
async fn steps_run_after_what_they_need() {
    let ran = run(request(
        "  - { id: c, type: fake, millis: 5, needs: [b] }\n\
         \x20 - { id: a, type: fake, millis: 30, needs: [] }\n\
         \x20 - { id: b, type: fake, millis: 10, needs: [a] }\n",
        4,
    ))
    .await;
    assert_eq!(ran.outcome, RunOutcome::Succeeded);
    assert_eq!(
        ran.log(),
        ["start a", "end a", "start b", "end b", "start c", "end c"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_parallel_group_runs_together_within_jobs() {
    let steps = "  - { id: a, type: fake, millis: 50, needs: [] }\n\
                 \x20 - { id: b, type: fake, millis: 50, needs: [] }\n\
                 \x20 - { id: c, type: fake, millis: 50, needs: [a, b] }\n";
    let together = run(request(steps, 2)).await;
    let log = together.log();
    assert_eq!(&log[..2], ["start a", "start b"], "{log:?}");
    assert_eq!(&log[4..], ["start c", "end c"], "{log:?}");
    let one_at_a_time = run(request(steps, 1)).await;
    assert_eq!(
        one_at_a_time.log(),
        ["start a", "end a", "start b", "end b", "start c", "end c"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_skips_its_dependents_and_stops_the_run() {
    let ran = run(request(
        "  - { id: a, type: fake, fail: broken, needs: [] }\n\
         \x20 - { id: b, type: fake, needs: [a] }\n\
         \x20 - { id: tolerated, type: fake, fail: meh, continue_on_error: true, needs: [] }\n\
         \x20 - { id: after_tolerated, type: fake, needs: [tolerated] }\n",
        1,
    ))
    .await;
    assert_eq!(ran.outcome, RunOutcome::Failed);
    let a = ran.finish("a");
    assert_eq!(
        (a.outcome, a.error.as_deref()),
        (Outcome::Failed, Some("broken"))
    );
    let b = ran.finish("b");
    assert_eq!(b.outcome, Outcome::Skipped);
    assert_eq!(
        b.reason.as_deref(),
        Some("needs `a`, which did not succeed")
    );
    // Nothing new starts once a failure stops the run.
    let t = ran.finish("tolerated");
    assert_eq!(t.outcome, Outcome::Skipped);
    assert_eq!(
        t.reason.as_deref(),
        Some("the run stopped before this step")
    );
}

#[tokio::test(start_paused = true)]
async fn continue_on_error_lets_dependents_run() {
    let ran = run(request(
        "  - { id: tolerated, type: fake, fail: meh, continue_on_error: true }\n\
         \x20 - { id: after, type: fake, needs: [tolerated] }\n",
        1,
    ))
    .await;
    assert_eq!(ran.outcome, RunOutcome::Succeeded);
    assert_eq!(ran.finish("tolerated").outcome, Outcome::Failed);
    assert_eq!(ran.finish("after").outcome, Outcome::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn always_steps_run_after_a_failure() {
    let ran = run(request(
        "  - { id: a, type: fake, fail: broken }\n\
         \x20 - { id: b, type: fake }\n\
         \x20 - { id: cleanup, type: fake, always: true, needs: [b] }\n",
        1,
    ))
    .await;
    assert_eq!(ran.outcome, RunOutcome::Failed);
    assert_eq!(ran.finish("b").outcome, Outcome::Skipped);
    assert_eq!(ran.finish("cleanup").outcome, Outcome::Succeeded);
    assert_eq!(
        ran.log(),
        ["start a", "end a", "start cleanup", "end cleanup"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_past_its_timeout_fails_and_is_retried() {
    let ran = run(request(
        "  - id: slow\n    type: fake\n    millis: 10000\n    timeout: 50ms\n    \
         retries: { attempts: 2, delay: 1s }\n",
        1,
    ))
    .await;
    assert_eq!(ran.outcome, RunOutcome::Failed);
    let slow = ran.finish("slow");
    assert_eq!(slow.outcome, Outcome::Failed);
    assert_eq!(slow.attempts, 3);
    assert_eq!(slow.error.as_deref(), Some("timed out after 50ms"));
    let retries = ran
        .events
        .iter()
        .filter(|e| matches!(e, EventKind::StepRetrying { .. }))
        .count();
    assert_eq!(retries, 2);
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_cancels_running_steps_and_still_runs_always_steps() {
    let req = request(
        "  - { id: long, type: fake, millis: 100000 }\n\
         \x20 - { id: next, type: fake }\n\
         \x20 - { id: cleanup, type: fake, millis: 10, always: true, needs: [next] }\n",
        2,
    );
    let interrupt = req.interrupt.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        interrupt.cancel();
    });
    let ran = run(req).await;
    assert_eq!(ran.outcome, RunOutcome::Interrupted);
    assert_eq!(ran.finish("long").outcome, Outcome::Cancelled);
    assert_eq!(ran.finish("next").outcome, Outcome::Skipped);
    assert_eq!(ran.finish("cleanup").outcome, Outcome::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn resume_reuses_what_succeeded_with_the_same_definition() {
    let steps = "  - { id: a, type: fake, outputs: { n: 1 } }\n\
                 \x20 - { id: b, type: fake, fail: once }\n";
    let first = run(request(steps, 1)).await;
    assert_eq!(first.outcome, RunOutcome::Failed);
    let done = |fingerprint: String| {
        let mut resume = Resume::default();
        let mut outputs = crate::steps::cx::Outputs::new();
        outputs.insert("n".into(), 1.into());
        resume.done.insert(
            "a".into(),
            Done {
                fingerprint,
                outputs,
                seq: 1,
            },
        );
        resume
    };
    let mut again = request(steps, 1);
    again.resume = done(first.finish("a").fingerprint);
    let second = run(again).await;
    let a = second.finish("a");
    assert!(a.reused, "{a:?}");
    assert_eq!((a.outcome, a.attempts), (Outcome::Succeeded, 0));
    assert_eq!(second.log(), ["start b", "end b"]);

    let mut changed = request(steps, 1);
    changed.resume = done("another definition".into());
    let third = run(changed).await;
    assert!(!third.finish("a").reused);
    let note = third.events.iter().find_map(|e| match e {
        EventKind::StepStarted { step, note, .. } if step == "a" => note.clone(),
        _ => None,
    });
    assert_eq!(
        note.as_deref(),
        Some("its definition changed since the resumed run: running it again")
    );
}

#[tokio::test(start_paused = true)]
async fn a_pending_approval_and_gate_wait_are_typed() {
    let waited = run(request(
        "  - { id: approved, type: fake, waited: 2.5 }\n\
         \x20 - { id: failed, type: fake, waited: 7, fail: no, continue_on_error: true }\n",
        1,
    ))
    .await;
    // Only the wait of a step that succeeded counts.
    assert!(
        (waited.gate_wait() - 2.5).abs() < 1e-9,
        "{}",
        waited.gate_wait()
    );
    let pending = run(request(
        "  - { id: ask, type: fake, pending: true }\n\
         \x20 - { id: after, type: fake }\n",
        1,
    ))
    .await;
    assert_eq!(pending.outcome, RunOutcome::GatePending);
    assert_eq!(pending.finish("ask").outcome, Outcome::Skipped);
    assert_eq!(pending.finish("after").outcome, Outcome::Skipped);
}
