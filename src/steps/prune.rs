//! `prune`: retention with `restic forget` semantics over a directory of backups.

use super::{ConfigProblem, StepConfig};
use crate::retention::{KeepCounts, KeepWithin};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Remove old backups, keeping what the policy keeps.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    /// The directory whose entries are pruned (never the directory itself).
    pub path: String,
    /// Glob of the entry names considered (default `*`).
    #[serde(rename = "match", default = "all")]
    pub matches: String,
    /// Where an entry's time comes from: `mtime`, or `name:FORMAT` (strftime, e.g.
    /// `name:%Y%m%d`) parsed from the entry's name.
    #[serde(default = "mtime")]
    pub time: String,
    /// Counts: `last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`.
    pub keep: Option<KeepCounts>,
    /// Calendar windows: `within`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`
    /// (`30d`, `12w`, `12mo`, `7y`).
    pub keep_within: Option<KeepWithin>,
    /// Only list what would be removed.
    #[serde(default)]
    pub dry_run: bool,
}

fn all() -> String {
    "*".into()
}

fn mtime() -> String {
    "mtime".into()
}

impl StepConfig for PruneConfig {
    fn problems(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        if self.keep.is_none() && self.keep_within.is_none() {
            out.push(ConfigProblem::new(
                "",
                "a prune step needs `keep` and/or `keep_within` (an empty policy would remove everything)",
            ));
        }
        if self.time != "mtime" && !self.time.starts_with("name:") {
            out.push(ConfigProblem::new(
                "time",
                "`time` is `mtime` or `name:FORMAT`",
            ));
        }
        out
    }
}
