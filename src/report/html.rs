//! The report as one self-contained HTML page: inline CSS and SVG, nothing fetched. A Gantt
//! chart of the steps with the RTO line, and the durations of earlier runs as a trend.

use super::junit::xml_escape as esc;
use super::model::Report;
use super::objectives::MilestoneStatus;
use super::{
    at_offset, critical_path_text, milestone_verdict, offset_secs, outcome_word, params_line,
    rpo_verdict, rto_verdict, run_outcome_word,
};
use crate::duration::human_secs;
use crate::event::{Outcome, RunOutcome};
use std::fmt::Write as _;

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.4em}table{border-collapse:collapse;margin:1em 0}\
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}td.n{text-align:right}\
.succeeded{fill:#3a3;color:#262}.failed{fill:#c33;color:#c33}.skipped,.cancelled{fill:#aaa;color:#777}\
.ok{color:#262}.bad{color:#c33;font-weight:bold}svg text{font:12px sans-serif;fill:#222}\
rect.critical{stroke:#000;stroke-width:2}tr.critical td:first-child{font-weight:bold}\
.milestone line{stroke:#06c;stroke-width:1.5;stroke-dasharray:2 2}.milestone text{fill:#06c}";

const ROW: f64 = 22.0;
const LABEL: f64 = 160.0;
const CHART: f64 = 640.0;

fn colour(o: Outcome) -> &'static str {
    outcome_word(o)
}

/// The Gantt chart: one bar a step from its start to its end, and the RTO as a red line.
/// The time axis fits the run, not the RTO: a run far shorter than its RTO stays readable,
/// and an RTO or milestone beyond the axis is marked at its right edge.
fn gantt(r: &Report) -> String {
    let span = r
        .steps
        .iter()
        .filter_map(|s| s.start.map(|t| offset_secs(r, t) + s.duration_seconds))
        .fold(r.duration_seconds, f64::max)
        .max(1.0)
        * 1.05;
    let scale = CHART / span;
    // A time on the axis, or the right edge when it is off scale.
    let x_of = |secs: f64| LABEL + secs.min(span) * scale;
    let height = ROW * (r.steps.len() as f64 + 1.5);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg id=\"gantt\" width=\"{w}\" height=\"{height}\" role=\"img\" aria-label=\"timeline of the steps\">",
        w = LABEL + CHART + 20.0
    );
    for (i, s) in r.steps.iter().enumerate() {
        let y = ROW * i as f64 + 4.0;
        let _ = writeln!(
            out,
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            y + 13.0,
            esc(&s.id)
        );
        if let Some(t) = s.start {
            let x = LABEL + offset_secs(r, t) * scale;
            let w = (s.duration_seconds * scale).max(1.0);
            let _ = writeln!(
                out,
                "<rect class=\"{}{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{}: {} from +{} for {}</title></rect>",
                colour(s.status),
                if s.on_critical_path { " critical" } else { "" },
                ROW - 6.0,
                esc(&s.id),
                outcome_word(s.status),
                human_secs(offset_secs(r, t)),
                human_secs(s.duration_seconds)
            );
        }
    }
    let bottom = ROW * r.steps.len() as f64 + 6.0;
    let _ = writeln!(
        out,
        "<line x1=\"{LABEL}\" y1=\"{bottom:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\" stroke=\"#888\"/>",
        LABEL + CHART
    );
    let _ = writeln!(
        out,
        "<text x=\"{LABEL}\" y=\"{:.1}\">0</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        bottom + 14.0,
        LABEL + CHART,
        bottom + 14.0,
        human_secs(span)
    );
    let off = |secs: f64| if secs > span { " (off scale) ▸" } else { "" };
    if let Some(rto) = r.rto_seconds {
        let x = x_of(rto);
        let _ = writeln!(
            out,
            "<line id=\"rto\" x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#c00\" stroke-width=\"2\" stroke-dasharray=\"6 3\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" style=\"fill:#c00\">RTO {}{}</text>",
            x - 3.0,
            bottom - 4.0,
            human_secs(rto),
            off(rto)
        );
    }
    for (k, m) in r.milestones.iter().enumerate() {
        let x = x_of(m.rto_seconds);
        // Labels one under the other from the top, clear of the RTO's at the bottom; at the
        // right edge, anchored to the left of the line.
        let anchor = if m.rto_seconds > span * 0.7 {
            "text-anchor=\"end\" "
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<g class=\"milestone\" data-milestone=\"{name}\"><line x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/><text {anchor}x=\"{:.1}\" y=\"{:.1}\">{name} {}{}</text></g>",
            if anchor.is_empty() { x + 3.0 } else { x - 3.0 },
            12.0 + 14.0 * k as f64,
            human_secs(m.rto_seconds),
            off(m.rto_seconds),
            name = esc(&m.name),
        );
        if let Some(a) = m.achieved_seconds {
            let x = x_of(a);
            let _ = writeln!(
                out,
                "<path class=\"{}\" d=\"M{x:.1} {bottom:.1} l-5 8 h10 z\"><title>{} reached after {}</title></path>",
                if m.status == MilestoneStatus::Met {
                    "succeeded"
                } else {
                    "failed"
                },
                esc(&m.name),
                human_secs(a)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

/// A time to the second, in UTC and in the local time of the machine that renders it.
fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    let local = t.with_timezone(&chrono::Local);
    format!(
        "{} UTC ({} local)",
        t.format("%Y-%m-%d %H:%M:%S"),
        local.format("%Y-%m-%d %H:%M:%S %:z")
    )
}

/// Critical path, milestones and RPO as a list.
fn objectives(r: &Report) -> String {
    let mut out = String::from("<ul id=\"objectives\">\n");
    let _ = writeln!(
        out,
        "<li id=\"critical-path\">{}</li>",
        esc(&format!("critical path: {}", critical_path_text(r)))
    );
    for m in &r.milestones {
        let _ = writeln!(
            out,
            "<li class=\"milestone-verdict {}\" data-milestone=\"{}\">{}</li>",
            if m.status == MilestoneStatus::Met {
                "ok"
            } else {
                "bad"
            },
            esc(&m.name),
            esc(&milestone_verdict(m))
        );
    }
    if let Some(v) = rpo_verdict(r) {
        let ok = r.rpo.as_ref().is_some_and(super::objectives::RpoReport::ok);
        let _ = writeln!(
            out,
            "<li id=\"rpo\" class=\"{}\">{}</li>",
            if ok { "ok" } else { "bad" },
            esc(&v)
        );
    }
    out.push_str("</ul>\n");
    out
}

/// Duration of each run, oldest first, as bars; the RTO as a line.
fn trend(r: &Report, history: &[Report]) -> String {
    let runs: Vec<&Report> = history
        .iter()
        .filter(|h| h.run_id != r.run_id)
        .chain([r])
        .collect();
    if runs.len() < 2 {
        return "<p id=\"trend\">This is the first run of this runbook: no earlier runs to compare.</p>\n".to_owned();
    }
    let max = runs
        .iter()
        .map(|h| h.duration_seconds)
        .fold(r.rto_seconds.unwrap_or(0.0), f64::max)
        .max(1.0);
    let (w, h) = (CHART, 140.0);
    let bar = (w / runs.len() as f64).min(40.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg id=\"trend\" width=\"{:.0}\" height=\"{:.0}\" role=\"img\" aria-label=\"duration of earlier runs\">",
        w + 20.0,
        h + 20.0
    );
    for (i, run) in runs.iter().enumerate() {
        let bh = (run.duration_seconds / max * h).max(1.0);
        let class = match run.outcome {
            Some(RunOutcome::Succeeded) => "succeeded",
            Some(RunOutcome::Failed) => "failed",
            _ => "skipped",
        };
        let _ = writeln!(
            out,
            "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{} {}: {}</title></rect>",
            i as f64 * bar + 2.0,
            h - bh,
            bar - 4.0,
            esc(&run.run_id),
            run_outcome_word(run.outcome),
            human_secs(run.duration_seconds)
        );
    }
    if let Some(rto) = r.rto_seconds {
        let y = h - rto / max * h;
        let _ = writeln!(
            out,
            "<line x1=\"0\" y1=\"{y:.1}\" x2=\"{w:.1}\" y2=\"{y:.1}\" stroke=\"#c00\" stroke-dasharray=\"6 3\"/>"
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"0\" y1=\"{h:.1}\" x2=\"{w:.1}\" y2=\"{h:.1}\" stroke=\"#888\"/><text x=\"0\" y=\"{:.1}\">{} runs, max {}</text>",
        h + 15.0,
        runs.len(),
        human_secs(max)
    );
    out.push_str("</svg>\n");
    out
}

/// Render the report as a self-contained HTML page.
pub fn render(r: &Report, history: &[Report]) -> String {
    let mut out = String::new();
    let title = format!("rb: {} run {}", r.runbook, r.run_id);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>",
        esc(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", esc(&title));
    let verdict_class = if r.rto_met != Some(true) && r.rto_seconds.is_some() {
        "bad"
    } else {
        "ok"
    };
    let _ = writeln!(
        out,
        "<p>Result: <b class=\"{}\">{}</b>. Started {}, ended {}. Took {} (machine {}, gate wait {}).</p>\n<p id=\"verdict\" class=\"{verdict_class}\">{}</p>",
        if r.outcome == Some(RunOutcome::Succeeded) {
            "ok"
        } else {
            "bad"
        },
        run_outcome_word(r.outcome),
        when(r.start),
        r.end.map_or_else(|| "-".to_owned(), when),
        human_secs(r.duration_seconds),
        human_secs(r.machine_seconds),
        human_secs(r.gate_wait_seconds),
        esc(&rto_verdict(r))
    );
    let _ = writeln!(
        out,
        "<p>Runbook file {} (sha256 {}). Params: {}.</p>",
        esc(&r.file),
        esc(&r.file_sha256),
        esc(&params_line(r))
    );
    if r.attempts.len() > 1 {
        let _ = writeln!(
            out,
            "<p id=\"attempts\">Attempts: {}. Total {}.</p>",
            esc(&super::attempts_line(r)),
            esc(&super::time_split(r))
        );
    }
    out.push_str(&objectives(r));
    out.push_str("<h2>Timeline</h2>\n<p>Bold outline: the critical path. Red line: the RTO; blue: milestones, triangles where they were reached.</p>\n");
    out.push_str(&gantt(r));
    out.push_str("<table>\n<tr><th>Step</th><th>Type</th><th>Status</th><th>Start</th><th>End</th><th>Duration</th><th>Attempts</th><th>Note</th></tr>\n");
    for s in &r.steps {
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            if s.on_critical_path {
                " class=\"critical\""
            } else {
                ""
            },
            esc(&s.id),
            esc(s.type_name.as_deref().unwrap_or("")),
            colour(s.status),
            outcome_word(s.status),
            at_offset(r, s.start, ""),
            at_offset(r, s.end, ""),
            human_secs(s.duration_seconds),
            s.attempts,
            esc(s.error.as_deref().or(s.reason.as_deref()).unwrap_or(""))
        );
    }
    out.push_str("</table>\n");
    out.push_str(&super::groups::html(&r.groups));
    images_table(&mut out, r);
    if !r.artifacts.is_empty() {
        out.push_str("<h2>Artifacts</h2>\n<table id=\"artifacts\">\n<tr><th>File</th><th>Step</th><th>Size</th><th>SHA-256</th></tr>\n");
        for a in &r.artifacts {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td><code>{}</code></td></tr>",
                esc(&a.path),
                esc(&a.step),
                esc(&super::bytes_text(a.bytes)),
                esc(a.sha256.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str(&super::decisions::html(r));
    out.push_str("<h2>Earlier runs</h2>\n");
    out.push_str(&trend(r, history));
    out.push_str("</body>\n</html>\n");
    out
}

/// The images `container.run` steps ran, with their digests.
fn images_table(out: &mut String, r: &Report) {
    if !r.images.is_empty() {
        out.push_str("<h2>Images</h2>\n<table id=\"images\">\n<tr><th>Image</th><th>Step</th><th>Digest</th><th>Pulled</th></tr>\n");
        for i in &r.images {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&i.image),
                esc(&i.step),
                esc(&i.digest),
                if i.pulled { "yes" } else { "no" }
            );
        }
        out.push_str("</table>\n");
    }
}
