//! `health`: poll a probe until it passes or the step's `timeout` passes.

use super::{ConfigProblem, Step, StepType, Touches, plain};
use crate::docker::HealthProbe;
use crate::duration::Dur;
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

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

impl Step for HealthConfig {
    const TYPE: StepType = plain(&["attempts", "latency_ms"]);

    fn touches(&self) -> Touches {
        // `host` is checked whatever the probe; only a container probe uses the engine.
        Touches {
            engine: self.container.is_some(),
            host: self.host.clone(),
            containers: self.container.iter().map(|p| p.name.clone()).collect(),
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run(self, cx).await
    }

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
}

/// Poll the probe every `interval` until it passes; the step's `timeout` is the deadline
/// (the executor cancels the step when it passes), the last failure is the error.
pub async fn run(cfg: &HealthConfig, cx: &StepCx) -> StepResult {
    let interval = cfg.interval.map_or(Duration::from_secs(1), |d| d.0);
    let started = Instant::now();
    if let Some(probe) = &cfg.container {
        let engine = cx.engines.get(cfg.host.as_deref())?;
        let report = engine
            .container_health_check(&HealthProbe {
                container: probe.name.clone(),
                command: probe.command.clone(),
                user: None,
                interval,
                timeout: cx.timeout.unwrap_or(Duration::from_mins(1)),
            })
            .await
            .map_err(|e| StepError::from(e).masked(&cx.masker))?;
        return Ok(outputs(report.attempts, report.latency));
    }
    // reqwest is built with `rustls-no-provider`: without a process-wide provider, building a
    // client panics. `Err` only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(interval.max(Duration::from_secs(2)))
        .build()
        .map_err(|e| StepError::failed(format!("http client: {e}")))?;
    let body_re = match cfg.http.as_ref().and_then(|h| h.body.as_deref()) {
        Some(re) => Some(
            regex::Regex::new(re)
                .map_err(|e| StepError::failed(format!("invalid `body` regex: {e}")))?,
        ),
        None => None,
    };
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let tried = Instant::now();
        let result = probe_once(cfg, &client, body_re.as_ref(), cx).await;
        match result {
            Ok(()) => return Ok(outputs(attempts, tried.elapsed())),
            Err(why) => {
                let deadline = cx.timeout.unwrap_or(Duration::from_mins(1));
                if started.elapsed() + interval > deadline {
                    return Err(StepError::failed(cx.masker.mask(&format!(
                        "not healthy after {attempts} attempts in {:.1}s: {why}",
                        started.elapsed().as_secs_f64()
                    ))));
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = cx.cancel.cancelled() => return Err(StepError::Cancelled),
        }
    }
}

fn outputs(attempts: u32, latency: Duration) -> Outputs {
    let mut out = Outputs::new();
    out.insert("attempts".into(), attempts.into());
    out.insert(
        "latency_ms".into(),
        (latency.as_secs_f64() * 1000.0).round().into(),
    );
    out
}

async fn probe_once(
    cfg: &HealthConfig,
    client: &reqwest::Client,
    body_re: Option<&regex::Regex>,
    cx: &StepCx,
) -> Result<(), String> {
    if let Some(h) = &cfg.http {
        let resp = client
            .get(&h.url)
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", h.url))?;
        let want = h.status.unwrap_or(200);
        let got = resp.status().as_u16();
        if got != want {
            return Err(format!("GET {} answered {got}, expected {want}", h.url));
        }
        if let Some(re) = body_re {
            let body = resp
                .text()
                .await
                .map_err(|e| format!("GET {}: {e}", h.url))?;
            if !re.is_match(&body) {
                return Err(format!(
                    "GET {}: body does not match `{}`",
                    h.url,
                    re.as_str()
                ));
            }
        }
        return Ok(());
    }
    if let Some(addr) = &cfg.tcp {
        return tokio::net::TcpStream::connect(addr.as_str())
            .await
            .map(drop)
            .map_err(|e| format!("connect {addr}: {e}"));
    }
    if let Some(argv) = &cfg.exec {
        let program = argv.first().cloned().unwrap_or_default();
        let out = tokio::process::Command::new(&program)
            .args(&argv[1..])
            .current_dir(&cx.base_dir)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot start `{program}`: {e}"))?;
        return if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{program}` exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        };
    }
    Err("no probe".into())
}
