//! Errors of the runtimes, with what a user needs to act on them.

use std::path::PathBuf;

/// Why a runtime could not be made or could not run a command.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No runtime is registered under the spec's type.
    #[error("unknown runtime type `{kind}` (registered types: {})", registered.join(", "))]
    UnknownType {
        /// The type asked for.
        kind: String,
        /// The types that are registered.
        registered: Vec<String>,
    },
    /// The working directory is missing or not a directory.
    #[error("working directory {} is not usable: {reason}", path.display())]
    WorkingDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The shell of a local environment cannot be run.
    #[error("shell {} of environment `{environment}` cannot be run: {reason}", shell.display())]
    Shell {
        /// The shell.
        shell: PathBuf,
        /// The environment that names it.
        environment: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A command names a static asset that the launch does not have.
    #[error("unknown static asset `{name}` in `{{{{static:{name}}}}}` (assets: {})",
        if available.is_empty() { "none".to_owned() } else { available.join(", ") })]
    UnknownAsset {
        /// The name used.
        name: String,
        /// The names the launch has.
        available: Vec<String>,
    },
    /// The environment spec cannot be used by this runtime.
    #[error("environment `{environment}`: {reason}")]
    InvalidSpec {
        /// The environment.
        environment: String,
        /// What is wrong.
        reason: String,
    },
    /// The Docker daemon cannot be reached.
    #[error(
        "cannot reach the Docker daemon at {host}: {reason} \
             (set DOCKER_HOST, or `docker.host` in the environment)"
    )]
    DockerUnreachable {
        /// The socket or URL tried.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The image is missing and could not be pulled.
    #[error("image `{image}`: {reason}")]
    Image {
        /// The image.
        image: String,
        /// What was tried and what the daemon said.
        reason: String,
    },
    /// A Docker Engine API call failed.
    #[error("docker: {action}: {reason}")]
    Docker {
        /// What subrt was doing, e.g. "creating container for run 01J…".
        action: String,
        /// What the daemon said.
        reason: String,
    },
    /// A Slurm command failed: no `srun`, the controller not answering, an
    /// allocation refused.
    #[error("slurm: {action}: {reason}")]
    Slurm {
        /// What subrt was doing.
        action: String,
        /// What the cluster said.
        reason: String,
    },
    /// A path subrt would read or mount on a submission's behalf leads out
    /// of the folder it must stay in, or cannot be used.
    #[error("{what}: {source}")]
    Path {
        /// What the path is for ("static asset `data`").
        what: String,
        /// What is wrong with it.
        #[source]
        source: super::beneath::BeneathError,
    },
    /// A command's `user` does not exist in the session, or the runtime
    /// cannot run commands as that user.
    #[error("user `{user}`: {reason}")]
    User {
        /// The user asked for.
        user: String,
        /// What is wrong.
        reason: String,
    },
    /// A command's `cwd` cannot be used.
    #[error("cwd `{cwd}`: {reason}")]
    Cwd {
        /// The directory asked for.
        cwd: String,
        /// What is wrong.
        reason: String,
    },
    /// A command was started while another one runs on the same runtime.
    #[error("a command is already running on this runtime")]
    Busy,
    /// The runtime was cleaned up and runs nothing more.
    #[error("the runtime was cleaned up")]
    CleanedUp,
    /// The event stream ended without a result (the runtime's task died).
    #[error("the command's event stream ended without a result")]
    StreamEnded,
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}
