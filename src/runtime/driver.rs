//! What every runtime does the same way: one call at a time, setup as the
//! first phase of the first call, the result assembled from the processes.
//!
//! A backend implements [`Runner::run`] (run one shell line to its end and
//! stream its output) and keeps a [`Lifecycle`]; [`start`] does the rest.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::capture::Capture;
use super::placeholders::expand_static;
use super::{
    EventStream, ExecRequest, KilledBy, Phase, RuntimeError, RuntimeEvent, RuntimeResult,
    RuntimeState, SetupFailure, Usage,
};

/// The state every runtime keeps between calls.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    pub phase: RuntimeState,
    /// The setup commands ran and succeeded (in this container, for Docker).
    pub setup_done: bool,
    /// `kill` was called during the current call.
    pub kill_requested: bool,
    pub last_exit: Option<i32>,
    /// Warnings not yet reported; sent with the next call's events.
    pub notes: Vec<String>,
}

impl Lifecycle {
    pub fn new(notes: Vec<String>) -> Self {
        Self {
            phase: RuntimeState::Idle,
            setup_done: false,
            kill_requested: false,
            last_exit: None,
            notes,
        }
    }

    pub fn running(&self) -> bool {
        matches!(self.phase, RuntimeState::Setup | RuntimeState::Running)
    }

    /// What [`SubmissionRuntime::poll`](super::SubmissionRuntime::poll) says.
    pub fn poll(&self) -> Option<i32> {
        if self.running() { None } else { self.last_exit }
    }

    /// Whether the current call may still start a process: not once it was
    /// killed, nor once the runtime is cleaned up (a command on its way to
    /// the runtime when `cleanup` came must not bring up a new namespace,
    /// container or step).
    pub fn may_start(&self) -> bool {
        !self.kill_requested && self.phase != RuntimeState::Cleaned
    }

    /// Marks a running call as killed (no-op when idle).
    pub fn request_kill(&mut self) {
        if self.running() {
            self.kill_requested = true;
        }
    }
}

/// How one process ended.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    pub code: i32,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// What the backend found ended it: a kill from outside subrt (its
    /// session killed by another process), the out-of-memory killer. A
    /// `kill` of this runtime and a timeout are known without it.
    pub ended_by: Option<KilledBy>,
    /// What the process cost, where the backend measures it.
    pub usage: Usage,
    /// Its status could not be read, and why (`code` is then -1).
    pub lost: Option<String>,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == 0 && self.signal.is_none() && self.lost.is_none()
    }

    /// A process whose status could not be read, for `reason`.
    pub fn lost(reason: String, timed_out: bool) -> Self {
        Self {
            lost: Some(reason),
            ..Self::unknown(timed_out)
        }
    }

    /// Ended by SIGKILL (a kill, a timeout, or killed before it started).
    pub fn killed(timed_out: bool) -> Self {
        Self {
            code: 128 + libc::SIGKILL,
            signal: Some(libc::SIGKILL),
            timed_out,
            ended_by: None,
            usage: Usage::default(),
            lost: None,
        }
    }

    /// An exit known only as a shell status, as Docker's exec API and srun
    /// report one: 129 to 192 are read as signal N = code - 128 (which is
    /// also how `exit 130` looks; they cannot be told apart).
    pub fn from_shell_code(code: i32, timed_out: bool) -> Self {
        Self {
            code,
            signal: (129..=192).contains(&code).then_some(code - 128),
            timed_out,
            ended_by: None,
            usage: Usage::default(),
            lost: None,
        }
    }

    /// How a host process ended: its exit code, or 128+N for signal N.
    pub fn from_status(status: std::process::ExitStatus, timed_out: bool) -> Self {
        use std::os::unix::process::ExitStatusExt;
        let (code, signal) = match status.signal() {
            Some(signal) => (128 + signal, Some(signal)),
            None => (status.code().unwrap_or(-1), None),
        };
        Self {
            code,
            signal,
            timed_out,
            ended_by: None,
            usage: Usage::default(),
            lost: None,
        }
    }

    /// A process that could not be waited for.
    pub fn unknown(timed_out: bool) -> Self {
        Self {
            code: -1,
            signal: None,
            timed_out,
            ended_by: None,
            usage: Usage::default(),
            lost: None,
        }
    }

    /// Could not be started at all (shell convention: 126).
    pub fn not_started() -> Self {
        Self {
            code: 126,
            signal: None,
            timed_out: false,
            ended_by: None,
            usage: Usage::default(),
            lost: None,
        }
    }
}

/// One process of a call, as a backend runs it.
pub(crate) struct Process<'a> {
    pub line: &'a str,
    pub phase: Phase,
    pub stdin: Option<Bytes>,
    pub env: &'a BTreeMap<String, String>,
    pub deadline: Option<Instant>,
    pub tx: &'a mpsc::Sender<RuntimeEvent>,
}

/// A backend: runs single shell lines, streaming their output.
pub(crate) trait Runner: Send + Sync + 'static {
    /// The call state.
    fn lifecycle(&self) -> MutexGuard<'_, Lifecycle>;

    /// The environment of a call with `request_env` on top.
    fn env(&self, request_env: &BTreeMap<String, String>) -> BTreeMap<String, String>;

    /// Runs `process` to its end (or its deadline, or a kill), sending its
    /// output to `process.tx` and into `captures` (stdout, stderr).
    fn run(
        &self,
        process: Process<'_>,
        captures: [Capture; 2],
    ) -> impl Future<Output = (Exit, [Capture; 2])> + Send;
}

/// Starts a call: expands `{{static:NAME}}` with `assets` (name to path as
/// the command sees it), checks that no call runs, decides whether the
/// `setup` commands run, and spawns the task that drives the call.
pub(crate) fn start<R: Runner>(
    runner: &Arc<R>,
    request: ExecRequest,
    setup: &[String],
    assets: &BTreeMap<String, String>,
) -> Result<EventStream, RuntimeError> {
    let expand = |command: &str| {
        expand_static(
            command,
            || assets.keys().cloned().collect(),
            |name| assets.get(name).cloned(),
        )
    };
    let command = expand(&request.command)?;
    let (setup, notes) = {
        let mut life = runner.lifecycle();
        match life.phase {
            RuntimeState::Cleaned => return Err(RuntimeError::CleanedUp),
            RuntimeState::Setup | RuntimeState::Running => return Err(RuntimeError::Busy),
            RuntimeState::Idle => {}
        }
        let setup = if life.setup_done {
            Vec::new()
        } else {
            setup.iter().map(|c| expand(c)).collect::<Result<_, _>>()?
        };
        life.phase = if setup.is_empty() {
            RuntimeState::Running
        } else {
            RuntimeState::Setup
        };
        life.kill_requested = false;
        (setup, std::mem::take(&mut life.notes))
    };
    let (tx, events) = EventStream::channel();
    tokio::spawn(drive(
        Arc::clone(runner),
        request,
        command,
        setup,
        notes,
        tx,
    ));
    Ok(events)
}

/// Runs the setup commands (if any) then the command, and reports.
async fn drive<R: Runner>(
    runner: Arc<R>,
    request: ExecRequest,
    command: String,
    setup: Vec<String>,
    notes: Vec<String>,
    tx: mpsc::Sender<RuntimeEvent>,
) {
    let started = Instant::now();
    let deadline = request.timeout.map(|t| started + t);
    let env = runner.env(&request.env);
    for note in notes {
        let _ = tx.send(RuntimeEvent::Note(note)).await;
    }
    let mut result = RuntimeResult::empty();
    let limit = request.capture_limit;
    let process = |line, phase, stdin| Process {
        line,
        phase,
        stdin,
        env: &env,
        deadline,
        tx: &tx,
    };

    let mut setup_exit = None;
    if !setup.is_empty() {
        let mut captures = [Capture::new(limit), Capture::new(limit)];
        for line in &setup {
            let command = line.clone();
            let _ = tx.send(RuntimeEvent::SetupStarted { command }).await;
            let exit;
            (exit, captures) = runner
                .run(process(line, Phase::Setup, None), captures)
                .await;
            result.usage = result.usage.and(exit.usage);
            if !exit.success() {
                result.setup_failure = Some(SetupFailure {
                    command: line.clone(),
                    exit_code: exit.code,
                });
                setup_exit = Some(exit);
                break;
            }
        }
        let [out, err] = captures;
        result.setup_stdout = out.finish();
        result.setup_stderr = err.finish();
        let mut life = runner.lifecycle();
        life.setup_done = setup_exit.is_none();
        if life.phase == RuntimeState::Setup {
            life.phase = RuntimeState::Running;
        }
    }

    let exit = match setup_exit {
        Some(exit) => exit,
        None => {
            let captures = [Capture::new(limit), Capture::new(limit)];
            let (exit, [out, err]) = runner
                .run(process(&command, Phase::Command, request.stdin), captures)
                .await;
            result.stdout = out.finish();
            result.stderr = err.finish();
            result.usage = result.usage.and(exit.usage);
            exit
        }
    };
    result.exit_code = exit.code;
    result.signal = exit.signal;
    result.timed_out = exit.timed_out;
    result.status_lost = exit.lost.clone();
    result.elapsed = started.elapsed();
    {
        let mut life = runner.lifecycle();
        result.killed_by = if exit.timed_out {
            Some(KilledBy::Timeout)
        } else if life.kill_requested {
            Some(KilledBy::Kill)
        } else {
            exit.ended_by
        };
        result.killed = matches!(result.killed_by, Some(KilledBy::Kill | KilledBy::Outside));
        result.oom_killed = exit.ended_by == Some(KilledBy::OutOfMemory);
        life.last_exit = Some(exit.code);
        if life.phase != RuntimeState::Cleaned {
            life.phase = RuntimeState::Idle;
        }
    }
    let _ = tx.send(RuntimeEvent::Finished(Box::new(result))).await;
}

/// Waits until `deadline`, or forever without one.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
