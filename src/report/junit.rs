//! The report as `JUnit` XML: one `testcase` a step, so CI systems show drills like tests.

use super::model::{Report, StepReport};
use super::objectives::MilestoneStatus;
use super::{milestone_verdict, params_line, rpo_verdict};
use crate::event::Outcome;
use std::fmt::Write as _;

/// Escape text for XML attributes and content.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if u32::from(c) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// Render the report as a `JUnit` XML document (one suite: the run).
/// The end of a succeeded step's test case: the file it wrote, if any, as its output.
fn succeeded_case(out: &mut String, r: &Report, s: &StepReport) {
    let artifact = r.artifacts.iter().find(|a| a.step == s.id).map(|a| {
        format!(
            "wrote {} ({} bytes, sha256 {})",
            a.path,
            a.bytes,
            a.sha256.as_deref().unwrap_or("-")
        )
    });
    let lines: Vec<String> = artifact
        .into_iter()
        .chain(super::decisions::junit_text(&s.outputs))
        .collect();
    if lines.is_empty() {
        out.push_str("/>\n");
    } else {
        let _ = writeln!(
            out,
            ">\n      <system-out>{}</system-out>\n    </testcase>",
            xml_escape(&lines.join("\n"))
        );
    }
}

/// Why the RTO case failed: over it, or not recovered at all.
fn rto_failure(r: &Report, rto: f64) -> String {
    if r.rto_met == Some(false) {
        format!("took {:.3}s, over the RTO of {rto:.3}s", r.duration_seconds)
    } else {
        format!(
            "not recovered: the run {} after {:.3}s of the RTO of {rto:.3}s",
            super::run_outcome_word(r.outcome),
            r.duration_seconds
        )
    }
}

pub fn render(r: &Report) -> String {
    let failures = r
        .steps
        .iter()
        .filter(|s| s.status == Outcome::Failed)
        .count();
    let skipped = r
        .steps
        .iter()
        .filter(|s| matches!(s.status, Outcome::Skipped | Outcome::Cancelled))
        .count();
    // Not met: over it, or not recovered at all (a run that did not succeed has no verdict).
    let over_rto = r.rto_seconds.is_some() && r.rto_met != Some(true);
    let missed = r
        .milestones
        .iter()
        .filter(|m| m.status != MilestoneStatus::Met)
        .count();
    let rpo_failed = r.rpo.as_ref().is_some_and(|p| !p.ok());
    let failures = failures + usize::from(over_rto) + missed + usize::from(rpo_failed);
    let tests = r.steps.len()
        + usize::from(r.rto_seconds.is_some())
        + r.milestones.len()
        + usize::from(r.rpo.is_some());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{name}\" tests=\"{tests}\" failures=\"{f}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        name = xml_escape(&r.runbook),
        f = failures,
        time = r.duration_seconds,
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{name}\" id=\"{id}\" tests=\"{tests}\" failures=\"{f}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\" timestamp=\"{ts}\">",
        name = xml_escape(&r.runbook),
        id = xml_escape(&r.run_id),
        f = failures,
        time = r.duration_seconds,
        ts = r.start.format("%Y-%m-%dT%H:%M:%S"),
    );
    properties(&mut out, r);
    for s in &r.steps {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&r.runbook),
            xml_escape(&s.id),
            s.duration_seconds
        );
        match s.status {
            Outcome::Succeeded => succeeded_case(&mut out, r, s),
            Outcome::Failed => {
                let msg = s.error.as_deref().unwrap_or("failed");
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                    xml_escape(msg.lines().next().unwrap_or_default()),
                    xml_escape(s.type_name.as_deref().unwrap_or("step")),
                    xml_escape(&format!("{msg}\nattempts: {}", s.attempts))
                );
            }
            Outcome::Skipped | Outcome::Cancelled => {
                let why = s
                    .reason
                    .as_deref()
                    .unwrap_or(if s.status == Outcome::Cancelled {
                        "cancelled"
                    } else {
                        "skipped"
                    });
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    xml_escape(why)
                );
            }
        }
    }
    if let Some(rto) = r.rto_seconds {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"rto\" time=\"{:.3}\"",
            xml_escape(&r.runbook),
            r.duration_seconds
        );
        if over_rto {
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\" type=\"rto\"/>\n    </testcase>",
                xml_escape(&rto_failure(r, rto))
            );
        } else {
            out.push_str("/>\n");
        }
    }
    objectives(&mut out, r);
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn properties(out: &mut String, r: &Report) {
    let mut props = vec![
        ("run_id", r.run_id.clone()),
        ("file", r.file.clone()),
        ("file_sha256", r.file_sha256.clone()),
        ("params", params_line(r)),
        ("machine_seconds", format!("{:.3}", r.machine_seconds)),
        ("gate_wait_seconds", format!("{:.3}", r.gate_wait_seconds)),
        ("critical_path", r.critical_path.join(" ")),
    ];
    if let Some(p) = &r.rpo {
        if let Some(a) = p.achieved_seconds {
            props.push(("rpo_achieved_seconds", format!("{a:.3}")));
        }
        if let Some(t) = p.restore_point {
            props.push(("restore_point", t.to_rfc3339()));
        }
    }
    out.push_str("    <properties>\n");
    for (k, v) in props {
        let _ = writeln!(
            out,
            "      <property name=\"{k}\" value=\"{}\"/>",
            xml_escape(&v)
        );
    }
    out.push_str("    </properties>\n");
}

/// One testcase a milestone, and one for the achieved RPO: failures when missed.
fn objectives(out: &mut String, r: &Report) {
    let class = xml_escape(&r.runbook);
    for m in &r.milestones {
        let _ = write!(
            out,
            "    <testcase classname=\"{class}\" name=\"milestone {}\" time=\"{:.3}\"",
            xml_escape(&m.name),
            m.achieved_seconds.unwrap_or(0.0)
        );
        if m.status == MilestoneStatus::Met {
            out.push_str("/>\n");
        } else {
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\" type=\"milestone\"/>\n    </testcase>",
                xml_escape(&milestone_verdict(m))
            );
        }
    }
    if let (Some(p), Some(verdict)) = (&r.rpo, rpo_verdict(r)) {
        let _ = write!(
            out,
            "    <testcase classname=\"{class}\" name=\"rpo\" time=\"0.000\""
        );
        if p.ok() {
            out.push_str("/>\n");
        } else {
            let _ = writeln!(
                out,
                ">\n      <failure message=\"{}\" type=\"rpo\"/>\n    </testcase>",
                xml_escape(&verdict)
            );
        }
    }
}
