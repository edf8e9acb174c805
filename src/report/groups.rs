//! `for_each` groups in reports: the items of each group counted by outcome, which failed,
//! and the slowest (the item whose chain of steps is longest).

use super::junit::xml_escape;
use super::model::StepReport;
use crate::duration::human_secs;
use crate::event::Outcome;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::HashMap;
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
    /// The slowest item: the one whose chain is longest (see [`chains`]), the item that
    /// decided when this group's part of the run ended (`None`: nothing took any time).
    pub slowest_item: Option<String>,
    /// The length of its chain, in seconds (the steps' durations summed along it).
    pub slowest_item_seconds: Option<f64>,
}

pub use crate::runbook::for_each::split_id;

/// The length of the longest chain of steps through each step: from a step that needs
/// nothing, along `needs`, to a step that nothing needs, summing the steps' `seconds`
/// (durations in a report, estimates in a plan). `steps` are `(id, needs, seconds)`; a need
/// that names no step of the list adds nothing.
pub fn chains(steps: &[(&str, Vec<&str>, f64)]) -> Vec<f64> {
    let at: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.0, i)).collect();
    let needs: Vec<Vec<usize>> = steps
        .iter()
        .map(|s| s.1.iter().filter_map(|n| at.get(n).copied()).collect())
        .collect();
    let mut dependents = vec![Vec::new(); steps.len()];
    let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
    for (i, ns) in needs.iter().enumerate() {
        for &n in ns {
            dependents[n].push(i);
        }
    }
    // Kahn's order: every step after the steps it needs (a cycle, which a plan never has,
    // leaves its steps out and their chains at their own length).
    let mut order: Vec<usize> = (0..steps.len()).filter(|&i| waiting[i] == 0).collect();
    let mut k = 0;
    while k < order.len() {
        for &d in &dependents[order[k]] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                order.push(d);
            }
        }
        k += 1;
    }
    let secs: Vec<f64> = steps.iter().map(|s| s.2).collect();
    let mut to = secs.clone();
    for &i in &order {
        to[i] = secs[i] + needs[i].iter().map(|&n| to[n]).fold(0.0, f64::max);
    }
    let mut from = secs.clone();
    for &i in order.iter().rev() {
        from[i] = secs[i] + dependents[i].iter().map(|&d| from[d]).fold(0.0, f64::max);
    }
    (0..steps.len())
        .map(|i| to[i] + from[i] - secs[i])
        .collect()
}

/// Each group's slowest item and its chain's length, by group: the item of the longest chain
/// (the first in list order on a tie); none when every chain is empty.
pub fn slowest<'a>(steps: &[(&'a str, Vec<&str>, f64)]) -> HashMap<&'a str, (&'a str, f64)> {
    let mut out: HashMap<&str, (&str, f64)> = HashMap::new();
    for (s, len) in steps.iter().zip(chains(steps)) {
        let Some((group, key)) = split_id(s.0) else {
            continue;
        };
        if len <= 0.0 {
            continue;
        }
        let best = out.entry(group).or_insert((key, len));
        if len > best.1 {
            *best = (key, len);
        }
    }
    out
}

/// The groups of a run's steps, in the order their first item appears.
pub fn of(steps: &[StepReport]) -> Vec<GroupReport> {
    let timed: Vec<(&str, Vec<&str>, f64)> = steps
        .iter()
        .map(|s| {
            let needs = s.needs.iter().map(String::as_str).collect();
            (s.id.as_str(), needs, s.duration_seconds)
        })
        .collect();
    let slowest = slowest(&timed);
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
    use super::{chains, slowest, split_id};

    #[test]
    fn ids_of_items_split_into_group_and_key() {
        assert_eq!(split_id("dump[shop]"), Some(("dump", "shop")));
        assert_eq!(split_id("each[a]/hello"), None);
        assert_eq!(split_id("dump"), None);
        assert_eq!(split_id("[x]"), None);
    }

    #[test]
    fn the_slowest_item_is_the_one_on_the_longest_chain() {
        // a[x] is quick but its successor is slow: x's chain (1 + 10) beats y's (5 + 1).
        let steps = vec![
            ("prep", vec![], 2.0),
            ("a[x]", vec!["prep"], 1.0),
            ("a[y]", vec!["prep"], 5.0),
            ("b[x]", vec!["a[x]"], 10.0),
            ("b[y]", vec!["a[y]"], 1.0),
            ("end", vec!["b[x]", "b[y]"], 3.0),
        ];
        assert_eq!(chains(&steps), [16.0, 16.0, 11.0, 16.0, 11.0, 16.0]);
        let s = slowest(&steps);
        assert_eq!(s["a"], ("x", 16.0));
        assert_eq!(s["b"], ("x", 16.0));
        assert!(slowest(&[("a[x]", vec![], 0.0)]).is_empty());
    }
}
