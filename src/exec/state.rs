//! The state directory and run ids.

use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// `--state-dir`, else `$RB_STATE_DIR`, else `$XDG_STATE_HOME/rb`, else `~/.local/state/rb`.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_owned();
    }
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("RB_STATE_DIR") {
        return p;
    }
    if let Some(p) = var("XDG_STATE_HOME") {
        return p.join("rb");
    }
    var("HOME")
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".local/state/rb")
}

/// A new run id: sortable by time, unique enough per state dir (`20261126T020000Z-3fa1`).
pub fn new_run_id(now: DateTime<Utc>) -> String {
    let nanos = now.timestamp_subsec_nanos() ^ std::process::id().rotate_left(16);
    format!("{}-{:04x}", now.format("%Y%m%dT%H%M%SZ"), nanos & 0xffff)
}

/// The directory of one run.
pub fn run_dir(state: &Path, run_id: &str) -> PathBuf {
    state.join("runs").join(run_id)
}
