//! `rb plan FILE`

use super::ParamArgs;
use super::diagnostics::prepare;
use super::history::median;
use crate::event::{EventKind, Outcome};
use crate::exec::state;
use crate::exit_code;
use crate::journal;
use crate::plan::build::{self, HistoryEstimate};
use crate::plan::{check, diff, render};
use crate::template::Mode;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Plan formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The runbook.
    pub file: PathBuf,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Add read-only probes: engines reachable, containers and images present, free disk.
    #[arg(long, conflicts_with = "diff")]
    pub check: bool,
    /// Compare two versions of a runbook: `rb plan --diff OLD NEW` (same params and `--now`).
    #[arg(long, requires = "new")]
    pub diff: bool,
    /// The new version, with `--diff`.
    #[arg(requires = "diff")]
    pub new: Option<PathBuf>,
    /// State directory whose past runs give the estimates (median of the last 10 successful
    /// runs of this runbook); default as for `rb run`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Use only the runbook's `estimate`s, not past runs.
    #[arg(long)]
    pub no_history: bool,
}

/// How many recent successful runs the history estimates look at.
pub const HISTORY_RUNS: usize = 10;

/// Median step durations over the last successful runs of a runbook.
pub(crate) fn history_estimates(state: &Path, runbook: &str) -> BTreeMap<String, HistoryEstimate> {
    let runs = journal::runs(state, Some(runbook)).unwrap_or_default();
    let recent: Vec<_> = runs.iter().filter(|r| r.succeeded()).collect();
    let recent = &recent[recent.len().saturating_sub(HISTORY_RUNS)..];
    let mut durations: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in recent {
        // The last successful finish of each step in this run.
        let mut last: BTreeMap<&str, f64> = BTreeMap::new();
        for e in &run.events {
            if let EventKind::StepFinished {
                step,
                outcome: Outcome::Succeeded,
                duration_seconds,
                reused: false,
                ..
            } = &e.kind
            {
                last.insert(step, *duration_seconds);
            }
        }
        for (step, secs) in last {
            durations.entry(step.to_owned()).or_default().push(secs);
        }
    }
    durations
        .into_iter()
        .filter_map(|(id, d)| {
            Some((
                id,
                HistoryEstimate {
                    median_seconds: median(&d)?,
                    runs: d.len(),
                },
            ))
        })
        .collect()
}

fn run_diff(args: &Args, new: &Path) -> u8 {
    // One `now` for both versions, so the clock never shows up as a change.
    let mut params = args.params.clone();
    params.now.get_or_insert_with(|| {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    let prep = |f: &Path| prepare(f, &params, Mode::Plan, "<run.id>", BTreeMap::default());
    let (Some(old), Some(new)) = (prep(&args.file), prep(new)) else {
        return exit_code::INVALID;
    };
    let d = diff::diff(&old.plan, &new.plan);
    match args.format {
        Format::Text => out!("{}", diff::text(&d)),
        Format::Markdown => out!("{}", diff::markdown(&d)),
        Format::Json => outln!("{}", serde_json::to_string_pretty(&d).unwrap_or_default()),
    }
    exit_code::OK
}

pub fn run(args: &Args) -> u8 {
    if let (true, Some(new)) = (args.diff, &args.new) {
        return run_diff(args, new);
    }
    let Some(mut p) = prepare(
        &args.file,
        &args.params,
        Mode::Plan,
        "<run.id>",
        BTreeMap::default(),
    ) else {
        return exit_code::INVALID;
    };
    for name in &p.plan.missing_params {
        eprintln!(
            "warning: required param `{name}` has no value: shown as `<params.{name}>`; `rb run` needs `-p {name}=…`"
        );
    }
    if !args.no_history {
        let state = state::state_dir(args.state_dir.as_deref());
        let history = history_estimates(&state, &p.runbook.name);
        build::apply_history(&mut p.plan, &p.runbook, &p.dag, &history, p.ctx.now);
    }
    let out = match args.format {
        Format::Text => render::text(&p.plan),
        Format::Markdown => render::markdown(&p.plan),
        Format::Json => render::json(&p.plan),
    };
    if !args.check {
        out!("{out}");
        return exit_code::OK;
    }
    let probes = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(check::run(&p.runbook, &p.plan)),
        Err(e) => {
            eprintln!("error: cannot start the probes: {e}");
            return exit_code::STEP_FAILED;
        }
    };
    match args.format {
        Format::Text => out!("{out}{}", check::text(&probes)),
        Format::Markdown => out!("{out}{}", check::markdown(&probes)),
        Format::Json => {
            let mut doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
            doc["checks"] = serde_json::to_value(&probes).unwrap_or_default();
            outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
    }
    if probes.iter().all(|pr| pr.ok) {
        exit_code::OK
    } else {
        exit_code::STEP_FAILED
    }
}
