//! A Slurm session's allocation: made by `salloc` with a holder, given
//! back when the lifeline closes, and, within a batch, handed on from a
//! session that ended cleanly to the next that asks for the same.
//!
//! # Handing an allocation on ([`AllocationPool`])
//!
//! A submission's cost on a cluster is mostly its allocation: a request to
//! the controller, a job that starts and then completes on its node (and
//! Slurm 22.05 keeps a node with a job in `COMPLETING` from every new job
//! that shares nodes, so ends that meet on every node at once stall the
//! whole queue until the controller's next pass). A batch gives its
//! sessions one pool; a session's allocation goes back to it at cleanup,
//! and the next session of the same request (partition, account, memory,
//! CPUs, nodes, constraint, time, extra arguments) takes it in place of a
//! new one. Its commands are steps of their own, as always: each step's
//! processes are in the step's cgroup and go when it ends.
//!
//! An allocation is handed on only when nothing of the last session can be
//! left in it:
//!
//! - every command ended with the status its step reported, and the step
//!   then ended on its own (its `srun` exited 0 within
//!   [`STEP_END_WAIT`] of the session's cleanup);
//! - nothing was killed: no `kill`, no timeout, no call given up, no status
//!   lost, no step still holding a background process at cleanup;
//! - the job still runs (its holder has not ended), and at most a tenth of
//!   its time limit (`slurm.time`) has gone, so that every session has at
//!   least nine tenths of it;
//! - the pool is not closed (the batch has not ended);
//! - the cluster does not give each job a `/tmp` of its own
//!   (`JobContainerType=job_container/tmpfs`): there a handed-on job would
//!   share it between submissions, so every submission gets its own job.
//!
//! Otherwise the allocation is given back as without a pool. A handed-on
//! allocation keeps the job name of the run that made it; each session's
//! first note names the job and says it was handed on. A batch holds no
//! more allocations than it runs sessions at once: a session that finds no
//! allocation of its request makes one and gives back the one parked
//! longest of another request, if any. The pool closes at the batch's end
//! and gives back what it holds; should subrt die first, the lifelines
//! close and every holder ends as for a session. An environment with
//! `slurm.reuse_allocations = false` never hands its allocations on.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::unix::pipe;

use super::RuntimeError;
use super::host_spawn::{HostChild, HostCommand};
use super::models::{LaunchSpec, SlurmJob};
use super::owner::Owner;
use super::raw_child::RawChild;
use super::slurm::{Tools, query, slurm_error};
use crate::spec::SlurmConfig;

/// What the holder runs under `salloc`: report the allocation, then wait
/// for the lifeline to close, and end with 0: salloc's job ends with its
/// command's status, and `read` at end of file says 1 (every session's
/// job read `FAILED`, exit code 1, to `sacct` and `scontrol`).
const HOLDER: &str = "echo \"$SLURM_JOB_ID $SLURM_JOB_NODELIST\"; read -r _; exit 0";

/// How long a session's cleanup waits for the steps of its finished
/// commands to end on their own before its allocation is handed on (a
/// step ends a moment after its command's status; one that holds a
/// background process does not, and is killed with the allocation).
pub(super) const STEP_END_WAIT: Duration = Duration::from_secs(1);

/// How long `salloc` may take to give the job back once the lifeline
/// closed, before the job is cancelled.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// `salloc` and the lifeline of a running allocation.
#[derive(Debug)]
struct Holder {
    salloc: RawChild,
    /// Closing it ends the holder, and so the allocation.
    lifeline: pipe::Sender,
    /// salloc's stderr, open for as long as it runs: closed, a word of
    /// salloc's there would end it (SIGPIPE), and the allocation with it.
    _stderr: pipe::Receiver,
}

/// A running allocation, and what decides whether it may be handed on.
#[derive(Debug)]
pub(super) struct Allocation {
    pub(super) job: SlurmJob,
    /// Where the node's `slurmd` listens, when the cluster says.
    pub(super) slurmd: Option<SocketAddr>,
    holder: Holder,
    /// Steps started in the job so far: the next one's id (a handed-on job
    /// goes on counting).
    pub(super) steps_started: u32,
    /// The `salloc` arguments that ask for it, bar its name and comment:
    /// what a session must ask for to be handed it.
    request: Vec<String>,
    made: Instant,
    /// How long after `made` it may be handed on; `None`: never.
    handed_on_until: Option<Duration>,
}

/// The `salloc` arguments that say what an allocation is (the job's name
/// and comment aside).
pub(super) fn request_args(config: &SlurmConfig) -> Vec<String> {
    let mut args: Vec<String> = ["-N1", "-n1", "-Q"].map(String::from).to_vec();
    let mut opt = |flag: &str, value: &Option<String>| {
        if let Some(value) = value {
            args.push(format!("--{flag}={value}"));
        }
    };
    opt("partition", &config.partition);
    opt("account", &config.account);
    opt("mem", &config.mem);
    opt("cpus-per-task", &config.cpus.map(|c| c.to_string()));
    opt("nodelist", &config.nodes);
    opt("constraint", &config.constraint);
    args.push(format!("--time={}", config.time));
    args.extend(config.extra_args.iter().cloned());
    args
}

/// Slurm's time format (`--time`): `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`,
/// `D-H:M:S`. `None` for anything else (`UNLIMITED` included).
pub(super) fn time_limit(time: &str) -> Option<Duration> {
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (days, rest) = match time.split_once('-') {
        Some((days, rest)) => (Some(number(days)?), rest),
        None => (None, time),
    };
    let parts = rest.split(':').map(number).collect::<Option<Vec<u64>>>()?;
    let seconds = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86_400 + h * 3600,
        (Some(d), [h, m]) => d * 86_400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86_400 + h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

/// Cancels the jobs named `name` when dropped armed: a spawn that fails or
/// is cancelled half-way leaves no allocation behind.
struct CancelOnDrop<'a> {
    tools: &'a Tools,
    name: &'a str,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::process::Command::new(&self.tools.scancel)
                .args(["--quiet", &format!("--name={}", self.name)])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
        }
    }
}

/// Makes a session's allocation: `salloc` with the holder, and the job id
/// and node it prints once the job runs.
///
/// # Errors
///
/// [`RuntimeError::Slurm`] when `salloc` cannot start or ends without an
/// allocation (with what it said).
///
/// # Cancel safety
///
/// Dropped before the job runs, the job is cancelled (by name).
pub(super) async fn allocate(
    tools: &'static Tools,
    launch: &LaunchSpec,
    config: &SlurmConfig,
) -> Result<Allocation, RuntimeError> {
    let name = format!("subrt-{}-{}", launch.environment.name, launch.run_id);
    let comment = format!("subrt owner={}", Owner::this_process().label());
    let mut guard = CancelOnDrop {
        tools,
        name: &name,
        armed: true,
    };
    let request = request_args(config);
    // Not killed on drop: a SIGKILLed salloc leaves its job to the
    // cluster's InactiveLimit (which may be off). Closing the lifeline
    // ends the holder, and salloc gives the job back itself.
    // salloc lasts as long as the session: it holds no descriptor but its
    // standard streams (nor does srun for its step).
    let mut salloc = HostCommand::new(&tools.salloc);
    salloc
        .args(&request)
        .arg(format!("--job-name={name}"))
        .arg(format!("--comment={comment}"))
        .args(["--", "/bin/sh", "-c", HOLDER])
        .envs(std::env::vars_os())
        .stdin_piped();
    let made = Instant::now();
    let HostChild {
        process: mut salloc,
        stdin: lifeline,
        stdout,
        mut stderr,
    } = salloc
        .spawn()
        .map_err(|e| slurm_error("start salloc", e.to_string()))?;
    let lifeline = lifeline.expect("stdin is piped");
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    let read = stdout.read_line(&mut line).await;
    let mut words = line.split_whitespace();
    let (Ok(_), Some(job_id), Some(node)) = (read, words.next(), words.next()) else {
        let mut said = String::new();
        let _ = stderr.read_to_string(&mut said).await;
        let _ = salloc.wait().await;
        let reason = match said.trim() {
            "" => "salloc ended without an allocation".to_owned(),
            text => text.replace('\n', "; "),
        };
        return Err(slurm_error("allocate a node (salloc)", reason));
    };
    guard.armed = false;
    Ok(Allocation {
        job: SlurmJob {
            job_id: job_id.to_owned(),
            node: node.to_owned(),
        },
        slurmd: None,
        holder: Holder {
            salloc,
            lifeline,
            _stderr: stderr,
        },
        steps_started: 0,
        request,
        made,
        // Counted from before the request: the job's clock starts later.
        handed_on_until: time_limit(&config.time).map(|limit| limit / 10),
    })
}

impl Allocation {
    /// Gives the job back: the lifeline closes, the holder exits and
    /// `salloc` releases the job; should it not within [`RELEASE_WAIT`],
    /// it is killed and the job cancelled.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Slurm`] when the job had to be cancelled and
    /// `scancel` failed.
    ///
    /// # Cancel safety
    ///
    /// Dropped while it waits, the lifeline is closed already: `salloc`
    /// gives the job back on its own.
    pub(super) async fn release(self, tools: &Tools) -> Result<(), RuntimeError> {
        let Holder {
            mut salloc,
            lifeline,
            _stderr: stderr,
        } = self.holder;
        drop(lifeline);
        let released = tokio::time::timeout(RELEASE_WAIT, salloc.wait()).await;
        drop(stderr);
        if released.is_err() {
            salloc.start_kill();
            query(&tools.scancel, &[&self.job.job_id])
                .await
                .map_err(|reason| slurm_error("cancel the job", reason))?;
        }
        Ok(())
    }

    /// Whether it may still be handed on: its job runs and is young enough.
    fn reusable(&mut self) -> bool {
        let young = self
            .handed_on_until
            .is_some_and(|until| self.made.elapsed() < until);
        young && matches!(self.holder.salloc.try_wait(), Ok(None))
    }
}

/// Allocations of finished sessions, waiting for the next session of a
/// batch that asks for the same (see the module doc). Cloning it gives
/// another handle to the same pool. Its sessions must run on one tokio
/// runtime, as a batch's do: a parked `salloc` is waited for through the
/// runtime that started it.
#[derive(Debug, Clone, Default)]
pub struct AllocationPool {
    state: Arc<Mutex<PoolState>>,
}

#[derive(Debug, Default)]
struct PoolState {
    /// The oldest parked first.
    parked: Vec<Allocation>,
    closed: bool,
}

impl AllocationPool {
    /// An open pool holding nothing.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest parked allocation made by `request`, if one may still
    /// be handed on; and what is to be given back: the parked ones that
    /// may no longer be handed on, and, when none of `request` is there,
    /// the one parked longest of another request.
    pub(super) fn take(&self, request: &[String]) -> (Option<Allocation>, Vec<Allocation>) {
        let mut state = self.state();
        let mut stale = Vec::new();
        for mut allocation in std::mem::take(&mut state.parked) {
            if allocation.reusable() {
                state.parked.push(allocation);
            } else {
                stale.push(allocation);
            }
        }
        let found = state.parked.iter().rposition(|a| a.request == request);
        let taken = match found {
            Some(at) => Some(state.parked.remove(at)),
            None => {
                if !state.parked.is_empty() {
                    stale.push(state.parked.remove(0));
                }
                None
            }
        };
        (taken, stale)
    }

    /// Keeps `allocation` for the next session of its request, unless the
    /// pool is closed or it may not be handed on: then it is returned, to
    /// be given back.
    #[must_use = "an allocation not kept is to be given back"]
    pub(super) fn park(&self, mut allocation: Allocation) -> Option<Allocation> {
        let mut state = self.state();
        if state.closed || !allocation.reusable() {
            return Some(allocation);
        }
        state.parked.push(allocation);
        None
    }

    /// How many allocations it holds now.
    pub fn len(&self) -> usize {
        self.state().parked.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the pool and gives back every allocation it holds, at once;
    /// sessions cleaned up later give theirs back themselves.
    ///
    /// # Cancel safety
    ///
    /// Dropped half-way, the allocations not yet given back are dropped:
    /// their lifelines close and their holders end them.
    pub async fn close(&self) {
        let parked = {
            let mut state = self.state();
            state.closed = true;
            std::mem::take(&mut state.parked)
        };
        let Ok(tools) = super::slurm::tools() else {
            return;
        };
        let releases = parked.into_iter().map(|a| a.release(tools));
        futures_util::future::join_all(releases).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_time_formats_are_read() {
        let minutes = |m: u64| Some(Duration::from_secs(m * 60));
        assert_eq!(time_limit("60"), minutes(60));
        assert_eq!(time_limit("5:30"), Some(Duration::from_secs(330)));
        assert_eq!(time_limit("1:00:00"), minutes(60));
        assert_eq!(time_limit("2-0"), minutes(48 * 60));
        assert_eq!(time_limit("1-2:03"), minutes(26 * 60 + 3));
        assert_eq!(time_limit("1-0:0:5"), Some(Duration::from_secs(86_405)));
        for never in ["", "UNLIMITED", "infinite", "1:2:3:4", "-5", "1-", "1h"] {
            assert_eq!(time_limit(never), None, "{never:?}");
        }
    }

    #[test]
    fn salloc_asks_for_what_the_spec_says() {
        let config = SlurmConfig {
            partition: Some("debug".into()),
            mem: Some("512M".into()),
            cpus: Some(2),
            nodes: Some("n2".into()),
            extra_args: vec!["--exclusive".into()],
            ..SlurmConfig::default()
        };
        let args = request_args(&config);
        for expected in [
            "--partition=debug",
            "--mem=512M",
            "--cpus-per-task=2",
            "--nodelist=n2",
            "--time=60",
            "--exclusive",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        // The job's name and comment are the session's own: two sessions
        // of one environment ask for the same allocation.
        assert!(
            !args.iter().any(|a| a.starts_with("--job-name")),
            "{args:?}"
        );
        assert!(!args.iter().any(|a| a.starts_with("--comment")), "{args:?}");
        let more_memory = SlurmConfig {
            mem: Some("1G".into()),
            ..config
        };
        assert_ne!(args, request_args(&more_memory));
    }
}
