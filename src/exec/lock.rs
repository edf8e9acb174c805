//! Locks in the state directory. A run lock: one run of a runbook name at a time. Target
//! locks: what a runbook declares in `locks:` (`postgres/codexos-postgres`), shared across
//! runbooks, so a backup and a restore of the same database never run at once. A lock file
//! names its holder; a lock whose process is gone is taken over.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A held lock, released on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

/// A held target lock, released on drop.
#[derive(Debug)]
pub struct TargetLock {
    path: PathBuf,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("runbook `{name}` is already running: run `{run_id}` (pid {pid}) holds `{path}`")]
    Held {
        name: String,
        run_id: String,
        pid: u32,
        path: String,
    },
    #[error(
        "lock `{lock}` is held by run `{run_id}` of runbook `{runbook}` (pid {pid}, `{path}`){}; \
         no step was run",
        waited_text(*.waited)
    )]
    TargetHeld {
        lock: String,
        run_id: String,
        runbook: String,
        pid: u32,
        path: String,
        waited: Duration,
    },
    #[error("cannot take the lock `{path}`: {source}")]
    Io { path: String, source: io::Error },
}

fn waited_text(waited: Duration) -> String {
    if waited.is_zero() {
        "; to wait for it, give `--lock-wait DURATION`".to_owned()
    } else {
        format!(
            " after waiting {}",
            crate::duration::human_secs(waited.as_secs_f64())
        )
    }
}

/// Whether process `pid` exists (on this machine).
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM still means the process exists.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// The holder a lock file names: pid, then one value per line.
struct Holder {
    pid: u32,
    lines: Vec<String>,
}

/// Creates `path` holding `body` unless a live process holds it: `Ok(None)` when taken,
/// `Ok(Some(holder))` when held. A file left by a dead process is removed and taken.
fn take(path: &Path, body: &str) -> Result<Option<Holder>, LockError> {
    let io_err = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    for _ in 0..3 {
        match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut f) => {
                f.write_all(body.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io_err)?;
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let mut lines = text.lines();
                let pid: u32 = lines
                    .next()
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(0);
                if pid != 0 && alive(pid) {
                    let lines = lines.map(str::to_owned).collect();
                    return Ok(Some(Holder { pid, lines }));
                }
                // Stale: its process is gone. Remove it and try again (another taker
                // racing us will find it created and report it as held).
                let _ = std::fs::remove_file(path);
            }
            Err(e) => return Err(io_err(e)),
        }
    }
    Err(io_err(io::Error::other("lock changed hands repeatedly")))
}

impl RunLock {
    /// Take the lock of runbook `name` for `run_id`.
    pub fn acquire(state: &Path, name: &str, run_id: &str) -> Result<Self, LockError> {
        let path = state.join("locks").join(format!("{name}.lock"));
        let body = format!("{}\n{run_id}\n", std::process::id());
        match take(&path, &body)? {
            None => Ok(Self { path }),
            Some(h) => Err(LockError::Held {
                name: name.to_owned(),
                run_id: h.lines.first().cloned().unwrap_or_else(|| "?".into()),
                pid: h.pid,
                path: path.display().to_string(),
            }),
        }
    }
}

/// The file of target lock `name`: bytes other than ASCII letters, digits, `.`, `_` and
/// `-` are written `%XX`, so any name is one file name and two names never share a file.
pub fn target_path(state: &Path, name: &str) -> PathBuf {
    let mut file = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            file.push(char::from(b));
        } else {
            let _ = write!(file, "%{b:02X}");
        }
    }
    state.join("locks/targets").join(format!("{file}.lock"))
}

impl TargetLock {
    /// Take every lock in `names` (in order: callers pass them sorted, so two runs never
    /// wait on each other in a cycle) for run `run_id` of `runbook`, waiting up to `wait`
    /// for each one that is held. On failure, the locks taken so far are released.
    pub fn acquire_all(
        state: &Path,
        names: &[String],
        run_id: &str,
        runbook: &str,
        wait: Duration,
    ) -> Result<Vec<Self>, LockError> {
        let started = Instant::now();
        let mut held = Vec::with_capacity(names.len());
        for name in names {
            let path = target_path(state, name);
            let body = format!("{}\n{run_id}\n{runbook}\n{name}\n", std::process::id());
            loop {
                match take(&path, &body)? {
                    None => {
                        held.push(Self { path });
                        break;
                    }
                    Some(_) if started.elapsed() < wait => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Some(h) => {
                        return Err(LockError::TargetHeld {
                            lock: name.clone(),
                            run_id: h.lines.first().cloned().unwrap_or_else(|| "?".into()),
                            runbook: h.lines.get(1).cloned().unwrap_or_else(|| "?".into()),
                            pid: h.pid,
                            path: path.display().to_string(),
                            waited: wait,
                        });
                    }
                }
            }
        }
        Ok(held)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for TargetLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
