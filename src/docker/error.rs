//! The errors of the Docker layer, and their mapping from bollard's.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// A failure talking to a Docker Engine, or of an operation on one of its objects.
///
/// Every variant names the engine by its endpoint (`unix:///var/run/docker.sock`,
/// `tcp://127.0.0.1:2376`), so a runbook that spans several hosts says which one failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine could not be reached: no socket, connection refused, TLS handshake failed.
    #[error("docker engine `{endpoint}` is unreachable: {reason}")]
    Unreachable {
        /// The endpoint as written (`unix://…`, `tcp://…`, `ssh://…`).
        endpoint: String,
        /// The innermost cause, as the operating system or TLS library put it.
        reason: String,
    },
    /// The socket exists but this user may not use it (`EACCES`).
    #[error(
        "permission denied on docker engine `{endpoint}`: {reason} (is this user in the `docker` group?)"
    )]
    PermissionDenied {
        /// The endpoint as written.
        endpoint: String,
        /// The innermost cause.
        reason: String,
    },
    /// The endpoint string or its TLS files cannot be used.
    #[error("cannot use docker endpoint `{endpoint}`: {reason}")]
    BadEndpoint {
        /// The endpoint as written.
        endpoint: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// No container of that name or id.
    #[error("container `{container}` not found on engine `{endpoint}`")]
    ContainerNotFound {
        /// The name or id asked for.
        container: String,
        /// The endpoint as written.
        endpoint: String,
    },
    /// The image is not present on the engine (and was not to be pulled: `pull: never`).
    #[error(
        "image `{image}` not found on engine `{endpoint}` (`pull: never`: load or build it there first)"
    )]
    ImageMissing {
        /// The image reference asked for.
        image: String,
        /// The endpoint as written.
        endpoint: String,
    },
    /// A network named by a container does not exist.
    #[error("network `{network}` not found on engine `{endpoint}`")]
    NetworkNotFound {
        /// The network name.
        network: String,
        /// The endpoint as written.
        endpoint: String,
    },
    /// A path inside a container does not exist.
    #[error("path `{path}` not found in container `{container}` on engine `{endpoint}`")]
    PathNotFound {
        /// The container name.
        container: String,
        /// The path inside it.
        path: String,
        /// The endpoint as written.
        endpoint: String,
    },
    /// A container of that name already exists (and `replace` was not asked for).
    #[error(
        "container name `{name}` is already in use on engine `{endpoint}` (use `replace: true` to replace it)"
    )]
    NameConflict {
        /// The container name.
        name: String,
        /// The endpoint as written.
        endpoint: String,
    },
    /// The container stopped while rb was waiting for it to run or become healthy.
    #[error(
        "container `{container}` exited with code {exit_code} on engine `{endpoint}`; last log lines:\n{logs}"
    )]
    ContainerExited {
        /// The container name.
        container: String,
        /// Its exit code.
        exit_code: i64,
        /// The tail of its logs.
        logs: String,
        /// The endpoint as written.
        endpoint: String,
    },
    /// A command run in a container exited with a code the caller does not accept.
    #[error("{}", exit_message(program, Some(container), *code, stderr_tail))]
    ExitStatus {
        /// The container name.
        container: String,
        /// The command's `argv[0]`.
        program: String,
        /// Its exit code.
        code: i64,
        /// The last bytes of its standard error, lossily decoded.
        stderr_tail: String,
    },
    /// Something did not happen before its deadline.
    #[error("timed out after {}s {what} on engine `{endpoint}`", after.as_secs_f64())]
    Timeout {
        /// What was being waited for, as a fragment: "waiting for container `db` to stop".
        what: String,
        /// The deadline that passed.
        after: Duration,
        /// The endpoint as written.
        endpoint: String,
    },
    /// The operation was cancelled; any process it started in a container was stopped.
    #[error("cancelled {what} on engine `{endpoint}`")]
    Cancelled {
        /// What was cancelled, as a fragment.
        what: String,
        /// The endpoint as written.
        endpoint: String,
    },
    /// An archive entry would land outside the destination.
    #[error("archive entry `{entry}` would escape `{}`: refused", dest.display())]
    UnsafeEntry {
        /// The entry's path as stored in the archive.
        entry: String,
        /// The destination directory on the host.
        dest: PathBuf,
    },
    /// Reading or writing a host file failed.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done: "create", "read", "rename to", ….
        action: &'static str,
        /// The host path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Reading the input of a command, or writing its output, failed on the host side.
    #[error("{what}: {source}")]
    Stream {
        /// What was being done, as a fragment: "cannot write the stdout of `pg_dump`".
        what: String,
        /// The cause.
        source: io::Error,
    },
    /// Any other answer of the engine.
    /// Pulling an image failed: `reason` says whether the registry does not have it, does
    /// not answer, or refused the credentials; `message` is the engine's.
    #[error(
        "cannot pull image `{image}` from registry `{registry}` on engine `{endpoint}`: {reason} ({message})"
    )]
    PullFailed {
        /// The image reference asked for.
        image: String,
        /// `host[:port]` of its registry.
        registry: String,
        /// Why, in rb's words.
        reason: String,
        /// The engine's message.
        message: String,
        /// The endpoint as written.
        endpoint: String,
    },
    #[error("docker engine `{endpoint}` refused {what}: {message}")]
    Api {
        /// What was asked, as a fragment: "to start container `db`".
        what: String,
        /// The engine's message.
        message: String,
        /// The endpoint as written.
        endpoint: String,
    },
}

/// How rb words a command that exited with a code its caller does not accept (a step's
/// process on this machine or in a container, a command rb runs in a container), with the
/// end of its standard error when there is any.
pub fn exit_message(
    program: &str,
    container: Option<&str>,
    code: i64,
    stderr_tail: &str,
) -> String {
    let place = container.map_or_else(String::new, |c| format!(" in container `{c}`"));
    let tail = stderr_tail.trim_end();
    if tail.is_empty() {
        format!("`{program}`{place} exited with code {code}")
    } else {
        format!("`{program}`{place} exited with code {code}; stderr ends with:\n{tail}")
    }
}

impl DockerError {
    /// Shorthand for [`DockerError::Io`].
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// What a request was about, so that a 404 or 409 can be named precisely.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// The engine itself (ping, version).
    Engine,
    /// A container by name or id.
    Container(&'a str),
    /// An image reference.
    Image(&'a str),
    /// A network name.
    Network(&'a str),
    /// A path inside a container.
    Path(&'a str, &'a str),
}

/// Maps a bollard error to a [`DockerError`], given the endpoint and what the request was about.
pub(crate) fn map_err(
    endpoint: &str,
    subject: Subject<'_>,
    what: &str,
    err: bollard::errors::Error,
) -> DockerError {
    use bollard::errors::Error as B;
    let endpoint = endpoint.to_owned();
    match err {
        B::DockerResponseServerError {
            status_code,
            message,
        } => map_status(endpoint, subject, what, status_code, &message),
        B::RequestTimeoutError => DockerError::Timeout {
            what: format!("waiting for the engine to answer {what}"),
            after: Duration::ZERO,
            endpoint,
        },
        other => map_transport(endpoint, what, &other),
    }
}

fn map_status(
    endpoint: String,
    subject: Subject<'_>,
    what: &str,
    status: u16,
    message: &str,
) -> DockerError {
    let lower = message.to_lowercase();
    match (status, subject) {
        (404, _) if lower.contains("no such image") => DockerError::ImageMissing {
            image: image_from_message(message).unwrap_or_else(|| match subject {
                Subject::Image(i) => i.to_owned(),
                _ => message.to_owned(),
            }),
            endpoint,
        },
        (404, Subject::Image(image)) => DockerError::ImageMissing {
            image: image.to_owned(),
            endpoint,
        },
        (404, _) if lower.contains("network") => DockerError::NetworkNotFound {
            network: match subject {
                Subject::Network(n) => n.to_owned(),
                _ => message.to_owned(),
            },
            endpoint,
        },
        (404, Subject::Path(container, path)) if !lower.contains("no such container") => {
            DockerError::PathNotFound {
                container: container.to_owned(),
                path: path.to_owned(),
                endpoint,
            }
        }
        (404, Subject::Container(c) | Subject::Path(c, _)) => DockerError::ContainerNotFound {
            container: c.to_owned(),
            endpoint,
        },
        (409, Subject::Container(name)) if lower.contains("already in use") => {
            DockerError::NameConflict {
                name: name.to_owned(),
                endpoint,
            }
        }
        _ => DockerError::Api {
            what: what.to_owned(),
            message: format!("{message} (http {status})"),
            endpoint,
        },
    }
}

/// "No such image: rb-test/nope:1" → "rb-test/nope:1".
fn image_from_message(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("No such image: ")?;
    Some(rest.trim().to_owned())
}

fn map_transport(endpoint: String, what: &str, err: &bollard::errors::Error) -> DockerError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    let mut innermost = err.to_string();
    let mut denied = false;
    let mut connect = false;
    while let Some(e) = source {
        innermost = e.to_string();
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::PermissionDenied => denied = true,
                io::ErrorKind::NotFound
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::TimedOut => connect = true,
                _ => {}
            }
        }
        if let Some(legacy) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && legacy.is_connect()
        {
            connect = true;
        }
        source = e.source();
    }
    let reason = innermost.to_lowercase();
    if denied {
        DockerError::PermissionDenied { endpoint, reason }
    } else if connect || matches!(err, bollard::errors::Error::SocketNotFoundError(_)) {
        DockerError::Unreachable { endpoint, reason }
    } else {
        DockerError::Api {
            what: what.to_owned(),
            message: chain(err),
            endpoint,
        }
    }
}

/// The error and its sources joined by ": ", for messages that must not lose the cause.
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}
