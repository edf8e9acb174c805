//! Step types: one file per type, each owning its typed configuration and its pure checks.
//!
//! A step is decoded in two halves from the same YAML mapping: the keys every step shares
//! ([`common::StepCommon`]) and the keys of its `type` (the config structs here). Decoding the
//! `type` first and then a plain struct keeps serde's error positions, which
//! `#[serde(flatten)]` and internally tagged enums would lose.

pub mod archive;
pub mod assert;
pub mod checksum;
pub mod common;
pub mod compress;
pub mod container;
pub mod exec;
pub mod gate;
pub mod health;
pub mod process;
pub mod prune;
pub mod runbook;
pub mod sleep;
pub mod transport;

use crate::runbook::de::{DeError, from_node};
use crate::runbook::node::Node;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;

/// A problem a step's own configuration has, found without touching the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key (path from the step, `.`-separated) the problem is about; empty for the step.
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// Implemented by every step configuration.
pub trait StepConfig {
    /// Checks across fields that serde cannot express (exactly one of two keys, …).
    fn problems(&self) -> Vec<ConfigProblem> {
        Vec::new()
    }
    /// Checks against the step's `timeout` (a grace period that must fit inside it, …).
    fn timeout_problems(&self, _timeout: Option<std::time::Duration>) -> Vec<ConfigProblem> {
        Vec::new()
    }
    /// The engine the step talks to, for container steps.
    fn host(&self) -> Option<&str> {
        None
    }
}

macro_rules! step_kinds {
    ($($variant:ident($cfg:ty) = $name:literal),* $(,)?) => {
        /// A step's type-specific configuration.
        #[derive(Debug, Clone, Serialize)]
        #[serde(untagged)]
        pub enum StepKind { $($variant($cfg)),* }

        /// Every step type name, in the order the docs list them.
        pub const STEP_TYPES: &[&str] = &[$($name),*];

        impl StepKind {
            /// Decode the configuration of a step of type `type_name` (one of [`STEP_TYPES`]).
            pub fn decode(type_name: &str, node: &Node) -> Result<Self, DeError> {
                match type_name {
                    $($name => from_node::<$cfg>(node).map(StepKind::$variant),)*
                    other => Err(serde::de::Error::custom(format_args!("unknown step type `{other}`"))),
                }
            }

            /// The outputs a step of this type produces, for `rb validate`; `None` when they
            /// depend on the step (a sub-runbook's are its steps' ids).
            pub fn outputs(&self) -> Option<&'static [&'static str]> {
                outputs_of(self.type_name())
            }

            /// The step's type name.
            pub fn type_name(&self) -> &'static str {
                match self { $(StepKind::$variant(_) => $name),* }
            }

            /// The configuration as a trait object.
            pub fn config(&self) -> &dyn StepConfig {
                match self { $(StepKind::$variant(c) => c),* }
            }

            /// The JSON Schema of each type's configuration.
            pub fn schemas(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
                vec![$(($name, <$cfg as JsonSchema>::json_schema(generator))),*]
            }
        }
    };
}

step_kinds! {
    Exec(exec::ExecConfig) = "exec",
    ContainerExec(exec::ContainerExecConfig) = "container.exec",
    ContainerCopy(container::CopyConfig) = "container.copy",
    ContainerRun(container::RunConfig) = "container.run",
    ContainerStart(container::ContainersConfig) = "container.start",
    ContainerStop(container::StopConfig) = "container.stop",
    ContainerRemove(container::RemoveConfig) = "container.remove",
    NetworkCreate(container::NetworkConfig) = "network.create",
    Compress(compress::CompressConfig) = "compress",
    Decompress(compress::CompressConfig) = "decompress",
    Checksum(checksum::ChecksumConfig) = "checksum",
    Archive(archive::ArchiveConfig) = "archive",
    Extract(archive::ExtractConfig) = "extract",
    Health(health::HealthConfig) = "health",
    Gate(gate::GateConfig) = "gate",
    Prune(prune::PruneConfig) = "prune",
    Sleep(sleep::SleepConfig) = "sleep",
    Assert(assert::AssertConfig) = "assert",
    Runbook(runbook::RunbookConfig) = "runbook",
}

/// The outputs each step type produces (the README's table), for `rb validate`.
fn outputs_of(type_name: &str) -> Option<&'static [&'static str]> {
    const PROCESS: &[&str] = &["exit_code", "stdout", "stderr", "file", "bytes", "sha256"];
    const CONTAINER_PROCESS: &[&str] = &[
        "exit_code",
        "stdout",
        "stderr",
        "file",
        "bytes",
        "sha256",
        "transport",
        "fifo",
    ];
    Some(match type_name {
        "exec" => PROCESS,
        "container.exec" => CONTAINER_PROCESS,
        "container.copy" => &["path", "bytes", "sha256", "entries"],
        "container.run" => &["id"],
        "container.start" | "container.stop" => &["changed"],
        "container.remove" => &["changed", "volumes_removed"],
        "network.create" => &["id", "changed"],
        "compress" | "decompress" => &["file", "bytes", "sha256"],
        "checksum" => &["sha256", "files"],
        "archive" => &["file", "bytes", "sha256", "entries"],
        "extract" => &["path", "entries", "bytes", "sha256"],
        "health" => &["attempts", "latency_ms"],
        "gate" => &["approved_by", "approved_at", "waited_seconds"],
        "prune" => &["kept", "removed", "reasons", "incomplete", "dry_run"],
        "sleep" | "assert" => &[],
        _ => return None,
    })
}

/// Run one attempt of a step. `ctx` is the template context (for `assert`).
pub async fn run(
    kind: &StepKind,
    cx: &crate::exec::cx::StepCx,
    ctx: &minijinja::Value,
) -> crate::exec::cx::StepResult {
    match kind {
        StepKind::Exec(c) => exec::run(c, cx).await,
        StepKind::ContainerExec(c) => exec::run_in_container(c, cx).await,
        StepKind::ContainerCopy(c) => container::run_copy(c, cx).await,
        StepKind::ContainerRun(c) => container::run_run(c, cx).await,
        StepKind::ContainerStart(c) => container::run_start(c, cx).await,
        StepKind::ContainerStop(c) => container::run_stop(c, cx).await,
        StepKind::ContainerRemove(c) => container::run_remove(c, cx).await,
        StepKind::NetworkCreate(c) => container::run_network(c, cx).await,
        StepKind::Compress(c) => compress::run(c, cx, false).await,
        StepKind::Decompress(c) => compress::run(c, cx, true).await,
        StepKind::Checksum(c) => checksum::run(c, cx).await,
        StepKind::Archive(c) => archive::run_archive(c, cx).await,
        StepKind::Extract(c) => archive::run_extract(c, cx).await,
        StepKind::Health(c) => health::run(c, cx).await,
        StepKind::Gate(c) => gate::run(c, cx).await,
        StepKind::Prune(c) => prune::run(c, cx).await,
        StepKind::Sleep(c) => sleep::run(c, cx).await,
        StepKind::Assert(c) => assert::run(c, cx, ctx),
        StepKind::Runbook(c) => Box::pin(runbook::run(c, cx)).await,
    }
}
