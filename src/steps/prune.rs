//! `prune`: retention with `restic forget` semantics over a directory of backups.

use super::{ConfigProblem, StepConfig};
use crate::exec::cx::{Outputs, StepCx, StepError, StepResult};
use crate::retention::{KeepCounts, KeepWithin, TimeSource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
        let counts_empty = self.keep.as_ref().is_none_or(KeepCounts::is_empty);
        let windows_empty = self.keep_within.as_ref().is_none_or(KeepWithin::is_empty);
        if counts_empty && windows_empty {
            out.push(ConfigProblem::new(
                "keep",
                "a prune step needs `keep` and/or `keep_within` with a count above zero or a \
                 window (an empty policy would remove everything)",
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

/// Plan the prune and (unless `dry_run`) remove what the policy does not keep.
pub async fn run(cfg: &PruneConfig, cx: &StepCx) -> StepResult {
    let dir = cx.path(&cfg.path);
    let time: TimeSource = cfg
        .time
        .parse()
        .map_err(|e: crate::retention::TimeSourceError| {
            StepError::failed(format!("`time: {}`: {}", e.text, e.problem))
        })?;
    let (glob, keep, within, dry) = (
        cfg.matches.clone(),
        cfg.keep.clone().unwrap_or_default(),
        cfg.keep_within.clone().unwrap_or_default(),
        cfg.dry_run,
    );
    let result = tokio::task::spawn_blocking(move || {
        let plan = crate::retention::plan_prune(&dir, &glob, &time, &keep, &within)?;
        let outcome = if dry {
            None
        } else {
            Some(crate::retention::apply(&plan)?)
        };
        Ok::<_, crate::retention::PruneError>((plan, outcome))
    })
    .await
    .map_err(|e| StepError::failed(e.to_string()))?;
    let (plan, outcome) = result.map_err(|e| StepError::failed(e.to_string()))?;
    let mut reasons = Map::new();
    for e in plan.entries() {
        let why = if e.keep {
            e.reasons.join(", ")
        } else {
            "removed: no policy keeps it".to_owned()
        };
        reasons.insert(e.name.clone(), Value::String(why));
    }
    let names = |it: &mut dyn Iterator<Item = &crate::retention::PruneEntry>| -> Vec<Value> {
        it.map(|e| Value::String(e.name.clone())).collect()
    };
    let mut out = Outputs::new();
    out.insert("kept".into(), Value::Array(names(&mut plan.kept())));
    out.insert("removed".into(), Value::Array(names(&mut plan.removed())));
    out.insert("reasons".into(), Value::Object(reasons));
    out.insert("dry_run".into(), dry.into());
    if let Some(o) = outcome
        && !o.failed.is_empty()
    {
        let list: Vec<String> = o
            .failed
            .iter()
            .map(|f| format!("`{}`: {}", f.path.display(), f.error))
            .collect();
        return Err(StepError::failed(format!(
            "could not remove {}",
            list.join("; ")
        )));
    }
    Ok(out)
}
