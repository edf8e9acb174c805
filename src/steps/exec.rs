//! `exec` (a process on this machine) and `container.exec` (a process in a container).

use super::{ConfigProblem, PROCESS_OUTPUTS, Step, StepType, Touches, plain, process};
use crate::steps::cx::{StepCx, StepError, StepResult};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

/// Run a program on this machine.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program and its arguments (argv). Never passed through a shell.
    pub command: Option<Vec<String>>,
    /// A shell line, run with `sh -c`: the explicit opt-in for pipes and globbing.
    pub shell: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// What the program reads on standard input (default: nothing).
    pub stdin: Option<Stdin>,
    /// Where standard output goes: `capture` (default) or a file.
    #[serde(default)]
    pub stdout: Output,
    /// Where standard error goes: `capture` (default) or a file.
    #[serde(default)]
    pub stderr: Output,
    /// Exit codes that count as success (default `[0]`).
    #[serde(default = "default_ok_codes")]
    pub ok_codes: Vec<i64>,
}

/// Run a program inside a container through the Docker Engine API (never with a TTY).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerExecConfig {
    /// The container's name or id.
    pub container: String,
    /// Engine to use, a key of the runbook's `hosts` (default: `DOCKER_HOST`).
    pub host: Option<String>,
    /// User to run as inside the container (`postgres`, `1000:1000`).
    pub user: Option<String>,
    /// Working directory inside the container.
    pub workdir: Option<String>,
    /// The program and its arguments (argv). Never passed through a shell.
    pub command: Option<Vec<String>>,
    /// A shell line, run with `sh -c` inside the container.
    pub shell: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// What the program reads on standard input (default: nothing).
    pub stdin: Option<Stdin>,
    /// Where standard output goes: `capture` (default) or a file on this machine.
    #[serde(default)]
    pub stdout: Output,
    /// Where standard error goes: `capture` (default) or a file on this machine.
    #[serde(default)]
    pub stderr: Output,
    /// Exit codes that count as success (default `[0]`).
    #[serde(default = "default_ok_codes")]
    pub ok_codes: Vec<i64>,
    /// How stdin and stdout travel: `auto` (default: `fifo` when the engine is local and a
    /// file is streamed), `engine` (the Engine API stream) or `fifo` (a FIFO in a host
    /// directory the container sees: its own bind mount or a sidecar; local engines only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<super::transport::Transport>,
}

fn default_ok_codes() -> Vec<i64> {
    vec![0]
}

/// Standard input: `{file: PATH, decompress: true}` or `{text: "..."}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stdin {
    /// Stream this file.
    pub file: Option<String>,
    /// Decompress the file on the fly, by its extension (`.gz`, `.zst`).
    #[serde(default)]
    pub decompress: bool,
    /// This text.
    pub text: Option<String>,
    /// Stream this object (`STORE:KEY`), checked against its manifest; with `decompress`,
    /// decompressed as the manifest says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Decrypt the object or file (age) with an identity from a secret; a file's compression
    /// is then read from the extension before `.age` (`db.dump.zst.age`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decrypt: Option<super::object::Decrypt>,
}

/// Standard output or error: `capture` (kept in the step's outputs, capped at 1 MiB) or a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Output {
    #[default]
    Capture,
    File(OutputFile),
    /// Uploaded to an object store (`{object: STORE:KEY, compress, encrypt}`).
    Object(crate::steps::store::stream::OutputObject),
}

/// A stream written to a file, published atomically when the step succeeds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputFile {
    /// Final path of the file.
    pub file: String,
    /// Compress while writing.
    pub compress: Option<Compression>,
    /// Compression level (gzip 1–9, zstd 1–19).
    pub level: Option<i32>,
    /// Hash while writing; the digest is the step's `sha256` output.
    pub checksum: Option<ChecksumAlgo>,
    /// Encrypt with age to these recipients (after compressing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<super::object::Encrypt>,
}

/// A compression format (`gzip`, `zstd`): the io module's, so no conversion is needed.
pub use crate::io::compress::Format as Compression;

/// A checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgo {
    Sha256,
}

impl<'de> Deserialize<'de> for Output {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Output;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`capture` or {file, compress, checksum}")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Output, E> {
                match s {
                    "capture" => Ok(Output::Capture),
                    other => Err(E::custom(format_args!(
                        "expected `capture` or a mapping with `file`, found \"{other}\""
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Output, A::Error> {
                crate::steps::store::stream::decode_output(map)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Output {
    fn schema_name() -> Cow<'static, str> {
        "Output".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let file = g.subschema_for::<OutputFile>();
        let object = g.subschema_for::<crate::steps::store::stream::OutputObject>();
        json_schema!({
            "description": "`capture` (default; kept as an output, capped at 1 MiB), a file, or an object in a store.",
            "anyOf": [{"const": "capture"}, file, object]
        })
    }
}

/// Checks shared by both exec types.
fn process_problems(
    command: Option<&Vec<String>>,
    shell: Option<&String>,
    stdin: Option<&Stdin>,
) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    match (command, shell) {
        (None, None) => out.push(ConfigProblem::new(
            "",
            "needs `command` (an argv list) or `shell`",
        )),
        (Some(_), Some(_)) => out.push(ConfigProblem::new(
            "shell",
            "give `command` or `shell`, not both",
        )),
        (Some(c), None) if c.is_empty() => {
            out.push(ConfigProblem::new("command", "`command` is empty"));
        }
        _ => {}
    }
    if let Some(s) = stdin {
        let given = [s.file.is_some(), s.text.is_some(), s.object.is_some()];
        match (&s.file, &s.text) {
            _ if given.iter().filter(|g| **g).count() > 1 => out.push(ConfigProblem::new(
                "stdin",
                "`stdin` takes one of `file`, `text` or `object`",
            )),
            _ if s.object.is_some() => {}
            (None, None) => out.push(ConfigProblem::new(
                "stdin",
                "`stdin` needs `file`, `text` or `object`",
            )),
            (None, Some(_)) if s.decrypt.is_some() => {
                out.push(ConfigProblem::new(
                    "stdin.decrypt",
                    "`decrypt` applies to `file` and `object` only",
                ));
            }
            (None, Some(_)) if s.decompress => {
                out.push(ConfigProblem::new(
                    "stdin.decompress",
                    "`decompress` applies to `file` only",
                ));
            }
            _ => {}
        }
    }
    out
}

impl Step for ExecConfig {
    const TYPE: StepType = plain(PROCESS_OUTPUTS);

    fn touches(&self) -> Touches {
        Touches {
            writes: output_files(&self.stdout, &self.stderr),
            stores: stream_stores(self.stdin.as_ref(), &self.stdout),
            ..Touches::default()
        }
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        process_problems(
            self.command.as_ref(),
            self.shell.as_ref(),
            self.stdin.as_ref(),
        )
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run(self, cx).await
    }
}

impl Step for ContainerExecConfig {
    const TYPE: StepType = plain(super::CONTAINER_PROCESS_OUTPUTS);

    fn touches(&self) -> Touches {
        Touches {
            engine: true,
            host: self.host.clone(),
            containers: vec![self.container.clone()],
            writes: output_files(&self.stdout, &self.stderr),
            stores: stream_stores(self.stdin.as_ref(), &self.stdout),
            ..Touches::default()
        }
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        process_problems(
            self.command.as_ref(),
            self.shell.as_ref(),
            self.stdin.as_ref(),
        )
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_in_container(self, cx).await
    }
}

/// The files standard output and error go to.
fn output_files(stdout: &Output, stderr: &Output) -> Vec<String> {
    [stdout, stderr]
        .into_iter()
        .filter_map(|o| match o {
            Output::File(f) => Some(f.file.clone()),
            Output::Capture | Output::Object(_) => None,
        })
        .collect()
}

/// The stores standard input and output stream from and to.
fn stream_stores(stdin: Option<&Stdin>, stdout: &Output) -> Vec<String> {
    let input = stdin.and_then(|s| s.object.as_deref());
    let output = match stdout {
        Output::Object(o) => Some(o.object.as_str()),
        _ => None,
    };
    input
        .into_iter()
        .chain(output)
        .filter_map(|a| crate::steps::store::Address::parse(a).ok())
        .map(|a| a.store)
        .collect()
}

/// Run a process on this machine.
pub async fn run(cfg: &ExecConfig, cx: &StepCx) -> StepResult {
    let argv = process::argv(cfg.command.as_ref(), cfg.shell.as_ref());
    let program = argv.first().cloned().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&argv[1..])
        .envs(&cfg.env)
        .stdin(if cfg.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout or Ctrl-C kills the whole tree.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &cfg.cwd {
        let dir = cx.path(dir);
        if !dir.is_dir() {
            return Err(StepError::failed(cx.masker.mask(&format!(
                "the working directory `{}` (`cwd`) does not exist or is not a directory",
                dir.display()
            ))));
        }
        cmd.current_dir(dir);
    } else {
        cmd.current_dir(&cx.base_dir);
    }
    // Spawned and registered under the lock `kill_running_groups` takes: a second Ctrl-C
    // that arrives meanwhile waits for the registration instead of missing the new group.
    let (mut child, group) = {
        let mut running = RUNNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let child = cmd.spawn().map_err(|e| {
            StepError::failed(cx.masker.mask(&format!("cannot start `{program}`: {e}")))
        })?;
        let group = GroupGuard::registered(child.id(), &mut running);
        (child, group)
    };
    let feeder = match (&cfg.stdin, child.stdin.take()) {
        (Some(spec), Some(pipe)) => Some(process::Feeder::feed(spec, cx, pipe)),
        _ => None,
    };
    let mut out = process::Sink::new(&cfg.stdout, cx);
    let mut err = process::Sink::new(&cfg.stderr, cx);
    let mut child_out = child.stdout.take().expect("piped");
    let mut child_err = child.stderr.take().expect("piped");
    let pump = async {
        let (a, b) = tokio::join!(
            tokio::io::copy(&mut child_out, out.writer()),
            tokio::io::copy(&mut child_err, err.writer())
        );
        a.and(b)
    };
    let finished = tokio::select! {
        r = async { let p = pump.await; (p, child.wait().await) } => Some(r),
        () = cx.cancel.cancelled() => None,
    };
    let Some((pumped, waited)) = finished else {
        group.kill();
        let _ = child.wait().await;
        process::discard(out, err, cx).await;
        return Err(StepError::Cancelled);
    };
    group.disarm();
    let code = waited
        .map_err(|e| StepError::failed(format!("waiting for `{program}`: {e}")))?
        .code()
        .map_or(-1, i64::from);
    if let Err(e) = pumped {
        let writer = process::discard(out, err, cx).await;
        return Err(writer.unwrap_or_else(|| {
            StepError::failed(format!("reading the output of `{program}`: {e}"))
        }));
    }
    let fed = match feeder {
        Some(f) => f
            .await
            .map_err(|e| StepError::failed(format!("stdin: {e}")))?
            .map_err(StepError::Failed),
        None => Ok(0),
    };
    process::conclude(&program, code, &cfg.ok_codes, fed.map(|_| ()), out, err, cx).await
}

/// The process groups of the steps running now, for [`kill_running_groups`].
static RUNNING: std::sync::Mutex<BTreeSet<i32>> = std::sync::Mutex::new(BTreeSet::new());

/// Kill the process group of every step running now: rb is about to exit without waiting
/// for its steps (a second Ctrl-C), and must not leave what it started behind.
pub fn kill_running_groups() {
    let groups = RUNNING.lock().map(|g| g.clone()).unwrap_or_default();
    for pid in groups {
        killpg(pid);
    }
}

fn killpg(pid: i32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Kills a child's process group unless disarmed (the child ended by itself).
struct GroupGuard(Option<i32>);

impl GroupGuard {
    /// A guard for a child's group, entered in `running` (the [`RUNNING`] set, locked).
    fn registered(pid: Option<u32>, running: &mut BTreeSet<i32>) -> Self {
        let pid = pid.and_then(|p| i32::try_from(p).ok());
        if let Some(p) = pid {
            running.insert(p);
        }
        Self(pid)
    }

    fn kill(&self) {
        if let Some(pid) = self.0 {
            killpg(pid);
        }
    }

    fn disarm(mut self) {
        self.forget();
    }

    fn forget(&mut self) {
        if let (Some(p), Ok(mut running)) = (self.0.take(), RUNNING.lock()) {
            running.remove(&p);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
        self.forget();
    }
}

/// Run a process inside a container.
pub async fn run_in_container(cfg: &ContainerExecConfig, cx: &StepCx) -> StepResult {
    let engine = cx.engines.get(cfg.host.as_deref())?;
    let argv = process::argv(cfg.command.as_ref(), cfg.shell.as_ref());
    let program = argv.first().cloned().unwrap_or_default();
    let spec = crate::docker::ExecSpec {
        container: cfg.container.clone(),
        argv,
        user: cfg.user.clone(),
        env: cfg
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        workdir: cfg.workdir.clone(),
        timeout: None,
        cancel: Some(cx.cancel.clone()),
        owner: Some(format!("{}/{}", cx.run_id, cx.step_id)),
    };
    if cx.resumed
        && let Some(owner) = &spec.owner
    {
        // Best effort: an unreachable engine or a missing container is reported more
        // clearly by the exec itself, just below.
        let _ = engine
            .stop_leftovers(&spec.container, owner, spec.user.as_deref())
            .await;
    }
    if let Some(r) = super::transport::run_if_fifo(cfg, cx, &engine, &spec).await {
        return r;
    }
    let (stdin, feeder) = match &cfg.stdin {
        Some(s) => {
            let (pipe, feeder) = process::Feeder::start(s, cx);
            (Some(pipe), Some(feeder))
        }
        None => (None, None),
    };
    let mut out = process::Sink::new(&cfg.stdout, cx);
    let mut err = process::Sink::new(&cfg.stderr, cx);
    let result = engine.exec(&spec, stdin, out.writer(), err.writer()).await;
    let fed = match feeder {
        Some(f) => f.finish().await.map(|_| ()),
        None => Ok(()),
    };
    let code = match result {
        Ok(r) => r.exit_code,
        Err(e) => {
            let writer = process::discard(out, err, cx).await;
            return Err(writer.unwrap_or_else(|| StepError::from(e).masked(&cx.masker)));
        }
    };
    let mut outputs = process::conclude(&program, code, &cfg.ok_codes, fed, out, err, cx).await?;
    outputs.insert("transport".into(), "engine".into());
    Ok(outputs)
}
