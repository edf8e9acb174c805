//! `rb history [NAME]`: past runs, oldest first, with the trend of their durations.

use crate::duration::human_secs;
use crate::event::RunOutcome;
use crate::exec::state;
use crate::exit_code;
use crate::report::{self, model::Report, run_outcome_word};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only runs of this runbook (its `name`).
    pub name: Option<String>,
    /// State directory (runs, journals, locks).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Output format: a table, or the JSON reports of the runs (oldest first), one array.
    #[arg(long, short = 'f', value_enum, default_value_t = HistoryFormat::Text)]
    pub format: HistoryFormat,
    /// Only the newest N runs (of each runbook in the table).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// How `rb history` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormat {
    Text,
    Json,
}

pub fn run(args: &Args) -> u8 {
    let state = state::state_dir(args.state_dir.as_deref());
    let reports = match report::history(&state, args.name.as_deref()) {
        Ok(r) => limit(r, args.limit),
        Err(e) => {
            eprintln!("error: cannot read the runs in `{}`: {e}", state.display());
            return exit_code::INVALID;
        }
    };
    if args.format == HistoryFormat::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
        return exit_code::OK;
    }
    if reports.is_empty() {
        match &args.name {
            Some(n) => eprintln!("no runs of `{n}` in `{}`", state.display()),
            None => eprintln!("no runs in `{}`", state.display()),
        }
        return exit_code::OK;
    }
    out!("{}", render(&reports));
    exit_code::OK
}

/// The newest `n` runs of each runbook (all without a limit), oldest first.
fn limit(reports: Vec<Report>, n: Option<usize>) -> Vec<Report> {
    let Some(n) = n else {
        return reports;
    };
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut kept: Vec<Report> = reports
        .into_iter()
        .rev()
        .filter(|r| {
            let c = seen.entry(r.runbook.clone()).or_default();
            *c += 1;
            *c <= n
        })
        .collect();
    kept.reverse();
    kept
}

/// The median of some numbers (none: `None`).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    })
}

fn signed(delta: f64) -> String {
    if delta < 0.0 {
        format!("-{}", human_secs(-delta))
    } else {
        format!("+{}", human_secs(delta))
    }
}

/// The table: one row a run, grouped by runbook, each group followed by its medians.
pub fn render(reports: &[Report]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for r in reports {
        if !names.contains(&r.runbook.as_str()) {
            names.push(&r.runbook);
        }
    }
    let width = reports
        .iter()
        .map(|r| r.run_id.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = String::new();
    for (n, name) in names.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{name}");
        let _ = writeln!(
            out,
            "  {:<width$}  {:<20}  {:>9}  {:>8}  {:<17}  {:<14}  {:>9}",
            "RUN", "START", "DURATION", "ATTEMPTS", "RESULT", "RTO", "Δ PREV OK"
        );
        let mut previous_ok: Option<f64> = None;
        let mut ok_durations = Vec::new();
        for r in reports.iter().filter(|r| r.runbook == *name) {
            let ok = r.outcome == Some(RunOutcome::Succeeded);
            let rto = match (r.rto_met, r.rto_margin_seconds) {
                (Some(true), Some(m)) => format!("met {}", signed(m)),
                (Some(false), Some(m)) => format!("MISSED {}", signed(m)),
                _ => "-".to_owned(),
            };
            let delta = match (ok, previous_ok) {
                (true, Some(p)) => signed(r.duration_seconds - p),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {:<width$}  {:<20}  {:>9}  {:>8}  {:<17}  {:<14}  {:>9}",
                r.run_id,
                r.start.format("%Y-%m-%d %H:%M:%SZ"),
                human_secs(r.duration_seconds),
                r.attempts.len(),
                run_outcome_word(r.outcome),
                rto,
                delta
            );
            if ok {
                previous_ok = Some(r.duration_seconds);
                ok_durations.push(r.duration_seconds);
            }
        }
        let runs = reports.iter().filter(|r| r.runbook == *name).count();
        let _ = writeln!(
            out,
            "  {runs} runs, {} succeeded; median successful duration {}",
            ok_durations.len(),
            median(&ok_durations).map_or_else(|| "-".to_owned(), human_secs)
        );
    }
    out
}
