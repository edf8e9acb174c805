//! Connecting to an engine: endpoint parsing, TLS files, ping and version.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use bollard::{API_DEFAULT_VERSION, Docker};

use super::error::{DockerError, Subject, map_err};

/// The endpoint used when neither the runbook nor `DOCKER_HOST` names one.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// How long a control request (inspect, create, start …) may take before it fails.
const CONTROL_TIMEOUT: Duration = Duration::from_mins(2);
/// The request timeout for requests whose answer only comes when a long transfer or a
/// long `stop` grace period is over; rb applies its own deadlines to those.
const LONG_TIMEOUT: Duration = Duration::from_hours(7 * 24);

/// The client certificate, key and CA of a `tcp://` endpoint served over TLS
/// (as `docker --tlsverify --tlscacert --tlscert --tlskey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate that signed the engine's certificate (`ca.pem`).
    pub ca: PathBuf,
    /// The client certificate (`cert.pem`).
    pub cert: PathBuf,
    /// The client private key (`key.pem`).
    pub key: PathBuf,
}

impl TlsFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in one directory, as `DOCKER_CERT_PATH` holds them.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// What the engine says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// The engine's release, e.g. `28.2.2`.
    pub version: String,
    /// The newest API version it speaks, e.g. `1.50`.
    pub api_version: String,
    /// Its operating system, e.g. `linux`.
    pub os: String,
    /// Its architecture, e.g. `amd64`.
    pub arch: String,
}

/// A connection to one Docker Engine. Cheap to clone; connecting touches no network.
#[derive(Debug, Clone)]
pub struct Engine {
    /// For control requests, with a bounded request timeout.
    pub(crate) docker: Docker,
    /// The same connection with a very long request timeout, for uploads and stops.
    pub(crate) long: Docker,
    endpoint: String,
}

impl Engine {
    /// Connects to `endpoint`, or to `DOCKER_HOST`, or to the local socket.
    ///
    /// Accepted forms: `unix:///path`, `tcp://host:port` (`https://` too; TLS when `tls` is
    /// given, or when `DOCKER_TLS_VERIFY` is set for an endpoint taken from `DOCKER_HOST`,
    /// with the files in `DOCKER_CERT_PATH`), and `ssh://[user@]host[:port]` (runs
    /// `docker system dial-stdio` on the remote host through the `ssh` client).
    pub fn connect(endpoint: Option<&str>, tls: Option<&TlsFiles>) -> Result<Self, DockerError> {
        let (endpoint, tls) = match endpoint {
            Some(e) => (e.trim().to_owned(), tls.cloned()),
            None => match std::env::var("DOCKER_HOST") {
                Ok(host) if !host.trim().is_empty() => {
                    let tls = tls.cloned().or_else(tls_from_env);
                    (host.trim().to_owned(), tls)
                }
                _ => (DEFAULT_ENDPOINT.to_owned(), tls.cloned()),
            },
        };
        let docker = open(&endpoint, tls.as_ref())?;
        Ok(Self {
            long: docker.clone().with_timeout(LONG_TIMEOUT),
            docker: docker.with_timeout(CONTROL_TIMEOUT),
            endpoint,
        })
    }

    /// The endpoint as written, used in every error message.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the engine runs on this machine (a `unix://` socket), so that its view of
    /// host paths and processes is this machine's.
    pub fn is_local(&self) -> bool {
        self.endpoint.starts_with("unix://")
    }

    /// Checks that the engine answers.
    pub async fn ping(&self) -> Result<(), DockerError> {
        self.docker
            .ping()
            .await
            .map(drop)
            .map_err(|e| self.err(Subject::Engine, "a ping", e))
    }

    /// Asks the engine for its version.
    pub async fn version(&self) -> Result<EngineVersion, DockerError> {
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| self.err(Subject::Engine, "to tell its version", e))?;
        Ok(EngineVersion {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            os: v.os.unwrap_or_default(),
            arch: v.arch.unwrap_or_default(),
        })
    }

    /// Maps a bollard error for this engine.
    pub(crate) fn err(
        &self,
        subject: Subject<'_>,
        what: &str,
        e: bollard::errors::Error,
    ) -> DockerError {
        map_err(&self.endpoint, subject, what, e)
    }

    /// A [`DockerError::Timeout`] on this engine.
    pub(crate) fn timeout(&self, what: String, after: Duration) -> DockerError {
        DockerError::Timeout {
            what,
            after,
            endpoint: self.endpoint.clone(),
        }
    }
}

fn tls_from_env() -> Option<TlsFiles> {
    let verify = std::env::var("DOCKER_TLS_VERIFY").ok()?;
    if verify.is_empty() || verify == "0" {
        return None;
    }
    let dir = std::env::var_os("DOCKER_CERT_PATH")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    Some(TlsFiles::in_dir(dir))
}

fn open(endpoint: &str, tls: Option<&TlsFiles>) -> Result<Docker, DockerError> {
    let bad = |reason: String| DockerError::BadEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let secs = CONTROL_TIMEOUT.as_secs();
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| bad("expected `unix://PATH`, `tcp://HOST:PORT` or `ssh://HOST`".into()))?;
    if rest.is_empty() {
        return Err(bad("the address after `://` is empty".into()));
    }
    if tls.is_some() {
        // Both rustls providers are compiled in (bollard brings aws-lc-rs, we ask for ring), so
        // rustls cannot pick one itself and panics: pick ring for the process, once.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let result = match (scheme, tls) {
        ("unix", None) => Docker::connect_with_unix(endpoint, secs, API_DEFAULT_VERSION),
        ("unix" | "ssh", Some(_)) => {
            return Err(bad("tls files apply to `tcp://` endpoints only".into()));
        }
        ("tcp" | "http", None) => Docker::connect_with_http(endpoint, secs, API_DEFAULT_VERSION),
        ("https", None) => return Err(bad("an `https://` endpoint needs tls files".into())),
        ("tcp" | "https", Some(files)) => {
            for (what, path) in [
                ("ca", &files.ca),
                ("cert", &files.cert),
                ("key", &files.key),
            ] {
                std::fs::File::open(path).map_err(|e| {
                    bad(format!("tls {what} file `{}`: {e}", path.display()).to_lowercase())
                })?;
            }
            let addr = format!("tcp://{rest}");
            Docker::connect_with_ssl(
                &addr,
                &files.key,
                &files.cert,
                &files.ca,
                secs,
                API_DEFAULT_VERSION,
            )
        }
        ("ssh", None) => {
            // bollard hands `user@host:port` to ssh as a host name, which ssh cannot resolve.
            let authority = rest.split('/').next().unwrap_or(rest);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if host.rsplit_once(':').is_some_and(|(_, p)| p != "22") {
                return Err(bad(
                    "the ssh transport cannot take a port: name a `Host` alias with its `Port` \
                     in ~/.ssh/config and use `ssh://user@alias`"
                        .into(),
                ));
            }
            let host_only = host.trim_end_matches(":22");
            let user = authority
                .rsplit_once('@')
                .map(|(u, _)| format!("{u}@"))
                .unwrap_or_default();
            Docker::connect_with_ssh(
                &format!("ssh://{user}{host_only}"),
                secs,
                API_DEFAULT_VERSION,
                None,
            )
        }
        (other, _) => return Err(bad(format!("unknown scheme `{other}`"))),
    };
    result.map_err(|e| match e {
        bollard::errors::Error::SocketNotFoundError(path) => DockerError::Unreachable {
            endpoint: endpoint.to_owned(),
            reason: format!("socket `{path}` does not exist"),
        },
        e => bad(super::error::chain(&e).to_lowercase()),
    })
}

/// A Docker Engine a step may use with `host:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Engine endpoint: `unix:///var/run/docker.sock`, `tcp://HOST:PORT`, `ssh://USER@HOST`.
    pub docker: String,
    /// TLS client files for `tcp://` endpoints (relative to the runbook).
    pub tls: Option<TlsSpec>,
    /// What this engine is.
    pub description: Option<String>,
}

/// TLS client files.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// CA certificate (PEM).
    pub ca: String,
    /// Client certificate (PEM).
    pub cert: String,
    /// Client key (PEM).
    pub key: String,
}
