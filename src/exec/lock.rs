//! Locks. A run lock, in the state directory: one run of a runbook name at a time. Target
//! locks, in the machine-wide lock directory ([`lock_dir`]): what a runbook declares in
//! `locks:` (`postgres/codexos-postgres`), shared across runbooks, state directories and
//! users, so a backup and a restore of the same database never run at once.
//!
//! A lock is an exclusive `flock(2)` on its file, held by the open file for the whole run:
//! the kernel releases it when rb exits, however it exits (`kill -9`, a power cut), and
//! nothing else decides whether a lock is free. No pid is checked (a pid can be reused, and
//! under a PID namespace every rb is pid 1), no file is read and then removed (two takers
//! could both see it stale), and lock files are never unlinked (a taker holding the old file
//! and one creating a new one could both lock). The file's text only names the holder for
//! the message of a refused run.

use nix::fcntl::{Flock, FlockArg};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The default lock directory, shared by every user of the machine.
pub const MACHINE_LOCK_DIR: &str = "/run/lock/rb";

/// A held lock, released on drop (its file stays, empty).
#[derive(Debug)]
pub struct RunLock(#[expect(dead_code, reason = "held for its drop")] Held);

/// A held target lock, released on drop (its file stays, empty).
#[derive(Debug)]
pub struct TargetLock(#[expect(dead_code, reason = "held for its drop")] Held);

/// The open, locked file: closing it (on drop) is what releases the lock.
#[derive(Debug)]
struct Held(Flock<File>);

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("runbook `{name}` is already running: run `{run_id}` (pid {pid}) holds `{path}`")]
    Held {
        name: String,
        run_id: String,
        pid: String,
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
        pid: String,
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

/// Where target locks live: `--lock-dir`, else `$RB_LOCK_DIR`, else [`MACHINE_LOCK_DIR`]
/// when `/run/lock` exists (every user's runs share it), else `$XDG_RUNTIME_DIR/rb/locks`,
/// else `STATE/locks/targets`.
pub fn lock_dir(flag: Option<&Path>, state: &Path) -> PathBuf {
    if let Some(p) = flag {
        return p.to_owned();
    }
    if let Some(p) = std::env::var_os("RB_LOCK_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let machine = Path::new(MACHINE_LOCK_DIR);
    if machine.parent().is_some_and(Path::is_dir) {
        return machine.to_owned();
    }
    if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(p).join("rb/locks");
    }
    state.join("locks/targets")
}

/// The holder a lock file names: one value per line, the first the pid.
fn holder(file: &mut File) -> Vec<String> {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    text.lines().map(str::to_owned).collect()
}

/// Makes `dir` (and its parents); a directory rb creates in `shared` mode is world-writable
/// and sticky like `/tmp`, so every user can lock in it and none can remove another's files.
fn make_dir(dir: &Path, shared: bool) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    if shared {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))?;
    }
    Ok(())
}

/// Locks `path` and writes `body` into it: `Ok(Ok(held))` when taken, `Ok(Err(holder))`
/// when another process holds it. In `shared` mode the file is made writable by all, so
/// another user can lock it later and name itself as the holder.
fn take(path: &Path, body: &str, shared: bool) -> Result<Result<Held, Vec<String>>, LockError> {
    let io_err = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        make_dir(dir, shared).map_err(io_err)?;
    }
    // Never through a symbolic link, never a file with other names: in a directory every
    // user writes to, either could point a run at a file that is not a lock.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(io_err(io::Error::other(
            "not a lock file (not a regular file, or it has other names)",
        )));
    }
    if shared && meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o777 != 0o666 {
        file.set_permissions(std::fs::Permissions::from_mode(0o666))
            .map_err(io_err)?;
    }
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0)
                .and_then(|()| lock.rewind())
                .and_then(|()| lock.write_all(body.as_bytes()))
                .and_then(|()| lock.sync_data())
                .map_err(io_err)?;
            Ok(Ok(Held(lock)))
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => Ok(Err(holder(&mut file))),
        Err((_, e)) => Err(io_err(e.into())),
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // The holder's name goes with the lock; the kernel releases the lock itself when
        // the file is closed, right after.
        let _ = self.0.set_len(0);
    }
}

fn field(holder: &[String], i: usize) -> String {
    holder
        .get(i)
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "?".into())
}

impl RunLock {
    /// Take the lock of runbook `name` for `run_id` (in `STATE/locks/`).
    pub fn acquire(state: &Path, name: &str, run_id: &str) -> Result<Self, LockError> {
        let path = state.join("locks").join(format!("{name}.lock"));
        let body = format!("{}\n{run_id}\n", std::process::id());
        match take(&path, &body, false)? {
            Ok(held) => Ok(Self(held)),
            Err(h) => Err(LockError::Held {
                name: name.to_owned(),
                run_id: field(&h, 1),
                pid: field(&h, 0),
                path: path.display().to_string(),
            }),
        }
    }
}

/// The file of target lock `name` in lock directory `dir`: bytes other than ASCII letters,
/// digits, `.`, `_` and `-` are written `%XX`, so any name is one file name and two names
/// never share a file.
pub fn target_path(dir: &Path, name: &str) -> PathBuf {
    let mut file = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            file.push(char::from(b));
        } else {
            let _ = write!(file, "%{b:02X}");
        }
    }
    dir.join(format!("{file}.lock"))
}

impl TargetLock {
    /// Take every lock in `names` in lock directory `dir` (in order: callers pass them
    /// sorted, so two runs never wait on each other in a cycle) for run `run_id` of
    /// `runbook`, waiting up to `wait` for each one that is held. On failure, the locks
    /// taken so far are released.
    pub fn acquire_all(
        dir: &Path,
        names: &[String],
        run_id: &str,
        runbook: &str,
        wait: Duration,
    ) -> Result<Vec<Self>, LockError> {
        let started = Instant::now();
        let mut held = Vec::with_capacity(names.len());
        for name in names {
            let path = target_path(dir, name);
            let body = format!("{}\n{run_id}\n{runbook}\n{name}\n", std::process::id());
            loop {
                match take(&path, &body, true)? {
                    Ok(lock) => {
                        held.push(Self(lock));
                        break;
                    }
                    Err(_) if started.elapsed() < wait => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(h) => {
                        return Err(LockError::TargetHeld {
                            lock: name.clone(),
                            run_id: field(&h, 1),
                            runbook: field(&h, 2),
                            pid: field(&h, 0),
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
