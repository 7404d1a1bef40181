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
//! command uses. Once the shell exits, what its pipes hold is read whole,
//! then on until both close or stay silent for 100 ms
//! (`process_io::DRAIN_AFTER_EXIT`), for 1 s at most (`DRAIN_AT_MOST`), so a
//! background process that keeps a pipe open, or writes on, cannot hold the
//! result back.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::capture::Capture;
use super::cgroup::CgroupUsage;
use super::driver::{self, Core, Exit, Process, Runner, sleep_until};
use super::host_spawn::{HostChild, HostCommand};
use super::inherited_fds;
use super::pid_namespace::PidNamespace;
use super::process_group::{group_exists, kill_group};
use super::process_io::{self, ProcessIo};
use super::raw_child::RawChild;
use super::sandbox::{Sandbox, SandboxSpec};
use super::users::{self, UserIds};
use super::{
    Containment, EventStream, ExecRequest, FileError, KillScope, KilledBy, LaunchSpec,
    RuntimeBackend, RuntimeError, RuntimeEvent, RuntimeInfo, SubmissionRuntime, files,
    local_containment,
};
use crate::spec::{EnvironmentSpec, Isolation};
use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::net::unix::pipe;

/// How long `cleanup` waits for killed groups to be gone.
const CLEANUP_WAIT: Duration = Duration::from_secs(1);

/// Runs commands as host processes.
#[derive(Debug)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Its assets by their host paths.
    core: Core,
    working_dir: PathBuf,
    containment: Containment,
    /// `isolation = "sandbox"`: what each of the session's sandboxes is.
    sandbox: Option<SandboxSpec>,
    run_id: String,
    /// The core's lifecycle is locked before `processes` when both are
    /// needed.
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
    /// `sandbox`: the session's sandbox; `None` after a kill until the next
    /// command makes a new one.
    sandbox: Option<Sandbox>,
    /// Sandboxes killed whose members may not all be gone yet.
    dying_sandboxes: Vec<Sandbox>,
}

impl Processes {
    /// Kills every process of the session. Returns whether a namespace was
    /// killed (then setup has to run again in the next one).
    fn kill_all(&mut self) -> Result<bool, RuntimeError> {
        let mut killed_namespace = match self.namespace.take() {
            Some(namespace) => {
                namespace.kill();
                self.dying.push(namespace);
                true
            }
            None => false,
        };
        if let Some(sandbox) = self.sandbox.take() {
            sandbox.kill();
            self.dying_sandboxes.push(sandbox);
            killed_namespace = true;
        }
        self.dying.retain(PidNamespace::is_alive);
        self.dying_sandboxes.retain(Sandbox::is_alive);
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
        let sources = launch.asset_sources()?;
        let assets = sources
            .iter()
            .map(|(name, path)| (name.clone(), path.display().to_string()))
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
        let sandbox = match launch.environment.local.isolation {
            Isolation::Sandbox => {
                let mut config = launch.environment.local.sandbox.clone();
                if let Some(image) = &config.image {
                    // Exported once, then a rootfs like any other.
                    let cache = super::slurm_container::default_cache();
                    config.rootfs = Some(super::slurm_container::exported(image, &cache).await?);
                }
                let spec = SandboxSpec::new(
                    &config,
                    &launch.environment.limits,
                    &working_dir,
                    sources.into_values().collect(),
                );
                processes.sandbox = Some(new_sandbox(&spec, &launch)?);
                Some(spec)
            }
            Isolation::Process => {
                if !launch.environment.limits.is_empty() {
                    return Err(RuntimeError::InvalidSpec {
                        environment: launch.environment.name.clone(),
                        reason: "limits apply to a local session only with \
                                 local.isolation = \"sandbox\" (a cgroup of its own)"
                            .into(),
                    });
                }
                None
            }
        };
        match containment {
            _ if sandbox.is_some() => {}
            Containment::PidNamespace => {
                processes.namespace = Some(new_namespace()?);
            }
            _ => notes.push(format!("containment: {}", containment.describe())),
        }
        Ok(Self {
            inner: Arc::new(Inner {
                run_id: launch.run_id.clone(),
                core: Core::of(&launch, assets, notes),
                working_dir,
                containment,
                sandbox,
                processes: Mutex::new(processes),
            }),
        })
    }

    async fn check(spec: &EnvironmentSpec) -> Result<(), RuntimeError> {
        if spec.local.isolation == Isolation::Sandbox {
            // SAFETY: geteuid has no preconditions.
            let uid = unsafe { libc::geteuid() };
            if let (true, Some(limits)) = (uid != 0, super::sandbox::cgroup_only(&spec.limits)) {
                return Err(RuntimeError::InvalidSpec {
                    environment: spec.name.clone(),
                    reason: super::sandbox::SandboxError::LimitsNeedRoot { uid, limits }
                        .to_string(),
                });
            }
        }
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

fn new_sandbox(spec: &SandboxSpec, launch: &LaunchSpec) -> Result<Sandbox, RuntimeError> {
    // Each sandbox of the session gets a cgroup of its own name.
    let name = format!("{}-{}", launch.run_id, ulid::Ulid::generate());
    Sandbox::create(spec, &name).map_err(|e| RuntimeError::InvalidSpec {
        environment: launch.environment.name.clone(),
        reason: e.to_string(),
    })
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
        self.inner.start_call(request, KillScope::Session)
    }

    async fn start(&self, request: ExecRequest) -> Result<EventStream, RuntimeError> {
        self.inner.start_call(request, KillScope::Command)
    }

    async fn read_file(&self, path: &str, limit: u64) -> Result<Bytes, FileError> {
        let files = self.inner.files()?;
        let path = path.to_owned();
        files::as_user(files.user, move || files.read(&path, limit)).await
    }

    async fn write_file(&self, path: &str, data: Bytes) -> Result<(), FileError> {
        let files = self.inner.files()?;
        let path = path.to_owned();
        files::as_user(files.user, move || files.write(&path, &data)).await
    }

    fn poll(&self) -> Option<i32> {
        self.inner.lifecycle().poll()
    }

    async fn kill(&self) -> Result<(), RuntimeError> {
        self.inner.kill_all()
    }

    async fn cleanup(&self) -> Result<(), RuntimeError> {
        let (groups, namespaces, sandboxes) = {
            {
                // The running call is marked killed before the phase
                // leaves `Running` (after, `request_kill` is a no-op and
                // its result would not say `killed`).
                self.inner.lifecycle().clean();
            }
            self.inner.kill_all()?;
            let mut processes = self.inner.processes();
            (
                processes.groups.clone(),
                std::mem::take(&mut processes.dying),
                std::mem::take(&mut processes.dying_sandboxes),
            )
        };
        // SIGKILL is asynchronous: wait (briefly) until the processes are gone
        // so that "cleaned up" means what it says.
        let deadline = Instant::now() + CLEANUP_WAIT;
        let watchers = namespaces
            .iter()
            .map(PidNamespace::watcher)
            .chain(sandboxes.iter().map(|s| s.namespace().watcher()));
        for gone in watchers {
            gone.wait(CLEANUP_WAIT).await;
        }
        while groups.iter().any(|&g| group_exists(g)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Their cgroups go with them (dropped).
        drop(sandboxes);
        Ok(())
    }

    fn info(&self) -> RuntimeInfo {
        let state = self.inner.lifecycle().state();
        let processes = self.inner.processes();
        let current = processes.current;
        RuntimeInfo {
            kind: self.inner.core.environment.kind.clone(),
            state,
            pid: current,
            pgid: current.map(|pid| pid as i32),
            container_id: None,
            containment: self.inner.containment,
            init_pid: processes
                .namespace
                .as_ref()
                .map(PidNamespace::init_pid)
                .or_else(|| processes.sandbox.as_ref().map(Sandbox::init_pid)),
            slurm_job: None,
            commands_start: None,
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

    /// The working dir of `process`: its `cwd` against the session's.
    fn cwd_of(&self, process: &Process<'_>) -> PathBuf {
        match process.cwd {
            Some(cwd) => self.working_dir.join(cwd),
            None => self.working_dir.clone(),
        }
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

    /// Spawns the command in the session: `in_namespace()` into its
    /// namespace (made anew after a kill), or `as_group()` as a process
    /// group. Under the locks, so that a concurrent `kill` either stops it
    /// from starting or sees it.
    fn spawn_contained(
        &self,
        in_namespace: impl FnOnce() -> tokio::process::Command,
        as_group: impl FnOnce() -> HostCommand,
        epoch: u64,
    ) -> Result<Option<(SpawnedChild, Option<u32>)>, std::io::Error> {
        let life = self.lifecycle();
        if !life.may_start(epoch) {
            return Ok(None);
        }
        let mut processes = self.processes();
        let (child, init) = match self.containment {
            Containment::PidNamespace => {
                if !processes
                    .namespace
                    .as_ref()
                    .is_some_and(PidNamespace::is_alive)
                {
                    processes.namespace = Some(PidNamespace::create()?);
                }
                let namespace = processes.namespace.as_ref().expect("made above");
                let mut cmd = in_namespace();
                let child = inherited_fds::while_hidden(|| namespace.spawn(&mut cmd))?;
                let pid = child.id().expect("a child that was just spawned has a pid");
                (SpawnedChild::Tokio(child, pid), Some(namespace.init_pid()))
            }
            _ => {
                let child = as_group().spawn()?;
                processes.groups.push(child.process.id() as i32);
                (SpawnedChild::Host(child), None)
            }
        };
        processes.current = Some(child.id());
        Ok(Some((child, init)))
    }

    /// Whether the session's namespace ended (its init was killed), waiting
    /// briefly: the kernel ends the init only after its members.
    async fn namespace_ended(&self) -> bool {
        let init_pidfd = {
            let processes = self.processes();
            processes
                .namespace
                .as_ref()
                .or(processes.sandbox.as_ref().map(Sandbox::namespace))
                .map(PidNamespace::watcher)
        };
        match init_pidfd {
            Some(gone) => gone.wait(Duration::from_millis(200)).await,
            None => false,
        }
    }

    /// Kills what runs the command that went over time or lost its reader:
    /// its group, and the session's namespace or sandbox too when `scope`
    /// is the session.
    fn kill_command(&self, pgid: i32, scope: KillScope) {
        let namespaced = self.sandbox.is_some() || self.containment == Containment::PidNamespace;
        if scope == KillScope::Session && namespaced {
            let _ = self.kill_all();
        } else {
            let _ = kill_group(pgid);
        }
    }

    /// Checks what a call asks for and starts it.
    fn start_call(
        self: &Arc<Self>,
        request: ExecRequest,
        scope: KillScope,
    ) -> Result<EventStream, RuntimeError> {
        check_working_dir(&self.working_dir)?;
        if let Some(user) = &request.user {
            self.user_ids(user)?;
        }
        driver::start(self, request, scope)
    }

    /// The ids of `user` in the session: the host's users (another than
    /// subrt's own only when subrt is root); in a sandbox, its user only.
    fn user_ids(&self, user: &str) -> Result<UserIds, RuntimeError> {
        let refuse = |reason: String| RuntimeError::User {
            user: user.to_owned(),
            reason,
        };
        if let Some(spec) = &self.sandbox {
            let passwd = self
                .files()
                .ok()
                .and_then(|files| files.read("/etc/passwd", 1 << 20).ok())
                .map(|data| String::from_utf8_lossy(&data).into_owned())
                .unwrap_or_default();
            let ids = users::lookup(&passwd, user, "the sandbox's /etc/passwd").map_err(refuse)?;
            if (ids.uid, ids.gid) != spec.user && ids.uid != spec.user.0 {
                return Err(refuse(format!(
                    "a sandbox runs its commands as uid {} only: another user (root \
                     above all) would be that user on the host too, not only inside",
                    spec.user.0
                )));
            }
            return Ok(UserIds {
                uid: spec.user.0,
                gid: spec.user.1,
            });
        }
        let ids = users::lookup(&users::host_passwd(), user, "/etc/passwd").map_err(refuse)?;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if me != 0 && ids.uid != me {
            return Err(refuse(format!(
                "running a command as another user needs root (subrt runs as uid {me})"
            )));
        }
        Ok(ids)
    }

    /// How the session's files are reached, and as whom.
    fn files(&self) -> Result<files::HostFiles, RuntimeError> {
        if self.lifecycle().cleaned {
            return Err(RuntimeError::CleanedUp);
        }
        let Some(spec) = &self.sandbox else {
            return Ok(files::HostFiles {
                root: None,
                working_dir: self.working_dir.clone(),
                user: None,
            });
        };
        let mut processes = self.processes();
        if !processes.sandbox.as_ref().is_some_and(Sandbox::is_alive) {
            let name = format!("{}-{}", self.run_id, ulid::Ulid::generate());
            let made = Sandbox::create(spec, &name).map_err(|e| RuntimeError::InvalidSpec {
                environment: self.core.environment.name.clone(),
                reason: e.to_string(),
            })?;
            processes.sandbox = Some(made);
        }
        let init = processes.sandbox.as_ref().expect("made above").init_pid();
        let root_path = format!("/proc/{init}/root");
        let root = std::fs::File::open(&root_path).map_err(|source| RuntimeError::Io {
            context: format!("cannot open the sandbox's root {root_path}"),
            source,
        })?;
        Ok(files::HostFiles {
            root: Some(root.into()),
            working_dir: self.working_dir.clone(),
            user: Some(spec.user),
        })
    }
}

/// Where a shell would find `program` (an argv's first word) in `env`'s
/// `PATH` (or the shell's default one): `None` when it is not there, or
/// not executable, for the shell to say so.
fn find_program(program: &str, env: &BTreeMap<String, String>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = env.get("PATH").map_or(
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        String::as_str,
    );
    path.split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A command started, whichever way.
struct Started {
    child: LocalChild,
    /// The init of its PID namespace.
    init: Option<u32>,
    stdout: pipe::Receiver,
    stderr: pipe::Receiver,
    stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Sandboxed: how to read what the session used, and the reading
    /// before the command.
    meter: Option<(Box<dyn Fn() -> CgroupUsage + Send>, CgroupUsage)>,
}

/// A command's process: tokio's child (in a PID namespace), or one of
/// subrt's own start (a process group's, a sandbox's).
enum LocalChild {
    Process(tokio::process::Child),
    Raw(RawChild),
}

/// A command just spawned, before its pipes are taken.
enum SpawnedChild {
    /// In the session's PID namespace, with its pid.
    Tokio(tokio::process::Child, u32),
    /// As a process group of its own.
    Host(HostChild),
}

impl SpawnedChild {
    fn id(&self) -> u32 {
        match self {
            SpawnedChild::Tokio(_, pid) => *pid,
            SpawnedChild::Host(child) => child.process.id(),
        }
    }
}

impl LocalChild {
    fn id(&self) -> u32 {
        match self {
            LocalChild::Process(child) => child.id().expect("not yet reaped"),
            LocalChild::Raw(child) => child.id(),
        }
    }

    /// # Cancel safety
    ///
    /// Cancel-safe.
    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self {
            LocalChild::Process(child) => child.wait().await,
            LocalChild::Raw(child) => child.wait().await,
        }
    }
}

impl Inner {
    /// Starts `<shell> -c line` as a host process of the session (its
    /// namespace or its group). `None`: a kill came first.
    fn start_process(
        &self,
        process: &Process<'_>,
        stdin: bool,
    ) -> std::io::Result<Option<Started>> {
        let user = match process.user {
            Some(user) => Some(
                self.user_ids(user)
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
            ),
            None => None,
        };
        // Found on the command's PATH here, so that the spawn is a
        // `posix_spawn` (a program to search for, in an environment of its
        // own, makes std fork instead: the whole of a large caller, such
        // as Python, copied for each command).
        let program = process
            .args
            .first()
            .and_then(|program| find_program(program, process.env));
        // What runs: an argv as itself (one exec, not a shell's and then
        // the program's: 0.65 ms less for `true`), or `<shell> -c line`.
        let shell = &self.core.environment.local.shell;
        let argv = |direct: bool| -> (&Path, Vec<&OsStr>) {
            match (process.args.split_first(), &program) {
                (Some((_, args)), Some(program)) if direct => {
                    (program, args.iter().map(OsStr::new).collect())
                }
                _ => {
                    let mut args = vec![OsStr::new("-c"), OsStr::new(process.line)];
                    if !process.args.is_empty() {
                        args.push(OsStr::new("sh"));
                        args.extend(process.args.iter().map(OsStr::new));
                    }
                    (shell, args)
                }
            }
        };
        let cwd = self.cwd_of(process);
        let in_namespace = |direct: bool| {
            let (program, args) = argv(direct);
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args);
            if let Some(ids) = user {
                cmd.uid(ids.uid).gid(ids.gid);
            }
            cmd.current_dir(&cwd)
                .env_clear()
                .envs(process.env)
                .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
            cmd
        };
        // Not forked from subrt, nor from a harness around it (BENCHMARKS.md:
        // from a process holding 2 GiB a fork per command was 110x a spawn).
        let as_group = |direct: bool| {
            let (program, args) = argv(direct);
            // A shell named without a path is found on the command's PATH,
            // as std's `Command` would.
            let program = match program.is_absolute() {
                true => program.to_owned(),
                false => find_program(&program.to_string_lossy(), process.env)
                    .unwrap_or_else(|| program.to_owned()),
            };
            let mut cmd = HostCommand::new(&program);
            cmd.args(args)
                .envs(process.env)
                .current_dir(&cwd)
                .own_group()
                .die_with_subrt();
            if let Some(ids) = user {
                cmd.user(ids.uid, ids.gid);
            }
            if stdin {
                cmd.stdin_piped();
            }
            cmd
        };
        let spawn = |direct| {
            self.spawn_contained(|| in_namespace(direct), || as_group(direct), process.epoch)
        };
        let spawned = match spawn(program.is_some()) {
            // A program that cannot be run (not found, not executable, a
            // working dir missing) is run again through the shell, which
            // fails the same way and says so as a shell does: on the
            // command's stderr, with 127 or 126.
            Err(e) if !process.args.is_empty() => {
                tracing::debug!(error = %e, "argv not started directly; through the shell");
                spawn(false)
            }
            spawned => spawned,
        }?;
        let Some((child, init)) = spawned else {
            return Ok(None);
        };
        let (child, stdout, stderr, stdin) = match child {
            SpawnedChild::Host(child) => (
                LocalChild::Raw(child.process),
                child.stdout,
                child.stderr,
                child
                    .stdin
                    .map(|pipe| Box::new(pipe) as Box<dyn AsyncWrite + Send + Unpin>),
            ),
            SpawnedChild::Tokio(mut child, pid) => {
                let (stdout, stderr) = match process_io::take_pipes(&mut child) {
                    Ok(pipes) => pipes,
                    Err(e) => {
                        let _ = kill_group(pid as i32);
                        self.processes().current = None;
                        return Err(std::io::Error::new(
                            e.kind(),
                            format!("cannot read its output: {e}"),
                        ));
                    }
                };
                let stdin = child
                    .stdin
                    .take()
                    .map(|pipe| Box::new(pipe) as Box<dyn AsyncWrite + Send + Unpin>);
                (LocalChild::Process(child), stdout, stderr, stdin)
            }
        };
        Ok(Some(Started {
            child,
            init,
            stdout,
            stderr,
            stdin,
            meter: None,
        }))
    }

    /// Starts `<shell> -c line` in the session's sandbox (made anew after
    /// a kill). `None`: a kill came first.
    fn start_sandboxed(
        &self,
        process: &Process<'_>,
        stdin: bool,
    ) -> std::io::Result<Option<Started>> {
        let spec = self.sandbox.as_ref().expect("a sandboxed session");
        if let Some(user) = process.user {
            self.user_ids(user)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        let life = self.lifecycle();
        if !life.may_start(process.epoch) {
            return Ok(None);
        }
        let mut processes = self.processes();
        if !processes.sandbox.as_ref().is_some_and(Sandbox::is_alive) {
            let name = format!("{}-{}", self.run_id, ulid::Ulid::generate());
            let made =
                Sandbox::create(spec, &name).map_err(|e| std::io::Error::other(e.to_string()))?;
            processes.sandbox = Some(made);
        }
        let sandbox = processes.sandbox.as_ref().expect("made above");
        let (stdin_read, stdin_write) = match stdin {
            true => {
                let (read, write) = super::sandbox::stdin_pipe()?;
                (Some(read), Some(write))
            }
            false => (None, None),
        };
        sandbox.reset_peak();
        let before = sandbox.usage();
        let spawned = inherited_fds::while_hidden(|| {
            sandbox.spawn(
                &self.core.environment.local.shell,
                process.line,
                process.args,
                &self.cwd_of(process),
                process.env,
                stdin_read.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
            )
        })?;
        drop(stdin_read);
        let init = Some(sandbox.init_pid());
        let meter = sandbox.usage_reader().zip(before);
        processes.current = Some(spawned.pid as u32);
        drop(processes);
        drop(life);
        let child = RawChild::new(spawned.pid)?;
        process_io::enlarge_pipe(&spawned.stdout);
        process_io::enlarge_pipe(&spawned.stderr);
        let stdin =
            match stdin_write {
                Some(write) => Some(Box::new(pipe::Sender::from_owned_fd(write)?)
                    as Box<dyn AsyncWrite + Send + Unpin>),
                None => None,
            };
        Ok(Some(Started {
            child: LocalChild::Raw(child),
            init,
            stdout: pipe::Receiver::from_owned_fd(spawned.stdout)?,
            stderr: pipe::Receiver::from_owned_fd(spawned.stderr)?,
            stdin,
            meter,
        }))
    }
}

impl Runner for Inner {
    fn core(&self) -> &Core {
        &self.core
    }

    /// Runs one process to its end and reads its output until the pipes
    /// close or go quiet.
    async fn run(&self, process: Process<'_>, captures: [Capture; 2]) -> (Exit, [Capture; 2]) {
        let started = if self.sandbox.is_some() {
            self.start_sandboxed(&process, process.stdin.is_some())
        } else {
            self.start_process(&process, process.stdin.is_some())
        };
        let Process {
            line,
            args,
            epoch,
            cancel,
            scope,
            phase,
            stdin,
            deadline,
            tx,
            ..
        } = process;
        let shell = &self.core.environment.local.shell;
        // What the messages call the command.
        let line = if args.is_empty() {
            line.to_owned()
        } else {
            super::shell_words(args)
        };
        let line = line.as_str();
        let Started {
            mut child,
            init,
            stdout,
            stderr,
            stdin: stdin_pipe,
            meter,
        } = match started {
            Ok(Some(started)) => started,
            Ok(None) => return (Exit::killed(false), captures),
            Err(e) => {
                let note = format!("cannot start {line:?} ({}): {e}", shell.display());
                let _ = tx.send(RuntimeEvent::Note(note)).await;
                return (Exit::not_started(), captures);
            }
        };
        let pid = child.id();
        let pgid = pid as i32;
        let _ = tx
            .send(RuntimeEvent::ProcessStarted { pid, pgid, init })
            .await;
        let stdin = stdin.zip(stdin_pipe);
        let io = ProcessIo::start(stdout, stderr, stdin, phase, tx, captures);

        let mut timed_out = false;
        let status = tokio::select! {
            status = child.wait() => status,
            () = sleep_until(deadline) => {
                timed_out = true;
                self.kill_command(pgid, scope);
                child.wait().await
            }
            () = driver::abandoned(tx, cancel) => {
                self.kill_command(pgid, scope);
                child.wait().await
            }
        };
        let killed = timed_out || cancel.is_cancelled() || self.lifecycle().killed(epoch);
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
        if let LocalChild::Raw(child) = &child
            && let Some(usage) = child.usage()
        {
            exit.usage = usage;
        }
        if let Some((sandbox_usage, before)) = meter {
            let used = sandbox_usage().since(&before);
            exit.usage = used.as_usage();
            if used.oom_kills.is_some_and(|kills| kills > 0) && !killed {
                exit.ended_by = Some(KilledBy::OutOfMemory);
                let limit = self
                    .core
                    .environment
                    .limits
                    .memory
                    .as_deref()
                    .unwrap_or("the host's");
                let note = format!(
                    "{line:?} ran out of memory: the kernel's out-of-memory killer ended a \
                     process of it (memory limit {limit})"
                );
                let _ = tx.send(RuntimeEvent::Note(note)).await;
            }
        }
        if exit.signal == Some(libc::SIGKILL)
            && !killed
            && exit.ended_by.is_none()
            && self.namespace_ended().await
        {
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
