//! The retention policy as written in a runbook: `keep` counts and `keep_within` windows.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::CalendarSpan;

/// One `keep` count: a number of buckets, or `all` (restic's `-1`, also accepted) for every
/// bucket that has a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepCount {
    /// Keep the newest snapshot of this many buckets; `0` means "not set", as in restic.
    Buckets(u32),
    /// Keep the newest snapshot of every bucket (restic `--keep-daily -1`, since 0.16).
    All,
}

impl KeepCount {
    /// The count as a limit: `None` for [`KeepCount::All`].
    pub fn limit(self) -> Option<u32> {
        match self {
            KeepCount::Buckets(n) => Some(n),
            KeepCount::All => None,
        }
    }

    /// True for `0`, which restic reads as "option not given".
    pub fn is_zero(self) -> bool {
        self == KeepCount::Buckets(0)
    }
}

impl fmt::Display for KeepCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepCount::Buckets(n) => write!(f, "{n}"),
            KeepCount::All => f.write_str("all"),
        }
    }
}

/// The forms a count may take, quoted in every error.
const COUNT_FORMS: &str = "a count is a whole number from 0, or `all` (or -1, as restic writes \
     it) for no limit";

impl<'de> Deserialize<'de> for KeepCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = KeepCount;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(COUNT_FORMS)
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<KeepCount, E> {
                u32::try_from(n)
                    .map(KeepCount::Buckets)
                    .map_err(|_| E::custom(format_args!("count {n} is too large; {COUNT_FORMS}")))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<KeepCount, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) if n == -1 => Ok(KeepCount::All),
                    Err(_) => Err(E::custom(format_args!("invalid count {n}; {COUNT_FORMS}"))),
                }
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<KeepCount, E> {
                match text {
                    "all" => Ok(KeepCount::All),
                    // Only validation sees a template unrendered (the run decodes the rendered
                    // value): stand in a count that is not zero, so that a templated policy is
                    // not taken for an empty one.
                    t if t.contains("{{") || t.contains("{%") => Ok(KeepCount::All),
                    // A rendered template (`daily: "{{ params.offsite_daily }}"`) is text.
                    t if let Ok(n) = t.trim().parse::<i64>() => self.visit_i64(n),
                    _ => Err(E::custom(format_args!(
                        "invalid count `{text}`; {COUNT_FORMS}"
                    ))),
                }
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

impl Serialize for KeepCount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            KeepCount::Buckets(n) => serializer.serialize_u32(*n),
            KeepCount::All => serializer.serialize_str("all"),
        }
    }
}

impl JsonSchema for KeepCount {
    fn schema_name() -> Cow<'static, str> {
        "KeepCount".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number of buckets (0 means not set), or `all` (or -1, as restic \
                writes it) for every bucket.",
            "oneOf": [
                { "type": "integer", "minimum": -1 },
                { "const": "all" },
            ],
            "examples": [7, "all"],
        })
    }
}

/// How many hour/day/week/month/year buckets to keep the newest snapshot of, as restic's
/// `forget --keep-last/--keep-hourly/--keep-daily/--keep-weekly/--keep-monthly/--keep-yearly`.
///
/// Only buckets that contain a snapshot count: `daily: 7` keeps the newest snapshot of each of
/// the 7 most recent days that have one, however far apart they are. `0` means "not set", as
/// it does in restic; `all` (or `-1`) means no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepCounts {
    /// Keep the newest `last` snapshots (restic `--keep-last`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<KeepCount>,
    /// Keep the newest snapshot of each of the newest `hourly` hours that have one
    /// (restic `--keep-hourly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<KeepCount>,
    /// Keep the newest snapshot of each of the newest `daily` days that have one
    /// (restic `--keep-daily`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<KeepCount>,
    /// Keep the newest snapshot of each of the newest `weekly` ISO weeks (Monday to Sunday)
    /// that have one (restic `--keep-weekly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<KeepCount>,
    /// Keep the newest snapshot of each of the newest `monthly` months that have one
    /// (restic `--keep-monthly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<KeepCount>,
    /// Keep the newest snapshot of each of the newest `yearly` years that have one
    /// (restic `--keep-yearly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly: Option<KeepCount>,
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
        .all(|n| n.is_none_or(KeepCount::is_zero))
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
            daily: Some(KeepCount::Buckets(0)),
            ..KeepCounts::default()
        };
        assert!(policy_is_empty(&keep, &KeepWithin::default()));
        let keep = KeepCounts {
            yearly: Some(KeepCount::Buckets(1)),
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
    fn counts_accept_all_and_minus_one_and_reject_other_negatives() {
        let keep: KeepCounts =
            serde_json::from_str(r#"{"daily": 7, "weekly": -1, "monthly": "all", "yearly": 0}"#)
                .unwrap();
        assert_eq!(keep.daily, Some(KeepCount::Buckets(7)));
        assert_eq!(keep.weekly, Some(KeepCount::All));
        assert_eq!(keep.monthly, Some(KeepCount::All));
        assert!(!keep.is_empty());
        assert_eq!(
            serde_json::to_string(&keep).unwrap(),
            r#"{"daily":7,"weekly":"all","monthly":"all","yearly":0}"#
        );
        let templated: KeepCounts =
            serde_json::from_str(r#"{"daily": "{{ params.days }}"}"#).unwrap();
        assert!(!templated.is_empty(), "a template is not an empty policy");
        for (text, problem) in [
            (r#"{"daily": -2}"#, "invalid count -2"),
            (r#"{"daily": "some"}"#, "invalid count `some`"),
            (r#"{"daily": "-2"}"#, "invalid count -2"),
            (r#"{"daily": 5000000000}"#, "count 5000000000 is too large"),
        ] {
            let err = serde_json::from_str::<KeepCounts>(text).unwrap_err();
            assert!(err.to_string().contains(problem), "{err}");
            assert!(err.to_string().contains("`all`"), "{err}");
        }
    }

    #[test]
    fn schema_forbids_unknown_fields() {
        let schema = schemars::schema_for!(KeepWithin);
        let json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["additionalProperties"], false);
        assert!(json.to_string().contains("CalendarSpan"));
    }
}
