//! The keys every step has.

use crate::duration::Dur;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;

/// Keys shared by every step type; the rest of the mapping belongs to the type.
pub const COMMON_KEYS: &[&str] = &[
    "id",
    "type",
    "description",
    "needs",
    "when",
    "timeout",
    "retries",
    "continue_on_error",
    "always",
    "undoes",
    "estimate",
    "tags",
    "for_each",
    "item_key",
    "max_parallel",
    "fail_fast",
];

/// The keys every step shares.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepCommon {
    /// Unique step id: `[a-z][a-z0-9_-]*`. Other steps name it in `needs` and templates.
    pub id: String,
    /// The step type; decides which other keys the step takes.
    #[serde(rename = "type", default)]
    pub type_name: String,
    /// What the step does and why, shown in plans and reports.
    pub description: Option<String>,
    /// Steps that must finish first. Absent: the step before this one in the file.
    /// `[]`: none (a root).
    pub needs: Option<Vec<String>>,
    /// An expression; the step runs only when it is true (else it is `skipped`).
    /// Example: `params.mode == 'full'`.
    pub when: Option<String>,
    /// Deadline for one attempt; the process or request is killed when it passes.
    pub timeout: Option<Dur>,
    /// How often to try again after a failure: a count, or attempts with backoff.
    pub retries: Option<Retries>,
    /// A failure of this step does not fail the run; its dependents still run.
    #[serde(default)]
    pub continue_on_error: bool,
    /// Run once the needs have ended in any state, also after a failure or Ctrl-C
    /// (cleanup, restarting services).
    #[serde(default)]
    pub always: bool,
    /// With `always`: the steps whose effect this step reverses (`start_app` undoes
    /// `stop_app`). When it has run after one of them succeeded, `--resume` runs that step
    /// again instead of reusing it, so the work after it finds the state it prepared.
    #[serde(default)]
    pub undoes: Vec<String>,
    /// Expected duration, used for the critical path and the RTO budget in plans.
    pub estimate: Option<Dur>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Run the step once per item: a list (strings, or mappings with an `item_key` field), or
    /// an expression giving one (`params.databases`, `vars.targets`), evaluated at plan time.
    /// Each item becomes a step `ID[KEY]`; templates read `item`, `item_index`, `item_key`.
    pub for_each: Option<ForEach>,
    /// With `for_each` over mappings: the field whose value forms each item's id
    /// (default `name`).
    pub item_key: Option<String>,
    /// With `for_each`: at most this many items run at once (on top of `--jobs`): a number,
    /// or an expression over params and vars giving one (`params.max_parallel`).
    pub max_parallel: Option<MaxParallel>,
    /// With `for_each`: `true` stops the run at the first failed item; `false` (the default)
    /// runs every other item and fails the run at the end.
    pub fail_fast: Option<bool>,
}

/// The list a `for_each` step runs over.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ForEach {
    /// An expression evaluated at plan time, e.g. `params.databases`.
    Expression(String),
    /// The items themselves.
    List(Vec<serde_json::Value>),
}

/// `max_parallel`: a number, or an expression evaluated at plan time with the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum MaxParallel {
    /// At most this many items at once.
    Count(std::num::NonZeroUsize),
    /// An expression over params and vars giving the count (`params.max_parallel`).
    Expression(String),
}

impl<'de> Deserialize<'de> for MaxParallel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MaxParallel;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a number of items (1 or more) or an expression such as `params.max_parallel`",
                )
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<MaxParallel, E> {
                usize::try_from(n)
                    .ok()
                    .and_then(std::num::NonZeroUsize::new)
                    .map(MaxParallel::Count)
                    .ok_or_else(|| E::custom("`max_parallel` must be 1 or more"))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<MaxParallel, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom("`max_parallel` must be 1 or more"))
                    .and_then(|n| self.visit_u64(n))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<MaxParallel, E> {
                if let Ok(n) = s.trim().parse::<u64>() {
                    return self.visit_u64(n);
                }
                Ok(MaxParallel::Expression(s.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for MaxParallel {
    fn schema_name() -> Cow<'static, str> {
        "MaxParallel".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "At most this many items at once: a number, or an expression over params and vars (`params.max_parallel`).",
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string"}
            ]
        })
    }
}

/// The largest delay multiplier `retries.backoff` accepts (a delay still saturates, however
/// many retries).
pub const MAX_BACKOFF: f64 = 100.0;

/// Retry policy: `retries: 3` or `retries: {attempts: 3, delay: 5s, backoff: 2, max_delay: 1m}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retries {
    /// Further attempts after the first one fails.
    pub attempts: u32,
    /// Wait before the first retry.
    pub delay: Dur,
    /// Multiplier applied to the delay after each retry.
    pub backoff: f64,
    /// Upper bound for the delay.
    pub max_delay: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetriesMap {
    attempts: u32,
    delay: Option<Dur>,
    backoff: Option<f64>,
    max_delay: Option<Dur>,
}

impl<'de> Deserialize<'de> for Retries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Retries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of retries or {attempts, delay, backoff, max_delay}")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Retries, E> {
                let attempts =
                    u32::try_from(n).map_err(|_| E::custom("retries must be 0 or more"))?;
                Ok(Retries {
                    attempts,
                    delay: Dur(std::time::Duration::from_secs(1)),
                    backoff: 2.0,
                    max_delay: None,
                })
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Retries, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Retries, E> {
                if crate::yaml::node::is_decimal_integer(s) {
                    return Err(E::custom(format_args!(
                        "`{s}` is too large for a number of retries"
                    )));
                }
                Err(E::invalid_type(serde::de::Unexpected::Str(s), &self))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Retries, A::Error> {
                let m = RetriesMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                if let Some(b) = m.backoff
                    && !(1.0..=MAX_BACKOFF).contains(&b)
                {
                    return Err(serde::de::Error::custom(format_args!(
                        "`backoff` must be between 1 and {MAX_BACKOFF}, found {b:e}"
                    )));
                }
                Ok(Retries {
                    attempts: m.attempts,
                    delay: m.delay.unwrap_or(Dur(std::time::Duration::from_secs(1))),
                    backoff: m.backoff.unwrap_or(2.0),
                    max_delay: m.max_delay,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Retries {
    fn schema_name() -> Cow<'static, str> {
        "Retries".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let dur = g.subschema_for::<Dur>();
        json_schema!({
            "description": "Retries after a failure: a count (1 s delay, doubling), or a mapping.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "object", "additionalProperties": false, "required": ["attempts"],
                 "properties": {
                    "attempts": {"type": "integer", "minimum": 0, "description": "Further attempts after the first."},
                    "delay": dur.clone(),
                    "backoff": {"type": "number", "minimum": 1, "maximum": MAX_BACKOFF, "description": "Delay multiplier per retry (default 2)."},
                    "max_delay": dur
                 }}
            ]
        })
    }
}
