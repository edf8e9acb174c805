//! The terminal: progress bars for running steps on a terminal, plain timestamped lines
//! otherwise (logs, CI). Everything goes to stderr; `--quiet` keeps only failures.

use super::projection::Projection;
use crate::duration::human_secs;
use crate::event::{EventKind, Outcome, RunEvent, RunOutcome};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

/// Without a terminal, how often the projection is printed while steps run and none ends.
const PLAIN_EVERY_SECS: f64 = 60.0;

/// The terminal sink.
pub struct Terminal {
    quiet: bool,
    color: bool,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    rto: Option<f64>,
    /// A resumed run: when its first attempt started (the RTO runs from there).
    first_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Elapsed vs RTO and the projected finish, when the run has an RTO or estimates.
    projection: Option<Projection>,
    /// On a terminal: the line that shows the projection, above the steps.
    status: Option<ProgressBar>,
    /// Milestones not reached yet: name and the steps still to end (plain output prints the
    /// projection when one is reached).
    milestones: Vec<(String, Vec<String>)>,
    /// Gates waiting for an answer: while any is, the progress display is suspended (nothing
    /// is redrawn over the gate's question) and lines go straight to stderr.
    gates_open: Vec<String>,
}

impl Terminal {
    /// For a resumed run: judge the RTO from the first attempt's start.
    pub fn set_first_start(&mut self, at: chrono::DateTime<chrono::Utc>) {
        self.first_start = Some(at);
    }

    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none();
        let multi =
            (tty && !quiet).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            quiet,
            color,
            multi,
            bars: HashMap::new(),
            rto: None,
            first_start: None,
            projection: None,
            status: None,
            milestones: Vec::new(),
            gates_open: Vec::new(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn line(&self, e: &RunEvent, text: &str) {
        self.line_at(e.at, text);
    }

    fn line_at(&self, at: chrono::DateTime<chrono::Utc>, text: &str) {
        let line = format!("{} {text}", at.format("%H:%M:%S"));
        match &self.multi {
            Some(m) if self.gates_open.is_empty() => {
                let _ = m.println(line);
            }
            _ => eprintln!("{line}"),
        }
    }

    /// Follow the projection; on a terminal redraw its line, otherwise print it at the start,
    /// when a milestone is reached, and once a minute while steps run (`tick`): a log is for
    /// people reading it, not a line after every step.
    fn project(&mut self, e: &RunEvent) {
        if self.quiet {
            return;
        }
        if let EventKind::RunStarted { milestones, .. } = &e.kind {
            self.milestones = milestones
                .iter()
                .map(|m| (m.name.clone(), m.steps.clone()))
                .collect();
        }
        if let Some(mut p) = Projection::start(e) {
            if let Some(first) = self.first_start {
                p.count_from(first);
            }
            if let Some(m) = &self.multi {
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("⏱ {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(p.line(e.at));
                self.status = Some(bar);
            } else {
                self.line(e, &format!("⏱ {}", p.line(e.at)));
            }
            self.projection = Some(p);
            return;
        }
        let Some(p) = &mut self.projection else {
            return;
        };
        p.event(e);
        match (&self.status, &e.kind) {
            (_, EventKind::RunFinished { .. }) => {
                if let Some(bar) = self.status.take() {
                    bar.finish_and_clear();
                }
            }
            (_, EventKind::StepProgressed { .. }) => {}
            (Some(bar), _) => bar.set_message(p.line(e.at)),
            (None, EventKind::StepFinished { step, .. }) => {
                let mut reached = Vec::new();
                for (name, left) in &mut self.milestones {
                    if let Some(k) = left.iter().position(|s| s == step) {
                        left.remove(k);
                        if left.is_empty() {
                            reached.push(name.clone());
                        }
                    }
                }
                self.milestones.retain(|(_, left)| !left.is_empty());
                let lines: Vec<String> = reached
                    .into_iter()
                    .map(|name| {
                        p.shown(e.at);
                        format!("⏱ milestone {name}: {}", p.line(e.at))
                    })
                    .collect();
                for l in lines {
                    self.line(e, &l);
                }
            }
            _ => {}
        }
    }

    /// Between events: on a terminal redraw the projection line; otherwise print it when a
    /// step has been running for a while without a line (long steps in CI logs).
    pub fn tick(&mut self) {
        let now = chrono::Utc::now();
        let Some(p) = &mut self.projection else {
            return;
        };
        if !self.gates_open.is_empty() {
            // A person is reading a gate's question: nothing moves.
        } else if let Some(bar) = &self.status {
            bar.set_message(p.line(now));
        } else if let Some(line) = p.due(now, PLAIN_EVERY_SECS) {
            self.line_at(now, &format!("⏱ {line}"));
        }
    }

    /// A gate was answered (or its step ended without an answer): once none is open, the
    /// progress display resumes.
    fn gate_closed(&mut self, step: &str) {
        let before = self.gates_open.len();
        self.gates_open.retain(|g| g != step);
        if before > 0
            && self.gates_open.is_empty()
            && let Some(m) = &self.multi
        {
            m.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Show one event.
    pub fn event(&mut self, e: &RunEvent) {
        self.show(e);
        self.project(e);
    }
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per event kind, each a line of output"
    )]
    fn show(&mut self, e: &RunEvent) {
        match &e.kind {
            EventKind::RunStarted {
                run_id,
                runbook,
                rto_seconds,
                resumed,
                derived_from,
                ..
            } => {
                self.rto = *rto_seconds;
                if !self.quiet {
                    let what = if *resumed { "resuming" } else { "running" };
                    let rto = rto_seconds
                        .map_or_else(String::new, |r| format!(" (RTO {})", human_secs(r)));
                    let from = derived_from.as_ref().map_or_else(String::new, |d| {
                        format!(", taking the steps it does not run from run {d}")
                    });
                    self.line(e, &format!("{what} `{runbook}` as run {run_id}{rto}{from}"));
                }
            }
            EventKind::StepStarted {
                step,
                type_name,
                attempt,
                note,
                ..
            } => {
                if self.quiet {
                    return;
                }
                let mut again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                if let Some(n) = note {
                    again = format!("{again} — {n}");
                }
                if let Some(m) = &self.multi {
                    let bar = m.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(step.clone());
                    bar.set_message(format!("{type_name}{again}"));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.bars.insert(step.clone(), bar);
                } else {
                    self.line(e, &format!("▶ {step} ({type_name}){again}"));
                }
            }
            EventKind::StepProgressed { step, bytes } => {
                if let Some(bar) = self.bars.get(step) {
                    let secs = bar.elapsed().as_secs_f64().max(0.001);
                    bar.set_message(format!(
                        "{} at {}/s",
                        bytes_h(*bytes),
                        bytes_h(rate(*bytes, secs))
                    ));
                }
            }
            EventKind::StepRetrying {
                step,
                attempt,
                delay_seconds,
                error,
            } => {
                self.line(
                    e,
                    &format!(
                        "↻ {step}: {}; attempt {attempt} in {}",
                        first_line(error),
                        human_secs(*delay_seconds)
                    ),
                );
            }
            EventKind::GateRequested { step, message } => {
                // The gate may ask on this terminal: stop every redraw first, so that its
                // question and message stay on the screen until answered.
                if let Some(m) = &self.multi {
                    m.set_draw_target(ProgressDrawTarget::hidden());
                }
                self.gates_open.push(step.clone());
                if !self.quiet {
                    self.line(e, &format!("⏸ gate {step}: {}", first_line(message)));
                }
            }
            EventKind::NotificationFailed {
                webhook,
                notification,
                error,
            } => self.line(
                e,
                &format!(
                    "warning: the `{notification}` notification to webhook `{webhook}` failed: {error}"
                ),
            ),
            EventKind::GateAnswered {
                step, approved, by, ..
            } => {
                let verdict = if *approved { "approved" } else { "rejected" };
                self.line(e, &format!("gate {step} {verdict} by {by}"));
                self.gate_closed(step);
            }
            EventKind::StepFinished {
                step,
                outcome,
                duration_seconds,
                error,
                reason,
                reused,
                outputs,
                ..
            } => {
                self.gate_closed(step);
                if let Some(bar) = self.bars.remove(step) {
                    bar.finish_and_clear();
                }
                let took = human_secs(*duration_seconds);
                let text = match outcome {
                    Outcome::Succeeded if *reused => {
                        format!("{} {step} (done in the resumed run)", self.paint("32", "✔"))
                    }
                    Outcome::Succeeded => format!("{} {step} {took}", self.paint("32", "✔")),
                    Outcome::Failed => format!(
                        "{} {step} failed after {took}: {}",
                        self.paint("31", "✘"),
                        error.as_deref().unwrap_or("")
                    ),
                    Outcome::Skipped => format!(
                        "{} {step} skipped: {}",
                        self.paint("33", "−"),
                        reason.as_deref().unwrap_or("")
                    ),
                    Outcome::Cancelled => {
                        format!("{} {step} cancelled after {took}", self.paint("33", "■"))
                    }
                };
                if !self.quiet || *outcome == Outcome::Failed {
                    self.line(e, &text);
                }
                if !self.quiet && *outcome == Outcome::Succeeded && !*reused {
                    for line in super::decisions::terminal_lines(outputs) {
                        self.line(e, &line);
                    }
                }
            }
            EventKind::RunFinished {
                outcome,
                duration_seconds,
                gate_wait_seconds,
            } => {
                // The RTO is judged on the wall time since the first attempt started.
                let took = self.first_start.map_or(*duration_seconds, |t| {
                    (e.at - t).num_milliseconds() as f64 / 1000.0
                });
                let rto = self.rto.map_or_else(String::new, |r| {
                    let margin = r - took;
                    if *outcome != RunOutcome::Succeeded {
                        format!(
                            "; not recovered, {} of the RTO of {} used",
                            human_secs(took),
                            human_secs(r)
                        )
                    } else if margin >= 0.0 {
                        format!(
                            "; within the RTO of {} by {}",
                            human_secs(r),
                            human_secs(margin)
                        )
                    } else {
                        format!(
                            "; OVER the RTO of {} by {}",
                            human_secs(r),
                            human_secs(-margin)
                        )
                    }
                });
                let gates = if *gate_wait_seconds >= 0.05 {
                    format!(" ({} waiting at gates)", human_secs(*gate_wait_seconds))
                } else {
                    String::new()
                };
                let what = match outcome {
                    RunOutcome::Succeeded => self.paint("32", "succeeded"),
                    RunOutcome::Failed => self.paint("31", "failed"),
                    RunOutcome::GatePending => self.paint("33", "stopped at a gate"),
                    RunOutcome::GateRejected => self.paint("31", "stopped: gate rejected"),
                    RunOutcome::Interrupted => self.paint("33", "interrupted"),
                };
                let since = if self.first_start.is_some() {
                    format!(" ({} since the first attempt)", human_secs(took))
                } else {
                    String::new()
                };
                self.line(
                    e,
                    &format!(
                        "run {what} in {}{since}{gates}{rto}",
                        human_secs(*duration_seconds)
                    ),
                );
            }
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn bytes_h(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a positive rate for display"
)]
fn rate(bytes: u64, secs: f64) -> u64 {
    (bytes as f64 / secs) as u64
}
