//! The keep/remove decision, a line-by-line port of restic's `ApplyPolicy`
//! (`internal/data/snapshot_policy.go`), tag policies aside, with the rules of restic 0.16
//! and later by default and those of 0.14 on request ([`Rules`]).

use std::cmp::Reverse;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use super::{CalendarSpan, KeepCounts, KeepWithin, policy_is_empty};

/// Which restic release's decisions to make. They differ in one rule only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rules {
    /// restic 0.16 and later (checked against the golden files of restic's own test suite,
    /// `tests/fixtures/restic-golden/`): a count or window that still has room when the
    /// oldest snapshot comes also keeps that snapshot, though an already kept newer one shares
    /// its bucket, with the reason prefixed `oldest` (`oldest daily snapshot`). This keeps the
    /// longest history the counts allow.
    #[default]
    Restic016,
    /// restic 0.14 (Debian 12's), checked against that binary in `tests/properties/retention_restic.rs`:
    /// the oldest snapshot is kept only if it is the newest of its bucket.
    Restic014,
}

/// One backup to decide about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Caller's identifier, copied into the [`Decision`].
    pub id: String,
    /// When the backup was taken, as UTC wall time (buckets are UTC hours, days, weeks…).
    pub time: NaiveDateTime,
}

/// What happens to one snapshot, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The snapshot's [`Snapshot::id`].
    pub id: String,
    /// The snapshot's [`Snapshot::time`].
    pub time: NaiveDateTime,
    /// Whether any policy keeps it.
    pub keep: bool,
    /// Every policy that keeps it, worded as restic words them (`daily snapshot`,
    /// `within 30d`, `daily within 30d`, `last snapshot`, `policy is empty`); empty when
    /// removed.
    pub reasons: Vec<String>,
}

impl Decision {
    /// The reasons as restic words them, spans in restic's syntax (`weekly within 12w` →
    /// `weekly within 84d`, `1y6mo` → `1y6m`), for comparing with `restic forget`.
    pub fn restic_reasons(&self) -> Vec<String> {
        let in_restic_units = |reason: &String| match reason.rsplit_once(' ') {
            Some((words, span)) => match span.parse::<CalendarSpan>() {
                Ok(span) => format!("{words} {}", span.to_restic()),
                Err(_) => reason.clone(),
            },
            None => reason.clone(),
        };
        self.reasons.iter().map(in_restic_units).collect()
    }
}

/// The calendar bucket a snapshot falls in; restic compares these integer keys.
#[derive(Clone, Copy, Debug)]
enum Bucket {
    /// Every snapshot is its own bucket (`--keep-last`).
    Each,
    Hour,
    Day,
    /// ISO 8601 week: Monday to Sunday, numbered within the ISO year (Go's `ISOWeek`).
    Week,
    Month,
    Year,
}

impl Bucket {
    /// restic's `ymdh`, `ymd`, `yw`, `ym`, `y` and `always` functions.
    fn key(self, t: NaiveDateTime, nr: usize) -> i64 {
        let (year, month, day) = (
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
        );
        match self {
            Bucket::Each => i64::try_from(nr).unwrap_or(i64::MAX),
            Bucket::Hour => year * 1_000_000 + month * 10_000 + day * 100 + i64::from(t.hour()),
            Bucket::Day => year * 10_000 + month * 100 + day,
            Bucket::Week => {
                let week = t.iso_week();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Bucket::Month => year * 100 + month,
            Bucket::Year => year,
        }
    }
}

/// A count policy's running state: how many buckets it may still keep, and the bucket of the
/// last snapshot it kept.
struct Counter {
    /// `None` for `all`.
    remaining: Option<u32>,
    bucket: Bucket,
    /// restic starts this at -1; keeping the sentinel rather than an `Option` keeps its
    /// exact (if theoretical) behaviour for keys that equal -1.
    last: i64,
    reason: &'static str,
}

/// A window policy's running state: its span and the bucket of the last snapshot it kept.
struct Window {
    span: CalendarSpan,
    bucket: Bucket,
    last: i64,
    reason: &'static str,
}

/// Decide, exactly as `restic forget --keep-…` (0.16 and later) does, which snapshots to keep.
///
/// Returns one [`Decision`] per snapshot, newest first (equal times keep their input order,
/// as restic's stable sort does). Windows are measured back from the newest snapshot; use
/// [`decide_at`] to also ignore snapshots dated in the future when finding it, as restic does.
/// An empty policy keeps everything with the reason `policy is empty`, as restic does.
pub fn decide(snapshots: &[Snapshot], keep: &KeepCounts, within: &KeepWithin) -> Vec<Decision> {
    decide_at(snapshots, keep, within, NaiveDateTime::MAX)
}

/// [`decide`], with `now` for restic's rule that the newest snapshot, from which windows are
/// measured, must not be in the future (a backup host with a wrong clock must not make every
/// real snapshot look old). If no snapshot is before `now`, windows are measured from Go's
/// zero time, 0001-01-01, so they keep everything, as in restic.
pub fn decide_at(
    snapshots: &[Snapshot],
    keep: &KeepCounts,
    within: &KeepWithin,
    now: NaiveDateTime,
) -> Vec<Decision> {
    decide_with(snapshots, keep, within, now, Rules::default())
}

/// [`decide_at`] with the rules of a given restic release.
pub fn decide_with(
    snapshots: &[Snapshot],
    keep: &KeepCounts,
    within: &KeepWithin,
    now: NaiveDateTime,
    rules: Rules,
) -> Vec<Decision> {
    let mut list: Vec<&Snapshot> = snapshots.iter().collect();
    // Newest first; `sort_by_key` is stable like restic's `sort.Stable`.
    list.sort_by_key(|s| Reverse(s.time));
    let decided = |s: &Snapshot, keep: bool, reasons: Vec<String>| Decision {
        id: s.id.clone(),
        time: s.time,
        keep,
        reasons,
    };
    if policy_is_empty(keep, within) {
        let reasons = || vec!["policy is empty".to_owned()];
        return list.iter().map(|s| decided(s, true, reasons())).collect();
    }

    let mut counters = counters(keep);
    let mut windows = windows(within);
    let newest = newest_before(&list, now);
    let oldest = list.len().saturating_sub(1);
    list.iter()
        .enumerate()
        .map(|(nr, snapshot)| {
            let t = snapshot.time;
            // restic 0.16: a policy with room left also keeps the oldest snapshot.
            let keeps_oldest = rules == Rules::Restic016 && nr == oldest;
            let why = |reason: &str, key: i64, last: i64| {
                if key == last {
                    format!("oldest {reason}")
                } else {
                    reason.to_owned()
                }
            };
            let mut reasons = Vec::new();
            if let Some(span) = within.within
                && t > span.before(newest)
            {
                reasons.push(format!("within {span}"));
            }
            for c in counters.iter_mut().filter(|c| c.remaining != Some(0)) {
                let key = c.bucket.key(t, nr);
                if key != c.last || keeps_oldest {
                    reasons.push(why(c.reason, key, c.last));
                    c.last = key;
                    c.remaining = c.remaining.map(|n| n - 1);
                }
            }
            for w in &mut windows {
                if t > w.span.before(newest) {
                    let key = w.bucket.key(t, nr);
                    if key != w.last || keeps_oldest {
                        reasons.push(format!("{} {}", why(w.reason, key, w.last), w.span));
                        w.last = key;
                    }
                }
            }
            decided(snapshot, !reasons.is_empty(), reasons)
        })
        .collect()
}

/// restic's `findLatestTimestamp`: the newest time strictly before `now`, or Go's zero time.
fn newest_before(list: &[&Snapshot], now: NaiveDateTime) -> NaiveDateTime {
    let go_zero = NaiveDate::from_ymd_opt(1, 1, 1)
        .unwrap_or(NaiveDate::MIN)
        .and_time(NaiveTime::MIN);
    list.iter()
        .map(|s| s.time)
        .filter(|t| *t < now)
        .fold(go_zero, NaiveDateTime::max)
}

/// The count policies in restic's order, which is the order of their reasons.
fn counters(keep: &KeepCounts) -> Vec<Counter> {
    [
        (keep.last, Bucket::Each, "last snapshot"),
        (keep.hourly, Bucket::Hour, "hourly snapshot"),
        (keep.daily, Bucket::Day, "daily snapshot"),
        (keep.weekly, Bucket::Week, "weekly snapshot"),
        (keep.monthly, Bucket::Month, "monthly snapshot"),
        (keep.yearly, Bucket::Year, "yearly snapshot"),
    ]
    .into_iter()
    .filter_map(|(count, bucket, reason)| {
        // Unset and `0` counts are not policies at all, as in restic.
        let count = count.filter(|c| !c.is_zero())?;
        Some(Counter {
            remaining: count.limit(),
            bucket,
            last: -1,
            reason,
        })
    })
    .collect()
}

/// The window policies in restic's order, which is the order of their reasons.
fn windows(within: &KeepWithin) -> Vec<Window> {
    [
        (within.hourly, Bucket::Hour, "hourly within"),
        (within.daily, Bucket::Day, "daily within"),
        (within.weekly, Bucket::Week, "weekly within"),
        (within.monthly, Bucket::Month, "monthly within"),
        (within.yearly, Bucket::Year, "yearly within"),
    ]
    .into_iter()
    .filter_map(|(span, bucket, reason)| {
        span.map(|span| Window {
            span,
            bucket,
            last: -1,
            reason,
        })
    })
    .collect()
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "golden_tests.rs"]
mod golden_tests;
