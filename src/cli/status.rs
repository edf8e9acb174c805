//! `rb status`: for each backup runbook (one with an RPO and no `restore_point`), the age of
//! its newest successful run against the RPO; for a fleet runbook (`for_each`), each item's
//! newest successful backup. Exit 1 when any is violated.

use crate::duration::human_secs;
use crate::event::{Outcome, RunOutcome};
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

/// One runbook's RPO standing, or one item's of a fleet runbook.
#[derive(Debug)]
pub struct Standing {
    pub runbook: String,
    /// The item of a `for_each` runbook (`shop` for the steps `GROUP[shop]`).
    pub item: Option<String>,
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
        if runs.last().is_some_and(|r| !r.groups.is_empty()) {
            fleet(&mut out, name, &runs, rpo, now);
            continue;
        }
        // A run derived from an earlier one (`--from`/`--only`) did not take a whole backup.
        let last_success = runs
            .iter()
            .filter(|r| r.outcome == Some(RunOutcome::Succeeded) && r.derived_from.is_none())
            .filter_map(|r| r.end)
            .max();
        let age = last_success.map(|t| (now - t).num_milliseconds() as f64 / 1000.0);
        out.push(Standing {
            runbook: name.to_owned(),
            item: None,
            rpo_seconds: rpo,
            last_success,
            age_seconds: age,
            ok: age.is_some_and(|a| a <= rpo),
        });
    }
    out
}

/// A fleet runbook (its newest run has `for_each` groups): one standing per item of the
/// newest run, each judged by the newest run in which every step of the item succeeded
/// (or was skipped by its `when`), whatever the other items did; then the runbook's, as old
/// as its stalest item and violated when any item is.
fn fleet(out: &mut Vec<Standing>, name: &str, runs: &[&Report], rpo: f64, now: DateTime<Utc>) {
    let newest = runs.last().expect("a runbook with runs");
    let mut keys: Vec<&str> = Vec::new();
    for s in &newest.steps {
        if let Some((_, key)) = report::groups::split_id(&s.id)
            && !keys.contains(&key)
        {
            keys.push(key);
        }
    }
    let items: Vec<Standing> = keys
        .iter()
        .map(|key| {
            let last_success = runs.iter().filter_map(|r| item_done(r, key)).max();
            let age = last_success.map(|t| (now - t).num_milliseconds() as f64 / 1000.0);
            Standing {
                runbook: name.to_owned(),
                item: Some((*key).to_owned()),
                rpo_seconds: rpo,
                last_success,
                age_seconds: age,
                ok: age.is_some_and(|a| a <= rpo),
            }
        })
        .collect();
    let stalest = items.iter().map(|i| i.last_success).min().flatten();
    let age = stalest.map(|t| (now - t).num_milliseconds() as f64 / 1000.0);
    out.push(Standing {
        runbook: name.to_owned(),
        item: None,
        rpo_seconds: rpo,
        last_success: stalest,
        age_seconds: age,
        ok: items.iter().all(|i| i.ok),
    });
    out.extend(items);
}

/// When run `r` finished the item `key`'s work: the end of its last step, when every step of
/// the item succeeded (reused ones keep the time of the attempt that did the work) or was
/// skipped by its `when`.
fn item_done(r: &Report, key: &str) -> Option<DateTime<Utc>> {
    let mut end = None;
    for s in &r.steps {
        if report::groups::split_id(&s.id).is_none_or(|(_, k)| k != key) {
            continue;
        }
        match s.status {
            Outcome::Succeeded => end = end.max(s.end),
            Outcome::Skipped if s.reason.as_deref().is_some_and(|w| w.starts_with("`when:")) => {}
            _ => return None,
        }
    }
    end
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
    let width = all.iter().map(|s| label(s).len()).max().unwrap_or(7).max(7);
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
            label(s),
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
    for s in all.iter().filter(|s| !s.ok) {
        if let Some(item) = &s.item {
            let rpo = human_secs(s.rpo_seconds);
            match s.age_seconds {
                Some(age) => eprintln!(
                    "error: item `{item}` of `{}`: its newest successful backup is {} old, over the RPO of {rpo}",
                    s.runbook,
                    human_secs(age)
                ),
                None => eprintln!(
                    "error: item `{item}` of `{}` was never backed up successfully (RPO {rpo})",
                    s.runbook
                ),
            }
        }
    }
    if all.iter().all(|s| s.ok) {
        exit_code::OK
    } else {
        exit_code::STEP_FAILED
    }
}

/// `backup-fleet`, or `backup-fleet[shop]` for an item.
fn label(s: &Standing) -> String {
    match &s.item {
        Some(item) => format!("{}[{item}]", s.runbook),
        None => s.runbook.clone(),
    }
}
