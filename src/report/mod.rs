//! Sinks of run events: the terminal, and the report that `report.json` (and `rb report`)
//! is made of, rendered as text, Markdown, JSON, `JUnit` XML or HTML, and Prometheus metrics.
//! [`reporter`] feeds a run's events to the sinks and writes the reports at its end.

pub mod decisions;
pub mod groups;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod objectives;
pub mod projection;
pub mod reporter;
pub mod terminal;
pub mod text;

use crate::duration::human_secs;
use crate::event::{Outcome, RunOutcome};
use chrono::{DateTime, Utc};
use model::Report;
use std::fmt::Write as _;
use std::path::Path;

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
    Junit,
    Html,
    /// Prometheus text format (what `rb run --metrics` writes).
    Prometheus,
}

impl Format {
    /// The format a path's extension asks for: `.txt`, `.md`, `.json`, `.xml`, `.html`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" => Self::Text,
            "md" | "markdown" => Self::Markdown,
            "json" => Self::Json,
            "xml" => Self::Junit,
            "html" | "htm" => Self::Html,
            "prom" => Self::Prometheus,
            _ => return None,
        })
    }
}

/// Render a report. `history` is the earlier runs of the same runbook, oldest first (used
/// by the HTML trend chart).
pub fn render(report: &Report, format: Format, history: &[Report]) -> String {
    match format {
        Format::Text => text::render(report),
        Format::Markdown => markdown::render(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Junit => junit::render(report),
        Format::Html => html::render(report, history),
        Format::Prometheus => metrics::render(report, metrics::last_backup(history)),
    }
}

/// Seconds from the start of the run to `t`.
pub(crate) fn offset_secs(r: &Report, t: DateTime<Utc>) -> f64 {
    ((t - r.start).num_milliseconds() as f64 / 1000.0).max(0.0)
}

/// `+1m 10s` from the start of the run, or `missing` when there is no time.
pub(crate) fn at_offset(r: &Report, t: Option<DateTime<Utc>>, missing: &str) -> String {
    t.map_or_else(
        || missing.to_owned(),
        |t| format!("+{}", human_secs(offset_secs(r, t))),
    )
}

pub(crate) fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
        Outcome::Skipped => "skipped",
        Outcome::Cancelled => "cancelled",
    }
}

pub(crate) fn run_outcome_word(o: Option<RunOutcome>) -> &'static str {
    match o {
        Some(RunOutcome::Succeeded) => "succeeded",
        Some(RunOutcome::Failed) => "failed",
        Some(RunOutcome::GatePending) => "waiting at a gate",
        Some(RunOutcome::GateRejected) => "gate rejected",
        Some(RunOutcome::Interrupted) => "interrupted",
        None => "unfinished",
    }
}

/// `RTO 15m 00s: met with 13m 48s to spare (took 1m 12s)` / `…: MISSED by …` / for a run
/// that did not succeed, no verdict: `RTO 15m 00s: not met, the run failed after 1m 12s`.
/// With several attempts, `over 2 attempts`.
pub(crate) fn rto_verdict(r: &Report) -> String {
    let took = if r.attempts.len() > 1 {
        format!(
            "{} over {} attempts",
            human_secs(r.duration_seconds),
            r.attempts.len()
        )
    } else {
        human_secs(r.duration_seconds)
    };
    match (r.rto_seconds, r.rto_margin_seconds) {
        (Some(rto), Some(m)) if m >= 0.0 => format!(
            "RTO {}: met with {} to spare (took {took})",
            human_secs(rto),
            human_secs(m),
        ),
        (Some(rto), Some(m)) => format!(
            "RTO {}: MISSED by {} (took {took})",
            human_secs(rto),
            human_secs(-m),
        ),
        (Some(rto), None) => format!(
            "RTO {}: not met, the run {} after {took}",
            human_secs(rto),
            run_outcome_word(r.outcome)
        ),
        _ => "no RTO set".to_owned(),
    }
}

/// `1m 40s = machine 40s + gate wait 50s + between attempts 10s` (the last only when the
/// run had several attempts).
pub(crate) fn time_split(r: &Report) -> String {
    let mut out = format!(
        "{} = machine {} + gate wait {}",
        human_secs(r.duration_seconds),
        human_secs(r.machine_seconds),
        human_secs(r.gate_wait_seconds)
    );
    if r.attempts.len() > 1 {
        let _ = write!(
            out,
            " + between attempts {}",
            human_secs(r.between_attempts_seconds)
        );
    }
    out
}

/// `#1 failed after 5.0s; #2 succeeded after 3.1s` .
pub(crate) fn attempts_line(r: &Report) -> String {
    r.attempts
        .iter()
        .map(|a| {
            format!(
                "#{} {} after {} ({} steps run)",
                a.number,
                run_outcome_word(a.outcome),
                human_secs(a.duration_seconds),
                a.steps_run
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `1.2 GB (1234567890 bytes)`.
pub(crate) fn bytes_text(b: u64) -> String {
    let f = b as f64;
    let short = if f >= 1e9 {
        format!("{:.2} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        return format!("{b} bytes");
    };
    format!("{short} ({b} bytes)")
}

/// `db=app, level=3` (secrets never reach the journal, so never here either).
pub(crate) fn params_line(r: &Report) -> String {
    if r.params.is_empty() {
        return "none".to_owned();
    }
    r.params
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `milestone restored (RTO 2h 00m 00s): met with … to spare (reached after …)`.
pub(crate) fn milestone_verdict(m: &objectives::MilestoneReport) -> String {
    let head = format!("milestone {} (RTO {})", m.name, human_secs(m.rto_seconds));
    match (m.achieved_seconds, m.margin_seconds) {
        (Some(a), Some(x)) if x >= 0.0 => format!(
            "{head}: met with {} to spare (reached after {})",
            human_secs(x),
            human_secs(a)
        ),
        (Some(a), Some(x)) => format!(
            "{head}: MISSED by {} (reached after {})",
            human_secs(-x),
            human_secs(a)
        ),
        _ => format!("{head}: NOT REACHED (not all of its steps succeeded)"),
    }
}

/// `a → b → c (1m 10s of 12m 10s)`, or why it is unknown.
pub(crate) fn critical_path_text(r: &Report) -> String {
    if r.critical_path.is_empty() {
        return "unknown (no step graph in the journal)".to_owned();
    }
    format!(
        "{} ({} of {})",
        r.critical_path.join(" → "),
        human_secs(r.critical_path_seconds),
        human_secs(r.duration_seconds)
    )
}

/// `achieved RPO 2h 03m 00s (restored data from … , step `choose` output `stdout`): within the
/// RPO of 24h 00m 00s by …`.
pub(crate) fn rpo_verdict(r: &Report) -> Option<String> {
    let p = r.rpo.as_ref()?;
    let Some((achieved, at)) = p.achieved_seconds.zip(p.restore_point) else {
        return Some(format!(
            "achieved RPO unknown: {} (from {})",
            p.problem.as_deref().unwrap_or("no restore point"),
            p.source
        ));
    };
    let head = format!(
        "achieved RPO {} (restored data of {}, from {})",
        human_secs(achieved),
        at.to_rfc3339(),
        p.source
    );
    Some(match (p.rpo_seconds, p.margin_seconds) {
        (Some(rpo), Some(m)) if m >= 0.0 => format!(
            "{head}: within the RPO of {} by {}",
            human_secs(rpo),
            human_secs(m)
        ),
        (Some(rpo), Some(m)) => format!(
            "{head}: OVER the RPO of {} by {}",
            human_secs(rpo),
            human_secs(-m)
        ),
        _ => format!("{head}: no RPO set"),
    })
}

/// The reports of every finished run in a state directory (of one runbook if named), oldest
/// first. Unreadable journals are left out.
pub fn history(state: &Path, runbook: Option<&str>) -> std::io::Result<Vec<Report>> {
    Ok(crate::journal::runs(state, runbook)?
        .iter()
        .filter_map(|r| model::build(&r.events))
        .collect())
}
