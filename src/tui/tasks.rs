//! The dashboard's slow work. Every effect that waits on a runtime, the
//! Docker daemon or a cluster (launching a run, kill, cleanup, listing and
//! removing leaked containers, killing another process's run) runs here in
//! a task of its own and reports back as a [`Done`]; the event loop never
//! awaits it, so keys and redraws go on meanwhile (as oxker's docker task
//! and bottom's collector do).

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use super::app::EnvironmentRow;
use super::replay::Replay;
use super::sanitize::PlainText;
use super::session::{self, Output, Process, Session, short_id};
use super::store_watch::StoreNews;
use crate::batch::MAX_STDIN_BYTES;
use crate::runlog::{self, Body, ExportFormat, RunSummary, StoreLimits, StreamTag};
use crate::runtime::StreamKind;
use crate::runtime::leftovers::{self, ManagedContainer};
use crate::runtime::{ExecRequest, LaunchSpec, docker, process_group, registry, slurm};
use crate::spec::EnvironmentSpec;
use crate::supervisor::{SessionEvent, Supervisor};

/// Events of this process's sessions, by run id.
pub type Events = mpsc::Sender<(String, SessionEvent)>;

/// What a task reports when it is done.
#[derive(Debug)]
pub enum Done {
    /// A run was started, or could not be.
    Launched {
        /// Its run id.
        run_id: String,
        /// Its command line, for the message.
        command: String,
        /// Its environment, for the message.
        environment: String,
        /// The session, or why it did not start.
        result: Result<Started, String>,
        /// The user asked for it (select it), rather than `[ui] startup`.
        asked: bool,
    },
    /// A line for the status bar.
    Said(String),
    /// The leaked containers, listed.
    Leftovers(Result<Vec<ManagedContainer>, String>),
    /// subrt's Slurm jobs whose owner is gone.
    LeftoverJobs(Vec<slurm::ManagedJob>),
    /// The environments, checked (can each run here now?).
    Environments(Vec<EnvironmentRow>),
    /// A stored run's output, read from its log.
    Output {
        /// The run.
        run_id: String,
        /// What its panes show.
        output: Box<Output>,
    },
    /// A replay, read from its log.
    Replay {
        /// The run.
        run_id: String,
        /// The replay, or why it cannot be.
        replay: Result<Replay, String>,
    },
    /// A stream's text, ready for the pager (the file goes when this is
    /// dropped).
    Pager(tempfile::NamedTempFile),
    /// The runs of the store, listed at start.
    Listed(Result<(Vec<RunSummary>, Vec<String>), String>),
    /// What the store gained since the last look.
    Store(Box<StoreNews>),
}

/// A run the dashboard started.
#[derive(Debug)]
pub struct Started {
    /// Its session (boxed: a session is large).
    pub session: Box<Session>,
    /// Its events, from the first on: [`Tasks::forward`] them once the
    /// session is listed, so that none arrives for a run not yet known.
    pub events: mpsc::Receiver<SessionEvent>,
}

/// Where runs started from the dashboard are recorded.
#[derive(Debug, Clone)]
pub struct StoreAt {
    /// The store's folder.
    pub dir: PathBuf,
    /// Its limits.
    pub limits: StoreLimits,
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Its run id, chosen before it starts so that the dashboard knows its
    /// own run when the store shows it first.
    pub run_id: String,
    /// Its environment.
    pub spec: EnvironmentSpec,
    /// Where its command runs.
    pub working_dir: PathBuf,
    /// Its command line.
    pub command: String,
    /// Its timeout.
    pub timeout: Option<Duration>,
    /// A file to read its stdin from (when it starts).
    pub stdin: Option<PathBuf>,
}

impl Launch {
    /// A run of `command` on `spec` in `working_dir`, with a fresh id.
    pub fn new(
        spec: EnvironmentSpec,
        working_dir: PathBuf,
        command: String,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            run_id: ulid::Ulid::generate().to_string(),
            spec,
            working_dir,
            command,
            timeout,
            stdin: None,
        }
    }
}

/// What is needed to kill a run another process writes, copied from its
/// session so that the task does not hold the dashboard's state.
#[derive(Debug, Clone)]
pub struct OtherRun {
    /// Its run id.
    pub run_id: String,
    /// Its runtime type, from its log.
    pub kind: Option<String>,
    /// The last process its log recorded.
    pub last_process: Option<Process>,
    /// Its Slurm job, from its log.
    pub slurm_job: Option<String>,
}

impl OtherRun {
    /// The parts of `session` a kill needs.
    pub fn of(session: &Session) -> Self {
        Self {
            run_id: session.run_id.clone(),
            kind: session.kind.clone(),
            last_process: session.last_process,
            slurm_job: session.slurm_job.clone(),
        }
    }
}

/// Spawns the dashboard's tasks; each reports one [`Done`].
#[derive(Debug, Clone)]
pub struct Tasks {
    done: mpsc::UnboundedSender<Done>,
    events: Events,
    store: StoreAt,
}

impl Tasks {
    /// Tasks that report to `done`, whose sessions send to `events` and are
    /// recorded in `store`.
    pub fn new(done: mpsc::UnboundedSender<Done>, events: Events, store: StoreAt) -> Self {
        Self {
            done,
            events,
            store,
        }
    }

    fn report(&self, work: impl Future<Output = Done> + Send + 'static) {
        let done = self.done.clone();
        tokio::spawn(async move {
            let _ = done.send(work.await);
        });
    }

    /// Reading files: on tokio's blocking threads.
    fn report_blocking(&self, work: impl FnOnce() -> Done + Send + 'static) {
        let done = self.done.clone();
        tokio::task::spawn_blocking(move || {
            let _ = done.send(work());
        });
    }

    /// Reads the end of run `run_id`'s output from its log at `path`.
    pub fn load_output(&self, run_id: String, path: PathBuf) {
        self.report_blocking(move || Done::Output {
            output: Box::new(session::read_output(&path)),
            run_id,
        });
    }

    /// Reads run `run_id`'s log at `path` for a replay.
    pub fn load_replay(&self, run_id: String, path: PathBuf) {
        self.report_blocking(move || Done::Replay {
            replay: Replay::load(run_id.clone(), &path),
            run_id,
        });
    }

    /// Writes `stream` of the log at `path` as plain text to a temporary
    /// file for the pager.
    pub fn pager_file(&self, run_id: String, path: PathBuf, stream: StreamKind) {
        self.report_blocking(move || match plain_text(&path, stream) {
            Ok(file) => Done::Pager(file),
            Err(e) => Done::Said(format!("{}: cannot show it: {e}", short_id(&run_id))),
        });
    }

    /// Saves both streams of the log at `path`, exactly as printed, as
    /// `<run id>.stdout` and `<run id>.stderr` in the working directory.
    pub fn save_output(&self, run_id: String, path: PathBuf) {
        self.report_blocking(move || Done::Said(save_output(&run_id, &path)));
    }

    /// Starts the runs one after another, in order (so that `[ui] startup`
    /// commands keep theirs).
    pub fn launch(&self, runs: Vec<Launch>, asked: bool) {
        let (done, store) = (self.done.clone(), self.store.clone());
        tokio::spawn(async move {
            for run in runs {
                let result = launch(&run, &store).await;
                let report = Done::Launched {
                    run_id: run.run_id,
                    command: run.command,
                    environment: run.spec.name,
                    result,
                    asked,
                };
                if done.send(report).is_err() {
                    break;
                }
            }
        });
    }

    /// Sends the events of run `run_id` to the event loop.
    pub fn forward(&self, run_id: String, mut events: mpsc::Receiver<SessionEvent>) {
        let to = self.events.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if to.send((run_id.clone(), event)).await.is_err() {
                    break;
                }
            }
        });
    }

    /// Kills a run of this process.
    pub fn kill(&self, run_id: &str, supervisor: Supervisor) {
        let id = short_id(run_id).to_owned();
        self.report(async move {
            Done::Said(match supervisor.kill().await {
                Ok(()) => format!("{id}: killed"),
                Err(e) => format!("{id}: kill failed: {e}"),
            })
        });
    }

    /// Cleans up a run of this process.
    pub fn cleanup(&self, run_id: &str, supervisor: Supervisor) {
        let id = short_id(run_id).to_owned();
        self.report(async move {
            Done::Said(match supervisor.cleanup().await {
                Ok(()) => format!("{id}: cleaned up"),
                Err(e) => format!("{id}: cleanup failed: {e}"),
            })
        });
    }

    /// Kills a run another process writes.
    pub fn kill_other(&self, run: OtherRun) {
        self.report(async move { Done::Said(kill_other(&run).await) });
    }

    /// Checks every environment (its daemon, its cluster) at once.
    pub fn check_environments(&self, specs: Vec<EnvironmentSpec>) {
        self.report(async move {
            let checks = specs.iter().map(|spec| async move {
                EnvironmentRow {
                    name: spec.name.clone(),
                    kind: spec.kind.clone(),
                    problem: registry::builtins()
                        .check(spec)
                        .await
                        .err()
                        .map(|e| e.to_string()),
                    checking: false,
                }
            });
            Done::Environments(futures_util::future::join_all(checks).await)
        });
    }

    /// Lists the subrt containers of the default daemon, and subrt's jobs
    /// whose owner is gone when `slurm` (an environment runs on a cluster).
    pub fn load_leftovers(&self, slurm: bool) {
        self.report(async { Done::Leftovers(list_leftovers().await) });
        if slurm {
            self.report(async {
                match slurm::leftover_jobs(false).await {
                    Ok(jobs) => Done::LeftoverJobs(jobs),
                    Err(e) => Done::Said(e.to_string()),
                }
            });
        }
    }

    /// Cancels a leftover Slurm job, then lists them again.
    pub fn cancel_job(&self, job_id: String) {
        let done = self.done.clone();
        tokio::spawn(async move {
            let said = match slurm::cancel_job(&job_id).await {
                Ok(()) => format!("cancelled Slurm job {job_id}"),
                Err(e) => e.to_string(),
            };
            let _ = done.send(Done::Said(said));
            if let Ok(jobs) = slurm::leftover_jobs(false).await {
                let _ = done.send(Done::LeftoverJobs(jobs));
            }
        });
    }

    /// Kills (`remove` false) or removes a leaked container, then lists
    /// them again.
    pub fn container_action(&self, container: ManagedContainer, remove: bool) {
        let done = self.done.clone();
        tokio::spawn(async move {
            let outcome = match docker::connect(None).await {
                Ok(docker) if remove => leftovers::remove(&docker, &container.id).await,
                Ok(docker) => leftovers::kill(&docker, &container.id).await,
                Err(e) => Err(e),
            };
            let said = match outcome {
                Ok(()) if remove => format!("removed {}", container.name),
                Ok(()) => format!("killed {}", container.name),
                Err(e) => e.to_string(),
            };
            let _ = done.send(Done::Said(said));
            let _ = done.send(Done::Leftovers(list_leftovers().await));
        });
    }
}

async fn list_leftovers() -> Result<Vec<ManagedContainer>, String> {
    match docker::connect(None).await {
        Ok(docker) => leftovers::managed_containers(&docker)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Starts `run`, recorded in `store`.
async fn launch(run: &Launch, store: &StoreAt) -> Result<Started, String> {
    // As `subrt run --stdin` reads it: a link in the submission's folder
    // that leads out of it is refused, never followed to a host file.
    let stdin = match &run.stdin {
        Some(path) => {
            let (dir, path) = (run.working_dir.clone(), path.clone());
            let read = tokio::task::spawn_blocking(move || {
                crate::runtime::beneath::read_in_submission(&dir, &path, MAX_STDIN_BYTES)
            })
            .await
            .map_err(|e| e.to_string())?;
            Some(read.map_err(|e| format!("stdin file {e}"))?)
        }
        None => None,
    };
    let mut launch = LaunchSpec::new(run.spec.clone(), run.working_dir.clone());
    launch.run_id = run.run_id.clone();
    let run_id = launch.run_id.clone();
    let runtime = registry::builtins()
        .spawn(launch.clone())
        .await
        .map_err(|e| e.to_string())?;
    let (supervisor, log_path) =
        Supervisor::start_in_store(runtime, &store.dir, store.limits, &launch)
            .await
            .map_err(|e| e.to_string())?;
    let events = supervisor.subscribe();
    let mut request = ExecRequest::new(run.command.clone()).capture_limit(0);
    request.timeout = run.timeout;
    request.stdin = stdin.map(bytes::Bytes::from);
    drop(supervisor.submit(request).await);
    let mut session = Session::own(
        run_id,
        run.spec.name.clone(),
        run.command.clone(),
        supervisor,
    );
    session.log = Some(log_path);
    session.working_dir = Some(run.working_dir.clone());
    session.timeout = run.timeout;
    session.stdin_file = run.stdin.clone();
    Ok(Started {
        session: Box::new(session),
        events,
    })
}

/// Kills a run another process writes: its Slurm job, its containers
/// (Docker), or its PID namespace or process group once the recorded pid is
/// checked to still be the recorded process (same start time), so a
/// recycled pid is never signalled.
async fn kill_other(run: &OtherRun) -> String {
    let id = &run.run_id;
    if let Some(job) = &run.slurm_job {
        return match slurm::cancel_job(job).await {
            Ok(()) => format!("{id}: cancelled its Slurm job {job}"),
            Err(e) => e.to_string(),
        };
    }
    if run.kind.as_deref() == Some("docker") {
        let docker = match docker::connect(None).await {
            Ok(docker) => docker,
            Err(e) => return e.to_string(),
        };
        let containers = match leftovers::managed_containers(&docker).await {
            Ok(all) => all
                .into_iter()
                .filter(|c| &c.run_id == id)
                .collect::<Vec<_>>(),
            Err(e) => return e.to_string(),
        };
        for container in &containers {
            if let Err(e) = leftovers::kill(&docker, &container.id).await {
                return e.to_string();
            }
        }
        return format!("{id}: killed {} container(s)", containers.len());
    }
    // A zombie still names its group and namespace (its pid is not reused
    // before it is reaped): the start time is what counts here.
    let alive = |pid: u32, start: u64| process_group::process_start_time(pid) == Some(start);
    match run.last_process {
        // The session's namespace: its init's death takes every process.
        Some(Process {
            init: Some((init, start)),
            ..
        }) if alive(init, start) => match process_group::signal_process(init, libc::SIGKILL) {
            Ok(()) => format!("{id}: killed its session (PID namespace init {init})"),
            Err(e) => format!("{id}: cannot kill PID namespace init {init}: {e}"),
        },
        Some(Process {
            pid,
            pgid,
            start: Some(start),
            init: None,
        }) if alive(pid, start) => match process_group::kill_group(pgid) {
            Ok(()) => format!("{id}: killed process group {pgid}"),
            Err(e) => format!("{id}: cannot kill process group {pgid}: {e}"),
        },
        Some(Process { pid, .. }) => {
            format!("{id}: process {pid} is gone or is not the one recorded; nothing killed")
        }
        None => format!("{id}: its log names no process yet; nothing killed"),
    }
}

/// Watches the store's folder: each change (a run made, renamed into place,
/// removed) sends a signal, coalesced. `None` when the platform refuses a
/// watch (inotify limits): the dashboard then rescans every second.
pub fn watch_store(
    dir: &std::path::Path,
) -> Option<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    use notify::Watcher;
    let (tx, rx) = mpsc::channel(1);
    let handler = move |event: notify::Result<notify::Event>| {
        use notify::EventKind;
        use notify::event::ModifyKind;
        // Entries made, removed or renamed (a run is made under a hidden
        // name, then renamed into place); not writes to files in it, such
        // as the dashboard's own diagnostics log.
        let listing_changed = event.is_ok_and(|e| {
            matches!(
                e.kind,
                EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(ModifyKind::Name(_))
            )
        });
        if listing_changed {
            // A full channel already says "changed".
            let _ = tx.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the store; rescanning it every second");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the store; rescanning it every second");
        return None;
    }
    Some((watcher, rx))
}

/// One stream of the log at `path`, made plain text (see [`PlainText`]), in
/// a temporary file.
fn plain_text(
    path: &std::path::Path,
    stream: StreamKind,
) -> std::io::Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let mut reader = runlog::open(path).map_err(std::io::Error::other)?;
    let suffix = match stream {
        StreamKind::Stdout => ".stdout.txt",
        StreamKind::Stderr => ".stderr.txt",
    };
    let file = tempfile::Builder::new()
        .prefix("subrt-")
        .suffix(suffix)
        .tempfile()?;
    let mut out = std::io::BufWriter::new(file);
    let mut plain = PlainText::default();
    let wanted = match stream {
        StreamKind::Stdout => StreamTag::Out,
        StreamKind::Stderr => StreamTag::Err,
    };
    while let Some(record) = reader.next() {
        if let Body::Out { s, .. } = &record.body
            && *s == wanted
        {
            out.write_all(plain.push(&reader.bytes(&record)).as_bytes())?;
        }
    }
    if let Some(warning) = reader.warnings.first() {
        writeln!(out, "\n[subrt: {warning}]")?;
    }
    out.into_inner()
        .map_err(std::io::IntoInnerError::into_error)
}

/// Writes both streams of the log at `path` next to the dashboard; says
/// where, or what failed.
fn save_output(run_id: &str, path: &std::path::Path) -> String {
    let mut saved = Vec::new();
    for (format, suffix) in [
        (ExportFormat::Stdout, "stdout"),
        (ExportFormat::Stderr, "stderr"),
    ] {
        let target = PathBuf::from(format!("{run_id}.{suffix}"));
        let written = runlog::open(path)
            .map_err(std::io::Error::other)
            .and_then(|mut reader| {
                let mut out = std::io::BufWriter::new(std::fs::File::create(&target)?);
                runlog::export(&mut reader, format, true, &mut out)?;
                std::io::Write::flush(&mut out)?;
                Ok(std::fs::metadata(&target)?.len())
            });
        match written {
            Ok(bytes) => saved.push(format!("{bytes} bytes of {suffix} to {}", target.display())),
            Err(e) => {
                return format!(
                    "{}: cannot save {suffix} to {}: {e}",
                    short_id(run_id),
                    target.display()
                );
            }
        }
    }
    let dir = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    format!("saved {} (in {dir})", saved.join(" and "))
}
