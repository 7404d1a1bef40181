//! The pipes of a host process (the local runtime's shells, the Slurm
//! runtime's sruns): its output read into events and captures, its stdin
//! written, and how long output is still read once it has ended.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::capture::Capture;
use super::{Phase, RuntimeEvent, StreamKind};

/// How long output is still read after the shell exits while the pipes stay
/// open but silent.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(100);
/// How long output is read at most after the shell exits, beyond what was
/// in the pipe then: a background process that keeps writing does not hold
/// the result back.
pub const DRAIN_AT_MOST: Duration = Duration::from_secs(1);
/// The same after a kill or timeout, when everything in the group is dead.
pub(crate) const DRAIN_AFTER_KILL: Duration = Duration::from_millis(20);
/// Bytes asked for per read from a pipe.
const READ_CHUNK: usize = 256 * 1024;
/// Pipe buffer asked for per stream.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// The readers of a process's output and the writer of its stdin.
pub(crate) struct ProcessIo {
    readers: JoinHandle<(Capture, Capture)>,
    writer: Option<JoinHandle<()>>,
    /// `None` while the process runs; then how long silent pipes are read.
    exited: watch::Sender<Option<Duration>>,
}

impl ProcessIo {
    /// Starts reading `stdout` and `stderr` into events on `tx` and into
    /// `captures`, and writing `stdin`'s bytes to its pipe.
    pub(crate) fn start(
        stdout: impl Output,
        stderr: impl Output,
        stdin: Option<(Bytes, impl AsyncWrite + Send + Unpin + 'static)>,
        phase: Phase,
        tx: &mpsc::Sender<RuntimeEvent>,
        captures: [Capture; 2],
    ) -> Self {
        let (exited, watch_exit) = watch::channel(None);
        let [out_capture, err_capture] = captures;
        let tx = tx.clone();
        let readers = tokio::spawn(async move {
            tokio::join!(
                pump(
                    stdout,
                    StreamKind::Stdout,
                    phase,
                    &tx,
                    out_capture,
                    watch_exit.clone()
                ),
                pump(
                    stderr,
                    StreamKind::Stderr,
                    phase,
                    &tx,
                    err_capture,
                    watch_exit
                ),
            )
        });
        let writer = stdin.map(|(data, mut pipe)| {
            tokio::spawn(async move {
                // A command that exits without reading all of it is fine.
                let _ = pipe.write_all(&data).await;
            })
        });
        Self {
            readers,
            writer,
            exited,
        }
    }

    /// Once the process has ended: reads what its pipes hold, then on until
    /// both close or stay silent for [`DRAIN_AFTER_EXIT`]
    /// ([`DRAIN_AFTER_KILL`] when `killed`), for [`DRAIN_AT_MOST`] at most,
    /// so that a background process holding a pipe open, or writing on,
    /// cannot hold the result back; returns the captures (stdout, stderr).
    pub(crate) async fn finish(self, killed: bool) -> [Capture; 2] {
        let drain = if killed {
            DRAIN_AFTER_KILL
        } else {
            DRAIN_AFTER_EXIT
        };
        let _ = self.exited.send(Some(drain));
        let (out, err) = self.readers.await.expect("output readers do not panic");
        if let Some(writer) = self.writer {
            writer.abort();
        }
        [out, err]
    }
}

/// The stdout and stderr pipes of `child` (both must be piped), enlarged.
///
/// # Errors
///
/// A pipe could not be taken from tokio's handle of the child or registered
/// again (which would take an `epoll` or `fstat` failure).
pub(crate) fn take_pipes(child: &mut Child) -> io::Result<(pipe::Receiver, pipe::Receiver)> {
    let stdout = child
        .stdout
        .take()
        .expect("stdout is piped")
        .into_owned_fd()?;
    let stderr = child
        .stderr
        .take()
        .expect("stderr is piped")
        .into_owned_fd()?;
    enlarge_pipe(&stdout);
    enlarge_pipe(&stderr);
    Ok((
        pipe::Receiver::from_owned_fd(stdout)?,
        pipe::Receiver::from_owned_fd(stderr)?,
    ))
}

/// What [`pump`] reads: a process's pipe, or a filter over one.
pub(crate) trait Output: Send + Unpin + 'static {
    /// Reads what there is into `buf`, waiting only when there is nothing.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: bytes leave the pipe only in a read that completes.
    fn read_into(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send;

    /// Bytes that can be read now without waiting.
    fn pending(&self) -> usize;
}

/// A pipe is read for as long as it has bytes, and only waited on (an
/// `epoll` round) once a read finds it empty. `AsyncRead` would wait after
/// every read that did not fill the buffer, and a reader that keeps up with
/// the command finds a part of a buffer each time: under a flood that was
/// a fifth of a stream's time (BENCHMARKS.md).
impl Output for pipe::Receiver {
    async fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            match self.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable().await?,
                read => return read,
            }
        }
    }

    fn pending(&self) -> usize {
        use std::os::fd::AsRawFd;
        let mut bytes: libc::c_int = 0;
        // SAFETY: FIONREAD into an int of ours, on a pipe we own.
        let asked = unsafe { libc::ioctl(self.as_raw_fd(), libc::FIONREAD, &raw mut bytes) };
        if asked == 0 { bytes.max(0) as usize } else { 0 }
    }
}

/// Asks for a 1 MiB pipe buffer (the unprivileged maximum by default): a
/// flood then arrives in fewer, larger chunks. Failure leaves the default.
pub(crate) fn enlarge_pipe(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ on a pipe fd we own; no pointers are passed.
    unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
}

/// Reads a pipe into events until it closes, the stream's reader goes away,
/// or, once the shell has exited, the pipe stays silent for the drain time.
pub(crate) async fn pump(
    mut pipe: impl Output,
    stream: StreamKind,
    phase: Phase,
    tx: &mpsc::Sender<RuntimeEvent>,
    mut capture: Capture,
    mut exited: watch::Receiver<Option<Duration>>,
) -> Capture {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // Once the process has ended: the bytes its pipe held then (its own
    // output, read whatever the time), and when the reading stops anyway.
    let mut owed: Option<usize> = None;
    let mut ends: Option<tokio::time::Instant> = None;
    loop {
        if buf.capacity() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let drain = *exited.borrow_and_update();
        let read = match drain {
            None => tokio::select! {
                read = pipe.read_into(&mut buf) => read,
                // Reading is cancel-safe: start over with the drain time.
                _ = exited.changed() => continue,
            },
            Some(quiet) => {
                let owed = *owed.get_or_insert_with(|| pipe.pending());
                let ends = *ends.get_or_insert_with(|| tokio::time::Instant::now() + DRAIN_AT_MOST);
                let left = ends.saturating_duration_since(tokio::time::Instant::now());
                if owed > 0 {
                    pipe.read_into(&mut buf).await
                } else if left.is_zero() {
                    break;
                } else {
                    match tokio::time::timeout(quiet.min(left), pipe.read_into(&mut buf)).await {
                        Ok(read) => read,
                        Err(_) => break,
                    }
                }
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(owed) = owed.as_mut() {
                    *owed = owed.saturating_sub(n);
                }
            }
        }
        // A big read is handed on as it is; a small one is copied, so that it
        // does not pin the whole read buffer while a subscriber (the run
        // log's queue) holds it, and the buffer is used again.
        let data = if buf.len() >= READ_CHUNK / 4 {
            buf.split().freeze()
        } else {
            let small = Bytes::copy_from_slice(&buf);
            buf.clear();
            small
        };
        if !super::driver::forward(tx, &mut capture, stream, phase, data).await {
            break;
        }
    }
    capture
}
