//! `health`: poll a probe until it passes or the step's `timeout` passes.

use super::{ConfigProblem, StepConfig};
use crate::duration::Dur;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Wait until a service is healthy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// An HTTP GET that must answer with `status` and a body matching `body`.
    pub http: Option<HttpProbe>,
    /// A TCP connection to `HOST:PORT` that must open.
    pub tcp: Option<String>,
    /// A program on this machine that must exit 0.
    pub exec: Option<Vec<String>>,
    /// A container that must be running, and a command in it that must exit 0.
    pub container: Option<ContainerProbe>,
    /// Time between attempts (default 1s).
    pub interval: Option<Dur>,
    /// Engine for `container` probes, a key of the runbook's `hosts`.
    pub host: Option<String>,
}

/// An HTTP probe.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// The URL to GET.
    pub url: String,
    /// Expected status (default 200).
    pub status: Option<u16>,
    /// A regular expression the body must match.
    pub body: Option<String>,
}

/// A container probe.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerProbe {
    /// Container name.
    pub name: String,
    /// A command (argv) that must exit 0 inside it.
    pub command: Option<Vec<String>>,
}

impl StepConfig for HealthConfig {
    fn problems(&self) -> Vec<ConfigProblem> {
        let n = usize::from(self.http.is_some())
            + usize::from(self.tcp.is_some())
            + usize::from(self.exec.is_some())
            + usize::from(self.container.is_some());
        if n == 1 {
            Vec::new()
        } else {
            vec![ConfigProblem::new(
                "",
                "a health step takes exactly one of `http`, `tcp`, `exec`, `container`",
            )]
        }
    }
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}
