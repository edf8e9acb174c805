//! The report as a terminal summary: one row a step, totals, and the RTO verdict.

use super::at_offset;
use super::model::Report;
use super::{
    critical_path_text, milestone_verdict, outcome_word, params_line, rpo_verdict, rto_verdict,
    run_outcome_word,
};
use crate::duration::human_secs;
use std::fmt::Write as _;

/// Render the report as plain text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {} of `{}`: {}",
        r.run_id,
        r.runbook,
        run_outcome_word(r.outcome)
    );
    let _ = writeln!(out, "file {} (sha256 {})", r.file, r.file_sha256);
    let _ = writeln!(out, "params: {}", params_line(r));
    let _ = writeln!(
        out,
        "started {}, ended {}",
        r.start.to_rfc3339(),
        r.end.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339())
    );
    let width = r
        .steps
        .iter()
        .map(|s| s.id.chars().count())
        .chain([4])
        .max()
        .unwrap_or(4);
    let _ = writeln!(
        out,
        "\n  {:<width$}  {:<10}  {:>9}  {:>9}  {:>9}  {:>8}",
        "STEP", "STATUS", "START", "END", "DURATION", "ATTEMPTS"
    );
    for s in &r.steps {
        let mut status = outcome_word(s.status).to_owned();
        if s.reused {
            status = "reused".into();
        }
        let _ = write!(
            out,
            "{} {:<width$}  {:<10}  {:>9}  {:>9}  {:>9}  {:>8}",
            if s.on_critical_path { '*' } else { ' ' },
            s.id,
            status,
            at_offset(r, s.start, "-"),
            at_offset(r, s.end, "-"),
            human_secs(s.duration_seconds),
            s.attempts
        );
        if let Some(e) = &s.error {
            let _ = write!(out, "  {}", first_line(e));
        } else if let Some(why) = &s.reason {
            let _ = write!(out, "  ({why})");
        }
        out.push('\n');
    }
    let count = |o| r.steps.iter().filter(|s| s.status == o).count();
    let _ = writeln!(
        out,
        "\nsteps: {} succeeded, {} failed, {} skipped, {} cancelled",
        count(crate::event::Outcome::Succeeded),
        count(crate::event::Outcome::Failed),
        count(crate::event::Outcome::Skipped),
        count(crate::event::Outcome::Cancelled)
    );
    out.push_str(&super::groups::text(&r.groups));
    let _ = writeln!(out, "total {}", super::time_split(r));
    if r.attempts.len() > 1 {
        let _ = writeln!(out, "attempts: {}", super::attempts_line(r));
    }
    if let Some(base) = &r.derived_from {
        let _ = writeln!(
            out,
            "derived from run {base}: steps not run here were taken from it"
        );
    }
    for g in &r.gates {
        let _ = writeln!(
            out,
            "gate {} {} by {} after {}",
            g.step,
            if g.approved { "approved" } else { "rejected" },
            g.by,
            human_secs(g.waited_seconds)
        );
    }
    artifacts_and_failures(&mut out, r);
    let _ = writeln!(out, "{}", rto_verdict(r));
    for m in &r.milestones {
        let _ = writeln!(out, "{}", milestone_verdict(m));
    }
    let _ = writeln!(
        out,
        "critical path: {} (* in the table)",
        critical_path_text(r)
    );
    if let Some(rpo) = rpo_verdict(r) {
        let _ = writeln!(out, "{rpo}");
    }
    out.push_str(&super::decisions::text(r));
    out
}

/// The files the run wrote; each failed step's whole error when it has more than the line
/// in the table (the stderr tail of a command).
fn artifacts_and_failures(out: &mut String, r: &Report) {
    for i in &r.images {
        let _ = writeln!(
            out,
            "image {} ({}): {}{}",
            i.image,
            i.step,
            i.digest,
            if i.pulled { ", pulled" } else { "" }
        );
    }
    for a in &r.artifacts {
        let _ = writeln!(
            out,
            "artifact {} ({}): {}, sha256 {}",
            a.path,
            a.step,
            super::bytes_text(a.bytes),
            a.sha256.as_deref().unwrap_or("-")
        );
    }
    for s in r.steps.iter().filter(|s| s.error.is_some()) {
        let error = s.error.as_deref().unwrap_or_default();
        if error.lines().count() > 1 {
            let _ = writeln!(out, "step {} failed:", s.id);
            for l in error.lines() {
                let _ = writeln!(out, "  | {l}");
            }
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
