//! Container lifecycle steps: `container.copy`, `container.run`, `container.start`,
//! `container.stop`, `container.remove`, `network.create`.

use super::{ConfigProblem, Step, StepType, Touches, plain};
use crate::docker::{PortMapping, RunSpec};
use crate::duration::Dur;
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

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

impl Step for CopyConfig {
    const TYPE: StepType = plain(&["path", "bytes", "sha256", "entries"]);

    fn touches(&self) -> Touches {
        let mut t = Touches {
            engine: true,
            host: self.host.clone(),
            ..Touches::default()
        };
        for (end, local_is_written) in [(&self.from, false), (&self.to, true)] {
            match split_container_path(end) {
                Some((name, _)) => t.containers.push(name.to_owned()),
                None if local_is_written => t.writes.push(end.clone()),
                None => {}
            }
        }
        t
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_copy(self, cx).await
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        let from = split_container_path(&self.from).is_some();
        let to = split_container_path(&self.to).is_some();
        // A templated end is known only once rendered: checked again then.
        let templated = [&self.from, &self.to]
            .iter()
            .any(|s| s.contains("{{") || s.contains("{%"));
        if from == to && !templated {
            vec![ConfigProblem::new(
                "from",
                "exactly one of `from` and `to` must be `CONTAINER:PATH`",
            )]
        } else {
            Vec::new()
        }
    }
}

/// When `container.run` pulls its image from its registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pull {
    /// Only when the engine does not have it (as `docker run` does).
    #[default]
    Missing,
    /// Every time: the tag may point at a newer image.
    Always,
    /// Never: a missing image fails the step.
    Never,
}

/// A user and password for the image's registry (from secrets: they are masked).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuthConfig {
    /// The registry user.
    pub username: String,
    /// Its password or token, e.g. `"{{ secrets.registry_password }}"`.
    pub password: String,
}

/// Create and start a container, pulling its image first when `pull` says so.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Container name.
    pub name: String,
    /// Image: `[registry/]repository[:tag]`, or pinned `…@sha256:DIGEST` (pulled by digest,
    /// and run only with exactly that content).
    pub image: String,
    /// When to pull the image from its registry: `missing` (default, as `docker run`),
    /// `always`, or `never`.
    #[serde(default)]
    pub pull: Pull,
    /// Credentials for the image's registry.
    pub registry_auth: Option<RegistryAuthConfig>,
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

impl Step for RunConfig {
    const TYPE: StepType = plain(&["id", "image", "image_digest", "pulled"]);

    fn problems(&self) -> Vec<ConfigProblem> {
        // Written in the runbook, a password would be shown by every plan and journal.
        match &self.registry_auth {
            Some(a) if !a.password.contains("secrets.") => vec![ConfigProblem::new(
                "registry_auth.password",
                "the registry password must come from a secret (`\"{{ secrets.NAME }}\"`)",
            )],
            _ => Vec::new(),
        }
    }

    fn touches(&self) -> Touches {
        Touches {
            engine: true,
            host: self.host.clone(),
            creates: vec![self.name.clone()],
            images: vec![self.image.clone()],
            pull: match self.pull {
                Pull::Missing => "missing",
                Pull::Always => "always",
                Pull::Never => "never",
            },
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_run(self, cx).await
    }
}

/// Start containers; waits until they run, a no-op for running ones.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainersConfig {
    /// Container names or ids.
    pub containers: Vec<String>,
    /// Engine to use, a key of the runbook's `hosts` (default: `DOCKER_HOST`).
    pub host: Option<String>,
}

impl Step for ContainersConfig {
    const TYPE: StepType = plain(&["changed"]);

    fn touches(&self) -> Touches {
        Touches {
            engine: true,
            host: self.host.clone(),
            containers: self.containers.clone(),
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_start(self, cx).await
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        if self.containers.is_empty() {
            vec![ConfigProblem::new("containers", "`containers` is empty")]
        } else {
            Vec::new()
        }
    }
}

/// Stop containers, waiting until they have stopped; a no-op for stopped ones.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopConfig {
    /// Container names or ids.
    pub containers: Vec<String>,
    /// How long each container has after its stop signal (SIGTERM unless the image says
    /// otherwise) before it is killed, like `docker stop -t`. Default: 10s, or half the step
    /// `timeout` when that is shorter. Must be shorter than the step `timeout`, which bounds
    /// the whole step (the kill and the wait for the container to be gone included).
    pub grace: Option<Dur>,
    /// Engine to use, a key of the runbook's `hosts` (default: `DOCKER_HOST`).
    pub host: Option<String>,
}

/// `docker stop`'s default grace period.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

impl StopConfig {
    /// The grace period for a step with this `timeout`.
    fn grace(&self, timeout: Option<Duration>) -> Duration {
        match (self.grace, timeout) {
            (Some(g), _) => g.0,
            (None, Some(t)) => DEFAULT_GRACE.min(t / 2),
            (None, None) => DEFAULT_GRACE,
        }
    }
}

impl Step for StopConfig {
    const TYPE: StepType = plain(&["changed"]);

    fn touches(&self) -> Touches {
        Touches {
            engine: true,
            host: self.host.clone(),
            containers: self.containers.clone(),
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_stop(self, cx).await
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        if self.containers.is_empty() {
            vec![ConfigProblem::new("containers", "`containers` is empty")]
        } else {
            Vec::new()
        }
    }
    fn timeout_problems(&self, timeout: Option<Duration>) -> Vec<ConfigProblem> {
        match (self.grace, timeout) {
            (Some(g), Some(t)) if g.0 >= t => vec![ConfigProblem::new(
                "grace",
                format!(
                    "`grace: {g}` does not fit inside the step `timeout: {}`: the step would time out when the engine kills the container",
                    Dur(t)
                ),
            )],
            _ => Vec::new(),
        }
    }
}

/// Remove containers (running ones are killed), waiting until they are gone; a no-op for
/// containers that do not exist.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveConfig {
    /// Container names or ids.
    pub containers: Vec<String>,
    /// Also remove the containers' anonymous volumes (`docker rm -v`; named volumes stay).
    #[serde(default)]
    pub volumes: bool,
    /// Named volumes to remove once the containers are gone (a no-op for a volume that does
    /// not exist; a volume still used by another container fails the step).
    #[serde(default)]
    pub named_volumes: Vec<String>,
    /// Engine to use, a key of the runbook's `hosts` (default: `DOCKER_HOST`).
    pub host: Option<String>,
}

impl Step for RemoveConfig {
    const TYPE: StepType = plain(&["changed", "volumes_removed"]);

    /// The containers need not exist (removing a missing one is a no-op).
    fn touches(&self) -> Touches {
        Touches {
            engine: true,
            host: self.host.clone(),
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_remove(self, cx).await
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        if self.containers.is_empty() && self.named_volumes.is_empty() {
            vec![ConfigProblem::new(
                "containers",
                "`containers` and `named_volumes` are both empty",
            )]
        } else {
            Vec::new()
        }
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

impl Step for NetworkConfig {
    const TYPE: StepType = plain(&["id", "changed"]);

    fn touches(&self) -> Touches {
        Touches {
            engine: true,
            host: self.host.clone(),
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_network(self, cx).await
    }
}

/// Copy in or out of a container through the archive API.
pub async fn run_copy(cfg: &CopyConfig, cx: &StepCx) -> StepResult {
    let engine = cx.engines.get(cfg.host.as_deref())?;
    let report = match (
        split_container_path(&cfg.from),
        split_container_path(&cfg.to),
    ) {
        (Some((container, path)), None) => {
            // Like every step that writes a file, create its directory.
            let dest = cx.path(&cfg.to);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StepError::failed(format!("cannot create `{}`: {e}", parent.display()))
                })?;
            }
            engine.copy_out_to(container, path, &dest).await
        }
        (None, Some((container, path))) => {
            engine.copy_in(&cx.path(&cfg.from), container, path).await
        }
        _ => {
            return Err(StepError::failed(
                "exactly one of `from` and `to` must be `CONTAINER:PATH`",
            ));
        }
    }
    .map_err(|e| StepError::from(e).masked(&cx.masker))?;
    let mut out = Outputs::new();
    out.insert("path".into(), report.path.display().to_string().into());
    out.insert("bytes".into(), report.bytes.into());
    out.insert("sha256".into(), report.sha256.into());
    out.insert("entries".into(), report.entries.into());
    Ok(out)
}

/// Make sure the engine has the image as `pull` asks; whether it was pulled.
async fn ensure_image(
    engine: &crate::docker::Engine,
    cfg: &RunConfig,
    cx: &StepCx,
) -> Result<bool, StepError> {
    let present = engine
        .image_info(&cfg.image)
        .await
        .map_err(StepError::from)?
        .is_some();
    let pull = match cfg.pull {
        Pull::Never if !present => {
            return Err(crate::docker::DockerError::ImageMissing {
                image: cfg.image.clone(),
                endpoint: engine.endpoint().to_owned(),
            }
            .into());
        }
        Pull::Never => false,
        Pull::Missing => !present,
        Pull::Always => true,
    };
    if !pull {
        return Ok(false);
    }
    let auth = cfg
        .registry_auth
        .as_ref()
        .map(|a| crate::docker::RegistryAuth {
            username: a.username.clone(),
            password: a.password.clone(),
        });
    let progress = cx.progress.clone();
    tokio::select! {
        r = engine.pull(&cfg.image, auth.as_ref(), move |b| progress.bytes(b)) => {
            r.map_err(|e| StepError::from(e).masked(&cx.masker))?;
        }
        () = cx.cancel.cancelled() => return Err(StepError::Cancelled),
    }
    Ok(true)
}

/// Create and start a container (pulling its image first when `pull` says so). Outputs its
/// `id`, the image's `image_digest` (its registry digest, else its id) and `pulled`.
pub async fn run_run(cfg: &RunConfig, cx: &StepCx) -> StepResult {
    let engine = cx.engines.get(cfg.host.as_deref())?;
    let pulled = ensure_image(&engine, cfg, cx).await?;
    let ports = cfg
        .ports
        .iter()
        .map(|p| PortMapping::parse(p).map_err(|e| StepError::failed(format!("port `{p}`: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = RunSpec {
        name: cfg.name.clone(),
        image: cfg.image.clone(),
        env: cfg
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ports,
        network: cfg.network.clone(),
        volumes: cfg.volumes.clone(),
        command: cfg.command.clone(),
        entrypoint: cfg.entrypoint.clone(),
        labels: vec![("rb.step".into(), cx.step_id.clone())],
        replace: cfg.replace,
    };
    let id = engine
        .run(&spec)
        .await
        .map_err(|e| StepError::from(e).masked(&cx.masker))?;
    let image = engine
        .image_info(&cfg.image)
        .await
        .map_err(StepError::from)?
        .unwrap_or_default();
    let mut out = Outputs::new();
    out.insert("id".into(), id.into());
    out.insert("image".into(), cfg.image.clone().into());
    out.insert(
        "image_digest".into(),
        image.digest.unwrap_or(image.id).into(),
    );
    out.insert("pulled".into(), pulled.into());
    Ok(out)
}

/// Start containers, waiting until they run.
pub async fn run_start(cfg: &ContainersConfig, cx: &StepCx) -> StepResult {
    let engine = cx.engines.get(cfg.host.as_deref())?;
    let names: Vec<&str> = cfg.containers.iter().map(String::as_str).collect();
    let wait = cx.timeout.unwrap_or(Duration::from_mins(1));
    changed_output(cx, engine.start(&names, wait)).await
}

/// Stop containers: each gets its grace period, then is killed; waits until all have stopped.
pub async fn run_stop(cfg: &StopConfig, cx: &StepCx) -> StepResult {
    let engine = cx.engines.get(cfg.host.as_deref())?;
    let names: Vec<&str> = cfg.containers.iter().map(String::as_str).collect();
    changed_output(cx, engine.stop(&names, cfg.grace(cx.timeout))).await
}

/// The `changed` output of a start or stop, unless the step is cancelled first.
async fn changed_output(
    cx: &StepCx,
    work: impl Future<Output = Result<bool, crate::docker::DockerError>>,
) -> StepResult {
    let changed = tokio::select! {
        r = work => r.map_err(|e| StepError::from(e).masked(&cx.masker))?,
        () = cx.cancel.cancelled() => return Err(StepError::Cancelled),
    };
    let mut out = Outputs::new();
    out.insert("changed".into(), changed.into());
    Ok(out)
}

/// Remove containers, then the named volumes (a volume in use cannot go before its container).
pub async fn run_remove(cfg: &RemoveConfig, cx: &StepCx) -> StepResult {
    let engine = cx.engines.get(cfg.host.as_deref())?;
    let names: Vec<&str> = cfg.containers.iter().map(String::as_str).collect();
    let work = async {
        let mut changed = engine.remove(&names, true, cfg.volumes).await?;
        let mut removed = Vec::new();
        for v in &cfg.named_volumes {
            if engine.volume_remove(v).await? {
                removed.push(v.clone());
                changed = true;
            }
        }
        Ok::<_, crate::docker::DockerError>((changed, removed))
    };
    let (changed, removed) = tokio::select! {
        r = work => r.map_err(|e| StepError::from(e).masked(&cx.masker))?,
        () = cx.cancel.cancelled() => return Err(StepError::Cancelled),
    };
    let mut out = Outputs::new();
    out.insert("changed".into(), changed.into());
    out.insert("volumes_removed".into(), removed.into());
    Ok(out)
}

/// Create a network unless it exists.
pub async fn run_network(cfg: &NetworkConfig, cx: &StepCx) -> StepResult {
    let engine = cx.engines.get(cfg.host.as_deref())?;
    let n = engine
        .network_create(&cfg.name, cfg.driver.as_deref())
        .await
        .map_err(|e| StepError::from(e).masked(&cx.masker))?;
    let mut out = Outputs::new();
    out.insert("id".into(), n.id.into());
    out.insert("changed".into(), n.changed.into());
    Ok(out)
}
