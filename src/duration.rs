//! Durations as runbooks write them: `90s`, `30m`, `4h`, `1h30m`, `7d`, `250ms`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A span of time written with units (`1h30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurError(pub String);

impl fmt::Display for DurError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_too_large(&self.0) {
            return write!(
                f,
                "duration `{}` is too large: at most {}d",
                self.0,
                u64::MAX / 86_400_000
            );
        }
        write!(
            f,
            "invalid duration `{}`: write a number and a unit, as in `90s`, `30m`, `4h`, `1h30m`, `7d`",
            self.0
        )
    }
}

impl std::error::Error for DurError {}

/// Whether `text` is well-formed (numbers and units) but does not fit in a duration.
fn is_too_large(text: &str) -> bool {
    let mut rest = text.trim();
    let mut well_formed = !rest.is_empty();
    while !rest.is_empty() && well_formed {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        well_formed = digits > 0
            && UNITS
                .iter()
                .any(|(u, _)| *u == &rest[digits..digits + unit]);
        rest = &rest[digits + unit..];
    }
    well_formed
}

impl FromStr for Dur {
    type Err = DurError;

    fn from_str(text: &str) -> Result<Self, DurError> {
        let err = || DurError(text.to_owned());
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(err());
        }
        let mut total_ms: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            let (_, ms) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(err)?;
            total_ms = n
                .checked_mul(*ms)
                .and_then(|v| total_ms.checked_add(v))
                .ok_or_else(err)?;
            rest = &rest[unit_len..];
        }
        Ok(Dur(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Dur {
    pub fn secs(self) -> f64 {
        self.0.as_secs_f64()
    }
}

/// A human form of a number of seconds: `1h 02m 03s`, `4.2s`.
pub fn human_secs(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "rounded, positive"
    )]
    let total = secs.round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{m}m {s:02}s")
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // A template (`"{{ params.wait }}"`) has its value only once rendered; the step is
        // decoded again from the rendered text then.
        if text.contains("{{") || text.contains("{%") {
            return Ok(Dur(Duration::ZERO));
        }
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h|d))+$",
            "description": "A duration: a number and a unit (ms, s, m, h, d), combinable: `90s`, `30m`, `1h30m`, `7d`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, secs, shown) in [
            ("90s", 90, "1m30s"),
            ("30m", 1800, "30m"),
            ("1h30m", 5400, "1h30m"),
            ("7d", 604_800, "7d"),
        ] {
            let d: Dur = text.parse().unwrap();
            assert_eq!(d.0.as_secs(), secs, "{text}");
            assert_eq!(d.to_string(), shown);
        }
        assert_eq!("250ms".parse::<Dur>().unwrap().0.as_millis(), 250);
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in ["", "10", "m", "1x", "1h 30", "-5m", "99999999999999999999d"] {
            assert!(bad.parse::<Dur>().is_err(), "{bad}");
        }
    }
}
