//! The supervisor of one session: a task that owns a runtime, runs its
//! queued commands one after another, starts others beside them, and hands
//! every event to its subscribers and the run log.
//!
//! The CLI, the run log, the TUI and the Python package all go through it,
//! so a session behaves and is recorded the same way whoever started it.
//! Subscribers get every event, in order per command: a slow subscriber
//! slows the command down (channels are bounded) rather than losing output.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use crate::runlog::{FileOp, RunlogError, RunlogWriter, StoreLimits};
use crate::runtime::{
    ExecRequest, FileError, LaunchSpec, RuntimeError, RuntimeEvent, RuntimeInfo, RuntimeResult,
    SubmissionRuntime,
};

/// What subscribers of a session receive.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// Command number `number` (from 1) of the session starts.
    CommandStarted {
        /// Its number in the session.
        number: u32,
        /// The command line.
        command: String,
        /// Its timeout, if any.
        timeout: Option<std::time::Duration>,
    },
    /// An event of command `number`.
    Runtime {
        /// The command's number in the session.
        number: u32,
        /// The event.
        event: RuntimeEvent,
    },
    /// Command `number` could not be started.
    Failed {
        /// The command's number in the session.
        number: u32,
        /// Why.
        error: String,
    },
}

/// Events buffered per subscriber.
const SUBSCRIBER_BUFFER: usize = 16;

enum Job {
    Run {
        request: ExecRequest,
        reply: oneshot::Sender<Result<RuntimeResult, RuntimeError>>,
    },
    /// Finish the run log once the queued commands are done.
    Close { done: oneshot::Sender<()> },
}

/// Handle to a session's task. Cheap to clone; the task ends when every
/// handle is dropped and the last command is done.
#[derive(Clone)]
pub struct Supervisor {
    runtime: Arc<dyn SubmissionRuntime>,
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

/// What the queue's task and the commands started beside it share.
struct Shared {
    subscribers: Subscribers,
    /// The run log, until it is finished (or cannot be written).
    log: Mutex<Option<Arc<RunlogWriter>>>,
    /// The last command number given.
    numbers: AtomicU32,
    /// Commands started beside the queue, still being recorded.
    beside: TaskTracker,
}

impl Shared {
    fn log(&self) -> Option<Arc<RunlogWriter>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn next_number(&self) -> u32 {
        self.numbers.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Records `event` and hands it to the subscribers.
    async fn emit(&self, event: SessionEvent) {
        record(self, &event).await;
        publish(&self.subscribers, event).await;
    }
}

/// The events of a command started beside others
/// ([`Supervisor::start_command`]). Dropping it kills the command; its end
/// is still recorded.
pub struct CommandEvents {
    rx: mpsc::Receiver<RuntimeEvent>,
    kill: Arc<dyn Fn() + Send + Sync>,
    number: u32,
}

impl CommandEvents {
    /// The next event; `None` after `Finished`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn next_event(&mut self) -> Option<RuntimeEvent> {
        self.rx.recv().await
    }

    /// Skips to the end and returns the result.
    ///
    /// # Errors
    ///
    /// The stream ended without a result.
    pub async fn finish(mut self) -> Result<RuntimeResult, RuntimeError> {
        while let Some(event) = self.next_event().await {
            if let RuntimeEvent::Finished(result) = event {
                return Ok(*result);
            }
        }
        Err(RuntimeError::StreamEnded)
    }

    /// Kills this command (its own processes); its last events and
    /// `Finished` still come.
    pub fn kill(&self) {
        (self.kill)();
    }

    /// A handle that kills the command from elsewhere.
    pub fn killer(&self) -> Arc<dyn Fn() + Send + Sync> {
        Arc::clone(&self.kill)
    }

    /// The command's number in the session (as the run log numbers it).
    pub fn number(&self) -> u32 {
        self.number
    }
}

impl std::fmt::Debug for CommandEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandEvents")
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("runtime", &self.runtime.info())
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// Starts the task that owns `runtime`. Must be called within a tokio
    /// runtime.
    pub fn start(runtime: Box<dyn SubmissionRuntime>) -> Self {
        Self::spawn(runtime, None)
    }

    /// Like [`start`](Self::start), and records every event in `log`; the
    /// log gets its `end` line at [`cleanup`](Self::cleanup).
    pub fn start_recorded(runtime: Box<dyn SubmissionRuntime>, log: RunlogWriter) -> Self {
        Self::spawn(runtime, Some(log))
    }

    /// Like [`start_recorded`](Self::start_recorded), the log made in the
    /// store at `store_dir` for `launch`; returns the run's folder too.
    /// Every front end that records a session starts it here.
    ///
    /// # Errors
    ///
    /// The log could not be made: `runtime` is cleaned up first, so nothing
    /// of an unrecorded session is left running.
    pub async fn start_in_store(
        runtime: Box<dyn SubmissionRuntime>,
        store_dir: &Path,
        limits: StoreLimits,
        launch: &LaunchSpec,
    ) -> Result<(Self, PathBuf), RunlogError> {
        match RunlogWriter::create(store_dir, limits, launch, &runtime.info()) {
            Ok(log) => {
                let dir = log.path().to_owned();
                Ok((Self::start_recorded(runtime, log), dir))
            }
            Err(e) => {
                let _ = runtime.cleanup().await;
                Err(e)
            }
        }
    }

    fn spawn(runtime: Box<dyn SubmissionRuntime>, log: Option<RunlogWriter>) -> Self {
        let runtime: Arc<dyn SubmissionRuntime> = Arc::from(runtime);
        let (jobs, queue) = mpsc::channel(16);
        let shared = Arc::new(Shared {
            subscribers: Arc::new(Mutex::new(Vec::new())),
            log: Mutex::new(log.map(Arc::new)),
            numbers: AtomicU32::new(0),
            beside: TaskTracker::new(),
        });
        let task = serve(Arc::clone(&runtime), queue, Arc::clone(&shared));
        tokio::spawn(task);
        Self {
            runtime,
            jobs,
            shared,
        }
    }

    /// A receiver of every event from the next command on.
    pub fn subscribe(&self) -> mpsc::Receiver<SessionEvent> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.shared
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    /// Starts `request` now, beside the queued commands and the others
    /// started this way (see [`SubmissionRuntime::start`]), recorded like
    /// them.
    ///
    /// # Errors
    ///
    /// The runtime refused to start it (cleaned up, a `user` it cannot
    /// use); the refusal is recorded too.
    pub async fn start_command(&self, request: ExecRequest) -> Result<CommandEvents, RuntimeError> {
        let shared = Arc::clone(&self.shared);
        let number = shared.next_number();
        let started = SessionEvent::CommandStarted {
            number,
            command: request.command.clone(),
            timeout: request.timeout,
        };
        shared.emit(started).await;
        let mut events = match self.runtime.start(request).await {
            Ok(events) => events,
            Err(error) => {
                let error_text = error.to_string();
                shared
                    .emit(SessionEvent::Failed {
                        number,
                        error: error_text,
                    })
                    .await;
                return Err(error);
            }
        };
        let kill: Arc<dyn Fn() + Send + Sync> = Arc::new(events.killer());
        let (tx, rx) = mpsc::channel(crate::runtime::EVENT_BUFFER);
        self.shared.beside.spawn(async move {
            let mut reader = Some(tx);
            while let Some(event) = events.next_event().await {
                shared
                    .emit(SessionEvent::Runtime {
                        number,
                        event: event.clone(),
                    })
                    .await;
                if let Some(to) = &reader
                    && to.send(event).await.is_err()
                {
                    // The reader went: the command goes too, and its end
                    // is still recorded.
                    events.kill();
                    reader = None;
                }
            }
        });
        Ok(CommandEvents { rx, kill, number })
    }

    /// Reads a file of the session (see [`SubmissionRuntime::read_file`]),
    /// recorded.
    ///
    /// # Errors
    ///
    /// See [`FileError`].
    pub async fn read_file(&self, path: &str, limit: u64) -> Result<Bytes, FileError> {
        let read = self.runtime.read_file(path, limit).await;
        let (bytes, error) = match &read {
            Ok(data) => (data.len() as u64, None),
            Err(e) => (0, Some(e.to_string())),
        };
        self.record_file(FileOp::Read, path, bytes, error).await;
        read
    }

    /// Writes a file of the session (see
    /// [`SubmissionRuntime::write_file`]), recorded.
    ///
    /// # Errors
    ///
    /// See [`FileError`].
    pub async fn write_file(&self, path: &str, data: Bytes) -> Result<(), FileError> {
        let bytes = data.len() as u64;
        let written = self.runtime.write_file(path, data).await;
        let error = written.as_ref().err().map(ToString::to_string);
        self.record_file(FileOp::Write, path, bytes, error).await;
        written
    }

    async fn record_file(&self, op: FileOp, path: &str, bytes: u64, error: Option<String>) {
        if let Some(writer) = self.shared.log() {
            let _ = writer.file(op, path, bytes, error).await;
        }
    }

    /// Queues `request`; the receiver gets its result once it has run.
    pub async fn submit(
        &self,
        request: ExecRequest,
    ) -> oneshot::Receiver<Result<RuntimeResult, RuntimeError>> {
        let (reply, result) = oneshot::channel();
        // The task lives as long as a handle does, so this cannot fail; if it
        // did, dropping `reply` makes the receiver say so.
        let _ = self.jobs.send(Job::Run { request, reply }).await;
        result
    }

    /// Runs `request` after the queued ones and returns its result.
    pub async fn run(&self, request: ExecRequest) -> Result<RuntimeResult, RuntimeError> {
        self.submit(request)
            .await
            .await
            .unwrap_or(Err(RuntimeError::StreamEnded))
    }

    /// What the runtime's `poll` says now.
    pub fn poll(&self) -> Option<i32> {
        self.runtime.poll()
    }

    /// Kills the running command (see [`SubmissionRuntime::kill`]).
    pub async fn kill(&self) -> Result<(), RuntimeError> {
        self.runtime.kill().await
    }

    /// Kills what runs, releases the runtime and completes the run log
    /// (once the commands started beside the queue are recorded to their
    /// end).
    pub async fn cleanup(&self) -> Result<(), RuntimeError> {
        let cleaned = self.runtime.cleanup().await;
        self.shared.beside.close();
        self.shared.beside.wait().await;
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close { done }).await.is_ok() {
            let _ = closed.await;
        }
        cleaned
    }

    /// The runtime's identity and state.
    pub fn info(&self) -> RuntimeInfo {
        self.runtime.info()
    }

    /// Whether `other` is a handle to the same session.
    pub fn same_session(&self, other: &Supervisor) -> bool {
        self.jobs.same_channel(&other.jobs)
    }
}

async fn serve(
    runtime: Arc<dyn SubmissionRuntime>,
    mut queue: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
) {
    while let Some(job) = queue.recv().await {
        let (request, reply) = match job {
            Job::Run { request, reply } => (request, reply),
            Job::Close { done } => {
                let writer = shared.log.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(writer) = last_handle(writer).await {
                    let path = writer.path().to_owned();
                    // The writer may find the disk full only now, behind
                    // the output it still had queued: said as in `record`.
                    if let Err(e) = writer.finish().await {
                        let number = shared.numbers.load(Ordering::SeqCst);
                        note(
                            &shared.subscribers,
                            number,
                            format!("run log {}: {e}; recording stopped", path.display()),
                        )
                        .await;
                    }
                }
                let _ = done.send(());
                continue;
            }
        };
        let number = shared.next_number();
        let started = SessionEvent::CommandStarted {
            number,
            command: request.command.clone(),
            timeout: request.timeout,
        };
        shared.emit(started).await;
        let outcome = match runtime.stream(request).await {
            Ok(mut events) => {
                let mut result = Err(RuntimeError::StreamEnded);
                while let Some(event) = events.next_event().await {
                    if let RuntimeEvent::Finished(finished) = &event {
                        result = Ok((**finished).clone());
                    }
                    shared.emit(SessionEvent::Runtime { number, event }).await;
                }
                result
            }
            Err(error) => {
                let event = SessionEvent::Failed {
                    number,
                    error: error.to_string(),
                };
                shared.emit(event).await;
                Err(error)
            }
        };
        let _ = reply.send(outcome);
    }
}

/// The writer itself, once no other task holds it: the commands started
/// beside the queue are done (cleanup waited for them), and a file
/// operation's record takes a moment at most.
async fn last_handle(mut writer: Option<Arc<RunlogWriter>>) -> Option<RunlogWriter> {
    for _ in 0..1000 {
        match Arc::try_unwrap(writer?) {
            Ok(writer) => return Some(writer),
            Err(shared) => writer = Some(shared),
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    None
}

type Subscribers = Arc<Mutex<Vec<mpsc::Sender<SessionEvent>>>>;

/// Records `event` in the log; a log that cannot be written is reported
/// once to the subscribers and recording stops (the session goes on).
async fn record(shared: &Shared, event: &SessionEvent) {
    let Some(writer) = shared.log() else { return };
    let (number, recorded) = match event {
        SessionEvent::CommandStarted {
            number,
            command,
            timeout,
        } => (
            *number,
            writer.command_started(*number, command, *timeout).await,
        ),
        SessionEvent::Runtime { number, event } => (*number, writer.event(*number, event).await),
        SessionEvent::Failed { number, error } => (*number, writer.note(*number, error).await),
    };
    let subscribers = &shared.subscribers;
    match recorded {
        // The index cannot be written: nothing more can be recorded.
        Err(e) => {
            shared.log.lock().unwrap_or_else(|e| e.into_inner()).take();
            note(
                subscribers,
                number,
                format!("run log: {e}; recording stopped"),
            )
            .await;
        }
        // Output can no longer be written (a full disk); the commands' and
        // the session's ends still are.
        Ok(()) => {
            if let Some(e) = writer.problem() {
                let text = format!(
                    "run log: {e}; recording stopped (output is no longer kept; \
                     how the commands end still is)"
                );
                note(subscribers, number, text).await;
            }
        }
    }
}

async fn note(subscribers: &Subscribers, number: u32, text: String) {
    let event = RuntimeEvent::Note(text);
    publish(subscribers, SessionEvent::Runtime { number, event }).await;
}

/// Sends `event` to every subscriber, forgetting those that went away.
async fn publish(subscribers: &Mutex<Vec<mpsc::Sender<SessionEvent>>>, event: SessionEvent) {
    let targets = subscribers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut gone = Vec::new();
    for target in &targets {
        if target.send(event.clone()).await.is_err() {
            gone.push(target.clone());
        }
    }
    if !gone.is_empty() {
        subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| !gone.iter().any(|g| g.same_channel(s)));
    }
}
