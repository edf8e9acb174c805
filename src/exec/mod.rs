//! Running a plan: the executor walks the DAG on tokio and emits [`crate::event::RunEvent`]s
//! ([`crate::journal`] persists them and reads them back for `--resume`); `lock` keeps one run per
//! runbook name and state directory, `state` finds the state directory, `nested` runs
//! sub-runbooks. What a running step is given is the step contract, in [`crate::steps::cx`].

pub mod executor;
pub mod lock;
mod nested;
pub mod secrets;
pub mod state;
