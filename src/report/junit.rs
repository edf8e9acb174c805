//! The report as `JUnit` XML: one `testcase` a step, so CI systems show drills like tests.

use super::model::Report;
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
    let over_rto = r.rto_met == Some(false);
    let tests = r.steps.len() + usize::from(r.rto_seconds.is_some());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{name}\" tests=\"{tests}\" failures=\"{f}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        name = xml_escape(&r.runbook),
        f = failures + usize::from(over_rto),
        time = r.duration_seconds,
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{name}\" id=\"{id}\" tests=\"{tests}\" failures=\"{f}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\" timestamp=\"{ts}\">",
        name = xml_escape(&r.runbook),
        id = xml_escape(&r.run_id),
        f = failures + usize::from(over_rto),
        time = r.duration_seconds,
        ts = r.start.format("%Y-%m-%dT%H:%M:%S"),
    );
    let _ = writeln!(
        out,
        "    <properties>\n      <property name=\"run_id\" value=\"{}\"/>\n      <property name=\"file\" value=\"{}\"/>\n      <property name=\"machine_seconds\" value=\"{:.3}\"/>\n      <property name=\"gate_wait_seconds\" value=\"{:.3}\"/>\n    </properties>",
        xml_escape(&r.run_id),
        xml_escape(&r.file),
        r.machine_seconds,
        r.gate_wait_seconds
    );
    for s in &r.steps {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&r.runbook),
            xml_escape(&s.id),
            s.duration_seconds
        );
        match s.status {
            Outcome::Succeeded => out.push_str("/>\n"),
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
                xml_escape(&format!(
                    "took {:.3}s, over the RTO of {rto:.3}s",
                    r.duration_seconds
                ))
            );
        } else {
            out.push_str("/>\n");
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
