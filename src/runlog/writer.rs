//! Writes a session's run log as it happens, on a thread of its own.
//!
//! The session's task only stamps each event with its time and hands it to
//! the writer thread through a bounded queue; output chunks go as
//! reference-counted [`Bytes`], so nothing is copied on the way. The thread
//! writes the bytes to the stream files (bounded by [`Layout`]), then the
//! index record that points at them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::streams::Layout;
use super::{
    Body, EndStatus, FORMAT, Header, INDEX_FILE, Owner, PhaseTag, RunlogError, Store, StoreLimits,
    StreamTag, VERSION,
};
use crate::runtime::process_group::process_start_time;
use crate::runtime::{LaunchSpec, RuntimeEvent, RuntimeInfo};

/// Messages queued per writer.
const QUEUE: usize = 64;
/// Output bytes queued per writer at most: what a session pins behind a
/// slow disk (a dashboard runs many sessions at once).
const QUEUE_BYTES: usize = 2 << 20;
/// Output chunks of one stream that arrive within this of the first share
/// an index record.
const COALESCE: Duration = Duration::from_millis(5);
/// An index record covers at most this many bytes.
const COALESCE_BYTES: u64 = 1 << 20;
/// Written into a run's folder when recording failed, with the reason.
pub(super) const INCOMPLETE_FILE: &str = "incomplete";
/// Bytes kept allocated past the end of the index (`fallocate` without
/// changing its size), so that a disk that fills up still takes the
/// records that end the commands and the session: what tells a run that
/// completed from one whose owner died.
const INDEX_RESERVE: u64 = 64 << 10;

/// Records one session in `<store>/<run id>/`; see the [format](super).
///
/// A stream file that cannot be written (a full disk) stops the recording
/// of output only: the index, which keeps `INDEX_RESERVE` bytes
/// allocated ahead, still gets the end of each command and of the session,
/// whose `end` then says why the log is incomplete.
///
/// # Caveats
///
/// Dropping it without [`finish`](Self::finish) lets the thread write what
/// is queued and stop without the `end` record: the run then reads as
/// interrupted once its owner is gone.
#[derive(Debug)]
pub struct RunlogWriter {
    queue: mpsc::Sender<Message>,
    /// Permits for [`QUEUE_BYTES`]; a chunk holds its own until written.
    budget: Arc<Semaphore>,
    started: Instant,
    dir: PathBuf,
    failure: Arc<Mutex<Option<Failure>>>,
}

#[derive(Debug, Clone)]
struct Failure {
    path: PathBuf,
    kind: std::io::ErrorKind,
    message: String,
    /// The index itself cannot be written: nothing more is recorded.
    /// Otherwise only output is lost, and the index goes on.
    fatal: bool,
    /// Handed to the session once (by [`RunlogWriter::problem`] or
    /// [`RunlogWriter::finish`]).
    reported: bool,
}

impl Failure {
    fn error(&self) -> RunlogError {
        RunlogError::Io {
            path: self.path.clone(),
            source: std::io::Error::new(self.kind, self.message.clone()),
        }
    }
}

#[derive(Debug)]
enum Message {
    Record {
        t: u64,
        c: u32,
        body: Body,
    },
    Output {
        t: u64,
        c: u32,
        s: StreamTag,
        p: PhaseTag,
        data: Bytes,
        /// Released once the bytes are written.
        _budget: OwnedSemaphorePermit,
    },
    Finish {
        t: u64,
        done: oneshot::Sender<()>,
    },
}

impl RunlogWriter {
    /// Creates the folder of the run `launch` in `store_dir` (made if
    /// missing), writes the header and starts the writer thread. Streams
    /// keep at most `limits.max_run_bytes` each; with `limits.max_bytes`,
    /// the oldest finished runs go first when the store is over it.
    ///
    /// # Errors
    ///
    /// The folder or its files cannot be made or written; nothing is left
    /// behind then.
    pub fn create(
        store_dir: &Path,
        limits: StoreLimits,
        launch: &LaunchSpec,
        runtime: &RuntimeInfo,
    ) -> Result<Self, RunlogError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RunlogError::Io { path, source }
        };
        std::fs::create_dir_all(store_dir).map_err(io(store_dir))?;
        if let Some(max_bytes) = limits.max_bytes {
            match Store::new(store_dir).shrink_to(max_bytes) {
                Ok(removed) if !removed.is_empty() => tracing::info!(
                    removed = removed.len(),
                    "[store] max_bytes: removed the oldest finished runs"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "[store] max_bytes: cannot shrink the store"),
            }
        }
        let max_run_bytes = limits.max_run_bytes;
        // Made under a hidden name and renamed once its header is written:
        // whatever stops subrt meanwhile, the store never holds half a run.
        let dir = store_dir.join(&launch.run_id);
        let making = store_dir.join(format!(".{}.new", launch.run_id));
        std::fs::create_dir(&making).map_err(io(&making))?;
        let header = Header {
            format: FORMAT.to_owned(),
            version: VERSION,
            run_id: launch.run_id.clone(),
            started_at: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            subrt_version: env!("CARGO_PKG_VERSION").to_owned(),
            environment: launch.environment.clone(),
            working_dir: launch.working_dir.clone(),
            owner: Owner::this_process(),
            container_id: runtime.container_id.clone(),
            slurm_job: runtime.slurm_job.clone(),
            commands_start: runtime.commands_start.clone(),
            containment: Some(runtime.containment),
            max_run_bytes: Some(max_run_bytes),
            labels: launch.labels.clone(),
        };
        let opened = (|| {
            let new = |name: &str| {
                let path = making.join(name);
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io(&path))
            };
            let index_path = making.join(INDEX_FILE);
            let mut index = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(&index_path)
                .map_err(io(&index_path))?;
            let streams = [
                new(StreamTag::Out.file_name())?,
                new(StreamTag::Err.file_name())?,
            ];
            let mut line = serde_json::to_vec(&header).expect("headers serialise");
            line.push(b'\n');
            index.write_all(&line).map_err(io(&index_path))?;
            std::fs::rename(&making, &dir).map_err(io(&dir))?;
            Ok((index, streams, line.len() as u64))
        })();
        let (index, streams, header_len) = match opened {
            Ok(files) => files,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&making);
                return Err(e);
            }
        };
        let failure = Arc::new(Mutex::new(None));
        let (queue, messages) = mpsc::channel(QUEUE);
        let mut thread = Thread {
            dir: dir.clone(),
            index,
            streams,
            layout: Layout::new(max_run_bytes),
            written: [0, 0],
            seq: 0,
            commands: 0,
            last_exit: None,
            command_start: None,
            busy: 0,
            pending: None,
            line: Vec::with_capacity(512),
            failure: Arc::clone(&failure),
            index_len: header_len,
            reserved_to: 0,
            output_lost: None,
            files: super::FileCounts::default(),
        };
        // Before the session's first command, while the disk has room.
        thread.reserve();
        std::thread::Builder::new()
            .name(format!("subrt-log-{}", launch.run_id))
            .spawn(move || thread.run(messages))
            .map_err(io(&dir))?;
        Ok(Self {
            queue,
            budget: Arc::new(Semaphore::new(QUEUE_BYTES)),
            started: Instant::now(),
            dir,
            failure,
        })
    }

    /// The run's folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Waits until `len` more bytes may be queued.
    async fn reserve(&self, len: usize) -> Result<OwnedSemaphorePermit, RunlogError> {
        let permits = len.clamp(1, QUEUE_BYTES) as u32;
        Arc::clone(&self.budget)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| RunlogError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other("the run log's writer is closed"),
            })
    }

    /// Queues `message`, waiting while the queue is full.
    async fn send(&self, message: Message) -> Result<(), RunlogError> {
        if let Some(failure) = &*self.failure.lock().unwrap_or_else(|e| e.into_inner())
            && failure.fatal
        {
            return Err(failure.error());
        }
        self.queue.send(message).await.map_err(|_| RunlogError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other("the run log's writer thread stopped"),
        })
    }

    /// Why recording went wrong, the first time it is asked after it did
    /// (then `None` again): output is no longer recorded, though the
    /// writer still takes the session's records.
    pub fn problem(&self) -> Option<RunlogError> {
        let mut slot = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            Some(failure) if !failure.reported => {
                failure.reported = true;
                Some(failure.error())
            }
            _ => None,
        }
    }

    /// Records that command `number` starts.
    ///
    /// # Errors
    ///
    /// Recording failed earlier (disk full, say); the error says where.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: a cancelled call may or may not have queued it.
    pub async fn command_started(
        &self,
        number: u32,
        command: &str,
        timeout: Option<Duration>,
    ) -> Result<(), RunlogError> {
        let body = Body::Cmd {
            command: command.to_owned(),
            timeout: timeout.map(|d| d.as_secs_f64()),
        };
        let t = self.now();
        self.send(Message::Record { t, c: number, body }).await
    }

    /// Records a note of subrt's own (a command that could not start, say).
    ///
    /// # Errors
    ///
    /// As [`command_started`](Self::command_started).
    pub async fn note(&self, number: u32, text: &str) -> Result<(), RunlogError> {
        let body = Body::Note {
            text: text.to_owned(),
        };
        let t = self.now();
        self.send(Message::Record { t, c: number, body }).await
    }

    /// Records a file operation of the session (see [`Body::File`]).
    ///
    /// # Errors
    ///
    /// As [`command_started`](Self::command_started).
    pub async fn file(
        &self,
        op: super::FileOp,
        path: &str,
        bytes: u64,
        error: Option<String>,
    ) -> Result<(), RunlogError> {
        let body = Body::File {
            op,
            path: path.to_owned(),
            bytes,
            error,
        };
        let t = self.now();
        self.send(Message::Record { t, c: 0, body }).await
    }

    /// Records an event of command `number`.
    ///
    /// # Errors
    ///
    /// As [`command_started`](Self::command_started).
    pub async fn event(&self, number: u32, event: &RuntimeEvent) -> Result<(), RunlogError> {
        let t = self.now();
        let c = number;
        let message = match event {
            RuntimeEvent::Output(chunk) => Message::Output {
                t,
                c,
                s: chunk.stream.into(),
                p: chunk.phase.into(),
                data: chunk.data.clone(),
                _budget: self.reserve(chunk.data.len()).await?,
            },
            RuntimeEvent::SetupStarted { command } => Message::Record {
                t,
                c,
                body: Body::Setup {
                    command: command.clone(),
                },
            },
            RuntimeEvent::ProcessStarted { pid, pgid, init } => Message::Record {
                t,
                c,
                body: Body::Proc {
                    pid: *pid,
                    pgid: *pgid,
                    start: process_start_time(*pid),
                    init: *init,
                    init_start: init.and_then(process_start_time),
                },
            },
            RuntimeEvent::Note(text) => Message::Record {
                t,
                c,
                body: Body::Note { text: text.clone() },
            },
            RuntimeEvent::Finished(result) => Message::Record {
                t,
                c,
                body: Body::Exit {
                    code: result.exit_code,
                    signal: result.signal,
                    timed_out: result.timed_out,
                    killed: result.killed,
                    killed_by: result.killed_by,
                    oom_killed: result.oom_killed,
                    status_lost: result.status_lost.clone(),
                    usage: result.usage,
                    setup_failure: result.setup_failure.clone(),
                    out: None,
                    err: None,
                },
            },
        };
        self.send(message).await
    }

    /// Writes what is queued and the `end` record; the log is complete
    /// (and says so, or says why output is missing from it).
    ///
    /// # Errors
    ///
    /// Recording failed at some point and was not yet reported by
    /// [`problem`](Self::problem); the error says where.
    pub async fn finish(self) -> Result<(), RunlogError> {
        let (done, finished) = oneshot::channel();
        let t = self.now();
        let sent = self.send(Message::Finish { t, done }).await;
        if sent.is_ok() {
            let _ = finished.await;
        }
        match self.problem() {
            Some(error) => Err(error),
            None => sent,
        }
    }
}

/// An output record not yet written: later chunks may join it.
#[derive(Debug)]
struct Pending {
    t: u64,
    c: u32,
    s: StreamTag,
    p: PhaseTag,
    o: u64,
    n: u64,
}

/// The writer thread's state.
struct Thread {
    dir: PathBuf,
    index: File,
    streams: [File; 2],
    layout: Layout,
    /// Bytes written to each stream so far (kept or not).
    written: [u64; 2],
    seq: u64,
    commands: u32,
    last_exit: Option<(EndStatus, i32)>,
    /// When the running command started, and how long the ended ones ran.
    command_start: Option<u64>,
    busy: u64,
    pending: Option<Pending>,
    line: Vec<u8>,
    failure: Arc<Mutex<Option<Failure>>>,
    /// Bytes in the index, and up to where its blocks are allocated.
    index_len: u64,
    reserved_to: u64,
    /// Output is no longer recorded, for this reason.
    output_lost: Option<String>,
    files: super::FileCounts,
}

impl Thread {
    fn run(mut self, mut messages: mpsc::Receiver<Message>) {
        loop {
            let message = match messages.try_recv() {
                Ok(message) => message,
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Nothing more right now: what is pending goes out, so
                    // that a reader tailing the log sees it at once.
                    self.flush_pending();
                    match messages.blocking_recv() {
                        Some(message) => message,
                        None => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            if self.index_failed() {
                if let Message::Finish { done, .. } = message {
                    let _ = done.send(());
                }
                continue;
            }
            match message {
                Message::Output {
                    t, c, s, p, data, ..
                } => self.output(t, c, s, p, &data),
                Message::Record { t, c, body } => {
                    self.flush_pending();
                    self.record(t, c, body);
                }
                Message::Finish { t, done } => {
                    self.flush_pending();
                    let (status, exit) = match self.last_exit {
                        Some((status, code)) => (status, Some(code)),
                        None => (EndStatus::Empty, None),
                    };
                    let body = Body::End {
                        status,
                        exit,
                        out: self.written[0],
                        err: self.written[1],
                        commands: self.commands,
                        busy: Some(self.busy),
                        incomplete: self.output_lost.clone(),
                        files: self.files,
                    };
                    self.write(t, 0, &body);
                    let _ = done.send(());
                }
            }
        }
        self.flush_pending();
    }

    /// The index can no longer be written.
    fn index_failed(&self) -> bool {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|f| f.fatal)
    }

    /// Remembers a failure (the first, or the first fatal one), and says so
    /// in the run's folder, as far as the disk still takes a file.
    fn fail(&mut self, path: PathBuf, error: &std::io::Error, fatal: bool) {
        let reason = format!("{}: {error}", path.display());
        if !fatal {
            self.output_lost.get_or_insert_with(|| reason.clone());
        }
        let mut slot = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(|f| fatal && !f.fatal) {
            let _ = std::fs::write(self.dir.join(INCOMPLETE_FILE), format!("{reason}\n"));
            *slot = Some(Failure {
                path,
                kind: error.kind(),
                message: error.to_string(),
                fatal,
                reported: false,
            });
        }
    }

    fn output(&mut self, t: u64, c: u32, s: StreamTag, p: PhaseTag, data: &[u8]) {
        if self.output_lost.is_some() {
            return;
        }
        let index = s.index();
        let at = self.written[index];
        for piece in self.layout.write_plan(at, data.len() as u64) {
            let from = (piece.logical - at) as usize;
            let bytes = &data[from..from + piece.len as usize];
            if let Err(e) = self.streams[index].write_all_at(bytes, piece.file) {
                // What was written of this chunk stays unnamed by the index:
                // readers see the stream up to the last complete record.
                let path = self.dir.join(s.file_name());
                self.flush_pending();
                return self.fail(path, &e, false);
            }
        }
        self.written[index] += data.len() as u64;
        let n = data.len() as u64;
        match &mut self.pending {
            Some(pending)
                if pending.s == s
                    && pending.p == p
                    && pending.c == c
                    && pending.o + pending.n == at
                    && t.saturating_sub(pending.t) <= COALESCE.as_micros() as u64
                    && pending.n + n <= COALESCE_BYTES =>
            {
                pending.n += n;
            }
            _ => {
                self.flush_pending();
                self.pending = Some(Pending {
                    t,
                    c,
                    s,
                    p,
                    o: at,
                    n,
                });
            }
        }
    }

    fn flush_pending(&mut self) {
        if let Some(Pending { t, c, s, p, o, n }) = self.pending.take() {
            let body = Body::Out {
                s,
                p,
                o: Some(o),
                n: Some(n),
                d: None,
                b: None,
            };
            self.write(t, c, &body);
        }
    }

    fn record(&mut self, t: u64, c: u32, mut body: Body) {
        let status = body.outcome().as_ref().map(EndStatus::of);
        self.files.see(&body);
        match &mut body {
            Body::Cmd { .. } => {
                self.commands = self.commands.max(c);
                self.command_start = Some(t);
            }
            Body::Exit { code, out, err, .. } => {
                let status = status.expect("an exit record has an outcome");
                if let Some(start) = self.command_start.take() {
                    self.busy += t.saturating_sub(start);
                }
                self.last_exit = Some((status, *code));
                *out = Some(self.written[0]);
                *err = Some(self.written[1]);
            }
            _ => {}
        }
        self.write(t, c, &body);
    }

    /// Appends one index line with a single write.
    fn write(&mut self, t: u64, c: u32, body: &Body) {
        self.seq += 1;
        let record = RecordRef {
            seq: self.seq,
            t,
            c,
            body,
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &record).expect("records serialise");
        self.line.push(b'\n');
        let len = self.line.len() as u64;
        if self.index_len + len + INDEX_RESERVE / 2 > self.reserved_to {
            self.reserve();
        }
        match self.index.write_all(&self.line) {
            Ok(()) => self.index_len += len,
            Err(e) => {
                let path = self.dir.join(INDEX_FILE);
                self.fail(path, &e, true);
            }
        }
    }

    /// Allocates [`INDEX_RESERVE`] bytes past the end of the index, keeping
    /// its size. A disk already full (or a filesystem without `fallocate`)
    /// leaves what is reserved as it is.
    fn reserve(&mut self) {
        use std::os::fd::AsRawFd;
        let (Ok(start), Ok(len)) = (
            libc::off_t::try_from(self.index_len),
            libc::off_t::try_from(INDEX_RESERVE),
        ) else {
            return;
        };
        // SAFETY: fallocate(2) on a descriptor this thread owns.
        let done = unsafe {
            libc::fallocate(
                self.index.as_raw_fd(),
                libc::FALLOC_FL_KEEP_SIZE,
                start,
                len,
            )
        };
        if done == 0 {
            self.reserved_to = self.index_len + INDEX_RESERVE;
        }
    }
}

/// A [`Record`](super::Record) serialised from borrowed parts.
#[derive(Serialize)]
struct RecordRef<'a> {
    seq: u64,
    t: u64,
    c: u32,
    #[serde(flatten)]
    body: &'a Body,
}
