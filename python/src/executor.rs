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

/// Runs `future` to its end with the GIL released, looking at Python's
/// signal handlers every [`SIGNAL_TICK`].
///
/// The future is polled on the calling thread (the runtime's worker drives
/// its I/O and timers): a call then wakes one thread when it ends, where a
/// spawned task wakes the worker to start and the caller to finish, which
/// was a seventh of `execute("true")`. Nothing polled here may be tied to
/// the calling thread (a Python thread may end long before the session):
/// runtimes start their processes in tasks of their own, on the runtime's
/// threads, where `PR_SET_PDEATHSIG` is bound to a thread that lasts.
///
/// # Errors
///
/// The exception a signal handler raised (`KeyboardInterrupt`), with the
/// rest of the future spawned on the runtime, running.
pub(crate) fn wait<F>(
    py: Python<'_>,
    handle: &Handle,
    future: F,
) -> Result<F::Output, Interrupted<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut future = Box::pin(future);
    loop {
        let done = py.detach(|| {
            handle.block_on(async {
                tokio::time::timeout(SIGNAL_TICK, future.as_mut())
                    .await
                    .ok()
            })
        });
        if let Some(value) = done {
            return Ok(value);
        }
        if let Err(error) = py.check_signals() {
            let task = handle.spawn(future);
            return Err(Interrupted { error, task });
        }
    }
}
