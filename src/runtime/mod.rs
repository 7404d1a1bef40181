//! The runtime contract: how a submission's commands are run, whatever runs
//! them.
//!
//! A runtime is made from a [`LaunchSpec`] by [`spawn_runtime`], which looks
//! up the spec's `type` in the [registry](registry). It then runs commands one
//! at a time: [`SubmissionRuntime::stream`] yields [`RuntimeEvent`]s as the
//! command prints and ends with [`RuntimeEvent::Finished`];
//! [`SubmissionRuntime::execute`] waits for the [`RuntimeResult`].
//!
//! Every runtime keeps these guarantees:
//!
//! - output is raw bytes, delivered as soon as it is written;
//! - memory is bounded: results keep at most [`ExecRequest::capture_limit`]
//!   bytes per stream and count the rest;
//! - at a timeout the whole tree of the command is killed and `Finished`
//!   follows promptly;
//! - after `kill`, a timeout, `cleanup`, dropping the stream, dropping the
//!   runtime or the death of the subrt process, no process of the session
//!   survives (see [`Containment`] for what each runtime uses, and what the
//!   local runtime falls back to where namespaces are refused);
//! - setup commands run once, as the first phase of the first command;
//! - a command without stdin reads end-of-file.
//!
//! ```no_run
//! # async fn demo() -> Result<(), subrt::runtime::RuntimeError> {
//! use subrt::runtime::{spawn_runtime, ExecRequest, LaunchSpec, RuntimeEvent};
//! use subrt::spec::EnvironmentSpec;
//!
//! let launch = LaunchSpec::new(EnvironmentSpec::local("local"), "/tmp");
//! let runtime = spawn_runtime(launch).await?;
//! let mut events = runtime.stream(ExecRequest::new("echo hi; echo oops >&2")).await?;
//! while let Some(event) = events.next_event().await {
//!     match event {
//!         RuntimeEvent::Output(chunk) => println!("{:?}: {:?}", chunk.stream, chunk.data),
//!         RuntimeEvent::Finished(result) => println!("exit {}", result.exit_code),
//!         _ => {}
//!     }
//! }
//! runtime.cleanup().await?;
//! # Ok(()) }
//! ```

pub mod beneath;
mod capture;
pub mod cgroup;
mod containment;
pub mod docker;
mod driver;
mod error;
mod events;
pub mod inherited_fds;
mod lasting_thread;
pub mod leftovers;
pub mod local;
mod models;
pub mod owner;
pub mod pid_namespace;
mod placeholders;
pub mod process_group;
mod process_io;
pub mod registry;
pub mod sandbox;
pub mod slurm;
mod slurm_container;
pub mod slurm_health;
mod slurm_status;

pub use capture::CapturedOutput;
pub use containment::{Containment, local_containment, pid_namespaces};
pub use error::RuntimeError;
pub use events::EventStream;
pub use models::{
    DEFAULT_CAPTURE_LIMIT, ExecRequest, KilledBy, LaunchSpec, Outcome, OutputChunk, Phase,
    RuntimeEvent, RuntimeInfo, RuntimeResult, RuntimeState, SetupFailure, SlurmJob, StaticAsset,
    StreamKind, Usage, Verdict,
};
pub use registry::{Registry, RuntimeBackend, spawn_runtime};

use async_trait::async_trait;

/// A place where a submission's commands run: host processes, a container...
///
/// Methods take `&self` so that `kill` and `poll` can be called from another
/// task while `stream` runs. One command runs at a time.
#[async_trait]
pub trait SubmissionRuntime: Send + Sync {
    /// Starts `request` and returns its events, ending with
    /// [`RuntimeEvent::Finished`]. The first command of a runtime runs the
    /// setup commands first. Dropping the stream kills the command.
    async fn stream(&self, request: ExecRequest) -> Result<EventStream, RuntimeError>;

    /// Runs `request` to the end and returns its result.
    async fn execute(&self, request: ExecRequest) -> Result<RuntimeResult, RuntimeError> {
        self.stream(request).await?.finish().await
    }

    /// The exit code of the last command; `None` while one runs or before the
    /// first. Never blocks.
    fn poll(&self) -> Option<i32>;

    /// Kills the running command and everything it started. Idempotent.
    async fn kill(&self) -> Result<(), RuntimeError>;

    /// Kills what is left and releases every resource. Idempotent; the
    /// runtime cannot run commands afterwards.
    async fn cleanup(&self) -> Result<(), RuntimeError>;

    /// What the runtime is and what it runs now.
    fn info(&self) -> RuntimeInfo;
}

impl std::fmt::Debug for dyn SubmissionRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SubmissionRuntime")
            .field(&self.info())
            .finish()
    }
}
