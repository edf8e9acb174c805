//! `rb run FILE`: run (or resume) a runbook.

use super::ParamArgs;
use super::diagnostics::{load_valid, prepare};
use crate::event::{EventKind, PlannedMilestone, PlannedStep, RunEvent, RunOutcome};
use crate::exec::executor::{self, Request};
use crate::exec::lock::{RunLock, TargetLock};
use crate::exec::state;
use crate::exit_code;
use crate::journal::{self, Journal, RunRecord};
use crate::report::terminal::Terminal;
use crate::report::{self, Format, model};
use crate::template::Mode;
use sha2::{Digest, Sha256};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The runbook.
    pub file: PathBuf,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Show the plan and run nothing (same as `rb plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Continue the newest unfinished run of this runbook, or the run named.
    #[arg(long, value_name = "RUN_ID", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,
    /// Run STEP again and everything that depends on it; the other steps are taken from the
    /// unfinished run (with --resume) or, in a new run, from the newest successful run.
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Run only STEP; its needs are taken from the unfinished run (with --resume) or, in a
    /// new run, from the newest successful run.
    #[arg(long, value_name = "STEP", conflicts_with = "from")]
    pub only: Option<String>,
    /// Approve a gate (repeatable).
    #[arg(long, value_name = "GATE")]
    pub approve: Vec<String>,
    /// Who approves (default: $USER).
    #[arg(long, value_name = "NAME")]
    pub approver: Option<String>,
    /// Steps run at once at most.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub jobs: usize,
    /// Write the report here too; the format follows the extension: .json, .md, .xml
    /// (`JUnit`), .html, .txt, .prom (repeatable).
    #[arg(long, value_name = "PATH")]
    pub report: Vec<PathBuf>,
    /// Write Prometheus metrics of the run here (text format, for the textfile collector).
    #[arg(long, value_name = "PATH")]
    pub metrics: Option<PathBuf>,
    /// State directory (runs, journals, locks).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Show only failures and the final line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Exit 4 when the run succeeded but took longer than the RTO.
    #[arg(long)]
    pub fail_over_rto: bool,
    /// How long to wait for a target lock (`locks:`) that another run holds, e.g. `10m`;
    /// by default a held lock fails the run at once, naming the holder.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub lock_wait: crate::duration::Dur,
    /// Directory of target locks (`locks:`), shared by every run on the machine; default
    /// `$RB_LOCK_DIR`, else `/run/lock/rb`.
    #[arg(long, value_name = "DIR")]
    pub lock_dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> u8 {
    if args.dry_run {
        return super::plan::run(&super::plan::Args {
            file: args.file.clone(),
            params: args.params.clone(),
            format: super::plan::Format::Text,
            check: false,
            diff: false,
            new: None,
            state_dir: None,
            no_history: true,
        });
    }
    for p in &args.report {
        if Format::from_path(p).is_none() {
            eprintln!(
                "error: cannot tell the report format of `{}`: use .json, .md, .xml, .html, .txt or .prom",
                p.display()
            );
            return exit_code::INVALID;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = runtime.block_on(run_async(args));
    // A gate that timed out on a terminal leaves its prompt blocked reading stdin; dropping
    // the runtime would wait for that read for ever (until someone pressed Enter).
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

fn sha256_file(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| hex::encode(Sha256::digest(&b)))
        .unwrap_or_default()
}

/// What a run starts from: nothing, an unfinished run it continues (`--resume`), or a
/// finished run whose steps it takes (`--from`/`--only` after it finished: a new run).
enum Basis {
    Fresh,
    Resume(RunRecord),
    Derived(RunRecord),
}

impl Basis {
    fn record(&self) -> Option<&RunRecord> {
        match self {
            Basis::Fresh => None,
            Basis::Resume(r) | Basis::Derived(r) => Some(r),
        }
    }
}

/// Find what the run starts from. A finished run is never continued: its journal and
/// reports are the evidence of what happened.
fn find_basis(args: &Args, state: &Path, name: &str) -> Result<Basis, String> {
    let selecting = args.from.is_some() || args.only.is_some();
    if args.resume.is_none() && !selecting {
        return Ok(Basis::Fresh);
    }
    let runs = journal::runs(state, Some(name)).map_err(|e| format!("cannot read runs: {e}"))?;
    let newest_success = || runs.iter().rev().find(|r| r.succeeded()).cloned();
    match args.resume.as_deref() {
        Some("") => {
            if let Some(r) = runs.iter().rev().find(|r| !r.succeeded()) {
                return Ok(Basis::Resume(r.clone()));
            }
            match newest_success() {
                Some(r) if selecting => {
                    eprintln!(
                        "run `{}` of `{name}` finished and stays as it is; a new run takes its steps",
                        r.run_id
                    );
                    Ok(Basis::Derived(r))
                }
                _ => Err(format!(
                    "no unfinished run of `{name}` to resume in `{}`",
                    state.display()
                )),
            }
        }
        Some(wanted) => {
            let r = runs
                .iter()
                .find(|r| r.run_id == wanted)
                .ok_or_else(|| format!("no run `{wanted}` of `{name}` in `{}`", state.display()))?;
            if r.succeeded() {
                return Err(format!(
                    "run `{wanted}` of `{name}` already succeeded and is kept as it is; to run \
                     steps again in a new run that takes the others from it, give `--from STEP` \
                     or `--only STEP` without `--resume`"
                ));
            }
            Ok(Basis::Resume(r.clone()))
        }
        None => Ok(newest_success().map_or(Basis::Fresh, Basis::Derived)),
    }
}

/// `--approve`, `--from` and `--only` name steps the run can reach (sub-runbooks' included);
/// `--approve` names a gate. Checked before anything runs.
fn check_selected_ids(args: &Args, p: &super::Prepared) -> Result<(), String> {
    let all = crate::plan::nested::all_ids(&p.plan.steps);
    let known = |id: &str| all.iter().any(|(k, _)| k == id);
    let name = &p.runbook.name;
    for id in args.from.iter().chain(args.only.iter()) {
        if !known(id) {
            let ids: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
            return Err(format!(
                "no step `{id}` in `{name}`; {}",
                crate::runbook::diagnostic::suggest(id, &ids, "step ids")
            ));
        }
    }
    for id in &args.approve {
        if all.iter().any(|(k, gate)| k == id && *gate) {
            continue;
        }
        let gates = if p.plan.gates.is_empty() {
            "it has no gates".to_owned()
        } else {
            format!(
                "its gates: {}",
                p.plan
                    .gates
                    .iter()
                    .map(|g| format!("`{g}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let what = if known(id) {
            "is not a gate"
        } else {
            "is not a step"
        };
        return Err(format!(
            "`--approve {id}`: `{id}` {what} of `{name}`; {gates}"
        ));
    }
    Ok(())
}

/// `--only` in a new run: the selected steps' needs must come from the run it derives from.
fn check_only_needs(
    p: &super::Prepared,
    basis: &Basis,
    earlier: &executor::Resume,
    only: &str,
) -> Result<(), String> {
    let Some(i) = p.runbook.steps.iter().position(|s| s.id() == only) else {
        return Ok(()); // a sub-runbook's step: its parent runs, the sub-runbook checks the rest
    };
    let missing: Vec<String> = p.dag.needs[i]
        .iter()
        .map(|&j| p.runbook.steps[j].id().to_owned())
        .filter(|id| !earlier.done.contains_key(id))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
    Err(match basis.record() {
        Some(r) => format!(
            "`--only {only}` needs {}, which did not succeed in run `{}`; run them too (`--from`) or the whole runbook",
            list.join(", "),
            r.run_id
        ),
        None => format!(
            "`--only {only}` needs {}, and no earlier successful run of `{}` has them; run the whole runbook first",
            list.join(", "),
            p.runbook.name
        ),
    })
}

#[expect(
    clippy::too_many_lines,
    reason = "the one place that wires a run together, in order"
)]
async fn run_async(args: &Args) -> u8 {
    let state = state::state_dir(args.state_dir.as_deref());
    let Some((runbook, _)) = load_valid(&args.file) else {
        return exit_code::INVALID;
    };
    let basis = match find_basis(args, &state, &runbook.name) {
        Ok(b) => b,
        Err(msg) => {
            eprintln!("error: {msg}");
            return exit_code::INVALID;
        }
    };
    let resumed = match &basis {
        Basis::Resume(r) => Some(r),
        _ => None,
    };
    // On resume, `now` and the params come from the journal so names stay the same: those of
    // the newest attempt, so that a value corrected with `-p` on one `--resume` stays for the
    // next. A `-p` given now wins over the journal's.
    let mut params = args.params.clone();
    if let Some(EventKind::RunStarted {
        now, params: old, ..
    }) = resumed.and_then(RunRecord::last_started).map(|e| &e.kind)
    {
        params.now = Some(now.to_rfc3339());
        let mut pairs: Vec<String> = old
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect();
        pairs.extend(params.params.iter().cloned());
        params.params = pairs;
    }
    let secrets = match crate::exec::secrets::read(&runbook) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}\nno step was run");
            return exit_code::INVALID;
        }
    };
    let run_id = resumed.map_or_else(
        || state::new_run_id(chrono::Utc::now()),
        |r| r.run_id.clone(),
    );
    let Some(mut prepared) = prepare(&args.file, &params, Mode::Run, &run_id, secrets) else {
        return exit_code::INVALID;
    };
    // Estimates from past runs, for the projected finish on the terminal.
    let estimates = super::plan::history_estimates(&state, &prepared.runbook.name);
    crate::plan::build::apply_history(
        &mut prepared.plan,
        &prepared.runbook,
        &prepared.dag,
        &estimates,
        prepared.ctx.now,
    );
    if let Err(msg) = check_selected_ids(args, &prepared) {
        eprintln!("error: {msg}");
        return exit_code::INVALID;
    }
    // What the run takes from the run it continues or derives from.
    let mut resume = basis.record().map(RunRecord::earlier).unwrap_or_default();
    if let Some(only) = &args.only
        && !matches!(basis, Basis::Resume(_))
        && let Err(msg) = check_only_needs(&prepared, &basis, &resume, only)
    {
        eprintln!("error: {msg}");
        return exit_code::INVALID;
    }
    let _lock = match RunLock::acquire(&state, &prepared.runbook.name, &run_id) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code::STEP_FAILED;
        }
    };
    // Before the journal exists: a run refused here leaves no trace to resume.
    let _targets = match TargetLock::acquire_all(
        &crate::exec::lock::lock_dir(args.lock_dir.as_deref(), &state),
        &prepared.plan.locks,
        &run_id,
        &prepared.runbook.name,
        args.lock_wait.0,
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code::STEP_FAILED;
        }
    };
    let run_dir = state::run_dir(&state, &run_id);
    let journal = match Journal::open(&run_dir) {
        Ok(j) => j,
        Err(e) => {
            eprintln!(
                "error: cannot open the journal in `{}`: {e}",
                run_dir.display()
            );
            return exit_code::STEP_FAILED;
        }
    };
    resume.from = args.from.iter().cloned().collect();
    resume.only = args.only.clone().map(|o| vec![o]);
    // The command that continues this run: the state directory too when it was given.
    let resume_command = format!(
        "rb run {}{} --resume {run_id}",
        args.file.display(),
        args.state_dir
            .as_ref()
            .map_or_else(String::new, |d| format!(" --state-dir {}", d.display()))
    );
    let masker = prepared.ctx.masker();
    let start = RunEvent::now(EventKind::RunStarted {
        version: crate::event::JOURNAL_VERSION,
        run_id: run_id.clone(),
        runbook: prepared.runbook.name.clone(),
        file: args.file.display().to_string(),
        file_sha256: sha256_file(&args.file),
        now: prepared.ctx.now,
        params: prepared.ctx.params.clone().into_iter().collect(),
        vars: prepared
            .ctx
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), masker.mask(v).into()))
            .collect(),
        secrets: prepared.ctx.secrets.keys().cloned().collect(),
        rto_seconds: prepared.plan.rto_seconds,
        rpo_seconds: prepared.plan.rpo_seconds,
        resumed: resumed.is_some(),
        derived_from: match &basis {
            Basis::Derived(r) => Some(r.run_id.clone()),
            _ => None,
        },
        pid: std::process::id(),
        steps: planned_steps(&prepared.plan),
        milestones: prepared
            .runbook
            .objectives
            .milestones
            .iter()
            .map(|m| PlannedMilestone {
                name: m.name.clone(),
                rto_seconds: m.rto.secs(),
                steps: m.steps.clone(),
            })
            .collect(),
        restore_point: prepared.runbook.objectives.restore_point.clone(),
    });
    let resumed_run = resumed.is_some();
    let mut events: Vec<RunEvent> = resumed.map(|r| r.events.clone()).unwrap_or_default();
    let mut terminal = Terminal::new(args.quiet);
    if let Some(first) = events.first() {
        terminal.set_first_start(first.at);
    }
    let interrupt = CancellationToken::new();
    let sinks = Arc::new(Mutex::new(Sinks {
        journal,
        terminal,
        events: Vec::new(),
        failed_write: None,
        stop: interrupt.clone(),
        held: None,
    }));
    let emit_sinks = sinks.clone();
    let emit: Arc<dyn Fn(RunEvent) + Send + Sync> = Arc::new(move |e: RunEvent| {
        emit_sinks.lock().expect("sinks").event(e);
    });
    let (emit, notifier) = report::notify::attach(
        emit,
        report::notify::Setup {
            hooks: report::notify::hooks(&prepared.runbook, &prepared.ctx.secrets),
            resume_command: resume_command.clone(),
            first_start: events.first().map(|e| e.at),
            masker: masker.clone(),
        },
    );
    emit(start);
    let ticker = spawn_ticker(sinks.clone());
    super::interrupt::spawn_signal_handler(interrupt.clone(), sinks.clone());
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let request = Request {
        runbook: Arc::new(prepared.runbook.clone()),
        dag: prepared.dag.clone(),
        ctx: prepared.ctx.clone(),
        jobs: args.jobs,
        resume,
        approvals: args.approve.clone(),
        approver: args.approver.clone().unwrap_or_else(default_approver),
        interactive,
        resumed: resumed_run,
        interrupt,
    };
    let outcome = executor::execute(request, emit).await;
    notifier.finish().await;
    ticker.abort();
    if sinks.lock().expect("sinks").held.is_some() {
        // A second interrupt is stopping what the steps started (their end is what let the
        // executor finish): it journals the end of the run and exits.
        std::future::pending::<()>().await;
    }
    // A container exec whose step gave up waiting for it (a timeout's grace ran out) is
    // being stopped in the background: rb does not exit before that stop is done.
    for left in crate::docker::stop_running_execs(std::time::Duration::from_secs(20)).await {
        if let Err(e) = left.result {
            eprintln!(
                "warning: a process in container `{}` may still run ({e}); `--resume` stops it",
                left.container
            );
        }
    }
    let mut sinks = sinks.lock().expect("sinks");
    if let Some(e) = &sinks.failed_write {
        eprintln!(
            "error: the journal could not be written (`{}`: {e}); the run was stopped before \
             its next step",
            sinks.journal.path().display()
        );
    }
    events.append(&mut sinks.events);
    let report = model::build(&events);
    if let Some(r) = &report {
        write_reports(args, &state, &run_dir, r);
    }
    let journal_failed = sinks.failed_write.is_some();
    drop(sinks);
    if journal_failed {
        return exit_code::STEP_FAILED;
    }
    match outcome {
        RunOutcome::Succeeded => {
            let over = report.as_ref().and_then(|r| r.rto_met) == Some(false);
            if over && args.fail_over_rto {
                exit_code::OVER_RTO
            } else {
                exit_code::OK
            }
        }
        RunOutcome::Failed => {
            eprintln!("fix the cause, then continue with: {resume_command}");
            exit_code::STEP_FAILED
        }
        RunOutcome::GatePending => {
            let gates = pending_gates(&events);
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
            exit_code::GATE_NOT_APPROVED
        }
        RunOutcome::GateRejected => exit_code::GATE_NOT_APPROVED,
        RunOutcome::Interrupted => exit_code::INTERRUPTED,
    }
}

/// Each step with its needs and estimate (median of past runs, else `estimate`).
fn planned_steps(plan: &crate::plan::build::Plan) -> Vec<PlannedStep> {
    plan.steps
        .iter()
        .map(|s| PlannedStep {
            id: s.id.clone(),
            needs: s.needs.clone(),
            estimate_seconds: s
                .history
                .map(|h| h.median_seconds)
                .or(s.estimate.map(crate::duration::Dur::secs)),
        })
        .collect()
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

/// `report.json` in the run directory, every `--report`, and `--metrics`.
fn write_reports(args: &Args, state: &Path, run_dir: &Path, r: &model::Report) {
    write_file(
        &run_dir.join("report.json"),
        &report::render(r, Format::Json, &[]),
        "report",
    );
    let needs_history = args.metrics.is_some()
        || args
            .report
            .iter()
            .any(|p| Format::from_path(p) == Some(Format::Html));
    let history: Vec<model::Report> = if needs_history {
        report::history(state, Some(&r.runbook))
            .unwrap_or_default()
            .into_iter()
            .filter(|h| h.run_id != r.run_id)
            .collect()
    } else {
        Vec::new()
    };
    for p in &args.report {
        let format = Format::from_path(p).unwrap_or(Format::Json);
        write_file(p, &report::render(r, format, &history), "report");
    }
    if let Some(p) = &args.metrics {
        write_file(
            p,
            &report::render(r, Format::Prometheus, &history),
            "metrics",
        );
    }
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
pub(super) struct Sinks {
    journal: Journal,
    terminal: Terminal,
    pub(super) events: Vec<RunEvent>,
    failed_write: Option<String>,
    /// Cancels the run: a run whose journal cannot be written starts no further step (it
    /// could neither be resumed nor reported), and runs its `always` steps.
    stop: CancellationToken,
    /// While a second interrupt stops everything, events are held here: a step whose
    /// process it kills must be journaled as stopped by it, not as failed with code 143.
    pub(super) held: Option<Vec<RunEvent>>,
}

impl Sinks {
    pub(super) fn event(&mut self, e: RunEvent) {
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
fn spawn_ticker(sinks: Arc<Mutex<Sinks>>) -> tokio::task::JoinHandle<()> {
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

/// `$USER`, else the name of the current uid.
fn default_approver() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map_or_else(|| format!("uid {}", nix::unistd::getuid()), |u| u.name)
        })
}
