//! The `health` step's `container:` probe: the container runs and a command succeeds.

use std::time::Duration;

use tokio::time::Instant;

use super::engine::Engine;
use super::error::DockerError;
use super::exec::ExecSpec;

/// How a container became healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// How many probes ran, the successful one included.
    pub attempts: u32,
    /// How long the successful probe took.
    pub latency: Duration,
}

/// The container probe of a `health` step.
#[derive(Debug, Clone)]
pub struct HealthProbe {
    /// The container name.
    pub container: String,
    /// A command that exits 0 when the service is ready; `None` checks "running" only.
    pub command: Option<Vec<String>>,
    /// The user to run the command as.
    pub user: Option<String>,
    /// Time between attempts.
    pub interval: Duration,
    /// The deadline for the whole check.
    pub timeout: Duration,
}

impl Engine {
    /// Polls until the container runs and the probe command exits 0, failing fast with the
    /// container's last log lines if it has exited, or with the last probe's stderr when
    /// the deadline passes.
    pub async fn container_health_check(
        &self,
        probe: &HealthProbe,
    ) -> Result<HealthReport, DockerError> {
        let start = Instant::now();
        let mut attempts = 0;
        let mut last = String::from("the container never ran");
        loop {
            attempts += 1;
            // A container that does not exist yet is normal during a rebuild: keep polling.
            let state = match self.inspect_state(&probe.container).await {
                Ok(s) => s,
                Err(DockerError::ContainerNotFound { .. }) => {
                    last = format!("container `{}` does not exist (yet)", probe.container);
                    super::lifecycle::ContainerStatus::default()
                }
                Err(e) => return Err(e),
            };
            if state.status == "exited" || state.status == "dead" {
                return Err(self
                    .exited(&probe.container, state.exit_code.unwrap_or(-1))
                    .await);
            }
            if state.running {
                let Some(argv) = &probe.command else {
                    return Ok(HealthReport {
                        attempts,
                        latency: Duration::ZERO,
                    });
                };
                let left = probe
                    .timeout
                    .saturating_sub(start.elapsed())
                    .max(Duration::from_secs(1));
                let spec = ExecSpec {
                    user: probe.user.clone(),
                    timeout: Some(left),
                    ..ExecSpec::new(probe.container.clone(), argv.clone())
                };
                let t0 = Instant::now();
                match self.exec_capture(&spec).await {
                    Ok(out) if out.exit_code == 0 => {
                        return Ok(HealthReport {
                            attempts,
                            latency: t0.elapsed(),
                        });
                    }
                    Ok(out) => {
                        let tail = out.stderr.trim_end();
                        let tail = if tail.is_empty() {
                            out.stdout.trim_end()
                        } else {
                            tail
                        };
                        last = format!(
                            "`{}` exited with code {}: {tail}",
                            spec.program(),
                            out.exit_code
                        );
                    }
                    // The container may have stopped between inspect and exec: look again.
                    Err(DockerError::Api { message, .. }) if message.contains("not running") => {}
                    Err(DockerError::Timeout { .. }) => {
                        last = format!("`{}` did not answer", spec.program());
                    }
                    Err(e) => return Err(e),
                }
            }
            if start.elapsed() >= probe.timeout {
                return Err(self.timeout(
                    format!(
                        "waiting for container `{}` to be healthy (last probe: {last})",
                        probe.container
                    ),
                    probe.timeout,
                ));
            }
            tokio::time::sleep(
                probe
                    .interval
                    .min(probe.timeout.saturating_sub(start.elapsed())),
            )
            .await;
        }
    }
}
