//! Retention decisions with the semantics of `restic forget --keep-*` / `--keep-within-*`.
//! (Placeholder types; the engine lands from the retention branch.)

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Counts of snapshots to keep.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepCounts {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
}

/// Calendar windows.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepWithin {
    pub within: Option<String>,
    pub hourly: Option<String>,
    pub daily: Option<String>,
    pub weekly: Option<String>,
    pub monthly: Option<String>,
    pub yearly: Option<String>,
}
