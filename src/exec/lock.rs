//! One run of a runbook name per state directory. The lock file names its holder; a lock
//! whose process is gone is taken over.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A held lock, released on drop.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("runbook `{name}` is already running: run `{run_id}` (pid {pid}) holds `{path}`")]
    Held {
        name: String,
        run_id: String,
        pid: u32,
        path: String,
    },
    #[error("cannot take the lock `{path}`: {source}")]
    Io { path: String, source: io::Error },
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM still means the process exists.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

impl RunLock {
    /// Take the lock of runbook `name` for `run_id`.
    pub fn acquire(state: &Path, name: &str, run_id: &str) -> Result<Self, LockError> {
        let dir = state.join("locks");
        let path = dir.join(format!("{name}.lock"));
        let io_err = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io_err)?;
        let body = format!("{}\n{run_id}\n", std::process::id());
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(body.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(io_err)?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let mut lines = text.lines();
                    let pid: u32 = lines
                        .next()
                        .and_then(|l| l.trim().parse().ok())
                        .unwrap_or(0);
                    let holder = lines.next().unwrap_or("?").to_owned();
                    if pid != 0 && alive(pid) {
                        return Err(LockError::Held {
                            name: name.to_owned(),
                            run_id: holder,
                            pid,
                            path: path.display().to_string(),
                        });
                    }
                    // Stale: its process is gone. Remove it and try again (another taker
                    // racing us will find it created and report it as held).
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(io_err(io::Error::other("lock changed hands repeatedly")))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
