//! Sinks of run events: the terminal, and the report that `report.json` (and `rb report`)
//! is made of, rendered as text, Markdown, JSON, `JUnit` XML or HTML, and Prometheus metrics.

pub mod html;
pub mod junit;
pub mod markdown;
pub mod metrics;
pub mod model;
pub mod terminal;
pub mod text;

use crate::duration::human_secs;
use crate::event::{Outcome, RunOutcome};
use chrono::{DateTime, Utc};
use model::Report;
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

/// `RTO 15m 00s: met with 13m 48s to spare` / `…: MISSED by …` / `no RTO`.
pub(crate) fn rto_verdict(r: &Report) -> String {
    match (r.rto_seconds, r.rto_margin_seconds) {
        (Some(rto), Some(m)) if m >= 0.0 => format!(
            "RTO {}: met with {} to spare (took {})",
            human_secs(rto),
            human_secs(m),
            human_secs(r.duration_seconds)
        ),
        (Some(rto), Some(m)) => format!(
            "RTO {}: MISSED by {} (took {})",
            human_secs(rto),
            human_secs(-m),
            human_secs(r.duration_seconds)
        ),
        _ => "no RTO set".to_owned(),
    }
}

/// The reports of every finished run in a state directory (of one runbook if named), oldest
/// first. Unreadable journals are left out.
pub fn history(state: &Path, runbook: Option<&str>) -> std::io::Result<Vec<Report>> {
    Ok(crate::exec::journal::runs(state, runbook)?
        .iter()
        .filter_map(|r| model::build(&r.events))
        .collect())
}
