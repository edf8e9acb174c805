//! A data path around the Engine API stream: the process writes (or reads) a FIFO in a
//! directory of this machine that the container sees through a bind mount, and rb reads (or
//! writes) the other end. Every byte of an exec stream otherwise passes through dockerd and
//! the container's shim, which costs more CPU than the dump itself.
//!
//! Three routes, all only for a local engine (a `unix://` socket, in the same mount namespace
//! as rb, so that the engine's host paths are rb's):
//!
//! - **target**: rb may reach the container's file system through `/proc/PID/root` of its
//!   main process (rb runs as root, or as the container's user); the FIFOs go in a fresh
//!   directory in its `/tmp` (or `/dev/shm`, `/run`) and the command is exec'd in the
//!   target: nothing about where it runs changes. The PID is checked against the
//!   container's id in its cgroup, so a PID from another PID namespace is never used.
//! - **mount**: the target container already has a writable bind mount of a host directory;
//!   the FIFOs go in a fresh directory inside it and the command is exec'd in the target.
//! - **sidecar**: rb starts a container from the target's image (the same image id, so
//!   client and server versions match) with the target's environment, sharing its network
//!   namespace (`--network container:TARGET`) and its volumes (`--volumes-from`), a fresh
//!   host directory bind-mounted at [`SIDECAR_DIR`]; the command is exec'd in the sidecar.
//!   What the sidecar does not share is the rest of the target's file system: its unix
//!   sockets (a `psql` without `-h` reaches no server there) and files outside volumes. The sidecar's main process
//!   waits on a "lifeline" FIFO that only rb holds open: when rb dies, however it dies, the
//!   sidecar ends and the engine removes it (`AutoRemove`). It is labelled
//!   [`OWNER_LABEL`]`=RUN_ID/STEP`, and a resumed step removes whatever carries its label.
//!
//! `RB_FIFO_ROUTES` (e.g. `sidecar`, `target,mount`) limits the routes tried, in that order:
//! for tests and benchmarks of one route.
//!
//! Either way the command runs as the runbook gives it, through `sh -c 'exec "$@" >FIFO'`:
//! the exec itself (its stderr, exit code, cancellation and the reaping of its processes)
//! is the same as on the Engine API path, only the bulk stream moves.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions,
};
use tokio::net::unix::pipe;

use super::engine::Engine;
use super::error::{DockerError, Subject};

/// The label that marks a sidecar with the step that started it (`RUN_ID/STEP`).
pub const OWNER_LABEL: &str = "rb.fifo.owner";
/// Where a sidecar sees the FIFO directory.
pub const SIDECAR_DIR: &str = "/run/rb-fifo";
/// The FIFO the command writes its standard output into.
const STDOUT: &str = "stdout";
/// The FIFO the command reads its standard input from.
const STDIN: &str = "stdin";
/// The FIFO a sidecar's main process waits on until rb closes it (or dies).
const LIFELINE: &str = "lifeline";
/// Bigger pipes mean fewer wake-ups of rb and of the process (Linux allows 1 MiB unprivileged).
const PIPE_SIZE: i32 = 1024 * 1024;

/// How the FIFOs reach the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoKind {
    /// In the target's own file system (its `/tmp`, `/dev/shm` or `/run`), made by rb
    /// through `/proc/PID/root` of the container's main process.
    Target,
    /// A bind mount the target container already has.
    Mount,
    /// A sidecar container rb started.
    Sidecar,
}

impl FifoKind {
    /// `mount` or `sidecar`, as reported.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Target => "target",
            Self::Mount => "mount",
            Self::Sidecar => "sidecar",
        }
    }
}

/// Whether host paths rb creates are the engine's host paths: a local engine, and rb in the
/// machine's own mount namespace (not a unit with `PrivateTmp=`, not a container). When
/// rb cannot tell (it may not read PID 1's namespace), it assumes so.
pub fn host_paths_shared() -> bool {
    match (
        std::fs::read_link("/proc/self/ns/mnt"),
        std::fs::read_link("/proc/1/ns/mnt"),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => true,
    }
}

/// A FIFO directory and the container whose process uses it; [`FifoRoute::close`] removes
/// both (dropping it does so in the background).
pub struct FifoRoute {
    engine: Engine,
    kind: FifoKind,
    /// Where to exec the command (the target, or the sidecar's id).
    container: String,
    host_dir: PathBuf,
    container_dir: String,
    sidecar: Option<String>,
    lifeline: Option<std::fs::File>,
}

impl FifoRoute {
    /// The route's kind.
    pub fn kind(&self) -> FifoKind {
        self.kind
    }

    /// The container to exec the command in.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// `argv` run with its standard input and/or output redirected to the FIFOs (their paths
    /// passed as arguments, so no path is ever quoted into the script).
    pub fn wrap(&self, argv: &[String], stdin: bool, stdout: bool) -> Vec<String> {
        let dir = &self.container_dir;
        let (script, paths) = match (stdin, stdout) {
            (true, true) => (
                r#"i=$1 o=$2; shift 2; exec "$@" <"$i" >"$o""#,
                vec![format!("{dir}/{STDIN}"), format!("{dir}/{STDOUT}")],
            ),
            (true, false) => (
                r#"i=$1; shift; exec "$@" <"$i""#,
                vec![format!("{dir}/{STDIN}")],
            ),
            (false, true) => (
                r#"o=$1; shift; exec "$@" >"$o""#,
                vec![format!("{dir}/{STDOUT}")],
            ),
            (false, false) => (r#"exec "$@""#, Vec::new()),
        };
        let mut out = vec!["sh".into(), "-c".into(), script.into(), "rb-fifo".into()];
        out.extend(paths);
        out.extend(argv.iter().cloned());
        out
    }

    /// The read end of the stdout FIFO, and a write end that keeps it from reading end of
    /// file before the process has opened it: drop that one once the exec has ended.
    pub fn open_stdout(&self) -> io::Result<(pipe::Receiver, std::fs::File)> {
        let path = self.host_dir.join(STDOUT);
        let rx = pipe::OpenOptions::new().open_receiver(&path)?;
        let hold = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)?;
        grow(&hold);
        Ok((rx, hold))
    }

    /// The write end of the stdin FIFO, once the process has opened its read end (polls).
    pub async fn open_stdin(&self) -> io::Result<pipe::Sender> {
        let path = self.host_dir.join(STDIN);
        loop {
            match pipe::OpenOptions::new().open_sender(&path) {
                Ok(tx) => {
                    grow(&tx);
                    return Ok(tx);
                }
                // No reader yet.
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes the sidecar (when there is one) and the FIFO directory.
    pub async fn close(mut self) {
        self.lifeline.take();
        if let Some(id) = self.sidecar.take() {
            remove_container(&self.engine, &id).await;
        }
        let _ = std::fs::remove_dir_all(&self.host_dir);
    }
}

impl Drop for FifoRoute {
    fn drop(&mut self) {
        // Closing the lifeline ends the sidecar (and the engine removes it) even if the
        // removal below never runs.
        self.lifeline.take();
        let _ = std::fs::remove_dir_all(&self.host_dir);
        if let (Some(id), Ok(handle)) = (self.sidecar.take(), tokio::runtime::Handle::try_current())
        {
            let engine = self.engine.clone();
            handle.spawn(async move { remove_container(&engine, &id).await });
        }
    }
}

fn grow(fd: &impl AsFd) {
    // Best effort: a smaller pipe is slower, not wrong.
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
}

async fn remove_container(engine: &Engine, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    // Already gone (AutoRemove) or going: both fine.
    let _ = engine.long.remove_container(id, Some(options)).await;
}

/// A name for `owner` (`RUN_ID/STEP`) usable as a container and a file name.
fn slug(owner: &str) -> String {
    let s: String = owner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("rb-fifo-{s}")
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> DockerError {
    move |source| DockerError::Stream { what, source }
}

/// Makes `dir` (removing what an earlier attempt left there) with the FIFOs in it.
fn make_dir(dir: &Path, names: &[&str]) -> io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir(dir)?;
    // The process may run as any user: it needs to reach the FIFOs, not to list them.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
    for name in names {
        let path = dir.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(io::Error::from)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    }
    Ok(())
}

/// `/proc/PID/root` of the target's main process, when rb may use it and the PID is the
/// target's (its cgroup names the container's id: rb sees the engine's PID namespace).
fn proc_root(target: &Target) -> Option<PathBuf> {
    if target.pid <= 0 {
        return None;
    }
    let proc = PathBuf::from(format!("/proc/{}", target.pid));
    let cgroup = std::fs::read_to_string(proc.join("cgroup")).ok()?;
    if !cgroup.contains(&target.id) {
        return None;
    }
    let root = proc.join("root");
    std::fs::read_dir(&root).ok()?;
    Some(root)
}

/// What the route needs to know of the target.
struct Target {
    id: String,
    /// Its main process, as this machine numbers it (0: not running).
    pid: i64,
    image: String,
    env: Vec<String>,
    /// Writable bind mounts: (host source, container destination).
    binds: Vec<(String, String)>,
}

impl Engine {
    async fn fifo_target(&self, container: &str) -> Result<Target, DockerError> {
        let info = self.inspect(container).await?;
        let binds = info
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ.as_deref() == Some("bind") && m.rw == Some(true))
            .filter_map(|m| Some((m.source?, m.destination?)))
            .collect();
        let config = info.config.unwrap_or_default();
        Ok(Target {
            pid: info.state.and_then(|s| s.pid).unwrap_or(0),
            id: info.id.unwrap_or_else(|| container.to_owned()),
            image: info.image.or(config.image).unwrap_or_default(),
            env: config.env.unwrap_or_default(),
            binds,
        })
    }

    /// A FIFO route to `container` for step `owner` (`RUN_ID/STEP`): in its own file
    /// system when rb can reach it, else through one of its writable bind mounts, else
    /// (when `sidecar` allows it) through a sidecar; `None` when none applies.
    pub async fn fifo_route(
        &self,
        container: &str,
        owner: &str,
        stdin: bool,
        sidecar: bool,
    ) -> Result<Option<FifoRoute>, DockerError> {
        let target = self.fifo_target(container).await?;
        let name = slug(owner);
        let mut fifos = vec![STDOUT];
        if stdin {
            fifos.push(STDIN);
        }
        let allowed = |route: &str| {
            std::env::var("RB_FIFO_ROUTES")
                .map_or(true, |r| r.split(',').any(|x| x.trim() == route))
        };
        if let Some(root) = proc_root(&target).filter(|_| allowed("target")) {
            for dir in ["/tmp", "/dev/shm", "/run"] {
                let host_dir = root.join(&dir[1..]).join(format!(".{name}"));
                if make_dir(&host_dir, &fifos).is_ok() {
                    return Ok(Some(FifoRoute {
                        engine: self.clone(),
                        kind: FifoKind::Target,
                        container: container.to_owned(),
                        host_dir,
                        container_dir: format!("{dir}/.{name}"),
                        sidecar: None,
                        lifeline: None,
                    }));
                }
            }
        }
        for (source, destination) in target.binds.iter().filter(|_| allowed("mount")) {
            let dir = Path::new(source).join(format!(".{name}"));
            if Path::new(source).is_dir() && make_dir(&dir, &fifos).is_ok() {
                return Ok(Some(FifoRoute {
                    engine: self.clone(),
                    kind: FifoKind::Mount,
                    container: container.to_owned(),
                    host_dir: dir,
                    container_dir: format!("{}/.{name}", destination.trim_end_matches('/')),
                    sidecar: None,
                    lifeline: None,
                }));
            }
        }
        if !sidecar || !allowed("sidecar") {
            return Ok(None);
        }
        self.sidecar_route(&target, &name, owner, fifos)
            .await
            .map(Some)
    }

    async fn sidecar_route(
        &self,
        target: &Target,
        name: &str,
        owner: &str,
        mut fifos: Vec<&str>,
    ) -> Result<FifoRoute, DockerError> {
        let host_dir = std::env::temp_dir().join(name);
        fifos.push(LIFELINE);
        make_dir(&host_dir, &fifos).map_err(io_err(format!(
            "cannot make the fifo directory `{}`",
            host_dir.display()
        )))?;
        // Read and write: opening does not wait for the sidecar, and rb never writes to it.
        let lifeline = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(host_dir.join(LIFELINE))
            .map_err(io_err("cannot open the sidecar's lifeline".into()))?;
        let mut route = FifoRoute {
            engine: self.clone(),
            kind: FifoKind::Sidecar,
            container: String::new(),
            host_dir,
            container_dir: SIDECAR_DIR.to_owned(),
            sidecar: None,
            lifeline: Some(lifeline),
        };
        // A sidecar an earlier attempt left behind (the engine may have been down when rb
        // died, so the lifeline could not end it).
        remove_container(self, name).await;
        let body = ContainerCreateBody {
            image: Some(target.image.clone()),
            env: Some(target.env.clone()),
            entrypoint: Some(vec![
                "sh".into(),
                "-c".into(),
                format!("read -r _ <'{SIDECAR_DIR}/{LIFELINE}'; exit 0"),
            ]),
            cmd: Some(Vec::new()),
            labels: Some([(OWNER_LABEL.to_owned(), owner.to_owned())].into()),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{}:{SIDECAR_DIR}", route.host_dir.display())]),
                network_mode: Some(format!("container:{}", target.id)),
                volumes_from: Some(vec![target.id.clone()]),
                auto_remove: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let what = format!("to create the fifo sidecar of container `{}`", target.id);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_owned()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| self.err(Subject::Engine, &what, e))?;
        route.sidecar = Some(created.id.clone());
        route.container.clone_from(&created.id);
        self.docker
            .start_container(&created.id, None)
            .await
            .map_err(|e| self.err(Subject::Engine, &what, e))?;
        Ok(route)
    }

    /// Removes the sidecars an earlier attempt of step `owner` (`RUN_ID/STEP`) left.
    pub async fn remove_fifo_leftovers(&self, owner: &str) -> Result<usize, DockerError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some([("label".to_owned(), vec![format!("{OWNER_LABEL}={owner}")])].into()),
            ..Default::default()
        };
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.err(Subject::Engine, "to list fifo sidecars", e))?;
        let mut removed = 0;
        for c in found {
            if let Some(id) = c.id {
                remove_container(self, &id).await;
                removed += 1;
            }
        }
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(slug(owner)));
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn wrapped_commands_take_the_fifo_paths_as_arguments() {
        let route = super::FifoRoute {
            engine: crate::docker::Engine::connect(Some("tcp://127.0.0.1:1"), None).unwrap(),
            kind: super::FifoKind::Mount,
            container: "db".into(),
            host_dir: std::path::PathBuf::from("/nonexistent/rb-fifo-test"),
            container_dir: "/it's here".into(),
            sidecar: None,
            lifeline: None,
        };
        let argv = ["pg_dump".to_owned(), "-Fc".to_owned()];
        assert_eq!(
            route.wrap(&argv, true, true),
            [
                "sh",
                "-c",
                r#"i=$1 o=$2; shift 2; exec "$@" <"$i" >"$o""#,
                "rb-fifo",
                "/it's here/stdin",
                "/it's here/stdout",
                "pg_dump",
                "-Fc"
            ]
        );
        assert_eq!(route.wrap(&argv, false, true)[4], "/it's here/stdout");
    }

    #[test]
    fn slugs_are_container_names() {
        assert_eq!(
            slug("20261201T1810-ab12/dump"),
            "rb-fifo-20261201T1810-ab12-dump"
        );
        assert_eq!(slug("r/sub.step x"), "rb-fifo-r-sub.step-x");
    }
}
