//! Step types: the contract between a step and the rest of rb, and one file per type.
//!
//! What a running step gets ([`cx::StepCx`]), returns ([`cx::StepResult`]) and may fail with
//! ([`cx::StepError`]) is defined here, in [`cx`]; what the rest of rb needs to know about a
//! step is the [`Step`] trait, implemented by every type's configuration struct. Nothing
//! outside a step's own file knows a type by its name: the executor, the validator,
//! `rb plan --check` and the renderings ask the trait (through [`StepKind`]).
//!
//! A step is decoded in two halves from the same YAML mapping: the keys every step shares
//! ([`common::StepCommon`]) and the keys of its `type` (the config structs here). Decoding the
//! `type` first and then a plain struct keeps serde's error positions, which
//! `#[serde(flatten)]` and internally tagged enums would lose.
//!
//! # Adding a step type
//!
//! 1. Write `src/steps/NAME.rs`: the configuration struct (`Deserialize`, `Serialize`,
//!    `JsonSchema`, `#[serde(deny_unknown_fields)]`, a `///` on every field: it becomes the
//!    schema's description) and `impl Step for NameConfig`. The compiler asks for every hook
//!    that matters: [`Step::TYPE`] (its outputs, whether it is a gate, the keys it evaluates as
//!    expressions, the key naming a runbook it includes), [`Step::touches`] (engine and host,
//!    containers, images, stores and local paths, for `rb plan --check`) and [`Step::run`]. [`Step::problems`] and [`Step::timeout_problems`] default to none.
//! 2. Declare the module below and add one line to the `step_kinds!` registration:
//!    `Variant(name::NameConfig) = "type.name",`. Two types cannot share a configuration
//!    struct (wrap one in a `#[serde(transparent)]` newtype, as `decompress` does).
//! 3. Document the type in `docs/runbook-format.md` and regenerate `schemas/*.json`.
//!
//! ```text
//! impl Step for PutConfig {
//!     const TYPE: StepType = plain(&["key", "bytes", "sha256"]);
//!
//!     fn touches(&self) -> Touches {
//!         Touches { stores: vec![self.store.clone()], ..Touches::default() }
//!     }
//!
//!     async fn run(&self, cx: &StepCx) -> StepResult {
//!         put(self, cx).await
//!     }
//! }
//! ```

pub mod archive;
pub mod assert;
pub mod checksum;
pub mod common;
pub mod compress;
pub mod container;
pub mod cx;
pub mod exec;
#[cfg(test)]
pub mod fake;
pub mod gate;
pub mod health;
pub mod object;
pub mod process;
pub mod prune;
pub mod runbook;
pub mod sleep;
pub mod store;
pub mod transport;

use crate::yaml::de::{DeError, from_node};
use crate::yaml::node::Node;
use cx::{StepCx, StepResult};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use std::time::Duration;

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

/// What rb knows about a step type before any step of it is decoded (a step whose fields are
/// templates decodes only once rendered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepType {
    /// The outputs a step of the type produces (the README's table), for `rb validate`;
    /// `None` when they depend on the step (a sub-runbook's are its steps' ids).
    pub outputs: Option<&'static [&'static str]>,
    /// It waits for a person: `--approve` names it, the graph draws it apart, and it measures
    /// its own timeout (a person's time, not the machine's).
    pub gate: bool,
    /// Keys whose strings (or list items) are expressions evaluated when the step runs, not
    /// templates (`assert`'s `that`): validated as expressions.
    pub expressions: &'static [&'static str],
    /// The key naming a runbook file it runs inside the run (`runbook`'s `file`), for plans
    /// that show a sub-runbook's steps.
    pub includes: Option<&'static str>,
}

/// What a step touches outside rb, from its (rendered) configuration: what `rb plan --check`
/// probes before anything runs. Names may be runtime placeholders (`<…>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touches {
    /// It talks to a Docker engine: the one `host` names, else the default one.
    pub engine: bool,
    /// The `hosts:` entry whose engine it talks to (`None`: the default engine); checked to
    /// be declared.
    pub host: Option<String>,
    /// Containers that must exist before it runs.
    pub containers: Vec<String>,
    /// Containers it creates (later steps may name them before they exist).
    pub creates: Vec<String>,
    /// Images the step runs: present on the engine, or pulled as `pull` says.
    pub images: Vec<String>,
    /// When `images` are pulled: `missing`, `always`, or `never` (also when empty).
    pub pull: &'static str,
    /// Object stores it reads or writes, by name.
    pub stores: Vec<String>,
    /// Local files and directories it writes (relative to the runbook's directory).
    pub writes: Vec<String>,
}

/// Implemented by every step configuration: what the rest of rb needs to know about a step,
/// and how it runs.
pub trait Step: Send + Sync {
    /// What is known about the type before a step of it is decoded.
    const TYPE: StepType;

    /// What the step touches outside rb, for `rb plan --check`.
    fn touches(&self) -> Touches;

    /// Checks across fields that serde cannot express (exactly one of two keys, …).
    fn problems(&self) -> Vec<ConfigProblem> {
        Vec::new()
    }

    /// Checks against the step's `timeout` (a grace period that must fit inside it, …).
    fn timeout_problems(&self, _timeout: Option<Duration>) -> Vec<ConfigProblem> {
        Vec::new()
    }

    /// Run one attempt. Stop soon after `cx.cancel` fires (timeout, interrupt), having
    /// stopped what the step started.
    fn run(&self, cx: &StepCx) -> impl Future<Output = StepResult> + Send;
}

/// The registration of every step type: `Variant(config type) = "type name"`, in the order
/// the docs list them.
macro_rules! step_kinds {
    ($($(#[$attr:meta])* $variant:ident($cfg:ty) = $name:literal),* $(,)?) => {
        /// A step's type-specific configuration.
        #[derive(Debug, Clone, Serialize)]
        #[serde(untagged)]
        pub enum StepKind { $($(#[$attr])* $variant($cfg)),* }

        /// Every step type name, in the order the docs list them.
        pub const STEP_TYPES: &[&str] = &[$($(#[$attr])* $name),*];

        /// What is known about the step type named `type_name`, if there is one.
        pub fn step_type(type_name: &str) -> Option<StepType> {
            match type_name {
                $($(#[$attr])* $name => Some(<$cfg as Step>::TYPE),)*
                _ => None,
            }
        }

        impl StepKind {
            /// Decode the configuration of a step of type `type_name` (one of [`STEP_TYPES`]).
            pub fn decode(type_name: &str, node: &Node) -> Result<Self, DeError> {
                match type_name {
                    $($(#[$attr])* $name => from_node::<$cfg>(node).map(StepKind::$variant),)*
                    other => Err(serde::de::Error::custom(format_args!("unknown step type `{other}`"))),
                }
            }

            /// The step's type name.
            pub fn type_name(&self) -> &'static str {
                match self { $($(#[$attr])* StepKind::$variant(_) => $name),* }
            }

            /// What is known about the step's type.
            pub fn step_type(&self) -> StepType {
                match self { $($(#[$attr])* StepKind::$variant(_) => <$cfg as Step>::TYPE),* }
            }

            /// See [`Step::touches`].
            pub fn touches(&self) -> Touches {
                match self { $($(#[$attr])* StepKind::$variant(c) => c.touches()),* }
            }

            /// See [`Step::problems`].
            pub fn problems(&self) -> Vec<ConfigProblem> {
                match self { $($(#[$attr])* StepKind::$variant(c) => c.problems()),* }
            }

            /// See [`Step::timeout_problems`].
            pub fn timeout_problems(&self, timeout: Option<Duration>) -> Vec<ConfigProblem> {
                match self { $($(#[$attr])* StepKind::$variant(c) => c.timeout_problems(timeout)),* }
            }

            /// Run one attempt of the step (see [`Step::run`]).
            pub async fn run(&self, cx: &StepCx) -> StepResult {
                match self { $($(#[$attr])* StepKind::$variant(c) => c.run(cx).await),* }
            }

            /// The JSON Schema of each type's configuration.
            pub fn schemas(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
                vec![$($(#[$attr])* ($name, <$cfg as JsonSchema>::json_schema(generator))),*]
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
    Decompress(compress::DecompressConfig) = "decompress",
    Checksum(checksum::ChecksumConfig) = "checksum",
    Archive(archive::ArchiveConfig) = "archive",
    Extract(archive::ExtractConfig) = "extract",
    Health(health::HealthConfig) = "health",
    Gate(gate::GateConfig) = "gate",
    Prune(prune::PruneConfig) = "prune",
    Sleep(sleep::SleepConfig) = "sleep",
    Assert(assert::AssertConfig) = "assert",
    Runbook(runbook::RunbookConfig) = "runbook",
    ObjectPut(object::PutConfig) = "object.put",
    ObjectGet(object::GetConfig) = "object.get",
    ObjectList(object::ListConfig) = "object.list",
    ObjectDelete(object::DeleteConfig) = "object.delete",
    // A step for the executor's unit tests (it sleeps, fails, outputs as told).
    #[cfg(test)]
    Fake(fake::FakeConfig) = "fake",
}

/// A [`StepType`] for a type with these outputs that is no gate, evaluates no expressions and
/// includes no runbook: most types.
#[must_use]
pub const fn plain(outputs: &'static [&'static str]) -> StepType {
    StepType {
        outputs: Some(outputs),
        gate: false,
        expressions: &[],
        includes: None,
    }
}

/// The outputs of a process step (`exec`, `container.exec`).
pub const PROCESS_OUTPUTS: &[&str] = &["exit_code", "stdout", "stderr", "file", "bytes", "sha256"];

/// The outputs of `container.exec`: a process step's, plus the transport it used (and, over
/// a FIFO, its route).
pub const CONTAINER_PROCESS_OUTPUTS: &[&str] = &[
    "exit_code",
    "stdout",
    "stderr",
    "file",
    "bytes",
    "sha256",
    "transport",
    "fifo",
];
