//! The report as Prometheus metrics (text exposition format), for the node exporter's
//! textfile collector or a Pushgateway. See `docs/metrics.md` for the alert rules.

use super::model::{Report, StepReport};
use crate::event::{Outcome, RunOutcome};
use std::fmt::Write as _;

/// The backup a run made: the last step to finish with both a `file` and a `bytes` output.
/// A recovery run (one with a restore point) makes none: its files, such as the safety dump
/// taken before a restore, are not the backups the alerts watch.
pub fn backup_artifact(r: &Report) -> Option<&StepReport> {
    if r.rpo.is_some() {
        return None;
    }
    r.steps
        .iter()
        .filter(|s| {
            // Made in this run: a step taken from the run it derives from is that run's.
            s.status == Outcome::Succeeded
                && s.attempt > 0
                && s.outputs.get("file").is_some()
                && s.outputs
                    .get("bytes")
                    .and_then(serde_json::Value::as_u64)
                    .is_some()
        })
        .max_by_key(|s| s.end)
}

/// Whether the run is a backup run (it made a file with a size).
pub fn is_backup(r: &Report) -> bool {
    backup_artifact(r).is_some()
}

/// The newest successful backup run among `history` (oldest first).
pub fn last_backup(history: &[Report]) -> Option<&Report> {
    history
        .iter()
        .rev()
        .find(|h| h.outcome == Some(RunOutcome::Succeeded) && is_backup(h))
}

/// `rb_group_items`: the items of each `for_each` group by outcome (none without groups).
fn group_items(out: &mut String, r: &Report, rb: &str) {
    let groups: Vec<(String, f64)> = r
        .groups
        .iter()
        .flat_map(|g| {
            let at = format!("{rb},group=\"{}\"", label(&g.group));
            [
                ("succeeded", g.succeeded),
                ("failed", g.failed),
                ("skipped", g.skipped),
                ("cancelled", g.cancelled),
            ]
            .map(|(outcome, n)| (format!("{at},outcome=\"{outcome}\""), n as f64))
        })
        .collect();
    if !groups.is_empty() {
        family(
            out,
            "rb_group_items",
            "Items of each `for_each` group of the last run, by outcome.",
            &groups,
        );
    }
}

/// The labels of a step: `step`, and for an item of a `for_each` group `group` and `item`.
fn step_labels(rb: &str, id: &str) -> String {
    let mut out = format!("{rb},step=\"{}\"", label(id));
    if let Some((group, item)) = super::groups::split_id(id) {
        let _ = write!(out, ",group=\"{}\",item=\"{}\"", label(group), label(item));
    }
    out
}

/// Escape a label value.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {v}");
    }
}

/// Render the metrics of a run. `last_backup` is the newest earlier successful backup run
/// of the same runbook: when this run made no backup (it failed), the backup metrics keep
/// that run's time and size, so `BackupFailed` fires once it is old enough.
pub fn render(r: &Report, last_backup: Option<&Report>) -> String {
    let rb = format!("runbook=\"{}\"", label(&r.runbook));
    let mut out = String::new();
    let ok = r.outcome == Some(RunOutcome::Succeeded);
    family(
        &mut out,
        "rb_run_success",
        "Whether the last run of the runbook succeeded (1) or not (0).",
        &[(rb.clone(), f64::from(u8::from(ok)))],
    );
    family(
        &mut out,
        "rb_run_duration_seconds",
        "Wall time of the last run, gates included.",
        &[(rb.clone(), r.duration_seconds)],
    );
    family(
        &mut out,
        "rb_run_attempts",
        "Attempts of the last run: the first `rb run` and each `--resume`.",
        &[(rb.clone(), r.attempts.len() as f64)],
    );
    family(
        &mut out,
        "rb_run_timestamp_seconds",
        "When the last run started (Unix time).",
        &[(rb.clone(), r.start.timestamp() as f64)],
    );
    let steps: Vec<(String, f64)> = r
        .steps
        .iter()
        .map(|s| (step_labels(&rb, &s.id), s.duration_seconds))
        .collect();
    let artifacts: Vec<(String, f64)> = r
        .artifacts
        .iter()
        .map(|a| (step_labels(&rb, &a.step), a.bytes as f64))
        .collect();
    if !artifacts.is_empty() {
        family(
            &mut out,
            "rb_artifact_bytes",
            "Size of each file the last run wrote, by the step that wrote it.",
            &artifacts,
        );
    }
    group_items(&mut out, r, &rb);
    family(
        &mut out,
        "rb_step_duration_seconds",
        "Duration of each step of the last run.",
        &steps,
    );
    if let Some(rto) = r.rto_seconds {
        family(
            &mut out,
            "rb_rto_seconds",
            "The runbook's recovery time objective.",
            &[(rb.clone(), rto)],
        );
    }
    if let Some(age) = r.rpo.as_ref().and_then(|p| p.achieved_seconds) {
        family(
            &mut out,
            "rb_rpo_achieved_seconds",
            "Recovery runs: age of the restored data at the start of the last run.",
            &[(rb.clone(), age)],
        );
    }
    let (source, artifact) = match backup_artifact(r) {
        Some(a) if ok => (Some(r), Some(a)),
        _ => match last_backup.and_then(|b| backup_artifact(b).map(|a| (b, a))) {
            Some((b, a)) => (Some(b), Some(a)),
            None => (None, None),
        },
    };
    if let (Some(src), Some(a)) = (source, artifact) {
        let at = src.end.or(a.end).unwrap_or(src.start);
        family(
            &mut out,
            "backup_last_success_timestamp",
            "When the newest successful backup finished (Unix time).",
            &[(rb.clone(), at.timestamp() as f64)],
        );
        let bytes = a
            .outputs
            .get("bytes")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_default();
        family(
            &mut out,
            "backup_size_bytes",
            "Size of the newest successful backup.",
            &[(rb, bytes as f64)],
        );
    }
    out
}
