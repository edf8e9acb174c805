//! Container lifecycle steps: `container.copy`, `container.run`, `container.start`,
//! `container.stop`, `container.remove`, `network.create`.

use super::{ConfigProblem, StepConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Copy files or directories between this machine and a container (as `docker cp`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyConfig {
    /// Source: a local path, or `CONTAINER:PATH`.
    pub from: String,
    /// Destination: a local path, or `CONTAINER:PATH`.
    pub to: String,
    /// Engine to use, a key of the runbook's `hosts` (default: `DOCKER_HOST`).
    pub host: Option<String>,
}

/// Split `CONTAINER:PATH`; a local path (absolute, `./`, or without `:`) gives `None`.
pub fn split_container_path(s: &str) -> Option<(&str, &str)> {
    if s.starts_with(['/', '.', '~']) {
        return None;
    }
    let (c, p) = s.split_once(':')?;
    (!c.is_empty() && !p.is_empty()).then_some((c, p))
}

impl StepConfig for CopyConfig {
    fn problems(&self) -> Vec<ConfigProblem> {
        let from = split_container_path(&self.from).is_some();
        let to = split_container_path(&self.to).is_some();
        if from == to {
            vec![ConfigProblem::new(
                "from",
                "exactly one of `from` and `to` must be `CONTAINER:PATH`",
            )]
        } else {
            Vec::new()
        }
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}

/// Create and start a container. Images are never pulled: the image must be present.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Container name.
    pub name: String,
    /// Image (must be present on the engine).
    pub image: String,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Published ports `[HOST_IP:]HOST_PORT:CONTAINER_PORT`; the host IP defaults to 127.0.0.1.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Network to attach to.
    pub network: Option<String>,
    /// Volumes and bind mounts `SOURCE:TARGET[:ro]`.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Command (argv) replacing the image's.
    pub command: Option<Vec<String>>,
    /// Entrypoint (argv) replacing the image's.
    pub entrypoint: Option<Vec<String>>,
    /// Replace an existing container of that name (default false: the step fails).
    #[serde(default)]
    pub replace: bool,
    /// Engine to use, a key of the runbook's `hosts` (default: `DOCKER_HOST`).
    pub host: Option<String>,
}

impl StepConfig for RunConfig {
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}

/// Start, stop or remove containers; waits until the state is reached, a no-op when it is.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainersConfig {
    /// Container names or ids.
    pub containers: Vec<String>,
    /// Engine to use, a key of the runbook's `hosts` (default: `DOCKER_HOST`).
    pub host: Option<String>,
}

impl StepConfig for ContainersConfig {
    fn problems(&self) -> Vec<ConfigProblem> {
        if self.containers.is_empty() {
            vec![ConfigProblem::new("containers", "`containers` is empty")]
        } else {
            Vec::new()
        }
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}

/// Create a network; a no-op when it exists.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Network name.
    pub name: String,
    /// Driver (default `bridge`).
    pub driver: Option<String>,
    /// Engine to use, a key of the runbook's `hosts` (default: `DOCKER_HOST`).
    pub host: Option<String>,
}

impl StepConfig for NetworkConfig {
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}
