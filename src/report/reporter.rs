//! The reporter: the one consumer of a run's events. It owns the sinks (the journal, the
//! terminal, the notifications) and fans every event out to them in order, ticks the
//! terminal every second, and when the run has ended writes the reports (`report.json`,
//! every `--report`, `--metrics`) and says how to go on (the pending gates to approve, the
//! command that resumes a failed run).

use super::notify::{self, Emit, Hook, Notifier};
use super::terminal::Terminal;
use super::{Format, model};
use crate::event::{EventKind, RunEvent, RunOutcome};
use crate::journal::Journal;
use crate::template::Masker;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the reporter needs to start.
pub struct Setup {
    /// `--quiet`: the terminal shows only failures and the final line.
    pub quiet: bool,
    /// The state directory (for the earlier runs the HTML report and the metrics compare with).
    pub state: PathBuf,
    /// The run's directory: its journal and `report.json`.
    pub run_dir: PathBuf,
    /// `--report` paths (the format follows the extension).
    pub reports: Vec<PathBuf>,
    /// `--metrics`.
    pub metrics: Option<PathBuf>,
    /// The events of the attempts before this one (a resumed run's), oldest first.
    pub earlier: Vec<RunEvent>,
    /// The runbook's webhooks.
    pub hooks: Vec<Hook>,
    /// The command that continues this run (`rb run FILE --resume RUN_ID`).
    pub resume_command: String,
    /// Masks secrets in the notifications' error texts.
    pub masker: Masker,
    /// Cancels the run: a run whose journal cannot be written starts no further step.
    pub stop: CancellationToken,
}

/// A run's reporter, from its first event to its reports.
pub struct Reporter {
    sinks: Arc<Mutex<Sinks>>,
    emit: Emit,
    notifier: Option<Notifier>,
    ticker: JoinHandle<()>,
    earlier: Vec<RunEvent>,
    resume_command: String,
    state: PathBuf,
    run_dir: PathBuf,
    reports: Vec<PathBuf>,
    metrics: Option<PathBuf>,
}

/// How the run ended, beyond its outcome.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// The journal could not be written: the run stopped before its next step.
    pub journal_failed: bool,
    /// The run's report says it took longer than its RTO.
    pub rto_missed: bool,
}

impl Reporter {
    /// Open the journal, journal `start` (the attempt's `RunStarted`) and show it, and start
    /// the terminal's ticker.
    pub fn start(setup: Setup, start: RunEvent) -> Result<Self, String> {
        let journal = Journal::open(&setup.run_dir).map_err(|e| {
            format!(
                "cannot open the journal in `{}`: {e}",
                setup.run_dir.display()
            )
        })?;
        let mut terminal = Terminal::new(setup.quiet);
        let first_start = setup.earlier.first().map(|e| e.at);
        if let Some(at) = first_start {
            terminal.set_first_start(at);
        }
        let sinks = Arc::new(Mutex::new(Sinks {
            journal,
            terminal,
            events: Vec::new(),
            failed_write: None,
            stop: setup.stop,
            held: None,
        }));
        let to_sinks = sinks.clone();
        let emit: Emit = Arc::new(move |e: RunEvent| {
            to_sinks.lock().expect("sinks").event(e);
        });
        let (emit, notifier) = notify::attach(
            emit,
            notify::Setup {
                hooks: setup.hooks,
                resume_command: setup.resume_command.clone(),
                first_start,
                masker: setup.masker,
            },
        );
        emit(start);
        let ticker = spawn_ticker(sinks.clone());
        Ok(Self {
            sinks,
            emit,
            notifier: Some(notifier),
            ticker,
            earlier: setup.earlier,
            resume_command: setup.resume_command,
            state: setup.state,
            run_dir: setup.run_dir,
            reports: setup.reports,
            metrics: setup.metrics,
        })
    }

    /// Where the executor sends its events.
    pub fn emit(&self) -> Emit {
        self.emit.clone()
    }

    /// The sinks, for the interrupt handler (a second interrupt holds the events while it
    /// stops everything, then journals how the run ended).
    pub fn sinks(&self) -> Arc<Mutex<Sinks>> {
        self.sinks.clone()
    }

    /// After the executor: wait for the notifications under way and stop the ticker. While a
    /// second interrupt is stopping what the steps started (their end is what let the
    /// executor finish), never returns: that journals the end of the run and exits.
    pub async fn settle(&mut self) {
        if let Some(n) = self.notifier.take() {
            n.finish().await;
        }
        self.ticker.abort();
        if self.sinks.lock().expect("sinks").held.is_some() {
            std::future::pending::<()>().await;
        }
    }

    /// Write the reports and say how to go on after `outcome`.
    pub fn finish(self, outcome: RunOutcome) -> Ended {
        let mut sinks = self.sinks.lock().expect("sinks");
        if let Some(e) = &sinks.failed_write {
            eprintln!(
                "error: the journal could not be written (`{}`: {e}); the run was stopped before \
                 its next step",
                sinks.journal.path().display()
            );
        }
        let mut events = self.earlier.clone();
        events.append(&mut sinks.events);
        let journal_failed = sinks.failed_write.is_some();
        drop(sinks);
        let report = model::build(&events);
        if let Some(r) = &report {
            self.write_reports(r);
        }
        if !journal_failed {
            self.say_how_to_go_on(outcome, &events);
        }
        Ended {
            journal_failed,
            rto_missed: report.as_ref().and_then(|r| r.rto_met) == Some(false),
        }
    }

    /// After a failure, the command that continues the run; at a gate, that command with
    /// `--approve` for each gate that asked and got no answer.
    fn say_how_to_go_on(&self, outcome: RunOutcome, events: &[RunEvent]) {
        let resume_command = &self.resume_command;
        match outcome {
            RunOutcome::Failed => {
                eprintln!("fix the cause, then continue with: {resume_command}");
            }
            RunOutcome::GatePending => {
                let gates = pending_gates(events);
                let approve: Vec<String> = gates.iter().map(|g| format!("--approve {g}")).collect();
                eprintln!(
                    "waiting for approval of gate {}; approve and continue with:\n  {resume_command} {}",
                    gates
                        .iter()
                        .map(|g| format!("`{g}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    approve.join(" ")
                );
            }
            RunOutcome::Succeeded | RunOutcome::GateRejected | RunOutcome::Interrupted => {}
        }
    }

    /// `report.json` in the run directory, every `--report`, and `--metrics`.
    fn write_reports(&self, r: &model::Report) {
        write_file(
            &self.run_dir.join("report.json"),
            &super::render(r, Format::Json, &[]),
            "report",
        );
        let needs_history = self.metrics.is_some()
            || self
                .reports
                .iter()
                .any(|p| Format::from_path(p) == Some(Format::Html));
        let history: Vec<model::Report> = if needs_history {
            super::history(&self.state, Some(&r.runbook))
                .unwrap_or_default()
                .into_iter()
                .filter(|h| h.run_id != r.run_id)
                .collect()
        } else {
            Vec::new()
        };
        for p in &self.reports {
            let format = Format::from_path(p).unwrap_or(Format::Json);
            write_file(p, &super::render(r, format, &history), "report");
        }
        if let Some(p) = &self.metrics {
            write_file(
                p,
                &super::render(r, Format::Prometheus, &history),
                "metrics",
            );
        }
    }
}

/// The gates that asked and got no answer (a sub-runbook's as `parent/gate`).
fn pending_gates(events: &[RunEvent]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::GateRequested { step, .. } if !out.contains(step) => {
                out.push(step.clone());
            }
            EventKind::GateAnswered { step, .. } => out.retain(|g| g != step),
            _ => {}
        }
    }
    out
}

fn write_file(path: &Path, text: &str, what: &str) {
    let result = crate::io::atomic::AtomicFile::create(path).and_then(|mut f| {
        use std::io::Write as _;
        f.write_all(text.as_bytes())
            .map_err(|e| crate::io::error::Error::io("write", path, e))?;
        f.commit()
    });
    if let Err(e) = result {
        eprintln!("error: cannot write the {what} `{}`: {e}", path.display());
    }
}

/// The sinks every event goes to, in order: journal first (on disk before anything else
/// happens), then the terminal.
pub struct Sinks {
    journal: Journal,
    terminal: Terminal,
    /// This attempt's events so far (without progress).
    events: Vec<RunEvent>,
    failed_write: Option<String>,
    /// Cancels the run: a run whose journal cannot be written starts no further step (it
    /// could neither be resumed nor reported), and runs its `always` steps.
    stop: CancellationToken,
    /// While a second interrupt stops everything, events are held here: a step whose
    /// process it kills must be journaled as stopped by it, not as failed with code 143.
    held: Option<Vec<RunEvent>>,
}

impl Sinks {
    /// This attempt's events so far (without progress): its `RunStarted` first.
    pub fn events(&self) -> &[RunEvent] {
        &self.events
    }

    /// Hold the events from now on instead of passing them on (a second interrupt is
    /// stopping everything).
    pub fn hold(&mut self) {
        self.held = Some(Vec::new());
    }

    /// Pass events on again, and return those held meanwhile.
    pub fn release(&mut self) -> Vec<RunEvent> {
        self.held.take().unwrap_or_default()
    }

    /// Journal, then show `e` (or hold it).
    pub fn event(&mut self, e: RunEvent) {
        if let Some(held) = &mut self.held {
            held.push(e);
            return;
        }
        if let Err(err) = self.journal.append(&e)
            && self.failed_write.is_none()
        {
            self.failed_write = Some(err.to_string());
            self.stop.cancel();
        }
        self.terminal.event(&e);
        if !matches!(e.kind, EventKind::StepProgressed { .. }) {
            self.events.push(e);
        }
    }
}

/// Every second the terminal may show the elapsed time and projected finish again (redrawn
/// on a terminal; without one, a line when a step has run a while without one).
fn spawn_ticker(sinks: Arc<Mutex<Sinks>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            if let Ok(mut s) = sinks.lock() {
                s.terminal.tick();
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::pending_gates;
    use crate::event::{EventKind, RunEvent};

    fn asked(step: &str) -> RunEvent {
        RunEvent::now(EventKind::GateRequested {
            step: step.into(),
            message: "go?".into(),
        })
    }

    #[test]
    fn the_pending_gates_are_those_asked_and_not_answered() {
        let answered = RunEvent::now(EventKind::GateAnswered {
            step: "a".into(),
            approved: true,
            by: "me".into(),
            waited_seconds: 1.0,
        });
        let events = [
            asked("a"),
            asked("sub/b"),
            asked("sub/b"),
            answered,
            asked("c"),
        ];
        assert_eq!(pending_gates(&events), ["sub/b", "c"]);
        assert!(pending_gates(&events[..0]).is_empty());
    }
}
