//! `prune`: retention with `restic forget` semantics over a directory of backups.

use super::{ConfigProblem, Step, StepType, Touches, plain};
use crate::retention::{KeepCounts, KeepWithin, PruneEntry, Require, TimeSource, policy_is_empty};
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Remove old backups, keeping what the policy keeps.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    /// The directory whose entries are pruned (never the directory itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Instead of `path`: the backups below `STORE:PREFIX` in an object store (each object
    /// and its manifest are removed together; an object without a manifest is incomplete
    /// and left alone; `mtime` is the time the manifest records the backup started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Glob of the entry names considered (default `*`).
    #[serde(rename = "match", default = "all")]
    pub matches: String,
    /// Where an entry's time comes from: `mtime`, or `name:FORMAT` (strftime, e.g.
    /// `name:%Y%m%d`) parsed from the entry's name.
    #[serde(default = "mtime")]
    pub time: String,
    /// A file each matched entry needs to count as a complete backup: a path inside a matched
    /// directory (`SHA256SUMS`), or with `{name}` for a file next to the entry
    /// (`{name}.sha256`, removed with the entry). Entries without it (a failed run's
    /// half-filled directory) are neither counted nor removed: "incomplete, left alone".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<Require>,
    /// Counts: `last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`; a number, or `all`
    /// (`-1`) for no limit.
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

impl Step for PruneConfig {
    const TYPE: StepType = plain(&["kept", "removed", "reasons", "incomplete", "dry_run"]);

    /// It removes files under `path`, and writes none.
    fn touches(&self) -> Touches {
        Touches::default()
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run(self, cx).await
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        match (&self.path, &self.store) {
            (None, None) => out.push(ConfigProblem::new(
                "",
                "a prune step needs `path` or `store`",
            )),
            (Some(_), Some(_)) => out.push(ConfigProblem::new(
                "store",
                "give `path` or `store`, not both",
            )),
            (None, Some(_)) if self.require.is_some() => out.push(ConfigProblem::new(
                "require",
                "`require` is for directories: a store backup is complete when it has its manifest",
            )),
            _ => {}
        }
        if self.keep.is_none() && self.keep_within.is_none() {
            out.push(ConfigProblem::new(
                "",
                "a prune step needs `keep` and/or `keep_within` (an empty policy would remove everything)",
            ));
        } else if policy_is_empty(
            &self.keep.clone().unwrap_or_default(),
            &self.keep_within.clone().unwrap_or_default(),
        ) {
            let key = if self.keep.is_some() {
                "keep"
            } else {
                "keep_within"
            };
            out.push(ConfigProblem::new(
                key,
                "the retention policy is empty: no count above zero (`0` means not set, as in \
                 restic) and no window; set a count (`all` for no limit) or a `keep_within` \
                 window",
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
    if let Some(target) = &cfg.store {
        return crate::steps::store::prune::run(cfg, target, cx).await;
    }
    let dir = cx.path(cfg.path.as_deref().unwrap_or_default());
    let time: TimeSource = cfg
        .time
        .parse()
        .map_err(|e: crate::retention::TimeSourceError| {
            StepError::failed(format!("`time: {}`: {}", e.text, e.problem))
        })?;
    let (glob, keep, within, require, dry) = (
        cfg.matches.clone(),
        cfg.keep.clone().unwrap_or_default(),
        cfg.keep_within.clone().unwrap_or_default(),
        cfg.require.clone(),
        cfg.dry_run,
    );
    let result = tokio::task::spawn_blocking(move || {
        let plan =
            crate::retention::plan_prune(&dir, &glob, &time, &keep, &within, require.as_ref())?;
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
    let names = |it: &mut dyn Iterator<Item = &PruneEntry>| -> Vec<Value> {
        it.map(|e| Value::String(e.name.clone())).collect()
    };
    let mut out = Outputs::new();
    out.insert("kept".into(), Value::Array(names(&mut plan.kept())));
    out.insert("removed".into(), Value::Array(names(&mut plan.removed())));
    out.insert(
        "incomplete".into(),
        Value::Array(names(&mut plan.incomplete())),
    );
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
