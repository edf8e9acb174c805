//! `for_each` groups in reports: the items of each group counted by outcome, which failed,
//! and the slowest (the item whose chain of steps is longest).

use super::junit::xml_escape;
use super::model::StepReport;
use crate::duration::human_secs;
use crate::event::Outcome;
use schemars::JsonSchema;
use serde::Serialize;
use std::fmt::Write as _;

/// The items of one `for_each` group (steps `GROUP[KEY]`) in a run.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct GroupReport {
    /// The group's id (`dump`).
    pub group: String,
    pub items: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
    /// The keys of the items that failed (`shop` for `dump[shop]`).
    pub failed_items: Vec<String>,
    /// The slowest item: the one whose chain (the longest chain of steps through its step, by
    /// duration) is longest, the item that decided when this group's part of the run ended
    /// (`None`: nothing took any time).
    pub slowest_item: Option<String>,
    /// The length of its chain, in seconds (the steps' durations summed along it).
    pub slowest_item_seconds: Option<f64>,
}

pub use crate::runbook::for_each::split_id;

/// The groups of a run's steps, in the order their first item appears.
pub fn of(steps: &[StepReport]) -> Vec<GroupReport> {
    let timed: Vec<(&str, Vec<&str>, f64)> = steps
        .iter()
        .map(|s| {
            let needs = s.needs.iter().map(String::as_str).collect();
            (s.id.as_str(), needs, s.duration_seconds)
        })
        .collect();
    let slowest = crate::runbook::chains::slowest(&timed);
    let mut out: Vec<GroupReport> = Vec::new();
    for s in steps {
        let Some((group, key)) = split_id(&s.id) else {
            continue;
        };
        let at = if let Some(at) = out.iter().position(|g| g.group == group) {
            at
        } else {
            let slow = slowest.get(group);
            out.push(GroupReport {
                group: group.to_owned(),
                items: 0,
                succeeded: 0,
                failed: 0,
                skipped: 0,
                cancelled: 0,
                failed_items: Vec::new(),
                slowest_item: slow.map(|s| s.0.to_owned()),
                slowest_item_seconds: slow.map(|s| s.1),
            });
            out.len() - 1
        };
        let g = &mut out[at];
        g.items += 1;
        match s.status {
            Outcome::Succeeded => g.succeeded += 1,
            Outcome::Failed => {
                g.failed += 1;
                g.failed_items.push(key.to_owned());
            }
            Outcome::Skipped => g.skipped += 1,
            Outcome::Cancelled => g.cancelled += 1,
        }
    }
    out
}

/// `slowest: crm (1m 02s)`, or nothing.
fn slowest_text(g: &GroupReport) -> Option<String> {
    let (item, secs) = (g.slowest_item.as_ref()?, g.slowest_item_seconds?);
    Some(format!("slowest: {item} ({})", human_secs(secs)))
}

/// One line per group:
/// `group dump: 4 items, 3 succeeded, 1 failed (shop), 0 skipped; slowest: crm (12s)`.
pub fn text(groups: &[GroupReport]) -> String {
    let mut out = String::new();
    for g in groups {
        let _ = write!(
            out,
            "group {}: {} items, {} succeeded, {} failed",
            g.group, g.items, g.succeeded, g.failed
        );
        if !g.failed_items.is_empty() {
            let _ = write!(out, " ({})", g.failed_items.join(", "));
        }
        let _ = write!(out, ", {} skipped", g.skipped + g.cancelled);
        if let Some(slow) = slowest_text(g) {
            let _ = write!(out, "; {slow}");
        }
        out.push('\n');
    }
    out
}

/// A Markdown table of the groups (nothing for a run without `for_each`).
pub fn markdown(groups: &[GroupReport]) -> String {
    if groups.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n## Groups (`for_each`)\n\n| Group | Items | Succeeded | Failed | Skipped | Failed items | Slowest item (chain) |\n|---|--:|--:|--:|--:|---|---|\n",
    );
    for g in groups {
        let failed: Vec<String> = g.failed_items.iter().map(|k| format!("`{k}`")).collect();
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} |",
            g.group,
            g.items,
            g.succeeded,
            g.failed,
            g.skipped + g.cancelled,
            if failed.is_empty() {
                "–".to_owned()
            } else {
                failed.join(", ")
            },
            slowest_cell(g).unwrap_or_else(|| "–".to_owned())
        );
    }
    out
}

/// `crm (12s)`.
fn slowest_cell(g: &GroupReport) -> Option<String> {
    let (item, secs) = (g.slowest_item.as_ref()?, g.slowest_item_seconds?);
    Some(format!("{item} ({})", human_secs(secs)))
}

/// An HTML table of the groups (nothing for a run without `for_each`).
pub fn html(groups: &[GroupReport]) -> String {
    if groups.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Groups (for_each)</h2>\n<table id=\"groups\">\n<tr><th>Group</th><th>Items</th><th>Succeeded</th><th>Failed</th><th>Skipped</th><th>Failed items</th><th>Slowest item (chain)</th></tr>\n",
    );
    for g in groups {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            xml_escape(&g.group),
            g.items,
            g.succeeded,
            if g.failed > 0 { " bad" } else { "" },
            g.failed,
            g.skipped + g.cancelled,
            xml_escape(&g.failed_items.join(", ")),
            xml_escape(&slowest_cell(g).unwrap_or_default())
        );
    }
    out.push_str("</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::split_id;

    #[test]
    fn ids_of_items_split_into_group_and_key() {
        assert_eq!(split_id("dump[shop]"), Some(("dump", "shop")));
        assert_eq!(split_id("each[a]/hello"), None);
        assert_eq!(split_id("dump"), None);
        assert_eq!(split_id("[x]"), None);
    }
}
