//! The `for_each` groups of a plan: each group's items and its slowest item by estimate.

use super::build::PlanStep;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One `for_each` group of a plan (steps `GROUP[KEY]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanGroup {
    /// The group's id (`dump`).
    pub group: String,
    /// The item keys, in list order.
    pub items: Vec<String>,
    /// The item whose chain is longest by estimate: the longest chain of steps through its
    /// step, from a step that needs nothing to one that nothing needs (docs/fleets.md). When
    /// the group is on the critical path, this item is on it. `None` without estimates.
    pub slowest_item: Option<String>,
    /// The estimated length of that chain, in seconds.
    pub slowest_item_seconds: Option<f64>,
}

/// The groups of `steps`, in plan order, weighed by `seconds` (estimates, or history).
pub fn groups(steps: &[PlanStep], seconds: impl Fn(&PlanStep) -> f64) -> Vec<PlanGroup> {
    let weighed: Vec<(&str, Vec<&str>, f64)> = steps
        .iter()
        .map(|s| {
            let needs = s.needs.iter().map(String::as_str).collect();
            (s.id.as_str(), needs, seconds(s))
        })
        .collect();
    let slowest = crate::runbook::chains::slowest(&weighed);
    crate::runbook::for_each::groups_of(steps.iter().map(|s| s.id.as_str()))
        .into_iter()
        .map(|(group, keys)| {
            let slow = slowest.get(group);
            PlanGroup {
                group: group.to_owned(),
                items: keys.into_iter().map(str::to_owned).collect(),
                slowest_item: slow.map(|s| s.0.to_owned()),
                slowest_item_seconds: slow.map(|s| s.1),
            }
        })
        .collect()
}
