//! The step contract: what a running step gets ([`StepCx`]), returns ([`StepResult`]) and
//! may fail with ([`StepError`]).

use crate::docker::HostSpec;
use crate::docker::{DockerError, Engine};
use crate::event::{EventKind, RunEvent};
use crate::template::Masker;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// A step's outputs (`steps.<id>.outputs.<name>`).
pub type Outputs = Map<String, Value>;

/// Why a step did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The step ran and failed; the message is shown and journaled (secrets masked).
    Failed(String),
    /// The run was interrupted while the step ran.
    Cancelled,
    /// A gate waits for an approval this run cannot give (no terminal, no `--approve`).
    GatePending,
    /// A gate was rejected or timed out.
    GateRejected(String),
}

impl StepError {
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// The same error with every secret masked.
    #[must_use]
    pub fn masked(self, masker: &Masker) -> Self {
        match self {
            Self::Failed(m) => Self::Failed(masker.mask(&m)),
            Self::GateRejected(m) => Self::GateRejected(masker.mask(&m)),
            other => other,
        }
    }
}

impl From<crate::io::error::Error> for StepError {
    fn from(e: crate::io::error::Error) -> Self {
        Self::Failed(e.to_string())
    }
}

impl From<DockerError> for StepError {
    fn from(e: DockerError) -> Self {
        match e {
            DockerError::Cancelled { .. } => Self::Cancelled,
            other => Self::Failed(other.to_string()),
        }
    }
}

/// The result of one attempt of a step.
pub type StepResult = Result<Outputs, StepError>;

/// Where progress of data steps goes (bytes so far).
#[derive(Clone)]
pub struct Progress {
    step: String,
    emit: Arc<dyn Fn(RunEvent) + Send + Sync>,
}

impl Progress {
    pub fn new(step: String, emit: Arc<dyn Fn(RunEvent) + Send + Sync>) -> Self {
        Self { step, emit }
    }

    /// Report the bytes moved so far.
    pub fn bytes(&self, bytes: u64) {
        (self.emit)(RunEvent::now(EventKind::StepProgressed {
            step: self.step.clone(),
            bytes,
        }));
    }
}

/// Docker engines by host name, connected on first use.
#[derive(Default)]
pub struct Engines {
    hosts: BTreeMap<String, HostSpec>,
    base: PathBuf,
    connected: Mutex<HashMap<String, Arc<Engine>>>,
}

impl Engines {
    pub fn new(hosts: BTreeMap<String, HostSpec>, base: PathBuf) -> Self {
        Self {
            hosts,
            base,
            connected: Mutex::default(),
        }
    }

    /// The engine for a step's `host:` (`None`: `DOCKER_HOST`, else the local socket).
    pub fn get(&self, host: Option<&str>) -> Result<Arc<Engine>, StepError> {
        let key = host.unwrap_or("").to_owned();
        let mut connected = self.connected.lock().expect("engines lock");
        if let Some(e) = connected.get(&key) {
            return Ok(e.clone());
        }
        let engine = match host {
            None => Engine::connect(None, None)?,
            Some(name) => {
                let spec = self
                    .hosts
                    .get(name)
                    .ok_or_else(|| StepError::failed(format!("unknown host `{name}`")))?;
                let tls = spec.tls.as_ref().map(|t| crate::docker::TlsFiles {
                    ca: self.base.join(&t.ca),
                    cert: self.base.join(&t.cert),
                    key: self.base.join(&t.key),
                });
                Engine::connect(Some(&spec.docker), tls.as_ref())?
            }
        };
        let engine = Arc::new(engine);
        connected.insert(key, engine.clone());
        Ok(engine)
    }
}

/// Everything a running step may use.
#[derive(Clone)]
pub struct StepCx {
    pub step_id: String,
    /// The runbook's directory: relative paths in steps resolve against it.
    pub base_dir: PathBuf,
    pub engines: Arc<Engines>,
    /// The runbook's object stores (and the secrets their steps read).
    pub stores: Arc<crate::steps::store::Stores>,
    pub progress: Progress,
    /// Fires when the run is interrupted or the step times out.
    pub cancel: CancellationToken,
    pub masker: Masker,
    /// The step's timeout (health checks poll until it).
    pub timeout: Option<std::time::Duration>,
    /// Gate ids approved on the command line.
    pub approvals: Arc<Vec<String>>,
    /// Who approves gates (`--approver`, else `$USER`).
    pub approver: String,
    /// Whether a person is at a terminal to answer gates.
    pub interactive: bool,
    pub emit: Arc<dyn Fn(RunEvent) + Send + Sync>,
    /// The run's `now` and id (sub-runbooks share them).
    pub now: chrono::DateTime<chrono::Utc>,
    pub run_id: String,
    /// The run continues an earlier attempt (`--resume`), which may have been killed.
    pub resumed: bool,
    /// The template context the step was rendered with (`assert` evaluates against it).
    pub template: minijinja::Value,
    /// Runs a sub-runbook inside this run (the `runbook` step).
    pub runbooks: Arc<dyn Runbooks>,
    /// The time people took to approve the step's gates (its own, a sub-runbook's): gate
    /// wait, not machine time, in the report.
    pub gate_wait: GateWait,
}

/// A future a step awaits, boxed (it may run steps itself).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs a runbook inside the run: the executor gives one to every step.
pub trait Runbooks: Send + Sync {
    /// Load, validate and run the runbook `file` (relative to the runbook's directory) with
    /// `params`, as the steps of step `cx.step_id`.
    fn run<'a>(
        &'a self,
        cx: &'a StepCx,
        file: &'a str,
        params: &'a BTreeMap<String, Value>,
    ) -> BoxFuture<'a, StepResult>;
}

/// Seconds people took to approve gates, added up (shared by a step's attempts).
#[derive(Debug, Clone, Default)]
pub struct GateWait(Arc<Mutex<f64>>);

impl GateWait {
    /// Count `seconds` of waiting for an approval.
    pub fn add(&self, seconds: f64) {
        *self.0.lock().expect("gate wait") += seconds;
    }

    /// The seconds counted so far.
    pub fn seconds(&self) -> f64 {
        *self.0.lock().expect("gate wait")
    }
}

impl StepCx {
    /// A path from a step, relative to the runbook's directory.
    pub fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Emit an event from inside a step (gates).
    pub fn event(&self, kind: EventKind) {
        (self.emit)(RunEvent::now(kind));
    }
}
