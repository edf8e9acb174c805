//! Running a command in a container: streamed stdin/stdout/stderr, never a TTY, and
//! cancellation that really stops the process (see [`super::reap`]).

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use super::error::{DockerError, Subject};
use super::reap::{ExecGuard, MARKER_VAR, OWNER_VAR, new_token};
use super::stream::TailBuffer;

/// How much of a captured stdout or stderr rb keeps, the last bytes: [`Engine::exec_capture`]
/// and a process step's `capture`.
pub const CAPTURE_LIMIT: usize = 1024 * 1024;

/// A command to run in a running container, as an argument vector (no shell).
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    /// The container name or id.
    pub container: String,
    /// The command and its arguments; `argv[0]` is looked up on the container's `PATH`.
    pub argv: Vec<String>,
    /// `user`, `user:group`, `uid` or `uid:gid`; the container's user when `None`.
    pub user: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// The working directory inside the container; the container's when `None`.
    pub workdir: Option<String>,
    /// Stop the command and fail with [`DockerError::Timeout`] after this long.
    pub timeout: Option<Duration>,
    /// Stop the command and fail with [`DockerError::Cancelled`] when this fires.
    pub cancel: Option<CancellationToken>,
    /// Who started it (`RUN_ID/STEP`), carried in its environment as `RB_EXEC_OWNER` so
    /// that a resumed run can stop what a killed rb left running
    /// ([`Engine::stop_leftovers`]).
    pub owner: Option<String>,
}

impl ExecSpec {
    /// A spec for `argv` in `container`, with every other field at its default.
    pub fn new<S: Into<String>>(
        container: impl Into<String>,
        argv: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            container: container.into(),
            argv: argv.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// `argv[0]`, for messages.
    pub fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecResult {
    /// Its exit code (126/127 when it could not be started).
    pub exit_code: i64,
}

/// A command's exit code and the (last [`CAPTURE_LIMIT`] bytes of its) output.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    /// Its exit code.
    pub exit_code: i64,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl ExecOutput {
    /// `Ok(self)` when the exit code is 0, else [`DockerError::ExitStatus`] with the stderr tail.
    pub fn success(self, spec: &ExecSpec) -> Result<Self, DockerError> {
        if self.exit_code == 0 {
            Ok(self)
        } else {
            Err(exit_error(spec, self.exit_code, &self.stderr))
        }
    }
}

/// A [`DockerError::ExitStatus`] for `spec` ending with `code`, keeping the last 4 KiB of
/// `stderr`: what a caller reports when a command's exit code is not among its `ok_codes`.
pub fn exit_error(spec: &ExecSpec, code: i64, stderr: &str) -> DockerError {
    let mut tail = TailBuffer::new(4096);
    tail.push(stderr.as_bytes());
    DockerError::ExitStatus {
        container: spec.container.clone(),
        program: spec.program().to_owned(),
        code,
        stderr_tail: tail.text(),
    }
}

impl Engine {
    /// Runs `spec` and streams: `stdin` (when given) into the command, then closes it so the
    /// command sees end of file; the command's stdout and stderr into the two writers, frame
    /// by frame, so memory stays bounded and a slow writer slows the command down.
    ///
    /// Never allocates a TTY. Returns the exit code whatever it is; the caller decides which
    /// codes are failures ([`exit_error`]). When the returned future is dropped, or the
    /// spec's `timeout` passes or `cancel` fires, the command and every process it started
    /// in the container are stopped.
    pub async fn exec<I, O, E>(
        &self,
        spec: &ExecSpec,
        stdin: Option<I>,
        mut stdout: O,
        mut stderr: E,
    ) -> Result<ExecResult, DockerError>
    where
        I: AsyncRead + Unpin + Send,
        O: AsyncWrite + Unpin + Send,
        E: AsyncWrite + Unpin + Send,
    {
        let what = format!(
            "to run `{}` in container `{}`",
            spec.program(),
            spec.container
        );
        if spec.argv.is_empty() {
            return Err(DockerError::Api {
                what,
                message: "the command is empty".into(),
                endpoint: self.endpoint().to_owned(),
            });
        }
        let token = new_token();
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("{MARKER_VAR}={token}"));
        if let Some(owner) = &spec.owner {
            env.push(format!("{OWNER_VAR}={owner}"));
        }
        let options = CreateExecOptions {
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            env: Some(env),
            cmd: Some(spec.argv.clone()),
            user: spec.user.clone(),
            working_dir: spec.workdir.clone(),
            ..CreateExecOptions::default()
        };
        let subject = Subject::Container(&spec.container);
        let created = self
            .docker
            .create_exec(&spec.container, options)
            .await
            .map_err(|e| self.err(subject, &what, e))?;
        // Armed from here on: if this future is dropped, the guard stops the process.
        let mut guard = ExecGuard::new(
            self.clone(),
            &spec.container,
            &created.id,
            token,
            spec.user.clone(),
            spec.owner.clone(),
        );

        let pump = async {
            let started = self
                .docker
                .start_exec(
                    &created.id,
                    Some(StartExecOptions {
                        detach: false,
                        tty: false,
                        output_capacity: Some(64 * 1024),
                    }),
                )
                .await
                .map_err(|e| self.err(subject, &what, e))?;
            let StartExecResults::Attached { output, mut input } = started else {
                unreachable!("an exec started without `detach` is attached");
            };
            let feed = async {
                if let Some(mut reader) = stdin {
                    feed_stdin(&mut reader, &mut input, spec).await?;
                }
                Ok::<_, DockerError>(())
            };
            let drain = drain_output(output, &mut stdout, &mut stderr, spec, &what, self);
            tokio::pin!(feed, drain);
            let mut stdin_done = false;
            loop {
                tokio::select! {
                    r = &mut feed, if !stdin_done => { r?; stdin_done = true; }
                    // Output ends when the process has exited; stdin no longer matters then.
                    r = &mut drain => break r,
                }
            }
        };
        let ended = tokio::select! {
            r = pump => r,
            () = cancelled(spec.cancel.as_ref()) => Err(DockerError::Cancelled {
                what: format!("`{}` in container `{}`", spec.program(), spec.container),
                endpoint: self.endpoint().to_owned(),
            }),
            () = deadline(spec.timeout) => Err(self.timeout(
                format!("running `{}` in container `{}`", spec.program(), spec.container),
                spec.timeout.unwrap_or_default(),
            )),
        };
        if let Err(e) = ended {
            guard.stop_now().await?;
            return Err(e);
        }
        let exit_code = guard.exit_code().await?;
        guard.disarm();
        Ok(ExecResult { exit_code })
    }

    /// Runs `spec` without stdin and returns its exit code and output (the last
    /// [`CAPTURE_LIMIT`] bytes of each stream).
    pub async fn exec_capture(&self, spec: &ExecSpec) -> Result<ExecOutput, DockerError> {
        let mut out = TailBuffer::new(CAPTURE_LIMIT);
        let mut err = TailBuffer::new(CAPTURE_LIMIT);
        let r = self
            .exec(spec, None::<tokio::io::Empty>, &mut out, &mut err)
            .await?;
        Ok(ExecOutput {
            exit_code: r.exit_code,
            stdout: out.text(),
            stderr: err.text(),
        })
    }
}

async fn feed_stdin<I, W>(reader: &mut I, input: &mut W, spec: &ExecSpec) -> Result<(), DockerError>
where
    I: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::io::AsyncReadExt::read(reader, &mut buf)
            .await
            .map_err(|source| DockerError::Stream {
                what: format!("cannot read the input for `{}`", spec.program()),
                source,
            })?;
        if n == 0 {
            break;
        }
        // A write error means the command closed its stdin or exited: its exit code tells.
        if input.write_all(&buf[..n]).await.is_err() {
            return Ok(());
        }
    }
    // Half-close: the engine closes the command's stdin, which then reads end of file.
    let _ = input.shutdown().await;
    Ok(())
}

async fn drain_output<S, O, E>(
    mut output: S,
    stdout: &mut O,
    stderr: &mut E,
    spec: &ExecSpec,
    what: &str,
    engine: &Engine,
) -> Result<(), DockerError>
where
    S: futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let write_err = |stream: &str, source| DockerError::Stream {
        what: format!("cannot write the {stream} of `{}`", spec.program()),
        source,
    };
    while let Some(frame) = output.next().await {
        match frame.map_err(|e| engine.err(Subject::Container(&spec.container), what, e))? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout
                    .write_all(&message)
                    .await
                    .map_err(|e| write_err("stdout", e))?;
            }
            LogOutput::StdErr { message } => {
                stderr
                    .write_all(&message)
                    .await
                    .map_err(|e| write_err("stderr", e))?;
            }
            LogOutput::StdIn { .. } => {}
        }
    }
    stdout.flush().await.map_err(|e| write_err("stdout", e))?;
    stderr.flush().await.map_err(|e| write_err("stderr", e))?;
    Ok(())
}

async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

async fn deadline(timeout: Option<Duration>) {
    match timeout {
        Some(t) => tokio::time::sleep(t).await,
        None => std::future::pending().await,
    }
}
