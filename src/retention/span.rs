//! `CalendarSpan`: the `30d` / `12w` / `12mo` / `7y` windows of `keep_within`.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The forms a span may take, quoted in every parse error so the fix is on screen.
const VALID_FORMS: &str = "write a number and a unit for each part, largest unit first, \
     each unit at most once: y (years), mo (months), w (weeks of 7 days), d (days), h (hours), \
     e.g. `30d`, `12w`, `12mo`, `7y`, `1y6mo`, `48h`";

/// A calendar span such as `30d`, `12w`, `12mo`, `7y`, `1y6mo` or `48h`.
///
/// It is restic's `Duration` (`--keep-within 1y5m7d2h`) with two changes that make a
/// config file harder to misread: months are written `mo` (a bare `m` reads as minutes), and
/// `w` is accepted as 7 days. Years and months are calendar units, not fixed lengths: a span
/// is subtracted the way Go's `time.AddDate(-y, -mo, -d)` does it, then hours are subtracted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CalendarSpan {
    years: u32,
    months: u32,
    weeks: u32,
    days: u32,
    hours: u32,
}

/// Why a text is not a [`CalendarSpan`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid calendar span `{text}`: {problem}; {VALID_FORMS}")]
pub struct CalendarSpanError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The units in the only order they may appear; the index doubles as the order check.
const UNITS: [&str; 5] = ["y", "mo", "w", "d", "h"];

impl CalendarSpan {
    /// Years in the span.
    pub fn years(self) -> u32 {
        self.years
    }

    /// Months in the span.
    pub fn months(self) -> u32 {
        self.months
    }

    /// Days in the span, weeks counted as 7 days each (restic has no week unit).
    pub fn days(self) -> u64 {
        u64::from(self.weeks) * 7 + u64::from(self.days)
    }

    /// Hours in the span.
    pub fn hours(self) -> u32 {
        self.hours
    }

    /// The same span in restic's duration syntax (`y`, `m` for months, `d`, `h`), for
    /// `restic forget --keep-within…`: `12w` becomes `84d`, `1y6mo` becomes `1y6m`.
    pub fn to_restic(self) -> String {
        let mut out = String::new();
        for (n, unit) in [
            (u64::from(self.years), "y"),
            (u64::from(self.months), "m"),
            (self.days(), "d"),
            (u64::from(self.hours), "h"),
        ] {
            if n != 0 {
                // Writing to a `String` cannot fail.
                let _ = write!(out, "{n}{unit}");
            }
        }
        out
    }

    /// The instant `self` before `t`, with the calendar arithmetic of restic's
    /// `latest.AddDate(-y, -m, -d).Add(-h hours)`.
    ///
    /// Go normalises out-of-range dates instead of clamping them: 31 March minus one month is
    /// "31 February", which becomes 2 March (3 March outside leap years), where chrono's
    /// `checked_sub_months` would give 28/29 February. Matching restic needs Go's rule.
    /// A result before chrono's range saturates to [`NaiveDateTime::MIN`], which every
    /// snapshot is after, as it would be after Go's far-past instant.
    pub fn before(self, t: NaiveDateTime) -> NaiveDateTime {
        self.checked_before(t).unwrap_or(NaiveDateTime::MIN)
    }

    fn checked_before(self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        // Month arithmetic first, normalising the month into the year like Go's `Date`.
        let month_index = i64::from(t.year()) * 12 + i64::from(t.month0())
            - i64::from(self.years) * 12
            - i64::from(self.months);
        let year = i32::try_from(month_index.div_euclid(12)).ok()?;
        let month0 = u32::try_from(month_index.rem_euclid(12)).ok()?;
        let first = NaiveDate::from_ymd_opt(year, month0 + 1, 1)?;
        // Then the day overflow (day 31 of February, day 0, negative days) rolls over.
        let day_offset = i64::from(t.day()) - 1 - i64::try_from(self.days()).ok()?;
        let date = first.checked_add_signed(TimeDelta::try_days(day_offset)?)?;
        date.and_time(t.time())
            .checked_sub_signed(TimeDelta::try_hours(i64::from(self.hours))?)
    }
}

impl FromStr for CalendarSpan {
    type Err = CalendarSpanError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |problem: String| CalendarSpanError {
            text: text.to_owned(),
            problem,
        };
        let mut span = CalendarSpan::default();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(fail("it is empty".to_owned()));
        }
        // Index into UNITS of the next unit allowed; enforces "largest first, at most once".
        let mut next_unit = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(fail(format!("expected a number at `{rest}`")));
            }
            let number: u32 = rest[..digits]
                .parse()
                .map_err(|_| fail(format!("`{}` is too large", &rest[..digits])))?;
            rest = &rest[digits..];
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..letters];
            rest = &rest[letters..];
            let Some(index) = UNITS.iter().position(|u| *u == unit) else {
                return Err(fail(match unit {
                    "" if rest.is_empty() => format!("no unit after `{number}`"),
                    "" => format!("expected a unit after `{number}` at `{rest}`"),
                    "m" => "`m` is ambiguous; write `mo` for months (minutes are not supported)"
                        .to_owned(),
                    _ => format!("unknown unit `{unit}`"),
                }));
            };
            if index < next_unit {
                return Err(fail(format!("unit `{unit}` is repeated or out of order")));
            }
            next_unit = index + 1;
            *match index {
                0 => &mut span.years,
                1 => &mut span.months,
                2 => &mut span.weeks,
                3 => &mut span.days,
                _ => &mut span.hours,
            } = number;
        }
        // restic reads a zero duration as "option not given"; in a config file that is a
        // policy that silently keeps nothing extra, so say so instead.
        if span == CalendarSpan::default() {
            return Err(fail("it is zero; leave the field out instead".to_owned()));
        }
        Ok(span)
    }
}

impl fmt::Display for CalendarSpan {
    /// The canonical form of the parsed text: `1y6mo`, `12w`, `30d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [self.years, self.months, self.weeks, self.days, self.hours];
        for (n, unit) in parts.into_iter().zip(UNITS) {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for CalendarSpan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for CalendarSpan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for CalendarSpan {
    fn schema_name() -> Cow<'static, str> {
        "CalendarSpan".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+y)?([0-9]+mo)?([0-9]+w)?([0-9]+d)?([0-9]+h)?$",
            "description": "A calendar span: a number and a unit for each part, largest first: \
                y (years), mo (months), w (weeks), d (days), h (hours); e.g. `30d`, `12w`, \
                `12mo`, `7y`, `1y6mo`, `48h`.",
            "examples": ["30d", "12w", "12mo", "7y", "1y6mo", "48h"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn span(s: &str) -> CalendarSpan {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays_every_unit() {
        for text in ["30d", "12w", "12mo", "7y", "1y6mo", "48h", "1y2mo3w4d5h"] {
            assert_eq!(span(text).to_string(), text);
        }
        assert_eq!(span(" 30d ").to_string(), "30d");
        assert_eq!(span("0y30d").to_string(), "30d");
    }

    #[test]
    fn maps_to_restic_syntax() {
        assert_eq!(span("12w").to_restic(), "84d");
        assert_eq!(span("1y6mo").to_restic(), "1y6m");
        assert_eq!(span("2w3d12h").to_restic(), "17d12h");
    }

    #[test]
    fn rejects_bad_text_naming_it_and_the_valid_forms() {
        for (text, problem) in [
            ("", "it is empty"),
            ("30", "no unit after `30`"),
            ("d", "expected a number at `d`"),
            ("12m", "`m` is ambiguous"),
            ("3s", "unknown unit `s`"),
            ("1d1y", "unit `y` is repeated or out of order"),
            ("1d2d", "unit `d` is repeated or out of order"),
            ("-1d", "expected a number at `-1d`"),
            ("1.5d", "expected a unit after `1` at `.5d`"),
            ("0d", "it is zero"),
            ("99999999999d", "`99999999999` is too large"),
        ] {
            let message = text.parse::<CalendarSpan>().unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("invalid calendar span `{text}`: {problem}")),
                "{message}"
            );
            assert!(message.contains("`1y6mo`"), "{message}");
        }
    }

    #[test]
    fn deserializes_from_a_string_with_the_error_text() {
        let ok: CalendarSpan = serde_json::from_str("\"12mo\"").unwrap();
        assert_eq!(ok, span("12mo"));
        let err = serde_json::from_str::<CalendarSpan>("\"12x\"").unwrap_err();
        assert!(err.to_string().contains("unknown unit `x`"), "{err}");
    }

    #[test]
    fn subtracts_like_go_add_date() {
        // Go normalises "31 February" forward instead of clamping.
        assert_eq!(
            span("1mo").before(at("2024-03-31 12:00:00")),
            at("2024-03-02 12:00:00")
        );
        assert_eq!(
            span("1mo").before(at("2023-03-31 12:00:00")),
            at("2023-03-03 12:00:00")
        );
        // Leap day minus a year is 29 February 2023, i.e. 1 March.
        assert_eq!(
            span("1y").before(at("2024-02-29 06:00:00")),
            at("2023-03-01 06:00:00")
        );
        // Months and days are applied together, before rolling over: 2024-03-31 less
        // 1 month and 31 days is "2024-02-00" = 31 January.
        assert_eq!(
            span("1mo31d").before(at("2024-03-31 00:00:00")),
            at("2024-01-31 00:00:00")
        );
        // Hours come last, across a day and a year boundary.
        assert_eq!(
            span("1d2h").before(at("2024-01-02 01:00:00")),
            at("2023-12-31 23:00:00")
        );
        assert_eq!(
            span("12w").before(at("2024-03-24 00:00:00")),
            at("2023-12-31 00:00:00")
        );
        assert_eq!(
            span("13mo").before(at("2024-01-15 00:00:00")),
            at("2022-12-15 00:00:00")
        );
        // Out of chrono's range saturates to the far past.
        assert_eq!(
            span("4000000000y").before(at("2024-01-01 00:00:00")),
            NaiveDateTime::MIN
        );
    }
}
