//! Stopping an exec'd process for real when its exec is cancelled.
//!
//! The Engine API has no "kill exec": dropping the attach connection leaves the process
//! running, and a `pg_dump` or `pg_restore` left behind holds locks and connections. So every
//! exec rb starts carries a marker variable, `RB_EXEC_ID=<random token>`, in its environment,
//! which its children inherit. To stop it, rb runs a second, short exec in the same container
//! that sends SIGTERM to every process carrying the token, waits up to 3 s for them to go,
//! then sends SIGKILL; rb then polls the exec's inspect until the engine reports it is no
//! longer running. Reading another process's `/proc/PID/environ` takes the same uid (or
//! `CAP_SYS_PTRACE`, which containers lack, and a privileged exec is refused in some
//! sandboxes), so the helper runs as the exec's own user and again as root.
//!
//! Why not the host PID from exec inspect: it is only meaningful when the engine shares this
//! machine's PID namespace, which is false for `tcp://` and `ssh://` engines and for rb
//! itself running in a container; the marker works on any engine. It needs `sh`, `tr`,
//! `grep` and `kill` in the container (busybox has them); distroless images without a shell
//! cannot be cleaned up this way, and the error says so.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::exec::CreateExecOptions;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::engine::Engine;
use super::error::{DockerError, Subject};

/// The environment variable that marks the processes of one exec.
pub(crate) const MARKER_VAR: &str = "RB_EXEC_ID";
/// The environment variable that marks the processes of one step of one run
/// (`RUN_ID/STEP`): what a resumed run stops before the step starts again.
pub(crate) const OWNER_VAR: &str = "RB_EXEC_OWNER";

/// How long the whole stop may take before it is reported as a timeout.
const STOP_DEADLINE: Duration = Duration::from_secs(20);
/// How long a finished exec may still be reported as running.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
/// How long an exec that is neither running nor ended (still starting, or never started) is
/// watched for a process to stop before it counts as never started.
const NOT_STARTED_GRACE: Duration = Duration::from_secs(3);

/// `$1` is the marker (`VAR=value`). Prints nothing; exits 0 when no marked process is left.
///
/// Leaves first: a process stopped while its parent still runs is reaped by that parent.
/// Stopping a parent first hands its children to the container's PID 1 and, when PID 1 is a
/// database server (the postgres image `exec`s the server), the server takes the death of a
/// child it never started for a crashed backend: it kills every session and runs crash
/// recovery. So each round sends SIGTERM (SIGKILL after 3 s) only to marked processes that
/// no other marked process has as parent, then looks again; after 6 s whatever is left gets
/// SIGKILL. The helper itself ignores SIGTERM and SIGHUP: if rb dies while it runs, nothing
/// must stop it half way and leave its own subshells to PID 1.
const KILL_SCRIPT: &str = r#"trap '' TERM HUP
m="$1"
marked() {
  for d in /proc/[0-9]*; do
    if { tr '\000' '\n' < "$d/environ"; } 2>/dev/null | grep -qxF "$m"; then echo "${d#/proc/}"; fi
  done
}
ppid() {
  while read -r k v; do
    if [ "$k" = PPid: ]; then echo "$v"; return; fi
  done < "/proc/$1/status"
}
i=0
while [ $i -lt 60 ]; do
  p=$(marked); [ -z "$p" ] && exit 0
  parents=" "
  for c in $p; do parents="$parents$(ppid "$c" 2>/dev/null) "; done
  sig=TERM; [ $i -ge 30 ] && sig=KILL
  for c in $p; do
    case "$parents" in *" $c "*) ;; *) kill -$sig "$c" 2>/dev/null ;; esac
  done
  sleep 0.1; i=$((i+1))
done
p=$(marked); [ -z "$p" ] && exit 0
kill -KILL $p 2>/dev/null
p=$(marked); [ -z "$p" ] && exit 0
exit 1
"#;

/// A fresh random-enough token: nothing else in the container can guess or share it.
pub(crate) fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.update(now.as_nanos().to_le_bytes());
    let local = 0u8;
    h.update(format!("{:p}", &raw const local).as_bytes());
    hex::encode(&h.finalize()[..12])
}

/// Owns a started exec until it has ended; dropping it while armed stops the process in
/// the background.
pub(crate) struct ExecGuard {
    engine: Engine,
    container: String,
    exec_id: String,
    token: String,
    user: Option<String>,
    armed: bool,
    /// Its entry in [`RUNNING`] while the process may run.
    key: u64,
}

/// An exec that may still be running, as [`stop_running_execs`] stops it.
#[derive(Clone)]
struct Running {
    engine: Engine,
    container: String,
    exec_id: String,
    token: String,
    user: Option<String>,
    owner: Option<String>,
}

/// The execs whose process may still run (armed guards, and stops under way): what a
/// second Ctrl-C stops before rb exits, since it cannot wait for each step to do it.
static RUNNING: std::sync::Mutex<std::collections::BTreeMap<u64, Running>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn unregister(key: u64) {
    if let Ok(mut running) = RUNNING.lock() {
        running.remove(&key);
    }
}

/// What [`stop_running_execs`] did for one exec.
#[derive(Debug, Clone)]
pub struct StoppedExec {
    /// Who started it (`RUN_ID/STEP`), when known.
    pub owner: Option<String>,
    pub container: String,
    /// `Err`: why it may still be running.
    pub result: Result<(), String>,
}

/// Stop every exec whose process may still run (all at once), waiting at most `within`:
/// rb is about to exit without waiting for its steps (a second Ctrl-C), and must not leave
/// a `pg_dump` or `sleep` behind in a container. Each stop is the one a cancelled exec
/// gets (leaves first, SIGTERM then SIGKILL), confirmed by the engine.
pub async fn stop_running_execs(within: Duration) -> Vec<StoppedExec> {
    let running: Vec<Running> = RUNNING
        .lock()
        .map(|r| r.values().cloned().collect())
        .unwrap_or_default();
    let stops = running.into_iter().map(|r| async move {
        let target = Target {
            container: &r.container,
            exec_id: &r.exec_id,
            token: &r.token,
            user: r.user.as_deref(),
        };
        let result = match tokio::time::timeout(within, stop_exec(&r.engine, &target)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("not confirmed within {} s", within.as_secs())),
        };
        StoppedExec {
            owner: r.owner.clone(),
            container: r.container.clone(),
            result,
        }
    });
    futures_util::future::join_all(stops).await
}

impl ExecGuard {
    /// A guard for an exec just created; `owner` is the `RUN_ID/STEP` that started it.
    pub(crate) fn new(
        engine: Engine,
        container: &str,
        exec_id: &str,
        token: String,
        user: Option<String>,
        owner: Option<String>,
    ) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let key = NEXT.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut running) = RUNNING.lock() {
            running.insert(
                key,
                Running {
                    engine: engine.clone(),
                    container: container.to_owned(),
                    exec_id: exec_id.to_owned(),
                    token: token.clone(),
                    user: user.clone(),
                    owner,
                },
            );
        }
        Self {
            engine,
            container: container.to_owned(),
            exec_id: exec_id.to_owned(),
            token,
            user,
            armed: true,
            key,
        }
    }

    /// The exec ended normally: nothing to stop.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
        unregister(self.key);
    }

    /// Stops the process now and waits until the engine reports it gone.
    pub(crate) async fn stop_now(&mut self) -> Result<(), DockerError> {
        self.armed = false;
        let target = Target {
            container: &self.container,
            exec_id: &self.exec_id,
            token: &self.token,
            user: self.user.as_deref(),
        };
        let result = stop_exec(&self.engine, &target).await;
        if result.is_ok() {
            unregister(self.key);
        }
        result
    }

    /// Waits for the engine to record the exit code of an exec whose output has ended.
    pub(crate) async fn exit_code(&self) -> Result<i64, DockerError> {
        let start = Instant::now();
        loop {
            let (running, code) = exec_state(&self.engine, &self.container, &self.exec_id).await?;
            if !running {
                return Ok(code.unwrap_or(-1));
            }
            if start.elapsed() > EXIT_DEADLINE {
                return Err(self.engine.timeout(
                    format!(
                        "waiting for the exit code of an exec in container `{}`",
                        self.container
                    ),
                    EXIT_DEADLINE,
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        if !self.armed {
            unregister(self.key);
            return;
        }
        // Drop cannot wait: the stop runs on the runtime the exec ran on.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (engine, container, exec_id, token, user, key) = (
                self.engine.clone(),
                std::mem::take(&mut self.container),
                std::mem::take(&mut self.exec_id),
                std::mem::take(&mut self.token),
                self.user.take(),
                self.key,
            );
            handle.spawn(async move {
                let target = Target {
                    container: &container,
                    exec_id: &exec_id,
                    token: &token,
                    user: user.as_deref(),
                };
                if stop_exec(&engine, &target).await.is_ok() {
                    unregister(key);
                }
            });
        }
    }
}

async fn exec_state(
    engine: &Engine,
    container: &str,
    exec_id: &str,
) -> Result<(bool, Option<i64>), DockerError> {
    let info = engine.docker.inspect_exec(exec_id).await.map_err(|e| {
        engine.err(
            Subject::Container(container),
            &format!("to inspect an exec in container `{container}`"),
            e,
        )
    })?;
    Ok((info.running.unwrap_or(false), info.exit_code))
}

/// The exec to stop.
pub(crate) struct Target<'a> {
    container: &'a str,
    exec_id: &'a str,
    token: &'a str,
    /// The exec's user (`None`: the container's).
    user: Option<&'a str>,
}

/// Kills every process of the exec (by its marker) until the engine reports it ended.
pub(crate) async fn stop_exec(engine: &Engine, target: &Target<'_>) -> Result<(), DockerError> {
    let Target {
        container,
        exec_id,
        token,
        user,
    } = *target;
    let as_root = matches!(user, Some("0" | "root" | "0:0" | "root:root"));
    let start = Instant::now();
    let mut last_problem = String::new();
    loop {
        last_problem.clear();
        // As the exec's user first (it can read its own processes' environment), then as
        // root for children that switched to root (su, sudo, setuid programs).
        let marker = format!("{MARKER_VAR}={token}");
        let mut outcome = run_killer(engine, container, &marker, user).await;
        if !as_root {
            outcome = run_killer(engine, container, &marker, Some("0")).await;
        }
        // Done when the exec has ended *and* the helper saw no marked process left: the
        // exec's own process can end (a broken pipe, a signal) before its children, which
        // would otherwise be left to the container's PID 1.
        let clean = match outcome {
            Ok(()) => true,
            Err(e) => {
                // Nothing it could stop: no shell to stop with, or no running container
                // (a stopped container has no processes left).
                let moot = ["no `sh`", "is not running", "no such container"]
                    .iter()
                    .any(|m| e.contains(m));
                last_problem = e;
                moot
            }
        };
        match exec_state(engine, container, exec_id).await {
            // Not running *with* an exit code: under load an exec can still be starting
            // (not running, no exit code yet) when it is cancelled, and start afterwards.
            Ok((false, Some(_))) if clean => return Ok(()),
            // Never started (cancelled between create and start): nothing will come.
            Ok((false, None)) if clean && start.elapsed() > NOT_STARTED_GRACE => return Ok(()),
            // The container is gone, and its processes with it.
            Err(DockerError::ContainerNotFound { .. }) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        if start.elapsed() > STOP_DEADLINE {
            let mut what = format!("stopping a cancelled exec in container `{container}`");
            if !last_problem.is_empty() {
                what = format!("{what} ({last_problem})");
            }
            return Err(engine.timeout(what, STOP_DEADLINE));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Engine {
    /// Stops every process in `container` that an earlier attempt of step `owner`
    /// (`RUN_ID/STEP`) started and left running: rb was killed, so nobody stopped them, and
    /// a `pg_dump` or `pg_restore` left behind holds connections and locks. The helper runs
    /// as `user` and as root; a container without `sh` is reported.
    pub async fn stop_leftovers(
        &self,
        container: &str,
        owner: &str,
        user: Option<&str>,
    ) -> Result<(), DockerError> {
        let marker = format!("{OWNER_VAR}={owner}");
        let mut result = run_killer(self, container, &marker, user).await;
        if !matches!(user, Some("0" | "root" | "0:0" | "root:root")) {
            result = run_killer(self, container, &marker, Some("0")).await;
        }
        result.map_err(|message| DockerError::Api {
            what: format!(
                "to stop what an earlier attempt left running in container `{container}`"
            ),
            message,
            endpoint: self.endpoint().to_owned(),
        })
    }
}

/// Runs the kill script in the container; `Err` carries why it could not run.
async fn run_killer(
    engine: &Engine,
    container: &str,
    marker: &str,
    user: Option<&str>,
) -> Result<(), String> {
    let options = CreateExecOptions {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        user: user.map(str::to_owned),
        cmd: Some(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            KILL_SCRIPT.to_owned(),
            "rb-kill".to_owned(),
            marker.to_owned(),
        ]),
        ..CreateExecOptions::default()
    };
    let created = engine
        .docker
        .create_exec(container, options)
        .await
        .map_err(|e| super::error::chain(&e).to_lowercase())?;
    let started = engine
        .docker
        .start_exec(&created.id, None)
        .await
        .map_err(|e| super::error::chain(&e).to_lowercase())?;
    let mut text = Vec::new();
    if let bollard::exec::StartExecResults::Attached { mut output, .. } = started {
        while let Some(Ok(frame)) = output.next().await {
            if text.len() < 4096 {
                text.extend_from_slice(&frame.into_bytes());
            }
        }
    }
    // Its output has ended, but the engine may record the exit code a moment later.
    let start = Instant::now();
    let info = loop {
        let info = engine
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| super::error::chain(&e).to_lowercase())?;
        if info.exit_code.is_some() || start.elapsed() > Duration::from_secs(5) {
            break info;
        }
        tokio::time::sleep(POLL).await;
    };
    match info.exit_code {
        Some(0) => Ok(()),
        Some(127) => Err("the container has no `sh` to stop it with".to_owned()),
        code => Err(format!(
            "the stop helper exited with {code:?}: {}",
            String::from_utf8_lossy(&text).trim()
        )),
    }
}
