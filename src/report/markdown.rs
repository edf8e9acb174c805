//! The report as Markdown, for pull requests and wikis.

use super::at_offset;
use super::model::Report;
use super::objectives::MilestoneStatus;
use super::{
    critical_path_text, milestone_verdict, outcome_word, params_line, rpo_verdict, rto_verdict,
    run_outcome_word,
};
use crate::duration::human_secs;
use std::fmt::Write as _;

/// Render the report as GitHub-flavoured Markdown.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Run `{}` of `{}`\n", r.run_id, r.runbook);
    let _ = writeln!(out, "- **Result:** {}", run_outcome_word(r.outcome));
    let _ = writeln!(out, "- **Started:** {}", r.start.to_rfc3339());
    if let Some(end) = r.end {
        let _ = writeln!(out, "- **Finished:** {}", end.to_rfc3339());
    }
    let _ = writeln!(out, "- **Duration:** {}", super::time_split(r));
    if r.attempts.len() > 1 {
        let _ = writeln!(out, "- **Attempts:** {}", super::attempts_line(r));
    }
    if let Some(base) = &r.derived_from {
        let _ = writeln!(out, "- **Derived from run:** `{base}`");
    }
    let verdict = rto_verdict(r);
    let _ = writeln!(
        out,
        "- **RTO:** {}",
        match r.rto_met {
            Some(true) => format!("✅ {verdict}"),
            Some(false) => format!("❌ {verdict}"),
            None => verdict,
        }
    );
    for m in &r.milestones {
        let mark = if m.status == MilestoneStatus::Met {
            "✅"
        } else {
            "❌"
        };
        let _ = writeln!(out, "- **Milestone:** {mark} {}", milestone_verdict(m));
    }
    if let Some(rpo) = rpo_verdict(r) {
        let mark = match r.rpo.as_ref().and_then(|p| p.met) {
            Some(true) => "✅ ",
            Some(false) => "❌ ",
            None => "",
        };
        let _ = writeln!(out, "- **RPO:** {mark}{rpo}");
    }
    let _ = writeln!(out, "- **Critical path:** {}", critical_path_text(r));
    let _ = writeln!(
        out,
        "- **Runbook file:** `{}` (sha256 `{}`)",
        r.file,
        short(&r.file_sha256)
    );
    let _ = writeln!(out, "- **Params:** {}", cell(&params_line(r)));
    let _ = writeln!(
        out,
        "\n◆ on the critical path\n\n| Step | Type | Status | Start | End | Duration | Attempts | Note |\n|---|---|---|--:|--:|--:|--:|---|"
    );
    for s in &r.steps {
        let note = s
            .error
            .as_deref()
            .or(s.reason.as_deref())
            .map(cell)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {}`{}` | {} | {}{} | {} | {} | {} | {} | {} |",
            if s.on_critical_path { "**◆** " } else { "" },
            s.id,
            s.type_name.as_deref().unwrap_or("–"),
            outcome_word(s.status),
            if s.reused { " (reused)" } else { "" },
            at_offset(r, s.start, "–"),
            at_offset(r, s.end, "–"),
            human_secs(s.duration_seconds),
            s.attempts,
            note
        );
    }
    out.push_str(&super::groups::markdown(&r.groups));
    artifacts_and_failures(&mut out, r);
    if !r.gates.is_empty() {
        let _ = writeln!(out, "\n| Gate | Answer | By | Waited |\n|---|---|---|--:|");
        for g in &r.gates {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                g.step,
                if g.approved { "approved" } else { "rejected" },
                cell(&g.by),
                human_secs(g.waited_seconds)
            );
        }
    }
    out.push_str(&super::decisions::markdown(r));
    out
}

/// The files the run wrote, and each failed step's whole error (a stderr tail) in a block.
fn artifacts_and_failures(out: &mut String, r: &Report) {
    if !r.images.is_empty() {
        let _ = writeln!(
            out,
            "\n| Image | Step | Digest | Pulled |\n|---|---|---|---|"
        );
        for i in &r.images {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | `{}` | {} |",
                cell(&i.image).replace('`', "'"),
                i.step,
                i.digest,
                if i.pulled { "yes" } else { "no" }
            );
        }
    }
    if !r.artifacts.is_empty() {
        let _ = writeln!(
            out,
            "\n| Artifact | Step | Size | SHA-256 |\n|---|---|--:|---|"
        );
        for a in &r.artifacts {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} | `{}` |",
                cell(&a.path).replace('`', "'"),
                a.step,
                super::bytes_text(a.bytes),
                a.sha256.as_deref().unwrap_or("–")
            );
        }
    }
    for s in r
        .steps
        .iter()
        .filter(|s| s.status == crate::event::Outcome::Failed)
    {
        if let Some(e) = &s.error {
            // A fence longer than any run of backticks in the text.
            let fence = "~".repeat(3 + e.matches('~').count().min(20));
            let _ = writeln!(out, "\n**`{}` failed:**\n\n{fence}text\n{e}\n{fence}", s.id);
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Text safe inside a table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.lines().next().unwrap_or_default().replace('|', "\\|")
}
