//! The tokio runtime of the process, and waiting on it from Python.
//!
//! One multi-threaded runtime serves every session of the process. A child
//! made by `fork` (`multiprocessing`'s default on Linux) inherits the
//! runtime's memory but none of its threads, so the first use in a new
//! process makes a new runtime; the dead one is leaked, as dropping it would
//! wait for threads that do not exist.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

/// How often a wait looks at Python's signal handlers (Ctrl-C).
const SIGNAL_TICK: Duration = Duration::from_millis(50);

static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// The runtime of this process, made on first use.
///
/// # Errors
///
/// The runtime's threads cannot be started.
pub(crate) fn handle() -> PyResult<Handle> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, runtime)) = *slot
        && owner == pid
    {
        return Ok(runtime.handle().clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // One worker: on two cores, more workers fight the command and the
        // run log's writer for the CPU (1.2 against 1.6 GB/s streamed, and
        // execute("true") 1.05 against 0.9 ms, measured here).
        .worker_threads(1)
        .enable_all()
        .thread_name("subrt-python")
        .build()
        .map_err(|e| crate::runtime_error(format!("cannot start subrt's threads: {e}")))?;
    let runtime: &'static Runtime = Box::leak(Box::new(runtime));
    *slot = Some((pid, runtime));
    Ok(runtime.handle().clone())
}

/// A task was interrupted by a Python exception (Ctrl-C) while it ran; the
/// task goes on, and is handed back for the caller to end.
pub(crate) struct Interrupted<T> {
    pub(crate) error: PyErr,
    pub(crate) task: JoinHandle<T>,
}

/// Runs `future` on the runtime and waits for it with the GIL released,
/// looking at Python's signal handlers every [`SIGNAL_TICK`].
///
/// # Errors
///
/// The exception a signal handler raised (`KeyboardInterrupt`), with the
/// task still running.
pub(crate) fn wait<F>(
    py: Python<'_>,
    handle: &Handle,
    future: F,
) -> Result<F::Output, Interrupted<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = handle.spawn(future);
    wait_task(py, handle, task)
}

/// Waits for `task` as [`wait`] does.
///
/// # Errors
///
/// As [`wait`].
pub(crate) fn wait_task<T: Send + 'static>(
    py: Python<'_>,
    handle: &Handle,
    mut task: JoinHandle<T>,
) -> Result<T, Interrupted<T>> {
    loop {
        let done = py.detach(|| {
            handle.block_on(async { tokio::time::timeout(SIGNAL_TICK, &mut task).await.ok() })
        });
        match done {
            Some(Ok(value)) => return Ok(value),
            // The task panicked; the runtime has logged it. Nothing of
            // ours panics on purpose, so treat it as a bug report.
            Some(Err(join)) => std::panic::resume_unwind(join.into_panic()),
            None => {
                if let Err(error) = py.check_signals() {
                    return Err(Interrupted { error, task });
                }
            }
        }
    }
}
