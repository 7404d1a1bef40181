//! What every runtime does the same way: one call at a time, setup as the
//! first phase of the first call, the result assembled from the processes.
//!
//! A backend implements [`Runner::run`] (run one shell line to its end and
//! stream its output) and keeps a [`Lifecycle`]; [`start`] does the rest.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::capture::Capture;
use super::placeholders::expand_static;
use super::{
    EventStream, ExecRequest, KillScope, KilledBy, LaunchSpec, OutputChunk, Phase, RuntimeError,
    RuntimeEvent, RuntimeResult, RuntimeState, SetupFailure, StreamKind, Usage,
};
use crate::spec::EnvironmentSpec;

/// The state every runtime keeps between calls.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// `cleanup` was called: nothing starts any more.
    pub cleaned: bool,
    /// Calls running now.
    pub calls: u32,
    /// Calls running their setup commands now.
    pub in_setup: u32,
    /// The setup commands ran and succeeded (in this container, for Docker).
    pub setup_done: bool,
    /// Bumped by each `kill` while calls run: a call was killed when the
    /// epoch moved since it started.
    pub kill_epoch: u64,
    pub last_exit: Option<i32>,
    /// Warnings not yet reported; sent with the next call's events.
    pub notes: Vec<String>,
    /// Held by the call that runs the setup commands: a call that comes
    /// meanwhile waits for them rather than running them again.
    setup_gate: Arc<tokio::sync::Mutex<()>>,
}

impl Lifecycle {
    pub fn new(notes: Vec<String>) -> Self {
        Self {
            cleaned: false,
            calls: 0,
            in_setup: 0,
            setup_done: false,
            kill_epoch: 0,
            last_exit: None,
            notes,
            setup_gate: Arc::default(),
        }
    }

    /// What [`SubmissionRuntime::info`](super::SubmissionRuntime::info)
    /// says.
    pub fn state(&self) -> RuntimeState {
        if self.cleaned {
            RuntimeState::Cleaned
        } else if self.in_setup > 0 {
            RuntimeState::Setup
        } else if self.calls > 0 {
            RuntimeState::Running
        } else {
            RuntimeState::Idle
        }
    }

    /// What [`SubmissionRuntime::poll`](super::SubmissionRuntime::poll) says.
    pub fn poll(&self) -> Option<i32> {
        if self.calls > 0 { None } else { self.last_exit }
    }

    /// Whether the call that started at `epoch` was killed since.
    pub fn killed(&self, epoch: u64) -> bool {
        self.kill_epoch != epoch
    }

    /// Whether the call that started at `epoch` may still start a process:
    /// not once it was killed, nor once the runtime is cleaned up (a
    /// command on its way to the runtime when `cleanup` came must not bring
    /// up a new namespace, container or step).
    pub fn may_start(&self, epoch: u64) -> bool {
        !self.killed(epoch) && !self.cleaned
    }

    /// Marks the running calls as killed (no-op when none runs).
    pub fn request_kill(&mut self) {
        if self.calls > 0 {
            self.kill_epoch += 1;
        }
    }

    /// Marks the runtime cleaned up, killing the running calls first (so
    /// that their results say `killed`).
    pub fn clean(&mut self) {
        self.request_kill();
        self.cleaned = true;
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
    /// Run as `<shell> -c line sh args...`.
    pub line: &'a str,
    pub args: &'a [String],
    /// Its working dir, as the request gave it (`None`: the session's).
    pub cwd: Option<&'a str>,
    /// Who runs it, as the request gave it (`None`: the session's user).
    pub user: Option<&'a str>,
    /// The kill epoch of its call (see [`Lifecycle::killed`]).
    pub epoch: u64,
    /// What its timeout, or its stream dropped, kills.
    pub scope: KillScope,
    /// Cancelled when the call's stream is killed.
    pub cancel: &'a CancellationToken,
    pub phase: Phase,
    pub stdin: Option<Bytes>,
    pub env: &'a BTreeMap<String, String>,
    pub deadline: Option<Instant>,
    pub tx: &'a mpsc::Sender<RuntimeEvent>,
}

/// What every runtime's session keeps alike: its environment, the
/// launch's variables, setup commands and assets, and the state of its
/// calls.
#[derive(Debug)]
pub(crate) struct Core {
    pub environment: EnvironmentSpec,
    /// Variables the launch adds to every command, over the spec's.
    pub launch_env: BTreeMap<String, String>,
    /// Run by the first call, before its command (see [`start`]).
    pub setup_commands: Vec<String>,
    /// Asset name to its path as the session's commands see it.
    pub assets: BTreeMap<String, String>,
    life: Mutex<Lifecycle>,
}

impl Core {
    /// The core of a session of `launch`, whose commands see its assets at
    /// `assets` (name to path), with `notes` for its first call to report.
    pub fn of(launch: &LaunchSpec, assets: BTreeMap<String, String>, notes: Vec<String>) -> Self {
        Self {
            environment: launch.environment.clone(),
            launch_env: launch.env_vars.clone(),
            setup_commands: launch.setup_commands(),
            assets,
            life: Mutex::new(Lifecycle::new(notes)),
        }
    }
}

/// A backend: runs single shell lines, streaming their output.
pub(crate) trait Runner: Send + Sync + 'static {
    /// What the session keeps as every runtime does.
    fn core(&self) -> &Core;

    /// The call state.
    fn lifecycle(&self) -> MutexGuard<'_, Lifecycle> {
        self.core().life.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The environment of a call with `request_env` on top.
    fn env(&self, request_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let core = self.core();
        core.environment.merged_env(&core.launch_env, request_env)
    }

    /// Runs `process` to its end (or its deadline, or a kill), sending its
    /// output to `process.tx` and into `captures` (stdout, stderr).
    fn run(
        &self,
        process: Process<'_>,
        captures: [Capture; 2],
    ) -> impl Future<Output = (Exit, [Capture; 2])> + Send;
}

/// Starts a call: expands `{{static:NAME}}` with the session's assets,
/// checks that the call may start now (a [`KillScope::Session`] call only
/// when none runs), decides whether the setup commands run, and spawns the
/// task that drives the call.
pub(crate) fn start<R: Runner>(
    runner: &Arc<R>,
    request: ExecRequest,
    scope: KillScope,
) -> Result<EventStream, RuntimeError> {
    let Core {
        setup_commands: setup,
        assets,
        ..
    } = runner.core();
    let expand = |command: &str| {
        expand_static(
            command,
            || assets.keys().cloned().collect(),
            |name| assets.get(name).cloned(),
        )
    };
    let command = match request.argv {
        Some(_) => request.shell_line().0.to_owned(),
        None => expand(&request.command)?,
    };
    let setup: Vec<String> = setup.iter().map(|c| expand(c)).collect::<Result<_, _>>()?;
    let call = {
        let mut life = runner.lifecycle();
        if life.cleaned {
            return Err(RuntimeError::CleanedUp);
        }
        if scope == KillScope::Session && life.calls > 0 {
            return Err(RuntimeError::Busy);
        }
        life.calls += 1;
        Call {
            epoch: life.kill_epoch,
            scope,
            cancel: CancellationToken::new(),
            gate: (!life.setup_done && !setup.is_empty()).then(|| Arc::clone(&life.setup_gate)),
            notes: std::mem::take(&mut life.notes),
        }
    };
    let (tx, cancel, events) = EventStream::channel();
    let call = Call { cancel, ..call };
    tokio::spawn(drive(Arc::clone(runner), request, command, setup, call, tx));
    Ok(events)
}

/// What a call learned when it started.
struct Call {
    epoch: u64,
    scope: KillScope,
    /// Cancelled by [`EventStream::kill`].
    cancel: CancellationToken,
    /// `Some` while setup has not run: the gate its runner holds.
    gate: Option<Arc<tokio::sync::Mutex<()>>>,
    notes: Vec<String>,
}

/// Runs the setup commands (if they have not run yet) then the command,
/// and reports.
async fn drive<R: Runner>(
    runner: Arc<R>,
    request: ExecRequest,
    command: String,
    setup: Vec<String>,
    mut call: Call,
    tx: mpsc::Sender<RuntimeEvent>,
) {
    let started = Instant::now();
    let deadline = request.timeout.map(|t| started + t);
    let env = runner.env(&request.env);
    for note in std::mem::take(&mut call.notes) {
        let _ = tx.send(RuntimeEvent::Note(note)).await;
    }
    let mut result = RuntimeResult::empty();
    let limit = request.capture_limit;
    let (epoch, scope) = (call.epoch, call.scope);
    let cancel = &call.cancel;
    let no_args: &[String] = &[];
    let process = |line, args, phase, stdin, cwd, user| Process {
        line,
        args,
        cwd,
        user,
        epoch,
        scope,
        cancel,
        phase,
        stdin,
        env: &env,
        deadline,
        tx: &tx,
    };

    let mut setup_exit = None;
    // Setup runs once per session: the first call takes the gate; one that
    // comes while it runs waits, then finds it done.
    let gate = match &call.gate {
        Some(gate) => Some(tokio::select! {
            held = gate.lock() => held,
            () = sleep_until(deadline) => {
                finish(&runner, &tx, result, Exit::killed(true), started, &call).await;
                return;
            }
        }),
        None => None,
    };
    let run_setup = gate.is_some() && {
        let mut life = runner.lifecycle();
        let needed = !life.setup_done;
        if needed {
            life.in_setup += 1;
        }
        needed
    };
    if run_setup {
        let mut captures = [Capture::new(limit), Capture::new(limit)];
        for line in &setup {
            let command = line.clone();
            let _ = tx.send(RuntimeEvent::SetupStarted { command }).await;
            let exit;
            (exit, captures) = runner
                .run(
                    process(line, no_args, Phase::Setup, None, None, None),
                    captures,
                )
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
        life.in_setup -= 1;
    }
    drop(gate);

    let exit = match setup_exit {
        Some(exit) => exit,
        None => {
            let captures = [Capture::new(limit), Capture::new(limit)];
            let (_, args) = request.shell_line();
            let main = process(
                &command,
                args,
                Phase::Command,
                request.stdin.clone(),
                request.cwd.as_deref(),
                request.user.as_deref(),
            );
            let (exit, [out, err]) = runner.run(main, captures).await;
            result.stdout = out.finish();
            result.stderr = err.finish();
            result.usage = result.usage.and(exit.usage);
            exit
        }
    };
    finish(&runner, &tx, result, exit, started, &call).await;
}

/// Completes `result` with `exit`, ends the call and sends `Finished`.
async fn finish<R: Runner>(
    runner: &Arc<R>,
    tx: &mpsc::Sender<RuntimeEvent>,
    mut result: RuntimeResult,
    exit: Exit,
    started: Instant,
    call: &Call,
) {
    result.exit_code = exit.code;
    result.signal = exit.signal;
    result.timed_out = exit.timed_out;
    result.status_lost = exit.lost.clone();
    result.elapsed = started.elapsed();
    {
        let mut life = runner.lifecycle();
        result.killed_by = if exit.timed_out {
            Some(KilledBy::Timeout)
        } else if life.killed(call.epoch) || call.cancel.is_cancelled() {
            Some(KilledBy::Kill)
        } else {
            exit.ended_by
        };
        result.killed = matches!(result.killed_by, Some(KilledBy::Kill | KilledBy::Outside));
        result.oom_killed = exit.ended_by == Some(KilledBy::OutOfMemory);
        life.last_exit = Some(exit.code);
        life.calls -= 1;
    }
    let _ = tx.send(RuntimeEvent::Finished(Box::new(result))).await;
}

/// Resolves when a call's reader is gone (`tx` closed) or killed it
/// (`cancel`): its process is then killed (what its scope says).
///
/// # Cancel safety
///
/// Cancel-safe: it only watches.
pub(crate) async fn abandoned(tx: &mpsc::Sender<RuntimeEvent>, cancel: &CancellationToken) {
    tokio::select! {
        () = tx.closed() => {}
        () = cancel.cancelled() => {}
    }
}

/// Keeps `data` of `stream` in its capture and sends it as an output event;
/// false once the call's reader is gone.
pub(crate) async fn forward(
    tx: &mpsc::Sender<RuntimeEvent>,
    capture: &mut Capture,
    stream: StreamKind,
    phase: Phase,
    data: Bytes,
) -> bool {
    capture.push(&data);
    let chunk = OutputChunk {
        stream,
        phase,
        data,
    };
    tx.send(RuntimeEvent::Output(chunk)).await.is_ok()
}

/// Waits until `deadline`, or forever without one.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
