//! Retention decisions with the semantics of `restic forget --keep-*` / `--keep-within-*`,
//! the engine of the `prune` step.
//!
//! ```text
//! KeepCounts + KeepWithin (the step's YAML)      policy
//!   → decide(&[Snapshot]) → Vec<Decision>         decide   pure, restic's ApplyPolicy
//!   → plan_prune(dir, glob, time, require) → plan prune    reads the directory only
//!   → apply(&plan) → PruneOutcome                 prune    removes what the plan lists
//! ```
//!
//! The decisions are those of current restic (0.16 and later), checked against the golden
//! files of restic's own test suite (`tests/fixtures/restic-golden/`, `golden_tests.rs`);
//! [`Rules::Restic014`] gives those of restic 0.14 (Debian's), which
//! `tests/properties/retention_restic.rs` checks against the real binary. The releases differ in one
//! rule: since 0.16 a count or window with room left also keeps the oldest snapshot.
//! `all` (restic's `-1`) counts have no limit under both rules.

mod decide;
mod policy;
mod prune;
mod require;
mod span;

pub use decide::{Decision, Rules, Snapshot, decide, decide_at, decide_with};
pub use policy::{KeepCount, KeepCounts, KeepWithin, policy_is_empty};
pub use prune::{
    PruneEntry, PruneError, PruneOutcome, PrunePlan, RemovalFailure, TimeSource, TimeSourceError,
    apply, plan_prune,
};
pub use require::{Completeness, Require, RequireError};
pub use span::{CalendarSpan, CalendarSpanError};
