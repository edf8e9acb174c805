//! `rb run FILE`: run (or resume) a runbook. Wiring only, in order: prepare the run (what it
//! starts from: [`crate::journal::basis`]), take its locks, start the [`Reporter`] (the
//! journal, the terminal, notifications, reports), run the executor, finish, exit code.

mod select;

use super::ParamArgs;
use super::diagnostics::{Prepared, load_valid, prepare};
use crate::event::RunOutcome;
use crate::exec::executor::{self, Request, Resume};
use crate::exec::lock::{RunLock, TargetLock};
use crate::exec::state;
use crate::exit_code;
use crate::journal::basis::{self, Basis, Wanted};
use crate::report::Format;
use crate::report::reporter::{self, Ended, Reporter};
use crate::template::Mode;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
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

async fn run_async(args: &Args) -> u8 {
    let state = state::state_dir(args.state_dir.as_deref());
    let Ready {
        basis,
        run_id,
        prepared,
        resume,
    } = match ready(args, &state) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let _locks = match take_locks(args, &state, &prepared, &run_id) {
        Ok(l) => l,
        Err(msg) => {
            eprintln!("error: {msg}");
            return exit_code::STEP_FAILED;
        }
    };
    let interrupt = CancellationToken::new();
    let start = basis::started(
        &args.file,
        &run_id,
        &basis,
        &prepared.runbook,
        &prepared.ctx,
        &prepared.plan,
    );
    let setup = reporter_setup(args, &state, &run_id, &basis, &prepared, interrupt.clone());
    let mut reporter = match Reporter::start(setup, start) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("error: {msg}");
            return exit_code::STEP_FAILED;
        }
    };
    super::interrupt::spawn_signal_handler(interrupt.clone(), reporter.sinks());
    let request = Request {
        runbook: std::sync::Arc::new(prepared.runbook.clone()),
        dag: prepared.dag.clone(),
        ctx: prepared.ctx.clone(),
        jobs: args.jobs,
        resume,
        approvals: args.approve.clone(),
        approver: args.approver.clone().unwrap_or_else(default_approver),
        interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        resumed: basis.resumed().is_some(),
        interrupt,
    };
    let outcome = executor::execute(request, reporter.emit()).await;
    reporter.settle().await;
    wait_for_stopping_execs().await;
    exit_code_of(outcome, reporter.finish(outcome), args.fail_over_rto)
}

/// A run ready to start: what it starts from, its id, its runbook prepared, and what it
/// takes from an earlier run.
struct Ready {
    basis: Basis,
    run_id: String,
    prepared: Prepared,
    resume: Resume,
}

/// Load the runbook, find what the run starts from, prepare it (params, secrets, plan with
/// estimates from past runs) and check the steps the command line names. `Err` is the exit
/// code; the problem has been said.
fn ready(args: &Args, state: &Path) -> Result<Ready, u8> {
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        exit_code::INVALID
    };
    let (runbook, _) = load_valid(&args.file).ok_or(exit_code::INVALID)?;
    let wanted = Wanted {
        resume: args.resume.as_deref(),
        selecting: args.from.is_some() || args.only.is_some(),
    };
    let basis = Basis::find(wanted, state, &runbook.name).map_err(fail)?;
    // A `-p` given now wins over the journal's.
    let mut params = args.params.clone();
    if let Some((now, mut pairs)) = basis.earlier_params() {
        params.now = Some(now);
        pairs.append(&mut params.params);
        params.params = pairs;
    }
    let secrets = crate::exec::secrets::read(&runbook).map_err(|e| {
        eprintln!("error: {e}\nno step was run");
        exit_code::INVALID
    })?;
    let run_id = basis.run_id();
    let mut prepared =
        prepare(&args.file, &params, Mode::Run, &run_id, secrets).ok_or(exit_code::INVALID)?;
    // Estimates from past runs, for the projected finish on the terminal.
    let estimates = super::plan::history_estimates(state, &prepared.runbook.name);
    crate::plan::build::apply_history(
        &mut prepared.plan,
        &prepared.runbook,
        &prepared.dag,
        &estimates,
        prepared.ctx.now,
    );
    select::check_ids(
        args.from.as_deref(),
        args.only.as_deref(),
        &args.approve,
        &prepared,
    )
    .map_err(fail)?;
    let resume = basis.resume(args.from.as_deref(), args.only.as_deref());
    if let Some(only) = &args.only {
        basis
            .check_only_needs(&prepared.runbook, &prepared.dag, &resume, only)
            .map_err(fail)?;
    }
    Ok(Ready {
        basis,
        run_id,
        prepared,
        resume,
    })
}

/// The run's lock, then the target locks (`locks:`). Before the journal exists: a run
/// refused here leaves no trace to resume.
fn take_locks(
    args: &Args,
    state: &Path,
    prepared: &Prepared,
    run_id: &str,
) -> Result<(RunLock, Vec<TargetLock>), String> {
    let run = RunLock::acquire(state, &prepared.runbook.name, run_id).map_err(|e| e.to_string())?;
    let targets = TargetLock::acquire_all(
        &crate::exec::lock::lock_dir(args.lock_dir.as_deref(), state),
        &prepared.plan.locks,
        run_id,
        &prepared.runbook.name,
        args.lock_wait.0,
    )
    .map_err(|e| e.to_string())?;
    Ok((run, targets))
}

/// Where the reports go, the webhooks, and the command that continues this run (the state
/// directory too when it was given).
fn reporter_setup(
    args: &Args,
    state: &Path,
    run_id: &str,
    basis: &Basis,
    prepared: &Prepared,
    stop: CancellationToken,
) -> reporter::Setup {
    reporter::Setup {
        quiet: args.quiet,
        state: state.to_owned(),
        run_dir: state::run_dir(state, run_id),
        reports: args.report.clone(),
        metrics: args.metrics.clone(),
        earlier: basis.earlier_events(),
        hooks: crate::report::notify::hooks(&prepared.runbook, &prepared.ctx.secrets),
        resume_command: format!(
            "rb run {}{} --resume {run_id}",
            args.file.display(),
            args.state_dir
                .as_ref()
                .map_or_else(String::new, |d| format!(" --state-dir {}", d.display()))
        ),
        masker: prepared.ctx.masker(),
        stop,
    }
}

/// A container exec whose step gave up waiting for it (a timeout's grace ran out) is being
/// stopped in the background: rb does not exit before that stop is done.
async fn wait_for_stopping_execs() {
    for left in crate::docker::stop_running_execs(std::time::Duration::from_secs(20)).await {
        if let Err(e) = left.result {
            eprintln!(
                "warning: a process in container `{}` may still run ({e}); `--resume` stops it",
                left.container
            );
        }
    }
}

/// The exit code of a run that ended with `outcome`.
fn exit_code_of(outcome: RunOutcome, ended: Ended, fail_over_rto: bool) -> u8 {
    if ended.journal_failed {
        return exit_code::STEP_FAILED;
    }
    match outcome {
        RunOutcome::Succeeded if ended.rto_missed && fail_over_rto => exit_code::OVER_RTO,
        RunOutcome::Succeeded => exit_code::OK,
        RunOutcome::Failed => exit_code::STEP_FAILED,
        RunOutcome::GatePending | RunOutcome::GateRejected => exit_code::GATE_NOT_APPROVED,
        RunOutcome::Interrupted => exit_code::INTERRUPTED,
    }
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
