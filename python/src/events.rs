//! `Events`: the events of one streamed command, as a Python iterator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::{IntoPyObjectExt, ffi};
use subrt::runtime::{OutputChunk, Phase, RuntimeEvent, StreamKind};
use subrt::supervisor::{SessionEvent, Supervisor};
use tokio::sync::mpsc;

use crate::executor::Executor;
use crate::{convert, runtime_error};

/// How often a waiting `__next__` looks at Python's signal handlers.
const SIGNAL_TICK: Duration = Duration::from_millis(50);

/// The iterator `Session.stream` returns. Each item is a tuple
/// `(kind, phase, payload)`:
///
/// - `("stdout" | "stderr", "setup" | "command", bytes)`: output, exactly
///   as written;
/// - `("note", None, str)`: a warning of the runtime itself;
/// - `("finished", None, dict)`: the result (see `convert::result`), last.
///
/// # Caveats
///
/// Closing it (or dropping it) before `finished` kills the command, as
/// dropping a stream does in the Rust library.
#[pyclass(frozen, module = "subrt._native")]
pub(crate) struct Events {
    /// `None` once the command finished, or while a thread waits on it.
    feed: Mutex<Option<Feed>>,
    finished: AtomicBool,
    supervisor: Supervisor,
    executor: &'static Executor,
    owner_pid: u32,
    busy: Arc<AtomicBool>,
}

impl Events {
    pub(crate) fn new(
        receiver: mpsc::Receiver<SessionEvent>,
        supervisor: Supervisor,
        executor: &'static Executor,
        busy: Arc<AtomicBool>,
    ) -> Self {
        Self {
            feed: Mutex::new(Some(Feed {
                receiver,
                pending: None,
            })),
            finished: AtomicBool::new(false),
            supervisor,
            executor,
            owner_pid: std::process::id(),
            busy,
        }
    }

    fn take(&self) -> Option<Feed> {
        self.feed.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put_back(&self, feed: Feed) {
        *self.feed.lock().unwrap_or_else(|e| e.into_inner()) = Some(feed);
    }

    /// Marks the stream done and lets the session run its next command.
    fn finish(&self) {
        if !self.finished.swap(true, Ordering::SeqCst) {
            self.busy.store(false, Ordering::SeqCst);
        }
    }

    /// Kills the command and waits for its end, so that the session is free
    /// when this returns.
    fn abandon(&self, feed: Option<Feed>) {
        let supervisor = self.supervisor.clone();
        self.executor.block_on(async move {
            let _ = supervisor.kill().await;
            if let Some(Feed {
                mut receiver,
                pending,
            }) = feed
            {
                // Read ahead already: the end may be in hand, and then
                // nothing more comes.
                if pending.as_ref().is_some_and(is_last) {
                    return;
                }
                while let Some(event) = receiver.recv().await {
                    if is_last(&event) {
                        break;
                    }
                }
            }
        });
        self.finish();
    }
}

fn is_last(event: &SessionEvent) -> bool {
    matches!(
        event,
        SessionEvent::Runtime {
            event: RuntimeEvent::Finished(_),
            ..
        } | SessionEvent::Failed { .. }
    )
}

/// Output chunks already queued behind the first are joined into one item,
/// up to this many bytes: under a flood Python handles fewer, larger events.
const JOIN_LIMIT: usize = 4 << 20;

/// The receiving end of a stream, with the event read ahead while joining.
struct Feed {
    receiver: mpsc::Receiver<SessionEvent>,
    pending: Option<SessionEvent>,
}

impl Feed {
    /// The next event if one is there now, without waiting.
    fn ready(&mut self) -> Option<SessionEvent> {
        self.pending
            .take()
            .or_else(|| self.receiver.try_recv().ok())
    }
}

/// `chunk` and the chunks of the same stream and phase queued behind it, as
/// one `(kind, phase, bytes)` item.
fn output<'py>(
    py: Python<'py>,
    chunk: OutputChunk,
    feed: &mut Feed,
) -> PyResult<Bound<'py, PyTuple>> {
    let (stream, phase) = (chunk.stream, chunk.phase);
    let mut parts = vec![chunk.data];
    let mut len = parts[0].len();
    while len < JOIN_LIMIT {
        match feed.ready() {
            Some(SessionEvent::Runtime {
                event: RuntimeEvent::Output(next),
                ..
            }) if next.stream == stream && next.phase == phase => {
                len += next.data.len();
                parts.push(next.data);
            }
            Some(other) => {
                feed.pending = Some(other);
                break;
            }
            None => break,
        }
    }
    let data = joined(py, &parts, len)?;
    let kind = match stream {
        StreamKind::Stdout => "stdout",
        StreamKind::Stderr => "stderr",
    };
    let phase = match phase {
        Phase::Setup => "setup",
        Phase::Command => "command",
    };
    item(py, kind, Some(phase), data.into_any())
}

/// `parts` (`len` bytes in all) as one `bytes`, copied once: unlike
/// `PyBytes::new_with`, the buffer is not zeroed first, which under a flood
/// was a whole extra pass over the data.
fn joined<'py>(py: Python<'py>, parts: &[Bytes], len: usize) -> PyResult<Bound<'py, PyBytes>> {
    if let [part] = parts {
        return Ok(PyBytes::new(py, part));
    }
    let size = ffi::Py_ssize_t::try_from(len).map_err(|_| PyOverflowError::new_err(len))?;
    // SAFETY: a null source asks for an uninitialised bytes object of `size`
    // bytes; it is filled below, exactly (the parts sum to `len`), before any
    // Python code can see it.
    unsafe {
        let object = ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
        let bytes = Bound::from_owned_ptr_or_err(py, object)?.cast_into_unchecked::<PyBytes>();
        let mut at = ffi::PyBytes_AsString(object).cast::<u8>();
        for part in parts {
            std::ptr::copy_nonoverlapping(part.as_ptr(), at, part.len());
            at = at.add(part.len());
        }
        Ok(bytes)
    }
}

fn item<'py>(
    py: Python<'py>,
    kind: &str,
    phase: Option<&str>,
    payload: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            kind.into_bound_py_any(py)?,
            phase.into_bound_py_any(py)?,
            payload,
        ],
    )
}

#[pymethods]
impl Events {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        if self.finished.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let Some(mut feed) = self.take() else {
            return Err(runtime_error(
                "another thread is reading this stream's events",
            ));
        };
        loop {
            let event = match feed.ready() {
                Some(event) => event,
                None => {
                    let next = py.detach(|| {
                        self.executor.block_on(async {
                            tokio::time::timeout(SIGNAL_TICK, feed.receiver.recv()).await
                        })
                    });
                    match next {
                        Ok(Some(event)) => event,
                        Ok(None) => {
                            self.finish();
                            return Err(runtime_error(subrt::runtime::RuntimeError::StreamEnded));
                        }
                        Err(_elapsed) => {
                            if let Err(interrupt) = py.check_signals() {
                                // Ctrl-C: the command goes, then the exception.
                                py.detach(|| self.abandon(Some(feed)));
                                return Err(interrupt);
                            }
                            continue;
                        }
                    }
                }
            };
            let item = match event {
                SessionEvent::Runtime { event, .. } => match event {
                    RuntimeEvent::Output(chunk) => output(py, chunk, &mut feed)?,
                    RuntimeEvent::Note(text) => {
                        item(py, "note", None, text.into_bound_py_any(py)?)?
                    }
                    RuntimeEvent::Finished(result) => {
                        self.finish();
                        let result = convert::result(py, &result)?;
                        item(py, "finished", None, result.into_any())?
                    }
                    RuntimeEvent::SetupStarted { .. } | RuntimeEvent::ProcessStarted { .. } => {
                        continue;
                    }
                },
                SessionEvent::Failed { error, .. } => {
                    self.finish();
                    return Err(runtime_error(error));
                }
                SessionEvent::CommandStarted { .. } => continue,
            };
            if !self.finished.load(Ordering::SeqCst) {
                self.put_back(feed);
            }
            return Ok(Some(item));
        }
    }

    /// Kills the command if it still runs and waits until it has ended.
    fn close(&self, py: Python<'_>) {
        if self.finished.load(Ordering::SeqCst) || std::process::id() != self.owner_pid {
            return;
        }
        let receiver = self.take();
        py.detach(|| self.abandon(receiver));
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        if self.finished.load(Ordering::SeqCst) || std::process::id() != self.owner_pid {
            return;
        }
        let receiver = self.take();
        Python::attach(|py| py.detach(|| self.abandon(receiver)));
    }
}
