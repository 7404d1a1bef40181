//! `SlurmRuntime`: a session is a Slurm allocation, each command a step in
//! it, so sessions run on a cluster's nodes with the guarantees of the
//! others.
//!
//! - **The allocation** is made at spawn by `salloc -N1 -n1` (named
//!   `subrt-<env>-<run id>`, the owner in its comment) whose command is a
//!   holder on the submit host: it prints the job id and node, then reads a
//!   *lifeline* pipe from subrt. When subrt ends, however it ends, the pipe
//!   closes, the holder exits and `salloc` gives the allocation back at once;
//!   were `salloc` itself killed, the cluster's `InactiveLimit` ends the job,
//!   and `time` always bounds it. Within a batch, a session that ended
//!   cleanly hands its allocation on to the next session of the same
//!   request (`slurm_allocation`).
//! - **A command** is `srun --jobid=J --overlap -u -QQ <shell> -c <line>`:
//!   stdout and stderr arrive apart and live through srun's pipes, stdin goes
//!   to the task (given none, the command reads `/dev/null` while srun's
//!   stdin is held open: see `slurm_status`), and srun's own messages are
//!   silenced (`-QQ`) so that the command's stderr is only the command's.
//!   srun dies with subrt (`PR_SET_PDEATHSIG`), and a killed srun takes its
//!   step down: with `proctrack/cgroup` every process of the step, `setsid`
//!   included, is in the step's cgroup. The runtime refuses a cluster with
//!   another proctrack.
//! - **Timeouts are subrt's**: Slurm's limits are in minutes. At the
//!   deadline srun gets SIGKILL, as at `kill`; `cleanup` cancels the job.
//! - **A status is read, never assumed.** A command has ended with a status
//!   only when the step reported it. When srun ends without it, or the node
//!   or the controller stops answering while the command runs (watched by
//!   [`slurm_health`]), the command ends failed with
//!   `status_lost` saying why (`node failed`, `cluster unreachable`,
//!   `status lost`), within [`slurm_health::BOUND`], and the job is
//!   cancelled so that the node kills what is left when it comes back.
//! - The working dir, and the shell, must be reachable at the same paths on
//!   the nodes (a shared filesystem).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::sync::oneshot;

use super::capture::Capture;
use super::driver::{self, Core, Exit, Process, Runner, sleep_until};
use super::host_spawn::{HostChild, HostCommand};
use super::local::check_working_dir;
use super::owner::Owner;
use super::process_io::ProcessIo;
use super::raw_child::RawChild;
use super::slurm_allocation::{self, Allocation, AllocationPool};
use super::slurm_container::{self, SessionBundle};
use super::slurm_health;
use super::slurm_status::{StatusFilter, WRAPPER};
use super::users;
use super::{
    Containment, EventStream, ExecRequest, KillScope, KilledBy, LaunchSpec, RuntimeBackend,
    RuntimeError, RuntimeEvent, RuntimeInfo, SlurmJob, SubmissionRuntime,
};
use crate::spec::EnvironmentSpec;

/// How long the cluster's tools may take to answer a check.
const TOOL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after a command's status the end of its stdout may come (srun
/// forwards stdout and stderr apart; under load seconds apart).
const STDOUT_END_WAIT: Duration = Duration::from_secs(30);

/// Runs commands as steps of a Slurm allocation.
#[derive(Debug)]
pub struct SlurmRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    core: Core,
    working_dir: PathBuf,
    tools: &'static Tools,
    job: SlurmJob,
    /// The job, `salloc` and the lifeline; `None` once cleaned up.
    allocation: Mutex<Option<Allocation>>,
    /// Where the allocation goes at cleanup, when a batch hands it on.
    pool: Option<AllocationPool>,
    /// Set once anything of the session was killed or ended without its
    /// status: its allocation is then never handed on.
    spoiled: AtomicBool,
    steps: Mutex<Steps>,
    /// The session's OCI bundle, when its steps run in a container;
    /// removed at cleanup.
    bundle: Mutex<Option<SessionBundle>>,
    /// Marks the exit record of this session's steps (see [`slurm_status`]).
    ///
    /// [`slurm_status`]: super::slurm_status
    nonce: String,
    /// Where the node's `slurmd` listens, when the cluster says.
    slurmd: Option<SocketAddr>,
}

#[derive(Debug, Default)]
struct Steps {
    /// Pids of the running commands' sruns, the latest last.
    running: Vec<u32>,
    /// Steps started in the job; the next one's id.
    started: u32,
    /// sruns of finished commands whose steps still hold background
    /// processes; killed at `kill` and `cleanup`.
    lingering: Vec<Lingering>,
}

/// The srun of a finished command whose step lingers.
#[derive(Debug)]
struct Lingering {
    srun: RawChild,
    /// Its stdin, held open while it runs (see `slurm_status`).
    _stdin: Option<pipe::Sender>,
}

/// The cluster's commands, found once on PATH.
#[derive(Debug)]
pub(super) struct Tools {
    pub(super) salloc: PathBuf,
    pub(super) srun: PathBuf,
    pub(super) scancel: PathBuf,
    pub(super) squeue: PathBuf,
    pub(super) sinfo: PathBuf,
    pub(super) scontrol: PathBuf,
}

pub(super) fn tools() -> Result<&'static Tools, RuntimeError> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    super::fork_gate::once(&TOOLS, || {
        let find = |name: &str| {
            which(name).ok_or_else(|| {
                format!(
                    "`{name}` is not on PATH: install Slurm's client commands \
                     (Debian: slurm-client), or run subrt on a login node"
                )
            })
        };
        Ok(Tools {
            salloc: find("salloc")?,
            srun: find("srun")?,
            scancel: find("scancel")?,
            squeue: find("squeue")?,
            sinfo: find("sinfo")?,
            scontrol: find("scontrol")?,
        })
    })
    .as_ref()
    .map_err(|reason| slurm_error("find the cluster's commands", reason))
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

pub(super) fn slurm_error(action: &str, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::Slurm {
        action: action.to_owned(),
        reason: reason.into(),
    }
}

/// Runs one of the cluster's tools and returns its stdout.
pub(super) async fn query(program: &Path, args: &[&str]) -> Result<String, String> {
    let name = program
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(TOOL_TIMEOUT, output).await {
        Err(_) => Err(format!("`{name}` did not answer within {TOOL_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("cannot run `{name}`: {e}")),
        Ok(Ok(out)) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(format!("`{name}`: {}", stderr.trim()))
        }
    }
}

/// The cluster's config (`scontrol show config`), key to value; asked
/// once per process.
async fn cluster_config(tools: &Tools) -> Result<&'static HashMap<String, String>, RuntimeError> {
    static CONFIG: tokio::sync::OnceCell<HashMap<String, String>> =
        tokio::sync::OnceCell::const_new();
    CONFIG
        .get_or_try_init(|| async {
            let config = query(&tools.scontrol, &["show", "config"])
                .await
                .map_err(|reason| slurm_error("ask the controller for its config", reason))?;
            Ok(config
                .lines()
                .filter_map(|line| {
                    let (key, value) = line.split_once('=')?;
                    Some((key.trim().to_owned(), value.trim().to_owned()))
                })
                .collect())
        })
        .await
}

/// The cluster's `ProctrackType`.
async fn proctrack(tools: &Tools) -> Result<String, RuntimeError> {
    let config = cluster_config(tools).await?;
    Ok(config.get("ProctrackType").cloned().unwrap_or_default())
}

/// Whether the cluster gives each job a private `/tmp` (its
/// `JobContainerType` is `job_container/tmpfs`); unknown counts as yes.
async fn private_tmp_per_job(tools: &Tools) -> bool {
    match cluster_config(tools).await {
        Ok(config) => config
            .get("JobContainerType")
            .is_some_and(|kind| kind.contains("tmpfs")),
        Err(_) => true,
    }
}

/// Where `node`'s `slurmd` listens (`NodeAddr`, `SlurmdPort`), when the
/// cluster says; `None` leaves only the controller's word to watch it by.
/// Asked of the controller once per node and process (a session of a batch
/// would otherwise pay a `scontrol` for it).
async fn slurmd_of(tools: &Tools, node: &str) -> Option<SocketAddr> {
    static KNOWN: Mutex<BTreeMap<String, SocketAddr>> = Mutex::new(BTreeMap::new());
    if let Some(address) = super::fork_gate::lock(&KNOWN).get(node) {
        return Some(*address);
    }
    let address = ask_slurmd_of(tools, node).await?;
    super::fork_gate::lock(&KNOWN).insert(node.to_owned(), address);
    Some(address)
}

async fn ask_slurmd_of(tools: &Tools, node: &str) -> Option<SocketAddr> {
    let port = cluster_config(tools)
        .await
        .ok()?
        .get("SlurmdPort")?
        .parse()
        .ok()?;
    let shown = query(&tools.scontrol, &["show", "node", node, "-o"])
        .await
        .ok()?;
    let addr = shown
        .split_whitespace()
        .find_map(|field| field.strip_prefix("NodeAddr="))?
        .to_owned();
    tokio::task::spawn_blocking(move || slurm_health::slurmd_address(&addr, port))
        .await
        .ok()?
}

/// The state of each node as the controller says (`sinfo -N`), asked at
/// most once per [`slurm_health::EVERY`] by a process, whatever the
/// number of steps watching.
async fn node_states(tools: &Tools) -> Result<HashMap<String, String>, String> {
    type Cached = Option<(Instant, Result<HashMap<String, String>, String>)>;
    static STATES: Mutex<Cached> = Mutex::new(None);
    if let Some((at, states)) = &*super::fork_gate::lock(&STATES)
        && at.elapsed() < slurm_health::EVERY
    {
        return states.clone();
    }
    let states = query(&tools.sinfo, &["-h", "-N", "-o", "%N %T"])
        .await
        .map(|listing| {
            listing
                .lines()
                .filter_map(|line| {
                    let (node, state) = line.trim().split_once(' ')?;
                    Some((node.to_owned(), state.trim().to_owned()))
                })
                .collect()
        });
    *super::fork_gate::lock(&STATES) = Some((Instant::now(), states.clone()));
    states
}

async fn check_proctrack(tools: &Tools, environment: &str) -> Result<(), RuntimeError> {
    let proctrack = proctrack(tools).await?;
    if proctrack == "proctrack/cgroup" {
        return Ok(());
    }
    Err(RuntimeError::InvalidSpec {
        environment: environment.to_owned(),
        reason: format!(
            "the cluster's ProctrackType is `{proctrack}`: a step's `setsid` and \
             background processes would escape it; subrt needs proctrack/cgroup"
        ),
    })
}

impl RuntimeBackend for SlurmRuntime {
    async fn spawn(mut launch: LaunchSpec) -> Result<Self, RuntimeError> {
        // A spec made in code has not been through config.toml's checks.
        launch
            .environment
            .check()
            .map_err(|reason| RuntimeError::InvalidSpec {
                environment: launch.environment.name.clone(),
                reason,
            })?;
        let tools = tools()?;
        check_working_dir(&launch.working_dir)?;
        check_proctrack(tools, &launch.environment.name).await?;
        let mut config = launch.environment.slurm.clone().unwrap_or_default();
        // The environment's limits, where the slurm table says nothing: the
        // allocation's memory (the node's cgroup enforces it) and CPUs.
        let limits = &launch.environment.limits;
        if config.mem.is_none() {
            config.mem = limits
                .memory_bytes()
                .map(|bytes| format!("{}M", bytes.div_ceil(1 << 20)));
        }
        if config.cpus.is_none() {
            config.cpus = limits.cpus.map(|cpus| cpus.ceil() as u32);
        }
        let mut notes = Vec::new();
        if limits.pids.is_some()
            || limits.tmp.is_some()
            || limits.file_size.is_some()
            || limits.open_files.is_some()
        {
            notes.push(
                "limits.pids, tmp, file_size and open_files do not apply to Slurm steps \
                 (memory and cpus do); ignored"
                    .to_owned(),
            );
        }
        if !launch.ports.is_empty() || !launch.mounts.is_empty() {
            notes.push("ports and mounts do not apply to the Slurm runtime; ignored".to_owned());
        }
        let bundle = match &config.container {
            Some(container) => Some(slurm_container::prepare(container, &launch).await?),
            None => None,
        };
        let request = slurm_allocation::request_args(&config);
        // A pool only where the environment lets its allocations be reused,
        // and where a job's private files end with it: a cluster that gives
        // each job a `/tmp` of its own (`job_container/tmpfs`) would share
        // it between the submissions of a handed-on job.
        let mut pool = launch
            .allocation_pool
            .take()
            .filter(|_| config.reuse_allocations);
        if pool.is_some() && private_tmp_per_job(tools).await {
            pool = None;
            notes.push(
                "slurm: the cluster gives each job a /tmp of its own (job_container/tmpfs): \
                 a job per submission, none handed on"
                    .to_owned(),
            );
        }
        let (handed_on, stale) = match &pool {
            Some(pool) => pool.take(&request),
            None => (None, Vec::new()),
        };
        for allocation in stale {
            tokio::spawn(allocation.release(tools));
        }
        let allocation = match handed_on {
            Some(allocation) => {
                notes.push(format!(
                    "slurm: job {} on node {}, handed on from an earlier session of this batch",
                    allocation.job.job_id, allocation.job.node
                ));
                allocation
            }
            None => {
                let mut allocation = slurm_allocation::allocate(tools, &launch, &config).await?;
                allocation.slurmd = slurmd_of(tools, &allocation.job.node).await;
                allocation
            }
        };
        let steps_started = allocation.steps_started;
        let working_dir = launch.working_dir.clone();
        let assets = launch
            .asset_sources()?
            .into_iter()
            .map(|(name, path)| (name, path.display().to_string()))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                core: Core::of(&launch, assets, notes),
                working_dir,
                tools,
                job: allocation.job.clone(),
                slurmd: allocation.slurmd,
                allocation: Mutex::new(Some(allocation)),
                pool,
                spoiled: AtomicBool::new(false),
                steps: Mutex::new(Steps {
                    started: steps_started,
                    ..Steps::default()
                }),
                nonce: ulid::Ulid::generate().to_string(),
                bundle: Mutex::new(bundle),
            }),
        })
    }

    async fn check(spec: &EnvironmentSpec) -> Result<(), RuntimeError> {
        let tools = tools()?;
        let partitions = query(&tools.sinfo, &["-h", "-o", "%P"])
            .await
            .map_err(|reason| slurm_error("reach the controller (sinfo)", reason))?;
        let config = spec.slurm.clone().unwrap_or_default();
        if let Some(partition) = &config.partition {
            let known: Vec<&str> = partitions
                .lines()
                .map(|p| p.trim().trim_end_matches('*'))
                .collect();
            if !known.contains(&partition.as_str()) {
                return Err(RuntimeError::InvalidSpec {
                    environment: spec.name.clone(),
                    reason: format!(
                        "the cluster has no partition `{partition}` (partitions: {})",
                        known.join(", ")
                    ),
                });
            }
        }
        check_proctrack(tools, &spec.name).await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Whether the step of every command has ended on its own, waiting up
    /// to [`STEP_END_WAIT`] for those ending now: none runs, and each one's
    /// srun exited 0. (A step holding a background process does not end.)
    ///
    /// [`STEP_END_WAIT`]: slurm_allocation::STEP_END_WAIT
    async fn steps_ended(&self) -> bool {
        let lingering = {
            let mut steps = lock(&self.steps);
            if !steps.running.is_empty() {
                return false;
            }
            std::mem::take(&mut steps.lingering)
        };
        let deadline = tokio::time::Instant::now() + slurm_allocation::STEP_END_WAIT;
        let mut left = Vec::new();
        for mut step in lingering {
            match tokio::time::timeout_at(deadline, step.srun.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                _ => left.push(step),
            }
        }
        let ended = left.is_empty();
        lock(&self.steps).lingering.extend(left);
        ended
    }

    /// SIGKILL to a running command's srun: its step goes with it.
    fn kill_step(&self, pid: u32) {
        if lock(&self.steps).running.contains(&pid) {
            // SAFETY: kill(2) with a pid we started and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }

    /// Kills every step of the session: the running ones and those that
    /// hold background processes of earlier commands.
    fn kill_steps(&self) {
        let mut steps = lock(&self.steps);
        for &pid in &steps.running {
            // SAFETY: as in `kill_step`.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        for step in steps.lingering.drain(..) {
            step.srun.start_kill();
        }
    }
}

impl Runner for Inner {
    fn core(&self) -> &Core {
        &self.core
    }

    async fn run(&self, process: Process<'_>, captures: [Capture; 2]) -> (Exit, [Capture; 2]) {
        let Process {
            line,
            args,
            cwd,
            user,
            epoch,
            cancel,
            phase,
            stdin,
            env,
            deadline,
            tx,
            ..
        } = process;
        if let Some(user) = user
            && let Err(e) = self.check_user(user)
        {
            let _ = tx.send(RuntimeEvent::Note(e.to_string())).await;
            return (Exit::not_started(), captures);
        }
        let shell = &self.core.environment.local.shell;
        let mut cmd = HostCommand::new(&self.tools.srun);
        cmd.arg(format!("--jobid={}", self.job.job_id)).args([
            "--overlap",
            "-u",
            "-QQ",
            "-N1",
            "-n1",
        ]);
        if let Some(bundle) = &*lock(&self.bundle) {
            cmd.arg(format!("--container={}", bundle.dir.display()));
        }
        let chdir = match cwd {
            Some(cwd) => self.working_dir.join(cwd),
            None => self.working_dir.clone(),
        };
        cmd.arg(format!("--chdir={}", chdir.display()))
            .args(["--", "/bin/sh", "-c", WRAPPER, "subrt-step"])
            .arg(shell)
            .arg(line)
            .arg(&self.nonce)
            .arg(if stdin.is_some() { "stdin" } else { "none" })
            .args(args)
            // srun hands its own environment to the task (`--export=ALL`):
            // the command's variables, and what srun needs to find the
            // cluster.
            .envs(slurm_client_env())
            .envs(env)
            .own_group()
            .die_with_subrt()
            // Piped even for no stdin: held open, srun sends nothing the
            // step could leave unread (see `slurm_status`).
            .stdin_piped();

        let spawned = {
            let life = self.lifecycle();
            if !life.may_start(epoch) {
                return (Exit::killed(false), captures);
            }
            let mut steps = lock(&self.steps);
            let child = cmd.spawn();
            if let Ok(child) = &child {
                steps.running.push(child.process.id());
                steps.started += 1;
            }
            child.map(|child| (child, steps.started - 1))
        };
        let (child, step) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                let note = format!("cannot start srun for {line:?}: {e}");
                let _ = tx.send(RuntimeEvent::Note(note)).await;
                return (Exit::not_started(), captures);
            }
        };
        let HostChild {
            process: mut child,
            stdin: stdin_pipe,
            stdout,
            stderr,
        } = child;
        let pid = child.id();
        let note = format!(
            "slurm: step {}.{step} on node {}",
            self.job.job_id, self.job.node
        );
        let _ = tx.send(RuntimeEvent::Note(note)).await;
        let started = RuntimeEvent::ProcessStarted {
            pid,
            pgid: pid as i32,
            init: None,
        };
        let _ = tx.send(started).await;

        let (status_tx, mut status_rx) = oneshot::channel();
        let stderr = StatusFilter::new(stderr, &self.nonce, status_tx);
        // The same record on stdout marks its end (see `slurm_status`).
        let (stdout_end_tx, mut stdout_end) = oneshot::channel();
        let stdout = StatusFilter::new(stdout, &self.nonce, stdout_end_tx);
        let stdin_pipe = stdin_pipe.expect("srun's stdin is piped");
        let (stdin, held_stdin) = match stdin {
            Some(bytes) => (Some((bytes, stdin_pipe)), None),
            None => (None, Some(stdin_pipe)),
        };
        let io = ProcessIo::start(stdout, stderr, stdin, phase, tx, captures);

        let mut timed_out = false;
        let ended = tokio::select! {
            // The command's status, from the step (which may stay for the
            // command's background processes).
            Ok(status) = &mut status_rx => Ended::Command(status),
            status = child.wait() => Ended::Srun(status),
            () = sleep_until(deadline) => {
                timed_out = true;
                self.kill_step(pid);
                Ended::Srun(child.wait().await)
            }
            () = driver::abandoned(tx, cancel) => {
                self.kill_step(pid);
                Ended::Srun(child.wait().await)
            }
            // Its node or the cluster went: its status will never come.
            reason = self.lost() => {
                self.kill_step(pid);
                let _ = child.wait().await;
                Ended::Lost(reason)
            }
        };
        {
            let mut steps = lock(&self.steps);
            steps.running.retain(|&p| p != pid);
            if matches!(ended, Ended::Command(_)) {
                steps
                    .lingering
                    .retain_mut(|step| matches!(step.srun.try_wait(), Ok(None)));
                steps.lingering.push(Lingering {
                    srun: child,
                    _stdin: held_stdin,
                });
            }
        }
        // The status came on stderr; stdout is whole once its own record
        // has come too (or it ended without one: cut short). A kill or a
        // reader gone meanwhile ends the wait.
        let (mut stdout_whole, mut waited_out) = (false, false);
        if matches!(ended, Ended::Command(_)) && !timed_out && !self.lifecycle().killed(epoch) {
            tokio::select! {
                end = &mut stdout_end => stdout_whole = end.is_ok(),
                () = tokio::time::sleep(STDOUT_END_WAIT) => waited_out = true,
                () = driver::abandoned(tx, cancel) => {}
            }
        }
        let killed = timed_out || cancel.is_cancelled() || self.lifecycle().killed(epoch);
        let [out_capture, err_capture] = io.finish(killed).await;
        // srun can end before the reader of stderr has come to the record:
        // the wrapper exits (with 0) as soon as it wrote it, when nothing
        // lingers. Read to its end now, stderr has given the record up if
        // it held one; without this an `exit 7` read as 0. The same for
        // stdout's record.
        let ended = match (ended, status_rx.try_recv()) {
            (Ended::Srun(_), Ok(status)) => Ended::Command(status),
            (ended, _) => ended,
        };
        stdout_whole |= stdout_end.try_recv().is_ok();
        let stdout_cut =
            (matches!(ended, Ended::Command(_)) && !killed && !stdout_whole).then(|| {
                if waited_out {
                    format!(
                        "did not come to its end within {} s of the command's status",
                        STDOUT_END_WAIT.as_secs()
                    )
                } else {
                    "ended without the step's end record".to_owned()
                }
            });
        if !matches!(ended, Ended::Command(_)) || killed || stdout_cut.is_some() {
            self.spoiled.store(true, Ordering::Relaxed);
        }
        let exit = match ended {
            Ended::Command(status) if let Some(cut) = &stdout_cut => Exit::lost(
                format!(
                    "output lost: the command exited {}, but its stdout {cut}; what was read \
                     of it may be cut short",
                    status.code,
                ),
                false,
            ),
            Ended::Command(status) => {
                let mut exit = Exit::from_shell_code(status.code, timed_out);
                if status.oom_kills > 0 && !killed {
                    exit.ended_by = Some(KilledBy::OutOfMemory);
                    let note = format!(
                        "slurm: {line:?} ran out of memory: the node's out-of-memory killer \
                         ended a process of it (the allocation's --mem)"
                    );
                    let _ = tx.send(RuntimeEvent::Note(note)).await;
                }
                exit
            }
            // Killed by subrt (a kill, a timeout): srun exits with 128+N
            // for a task killed by N.
            Ended::Srun(Ok(status)) if killed => {
                Exit::from_shell_code(Exit::from_status(status, timed_out).code, timed_out)
            }
            Ended::Srun(Ok(status)) => self.without_status(status).await,
            Ended::Srun(Err(e)) => {
                Exit::lost(format!("status lost: cannot wait for srun: {e}"), timed_out)
            }
            Ended::Lost(reason) => Exit::lost(reason, false),
        };
        if let Some(reason) = exit.lost.as_ref().filter(|_| stdout_cut.is_some()) {
            // The step said how the command ended: the node is there.
            let note = format!("slurm: {line:?} on node {}: {reason}", self.job.node);
            let _ = tx.send(RuntimeEvent::Note(note)).await;
        } else if let Some(reason) = &exit.lost {
            let note = format!(
                "slurm: {line:?} on node {}: {reason}; its exit status is not known",
                self.job.node
            );
            let _ = tx.send(RuntimeEvent::Note(note)).await;
            // What may still run there is killed when the node answers
            // again (its job is gone).
            let _ = query(&self.tools.scancel, &[&self.job.job_id]).await;
        } else if exit.ended_by == Some(KilledBy::Outside) {
            let note = format!(
                "slurm: job {} was ended from outside subrt (scancel, or its time limit)",
                self.job.job_id
            );
            let _ = tx.send(RuntimeEvent::Note(note)).await;
        }
        (exit, [out_capture, err_capture])
    }
}

impl Inner {
    /// Checks what a call asks for and starts it.
    fn start_call(
        self: &Arc<Self>,
        request: ExecRequest,
        scope: KillScope,
    ) -> Result<EventStream, RuntimeError> {
        if lock(&self.allocation).is_none() {
            return Err(RuntimeError::CleanedUp);
        }
        if let Some(user) = &request.user {
            self.check_user(user)?;
        }
        driver::start(self, request, scope)
    }

    /// Slurm runs every step as the user who holds the allocation: that
    /// user (by name or uid) is the only one a command may ask for.
    fn check_user(&self, user: &str) -> Result<(), RuntimeError> {
        let refuse = |reason: String| RuntimeError::User {
            user: user.to_owned(),
            reason,
        };
        let ids = users::lookup(&users::host_passwd(), user, "/etc/passwd").map_err(refuse)?;
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        if ids.uid != me {
            return Err(refuse(format!(
                "Slurm runs every step as the user who holds the allocation (uid {me})"
            )));
        }
        Ok(())
    }

    /// How a command ended whose srun exited (`srun`) before the step said,
    /// and not by subrt's hand: cancelled from outside (the job was
    /// cancelled, or ran out of time), or lost with the reason the cluster
    /// gives (its node failed, the controller does not answer), or lost
    /// for want of a status. Never a success.
    async fn without_status(&self, srun: std::process::ExitStatus) -> Exit {
        let code = Exit::from_status(srun, false).code;
        let job = &self.job.job_id;
        let node = &self.job.node;
        let state = match query(&self.tools.scontrol, &["show", "job", job, "-o"]).await {
            Ok(shown) => shown
                .split_whitespace()
                .find_map(|f| f.strip_prefix("JobState="))
                .map(str::to_owned),
            // Gone from the controller's memory (`MinJobAge`): not known.
            Err(e) if e.contains("Invalid job id") => None,
            Err(e) => return Exit::lost(format!("cluster unreachable: {e}"), false),
        };
        let node_state = node_states(self.tools)
            .await
            .ok()
            .and_then(|states| states.get(node).cloned());
        match (state.as_deref(), node_state) {
            // The node first: a job on a failed node may read COMPLETING.
            (_, Some(node_state)) if slurm_health::state_is_lost(&node_state) => Exit::lost(
                format!("node failed: the controller reports node {node} {node_state}"),
                false,
            ),
            // Ended by someone else: cancelled (COMPLETING is a job on its
            // way out), out of time, preempted.
            (
                Some(
                    "CANCELLED" | "COMPLETING" | "COMPLETED" | "TIMEOUT" | "DEADLINE" | "PREEMPTED",
                ),
                _,
            ) => Exit {
                ended_by: Some(KilledBy::Outside),
                ..Exit::from_shell_code(code, false)
            },
            (Some("NODE_FAIL"), _) => Exit::lost(
                format!("node failed: job {job} on node {node} ended with NODE_FAIL"),
                false,
            ),
            (state, _) => Exit::lost(
                format!(
                    "status lost: srun exited {code} without the command's status (job {job}: {})",
                    state.unwrap_or("gone")
                ),
                false,
            ),
        }
    }

    /// Ends, with the reason, once the node of the session or the cluster
    /// is lost; while both answer it never does (see
    /// [`slurm_health`]). Cancel-safe: it only watches.
    async fn lost(&self) -> String {
        let node = &self.job.node;
        let mut controller_silent: Option<Instant> = None;
        let mut node_lost: Option<Instant> = None;
        loop {
            tokio::time::sleep(slurm_health::EVERY).await;
            if let Some(address) = self.slurmd {
                let silent = tokio::task::spawn_blocking(move || slurm_health::silent_for(address))
                    .await
                    .ok()
                    .flatten();
                if let Some(silent) = silent.filter(|s| *s >= slurm_health::GRACE) {
                    return format!(
                        "node failed: slurmd of node {node} ({address}) has not answered for {} s",
                        silent.as_secs()
                    );
                }
            }
            match node_states(self.tools).await {
                Ok(states) => {
                    controller_silent = None;
                    let lost = states
                        .get(node)
                        .filter(|state| slurm_health::state_is_lost(state));
                    match lost {
                        // Twice in a row: a controller that restarts shows
                        // nodes unanswering for a moment.
                        Some(state)
                            if node_lost.is_some_and(|t| t.elapsed() >= slurm_health::EVERY) =>
                        {
                            return format!(
                                "node failed: the controller reports node {node} {state}"
                            );
                        }
                        Some(_) => {
                            node_lost.get_or_insert_with(Instant::now);
                        }
                        None => node_lost = None,
                    }
                }
                Err(e) => {
                    let since = *controller_silent.get_or_insert_with(Instant::now);
                    if since.elapsed() >= slurm_health::GRACE {
                        return format!(
                            "cluster unreachable: the controller has not answered for {} s ({e})",
                            since.elapsed().as_secs()
                        );
                    }
                }
            }
        }
    }
}

/// How a step's command ended, as the runtime first learns it.
enum Ended {
    /// The step reported the command's exit status.
    Command(super::slurm_status::StepStatus),
    /// srun exited first.
    Srun(std::io::Result<std::process::ExitStatus>),
    /// The node or the cluster was lost while the command ran.
    Lost(String),
}

/// The variable srun itself needs from subrt's environment (where the
/// cluster's config is), passed beside the command's.
fn slurm_client_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars().filter(|(key, _)| key == "SLURM_CONF")
}

#[async_trait]
impl SubmissionRuntime for SlurmRuntime {
    async fn stream(&self, request: ExecRequest) -> Result<EventStream, RuntimeError> {
        self.inner.start_call(request, KillScope::Session)
    }

    async fn start(&self, request: ExecRequest) -> Result<EventStream, RuntimeError> {
        self.inner.start_call(request, KillScope::Command)
    }

    fn poll(&self) -> Option<i32> {
        self.inner.lifecycle().poll()
    }

    async fn kill(&self) -> Result<(), RuntimeError> {
        let mut life = self.inner.lifecycle();
        life.request_kill();
        self.inner.spoiled.store(true, Ordering::Relaxed);
        self.inner.kill_steps();
        Ok(())
    }

    async fn cleanup(&self) -> Result<(), RuntimeError> {
        let inner = &self.inner;
        inner.lifecycle().clean();
        // Taken first: of cleanups at once, the one that has it decides.
        let Some(mut allocation) = lock(&inner.allocation).take() else {
            inner.kill_steps();
            return Ok(());
        };
        let steps_ended = inner.pool.is_some() && inner.steps_ended().await;
        inner.kill_steps();
        allocation.steps_started = lock(&inner.steps).started;
        let allocation = match &inner.pool {
            Some(pool) if steps_ended && !inner.spoiled.load(Ordering::Relaxed) => {
                match pool.park(allocation) {
                    None => {
                        lock(&inner.bundle).take();
                        return Ok(());
                    }
                    Some(allocation) => allocation,
                }
            }
            _ => allocation,
        };
        let released = allocation.release(inner.tools).await;
        // Its steps are gone with the job.
        lock(&inner.bundle).take();
        released
    }

    fn info(&self) -> RuntimeInfo {
        let state = self.inner.lifecycle().state();
        let current = lock(&self.inner.steps).running.last().copied();
        RuntimeInfo {
            kind: self.inner.core.environment.kind.clone(),
            state,
            pid: current,
            pgid: current.map(|pid| pid as i32),
            container_id: None,
            containment: Containment::SlurmStep,
            init_pid: None,
            slurm_job: Some(self.inner.job.clone()),
            commands_start: None,
        }
    }
}

impl Drop for SlurmRuntime {
    /// The step goes with its srun; the lifeline's end releases the job.
    fn drop(&mut self) {
        self.inner.kill_steps();
    }
}

/// A job of the cluster that subrt made (named `subrt-...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedJob {
    /// The job id.
    pub job_id: String,
    /// `subrt-<env>-<run id>`.
    pub name: String,
    /// Its state (`RUNNING`, `PENDING`...).
    pub state: String,
    /// Its node(s).
    pub nodes: String,
    /// The owner's label, from the comment.
    pub owner: String,
    /// Whether it is left over: its owner, on this host, is gone. An owner
    /// on another host cannot be checked from here and counts as alive.
    pub owner_gone: bool,
}

/// subrt's jobs in the cluster's queue; only those whose owner is gone
/// unless `all`.
///
/// # Errors
///
/// The cluster's commands are missing or the controller does not answer.
pub async fn leftover_jobs(all: bool) -> Result<Vec<ManagedJob>, RuntimeError> {
    let tools = tools()?;
    let listing = query(&tools.squeue, &["-h", "-o", "%i|%j|%T|%N|%k"])
        .await
        .map_err(|reason| slurm_error("list the queue (squeue)", reason))?;
    let jobs = listing.lines().filter_map(|line| {
        let mut fields = line.splitn(5, '|');
        let (job_id, name, state, nodes, comment) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let owner = comment.strip_prefix("subrt owner=")?;
        if !name.starts_with("subrt-") {
            return None;
        }
        let owner_gone = Owner::parse_label(owner)
            .is_some_and(|o| o.host == super::owner::hostname() && !o.is_alive());
        Some(ManagedJob {
            job_id: job_id.to_owned(),
            name: name.to_owned(),
            state: state.to_owned(),
            nodes: nodes.to_owned(),
            owner: owner.to_owned(),
            owner_gone,
        })
    });
    Ok(jobs.filter(|job| all || job.owner_gone).collect())
}

/// Cancels job `job_id` (`scancel`).
///
/// # Errors
///
/// `scancel` is missing or refuses.
pub async fn cancel_job(job_id: &str) -> Result<(), RuntimeError> {
    let tools = tools()?;
    query(&tools.scancel, &[job_id])
        .await
        .map(drop)
        .map_err(|reason| slurm_error(&format!("cancel job {job_id}"), reason))
}
