//! The runtime contract: how a submission's commands are run, whatever runs
//! them.
//!
//! A runtime is made from a [`LaunchSpec`] by [`spawn_runtime`], which looks
//! up the spec's `type` in the [`registry`]. It then runs commands:
//! [`SubmissionRuntime::stream`] yields [`RuntimeEvent`]s as the command
//! prints and ends with [`RuntimeEvent::Finished`];
//! [`SubmissionRuntime::execute`] waits for the [`RuntimeResult`]. Those two
//! run one command at a time (the seed's contract);
//! [`SubmissionRuntime::start`] runs commands side by side, and
//! [`read_file`](SubmissionRuntime::read_file) and
//! [`write_file`](SubmissionRuntime::write_file) reach the session's files.
//!
//! Every runtime keeps these guarantees:
//!
//! - output is raw bytes, delivered as soon as it is written;
//! - memory is bounded: results keep at most [`ExecRequest::capture_limit`]
//!   bytes per stream and count the rest;
//! - at a timeout the whole tree of the command is killed and `Finished`
//!   follows promptly (for a command run beside others, its own processes:
//!   see [`KillScope`]);
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
pub mod files;
pub mod fork_gate;
mod host_spawn;
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
mod process_tree;
mod raw_child;
mod raw_syscall;
pub mod registry;
pub mod sandbox;
pub mod slurm;
mod slurm_allocation;
mod slurm_container;
pub mod slurm_health;
mod slurm_status;
pub mod users;

pub use capture::CapturedOutput;
pub use containment::{Containment, local_containment, pid_namespaces};
pub use error::RuntimeError;
pub use events::{EVENT_BUFFER, EventStream};
pub use files::FileError;
pub use models::{
    DEFAULT_CAPTURE_LIMIT, ExecRequest, KillScope, KilledBy, LaunchSpec, Outcome, OutputChunk,
    Phase, RuntimeEvent, RuntimeInfo, RuntimeResult, RuntimeState, SetupFailure, SlurmJob,
    StaticAsset, StreamKind, Usage, Verdict, shell_words,
};
pub use registry::{Registry, RuntimeBackend, spawn_runtime};
pub use slurm_allocation::AllocationPool;

use async_trait::async_trait;

/// A place where a submission's commands run: host processes, a container...
///
/// Methods take `&self` so that `kill` and `poll` can be called from another
/// task while `stream` runs.
///
/// Two ways to run commands: [`stream`](Self::stream) and
/// [`execute`](Self::execute) run one at a time (the seed's contract: a
/// timeout, or the stream dropped, kills everything the session runs);
/// [`start`](Self::start) runs a command beside others (its timeout kills
/// its own processes only).
#[async_trait]
pub trait SubmissionRuntime: Send + Sync {
    /// Starts `request` and returns its events, ending with
    /// [`RuntimeEvent::Finished`]. The first command of a runtime runs the
    /// setup commands first. Dropping the stream kills the command and
    /// what the session runs ([`KillScope::Session`]).
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Busy`] while another command runs; a cleaned-up
    /// runtime; a `user` or `cwd` the runtime cannot use.
    async fn stream(&self, request: ExecRequest) -> Result<EventStream, RuntimeError>;

    /// Starts `request` beside the commands that run, and returns its
    /// events. A timeout, or dropping the stream, kills this command's
    /// processes only ([`KillScope::Command`]); `kill` and `cleanup` kill
    /// them all. Setup runs first if it has not run yet (a command that
    /// comes while it runs waits for it).
    ///
    /// The default runs it as [`stream`](Self::stream) does, one at a time.
    ///
    /// # Errors
    ///
    /// As [`stream`](Self::stream), without `Busy`.
    async fn start(&self, request: ExecRequest) -> Result<EventStream, RuntimeError> {
        self.stream(request).await
    }

    /// Reads the file at `path` in the session's view (relative to its
    /// working dir, or absolute), as the session's user, at most `limit`
    /// bytes. The default reads it through a command of the session.
    ///
    /// # Errors
    ///
    /// Each of [`FileError`]'s cases: not found, a directory, not
    /// readable, over `limit`.
    async fn read_file(&self, path: &str, limit: u64) -> Result<bytes::Bytes, FileError> {
        files::through_commands::read(self, path, limit).await
    }

    /// Replaces the contents of the file at `path` (the session's view)
    /// with `data`, making missing parent folders, as the session's user.
    /// The default writes it through a command of the session.
    ///
    /// # Errors
    ///
    /// Each of [`FileError`]'s cases: a directory, not writable.
    async fn write_file(&self, path: &str, data: bytes::Bytes) -> Result<(), FileError> {
        files::through_commands::write(self, path, data).await
    }

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
