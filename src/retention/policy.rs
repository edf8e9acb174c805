//! The retention policy as written in a runbook: `keep` counts and `keep_within` windows.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CalendarSpan;

/// How many hour/day/week/month/year buckets to keep the newest snapshot of, as restic's
/// `forget --keep-last/--keep-hourly/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly`.
///
/// Only buckets that contain a snapshot count: `daily: 7` keeps the newest snapshot of each of
/// the 7 most recent days that have one, however far apart they are. `0` means "not set", as
/// it does in restic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepCounts {
    /// Keep the newest `last` snapshots (restic `--keep-last`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    /// Keep the newest snapshot of each of the newest `hourly` hours that have one
    /// (restic `--keep-hourly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<u32>,
    /// Keep the newest snapshot of each of the newest `daily` days that have one
    /// (restic `--keep-daily`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u32>,
    /// Keep the newest snapshot of each of the newest `weekly` ISO weeks (Monday to Sunday)
    /// that have one (restic `--keep-weekly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<u32>,
    /// Keep the newest snapshot of each of the newest `monthly` months that have one
    /// (restic `--keep-monthly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u32>,
    /// Keep the newest snapshot of each of the newest `yearly` years that have one
    /// (restic `--keep-yearly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<u32>,
}

/// Calendar windows, measured back from the newest snapshot (not from now), as restic's
/// `forget --keep-within` and `--keep-within-hourly/-daily/-weekly/-monthly/-yearly`.
///
/// This is the form of "retain daily backups for 30 days, weekly for 12 weeks, monthly for
/// 12 months, yearly for 7 years": `{daily: 30d, weekly: 12w, monthly: 12mo, yearly: 7y}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepWithin {
    /// Keep every snapshot newer than this span before the newest (restic `--keep-within`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<CalendarSpan>,
    /// Keep the newest snapshot of each hour within this span (`--keep-within-hourly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<CalendarSpan>,
    /// Keep the newest snapshot of each day within this span (`--keep-within-daily`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<CalendarSpan>,
    /// Keep the newest snapshot of each ISO week within this span (`--keep-within-weekly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<CalendarSpan>,
    /// Keep the newest snapshot of each month within this span (`--keep-within-monthly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<CalendarSpan>,
    /// Keep the newest snapshot of each year within this span (`--keep-within-yearly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<CalendarSpan>,
}

impl KeepCounts {
    /// True when no count is set above zero (restic ignores `--keep-daily 0`).
    pub fn is_empty(&self) -> bool {
        [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .all(|n| n.unwrap_or(0) == 0)
    }
}

impl KeepWithin {
    /// True when no window is set (a [`CalendarSpan`] is never zero).
    pub fn is_empty(&self) -> bool {
        [
            self.within,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .all(Option::is_none)
    }
}

/// True when neither counts nor windows are set. restic then keeps everything; the `prune`
/// step refuses instead, since a careless reader takes an empty policy for "keep nothing".
pub fn policy_is_empty(keep: &KeepCounts, within: &KeepWithin) -> bool {
    keep.is_empty() && within.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_counts_are_empty_like_restic() {
        let keep = KeepCounts {
            daily: Some(0),
            ..KeepCounts::default()
        };
        assert!(policy_is_empty(&keep, &KeepWithin::default()));
        let keep = KeepCounts {
            yearly: Some(1),
            ..KeepCounts::default()
        };
        assert!(!policy_is_empty(&keep, &KeepWithin::default()));
    }

    #[test]
    fn deserializes_the_manuals_policy_and_rejects_unknown_fields() {
        let within: KeepWithin = serde_json::from_str(
            r#"{"daily": "30d", "weekly": "12w", "monthly": "12mo", "yearly": "7y"}"#,
        )
        .unwrap();
        assert_eq!(within.weekly.unwrap().to_string(), "12w");
        assert!(!within.is_empty());
        let err = serde_json::from_str::<KeepCounts>(r#"{"dayly": 7}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `dayly`"), "{err}");
        let err = serde_json::from_str::<KeepWithin>(r#"{"daily": "30 days"}"#).unwrap_err();
        assert!(
            err.to_string().contains("invalid calendar span `30 days`"),
            "{err}"
        );
    }

    #[test]
    fn schema_forbids_unknown_fields() {
        let schema = schemars::schema_for!(KeepWithin);
        let json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["additionalProperties"], false);
        assert!(json.to_string().contains("CalendarSpan"));
    }
}
