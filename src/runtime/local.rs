//! `LocalRuntime`: commands as host processes, through tokio.
//!
//! Each command runs as `<shell> -c <command>` in the working dir, with the
//! environment merged as [`EnvironmentSpec::merged_env`] says.
//!
//! A session is contained (see [`Containment`]):
//!
//! - **`pid-namespace`** (where the kernel allows it; root or
//!   `CAP_SYS_ADMIN`): the session is a [`PidNamespace`] made at spawn,
//!   and every command is a member. `kill`, a timeout and a dropped stream
//!   kill the whole namespace, background processes, double forks and
//!   `setsid` included; the next command gets a fresh namespace, where setup
//!   runs again (as a Docker session gets a fresh container). If subrt dies,
//!   the namespace dies with it.
//! - **`process-group`** (the fallback, and `local.containment =
//!   "process-group"`): each command is a process group of its own, killed
//!   as a group; only the shell gets SIGKILL when subrt dies, and a process
//!   that leaves the group (`setsid`) escapes. A note says so on the first
//!   command.
//!
//! Either way a command's background processes (`server &`) outlive it until
//! `kill`, `cleanup` or drop, so a setup command can start a service the
//! command uses. Once the shell exits, its output is read until both pipes
//! close or stay silent for 100 ms (`process_io::DRAIN_AFTER_EXIT`), so a
//! background process that keeps a pipe open cannot hold the result back.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::capture::Capture;
use super::driver::{self, Exit, Lifecycle, Process, Runner, sleep_until};
use super::inherited_fds;
use super::pid_namespace::PidNamespace;
use super::process_group::{group_exists, kill_group, spawn_dying_with_subrt};
use super::process_io::{self, ProcessIo};
use super::{
    Containment, EventStream, ExecRequest, KilledBy, LaunchSpec, RuntimeBackend, RuntimeError,
    RuntimeEvent, RuntimeInfo, RuntimeState, SubmissionRuntime, local_containment,
};
use crate::spec::EnvironmentSpec;

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
    containment: Containment,
    /// Locked before `processes` when both are needed.
    life: Mutex<Lifecycle>,
    processes: Mutex<Processes>,
}

/// The host processes of the runtime.
#[derive(Debug, Default)]
struct Processes {
    /// Pid (and pgid) of the shell of the running process.
    current: Option<u32>,
    /// `process-group`: groups started by this runtime that may still have
    /// members.
    groups: Vec<i32>,
    /// `pid-namespace`: the session's namespace; `None` after a kill until
    /// the next command makes a new one.
    namespace: Option<PidNamespace>,
    /// Namespaces killed whose members may not all be gone yet.
    dying: Vec<PidNamespace>,
}

impl Processes {
    /// Kills every process of the session. Returns whether a namespace was
    /// killed (then setup has to run again in the next one).
    fn kill_all(&mut self) -> Result<bool, RuntimeError> {
        let killed_namespace = match self.namespace.take() {
            Some(namespace) => {
                namespace.kill();
                self.dying.push(namespace);
                true
            }
            None => false,
        };
        self.dying.retain(PidNamespace::is_alive);
        let mut first_error = None;
        for &pgid in &self.groups {
            if let Err(source) = kill_group(pgid) {
                first_error.get_or_insert(RuntimeError::Io {
                    context: format!("cannot kill process group {pgid}"),
                    source,
                });
            }
        }
        self.groups.retain(|&g| group_exists(g));
        first_error.map_or(Ok(killed_namespace), Err)
    }
}

impl RuntimeBackend for LocalRuntime {
    async fn spawn(launch: LaunchSpec) -> Result<Self, RuntimeError> {
        Self::check(&launch.environment).await?;
        check_working_dir(&launch.working_dir)?;
        let working_dir = launch.working_dir.clone();
        let assets = launch
            .asset_sources()?
            .into_iter()
            .map(|(name, path)| (name, path.display().to_string()))
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
        let containment =
            local_containment(&launch.environment).map_err(|reason| RuntimeError::InvalidSpec {
                environment: launch.environment.name.clone(),
                reason,
            })?;
        let mut processes = Processes::default();
        match containment {
            Containment::PidNamespace => {
                processes.namespace = Some(new_namespace()?);
            }
            _ => notes.push(format!("containment: {}", containment.describe())),
        }
        Ok(Self {
            inner: Arc::new(Inner {
                setup_commands: launch.setup_commands(),
                environment: launch.environment,
                working_dir,
                launch_env: launch.env_vars,
                assets,
                containment,
                life: Mutex::new(Lifecycle::new(notes)),
                processes: Mutex::new(processes),
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

fn new_namespace() -> Result<PidNamespace, RuntimeError> {
    PidNamespace::create().map_err(|source| RuntimeError::Io {
        context: "cannot create the session's PID namespace".into(),
        source,
    })
}

/// A working dir that is a folder, or the error that says what it is.
pub(crate) fn check_working_dir(path: &Path) -> Result<(), RuntimeError> {
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
        self.inner.kill_all()
    }

    async fn cleanup(&self) -> Result<(), RuntimeError> {
        let (groups, namespaces) = {
            {
                // The running call is marked killed before the phase
                // leaves `Running` (after, `request_kill` is a no-op and
                // its result would not say `killed`).
                let mut life = self.inner.lifecycle();
                life.request_kill();
                life.phase = RuntimeState::Cleaned;
            }
            self.inner.kill_all()?;
            let mut processes = self.inner.processes();
            (
                processes.groups.clone(),
                std::mem::take(&mut processes.dying),
            )
        };
        // SIGKILL is asynchronous: wait (briefly) until the processes are gone
        // so that "cleaned up" means what it says.
        let deadline = Instant::now() + CLEANUP_WAIT;
        for namespace in &namespaces {
            namespace.wait_gone(CLEANUP_WAIT).await;
        }
        while groups.iter().any(|&g| group_exists(g)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    fn info(&self) -> RuntimeInfo {
        let state = self.inner.lifecycle().phase;
        let processes = self.inner.processes();
        let current = processes.current;
        RuntimeInfo {
            kind: self.inner.environment.kind.clone(),
            state,
            pid: current,
            pgid: current.map(|pid| pid as i32),
            container_id: None,
            containment: self.inner.containment,
            init_pid: processes.namespace.as_ref().map(PidNamespace::init_pid),
            slurm_job: None,
        }
    }
}

impl Drop for LocalRuntime {
    /// Kills every process of the session (dropping a namespace kills it).
    fn drop(&mut self) {
        let _ = self.inner.processes().kill_all();
    }
}

/// Locks `mutex`, also after a panic elsewhere: the state stays consistent
/// enough to kill and clean up, which is all that matters then.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn processes(&self) -> MutexGuard<'_, Processes> {
        lock(&self.processes)
    }

    /// Kills every process of the session; a killed namespace means setup
    /// runs again in the next one.
    fn kill_all(&self) -> Result<(), RuntimeError> {
        let mut life = self.lifecycle();
        life.request_kill();
        if self.processes().kill_all()? {
            life.setup_done = false;
        }
        Ok(())
    }

    /// Spawns `cmd` in the session: into its namespace (made anew after a
    /// kill), or as a process group. Under the locks, so that a concurrent
    /// `kill` either stops it from starting or sees it.
    fn spawn_contained(
        &self,
        mut cmd: tokio::process::Command,
    ) -> Result<Option<(tokio::process::Child, Option<u32>)>, std::io::Error> {
        let life = self.lifecycle();
        if !life.may_start() {
            return Ok(None);
        }
        let mut processes = self.processes();
        let child = match self.containment {
            Containment::PidNamespace => {
                if !processes
                    .namespace
                    .as_ref()
                    .is_some_and(PidNamespace::is_alive)
                {
                    processes.namespace = Some(PidNamespace::create()?);
                }
                let namespace = processes.namespace.as_ref().expect("made above");
                let child = namespace.spawn(&mut cmd)?;
                (child, Some(namespace.init_pid()))
            }
            _ => {
                let child = spawn_dying_with_subrt(cmd)?;
                let pid = child.id().expect("a child that was just spawned has a pid");
                processes.groups.push(pid as i32);
                (child, None)
            }
        };
        processes.current = child.0.id();
        Ok(Some(child))
    }

    /// Whether the session's namespace ended (its init was killed), waiting
    /// briefly: the kernel ends the init only after its members.
    async fn namespace_ended(&self) -> bool {
        let init_pidfd = self
            .processes()
            .namespace
            .as_ref()
            .map(PidNamespace::watcher);
        match init_pidfd {
            Some(gone) => gone.wait(Duration::from_millis(200)).await,
            None => false,
        }
    }

    /// Kills what runs the command that went over time or lost its reader:
    /// the session's namespace, or the command's group.
    fn kill_command(&self, pgid: i32) {
        match self.containment {
            Containment::PidNamespace => {
                let _ = self.kill_all();
            }
            _ => {
                let _ = kill_group(pgid);
            }
        }
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

        let spawned = inherited_fds::while_hidden(|| self.spawn_contained(cmd));
        let (mut child, init) = match spawned {
            Ok(Some(spawned)) => spawned,
            Ok(None) => return (Exit::killed(false), captures),
            Err(e) => {
                let note = format!("cannot start {} -c {line:?}: {e}", shell.display());
                let _ = tx.send(RuntimeEvent::Note(note)).await;
                return (Exit::not_started(), captures);
            }
        };
        let pid = child.id().expect("not yet reaped");
        let pgid = pid as i32;
        let _ = tx
            .send(RuntimeEvent::ProcessStarted { pid, pgid, init })
            .await;
        let (stdout, stderr) = match process_io::take_pipes(&mut child) {
            Ok(pipes) => pipes,
            Err(e) => {
                self.kill_command(pgid);
                let _ = child.wait().await;
                self.processes().current = None;
                let note = format!(
                    "cannot read the output of {} -c {line:?}: {e}",
                    shell.display()
                );
                let _ = tx.send(RuntimeEvent::Note(note)).await;
                return (Exit::not_started(), captures);
            }
        };
        let stdin = stdin.zip(child.stdin.take());
        let io = ProcessIo::start(stdout, stderr, stdin, phase, tx, captures);

        let mut timed_out = false;
        let status = tokio::select! {
            status = child.wait() => status,
            () = sleep_until(deadline) => {
                timed_out = true;
                self.kill_command(pgid);
                child.wait().await
            }
            () = tx.closed() => {
                self.kill_command(pgid);
                child.wait().await
            }
        };
        let killed = timed_out || self.lifecycle().kill_requested;
        let [out_capture, err_capture] = io.finish(killed).await;

        {
            let mut processes = self.processes();
            processes.current = None;
            if !group_exists(pgid) {
                processes.groups.retain(|&g| g != pgid);
            }
        }
        let mut exit = match status {
            Ok(status) => Exit::from_status(status, timed_out),
            Err(e) => {
                let _ = tx
                    .send(RuntimeEvent::Note(format!("cannot wait for {line:?}: {e}")))
                    .await;
                Exit::unknown(timed_out)
            }
        };
        if exit.signal == Some(libc::SIGKILL) && !killed && self.namespace_ended().await {
            exit.ended_by = Some(KilledBy::Outside);
            let note = "killed from outside subrt: the session's PID namespace was killed";
            let _ = tx.send(RuntimeEvent::Note(note.into())).await;
            // What ran in it is gone: the next command gets a new one.
            let _ = self.processes().kill_all();
            self.lifecycle().setup_done = false;
        }
        (exit, [out_capture, err_capture])
    }
}
