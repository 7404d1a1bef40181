//! The asyncio half of the package: commands that run beside each other,
//! and file operations, each awaited on the caller's event loop.
//!
//! Nothing here blocks or starts a thread: a call spawns a task on the
//! package's runtime (driven by its own thread while no Python thread
//! waits on it) and returns; when the task ends it hands the outcome to the
//! loop with `call_soon_threadsafe`, which completes the asyncio future the
//! caller awaits (`subrt._aio` makes and awaits it).

use std::sync::Arc;

use bytes::Bytes;
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyFileNotFoundError, PyIsADirectoryError, PyPermissionError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use subrt::runtime::{FileError, Phase, RuntimeEvent, StreamKind};
use subrt::supervisor::CommandEvents;

use crate::executor::Executor;
use crate::{FileTooLargeError, convert, runtime_error};

/// An asyncio future to complete, and its loop.
pub(crate) struct Waiter {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
}

impl Waiter {
    pub(crate) fn new(event_loop: Py<PyAny>, future: Py<PyAny>) -> Self {
        Self { event_loop, future }
    }

    /// Completes the future with what `make` gives (with the GIL), on its
    /// loop's thread. A future cancelled meanwhile, or a closed loop, is
    /// left alone.
    pub(crate) fn complete(
        self,
        make: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
    ) {
        Python::attach(|py| {
            let (ok, value) = match make(py) {
                Ok(value) => (true, value.unbind()),
                Err(error) => (false, error.into_value(py).into_any()),
            };
            let resolved = py
                .import("subrt._aio")
                .and_then(|module| module.getattr("_resolve"))
                .and_then(|resolve| {
                    self.event_loop.call_method1(
                        py,
                        "call_soon_threadsafe",
                        (resolve, self.future, ok, value),
                    )
                });
            // A loop closed before the command ended has no one to tell.
            drop(resolved);
        });
    }
}

/// A file operation's error as the exception Python code expects:
/// `FileNotFoundError`, `IsADirectoryError`, `PermissionError` (each
/// naming the path), `FileTooLargeError(message, size, limit)`, else
/// `SolutionRuntimeError`.
pub(crate) fn file_error(error: FileError) -> PyErr {
    let message = error.to_string();
    match error {
        FileError::NotFound { .. } => PyFileNotFoundError::new_err(message),
        FileError::IsADirectory { .. } => PyIsADirectoryError::new_err(message),
        FileError::PermissionDenied { .. } => PyPermissionError::new_err(message),
        FileError::TooLarge { size, limit, .. } => {
            FileTooLargeError::new_err((message, size, limit))
        }
        FileError::Other { .. } | FileError::Runtime(_) => runtime_error(message),
    }
}

/// A command started beside the session's others (`Session.start_async`).
/// Dropping it kills the command.
#[pyclass(frozen, module = "subrt._native")]
pub(crate) struct Command {
    events: Arc<tokio::sync::Mutex<Option<CommandEvents>>>,
    kill: Arc<dyn Fn() + Send + Sync>,
    executor: &'static Executor,
    number: u32,
}

impl Command {
    pub(crate) fn new(events: CommandEvents, executor: &'static Executor) -> Self {
        Self {
            kill: events.killer(),
            number: events.number(),
            events: Arc::new(tokio::sync::Mutex::new(Some(events))),
            executor,
        }
    }
}

/// An event as `(kind, phase, payload)`, as `Events` gives them; `None`
/// for events Python does not see.
fn event_item<'py>(py: Python<'py>, event: &RuntimeEvent) -> PyResult<Option<Bound<'py, PyAny>>> {
    let item = match event {
        RuntimeEvent::Output(chunk) => {
            let kind = match chunk.stream {
                StreamKind::Stdout => "stdout",
                StreamKind::Stderr => "stderr",
            };
            let phase = match chunk.phase {
                Phase::Setup => "setup",
                Phase::Command => "command",
            };
            (kind, Some(phase), PyBytes::new(py, &chunk.data).into_any()).into_bound_py_any(py)?
        }
        RuntimeEvent::Note(text) => ("note", None::<&str>, text).into_bound_py_any(py)?,
        RuntimeEvent::Finished(result) => {
            ("finished", None::<&str>, convert::result(py, result)?).into_bound_py_any(py)?
        }
        RuntimeEvent::SetupStarted { .. } | RuntimeEvent::ProcessStarted { .. } => {
            return Ok(None);
        }
    };
    Ok(Some(item))
}

#[pymethods]
impl Command {
    /// The command's number in the session's run log.
    #[getter]
    fn number(&self) -> u32 {
        self.number
    }

    /// Kills the command (its own processes); its end still comes.
    fn kill(&self) {
        (self.kill)();
    }

    /// Completes `future` (of `event_loop`) with the next event as
    /// `(kind, phase, payload)`, or `None` after the last.
    fn next_async(&self, event_loop: Py<PyAny>, future: Py<PyAny>) {
        let waiter = Waiter::new(event_loop, future);
        self.executor
            .spawn(next_of(Arc::clone(&self.events), waiter));
    }

    /// Completes `future` with the command's result (a dict, see
    /// `convert::result`), its events skipped.
    fn wait_async(&self, event_loop: Py<PyAny>, future: Py<PyAny>) {
        let waiter = Waiter::new(event_loop, future);
        let events = Arc::clone(&self.events);
        self.executor.spawn(async move {
            let taken = events.lock().await.take();
            let finished = match taken {
                Some(events) => events.finish().await,
                None => Err(subrt::runtime::RuntimeError::StreamEnded),
            };
            waiter.complete(move |py| match finished {
                Ok(result) => Ok(convert::result(py, &result)?.into_any()),
                Err(error) => Err(runtime_error(error)),
            });
        });
    }
}

/// The next event Python sees, for `Command.next_async`.
async fn next_of(events: Arc<tokio::sync::Mutex<Option<CommandEvents>>>, waiter: Waiter) {
    let mut slot = events.lock().await;
    loop {
        let next = match slot.as_mut() {
            Some(events) => events.next_event().await,
            None => None,
        };
        let Some(event) = next else {
            *slot = None;
            return waiter.complete(|py| Ok(py.None().into_bound(py)));
        };
        if matches!(event, RuntimeEvent::Finished(_)) {
            *slot = None;
        }
        let shown = Python::attach(|py| event_item(py, &event).map(|item| item.map(Bound::unbind)));
        match shown {
            Ok(None) => continue,
            Ok(Some(item)) => return waiter.complete(move |py| Ok(item.into_bound(py))),
            Err(error) => return waiter.complete(move |_| Err(error)),
        }
    }
}

impl Drop for Command {
    /// A command no one holds goes (dropping its events kills it).
    fn drop(&mut self) {
        let events = Arc::clone(&self.events);
        self.executor.spawn(async move {
            drop(events.lock().await.take());
        });
    }
}

/// Bytes of a Python `bytes` object, for a write.
pub(crate) fn bytes_of(data: &Bound<'_, PyBytes>) -> Bytes {
    Bytes::copy_from_slice(data.as_bytes())
}
