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
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::capture::Capture;
use super::driver::{self, Exit, Lifecycle, Process, Runner, sleep_until};
use super::process_group::{die_with_parent, group_exists, kill_group};
use super::{
    EventStream, ExecRequest, LaunchSpec, OutputChunk, Phase, RuntimeBackend, RuntimeError,
    RuntimeEvent, RuntimeInfo, RuntimeState, StreamKind, SubmissionRuntime,
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
    /// Asset name to its host path.
    assets: BTreeMap<String, String>,
    /// Locked before `groups` when both are needed.
    life: Mutex<Lifecycle>,
    groups: Mutex<Groups>,
}

/// The host processes of the runtime.
#[derive(Debug, Default)]
struct Groups {
    /// Pid (and pgid) of the shell of the running process.
    current: Option<u32>,
    /// Groups started by this runtime that may still have members.
    started: Vec<i32>,
}

impl RuntimeBackend for LocalRuntime {
    async fn spawn(launch: LaunchSpec) -> Result<Self, RuntimeError> {
        Self::check(&launch.environment).await?;
        check_working_dir(&launch.working_dir)?;
        let working_dir = launch.working_dir.clone();
        let assets = launch
            .static_assets
            .iter()
            .map(|(name, asset)| {
                let path = working_dir.join(&asset.path);
                (name.clone(), path.display().to_string())
            })
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
                life: Mutex::new(Lifecycle::new(notes)),
                groups: Mutex::new(Groups::default()),
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
        driver::start(inner, request, &inner.setup_commands, &inner.assets)
    }

    fn poll(&self) -> Option<i32> {
        self.inner.lifecycle().poll()
    }

    async fn kill(&self) -> Result<(), RuntimeError> {
        self.inner.lifecycle().request_kill();
        kill_groups(&mut self.inner.groups())
    }

    async fn cleanup(&self) -> Result<(), RuntimeError> {
        let groups = {
            let mut life = self.inner.lifecycle();
            life.request_kill();
            life.phase = RuntimeState::Cleaned;
            let mut groups = self.inner.groups();
            let started = groups.started.clone();
            kill_groups(&mut groups)?;
            started
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
        let state = self.inner.lifecycle().phase;
        let current = self.inner.groups().current;
        RuntimeInfo {
            kind: self.inner.environment.kind.clone(),
            state,
            pid: current,
            pgid: current.map(|pid| pid as i32),
            container_id: None,
        }
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        let _ = kill_groups(&mut self.inner.groups());
    }
}

/// Kills every group the runtime started and forgets the ones that are gone.
fn kill_groups(groups: &mut Groups) -> Result<(), RuntimeError> {
    let mut first_error = None;
    for &pgid in &groups.started {
        if let Err(source) = kill_group(pgid) {
            first_error.get_or_insert(RuntimeError::Io {
                context: format!("cannot kill process group {pgid}"),
                source,
            });
        }
    }
    groups.started.retain(|&g| group_exists(g));
    first_error.map_or(Ok(()), Err)
}

/// Locks `mutex`, also after a panic elsewhere: the state stays consistent
/// enough to kill and clean up, which is all that matters then.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn groups(&self) -> MutexGuard<'_, Groups> {
        lock(&self.groups)
    }
}

impl Runner for Inner {
    fn lifecycle(&self) -> MutexGuard<'_, Lifecycle> {
        lock(&self.life)
    }

    fn env(&self, request_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        self.environment.merged_env(&self.launch_env, request_env)
    }

    /// Runs one process to its end and reads its output until the pipes
    /// close or go quiet.
    async fn run(&self, process: Process<'_>, captures: [Capture; 2]) -> (Exit, [Capture; 2]) {
        let Process {
            line,
            phase,
            stdin,
            env,
            deadline,
            tx,
        } = process;
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
            // Spawn under the locks, so that a concurrent kill() either stops
            // us from starting or sees the new group.
            let life = self.lifecycle();
            if life.kill_requested {
                return (Exit::killed(false), captures);
            }
            let mut groups = self.groups();
            cmd.spawn().inspect(|child| {
                let pid = child.id().expect("a child that was just spawned has a pid");
                groups.current = Some(pid);
                groups.started.push(pid as i32);
            })
        };
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let note = format!("cannot start {} -c {line:?}: {e}", shell.display());
                let _ = tx.send(RuntimeEvent::Note(note)).await;
                return (Exit::not_started(), captures);
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
        let killed = timed_out || self.lifecycle().kill_requested;
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
            let mut groups = self.groups();
            groups.current = None;
            if !group_exists(pgid) {
                groups.started.retain(|&g| g != pgid);
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
