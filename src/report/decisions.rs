//! The decisions a step made about each entry, as the terminal and every report format show
//! them: today those of `prune`, read back from its outputs `kept`, `removed`, `incomplete`,
//! `reasons` and `dry_run`, so a report rendered later from `report.json` shows them too.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::junit::xml_escape;
use super::model::Report;

/// One entry and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The entry name.
    pub name: String,
    /// `kept`, `removed`, `would remove` (dry run) or `left alone`.
    pub verdict: &'static str,
    /// Why: the policies that keep it, `no policy keeps it`, or what an incomplete entry lacks.
    pub why: String,
}

/// The rows of a step whose outputs are a prune's decisions; `None` for other outputs.
/// Kept entries first (newest first), then removed ones, then incomplete ones.
pub fn rows(outputs: &Map<String, Value>) -> Option<Vec<Row>> {
    let reasons = outputs.get("reasons")?.as_object()?;
    let names = |key: &str| -> Vec<String> {
        outputs
            .get(key)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let (kept, removed) = (names("kept"), names("removed"));
    if !outputs.contains_key("kept") || !outputs.contains_key("removed") {
        return None;
    }
    let dry_run = outputs.get("dry_run").and_then(Value::as_bool) == Some(true);
    let why = |name: &str| {
        let text = reasons
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default();
        text.strip_prefix("removed: ")
            .or_else(|| text.strip_prefix("incomplete, left alone: "))
            .unwrap_or(text)
            .to_owned()
    };
    let removed_word = if dry_run { "would remove" } else { "removed" };
    let groups = [
        (kept, "kept"),
        (removed, removed_word),
        (names("incomplete"), "left alone"),
    ];
    let rows = groups
        .into_iter()
        .flat_map(|(list, verdict)| {
            list.into_iter().map(move |name| Row {
                why: why(&name),
                name,
                verdict,
            })
        })
        .collect();
    Some(rows)
}

/// A one-line count: `3 kept, 2 removed, 1 incomplete (left alone)`.
pub fn summary(rows: &[Row]) -> String {
    let count = |verdict: &str| rows.iter().filter(|r| r.verdict == verdict).count();
    let removed = count("removed") + count("would remove");
    let mut text = format!("{} kept, {removed} ", count("kept"));
    text.push_str(if count("would remove") > 0 {
        "to remove (dry run)"
    } else {
        "removed"
    });
    let incomplete = count("left alone");
    if incomplete > 0 {
        let _ = write!(text, ", {incomplete} incomplete (left alone)");
    }
    text
}

/// Lines for the terminal, one an entry, indented under the step's line.
pub fn terminal_lines(outputs: &Map<String, Value>) -> Vec<String> {
    let Some(rows) = rows(outputs) else {
        return Vec::new();
    };
    let mut lines = vec![format!("  {}", summary(&rows))];
    lines.extend(aligned(&rows));
    lines
}

/// One line a row, indented, in aligned columns.
fn aligned(rows: &[Row]) -> impl Iterator<Item = String> {
    let width = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(move |r| format!("  {:<12} {:<width$}  {}", r.verdict, r.name, r.why))
}

/// The steps with decisions, in report order.
fn steps(r: &Report) -> impl Iterator<Item = (&str, Vec<Row>)> {
    r.steps
        .iter()
        .filter_map(|s| rows(&s.outputs).map(|rows| (s.id.as_str(), rows)))
}

/// The section of the text report.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    for (step, rows) in steps(r) {
        let _ = writeln!(out, "\ndecisions of {step}: {}", summary(&rows));
        for line in aligned(&rows) {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// The section of the Markdown report.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let cell = |s: &str| s.replace('|', "\\|");
    for (step, rows) in steps(r) {
        let _ = writeln!(
            out,
            "\n## Decisions of `{step}`\n\n{}\n\n| Entry | Decision | Why |\n|---|---|---|",
            summary(&rows)
        );
        for row in &rows {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                cell(&row.name),
                row.verdict,
                cell(&row.why)
            );
        }
    }
    out
}

/// The section of the HTML report.
pub fn html(r: &Report) -> String {
    let mut out = String::new();
    for (step, rows) in steps(r) {
        let _ = writeln!(
            out,
            "<h2>Decisions of {}</h2>\n<p>{}</p>\n<table class=\"decisions\">\n<tr><th>Entry</th><th>Decision</th><th>Why</th></tr>",
            xml_escape(step),
            xml_escape(&summary(&rows))
        );
        for row in &rows {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                xml_escape(&row.name),
                row.verdict,
                xml_escape(&row.why)
            );
        }
        out.push_str("</table>\n");
    }
    out
}

/// The decisions of one step as the text of its `JUnit` `system-out`, or `None`.
pub fn junit_text(outputs: &Map<String, Value>) -> Option<String> {
    let rows = rows(outputs)?;
    let mut out = summary(&rows);
    for row in &rows {
        let _ = write!(out, "\n{} {}: {}", row.verdict, row.name, row.why);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prune_outputs(dry_run: bool) -> Map<String, Value> {
        let v = json!({
            "kept": ["20240105", "20240104"],
            "removed": ["20240101"],
            "incomplete": ["20240106"],
            "dry_run": dry_run,
            "reasons": {
                "20240105": "daily snapshot, last snapshot",
                "20240104": "oldest daily snapshot",
                "20240101": "removed: no policy keeps it",
                "20240106": "incomplete, left alone: `20240106/SHA256SUMS` is missing",
            },
        });
        v.as_object().unwrap().clone()
    }

    #[test]
    fn rows_follow_kept_removed_incomplete_with_reasons() {
        let rows = rows(&prune_outputs(false)).unwrap();
        let got: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.verdict, r.why.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("20240105", "kept", "daily snapshot, last snapshot"),
                ("20240104", "kept", "oldest daily snapshot"),
                ("20240101", "removed", "no policy keeps it"),
                ("20240106", "left alone", "`20240106/SHA256SUMS` is missing"),
            ]
        );
        assert_eq!(
            summary(&rows),
            "2 kept, 1 removed, 1 incomplete (left alone)"
        );
        let dry = rows_of_dry_run();
        assert_eq!(dry[2].verdict, "would remove");
        assert_eq!(
            summary(&dry),
            "2 kept, 1 to remove (dry run), 1 incomplete (left alone)"
        );
    }

    fn rows_of_dry_run() -> Vec<Row> {
        rows(&prune_outputs(true)).unwrap()
    }

    #[test]
    fn other_outputs_have_no_decisions() {
        let v = json!({"exit_code": 0, "stdout": "", "removed": ["x"]});
        assert!(rows(v.as_object().unwrap()).is_none());
        assert!(terminal_lines(v.as_object().unwrap()).is_empty());
        assert!(junit_text(v.as_object().unwrap()).is_none());
    }

    #[test]
    fn terminal_lines_start_with_the_summary() {
        let lines = terminal_lines(&prune_outputs(false));
        assert_eq!(lines[0], "  2 kept, 1 removed, 1 incomplete (left alone)");
        assert_eq!(
            lines[4],
            "  left alone   20240106  `20240106/SHA256SUMS` is missing"
        );
    }
}
