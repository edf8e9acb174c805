//! The `notify:` sink: posts a Slack-compatible JSON message (`text`, plus `blocks` with the
//! run's facts as fields) to each webhook when the run starts, fails, succeeds, goes over its
//! RTO or stops at a gate. Fed by the run's events like the other sinks; a post that fails
//! (refused, timed out, not found, an error status) becomes a `NotificationFailed` event (the
//! terminal's warning and the journal's record), never a failure of the run.

use crate::duration::human_secs;
use crate::event::{EventKind, Outcome, RunEvent, RunOutcome};
use crate::runbook::model::Runbook;
use crate::runbook::notify::NotifyOn;
use crate::template::Masker;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Where events go.
pub type Emit = Arc<dyn Fn(RunEvent) + Send + Sync>;

/// A webhook ready to post to.
#[derive(Clone)]
pub struct Hook {
    /// The secret's name: the only way the webhook is ever named.
    pub name: String,
    url: String,
    on: Vec<NotifyOn>,
    timeout: Duration,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hook({} = ***)", self.name)
    }
}

/// The runbook's webhooks with their URLs (the secrets' values).
pub fn hooks(runbook: &Runbook, secrets: &BTreeMap<String, String>) -> Vec<Hook> {
    runbook
        .notify
        .iter()
        .filter_map(|n| {
            Some(Hook {
                name: n.spec.webhook.clone(),
                url: secrets.get(&n.spec.webhook)?.clone(),
                on: n.spec.on.clone(),
                timeout: n.spec.timeout(),
            })
        })
        .collect()
}

/// What the messages need besides the events.
pub struct Setup {
    pub hooks: Vec<Hook>,
    /// The command that continues this run (`rb run FILE --resume RUN_ID`); a gate's message
    /// adds `--approve GATE`.
    pub resume_command: String,
    /// When the run's first attempt started (a resumed run's RTO counts from there).
    pub first_start: Option<DateTime<Utc>>,
    /// Masks secrets in error texts (the URLs are secrets too).
    pub masker: Masker,
}

/// Waits for the posts still under way when the run has ended.
pub struct Notifier {
    state: Option<Arc<Mutex<State>>>,
}

/// Put the notifier between the executor and the other sinks: the returned `Emit` passes
/// every event on to `emit` and then to the notifier. Without webhooks it is `emit` itself.
pub fn attach(emit: Emit, setup: Setup) -> (Emit, Notifier) {
    if setup.hooks.is_empty() {
        return (emit, Notifier { state: None });
    }
    // reqwest is built with `rustls-no-provider`: `Err` only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state = Arc::new(Mutex::new(State {
        setup,
        client: reqwest::Client::new(),
        report: emit.clone(),
        run: RunFacts::default(),
        pending: Vec::new(),
        rto_timer: None,
        finished: false,
    }));
    let fed = state.clone();
    let wrapped: Emit = Arc::new(move |e: RunEvent| {
        let notify = !matches!(
            e.kind,
            EventKind::StepProgressed { .. } | EventKind::NotificationFailed { .. }
        );
        let copy = notify.then(|| e.clone());
        emit(e);
        if let Some(e) = copy {
            State::event(&fed, &e);
        }
    });
    (wrapped, Notifier { state: Some(state) })
}

impl Notifier {
    /// Wait for the posts under way (each bounded by its webhook's timeout) and stop the RTO
    /// timer. Failures have been reported through the events by then.
    pub async fn finish(self) {
        let Some(state) = self.state else { return };
        let (pending, longest) = {
            let mut s = state.lock().expect("notifier");
            s.finished = true;
            if let Some(t) = s.rto_timer.take() {
                t.abort();
            }
            let longest = s.setup.hooks.iter().map(|h| h.timeout).max();
            (std::mem::take(&mut s.pending), longest.unwrap_or_default())
        };
        // Each post gives up after its timeout; this bound only guards against a hung task.
        let all = futures_util::future::join_all(pending);
        let _ = tokio::time::timeout(longest + Duration::from_secs(1), all).await;
    }
}

/// What the run has shown so far.
#[derive(Default)]
struct RunFacts {
    runbook: String,
    run_id: String,
    resumed: bool,
    started: Option<DateTime<Utc>>,
    rto_seconds: Option<f64>,
    /// The first step that failed, with its error.
    failed: Option<(String, String)>,
    /// Gates asked for and not answered: id and message.
    gates: Vec<(String, String)>,
}

struct State {
    setup: Setup,
    client: reqwest::Client,
    /// Where failures of posts go (the sinks, not back to the notifier).
    report: Emit,
    run: RunFacts,
    pending: Vec<JoinHandle<()>>,
    rto_timer: Option<JoinHandle<()>>,
    finished: bool,
}

impl State {
    fn event(state: &Arc<Mutex<State>>, e: &RunEvent) {
        let mut s = state.lock().expect("notifier");
        match &e.kind {
            EventKind::RunStarted {
                run_id,
                runbook,
                rto_seconds,
                resumed,
                ..
            } => {
                s.run.runbook.clone_from(runbook);
                s.run.run_id.clone_from(run_id);
                s.run.resumed = *resumed;
                s.run.rto_seconds = *rto_seconds;
                let first = s.setup.first_start.unwrap_or(e.at);
                s.run.started = Some(first);
                let message = s.started_message();
                s.post(NotifyOn::Start, &message);
                if let Some(rto) = *rto_seconds {
                    s.rto_timer = Some(spawn_rto_timer(state.clone(), first, rto));
                }
            }
            EventKind::StepFinished {
                step,
                outcome: Outcome::Failed,
                error,
                ..
            } if s.run.failed.is_none() => {
                s.run.failed = Some((step.clone(), error.clone().unwrap_or_default()));
            }
            EventKind::GateRequested { step, message } => {
                s.run.gates.push((step.clone(), message.clone()));
            }
            EventKind::GateAnswered { step, .. } => s.run.gates.retain(|(g, _)| g != step),
            EventKind::RunFinished { outcome, .. } => {
                s.finished = true;
                if let Some(t) = s.rto_timer.take() {
                    t.abort();
                }
                let took = s.took(e.at);
                let (on, message) = match outcome {
                    RunOutcome::Succeeded => (NotifyOn::Success, s.succeeded_message(took)),
                    RunOutcome::GatePending => (NotifyOn::Gate, s.gate_message(took)),
                    RunOutcome::Failed | RunOutcome::GateRejected | RunOutcome::Interrupted => {
                        (NotifyOn::Failure, s.failed_message(*outcome, took))
                    }
                };
                s.post(on, &message);
            }
            _ => {}
        }
    }

    fn took(&self, at: DateTime<Utc>) -> f64 {
        self.run
            .started
            .map_or(0.0, |t| (at - t).num_milliseconds() as f64 / 1000.0)
    }

    /// Post `message` to every webhook that listens to `on`, each in a task of its own.
    fn post(&mut self, on: NotifyOn, message: &Value) {
        for hook in self.setup.hooks.iter().filter(|h| h.on.contains(&on)) {
            let request = self
                .client
                .post(&hook.url)
                .timeout(hook.timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(message.to_string());
            let report = self.report.clone();
            let masker = self.setup.masker.clone();
            let name = hook.name.clone();
            self.pending.push(tokio::spawn(async move {
                if let Err(error) = send(request).await {
                    report(RunEvent::now(EventKind::NotificationFailed {
                        webhook: name,
                        notification: on.as_str().to_owned(),
                        error: masker.mask(&error),
                    }));
                }
            }));
        }
    }
}

/// One post; the error never holds the URL.
async fn send(request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request.send().await.map_err(|e| describe(&e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.trim().chars().take(200).collect();
    Err(if body.is_empty() {
        format!("the webhook answered {status}")
    } else {
        format!("the webhook answered {status}: {body}")
    })
}

/// A reqwest error without its URL, with the cause that says what happened (a refused
/// connection, a name that did not resolve).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let what = if e.is_timeout() {
        "no answer in time (timed out)".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "cannot send".to_owned()
    };
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    // The innermost cause names it best ("Connection refused", "failed to lookup address").
    match causes.last() {
        Some(c) if !e.is_timeout() => format!("{what}: {c}"),
        _ => what,
    }
}

fn spawn_rto_timer(state: Arc<Mutex<State>>, first: DateTime<Utc>, rto: f64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let rto = Duration::from_secs_f64(rto.max(0.0));
        let deadline = first + chrono::Duration::from_std(rto).unwrap_or(chrono::TimeDelta::MAX);
        let left = (deadline - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(left).await;
        let mut s = state.lock().expect("notifier");
        if !s.finished {
            let message = s.over_rto_message(s.took(Utc::now()), rto.as_secs_f64());
            s.post(NotifyOn::OverRto, &message);
        }
    })
}

impl State {
    fn started_message(&self) -> Value {
        let what = if self.run.resumed {
            "resumed"
        } else {
            "started"
        };
        self.message(
            &format!("▶️ rb: `{}` {what}", self.run.runbook),
            "start",
            None,
            None,
        )
    }

    fn succeeded_message(&self, took: f64) -> Value {
        let mut text = format!(
            "✅ rb: `{}` succeeded in {}",
            self.run.runbook,
            human_secs(took)
        );
        if let Some(rto) = self.run.rto_seconds {
            if took <= rto {
                let _ = write!(text, ", within its RTO of {}", objective(rto));
            } else {
                let _ = write!(
                    text,
                    ", over its RTO of {} by {}",
                    objective(rto),
                    human_secs(took - rto)
                );
            }
        }
        self.message(&text, "success", Some(took), None)
    }

    fn failed_message(&self, outcome: RunOutcome, took: f64) -> Value {
        let runbook = &self.run.runbook;
        let after = human_secs(took);
        let text = match (&self.run.failed, outcome) {
            (_, RunOutcome::Interrupted) => {
                format!("❌ rb: `{runbook}` was interrupted after {after}")
            }
            (Some((step, error)), _) => format!(
                "❌ rb: `{runbook}` failed after {after} at step `{step}`: {}",
                clip(error)
            ),
            (None, _) => format!("❌ rb: `{runbook}` failed after {after}"),
        };
        let command = Some((
            "Fix the cause, then continue with:",
            self.setup.resume_command.clone(),
        ));
        self.message(&text, "failure", Some(took), command)
    }

    fn over_rto_message(&self, took: f64, rto: f64) -> Value {
        let text = format!(
            "⚠️ rb: `{}` is over its RTO of {}: still running after {}",
            self.run.runbook,
            objective(rto),
            human_secs(took)
        );
        self.message(&text, "over_rto", Some(took), None)
    }

    fn gate_message(&self, took: f64) -> Value {
        let gates: Vec<&(String, String)> = self
            .run
            .gates
            .iter()
            .filter(|(g, _)| {
                !self
                    .run
                    .gates
                    .iter()
                    .any(|(o, _)| o.starts_with(&format!("{g}/")))
            })
            .collect();
        let names: Vec<String> = gates.iter().map(|(g, _)| format!("`{g}`")).collect();
        let mut text = format!(
            "⏸️ rb: `{}` is waiting for approval at gate {}",
            self.run.runbook,
            names.join(", ")
        );
        for (_, message) in &gates {
            let _ = write!(text, "\n{}", clip(message.trim()));
        }
        let approve: Vec<String> = gates
            .iter()
            .map(|(g, _)| format!("--approve {g}"))
            .collect();
        let command = format!("{} {}", self.setup.resume_command, approve.join(" "));
        self.message(
            &text,
            "gate",
            Some(took),
            Some(("Approve and continue with:", command)),
        )
    }

    /// The Slack-compatible shape: `text` (the whole message, for receivers that read only
    /// that and for notifications), and `blocks`: the text, the run's facts as fields, and
    /// the command to run next, if any.
    fn message(
        &self,
        text: &str,
        event: &str,
        took: Option<f64>,
        command: Option<(&str, String)>,
    ) -> Value {
        let mut fields = vec![
            ("Runbook", self.run.runbook.clone()),
            ("Run", self.run.run_id.clone()),
            ("Event", event.to_owned()),
            ("Host", hostname()),
        ];
        if let Some(t) = took {
            fields.push(("Elapsed", human_secs(t)));
        }
        if let Some(rto) = self.run.rto_seconds {
            fields.push(("RTO", objective(rto)));
        }
        let mut plain = text.to_owned();
        let mut blocks = vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": escape(text)}}),
            json!({"type": "section", "fields": fields.iter().map(|(k, v)| json!({
                "type": "mrkdwn",
                "text": format!("*{k}*\n{}", escape(v)),
            })).collect::<Vec<_>>()}),
        ];
        if let Some((lead, command)) = command {
            let _ = write!(plain, "\n{lead} {command}");
            blocks.push(json!({"type": "section", "text": {
                "type": "mrkdwn",
                "text": format!("{lead}\n```{}```", escape(&command)),
            }}));
        }
        json!({"text": escape(&plain), "blocks": blocks})
    }
}

/// An objective as a runbook writes it: `1h`, `90s`.
fn objective(secs: f64) -> String {
    crate::duration::Dur(Duration::from_secs_f64(secs.max(0.0))).to_string()
}

/// Slack reads `&`, `<` and `>` as markup (`<!channel>` would ping everyone).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A section's text holds at most 3000 characters: an error or a gate's message is cut.
fn clip(s: &str) -> String {
    const MAX: usize = 1500;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        s.chars().take(MAX).chain("…".chars()).collect()
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
