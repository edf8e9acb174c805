//! The only module that talks to the Docker Engine API (through bollard).
//!
//! - [`Engine`]: one engine, reached by `unix://`, `tcp://` (optionally TLS) or `ssh://`;
//!   every error names its endpoint.
//! - [`Engine::exec`]: a command in a container with stdin/stdout/stderr streamed in bounded
//!   memory and never a TTY; a cancelled or timed-out exec really stops its processes
//!   (how: see the `reap` module's docs).
//! - [`Engine::copy_out`], [`Engine::copy_out_to`], [`Engine::copy_in`]: the archive API,
//!   streamed and hashed, refusing entries that escape their destination.
//! - [`Engine::run`], [`Engine::start`], [`Engine::stop`], [`Engine::remove`],
//!   [`Engine::network_create`]: idempotent lifecycle that waits for the state it asks for
//!   and reports whether anything changed.
//! - [`Engine::container_health_check`]: running, and a command succeeds.
//!
//! rb never pulls images: a missing image is [`DockerError::ImageMissing`].

mod archive;
mod copy;
mod engine;
mod error;
mod exec;
mod health;
mod lifecycle;
mod reap;
mod stream;

pub use archive::CopyReport;
pub use copy::collect;
pub use engine::{DEFAULT_ENDPOINT, Engine, EngineVersion, HostSpec, TlsFiles, TlsSpec};
pub use error::{DockerError, exit_message};
pub use exec::{CAPTURE_LIMIT, ExecOutput, ExecResult, ExecSpec, exit_error};
pub use health::{HealthProbe, HealthReport};
pub use lifecycle::{ContainerStatus, NetworkOutcome, PortMapping, RunSpec};
pub use stream::TailBuffer;
pub use tokio_util::sync::CancellationToken;
