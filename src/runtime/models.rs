//! The data that crosses the runtime contract.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::capture::CapturedOutput;
use super::containment::Containment;
use super::slurm_allocation::AllocationPool;
use crate::spec::{EnvironmentSpec, Mount};

/// Bytes a result keeps per stream unless the request says otherwise: 64 MiB.
pub const DEFAULT_CAPTURE_LIMIT: usize = 64 << 20;

/// Everything a runtime needs to start: where, in which environment, with
/// what files, ports and variables.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Identifies the run in logs and container labels; sortable by time.
    pub run_id: String,
    /// The submission's workspace on the host.
    pub working_dir: PathBuf,
    /// The environment to run in.
    pub environment: EnvironmentSpec,
    /// Files the submission may read, by name (see `{{static:NAME}}`).
    pub static_assets: BTreeMap<String, StaticAsset>,
    /// Container port to host port (Docker only).
    pub ports: BTreeMap<u16, u16>,
    /// Extra bind mounts (Docker only).
    pub mounts: Vec<Mount>,
    /// Variables added to every command, over the spec's.
    pub env_vars: BTreeMap<String, String>,
    /// Run the spec's `eval_commands` during setup too.
    pub is_evaluation: bool,
    /// Skip every setup command.
    pub disable_setup: bool,
    /// The session resumes from a snapshot of its workspace: the spec's
    /// `setup.resume_commands` run after its other setup commands.
    pub resume: bool,
    /// One more setup command, after the spec's.
    pub setup_command: Option<String>,
    /// Labels of the run, recorded in its log (and on its containers).
    pub labels: BTreeMap<String, String>,
    /// Slurm only: the pool a batch's sessions hand their allocations on
    /// through (see [`AllocationPool`]); other runtimes ignore it.
    pub allocation_pool: Option<AllocationPool>,
}

impl LaunchSpec {
    /// A launch of `environment` in `working_dir` with a fresh run id and
    /// nothing else.
    pub fn new(environment: EnvironmentSpec, working_dir: impl Into<PathBuf>) -> Self {
        Self {
            run_id: ulid::Ulid::generate().to_string(),
            working_dir: working_dir.into(),
            environment,
            static_assets: BTreeMap::new(),
            ports: BTreeMap::new(),
            mounts: Vec::new(),
            env_vars: BTreeMap::new(),
            is_evaluation: false,
            disable_setup: false,
            resume: false,
            setup_command: None,
            labels: BTreeMap::new(),
            allocation_pool: None,
        }
    }

    /// The setup commands this launch runs, in order.
    pub fn setup_commands(&self) -> Vec<String> {
        if self.disable_setup {
            return Vec::new();
        }
        let mut commands = self
            .environment
            .setup_commands(self.is_evaluation, self.resume);
        commands.extend(self.setup_command.iter().cloned());
        commands
    }
}

impl LaunchSpec {
    /// Each static asset's host path, resolved: a path inside the working
    /// dir (relative, or absolute under it) must stay inside it (see
    /// [`beneath`](super::beneath)); others are the operator's, as given.
    ///
    /// # Errors
    ///
    /// An asset inside the working dir that leads out of it, or is missing.
    pub fn asset_sources(&self) -> Result<BTreeMap<String, PathBuf>, super::RuntimeError> {
        self.static_assets
            .iter()
            .map(|(name, asset)| {
                let path = super::beneath::resolve_in_submission(&self.working_dir, &asset.path)
                    .map_err(|source| super::RuntimeError::Path {
                        what: format!("static asset `{name}`"),
                        source,
                    })?;
                Ok((name.clone(), self.working_dir.join(path)))
            })
            .collect()
    }
}

/// A file the submission may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticAsset {
    /// Where it is on the host; relative to the working dir when relative.
    pub path: PathBuf,
    /// Where it goes under `/static/` in a container.
    pub save_path: PathBuf,
}

impl StaticAsset {
    /// The file at `path`, kept under its `name` (as `subrt run --asset
    /// NAME=PATH` and a batch file's `assets` give them): `name` and the
    /// asset, for [`LaunchSpec::static_assets`].
    pub fn named(name: &str, path: PathBuf) -> (String, Self) {
        let asset = Self {
            path,
            save_path: PathBuf::from(name),
        };
        (name.to_owned(), asset)
    }
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Shell command line, run as `<shell> -c <command>`; with [`argv`]
    /// set, its shell-quoted rendering (what the run log shows).
    ///
    /// [`argv`]: Self::argv
    pub command: String,
    /// A program and its arguments, run without a shell's parsing (as
    /// `sh -c 'exec "$@"' sh ARGV...`, so that a program that cannot be run
    /// ends 126 or 127 with the shell's message on stderr, as in a shell).
    /// `{{static:NAME}}` is not expanded in it.
    pub argv: Option<Vec<String>>,
    /// The command's working dir: relative to the session's, or absolute
    /// (in the session's view of the filesystem). `None`: the session's.
    pub cwd: Option<String>,
    /// Who runs the command: a user name or uid of the session's system.
    /// `None`: the session's user. A user that does not exist, or that the
    /// runtime cannot switch to, is an error of the call.
    pub user: Option<String>,
    /// Variables over the launch's.
    pub env: BTreeMap<String, String>,
    /// Bytes written to the command's stdin; without it stdin is empty.
    pub stdin: Option<Bytes>,
    /// Wall-clock limit of the call, setup included.
    pub timeout: Option<Duration>,
    /// Bytes the result keeps per stream; the rest is counted, not kept.
    /// 0 keeps nothing (for callers that use the events).
    pub capture_limit: usize,
}

impl ExecRequest {
    /// A request for `command` with no env, stdin or timeout.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            argv: None,
            cwd: None,
            user: None,
            env: BTreeMap::new(),
            stdin: None,
            timeout: None,
            capture_limit: DEFAULT_CAPTURE_LIMIT,
        }
    }

    /// A request that runs `argv` (program first) without a shell's
    /// parsing; its [`command`](Self::command) is the shell-quoted line.
    pub fn argv<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
        let mut request = Self::new(shell_words(&argv));
        request.argv = Some(argv);
        request
    }

    /// Sets the working dir (relative to the session's, or absolute).
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Sets who runs the command (a user name or uid).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The shell line and its positional arguments: what the runtime runs
    /// as `<shell> -c LINE sh ARGS...`.
    pub(crate) fn shell_line(&self) -> (&str, &[String]) {
        match &self.argv {
            Some(argv) => (ARGV_LINE, argv),
            None => (&self.command, &[]),
        }
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the bytes written to stdin.
    pub fn stdin(mut self, stdin: impl Into<Bytes>) -> Self {
        self.stdin = Some(stdin.into());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets how many bytes per stream the result keeps.
    pub fn capture_limit(mut self, bytes: usize) -> Self {
        self.capture_limit = bytes;
        self
    }
}

/// What the shell runs for [`ExecRequest::argv`]: its positional
/// arguments, as given.
pub(crate) const ARGV_LINE: &str = "exec \"$@\"";

/// `argv` as one shell line that a POSIX shell splits back into it: words
/// of safe characters bare, others in single quotes.
pub fn shell_words(argv: &[String]) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    argv.iter()
        .map(|word| {
            if !word.is_empty() && word.chars().all(safe) {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a timeout of a command, or dropping its stream, kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillScope {
    /// Everything the session runs: the seed's one-command-at-a-time
    /// calls ([`stream`](super::SubmissionRuntime::stream),
    /// [`execute`](super::SubmissionRuntime::execute)).
    Session,
    /// The command's own processes, leaving the others of the session
    /// running ([`start`](super::SubmissionRuntime::start)).
    Command,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Which part of a call printed a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// A setup command.
    Setup,
    /// The requested command.
    Command,
}

/// Bytes a command wrote, exactly as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Stdout or stderr.
    pub stream: StreamKind,
    /// Setup or the command.
    pub phase: Phase,
    /// The bytes, never decoded.
    pub data: Bytes,
}

/// What a running command reports.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeEvent {
    /// A setup command starts.
    SetupStarted {
        /// The command line.
        command: String,
    },
    /// A host process of the call started (local runtime): what another
    /// process needs to find and signal it.
    ProcessStarted {
        /// Its pid.
        pid: u32,
        /// Its process group.
        pgid: i32,
        /// The init of the session's PID namespace, when the session has
        /// one: SIGKILL to it kills every process of the session.
        init: Option<u32>,
    },
    /// The command wrote to stdout or stderr.
    Output(OutputChunk),
    /// A warning or error of the runtime itself (not the command's output).
    Note(String),
    /// The call ended; always the last event.
    Finished(Box<RuntimeResult>),
}

/// How a call ended and what it printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeResult {
    /// Exit code, or 128+N when killed by signal N (shell convention).
    pub exit_code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// The command's stdout.
    pub stdout: CapturedOutput,
    /// The command's stderr.
    pub stderr: CapturedOutput,
    /// The setup commands' stdout.
    pub setup_stdout: CapturedOutput,
    /// The setup commands' stderr.
    pub setup_stderr: CapturedOutput,
    /// Wall time of the call, setup included.
    #[serde(serialize_with = "serialize_secs")]
    pub elapsed: Duration,
    /// The timeout ended it.
    pub timed_out: bool,
    /// A kill ended it: `kill` or `cleanup`, or a kill from outside subrt.
    pub killed: bool,
    /// Who or what ended it, when it did not end by itself.
    pub killed_by: Option<KilledBy>,
    /// The kernel's out-of-memory killer ended a process of the command.
    pub oom_killed: bool,
    /// What the call cost, where the runtime can measure it.
    pub usage: Usage,
    /// The command's exit status could not be read, and why: `node failed:
    /// ...`, `cluster unreachable: ...`, `status lost: ...`. Its processes
    /// may have run on; `exit_code` is -1. Never a success.
    pub status_lost: Option<String>,
    /// The setup command that failed, if one did; the command did not run.
    pub setup_failure: Option<SetupFailure>,
}

/// What a call cost, setup included, where the runtime can measure it (a
/// cgroup of its own: Docker on a local daemon, sandboxed local sessions);
/// each field is `None` where it cannot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Usage {
    /// Most memory its processes held at once, in bytes.
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
    /// CPU time its processes spent in user mode.
    #[serde(default)]
    pub cpu_user_seconds: Option<f64>,
    /// CPU time its processes spent in the kernel.
    #[serde(default)]
    pub cpu_system_seconds: Option<f64>,
}

impl Usage {
    /// The cost of two parts of a call (setup, then the command): CPU
    /// times add up, the peak is the larger.
    pub fn and(self, other: Usage) -> Usage {
        let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        Usage {
            peak_memory_bytes: self.peak_memory_bytes.max(other.peak_memory_bytes),
            cpu_user_seconds: add(self.cpu_user_seconds, other.cpu_user_seconds),
            cpu_system_seconds: add(self.cpu_system_seconds, other.cpu_system_seconds),
        }
    }

    /// Nothing was measured.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// Who or what ended a command that did not end by itself: the
/// `killed_by` of every outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KilledBy {
    /// Its timeout.
    Timeout,
    /// A kill asked of subrt: `kill`, `cleanup`, `k` in the dashboard, a
    /// cancelled batch.
    Kill,
    /// Something outside subrt: `docker kill` of the session's container,
    /// a SIGKILL of its PID namespace's init, `scancel` of its job.
    Outside,
    /// The kernel's out-of-memory killer, at the session's memory limit.
    OutOfMemory,
}

impl std::fmt::Display for KilledBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KilledBy::Timeout => "its timeout",
            KilledBy::Kill => "a kill through subrt",
            KilledBy::Outside => "a kill from outside subrt",
            KilledBy::OutOfMemory => "the out-of-memory killer",
        })
    }
}

impl RuntimeResult {
    /// An empty result, to be filled in.
    pub(crate) fn empty() -> Self {
        Self {
            exit_code: 0,
            signal: None,
            stdout: CapturedOutput::default(),
            stderr: CapturedOutput::default(),
            setup_stdout: CapturedOutput::default(),
            setup_stderr: CapturedOutput::default(),
            elapsed: Duration::ZERO,
            timed_out: false,
            killed: false,
            killed_by: None,
            oom_killed: false,
            usage: Usage::default(),
            status_lost: None,
            setup_failure: None,
        }
    }

    /// True when the command ran and its status, read, was 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
            && self.signal.is_none()
            && self.setup_failure.is_none()
            && self.status_lost.is_none()
    }
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// How a command ended, in the words every output of subrt uses:
/// `run --json`, `ls --json`, `export --format json`, `batch --json` and
/// the Python package's results carry these fields with these names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Exit code, or 128+N when killed by signal N.
    pub exit_code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// The timeout ended it.
    pub timed_out: bool,
    /// A kill ended it (`kill`, or a kill from outside the session).
    pub killed: bool,
    /// Who or what ended it, when it did not end by itself.
    #[serde(default)]
    pub killed_by: Option<KilledBy>,
    /// The out-of-memory killer ended a process of it.
    #[serde(default)]
    pub oom_killed: bool,
    /// What it cost: `peak_memory_bytes`, `cpu_user_seconds`,
    /// `cpu_system_seconds`.
    #[serde(flatten)]
    pub usage: Usage,
    /// Its exit status could not be read, and why (see
    /// [`RuntimeResult::status_lost`]).
    #[serde(default)]
    pub status_lost: Option<String>,
    /// The setup command that failed; the command did not run.
    pub setup_failure: Option<SetupFailure>,
    /// Bytes written to stdout, setup included.
    pub stdout_bytes: u64,
    /// Bytes written to stderr, setup included.
    pub stderr_bytes: u64,
    /// Not every byte was kept (by the result's capture limit, or the run
    /// log's `max_run_bytes`).
    pub truncated: bool,
}

impl Outcome {
    /// The command ran and its status, read, was 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
            && self.signal.is_none()
            && self.setup_failure.is_none()
            && self.status_lost.is_none()
    }
}

impl RuntimeResult {
    /// The result's [`Outcome`].
    pub fn outcome(&self) -> Outcome {
        let streams = [
            &self.stdout,
            &self.stderr,
            &self.setup_stdout,
            &self.setup_stderr,
        ];
        Outcome {
            exit_code: self.exit_code,
            signal: self.signal,
            timed_out: self.timed_out,
            killed: self.killed,
            killed_by: self.killed_by,
            oom_killed: self.oom_killed,
            usage: self.usage,
            status_lost: self.status_lost.clone(),
            setup_failure: self.setup_failure.clone(),
            stdout_bytes: self.stdout.total_bytes + self.setup_stdout.total_bytes,
            stderr_bytes: self.stderr.total_bytes + self.setup_stderr.total_bytes,
            truncated: streams.iter().any(|s| s.truncated()),
        }
    }
}

/// The one word for how a command or a run stands, used by every output
/// of subrt: `ls --state` and its STATE column, the batch summary, the
/// dashboard's views (`R`, `F`, `T`, `K`), its title counts and colours.
///
/// - **ok**: the command ran and its status, read, was 0;
/// - **failed**: it ended by itself with another status, by a signal it
///   got from within, out of memory, or its setup failed, or its status
///   could not be read (`status_lost`);
/// - **timed out**: its timeout ended it;
/// - **killed**: a kill ended it, through subrt or from outside;
/// - **interrupted**: its owner (the subrt process) died before the run
///   ended, whatever its last command did;
/// - **running** / **idle**: the run is alive, a command runs / none does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Ran, status read, 0.
    Ok,
    /// Ended another way of its own (see the type's doc).
    Failed,
    /// Its timeout ended it.
    TimedOut,
    /// A kill ended it.
    Killed,
    /// Its owner died before it ended.
    Interrupted,
    /// Alive, a command runs.
    Running,
    /// Alive, between commands.
    Idle,
}

impl Verdict {
    /// Every verdict, most urgent first (the order of title counts).
    pub const ALL: [Verdict; 7] = [
        Verdict::Running,
        Verdict::Idle,
        Verdict::Failed,
        Verdict::TimedOut,
        Verdict::Killed,
        Verdict::Interrupted,
        Verdict::Ok,
    ];

    /// How an ended command stands.
    pub fn of(outcome: &Outcome) -> Verdict {
        if outcome.timed_out {
            Verdict::TimedOut
        } else if outcome.killed {
            Verdict::Killed
        } else if outcome.success() {
            Verdict::Ok
        } else {
            Verdict::Failed
        }
    }

    /// The word people read: `ok`, `failed`, `timed out`, `killed`,
    /// `interrupted`, `running`, `idle`.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Failed => "failed",
            Verdict::TimedOut => "timed out",
            Verdict::Killed => "killed",
            Verdict::Interrupted => "interrupted",
            Verdict::Running => "running",
            Verdict::Idle => "idle",
        }
    }

    /// The word on a command line (`ls --state timed_out`) and in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Verdict::TimedOut => "timed_out",
            other => other.word(),
        }
    }

    /// The verdict a command-line word names.
    pub fn from_key(key: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.key() == key)
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// A setup command that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SetupFailure {
    /// The command line.
    pub command: String,
    /// Its exit code (128+N for signal N).
    pub exit_code: i32,
}

/// What a runtime is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeState {
    /// Ready for a command.
    Idle,
    /// Running setup commands.
    Setup,
    /// Running the command.
    Running,
    /// Cleaned up; runs nothing more.
    Cleaned,
}

/// A runtime's identity and state, for display and for finding its
/// processes from another process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeInfo {
    /// The registry type, e.g. `"local"`.
    pub kind: String,
    /// What it is doing.
    pub state: RuntimeState,
    /// Process id of the running command's shell (local).
    pub pid: Option<u32>,
    /// Process group of the running command (local).
    pub pgid: Option<i32>,
    /// The container (Docker).
    pub container_id: Option<String>,
    /// What holds the session's processes together.
    pub containment: Containment,
    /// The init of the session's PID namespace (local, `pid-namespace`).
    pub init_pid: Option<u32>,
    /// The session's allocation (Slurm).
    pub slurm_job: Option<SlurmJob>,
    /// How the session's commands start, where a runtime has more than one
    /// way (Docker: through subrt's agent, or `docker exec` and why).
    pub commands_start: Option<String>,
}

/// A Slurm allocation holding a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SlurmJob {
    /// The job id (`squeue -j`, `scancel`).
    pub job_id: String,
    /// The node it runs on.
    pub node: String,
}
