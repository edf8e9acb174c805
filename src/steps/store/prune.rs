//! `prune` with `store: STORE:PREFIX`: the retention engine of local prunes over the complete
//! backups (objects with a manifest) below a prefix; a removed backup loses its manifest
//! first, then its object.

use crate::retention::{Snapshot, TimeSource, decide_at};
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
use crate::steps::object::{delete, list, resolve};
use crate::steps::prune::PruneConfig;
use serde_json::{Map, Value};

/// A backup's time: when its manifest says it started (`mtime`), or read from its name.
fn time_of(
    time: &TimeSource,
    name: &str,
    m: &super::manifest::Manifest,
) -> Option<chrono::NaiveDateTime> {
    match time {
        TimeSource::Mtime => Some(m.started.naive_utc()),
        TimeSource::Name(pattern) => {
            let leaf = name.rsplit('/').next().unwrap_or(name);
            chrono::NaiveDateTime::parse_from_str(leaf, pattern)
                .ok()
                .or_else(|| {
                    chrono::NaiveDate::parse_from_str(leaf, pattern)
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                })
        }
    }
}

/// Plans the prune of `target` and (unless `dry_run`) deletes what the policy does not keep.
pub async fn run(cfg: &PruneConfig, target: &str, cx: &StepCx) -> StepResult {
    let (store, prefix) = resolve(cx, target)?;
    let time: TimeSource = cfg
        .time
        .parse()
        .map_err(|e: crate::retention::TimeSourceError| {
            StepError::failed(format!("`time: {}`: {}", e.text, e.problem))
        })?;
    let glob = globset::Glob::new(&cfg.matches)
        .map_err(|e| StepError::failed(format!("`match: {}`: {e}", cfg.matches)))?
        .compile_matcher();
    let base = prefix.trim_end_matches('/');
    let relative = |key: &str| -> String {
        key.strip_prefix(base)
            .unwrap_or(key)
            .trim_start_matches('/')
            .to_owned()
    };
    let mut dated = Vec::new();
    let mut undated = Vec::new();
    let mut incomplete = Vec::new();
    for (key, _, manifest) in list(&store, &prefix).await? {
        let name = relative(&key);
        if !glob.is_match(&name) {
            continue;
        }
        let Some(m) = manifest else {
            incomplete.push(name);
            continue;
        };
        match time_of(&time, &name, &m) {
            Some(t) => dated.push((key, name, t)),
            None => undated.push(name),
        }
    }
    let snapshots: Vec<Snapshot> = dated
        .iter()
        .enumerate()
        .map(|(i, (_, _, t))| Snapshot {
            id: i.to_string(),
            time: *t,
        })
        .collect();
    let keep = cfg.keep.clone().unwrap_or_default();
    let within = cfg.keep_within.clone().unwrap_or_default();
    let decisions = decide_at(&snapshots, &keep, &within, chrono::Utc::now().naive_utc());
    if !decisions.is_empty() && decisions.iter().all(|d| !d.keep) {
        return Err(StepError::failed(format!(
            "{}: the policy would remove all {} backups below `{prefix}`: refused",
            store.describe(),
            decisions.len()
        )));
    }
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    let mut reasons = Map::new();
    for d in &decisions {
        let (key, name, _) = &dated[d.id.parse::<usize>().unwrap_or_default()];
        if d.keep {
            kept.push(Value::from(name.as_str()));
            reasons.insert(name.clone(), Value::from(d.reasons.join(", ")));
        } else {
            removed.push((key.clone(), name.clone()));
            reasons.insert(name.clone(), Value::from("removed: no policy keeps it"));
        }
    }
    for name in &undated {
        kept.push(Value::from(name.as_str()));
        reasons.insert(name.clone(), Value::from("kept: no time could be read"));
    }
    if !cfg.dry_run {
        for (key, _) in &removed {
            delete(&store, key).await?;
        }
    }
    let mut out = Outputs::new();
    out.insert("kept".into(), Value::Array(kept));
    out.insert(
        "removed".into(),
        Value::Array(removed.into_iter().map(|(_, n)| Value::from(n)).collect()),
    );
    out.insert(
        "incomplete".into(),
        Value::Array(incomplete.into_iter().map(Value::from).collect()),
    );
    out.insert("reasons".into(), Value::Object(reasons));
    out.insert("dry_run".into(), cfg.dry_run.into());
    Ok(out)
}
