//! SIGINT, SIGTERM and SIGHUP during `rb run`: the first cancels the run, the second stops
//! everything at once, and neither leaves a process a step started behind.

use crate::docker::StoppedExec;
use crate::event::{EventKind, Outcome, RunEvent, RunOutcome};
use crate::exit_code;
use crate::report::reporter::Sinks;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// First SIGINT/SIGTERM/SIGHUP: cancel the run (running steps are stopped, `always` steps
/// run). Second: stop at once, recording the interruption in the journal, but never leaving
/// a process a step started behind (see [`hard_stop`]).
pub(super) fn spawn_signal_handler(interrupt: CancellationToken, sinks: Arc<Mutex<Sinks>>) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        let mut count = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            count += 1;
            if count == 1 {
                eprintln!(
                    "\ninterrupted: stopping running steps and running cleanup steps (again to stop at once)"
                );
                interrupt.cancel();
            } else {
                hard_stop(&sinks).await;
                std::process::exit(i32::from(exit_code::INTERRUPTED));
            }
        }
    });
}

/// How long a second interrupt waits for the processes in containers to be stopped.
const HARD_STOP_WITHIN: Duration = Duration::from_secs(10);

/// A second interrupt: kill the process group of every local step and stop every process a
/// step started in a container (through the engine: nothing else would until the next
/// `--resume`), twice, for a step that started meanwhile. Events are held meanwhile; then
/// each step that was running is journaled as stopped by the second interrupt (saying
/// whether its container process was stopped), and the run as interrupted.
async fn hard_stop(sinks: &Mutex<Sinks>) {
    if let Ok(mut s) = sinks.lock() {
        s.hold();
    }
    let mut stopped = Vec::new();
    for round in 0..2 {
        crate::steps::exec::kill_running_groups();
        let found = crate::docker::stop_running_execs(HARD_STOP_WITHIN).await;
        if round == 0 && !found.is_empty() {
            eprintln!("interrupted again: stopping what steps run in containers, then exiting");
        }
        stopped.extend(found);
    }
    let Ok(mut s) = sinks.lock() else {
        return;
    };
    let held = s.release();
    for e in finish_events(s.events(), held, &stopped) {
        s.event(e);
    }
    // This attempt's time so far: its `RunStarted` is the first event.
    let duration_seconds = s.events().first().map_or(0.0, |e| {
        (Utc::now() - e.at).num_milliseconds() as f64 / 1000.0
    });
    s.event(RunEvent::now(EventKind::RunFinished {
        outcome: RunOutcome::Interrupted,
        duration_seconds,
        gate_wait_seconds: 0.0,
    }));
}

/// A step started and not finished: its id, attempt, fingerprint and start.
struct Running {
    step: String,
    attempt: u32,
    fingerprint: String,
    at: DateTime<Utc>,
}

/// Follow a step starting (`running` gains it) or finishing (loses it).
fn track(running: &mut Vec<Running>, e: &RunEvent) {
    match &e.kind {
        EventKind::StepStarted {
            step,
            attempt,
            fingerprint,
            ..
        } => {
            running.retain(|r| &r.step != step);
            running.push(Running {
                step: step.clone(),
                attempt: *attempt,
                fingerprint: fingerprint.clone(),
                at: e.at,
            });
        }
        EventKind::StepFinished { step, .. } => running.retain(|r| &r.step != step),
        _ => {}
    }
}

/// The events held during the stop, except that a step running and not succeeding (its
/// process was killed: "exited with code 143") ends as cancelled by the second interrupt,
/// with what became of its processes in containers; so does a step that is still running.
fn finish_events(
    before: &[RunEvent],
    held: Vec<RunEvent>,
    stopped: &[StoppedExec],
) -> Vec<RunEvent> {
    let mut running = Vec::new();
    for e in before {
        track(&mut running, e);
    }
    let mut out = Vec::new();
    let mut own: BTreeMap<String, Option<String>> = BTreeMap::new();
    for e in held {
        if let EventKind::StepFinished {
            step,
            outcome,
            error,
            ..
        } = &e.kind
            && *outcome != Outcome::Succeeded
            && running.iter().any(|r| &r.step == step)
        {
            own.insert(step.clone(), error.clone());
            continue;
        }
        if matches!(e.kind, EventKind::RunFinished { .. }) {
            continue; // the executor ended because of the stop: `hard_stop` says how
        }
        track(&mut running, &e);
        out.push(e);
    }
    let now = Utc::now();
    out.extend(running.into_iter().map(|r| {
        let own = own.get(&r.step).cloned().flatten();
        RunEvent::now(EventKind::StepFinished {
            outcome: Outcome::Cancelled,
            attempts: r.attempt,
            duration_seconds: (now - r.at).num_milliseconds() as f64 / 1000.0,
            fingerprint: r.fingerprint,
            outputs: serde_json::Map::new(),
            error: Some(stop_message(&r.step, own.as_deref(), stopped)),
            reason: None,
            reused: false,
            step: r.step,
        })
    }));
    out
}

/// "stopped at once by a second interrupt (`sleep` exited with code 143); its process in
/// container `db` was stopped".
fn stop_message(step: &str, own: Option<&str>, stopped: &[StoppedExec]) -> String {
    let mut message = "stopped at once by a second interrupt".to_owned();
    if let Some(own) = own {
        let _ = write!(message, " ({own})");
    }
    let suffix = format!("/{step}");
    for x in stopped
        .iter()
        .filter(|x| x.owner.as_ref().is_some_and(|o| o.ends_with(&suffix)))
    {
        let _ = match &x.result {
            Ok(()) => write!(
                message,
                "; its process in container `{}` was stopped",
                x.container
            ),
            Err(e) => write!(
                message,
                "; its process in container `{}` may still run ({e}): `--resume` stops it",
                x.container
            ),
        };
    }
    message
}
