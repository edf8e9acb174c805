//! What a finished run achieved against its objectives, from its actual times: the critical
//! path (the chain of steps, along `needs`, that decided when the run ended), each
//! milestone's verdict, and the achieved RPO of a recovery run.

use super::model::{StepReport, millis};
use crate::event::{Outcome, PlannedMilestone, RestorePoint};
use chrono::{DateTime, FixedOffset, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

/// How a milestone went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MilestoneStatus {
    /// Every step succeeded, the last within the milestone's RTO.
    Met,
    /// Every step succeeded, the last after the milestone's RTO.
    Missed,
    /// A step failed, was cancelled or skipped, or has not run (yet): the milestone's work
    /// was not done, so it has no achieved time.
    NotReached,
}

/// A milestone's verdict.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MilestoneReport {
    pub name: String,
    pub rto_seconds: f64,
    pub steps: Vec<String>,
    /// From the start of the run until the last of its steps ended (when all succeeded).
    pub achieved_seconds: Option<f64>,
    /// `rto_seconds` minus `achieved_seconds`; negative when missed.
    pub margin_seconds: Option<f64>,
    pub status: MilestoneStatus,
}

/// The achieved recovery point of a recovery run.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RpoReport {
    /// Where the time came from (`step `choose` output `stdout``, `param `target_time``).
    pub source: String,
    /// The value found there, if any.
    pub value: Option<String>,
    /// The time of the restored data.
    #[schemars(schema_with = "super::model::optional_time_schema")]
    pub restore_point: Option<DateTime<Utc>>,
    /// Age of the restored data at the start of the run (the drill or incident).
    pub achieved_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    /// `rpo_seconds` minus `achieved_seconds`; negative when the data was older.
    pub margin_seconds: Option<f64>,
    pub met: Option<bool>,
    /// Why there is no achieved RPO (the step did not succeed, the value is not a time).
    pub problem: Option<String>,
}

impl RpoReport {
    /// Known and not over the RPO (a recovery runbook without `rpo` only reports the age).
    pub fn ok(&self) -> bool {
        self.achieved_seconds.is_some() && self.met != Some(false)
    }
}

fn secs_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

/// The actual critical path: from the step that ended last, back along the need that ended
/// last, to a step that waited for nothing. Steps that never ran are left out.
pub fn critical_path(steps: &[StepReport]) -> Vec<String> {
    let ran = |s: &&StepReport| s.end.is_some() && s.attempts > 0;
    let Some(mut at) = steps
        .iter()
        .filter(ran)
        .max_by_key(|s| (s.end, std::cmp::Reverse(s.start)))
    else {
        return Vec::new();
    };
    let mut path = vec![at.id.clone()];
    while let Some(prev) = steps
        .iter()
        .filter(ran)
        .filter(|s| at.needs.contains(&s.id) && !path.contains(&s.id))
        .max_by_key(|s| s.end)
    {
        path.push(prev.id.clone());
        at = prev;
    }
    path.reverse();
    path
}

/// Each milestone's verdict. Achieved is the time from `start` until the last of its steps
/// ended; a milestone some of whose steps did not succeed is not reached.
pub fn milestones(
    planned: &[PlannedMilestone],
    steps: &[StepReport],
    start: DateTime<Utc>,
) -> Vec<MilestoneReport> {
    planned
        .iter()
        .map(|m| {
            let ends: Option<Vec<DateTime<Utc>>> = m
                .steps
                .iter()
                .map(|id| {
                    steps
                        .iter()
                        .find(|s| &s.id == id && s.status == Outcome::Succeeded)
                        .and_then(|s| s.end)
                })
                .collect();
            let achieved = ends
                .and_then(|e| e.into_iter().max())
                .map(|end| secs_between(start, end).max(0.0));
            let margin = achieved.map(|a| m.rto_seconds - a);
            MilestoneReport {
                name: m.name.clone(),
                rto_seconds: m.rto_seconds,
                steps: m.steps.clone(),
                achieved_seconds: achieved,
                margin_seconds: margin,
                status: match margin {
                    Some(x) if x >= 0.0 => MilestoneStatus::Met,
                    Some(_) => MilestoneStatus::Missed,
                    None => MilestoneStatus::NotReached,
                },
            }
        })
        .collect()
}

/// The achieved RPO: the age of the restore point at `now` (the run's start).
pub fn rpo(
    point: &RestorePoint,
    steps: &[StepReport],
    params: &Map<String, Value>,
    now: DateTime<Utc>,
    rpo_seconds: Option<f64>,
) -> RpoReport {
    let found: Result<&Value, String> = match (&point.step, &point.param) {
        (Some(id), _) => {
            let output = point.output.as_deref().unwrap_or("stdout");
            match steps.iter().find(|s| &s.id == id) {
                Some(s) if s.status == Outcome::Succeeded => {
                    // `a.b`: output `b` of the sub-runbook's step `a`.
                    let mut parts = output.split('.');
                    let first = s.outputs.get(parts.next().unwrap_or_default());
                    parts
                        .try_fold(first, |v, k| Some(v?.get(k)))
                        .flatten()
                        .ok_or_else(|| format!("step `{id}` has no output `{output}`"))
                }
                _ => Err(format!("step `{id}` did not succeed")),
            }
        }
        (None, Some(p)) => params.get(p).ok_or_else(|| format!("no param `{p}`")),
        (None, None) => Err("no step or param named".to_owned()),
    };
    let value = found.as_ref().ok().map(|v| match v {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    });
    let time = found.and_then(|v| {
        parse_time(v).ok_or_else(|| format!("`{}` is not a time", value.as_deref().unwrap_or("")))
    });
    let achieved = time.as_ref().ok().map(|&t| secs_between(t, now));
    let margin = rpo_seconds.zip(achieved).map(|(r, a)| r - a);
    RpoReport {
        source: point.describe(),
        restore_point: time.as_ref().ok().copied(),
        problem: time.err(),
        value,
        achieved_seconds: achieved,
        rpo_seconds,
        margin_seconds: margin,
        met: margin.map(|m| m >= 0.0),
    }
}

/// An RFC 3339 time (also with a space for `T`, or an offset of hours only, as
/// `PostgreSQL` prints them), or Unix seconds.
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    if let Some(n) = v.as_f64() {
        return DateTime::from_timestamp_millis(millis(n));
    }
    let s = v.as_str()?.trim();
    if let Ok(n) = s.parse::<f64>() {
        return DateTime::from_timestamp_millis(millis(n));
    }
    let s = s.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Some(t.to_utc());
    }
    if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f%#z") {
        return Some(t.to_utc());
    }
    // Without an offset the time zone would be a guess: not a time.
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(id: &str, needs: &[&str], start: i64, end: i64, status: Outcome) -> StepReport {
        let t = |s| DateTime::from_timestamp(1_800_000_000 + s, 0);
        StepReport {
            id: id.into(),
            type_name: Some("exec".into()),
            status,
            start: t(start),
            end: t(end),
            #[expect(clippy::cast_precision_loss, reason = "test seconds")]
            duration_seconds: (end - start) as f64,
            attempts: 1,
            outputs: Map::new(),
            error: None,
            reason: None,
            reused: false,
            attempt: 1,
            needs: needs.iter().map(|s| (*s).to_owned()).collect(),
            on_critical_path: false,
        }
    }

    #[test]
    fn critical_path_follows_the_need_that_ended_last() {
        let ok = Outcome::Succeeded;
        let steps = vec![
            step("a", &[], 0, 10, ok),
            step("fast", &["a"], 10, 20, ok),
            step("slow", &["a"], 10, 90, ok),
            // Started late for want of a job slot, but still waited for `slow` and `fast`.
            step("join", &["fast", "slow"], 95, 100, ok),
            step("side", &[], 0, 50, ok),
        ];
        assert_eq!(critical_path(&steps), ["a", "slow", "join"]);
    }

    #[test]
    fn milestones_met_missed_and_not_reached() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let steps = vec![
            step("a", &[], 0, 10, Outcome::Succeeded),
            step("b", &["a"], 10, 100, Outcome::Succeeded),
            step("c", &["b"], 100, 110, Outcome::Failed),
        ];
        let m = |name: &str, rto: f64, steps: &[&str]| PlannedMilestone {
            name: name.into(),
            rto_seconds: rto,
            steps: steps.iter().map(|s| (*s).to_owned()).collect(),
        };
        let got = milestones(
            &[
                m("early", 60.0, &["a"]),
                m("late", 60.0, &["a", "b"]),
                m("never", 600.0, &["c"]),
            ],
            &steps,
            start,
        );
        let status: Vec<_> = got.iter().map(|m| m.status).collect();
        assert_eq!(
            status,
            [
                MilestoneStatus::Met,
                MilestoneStatus::Missed,
                MilestoneStatus::NotReached
            ]
        );
        assert_eq!(got[1].achieved_seconds, Some(100.0));
        assert_eq!(got[1].margin_seconds, Some(-40.0));
        assert_eq!(got[2].achieved_seconds, None);
    }

    #[test]
    fn times_in_the_forms_backups_and_postgresql_write() {
        let want = DateTime::parse_from_rfc3339("2026-11-26T09:40:00Z")
            .unwrap()
            .to_utc();
        for v in [
            json!("2026-11-26T09:40:00Z"),
            json!("2026-11-26 10:40:00+01"),
            json!("2026-11-26 09:40:00.000+00:00"),
            json!(" 2026-11-26T11:40:00+02:00\n"),
            json!(1_795_686_000),
            json!("1795686000"),
        ] {
            assert_eq!(parse_time(&v), Some(want), "{v}");
        }
        for v in [
            json!("2026-11-26 09:40:00"),
            json!("yesterday"),
            json!(null),
        ] {
            assert_eq!(parse_time(&v), None, "{v}");
        }
    }

    #[test]
    fn rpo_from_a_sub_runbook_output_or_a_param() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .to_utc();
        let mut restore = step("restore", &[], 0, 10, Outcome::Succeeded);
        restore.outputs = json!({ "backup_time": { "stdout": "2026-11-26T10:00:00Z" } })
            .as_object()
            .unwrap()
            .clone();
        let steps = vec![restore];
        let point = RestorePoint {
            step: Some("restore".into()),
            output: Some("backup_time.stdout".into()),
            param: None,
        };
        let r = rpo(&point, &steps, &Map::new(), now, Some(3600.0));
        assert_eq!(r.achieved_seconds, Some(7200.0));
        assert_eq!(r.met, Some(false));
        assert!(!r.ok());
        let missing = RestorePoint {
            output: Some("nope".into()),
            ..point
        };
        let r = rpo(&missing, &steps, &Map::new(), now, None);
        assert_eq!(
            r.problem.as_deref(),
            Some("step `restore` has no output `nope`")
        );
        let params = json!({ "target_time": "2026-11-26 11:30:00+00" });
        let by_param = RestorePoint {
            step: None,
            output: None,
            param: Some("target_time".into()),
        };
        let r = rpo(&by_param, &[], params.as_object().unwrap(), now, None);
        assert_eq!(r.achieved_seconds, Some(1800.0));
        assert!(r.ok(), "no RPO set: the age is reported, nothing fails");
    }
}
