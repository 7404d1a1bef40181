//! `LocalRuntime`: commands as host processes, through tokio.
//!
//! Each command runs as `<shell> -c <command>` in a process group of its own,
//! in the working dir, with the environment merged as
//! [`EnvironmentSpec::merged_env`] says. The group is what gets killed: at a
//! timeout, on `kill`, on `cleanup`, when the stream is dropped and when the
//! runtime is dropped. Every command also gets SIGKILL if the subrt thread
//! that started it dies.
//!
//! A command's background processes (`server &`) outlive it until `kill`,
//! `cleanup` or drop, so a setup command can start a service the command
//! uses. Once the shell exits, its output is read until both pipes close or
//! stay silent for [`DRAIN_AFTER_EXIT`], so a background process that keeps a
//! pipe open cannot hold the result back. A process that leaves the group
//! (`setsid`) escapes the group kill; containers are the answer to that.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::capture::Capture;
use super::placeholders::expand_static;
use super::process_group::{die_with_parent, group_exists, kill_group};
use super::{
    EventStream, ExecRequest, LaunchSpec, OutputChunk, Phase, RuntimeBackend, RuntimeError,
    RuntimeEvent, RuntimeInfo, RuntimeResult, RuntimeState, SetupFailure, StreamKind,
    SubmissionRuntime,
};
use crate::spec::EnvironmentSpec;

/// How long output is still read after the shell exits while the pipes stay
/// open but silent.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);
/// The same after a kill or timeout, when everything in the group is dead.
const DRAIN_AFTER_KILL: Duration = Duration::from_millis(20);
/// Bytes asked for per read from a pipe.
const READ_CHUNK: usize = 256 * 1024;
/// Pipe buffer asked for per stream.
const PIPE_SIZE: libc::c_int = 1 << 20;
/// How long `cleanup` waits for killed groups to be gone.
const CLEANUP_WAIT: Duration = Duration::from_secs(1);

/// Runs commands as host processes.
#[derive(Debug)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    environment: EnvironmentSpec,
    working_dir: PathBuf,
    launch_env: BTreeMap<String, String>,
    setup_commands: Vec<String>,
    assets: BTreeMap<String, PathBuf>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    phase: RuntimeState,
    /// Pid (and pgid) of the shell of the running command.
    current: Option<u32>,
    /// Groups started by this runtime that may still have members.
    groups: Vec<i32>,
    last_exit: Option<i32>,
    setup_done: bool,
    kill_requested: bool,
    /// Warnings not yet reported; sent with the next command's events.
    notes: Vec<String>,
}

/// How one process ended.
#[derive(Debug, Clone, Copy)]
struct Exit {
    code: i32,
    signal: Option<i32>,
    timed_out: bool,
}

impl Exit {
    fn success(self) -> bool {
        self.code == 0 && self.signal.is_none()
    }

    fn killed_before_start() -> Self {
        Self {
            code: 128 + libc::SIGKILL,
            signal: Some(libc::SIGKILL),
            timed_out: false,
        }
    }
}

impl RuntimeBackend for LocalRuntime {
    async fn spawn(launch: LaunchSpec) -> Result<Self, RuntimeError> {
        Self::check(&launch.environment).await?;
        check_working_dir(&launch.working_dir)?;
        let working_dir = launch.working_dir.clone();
        let assets = launch
            .static_assets
            .iter()
            .map(|(name, asset)| (name.clone(), working_dir.join(&asset.path)))
            .collect();
        let mut notes = Vec::new();
        if !launch.ports.is_empty() {
            notes.push("port mappings do not apply to the local runtime; ignored".to_owned());
        }
        if !launch.mounts.is_empty() {
            notes.push("mounts do not apply to the local runtime; ignored".to_owned());
        }
        if launch.environment.local.requires_tty {
            notes.push("requires_tty is not supported yet; running without a terminal".to_owned());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                setup_commands: launch.setup_commands(),
                environment: launch.environment,
                working_dir,
                launch_env: launch.env_vars,
                assets,
                state: Mutex::new(State {
                    phase: RuntimeState::Idle,
                    current: None,
                    groups: Vec::new(),
                    last_exit: None,
                    setup_done: false,
                    kill_requested: false,
                    notes,
                }),
            }),
        })
    }

    async fn check(spec: &EnvironmentSpec) -> Result<(), RuntimeError> {
        let shell = &spec.local.shell;
        let problem = match std::fs::metadata(shell) {
            Err(e) => Some(e.to_string()),
            Ok(m) if !m.is_file() => Some("not a file".to_owned()),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Some("not executable".to_owned()),
            Ok(_) => None,
        };
        match problem {
            None => Ok(()),
            Some(reason) => Err(RuntimeError::Shell {
                shell: shell.clone(),
                environment: spec.name.clone(),
                reason,
            }),
        }
    }
}

fn check_working_dir(path: &Path) -> Result<(), RuntimeError> {
    let reason = match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => "not a directory".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "it does not exist".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(RuntimeError::WorkingDir {
        path: path.to_owned(),
        reason,
    })
}

#[async_trait]
impl SubmissionRuntime for LocalRuntime {
    async fn stream(&self, request: ExecRequest) -> Result<EventStream, RuntimeError> {
        let inner = &self.inner;
        check_working_dir(&inner.working_dir)?;
        let command = inner.expand(&request.command)?;
        let (setup, notes) = {
            let mut state = inner.lock();
            match state.phase {
                RuntimeState::Cleaned => return Err(RuntimeError::CleanedUp),
                RuntimeState::Setup | RuntimeState::Running => return Err(RuntimeError::Busy),
                RuntimeState::Idle => {}
            }
            let setup = if state.setup_done {
                Vec::new()
            } else {
                inner
                    .setup_commands
                    .iter()
                    .map(|c| inner.expand(c))
                    .collect::<Result<Vec<_>, _>>()?
            };
            state.phase = if setup.is_empty() {
                RuntimeState::Running
            } else {
                RuntimeState::Setup
            };
            state.kill_requested = false;
            (setup, std::mem::take(&mut state.notes))
        };
        let (tx, events) = EventStream::channel();
        tokio::spawn(Arc::clone(inner).drive(request, command, setup, notes, tx));
        Ok(events)
    }

    fn poll(&self) -> Option<i32> {
        let state = self.inner.lock();
        match state.phase {
            RuntimeState::Setup | RuntimeState::Running => None,
            RuntimeState::Idle | RuntimeState::Cleaned => state.last_exit,
        }
    }

    async fn kill(&self) -> Result<(), RuntimeError> {
        let mut state = self.inner.lock();
        if matches!(state.phase, RuntimeState::Setup | RuntimeState::Running) {
            state.kill_requested = true;
        }
        kill_groups(&mut state)
    }

    async fn cleanup(&self) -> Result<(), RuntimeError> {
        let groups = {
            let mut state = self.inner.lock();
            if matches!(state.phase, RuntimeState::Setup | RuntimeState::Running) {
                state.kill_requested = true;
            }
            state.phase = RuntimeState::Cleaned;
            let groups = state.groups.clone();
            kill_groups(&mut state)?;
            groups
        };
        // SIGKILL is asynchronous: wait (briefly) until the processes are gone
        // so that "cleaned up" means what it says.
        let deadline = Instant::now() + CLEANUP_WAIT;
        while groups.iter().any(|&g| group_exists(g)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    fn info(&self) -> RuntimeInfo {
        let state = self.inner.lock();
        RuntimeInfo {
            kind: self.inner.environment.kind.clone(),
            state: state.phase,
            pid: state.current,
            pgid: state.current.map(|pid| pid as i32),
            container_id: None,
        }
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        let _ = kill_groups(&mut self.inner.lock());
    }
}

/// Kills every group the runtime started and forgets the ones that are gone.
fn kill_groups(state: &mut State) -> Result<(), RuntimeError> {
    let mut first_error = None;
    for &pgid in &state.groups {
        if let Err(source) = kill_group(pgid) {
            first_error.get_or_insert(RuntimeError::Io {
                context: format!("cannot kill process group {pgid}"),
                source,
            });
        }
    }
    state.groups.retain(|&g| group_exists(g));
    first_error.map_or(Ok(()), Err)
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent enough
        // to kill and clean up, which is all that matters then.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expand(&self, command: &str) -> Result<String, RuntimeError> {
        expand_static(
            command,
            || self.assets.keys().cloned().collect(),
            |name| Some(self.assets.get(name)?.display().to_string()),
        )
    }

    /// Runs the setup commands (if any) then the command, and reports.
    async fn drive(
        self: Arc<Self>,
        request: ExecRequest,
        command: String,
        setup: Vec<String>,
        notes: Vec<String>,
        tx: mpsc::Sender<RuntimeEvent>,
    ) {
        let started = Instant::now();
        let deadline = request.timeout.map(|t| started + t);
        let env = self.environment.merged_env(&self.launch_env, &request.env);
        for note in notes {
            let _ = tx.send(RuntimeEvent::Note(note)).await;
        }
        let mut result = RuntimeResult::empty();
        let limit = request.capture_limit;

        let mut setup_exit = None;
        if !setup.is_empty() {
            let mut captures = [Capture::new(limit), Capture::new(limit)];
            for line in &setup {
                let _ = tx
                    .send(RuntimeEvent::SetupStarted {
                        command: line.clone(),
                    })
                    .await;
                let exit;
                (exit, captures) = self
                    .run(line, Phase::Setup, None, &env, deadline, &tx, captures)
                    .await;
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
            let mut state = self.lock();
            state.setup_done = setup_exit.is_none();
            if state.phase == RuntimeState::Setup {
                state.phase = RuntimeState::Running;
            }
        }

        let exit = match setup_exit {
            Some(exit) => exit,
            None => {
                let captures = [Capture::new(limit), Capture::new(limit)];
                let (exit, [out, err]) = self
                    .run(
                        &command,
                        Phase::Command,
                        request.stdin,
                        &env,
                        deadline,
                        &tx,
                        captures,
                    )
                    .await;
                result.stdout = out.finish();
                result.stderr = err.finish();
                exit
            }
        };
        result.exit_code = exit.code;
        result.signal = exit.signal;
        result.timed_out = exit.timed_out;
        result.elapsed = started.elapsed();
        {
            let mut state = self.lock();
            result.killed = state.kill_requested && !exit.timed_out;
            state.last_exit = Some(exit.code);
            if state.phase != RuntimeState::Cleaned {
                state.phase = RuntimeState::Idle;
            }
        }
        let _ = tx.send(RuntimeEvent::Finished(result)).await;
    }

    /// Runs one process to its end and reads its output until the pipes
    /// close or go quiet.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        line: &str,
        phase: Phase,
        stdin: Option<Bytes>,
        env: &BTreeMap<String, String>,
        deadline: Option<Instant>,
        tx: &mpsc::Sender<RuntimeEvent>,
        captures: [Capture; 2],
    ) -> (Exit, [Capture; 2]) {
        let shell = &self.environment.local.shell;
        let mut cmd = tokio::process::Command::new(shell);
        cmd.arg("-c")
            .arg(line)
            .current_dir(&self.working_dir)
            .env_clear()
            .envs(env)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: die_with_parent only calls prctl, which is async-signal-safe.
        unsafe { cmd.pre_exec(die_with_parent) };

        let spawned = {
            // Spawn under the lock, so that a concurrent kill() either stops
            // us from starting or sees the new group.
            let mut state = self.lock();
            if state.kill_requested {
                return (Exit::killed_before_start(), captures);
            }
            cmd.spawn().inspect(|child| {
                let pid = child.id().expect("a child that was just spawned has a pid");
                state.current = Some(pid);
                state.groups.push(pid as i32);
            })
        };
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let note = format!("cannot start {} -c {line:?}: {e}", shell.display());
                let _ = tx.send(RuntimeEvent::Note(note)).await;
                let exit = Exit {
                    code: 126,
                    signal: None,
                    timed_out: false,
                };
                return (exit, captures);
            }
        };
        let pid = child.id().expect("not yet reaped");
        let pgid = pid as i32;
        let _ = tx.send(RuntimeEvent::ProcessStarted { pid, pgid }).await;

        // `None` while the shell runs; then how long silent pipes are read.
        let (exited_tx, exited_rx) = watch::channel(None);
        let [out_capture, err_capture] = captures;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        enlarge_pipe(&stdout);
        enlarge_pipe(&stderr);
        let readers = tokio::spawn({
            let (tx, exited) = (tx.clone(), exited_rx.clone());
            async move {
                tokio::join!(
                    pump(
                        stdout,
                        StreamKind::Stdout,
                        phase,
                        &tx,
                        out_capture,
                        exited.clone()
                    ),
                    pump(stderr, StreamKind::Stderr, phase, &tx, err_capture, exited),
                )
            }
        });
        let writer = match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => Some(tokio::spawn(async move {
                // A command that exits without reading all of it is fine.
                let _ = pipe.write_all(&data).await;
            })),
            _ => None,
        };

        let mut timed_out = false;
        let status = tokio::select! {
            status = child.wait() => status,
            () = sleep_until(deadline) => {
                timed_out = true;
                let _ = kill_group(pgid);
                child.wait().await
            }
            () = tx.closed() => {
                let _ = kill_group(pgid);
                child.wait().await
            }
        };
        let killed = timed_out || self.lock().kill_requested;
        let _ = exited_tx.send(Some(if killed {
            DRAIN_AFTER_KILL
        } else {
            DRAIN_AFTER_EXIT
        }));
        let (out_capture, err_capture) = readers.await.expect("output readers do not panic");
        if let Some(writer) = writer {
            writer.abort();
        }

        {
            let mut state = self.lock();
            state.current = None;
            if !group_exists(pgid) {
                state.groups.retain(|&g| g != pgid);
            }
        }
        let exit = match status {
            Ok(status) => match status.signal() {
                Some(signal) => Exit {
                    code: 128 + signal,
                    signal: Some(signal),
                    timed_out,
                },
                None => Exit {
                    code: status.code().unwrap_or(-1),
                    signal: None,
                    timed_out,
                },
            },
            Err(e) => {
                let _ = tx
                    .send(RuntimeEvent::Note(format!("cannot wait for {line:?}: {e}")))
                    .await;
                Exit {
                    code: -1,
                    signal: None,
                    timed_out,
                }
            }
        };
        (exit, [out_capture, err_capture])
    }
}

/// Asks for a 1 MiB pipe buffer (the unprivileged maximum by default): a
/// flood then arrives in fewer, larger chunks. Failure leaves the default.
fn enlarge_pipe(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ on a pipe fd we own; no pointers are passed.
    unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Reads a pipe into events until it closes, the stream's reader goes away,
/// or, once the shell has exited, the pipe stays silent for the drain time.
async fn pump(
    mut pipe: impl AsyncRead + Unpin,
    stream: StreamKind,
    phase: Phase,
    tx: &mpsc::Sender<RuntimeEvent>,
    mut capture: Capture,
    mut exited: watch::Receiver<Option<Duration>>,
) -> Capture {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if buf.capacity() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let drain = *exited.borrow_and_update();
        let read = match drain {
            None => tokio::select! {
                read = pipe.read_buf(&mut buf) => read,
                // Reading is cancel-safe: start over with the drain time.
                _ = exited.changed() => continue,
            },
            Some(quiet) => match tokio::time::timeout(quiet, pipe.read_buf(&mut buf)).await {
                Ok(read) => read,
                Err(_) => break,
            },
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let data = buf.split().freeze();
        capture.push(&data);
        let chunk = OutputChunk {
            stream,
            phase,
            data,
        };
        if tx.send(RuntimeEvent::Output(chunk)).await.is_err() {
            break;
        }
    }
    capture
}
