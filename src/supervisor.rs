//! The supervisor of one session: a task that owns a runtime, runs its
//! commands one after another and hands every event to its subscribers.
//!
//! The CLI, the run log and the TUI all go through it, so a session behaves
//! and is recorded the same way whoever started it. Subscribers get every
//! event, in order: a slow subscriber slows the command down (channels are
//! bounded) rather than losing output.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::runlog::RunlogWriter;
use crate::runtime::{
    ExecRequest, RuntimeError, RuntimeEvent, RuntimeInfo, RuntimeResult, SubmissionRuntime,
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
    subscribers: Arc<Mutex<Vec<mpsc::Sender<SessionEvent>>>>,
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

    fn spawn(runtime: Box<dyn SubmissionRuntime>, log: Option<RunlogWriter>) -> Self {
        let runtime: Arc<dyn SubmissionRuntime> = Arc::from(runtime);
        let (jobs, queue) = mpsc::channel(16);
        let subscribers = Arc::new(Mutex::new(Vec::new()));
        let task = serve(Arc::clone(&runtime), queue, Arc::clone(&subscribers), log);
        tokio::spawn(task);
        Self {
            runtime,
            jobs,
            subscribers,
        }
    }

    /// A receiver of every event from the next command on.
    pub fn subscribe(&self) -> mpsc::Receiver<SessionEvent> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
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

    /// Kills what runs, releases the runtime and completes the run log.
    pub async fn cleanup(&self) -> Result<(), RuntimeError> {
        let cleaned = self.runtime.cleanup().await;
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
    subscribers: Subscribers,
    mut log: Option<RunlogWriter>,
) {
    let mut number = 0;
    let emit = async |event: SessionEvent, log: &mut Option<RunlogWriter>| {
        record(log, &event, &subscribers).await;
        publish(&subscribers, event).await;
    };
    while let Some(job) = queue.recv().await {
        let (request, reply) = match job {
            Job::Run { request, reply } => (request, reply),
            Job::Close { done } => {
                if let Some(writer) = log.take() {
                    let path = writer.path().to_owned();
                    // The writer may find the disk full only now, behind
                    // the output it still had queued: said as in `record`.
                    if let Err(e) = writer.finish().await {
                        note(
                            &subscribers,
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
        number += 1;
        let started = SessionEvent::CommandStarted {
            number,
            command: request.command.clone(),
            timeout: request.timeout,
        };
        emit(started, &mut log).await;
        let outcome = match runtime.stream(request).await {
            Ok(mut events) => {
                let mut result = Err(RuntimeError::StreamEnded);
                while let Some(event) = events.next_event().await {
                    if let RuntimeEvent::Finished(finished) = &event {
                        result = Ok((**finished).clone());
                    }
                    emit(SessionEvent::Runtime { number, event }, &mut log).await;
                }
                result
            }
            Err(error) => {
                let event = SessionEvent::Failed {
                    number,
                    error: error.to_string(),
                };
                emit(event, &mut log).await;
                Err(error)
            }
        };
        let _ = reply.send(outcome);
    }
}

type Subscribers = Arc<Mutex<Vec<mpsc::Sender<SessionEvent>>>>;

/// Records `event` in the log; a log that cannot be written is reported
/// once to the subscribers and recording stops (the session goes on).
async fn record(log: &mut Option<RunlogWriter>, event: &SessionEvent, subscribers: &Subscribers) {
    let Some(writer) = log else { return };
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
    match recorded {
        // The index cannot be written: nothing more can be recorded.
        Err(e) => {
            *log = None;
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
