//! Containers, networks and volumes: run, start, stop, remove, inspect, logs, images.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, InspectNetworkOptions, LogsOptions, RemoveContainerOptions,
    RemoveVolumeOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::engine::Engine;
use super::error::{DockerError, Subject};

/// How often a state is polled while waiting for it.
const POLL: Duration = Duration::from_millis(100);
/// How long a container may take to be running after `start`, and to vanish after `remove`.
const SETTLE: Duration = Duration::from_mins(1);
/// How long a started container is watched for an immediate exit.
const EARLY_EXIT: Duration = Duration::from_millis(750);
/// How many log lines an error about an exited container carries.
const ERROR_LOG_LINES: usize = 20;

/// One published port. The host address defaults to `127.0.0.1`: rb never publishes on
/// every interface unless told to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// The host address to bind; `127.0.0.1` when `None`.
    pub host_ip: Option<String>,
    /// The host port; an ephemeral one when `None`.
    pub host_port: Option<u16>,
    /// The container port.
    pub container_port: u16,
    /// `tcp` (default) or `udp`.
    pub protocol: String,
}

impl PortMapping {
    /// Parses `docker run -p` syntax: `5432`, `15432:5432`, `127.0.0.1:15432:5432`,
    /// optionally followed by `/udp` or `/tcp`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (ports, protocol) = match text.rsplit_once('/') {
            Some((p, proto @ ("tcp" | "udp" | "sctp"))) => (p, proto.to_owned()),
            Some((_, other)) => return Err(format!("unknown protocol `{other}` in port `{text}`")),
            None => (text, "tcp".to_owned()),
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("`{p}` in port `{text}` is not a port number"))
        };
        let fields: Vec<&str> = ports.rsplitn(3, ':').collect();
        let (host_ip, host_port, container_port) = match fields.as_slice() {
            [c] => (None, None, port(c)?),
            [c, h] => (None, Some(port(h)?), port(c)?),
            [c, h, ip] => (
                Some((*ip).trim_matches(['[', ']']).to_owned()),
                if h.is_empty() { None } else { Some(port(h)?) },
                port(c)?,
            ),
            _ => return Err(format!("cannot read port `{text}`")),
        };
        Ok(Self {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
    }
}

/// A container to create and start (`container.run`).
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// The container name.
    pub name: String,
    /// The image reference; it must already be on the engine (`container.run` pulls first).
    pub image: String,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// The network to attach to (`network_mode`).
    pub network: Option<String>,
    /// Volumes and binds in `docker run -v` syntax: `NAME:/path`, `/host:/path:ro`.
    pub volumes: Vec<String>,
    /// The command (the image's `CMD` when `None`).
    pub command: Option<Vec<String>>,
    /// The entrypoint (the image's when `None`).
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    pub labels: Vec<(String, String)>,
    /// Remove an existing container of that name first, instead of failing.
    pub replace: bool,
}

/// A container's state, as `inspect` reports it (the default: no container, nothing runs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Its full id.
    pub id: String,
    /// Its name, without the leading `/`.
    pub name: String,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub status: String,
    /// Whether it is running.
    pub running: bool,
    /// Its last exit code, when it has exited.
    pub exit_code: Option<i64>,
    /// Its health (`starting`, `healthy`, `unhealthy`) when the image defines a check.
    pub health: Option<String>,
}

/// The result of [`Engine::network_create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkOutcome {
    /// The network's id.
    pub id: String,
    /// Whether it was created now (false: it existed).
    pub changed: bool,
}

impl Engine {
    /// Creates and starts a container, then waits until it runs (or has exited with 0).
    /// Fails when the image is missing (the step pulls it first), when the name is taken and
    /// `replace` is false, or when the container exits with a non-zero code at once.
    /// Returns the container's id.
    pub async fn run(&self, spec: &RunSpec) -> Result<String, DockerError> {
        if !self.image_exists(&spec.image).await? {
            return Err(DockerError::ImageMissing {
                image: spec.image.clone(),
                endpoint: self.endpoint().to_owned(),
            });
        }
        if spec.replace {
            self.remove(&[spec.name.as_str()], true, false).await?;
        }
        let name = spec.name.as_str();
        let what = format!("to create container `{name}`");
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_owned()),
                    ..Default::default()
                }),
                create_body(spec),
            )
            .await
            .map_err(|e| match self.err(Subject::Container(name), &what, e) {
                // 404 on create: the image, or a network the spec names.
                DockerError::ContainerNotFound { .. } => DockerError::ImageMissing {
                    image: spec.image.clone(),
                    endpoint: self.endpoint().to_owned(),
                },
                other => other,
            })?;
        if let Err(e) = self.start_one(name, SETTLE).await {
            if !matches!(e, DockerError::ContainerExited { .. }) {
                let _ = self.remove(&[name], true, false).await;
            }
            return Err(e);
        }
        Ok(created.id)
    }

    /// Starts each container that is not running and waits until it runs. Returns whether
    /// any was started. A container that exits instead fails with its last log lines.
    pub async fn start(&self, names: &[&str], timeout: Duration) -> Result<bool, DockerError> {
        let mut changed = false;
        for name in names {
            changed |= self.start_one(name, timeout).await?;
        }
        Ok(changed)
    }

    async fn start_one(&self, name: &str, timeout: Duration) -> Result<bool, DockerError> {
        if self.inspect_state(name).await?.running {
            return Ok(false);
        }
        self.docker.start_container(name, None).await.map_err(|e| {
            self.err(
                Subject::Container(name),
                &format!("to start container `{name}`"),
                e,
            )
        })?;
        let start = Instant::now();
        let mut running_since: Option<Instant> = None;
        loop {
            let state = self.inspect_state(name).await?;
            if state.running {
                // A container that dies at once (a bad command, a missing file) is briefly
                // "running": watch it for a moment before calling it started.
                let since = *running_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= EARLY_EXIT {
                    return Ok(true);
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
            if state.status == "exited" || state.status == "dead" {
                let code = state.exit_code.unwrap_or(-1);
                if code == 0 {
                    return Ok(true);
                }
                return Err(self.exited(name, code).await);
            }
            if start.elapsed() > timeout {
                return Err(self.timeout(format!("waiting for container `{name}` to run"), timeout));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops each running container (SIGTERM, then SIGKILL after `timeout`) and waits until
    /// it has stopped. Returns whether any was running.
    /// Stop each running container: its stop signal, then a kill after `grace` (whole seconds,
    /// rounded up, as the engine takes it); waits until it no longer runs.
    pub async fn stop(&self, names: &[&str], grace: Duration) -> Result<bool, DockerError> {
        let timeout = Duration::from_secs(grace.as_secs() + u64::from(grace.subsec_nanos() > 0));
        let mut changed = false;
        for name in names {
            if !self.inspect_state(name).await?.running {
                continue;
            }
            let t = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
            self.long
                .stop_container(
                    name,
                    Some(StopContainerOptions {
                        t: Some(t),
                        signal: None,
                    }),
                )
                .await
                .map_err(|e| {
                    self.err(
                        Subject::Container(name),
                        &format!("to stop container `{name}`"),
                        e,
                    )
                })?;
            let limit = timeout + SETTLE;
            let start = Instant::now();
            while self.inspect_state(name).await?.running {
                if start.elapsed() > limit {
                    return Err(
                        self.timeout(format!("waiting for container `{name}` to stop"), limit)
                    );
                }
                tokio::time::sleep(POLL).await;
            }
            changed = true;
        }
        Ok(changed)
    }

    /// Removes each container that exists (a running one only with `force`), with its
    /// anonymous volumes when `volumes` (named volumes always stay), and waits until it is
    /// gone. Returns whether any existed.
    pub async fn remove(
        &self,
        names: &[&str],
        force: bool,
        volumes: bool,
    ) -> Result<bool, DockerError> {
        let mut changed = false;
        for name in names {
            match self.inspect_state(name).await {
                Ok(_) => {}
                Err(DockerError::ContainerNotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
            let options = RemoveContainerOptions {
                force,
                v: volumes,
                link: false,
            };
            match self.long.remove_container(name, Some(options)).await {
                // Someone else removed it meanwhile, or a removal is already in progress.
                Ok(())
                | Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    message,
                }) if message.contains("already in progress") => {}
                Err(e) => {
                    return Err(self.err(
                        Subject::Engine,
                        &format!("to remove container `{name}`"),
                        e,
                    ));
                }
            }
            let start = Instant::now();
            loop {
                match self.inspect_state(name).await {
                    Err(DockerError::ContainerNotFound { .. }) => break,
                    Err(e) => return Err(e),
                    Ok(_) if start.elapsed() > SETTLE => {
                        return Err(self.timeout(
                            format!("waiting for container `{name}` to be removed"),
                            SETTLE,
                        ));
                    }
                    Ok(_) => tokio::time::sleep(POLL).await,
                }
            }
            changed = true;
        }
        Ok(changed)
    }

    /// Removes a named volume if it exists; returns whether it existed. A volume still used
    /// by a container is an error (the container must be removed first).
    pub async fn volume_remove(&self, name: &str) -> Result<bool, DockerError> {
        match self
            .docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.err(Subject::Engine, &format!("to remove volume `{name}`"), e)),
        }
    }

    /// Creates a network unless one of that name exists.
    pub async fn network_create(
        &self,
        name: &str,
        driver: Option<&str>,
    ) -> Result<NetworkOutcome, DockerError> {
        if let Some(id) = self.network_id(name).await? {
            return Ok(NetworkOutcome { id, changed: false });
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: driver.map(str::to_owned),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(r) => Ok(NetworkOutcome {
                id: r.id,
                changed: true,
            }),
            Err(e) => match self.network_id(name).await? {
                // Created concurrently by someone else.
                Some(id) => Ok(NetworkOutcome { id, changed: false }),
                None => Err(self.err(
                    Subject::Network(name),
                    &format!("to create network `{name}`"),
                    e,
                )),
            },
        }
    }

    /// Removes a network if it exists; returns whether it existed.
    pub async fn network_remove(&self, name: &str) -> Result<bool, DockerError> {
        if self.network_id(name).await?.is_none() {
            return Ok(false);
        }
        self.docker.remove_network(name).await.map_err(|e| {
            self.err(
                Subject::Network(name),
                &format!("to remove network `{name}`"),
                e,
            )
        })?;
        Ok(true)
    }

    async fn network_id(&self, name: &str) -> Result<Option<String>, DockerError> {
        match self
            .docker
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
        {
            Ok(n) => Ok(Some(n.id.unwrap_or_default())),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.err(
                Subject::Network(name),
                &format!("to inspect network `{name}`"),
                e,
            )),
        }
    }

    /// Everything the engine says about a container.
    pub(crate) async fn inspect(
        &self,
        name: &str,
    ) -> Result<bollard::models::ContainerInspectResponse, DockerError> {
        self.docker
            .inspect_container(name, None)
            .await
            .map_err(|e| {
                self.err(
                    Subject::Container(name),
                    &format!("to inspect container `{name}`"),
                    e,
                )
            })
    }

    /// The state of a container; [`DockerError::ContainerNotFound`] when there is none.
    pub async fn inspect_state(&self, name: &str) -> Result<ContainerStatus, DockerError> {
        let info = self.inspect(name).await?;
        let state = info.state.unwrap_or_default();
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        Ok(ContainerStatus {
            id: info.id.unwrap_or_default(),
            name: info
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            running: state.running.unwrap_or(false),
            exit_code: if status == "exited" || status == "dead" {
                state.exit_code
            } else {
                None
            },
            health: state.health.and_then(|h| h.status).map(|s| s.to_string()),
            status,
        })
    }

    /// The last `lines` lines of a container's stdout and stderr, interleaved as logged.
    pub async fn logs_tail(&self, name: &str, lines: usize) -> Result<String, DockerError> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(name, Some(options));
        let mut out = Vec::new();
        while let Some(frame) = stream.next().await {
            let frame = frame.map_err(|e| {
                self.err(
                    Subject::Container(name),
                    &format!("to send the logs of container `{name}`"),
                    e,
                )
            })?;
            out.extend_from_slice(&frame.into_bytes());
        }
        Ok(String::from_utf8_lossy(&out).trim_end().to_owned())
    }

    /// The command lines of the processes running in a container (`docker top`).
    pub async fn processes(&self, name: &str) -> Result<Vec<String>, DockerError> {
        let options = bollard::query_parameters::TopOptions {
            ps_args: "-eo pid,args".into(),
        };
        let top = self
            .docker
            .top_processes(name, Some(options))
            .await
            .map_err(|e| {
                self.err(
                    Subject::Container(name),
                    &format!("to list the processes of `{name}`"),
                    e,
                )
            })?;
        Ok(top
            .processes
            .unwrap_or_default()
            .into_iter()
            .map(|row| row.last().cloned().unwrap_or_default())
            .collect())
    }

    /// Whether the image is on the engine.
    pub async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.err(
                Subject::Image(image),
                &format!("to inspect image `{image}`"),
                e,
            )),
        }
    }

    /// A [`DockerError::ContainerExited`] carrying the container's last log lines.
    pub(crate) async fn exited(&self, name: &str, exit_code: i64) -> DockerError {
        let logs = self
            .logs_tail(name, ERROR_LOG_LINES)
            .await
            .unwrap_or_else(|e| format!("(logs unavailable: {e})"));
        DockerError::ContainerExited {
            container: name.to_owned(),
            exit_code,
            logs,
            endpoint: self.endpoint().to_owned(),
        }
    }
}

fn create_body(spec: &RunSpec) -> ContainerCreateBody {
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        bindings
            .entry(format!("{}/{}", p.container_port, p.protocol))
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.clone().unwrap_or_else(|| "127.0.0.1".to_owned())),
                host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
            });
    }
    let exposed: Vec<String> = bindings.keys().cloned().collect();
    let host_config = HostConfig {
        binds: (!spec.volumes.is_empty()).then(|| spec.volumes.clone()),
        network_mode: spec.network.clone(),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        labels: (!spec.labels.is_empty()).then(|| spec.labels.iter().cloned().collect()),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::PortMapping;

    #[test]
    fn ports() {
        let p = PortMapping::parse("5432").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port),
            (None, None, 5432)
        );
        let p = PortMapping::parse("15432:5432").unwrap();
        assert_eq!((p.host_port, p.container_port), (Some(15432), 5432));
        let p = PortMapping::parse("0.0.0.0:15432:5432/udp").unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("0.0.0.0"));
        assert_eq!(p.protocol, "udp");
        assert!(PortMapping::parse("x:5432").is_err());
    }
}
