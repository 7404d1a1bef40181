//! `Session`: one runtime under a supervisor, recorded in the store, as the
//! CLI's `subrt run` makes it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use subrt::config::Config;
use subrt::runtime::{ExecRequest, LaunchSpec, RuntimeError, StaticAsset, registry};
use subrt::spec::{Mount, MountMode};
use subrt::supervisor::Supervisor;

use crate::command::{self, Command, Waiter};
use crate::events::Events;
use crate::executor::{self, Executor, Interrupted};
use crate::{convert, runtime_error, specs};

/// How long a spawn that Ctrl-C interrupted may still take, so that what it
/// made (a container) is cleaned up rather than left to `subrt gc`.
const SPAWN_GRACE: Duration = Duration::from_millis(500);

/// Removes the Docker containers of the daemon at `host` (default: the
/// environment's `DOCKER_HOST`) whose subrt process is gone, as `subrt gc`
/// does; returns what was removed, in words.
#[pyfunction]
#[pyo3(signature = (host=None))]
pub(crate) fn remove_leftovers(py: Python<'_>, host: Option<String>) -> PyResult<Vec<String>> {
    let executor = executor::get()?;
    let removed = executor::wait(py, executor, async move {
        let docker = subrt::runtime::docker::connect(host.as_deref()).await?;
        let mut removed = Vec::new();
        for container in subrt::runtime::leftovers::leftovers(&docker, false).await? {
            subrt::runtime::docker::remove(&docker, &container.id).await?;
            removed.push(format!(
                "container {} (run {}, environment {})",
                container.name, container.run_id, container.environment
            ));
        }
        Ok::<_, RuntimeError>(removed)
    });
    match removed {
        Ok(removed) => removed.map_err(runtime_error),
        Err(Interrupted { error, .. }) => Err(error),
    }
}

/// The store the package records in when the caller names none:
/// `SUBRT_STORE`, else the user's store (as `subrt` without a config file).
#[pyfunction]
pub(crate) fn default_store() -> PathBuf {
    subrt::config::env_store_dir().unwrap_or_else(|| Config::builtin().store_dir)
}

/// A running session: a runtime, the supervisor that records it and runs
/// its commands one at a time.
#[pyclass(frozen, module = "subrt._native")]
pub(crate) struct Session {
    pub(crate) supervisor: Supervisor,
    pub(crate) executor: &'static Executor,
    /// The process that made the session: a forked child must not use (or
    /// clean up) its parent's sessions.
    owner_pid: u32,
    run_id: String,
    log_dir: Option<PathBuf>,
    /// A command runs (or a stream is open); the seed's runtimes run one
    /// command at a time and so does this one.
    pub(crate) busy: Arc<AtomicBool>,
    cleaned: AtomicBool,
}

impl Session {
    fn check_process(&self) -> PyResult<()> {
        if std::process::id() == self.owner_pid {
            Ok(())
        } else {
            Err(runtime_error(
                "this runtime was made by another process (before a fork); \
                 spawn a new one in this process",
            ))
        }
    }

    fn claim(&self) -> PyResult<()> {
        self.check_process()?;
        if self.cleaned.load(Ordering::SeqCst) {
            return Err(runtime_error(RuntimeError::CleanedUp));
        }
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(runtime_error(RuntimeError::Busy));
        }
        Ok(())
    }
}

/// What `Session.spawn` receives, already in the library's types (the
/// Python side turns the seed's many accepted shapes into these).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct AssetArg {
    name: String,
    path: PathBuf,
    save_path: PathBuf,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct MountArg {
    source: PathBuf,
    target: String,
    read_only: bool,
}

/// A shell line (`str`) or an argv (a list of `str`), as Python callers
/// give a command.
#[derive(FromPyObject)]
pub(crate) enum CommandArg {
    Line(String),
    Argv(Vec<String>),
}

impl From<CommandArg> for ExecRequest {
    fn from(command: CommandArg) -> Self {
        match command {
            CommandArg::Line(line) => ExecRequest::new(line),
            CommandArg::Argv(argv) => ExecRequest::argv(argv),
        }
    }
}

fn request(
    command: CommandArg,
    env: Option<BTreeMap<String, String>>,
    stdin: Option<Vec<u8>>,
    timeout: Option<f64>,
    capture_limit: usize,
) -> PyResult<ExecRequest> {
    if let CommandArg::Argv(argv) = &command
        && argv.is_empty()
    {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "command: an empty argv list runs nothing",
        ));
    }
    let mut request = ExecRequest::from(command).capture_limit(capture_limit);
    request.env = env.unwrap_or_default();
    request.stdin = stdin.map(Bytes::from);
    request.timeout = match timeout {
        None => None,
        Some(secs) if secs.is_finite() && secs >= 0.0 => Some(Duration::from_secs_f64(secs)),
        Some(secs) => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "timeout: {secs} is not a number of seconds >= 0"
            )));
        }
    };
    Ok(request)
}

/// A spawn's launch, checked, with where it is recorded and the store's
/// bounds: made once from Python's arguments, then started by
/// [`Session::spawn`] or [`Session::spawn_async`].
#[pyclass(module = "subrt._native", frozen)]
pub(crate) struct Spawning {
    launch: LaunchSpec,
    store: Option<PathBuf>,
    limits: subrt::runlog::StoreLimits,
}

#[pymethods]
impl Spawning {
    /// Checks the spec (JSON) and the launch's arguments.
    #[new]
    #[pyo3(signature = (spec, working_dir, static_assets, ports, mounts, env_vars, setup_command, is_evaluation, disable_setup, store, labels, max_run_bytes=None, max_store_bytes=None, resume=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        spec: &str,
        working_dir: PathBuf,
        static_assets: Vec<AssetArg>,
        ports: BTreeMap<u16, u16>,
        mounts: Vec<MountArg>,
        env_vars: BTreeMap<String, String>,
        setup_command: Option<String>,
        is_evaluation: bool,
        disable_setup: bool,
        store: Option<PathBuf>,
        labels: BTreeMap<String, String>,
        max_run_bytes: Option<u64>,
        max_store_bytes: Option<u64>,
        resume: bool,
    ) -> PyResult<Self> {
        let mut limits = subrt::runlog::StoreLimits::default();
        if let Some(bytes) = max_run_bytes {
            if bytes == 0 {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "max_run_bytes must be more than 0",
                ));
            }
            limits.max_run_bytes = bytes;
        }
        limits.max_bytes = max_store_bytes;
        let environment = specs::parse(spec)?;
        let working_dir = std::path::absolute(&working_dir).unwrap_or(working_dir);
        let mut launch = LaunchSpec::new(environment, working_dir);
        launch.static_assets = static_assets
            .into_iter()
            .map(|asset| {
                let entry = StaticAsset {
                    path: asset.path,
                    save_path: asset.save_path,
                };
                (asset.name, entry)
            })
            .collect();
        launch.ports = ports;
        launch.mounts = mounts
            .into_iter()
            .map(|m| Mount {
                source: m.source,
                target: m.target,
                mode: if m.read_only {
                    MountMode::Ro
                } else {
                    MountMode::Rw
                },
            })
            .collect();
        launch.env_vars = env_vars;
        launch.setup_command = setup_command;
        launch.is_evaluation = is_evaluation;
        launch.disable_setup = disable_setup;
        launch.resume = resume;
        launch.labels = labels;
        Ok(Self {
            launch,
            store,
            limits,
        })
    }

    /// The run's id.
    #[getter]
    fn run_id(&self) -> &str {
        &self.launch.run_id
    }
}

impl Spawning {
    /// The runtime started under a supervisor, recording when asked, and
    /// the run's folder.
    fn made(
        &self,
    ) -> impl Future<Output = Result<(Supervisor, Option<PathBuf>), RuntimeError>> + use<> {
        let launch = self.launch.clone();
        let store = self.store.clone();
        let limits = self.limits;
        Self::start(launch, store, limits)
    }

    async fn start(
        launch: LaunchSpec,
        store: Option<PathBuf>,
        limits: subrt::runlog::StoreLimits,
    ) -> Result<(Supervisor, Option<PathBuf>), RuntimeError> {
        let runtime = registry::builtins().spawn(launch.clone()).await?;
        let Some(store) = store else {
            return Ok((Supervisor::start(runtime), None));
        };
        match Supervisor::start_in_store(runtime, &store, limits, &launch).await {
            Ok((supervisor, dir)) => Ok((supervisor, Some(dir))),
            Err(e) => Err(RuntimeError::Io {
                context: format!(
                    "cannot record the run in {} (store=False runs without a log)",
                    store.display()
                ),
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }
}

impl Session {
    fn new(
        supervisor: Supervisor,
        executor: &'static Executor,
        run_id: String,
        log_dir: Option<PathBuf>,
    ) -> Self {
        Self {
            supervisor,
            executor,
            owner_pid: std::process::id(),
            run_id,
            log_dir,
            busy: Arc::new(AtomicBool::new(false)),
            cleaned: AtomicBool::new(false),
        }
    }
}

#[pymethods]
impl Session {
    /// Starts the runtime of `spawning` (the spec, the working dir, ...:
    /// see [`Spawning`]), recorded in its store unless it has none.
    #[staticmethod]
    fn spawn(py: Python<'_>, spawning: &Spawning) -> PyResult<Self> {
        let executor = executor::get()?;
        let run_id = spawning.launch.run_id.clone();
        let (supervisor, log_dir) = match executor::wait(py, executor, spawning.made()) {
            Ok(made) => made.map_err(runtime_error)?,
            Err(Interrupted { error, task }) => {
                executor.spawn(async move {
                    if let Ok(Ok(Ok((supervisor, _)))) =
                        tokio::time::timeout(SPAWN_GRACE, task).await
                    {
                        let _ = supervisor.cleanup().await;
                    }
                });
                return Err(error);
            }
        };
        Ok(Self::new(supervisor, executor, run_id, log_dir))
    }

    /// [`Session::spawn`] without blocking: completes `future` (of
    /// `event_loop`) with the `Session`, or the error that refused it. A
    /// session made after its future was cancelled is dropped, which cleans
    /// it up.
    #[staticmethod]
    fn spawn_async(event_loop: Py<PyAny>, future: Py<PyAny>, spawning: &Spawning) -> PyResult<()> {
        let executor = executor::get()?;
        let run_id = spawning.launch.run_id.clone();
        let waiter = Waiter::new(event_loop, future);
        let made = spawning.made();
        executor.spawn(async move {
            let made = made.await;
            waiter.complete(move |py| match made {
                Ok((supervisor, log_dir)) => {
                    Bound::new(py, Session::new(supervisor, executor, run_id, log_dir))
                        .map(Bound::into_any)
                }
                Err(error) => Err(runtime_error(error)),
            });
        });
        Ok(())
    }

    /// The run's id in the store (`subrt ls`, `subrt export RUN`).
    #[getter]
    fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The run's folder in the store, or `None` when it is not recorded.
    #[getter]
    fn log_dir(&self) -> Option<PathBuf> {
        self.log_dir.clone()
    }

    /// Runs `command` and returns its result as a dict (see `convert`).
    #[pyo3(signature = (command, env=None, stdin=None, timeout=None, capture_limit=subrt::runtime::DEFAULT_CAPTURE_LIMIT))]
    fn execute<'py>(
        &self,
        py: Python<'py>,
        command: CommandArg,
        env: Option<BTreeMap<String, String>>,
        stdin: Option<Vec<u8>>,
        timeout: Option<f64>,
        capture_limit: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let request = request(command, env, stdin, timeout, capture_limit)?;
        self.claim()?;
        let _release = Release(Arc::clone(&self.busy));
        let supervisor = self.supervisor.clone();
        let outcome = executor::wait(
            py,
            self.executor,
            async move { supervisor.run(request).await },
        );
        let result = match outcome {
            Ok(result) => result,
            Err(Interrupted { error, task }) => {
                // Ctrl-C: the command goes, then the exception.
                let supervisor = self.supervisor.clone();
                let _ = py.detach(|| {
                    self.executor.block_on(async move {
                        let _ = supervisor.kill().await;
                        task.await
                    })
                });
                return Err(error);
            }
        };
        convert::result(py, &result.map_err(runtime_error)?)
    }

    /// Starts `command` and returns the iterator of its events.
    #[pyo3(signature = (command, env=None, stdin=None, timeout=None, capture_limit=subrt::runtime::DEFAULT_CAPTURE_LIMIT))]
    fn stream(
        &self,
        py: Python<'_>,
        command: CommandArg,
        env: Option<BTreeMap<String, String>>,
        stdin: Option<Vec<u8>>,
        timeout: Option<f64>,
        capture_limit: usize,
    ) -> PyResult<Events> {
        let request = request(command, env, stdin, timeout, capture_limit)?;
        self.claim()?;
        let events = self.supervisor.subscribe();
        let supervisor = self.supervisor.clone();
        // Queue the command; its events go to the subscription made first.
        let queued = executor::wait(py, self.executor, async move {
            drop(supervisor.submit(request).await);
        });
        if let Err(Interrupted { error, .. }) = queued {
            self.busy.store(false, Ordering::SeqCst);
            return Err(error);
        }
        Ok(Events::new(
            events,
            self.supervisor.clone(),
            self.executor,
            Arc::clone(&self.busy),
        ))
    }

    /// Starts `command` beside the session's others and completes `future`
    /// (of `event_loop`) with its `Command`, or the error that refused it.
    /// A timeout, or the `Command` dropped or killed, ends this command's
    /// processes only.
    #[pyo3(signature = (event_loop, future, command, env=None, stdin=None, timeout=None, capture_limit=subrt::runtime::DEFAULT_CAPTURE_LIMIT, cwd=None, user=None))]
    #[allow(clippy::too_many_arguments)]
    fn start_async(
        &self,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
        command: CommandArg,
        env: Option<BTreeMap<String, String>>,
        stdin: Option<Vec<u8>>,
        timeout: Option<f64>,
        capture_limit: usize,
        cwd: Option<String>,
        user: Option<String>,
    ) -> PyResult<()> {
        let mut request = request(command, env, stdin, timeout, capture_limit)?;
        request.cwd = cwd;
        request.user = user;
        self.check_process()?;
        let waiter = Waiter::new(event_loop, future);
        let supervisor = self.supervisor.clone();
        let executor = self.executor;
        self.executor.spawn(async move {
            let started = supervisor.start_command(request).await;
            waiter.complete(move |py| match started {
                Ok(events) => Bound::new(py, Command::new(events, executor)).map(Bound::into_any),
                Err(error) => Err(runtime_error(error)),
            });
        });
        Ok(())
    }

    /// Reads the file at `path` (the session's view, as its user), at most
    /// `limit` bytes; completes `future` with its `bytes`, or
    /// `FileNotFoundError`, `IsADirectoryError`, `PermissionError`,
    /// `FileTooLargeError`.
    fn read_file_async(
        &self,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
        path: String,
        limit: u64,
    ) -> PyResult<()> {
        self.check_process()?;
        let waiter = Waiter::new(event_loop, future);
        let supervisor = self.supervisor.clone();
        self.executor.spawn(async move {
            let read = supervisor.read_file(&path, limit).await;
            waiter.complete(move |py| match read {
                Ok(data) => Ok(PyBytes::new(py, &data).into_any()),
                Err(error) => Err(command::file_error(error)),
            });
        });
        Ok(())
    }

    /// Replaces the contents of the file at `path` with `data`, making
    /// missing folders; completes `future` with `None`, or the error.
    fn write_file_async(
        &self,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
        path: String,
        data: &Bound<'_, PyBytes>,
    ) -> PyResult<()> {
        self.check_process()?;
        let waiter = Waiter::new(event_loop, future);
        let supervisor = self.supervisor.clone();
        let data = command::bytes_of(data);
        self.executor.spawn(async move {
            let written = supervisor.write_file(&path, data).await;
            waiter.complete(move |py| match written {
                Ok(()) => Ok(py.None().into_bound(py)),
                Err(error) => Err(command::file_error(error)),
            });
        });
        Ok(())
    }

    /// `read_file_async`, waited for.
    fn read_file<'py>(
        &self,
        py: Python<'py>,
        path: String,
        limit: u64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.check_process()?;
        let supervisor = self.supervisor.clone();
        match executor::wait(py, self.executor, async move {
            supervisor.read_file(&path, limit).await
        }) {
            Ok(Ok(data)) => Ok(PyBytes::new(py, &data)),
            Ok(Err(error)) => Err(command::file_error(error)),
            Err(Interrupted { error, .. }) => Err(error),
        }
    }

    /// `write_file_async`, waited for.
    fn write_file(&self, py: Python<'_>, path: String, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        self.check_process()?;
        let supervisor = self.supervisor.clone();
        let data = command::bytes_of(data);
        match executor::wait(py, self.executor, async move {
            supervisor.write_file(&path, data).await
        }) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(command::file_error(error)),
            Err(Interrupted { error, .. }) => Err(error),
        }
    }

    /// The exit code of the last command, or `None` while one runs (or
    /// none has run).
    fn poll(&self) -> PyResult<Option<i32>> {
        self.check_process()?;
        Ok(self.supervisor.poll())
    }

    /// Kills the running command and everything it started. Safe to call
    /// from any thread, while `execute` or a stream waits.
    fn kill(&self, py: Python<'_>) -> PyResult<()> {
        self.check_process()?;
        let supervisor = self.supervisor.clone();
        match executor::wait(py, self.executor, async move { supervisor.kill().await }) {
            Ok(killed) => killed.map_err(runtime_error),
            Err(Interrupted { error, .. }) => Err(error),
        }
    }

    /// Kills what runs, releases the runtime (removes its container) and
    /// completes the run log. Calling it again does nothing.
    fn cleanup(&self, py: Python<'_>) -> PyResult<()> {
        self.check_process()?;
        if self.cleaned.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let supervisor = self.supervisor.clone();
        match executor::wait(py, self.executor, async move { supervisor.cleanup().await }) {
            Ok(cleaned) => cleaned.map_err(runtime_error),
            // The cleanup goes on in the background.
            Err(Interrupted { error, .. }) => Err(error),
        }
    }

    /// [`Session::cleanup`] without blocking: completes `future` (of
    /// `event_loop`) with `None` once everything of the session has ended.
    fn cleanup_async(&self, event_loop: Py<PyAny>, future: Py<PyAny>) -> PyResult<()> {
        self.check_process()?;
        let waiter = Waiter::new(event_loop, future);
        if self.cleaned.swap(true, Ordering::SeqCst) {
            waiter.complete(|py| Ok(py.None().into_bound(py)));
            return Ok(());
        }
        let supervisor = self.supervisor.clone();
        self.executor.spawn(async move {
            let cleaned = supervisor.cleanup().await;
            waiter.complete(move |py| match cleaned {
                Ok(()) => Ok(py.None().into_bound(py)),
                Err(error) => Err(runtime_error(error)),
            });
        });
        Ok(())
    }

    /// Whether `cleanup` has been called.
    #[getter]
    fn cleaned(&self) -> bool {
        self.cleaned.load(Ordering::SeqCst)
    }

    /// Runs `command` `times` times from Rust, one after another on this
    /// session, and returns the seconds it took: the baseline of
    /// `python/benches/bench.py` (the same call without Python between).
    fn _time_execute(&self, py: Python<'_>, command: String, times: u32) -> PyResult<f64> {
        self.claim()?;
        let _release = Release(Arc::clone(&self.busy));
        let supervisor = self.supervisor.clone();
        let timed = executor::wait(py, self.executor, async move {
            let started = std::time::Instant::now();
            for _ in 0..times {
                supervisor.run(ExecRequest::new(command.clone())).await?;
            }
            Ok::<_, RuntimeError>(started.elapsed().as_secs_f64())
        });
        match timed {
            Ok(secs) => secs.map_err(runtime_error),
            Err(Interrupted { error, .. }) => Err(error),
        }
    }

    /// The runtime's identity and state: type, containment, pid or container.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        convert::info(py, &self.supervisor.info())
    }
}

/// A session dropped without `cleanup` (garbage-collected, or left at
/// exit when the atexit hook did not run) is cleaned up in the background;
/// should the process end first, containment still ends every process.
impl Drop for Session {
    fn drop(&mut self) {
        if std::process::id() != self.owner_pid || self.cleaned.swap(true, Ordering::SeqCst) {
            return;
        }
        let supervisor = self.supervisor.clone();
        self.executor.spawn(async move {
            let _ = supervisor.cleanup().await;
        });
    }
}

/// Clears the busy flag when a call ends, however it ends.
struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
