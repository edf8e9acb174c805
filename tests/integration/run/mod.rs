//! `rb run` end to end with host-side steps only, one file per feature: ordering and
//! skipping (`parallel`), timeouts, retries and Ctrl-C (`timeouts`), resume, locks, gates,
//! secrets and argv safety, `--dry-run`, and atomic compressed outputs; the helpers they share
//! (and `resume`, `transport` use too) here.

mod dry_run;
mod gates;
mod locks;
mod outputs;
mod parallel;
mod resume;
mod secrets;
mod timeouts;

use crate::support::{Ran, Spawned, Test};
pub(super) use crate::support::{expect, poll};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `rb ARGS` in `dir` (stdin not a terminal): the state under `dir/state` unless ARGS say
/// otherwise, target locks under `dir/state/locks/targets`.
fn rb_in(dir: &Path) -> Test {
    Test::new()
        .cwd(dir)
        .env_remove("RB_STATE_DIR")
        .env_path("RB_LOCK_DIR", dir.join("state/locks/targets"))
}

/// Run `rb ARGS` in `dir` (stdin not a terminal).
pub(super) fn rb(dir: &Path, args: &[&str]) -> Ran {
    rb_env(dir, args, &[])
}

pub(super) fn rb_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut rb = rb_in(dir).args(args);
    for (k, v) in env {
        rb = rb.env(k, v);
    }
    rb.run()
}

/// `rb run rb.yaml --state-dir state EXTRA…` in the test directory.
pub(super) fn run(t: &Test, extra: &[&str]) -> Ran {
    let mut args = vec!["run", "rb.yaml", "--state-dir", "state"];
    args.extend_from_slice(extra);
    rb(t.dir.path(), &args)
}

/// Start `rb run rb.yaml --state-dir state` in the background.
pub(super) fn spawn(t: &Test) -> Spawned {
    spawn_args(t, &["rb.yaml"])
}

/// Start `rb run --state-dir state ARGS…` in the background.
pub(super) fn spawn_args(t: &Test, args: &[&str]) -> Spawned {
    rb_in(t.dir.path())
        .args(["run", "--state-dir", "state"])
        .args(args)
        .spawn()
}

/// The run directories in a state directory.
pub(super) fn run_dirs(state: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(state.join("runs"))
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The only run directory.
pub(super) fn the_run(t: &Test) -> PathBuf {
    let dirs = run_dirs(&t.path("state"));
    assert_eq!(dirs.len(), 1, "one run expected: {dirs:?}");
    dirs[0].clone()
}

pub(super) fn journal(run_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(run_dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub(super) fn events<'a>(journal: &'a [Value], kind: &str, step: &str) -> Vec<&'a Value> {
    journal
        .iter()
        .filter(|e| e["event"] == kind && (step.is_empty() || e["step"] == step))
        .collect()
}

pub(super) fn report(run_dir: &Path) -> Value {
    let text = std::fs::read_to_string(run_dir.join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("report is JSON")
}

pub(super) fn step<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {report:#}"))
}

pub(super) fn read(t: &Test, name: &str) -> String {
    std::fs::read_to_string(t.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub(super) fn lines(t: &Test, name: &str) -> usize {
    std::fs::read_to_string(t.path(name)).map_or(0, |s| s.lines().count())
}

fn stamp(t: &Test, name: &str) -> f64 {
    read(t, name).trim().parse().expect("a timestamp")
}

/// A process is gone (or a zombie nobody reaped yet: it runs no more).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn pid_in(t: &Test, name: &str) -> i32 {
    poll(name, Duration::from_secs(10), || {
        std::fs::read_to_string(t.path(name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
}

/// Wait until the journal of the only run shows `step` started.
pub(super) fn wait_started(t: &Test, step_id: &str) -> PathBuf {
    poll(
        &format!("`{step_id}` to start"),
        Duration::from_secs(20),
        || {
            let dir = run_dirs(&t.path("state")).pop()?;
            (!events(&journal(&dir), "step_started", step_id).is_empty()).then_some(dir)
        },
    )
}

/// Whether the lock file at `path` is free: nobody holds its `flock` and it names nobody
/// (lock files stay in place; a released one is empty).
fn released(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return true;
    };
    let empty = file.metadata().is_ok_and(|m| m.len() == 0);
    empty && nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok()
}
