//! Retention decisions with the semantics of `restic forget --keep-*` / `--keep-within-*`,
//! the engine of the `prune` step.
//!
//! ```text
//! KeepCounts + KeepWithin (the step's YAML)      policy
//!   → decide(&[Snapshot]) → Vec<Decision>         decide   pure, restic 0.14's ApplyPolicy
//!   → plan_prune(dir, glob, time source) → plan   prune    reads the directory only
//!   → apply(&plan) → PruneOutcome                 prune    removes what the plan lists
//! ```
//!
//! The decisions are those of restic 0.14 (Debian's), which `tests/retention_restic.rs`
//! checks against the real binary. Newer restic releases also keep the oldest snapshot when a
//! count policy has counts left over, and accept `-1` for "unlimited"; 0.14 does neither.

mod decide;
mod policy;
mod prune;
mod span;

pub use decide::{Decision, Snapshot, decide, decide_at};
pub use policy::{KeepCounts, KeepWithin, policy_is_empty};
pub use prune::{
    PruneEntry, PruneError, PruneOutcome, PrunePlan, RemovalFailure, TimeSource, TimeSourceError,
    apply, plan_prune,
};
pub use span::{CalendarSpan, CalendarSpanError};
