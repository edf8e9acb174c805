//! How a `container.exec` step's streams travel: through the Engine API (`engine`), or
//! through a FIFO in a bind-mounted host directory (`fifo`, see `docker::fifo`), which skips
//! dockerd and the shim. The rest of the pipeline (capture, compression, hashing, atomic
//! publish) gets the same `AsyncWrite`/`AsyncRead` either way.

use super::cx::{StepCx, StepError, StepResult};
use super::exec::{ContainerExecConfig, Output};
use super::process::{self, Feeder, Sink};
use crate::docker::{DockerError, Engine, ExecResult, ExecSpec, FifoKind, FifoRoute};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, BufReader, DuplexStream};

/// Read size from the stdout FIFO (the pipe holds up to 1 MiB).
const READ_BUF: usize = 1024 * 1024;

/// The data path of a `container.exec` step's standard input and output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `fifo` when the engine is local and the step streams a file, else `engine`.
    #[default]
    Auto,
    /// The Engine API's exec stream (works with any engine).
    Engine,
    /// A FIFO in a host directory the container sees: the target's own writable bind mount,
    /// or a sidecar from the target's image sharing its network namespace. Local engines only.
    Fifo,
}

/// A step's transport: its own, else `RB_TRANSPORT` (`engine`, `fifo` or `auto`: how an
/// operator turns the FIFO path off, or on, for a whole run), else `auto`.
fn chosen(cfg: &ContainerExecConfig) -> Transport {
    cfg.transport.unwrap_or_else(
        || match std::env::var("RB_TRANSPORT").as_deref().map(str::trim) {
            Ok("engine") => Transport::Engine,
            Ok("fifo") => Transport::Fifo,
            _ => Transport::Auto,
        },
    )
}

/// Whether the step moves a file's worth of data (`stdout: {file}` or `{object}`, `stdin:
/// {file}` or `{object}`).
pub fn streams_a_file(cfg: &ContainerExecConfig) -> bool {
    matches!(cfg.stdout, Output::File(_) | Output::Object(_))
        || cfg
            .stdin
            .as_ref()
            .is_some_and(|s| s.file.is_some() || s.object.is_some())
}

/// What `auto` becomes, and why, for an engine at `endpoint` (for `rb plan`, which may not
/// ask the engine anything).
pub fn planned(cfg: &ContainerExecConfig, endpoint: &str) -> Option<String> {
    let local = endpoint.starts_with("unix://");
    match chosen(cfg) {
        Transport::Engine => Some("engine".into()),
        Transport::Fifo => Some("fifo".into()),
        Transport::Auto if !streams_a_file(cfg) => None,
        Transport::Auto if local => Some("auto (local engine: fifo, else engine)".into()),
        Transport::Auto => Some(format!("auto (engine: `{endpoint}` is not local)")),
    }
}

/// A `container.exec` step's planned config with its `transport` as it will be chosen
/// (`auto` resolved by the engine's endpoint: the runbook's `hosts`, else `DOCKER_HOST`);
/// other steps' unchanged.
pub fn annotate(
    mut config: serde_json::Value,
    kind: &super::StepKind,
    hosts: &std::collections::BTreeMap<String, crate::docker::HostSpec>,
) -> serde_json::Value {
    let super::StepKind::ContainerExec(cfg) = kind else {
        return config;
    };
    let endpoint = match &cfg.host {
        Some(h) => hosts.get(h).map(|s| s.docker.clone()).unwrap_or_default(),
        None => std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| crate::docker::DEFAULT_ENDPOINT.to_owned()),
    };
    if let (Some(text), serde_json::Value::Object(map)) = (planned(cfg, &endpoint), &mut config) {
        map.insert("transport".into(), text.into());
    }
    config
}

/// Whether this attempt may use a FIFO, and whether a sidecar may carry it.
fn fifo_mode(cfg: &ContainerExecConfig, engine: &Engine) -> Result<Option<bool>, StepError> {
    match chosen(cfg) {
        Transport::Engine => Ok(None),
        Transport::Fifo if !engine.is_local() => Err(StepError::failed(format!(
            "`transport: fifo` needs a local engine (`unix://`), not `{}`",
            engine.endpoint()
        ))),
        Transport::Fifo => Ok(Some(true)),
        // No sidecar unasked: the command would not see the container's unix sockets and
        // files, and a runbook that works must keep working.
        Transport::Auto => Ok((engine.is_local()
            && streams_a_file(cfg)
            && crate::docker::host_paths_shared())
        .then_some(false)),
    }
}

/// The hook of `container.exec`: removes what a killed earlier attempt left, and runs the
/// step through a FIFO when that applies (`None`: use the Engine API stream).
pub async fn run_if_fifo(
    cfg: &ContainerExecConfig,
    cx: &StepCx,
    engine: &Engine,
    spec: &ExecSpec,
) -> Option<StepResult> {
    let owner = spec.owner.clone().unwrap_or_default();
    if cx.resumed && engine.is_local() {
        // Best effort, as for the target's leftovers.
        let _ = engine.remove_fifo_leftovers(&owner).await;
    }
    let sidecar = match fifo_mode(cfg, engine) {
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
        Ok(Some(sidecar)) => sidecar,
    };
    let route = engine
        .fifo_route(&spec.container, &owner, cfg.stdin.is_some(), sidecar)
        .await;
    match route {
        Ok(Some(route)) => Some(run_fifo(cfg, cx, engine, spec, route).await),
        Ok(None) if !sidecar => None,
        Ok(None) => Some(Err(StepError::failed(format!(
            "`transport: fifo`: no route to container `{}` (`RB_FIFO_ROUTES` allows none \
             that applies)",
            spec.container
        )))),
        // `auto` leaves the reporting of an engine or container problem to the exec.
        Err(_) if !sidecar => None,
        Err(e) => Some(Err(StepError::from(e).masked(&cx.masker))),
    }
}

async fn run_fifo(
    cfg: &ContainerExecConfig,
    cx: &StepCx,
    engine: &Engine,
    spec: &ExecSpec,
    route: FifoRoute,
) -> StepResult {
    let program = spec.program().to_owned();
    let mut fifo_spec = spec.clone();
    fifo_spec.container = route.container().to_owned();
    fifo_spec.argv = route.wrap(&spec.argv, cfg.stdin.is_some(), true);
    let (stdin, feeder) = match &cfg.stdin {
        Some(s) => {
            let (pipe, feeder) = Feeder::start(s, cx);
            (Some(pipe), Some(feeder))
        }
        None => (None, None),
    };
    let mut out = Sink::new(&cfg.stdout, cx);
    let mut err = Sink::new(&cfg.stderr, cx);
    let pumped = pump(engine, &fifo_spec, &route, stdin, &mut out, &mut err).await;
    let kind = route.kind();
    route.close().await;
    let fed = match feeder {
        Some(f) => f.finish().await.map(|_| ()),
        None => Ok(()),
    };
    let code = match pumped {
        Ok(r) => r.exit_code,
        Err(e) => {
            let writer = process::discard(out, err, cx).await;
            return Err(writer.unwrap_or_else(|| e.masked(&cx.masker)));
        }
    };
    let concluded = process::conclude(&program, code, &cfg.ok_codes, fed, out, err, cx).await;
    let mut outputs = concluded.map_err(|e| sidecar_hint(e, kind, &spec.container))?;
    outputs.insert("transport".into(), "fifo".into());
    outputs.insert("fifo".into(), kind.as_str().into());
    Ok(outputs)
}

/// A failure in a sidecar says what the sidecar does not share with the target: the most
/// likely cause of a command that works in the container and fails here.
fn sidecar_hint(e: StepError, kind: FifoKind, container: &str) -> StepError {
    match e {
        StepError::Failed(m) if kind == FifoKind::Sidecar => StepError::Failed(format!(
            "{m}\n(transport `fifo`: run in a sidecar that shares the network, image, \
             environment and volumes of container `{container}`, not its unix sockets or other \
             files; `transport: engine` runs the command in the container itself)"
        )),
        other => other,
    }
}

/// Runs the exec while copying the stdout FIFO into `out` and `stdin` into the stdin FIFO.
async fn pump(
    engine: &Engine,
    spec: &ExecSpec,
    route: &FifoRoute,
    stdin: Option<DuplexStream>,
    out: &mut Sink,
    err: &mut Sink,
) -> Result<ExecResult, StepError> {
    let fifo_err = |e: std::io::Error| StepError::failed(format!("the stdout fifo: {e}"));
    let (rx, hold) = route.open_stdout().map_err(fifo_err)?;
    let mut hold = Some(hold);
    let exec = engine.exec(
        spec,
        None::<tokio::io::Empty>,
        tokio::io::sink(),
        err.writer(),
    );
    let writer = out.writer();
    let copy = async move {
        let mut rx = BufReader::with_capacity(READ_BUF, rx);
        let r = tokio::io::copy_buf(&mut rx, writer).await;
        // Dropping the read end here, on failure too: a process still writing gets EPIPE
        // instead of blocking on a reader that went away.
        drop(rx);
        r
    };
    let feed = async {
        let Some(src) = stdin else {
            return;
        };
        if let Ok(mut tx) = route.open_stdin().await {
            // Writes of up to a pipe's worth: one wake-up of the process per MiB, not per
            // 8 KiB (what `copy` would use).
            let mut src = BufReader::with_capacity(READ_BUF, src);
            // A process that stops reading early closes its end: not our error (its exit
            // code tells), as on the Engine API path.
            if tokio::io::copy_buf(&mut src, &mut tx).await.is_ok() {
                let _ = tx.shutdown().await;
            }
        }
    };
    tokio::pin!(exec, copy, feed);
    let (mut exec_r, mut copy_r, mut stdin_done) = (None, None, false);
    while exec_r.is_none() || copy_r.is_none() {
        tokio::select! {
            r = &mut exec, if exec_r.is_none() => {
                exec_r = Some(r);
                // The process has ended: what it wrote is in the pipe, then end of file.
                hold = None;
            }
            r = &mut copy, if copy_r.is_none() => copy_r = Some(r),
            () = &mut feed, if !stdin_done => stdin_done = true,
        }
    }
    drop(hold);
    let exec_r: Result<ExecResult, DockerError> = exec_r.expect("loop ends with it");
    let r = exec_r.map_err(StepError::from)?;
    copy_r.expect("loop ends with it").map_err(|e| {
        StepError::failed(format!("reading the output of `{}`: {e}", spec.program()))
    })?;
    Ok(r)
}
