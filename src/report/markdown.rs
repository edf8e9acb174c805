//! The report as Markdown, for pull requests and wikis.

use super::model::Report;
use super::{offset_secs, outcome_word, rto_verdict, run_outcome_word};
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
    let _ = writeln!(
        out,
        "- **Duration:** {} (machine {}, gate wait {})",
        human_secs(r.duration_seconds),
        human_secs(r.machine_seconds),
        human_secs(r.gate_wait_seconds)
    );
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
    let _ = writeln!(
        out,
        "- **Runbook file:** `{}` (sha256 `{}`)",
        r.file,
        short(&r.file_sha256)
    );
    let _ = writeln!(
        out,
        "\n| Step | Type | Status | Start | Duration | Attempts | Note |\n|---|---|---|--:|--:|--:|---|"
    );
    for s in &r.steps {
        let start = s.start.map_or_else(
            || "–".to_owned(),
            |t| format!("+{}", human_secs(offset_secs(r, t))),
        );
        let note = s
            .error
            .as_deref()
            .or(s.reason.as_deref())
            .map(cell)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{}` | {} | {}{} | {} | {} | {} | {} |",
            s.id,
            s.type_name.as_deref().unwrap_or("–"),
            outcome_word(s.status),
            if s.reused { " (reused)" } else { "" },
            start,
            human_secs(s.duration_seconds),
            s.attempts,
            note
        );
    }
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
    out
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Text safe inside a table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.lines().next().unwrap_or_default().replace('|', "\\|")
}
