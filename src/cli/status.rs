//! `rb status`: for each backup runbook (one with an RPO and no `restore_point`), the age of
//! its newest successful run against the RPO. Exit 1 when any is violated.

use crate::duration::human_secs;
use crate::event::RunOutcome;
use crate::exec::state;
use crate::exit_code;
use crate::report::{self, model::Report};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this runbook (its `name`).
    pub name: Option<String>,
    /// State directory (runs, journals, locks).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Judge ages as of this time (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

/// One runbook's RPO standing.
#[derive(Debug)]
pub struct Standing {
    pub runbook: String,
    pub rpo_seconds: f64,
    /// Finish time of the newest successful run.
    pub last_success: Option<DateTime<Utc>>,
    pub age_seconds: Option<f64>,
    pub ok: bool,
}

/// The standing of every runbook whose newest run declares an RPO.
pub fn standings(reports: &[Report], now: DateTime<Utc>) -> Vec<Standing> {
    let mut names: Vec<&str> = Vec::new();
    for r in reports {
        if !names.contains(&r.runbook.as_str()) {
            names.push(&r.runbook);
        }
    }
    names.sort_unstable();
    let mut out = Vec::new();
    for name in names {
        let runs: Vec<&Report> = reports.iter().filter(|r| r.runbook == name).collect();
        // Recovery runbooks (with a `restore_point`) restore backups; they do not make them.
        if runs.last().is_some_and(|r| r.rpo.is_some()) {
            continue;
        }
        // The newest run's RPO counts: the runbook may have changed since older runs.
        let Some(rpo) = runs.iter().rev().find_map(|r| r.rpo_seconds) else {
            continue;
        };
        // A run derived from an earlier one (`--from`/`--only`) did not take a whole backup.
        let last_success = runs
            .iter()
            .filter(|r| r.outcome == Some(RunOutcome::Succeeded) && r.derived_from.is_none())
            .filter_map(|r| r.end)
            .max();
        let age = last_success.map(|t| (now - t).num_milliseconds() as f64 / 1000.0);
        out.push(Standing {
            runbook: name.to_owned(),
            rpo_seconds: rpo,
            last_success,
            age_seconds: age,
            ok: age.is_some_and(|a| a <= rpo),
        });
    }
    out
}

pub fn run(args: &Args) -> u8 {
    let state = state::state_dir(args.state_dir.as_deref());
    let now = match &args.now {
        None => Utc::now(),
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                eprintln!("error: --now `{t}` is not an RFC 3339 time: {e}");
                return exit_code::INVALID;
            }
        },
    };
    if !state.is_dir() {
        eprintln!(
            "error: the state directory `{}` does not exist: no run was ever recorded there (give `--state-dir` or set `RB_STATE_DIR`)",
            state.display()
        );
        return exit_code::NO_RUNS;
    }
    let reports = match report::history(&state, args.name.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read the runs in `{}`: {e}", state.display());
            return exit_code::INVALID;
        }
    };
    let all = standings(&reports, now);
    if all.is_empty() {
        match &args.name {
            Some(name) if reports.is_empty() => eprintln!(
                "error: no run of `{name}` in `{}`: it never ran here (check the name and the state directory)",
                state.display()
            ),
            Some(name) => eprintln!(
                "error: `{name}` declares no RPO (`objectives.rpo`), or restores backups rather than taking them: nothing to judge"
            ),
            None => eprintln!(
                "error: no runs of a runbook with an RPO in `{}`",
                state.display()
            ),
        }
        return exit_code::NO_RUNS;
    }
    let width = all
        .iter()
        .map(|s| s.runbook.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>11}  {:<20}  {:>11}  STATUS",
        "RUNBOOK", "RPO", "LAST SUCCESS", "AGE"
    );
    for s in &all {
        let _ = writeln!(
            out,
            "{:<width$}  {:>11}  {:<20}  {:>11}  {}",
            s.runbook,
            human_secs(s.rpo_seconds),
            s.last_success.map_or_else(
                || "never".to_owned(),
                |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()
            ),
            s.age_seconds.map_or_else(|| "-".to_owned(), human_secs),
            if s.ok { "ok" } else { "RPO VIOLATED" }
        );
    }
    out!("{out}");
    if all.iter().all(|s| s.ok) {
        exit_code::OK
    } else {
        exit_code::STEP_FAILED
    }
}
