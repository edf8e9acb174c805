//! `for_each` groups in reports: the items of each group counted by outcome, and which failed.

use super::model::StepReport;
use crate::event::Outcome;
use schemars::JsonSchema;
use serde::Serialize;
use std::fmt::Write as _;

/// The items of one `for_each` group (steps `GROUP[KEY]`) in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
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
}

pub use crate::runbook::for_each::split_id;

/// The groups of a run's steps, in the order their first item appears.
pub fn of(steps: &[StepReport]) -> Vec<GroupReport> {
    let mut out: Vec<GroupReport> = Vec::new();
    for s in steps {
        let Some((group, key)) = split_id(&s.id) else {
            continue;
        };
        let at = match out.iter().position(|g| g.group == group) {
            Some(at) => at,
            None => {
                out.push(GroupReport {
                    group: group.to_owned(),
                    items: 0,
                    succeeded: 0,
                    failed: 0,
                    skipped: 0,
                    cancelled: 0,
                    failed_items: Vec::new(),
                });
                out.len() - 1
            }
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

/// One line per group: `group dump: 4 items, 3 succeeded, 1 failed (shop), 0 skipped`.
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
        let _ = writeln!(out, ", {} skipped", g.skipped + g.cancelled);
    }
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
