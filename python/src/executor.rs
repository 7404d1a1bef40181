//! The tokio runtime of the process, and waiting on it from Python.
//!
//! One single-threaded runtime serves every session of the process, and it
//! is driven by whichever thread waits on it: a Python thread blocked in
//! `execute` or in a stream's `next` (with the GIL released) runs the
//! runtime's tasks itself, so the bytes a stream reads from its pipes are
//! read on the thread that hands them to Python. Handing them from a worker
//! thread to the Python thread cost a stream more than half its speed (see
//! BENCHMARKS.md). When no Python thread waits, a driver thread of the
//! executor's own takes the runtime back after [`GRACE`], so that timeouts,
//! kills, exits and the run log go on while Python does something else.
//!
//! A child made by `fork` (`multiprocessing`'s default on Linux) inherits
//! the runtime's memory but none of its threads, so the first use in a new
//! process makes a new executor; the dead one is leaked, as dropping it
//! would wait for threads that do not exist.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often a wait looks at Python's signal handlers (Ctrl-C).
const SIGNAL_TICK: Duration = Duration::from_millis(50);

/// How long the runtime stays with the Python threads after the last of
/// them stopped waiting before the driver thread takes it back. A stream's
/// next `next()` comes sooner than this, and finds the runtime free to take.
const GRACE: Duration = Duration::from_millis(1);

static EXECUTOR: Mutex<Option<(u32, &'static Executor)>> = Mutex::new(None);

/// The process's runtime and who drives it.
pub(crate) struct Executor {
    runtime: Runtime,
    /// Threads in [`block_on`](Self::block_on) now.
    waiting: AtomicUsize,
    /// Tells the driver thread to give the runtime up.
    wanted: Notify,
    /// When the last wait ended, and whether the driver thread sleeps until
    /// one does; its condition variable wakes that thread.
    released: (Mutex<Released>, Condvar),
}

struct Released {
    last: Instant,
    driver_asleep: bool,
}

/// The executor of this process, made on first use.
///
/// # Errors
///
/// The runtime or its driver thread cannot be started.
pub(crate) fn get() -> PyResult<&'static Executor> {
    let pid = std::process::id();
    // Not to be held by another thread when the harness forks.
    let mut slot = subrt::runtime::fork_gate::lock(&EXECUTOR);
    if let Some((owner, executor)) = *slot
        && owner == pid
    {
        return Ok(executor);
    }
    let cannot =
        |e: std::io::Error| crate::runtime_error(format!("cannot start subrt's threads: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(cannot)?;
    let executor: &'static Executor = Box::leak(Box::new(Executor {
        runtime,
        waiting: AtomicUsize::new(0),
        wanted: Notify::new(),
        released: (
            Mutex::new(Released {
                last: Instant::now(),
                driver_asleep: false,
            }),
            Condvar::new(),
        ),
    }));
    std::thread::Builder::new()
        .name("subrt-python".into())
        .spawn(|| executor.drive())
        .map_err(cannot)?;
    *slot = Some((pid, executor));
    Ok(executor)
}

impl Executor {
    /// Runs `future` to its end on the calling thread, which drives the
    /// runtime meanwhile unless another waiting thread already does. Call
    /// it with the GIL released.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.wanted.notify_one();
        let output = self.runtime.block_on(future);
        let (released, wake) = &self.released;
        let mut released = released.lock().unwrap_or_else(|e| e.into_inner());
        released.last = Instant::now();
        if self.waiting.fetch_sub(1, Ordering::SeqCst) == 1 && released.driver_asleep {
            wake.notify_one();
        }
        output
    }

    /// Starts `future` as a task of the runtime. With no thread waiting,
    /// the driver thread takes the runtime back now rather than after
    /// [`GRACE`]: the task (an asyncio call's) is driven at once.
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = self.runtime.spawn(future);
        if self.waiting.load(Ordering::SeqCst) == 0 {
            let (released, wake) = &self.released;
            let mut released = released.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(long_ago) = Instant::now().checked_sub(GRACE) {
                released.last = long_ago;
            }
            wake.notify_one();
        }
        handle
    }

    /// The driver thread: holds the runtime while no thread waits on it,
    /// gives it up to the first that does, and takes it back once none has
    /// for [`GRACE`].
    fn drive(&self) -> ! {
        loop {
            self.runtime.block_on(async {
                loop {
                    let mut wanted = pin!(self.wanted.notified());
                    wanted.as_mut().enable();
                    if self.waiting.load(Ordering::SeqCst) > 0 {
                        return;
                    }
                    wanted.await;
                }
            });
            let (released, wake) = &self.released;
            let mut released = released.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if self.waiting.load(Ordering::SeqCst) > 0 {
                    released.driver_asleep = true;
                    released = wake.wait(released).unwrap_or_else(|e| e.into_inner());
                    released.driver_asleep = false;
                    continue;
                }
                let idle = released.last.elapsed();
                if idle >= GRACE {
                    break;
                }
                released = wake
                    .wait_timeout(released, GRACE - idle)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
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
/// # Errors
///
/// The exception a signal handler raised (`KeyboardInterrupt`), with the
/// rest of the future spawned on the runtime, running.
pub(crate) fn wait<F>(
    py: Python<'_>,
    executor: &Executor,
    future: F,
) -> Result<F::Output, Interrupted<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut future = Box::pin(future);
    loop {
        let done = py.detach(|| {
            executor.block_on(async {
                tokio::time::timeout(SIGNAL_TICK, future.as_mut())
                    .await
                    .ok()
            })
        });
        if let Some(value) = done {
            return Ok(value);
        }
        if let Err(error) = py.check_signals() {
            let task = executor.spawn(future);
            return Err(Interrupted { error, task });
        }
    }
}
