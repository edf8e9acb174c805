//! The documented exit codes: the only place their numbers appear.

/// The run (or command) succeeded.
pub const OK: u8 = 0;
/// A step failed.
pub const STEP_FAILED: u8 = 1;
/// The runbook is invalid, or the command line is wrong.
pub const INVALID: u8 = 2;
/// A gate was not approved.
pub const GATE_NOT_APPROVED: u8 = 3;
/// The run succeeded but took longer than the RTO (only with `--fail-over-rto`).
pub const OVER_RTO: u8 = 4;
/// `rb status`: nothing to judge (no state directory, or no run of the runbook named /
/// of any runbook with an RPO): a backup that never ran is not "ok".
pub const NO_RUNS: u8 = 5;
/// Interrupted by Ctrl-C or SIGTERM.
pub const INTERRUPTED: u8 = 130;
