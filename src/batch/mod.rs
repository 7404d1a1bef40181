//! Batches: every submission of a batch file as one session (setup once,
//! its commands in order), up to `jobs` sessions at once, each recorded in
//! the store with the batch's labels.
//!
//! [`run`] reports every finished command and submission as a
//! [`BatchEvent`]; the CLI turns them into progress, lines or JSON. A
//! cancelled batch (SIGINT) cleans up every running session before it
//! returns, so nothing of it is left.

mod manifest;

pub use manifest::{
    Command, MAX_STDIN_BYTES, Manifest, ManifestError, Overrides, StdinFile, Submission,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::runlog::{RunState, Store};
use crate::runtime::{
    AllocationPool, ExecRequest, LaunchSpec, Outcome, StaticAsset, Verdict, registry,
};
use crate::sanitize;
use crate::supervisor::Supervisor;

/// Labels subrt sets on every run of a batch.
pub mod labels {
    /// The batch's id.
    pub const BATCH: &str = "batch";
    /// The submission's id.
    pub const SUBMISSION: &str = "submission";
    /// The batch file, as an absolute path (what `--resume` looks for).
    pub const BATCH_FILE: &str = "batch_file";
    /// A run's name (`subrt run --name`).
    pub const NAME: &str = "name";
}

/// Label names a batch file may not set.
pub(crate) const RESERVED_LABELS: &[&str] =
    &[labels::BATCH, labels::SUBMISSION, labels::BATCH_FILE];

/// How a batch runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Sessions at once; else the file's `jobs`, else the number of CPUs.
    pub jobs: Option<usize>,
    /// Stop the whole batch at the first failed command.
    pub fail_fast: bool,
    /// Skip submissions whose run of this batch finished; reuse its id.
    pub resume: bool,
}

/// What a batch reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchEvent {
    /// A submission's session started.
    Started {
        /// The submission.
        submission: String,
        /// Its run.
        run_id: String,
    },
    /// A command finished.
    Command {
        /// The submission.
        submission: String,
        /// Its number in the submission, from 1.
        number: usize,
        /// Its name, if the file gave one.
        name: Option<String>,
        /// The run.
        run_id: String,
        /// How it ended.
        outcome: Outcome,
        /// Its wall time.
        elapsed: Duration,
    },
    /// A submission is done: every command ran, or it stopped.
    Finished {
        /// The submission.
        submission: String,
        /// Its run, if it started.
        run_id: Option<String>,
        /// Its commands, counted by verdict.
        counts: Counts,
        /// Why it could not run, if it could not.
        error: Option<String>,
    },
    /// Skipped by `--resume`: its run finished before.
    Skipped {
        /// The submission.
        submission: String,
        /// The run that finished it.
        run_id: String,
    },
}

/// Commands counted by [`Verdict`] (the words `ls --state` and the
/// dashboard use): every command is one of the four.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Counts {
    /// Ran, status 0 (`ok`).
    #[serde(rename = "passed")]
    pub ok: usize,
    /// Ended with another status, out of memory, status lost, setup failed.
    pub failed: usize,
    /// Ended by their timeout.
    pub timed_out: usize,
    /// Ended by a kill (through subrt or from outside).
    pub killed: usize,
    /// Of the failed, those the out-of-memory killer ended.
    pub out_of_memory: usize,
    /// The most memory a command held, where measured.
    pub peak_memory_bytes: Option<u64>,
    /// CPU time of the commands, user and kernel, where measured.
    pub cpu_seconds: Option<f64>,
}

impl Counts {
    /// Counts `outcome` in.
    pub fn add(&mut self, outcome: &Outcome) {
        self.out_of_memory += usize::from(outcome.oom_killed);
        let usage = outcome.usage;
        self.add_cost(
            usage.peak_memory_bytes,
            usage
                .cpu_user_seconds
                .zip(usage.cpu_system_seconds)
                .map(|(u, s)| u + s),
        );
        match Verdict::of(outcome) {
            Verdict::Ok => self.ok += 1,
            Verdict::TimedOut => self.timed_out += 1,
            Verdict::Killed => self.killed += 1,
            _ => self.failed += 1,
        }
    }

    /// Adds `other` in.
    pub fn merge(&mut self, other: Counts) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.timed_out += other.timed_out;
        self.killed += other.killed;
        self.out_of_memory += other.out_of_memory;
        self.add_cost(other.peak_memory_bytes, other.cpu_seconds);
    }

    fn add_cost(&mut self, peak: Option<u64>, cpu: Option<f64>) {
        if peak.is_some() {
            self.peak_memory_bytes = self.peak_memory_bytes.max(peak);
        }
        if let Some(cpu) = cpu {
            *self.cpu_seconds.get_or_insert(0.0) += cpu;
        }
    }

    /// Commands that did not end ok.
    pub fn not_ok(&self) -> usize {
        self.failed + self.timed_out + self.killed
    }
}

impl std::fmt::Display for Counts {
    /// `5 ok, 1 failed, 0 timed out, 2 killed` (and, where measured, `;
    /// 1 out of memory, peak memory 48 MiB, CPU 3.20 s`)
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ok, {} failed, {} timed out, {} killed",
            self.ok, self.failed, self.timed_out, self.killed
        )?;
        if self.out_of_memory > 0 {
            write!(f, "; {} out of memory", self.out_of_memory)?;
        }
        if let Some(peak) = self.peak_memory_bytes {
            write!(f, "; peak memory {} MiB", peak.div_ceil(1 << 20))?;
        }
        if let Some(cpu) = self.cpu_seconds {
            write!(f, "; CPU {cpu:.2} s")?;
        }
        Ok(())
    }
}

/// How a batch went.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The batch's id.
    pub batch: String,
    /// Submissions in the file.
    pub submissions: usize,
    /// Submissions skipped by `--resume`.
    pub skipped: usize,
    /// Commands by verdict: `passed` (ok), `failed`, `timed_out`, `killed`.
    #[serde(flatten)]
    pub counts: Counts,
    /// Submissions that could not start.
    pub errors: usize,
    /// The batch was interrupted.
    pub cancelled: bool,
}

impl Summary {
    /// The exit status of `subrt batch`: 0 when every command ended ok, 1
    /// otherwise (130 when interrupted is the caller's).
    pub fn exit_status(&self) -> i32 {
        i32::from(self.counts.not_ok() > 0 || self.errors > 0)
    }
}

/// The batch id for `manifest`: a fresh one, or with `resume` the one of
/// the newest run of the same file in the store; and, by submission, the
/// last run of it under that id.
fn batch_id(
    store: &Store,
    file: &Path,
    resume: bool,
) -> (String, BTreeMap<String, crate::runlog::RunSummary>) {
    let fresh = || (ulid::Ulid::generate().to_string(), BTreeMap::new());
    if !resume {
        return fresh();
    }
    let Ok((runs, _)) = store.list() else {
        return fresh();
    };
    let file = file.display().to_string();
    let of_file = |r: &&crate::runlog::RunSummary| r.labels.get(labels::BATCH_FILE) == Some(&file);
    let Some(batch) = runs
        .iter()
        .find(of_file)
        .and_then(|r| r.labels.get(labels::BATCH))
        .cloned()
    else {
        return fresh();
    };
    let mut last = BTreeMap::new();
    // Newest first: the first run of a submission is its last attempt.
    for run in runs {
        if run.labels.get(labels::BATCH) != Some(&batch) {
            continue;
        }
        if let Some(submission) = run.labels.get(labels::SUBMISSION) {
            last.entry(submission.clone()).or_insert(run);
        }
    }
    (batch, last)
}

/// Whether `run` did all of `submission`'s work, so that `--resume` skips
/// it: its log is complete (a run whose owner died is interrupted, however
/// far it got), nothing killed it, and every command ran, or the
/// submission stopped at a failure as `stop_on_failure` asks.
fn finished_all(run: &crate::runlog::RunSummary, submission: &Submission) -> bool {
    let Some(outcome) = &run.outcome else {
        return false;
    };
    let all_ran = run.commands as usize == submission.commands.len();
    let stopped_as_asked = submission.stop_on_failure && !outcome.success();
    run.state == RunState::Finished && !outcome.killed && (all_ran || stopped_as_asked)
}

/// The sessions running now, for cleaning up at a cancel.
type Running = Arc<Mutex<Vec<Supervisor>>>;

/// Runs `manifest`, reporting on `events`, until done or `cancel` turns
/// true; then every running session is cleaned up.
///
/// # Cancel safety
///
/// Not cancel-safe: dropping the future drops the sessions (their
/// runtimes still kill everything on drop), but their logs miss `end`.
pub async fn run(
    config: &Config,
    manifest: &Manifest,
    options: &Options,
    events: mpsc::Sender<BatchEvent>,
    mut cancel: watch::Receiver<bool>,
) -> Summary {
    let store = Store::new(&config.store_dir);
    let file = std::path::absolute(&manifest.path).unwrap_or_else(|_| manifest.path.clone());
    let (batch, done) = batch_id(&store, &file, options.resume);
    let jobs = options
        .jobs
        .or(manifest.jobs)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let mut summary = Summary {
        batch: batch.clone(),
        submissions: manifest.count,
        ..Summary::default()
    };
    let running: Running = Arc::default();
    // A Slurm session that ended cleanly hands its allocation on to the
    // next of the same request (see `AllocationPool`).
    let pool = AllocationPool::new();
    let (stop_tx, stop) = watch::channel(false);
    // Submissions start in the file's order: a queue as deep as `jobs`,
    // fed in order, from which `jobs` workers take the next one as each is
    // done with its last.
    let (feed, queue) = mpsc::channel::<Job>(jobs);
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..jobs {
        let queue = Arc::clone(&queue);
        workers.spawn(async move {
            let mut total = (Counts::default(), 0);
            loop {
                let next = queue.lock().await.recv().await;
                let Some(job) = next else { break };
                let (counts, error) = job.run().await;
                total.0.merge(counts);
                total.1 += usize::from(error);
            }
            total
        });
    }
    let mut feeding = Box::pin(async {
        let mut skipped = 0;
        let mut unreadable = 0;
        for submission in manifest.submissions() {
            if *stop.borrow() {
                break;
            }
            let submission = match submission {
                Ok(submission) => submission,
                // A line of a JSON Lines file changed since it was checked.
                Err(e) => {
                    unreadable += 1;
                    let _ = events
                        .send(BatchEvent::Finished {
                            submission: e.to_string(),
                            run_id: None,
                            counts: Counts::default(),
                            error: Some("changed since the batch file was checked".into()),
                        })
                        .await;
                    continue;
                }
            };
            let submission = &submission;
            if let Some(run) = done.get(&submission.id)
                && finished_all(run, submission)
            {
                skipped += 1;
                let _ = events
                    .send(BatchEvent::Skipped {
                        submission: submission.id.clone(),
                        run_id: run.run_id.clone(),
                    })
                    .await;
                continue;
            }
            let job = Job {
                config: config.clone(),
                submission: submission.clone(),
                batch: batch.clone(),
                file: file.clone(),
                events: events.clone(),
                running: Arc::clone(&running),
                pool: pool.clone(),
                stop: stop.clone(),
                fail_fast: options.fail_fast.then(|| stop_tx.clone()),
            };
            if feed.send(job).await.is_err() {
                break;
            }
        }
        // The queue closes: each worker ends after its last submission.
        drop(feed);
        (skipped, unreadable)
    });
    let mut fed = false;
    let mut watching = true;
    loop {
        tokio::select! {
            (skipped, unreadable) = &mut feeding, if !fed => {
                fed = true;
                summary.skipped = skipped;
                summary.errors += unreadable;
            }
            joined = workers.join_next() => match joined {
                Some(Ok((counts, errors))) => {
                    summary.counts.merge(counts);
                    summary.errors += errors;
                }
                Some(Err(_)) => summary.errors += 1,
                None => break,
            },
            changed = cancel.changed(), if watching => {
                // A sender that is gone can no longer cancel: stop watching.
                watching = changed.is_ok() && !*cancel.borrow();
                if changed.is_ok() && *cancel.borrow() {
                    summary.cancelled = true;
                    let _ = stop_tx.send(true);
                    // Clean up what runs (a kill would miss a command on
                    // its way to the runtime); the jobs then end.
                    let sessions = running.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let cleanups = sessions.iter().map(|session| session.cleanup());
                    futures_util::future::join_all(cleanups).await;
                }
            }
        }
    }
    pool.close().await;
    summary
}

/// One submission's session.
struct Job {
    config: Config,
    submission: Submission,
    batch: String,
    file: PathBuf,
    events: mpsc::Sender<BatchEvent>,
    running: Running,
    pool: AllocationPool,
    stop: watch::Receiver<bool>,
    /// Set when `--fail-fast`: a failure stops the batch.
    fail_fast: Option<watch::Sender<bool>>,
}

impl Job {
    /// Runs the submission; returns its commands' counts, and whether it
    /// could not start or go on.
    async fn run(self) -> (Counts, bool) {
        let submission = &self.submission;
        if *self.stop.borrow() {
            return (Counts::default(), false);
        }
        let finished = |run_id, counts, error| BatchEvent::Finished {
            submission: submission.id.clone(),
            run_id,
            counts,
            error,
        };
        let supervisor = match self.start().await {
            Ok(started) => started,
            Err(error) => {
                let _ = self
                    .events
                    .send(finished(None, Counts::default(), Some(error)))
                    .await;
                return (Counts::default(), true);
            }
        };
        let (supervisor, run_id) = supervisor;
        let mut counts = Counts::default();
        // Bytes of the session so far: beyond the bound, the log keeps
        // head and tail only.
        let mut written = [0u64; 2];
        let bound = self.config.store_limits.max_run_bytes;
        for (index, command) in submission.commands.iter().enumerate() {
            if *self.stop.borrow() {
                break;
            }
            let mut request = ExecRequest::new(command.run.clone()).capture_limit(0);
            request.timeout = command.timeout;
            if let Some(file) = &command.stdin {
                match file.read(manifest::MAX_STDIN_BYTES) {
                    Ok(data) => request.stdin = Some(Bytes::from(data)),
                    Err(e) => {
                        // Checked when the file was read, changed since (gone,
                        // or a link out of its folder put there): the
                        // submission cannot go on. An error, not a failed
                        // command (none ran).
                        let _ = supervisor.cleanup().await;
                        let error = format!("stdin file {}", sanitize::plain(&e));
                        let event = finished(Some(run_id.clone()), counts, Some(error));
                        let _ = self.events.send(event).await;
                        return (counts, true);
                    }
                }
            }
            let started = Instant::now();
            let result = supervisor.run(request).await;
            if result.is_err() && *self.stop.borrow() {
                break; // cleaned up by the cancel before it could start
            }
            let outcome = match &result {
                Ok(result) => {
                    let mut outcome = result.outcome();
                    written[0] += outcome.stdout_bytes;
                    written[1] += outcome.stderr_bytes;
                    // The result keeps no bytes (the log does): what is
                    // truncated is what the log could not keep.
                    outcome.truncated = written.iter().any(|&w| w > bound);
                    outcome
                }
                Err(e) => {
                    tracing::warn!(submission = %submission.id, error = %e, "command did not run");
                    Outcome {
                        exit_code: 126,
                        ..Outcome::default()
                    }
                }
            };
            let ok = Verdict::of(&outcome) == Verdict::Ok;
            counts.add(&outcome);
            let event = BatchEvent::Command {
                submission: submission.id.clone(),
                number: index + 1,
                name: command.name.clone(),
                run_id: run_id.clone(),
                outcome,
                elapsed: started.elapsed(),
            };
            let _ = self.events.send(event).await;
            if !ok {
                if let Some(stop) = &self.fail_fast {
                    let _ = stop.send(true);
                    break;
                }
                if submission.stop_on_failure {
                    break;
                }
            }
        }
        let _ = supervisor.cleanup().await;
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| !s.same_session(&supervisor));
        let _ = self.events.send(finished(Some(run_id), counts, None)).await;
        (counts, false)
    }

    /// Spawns the submission's runtime and its recorded supervisor.
    async fn start(&self) -> Result<(Supervisor, String), String> {
        let submission = &self.submission;
        let mut spec = self
            .config
            .environment(Some(&submission.environment))
            .map_err(|e| e.to_string())?
            .clone();
        if let Some(setup) = &submission.setup {
            spec.setup.commands = setup.clone();
        }
        let mut launch = LaunchSpec::new(spec, submission.workdir.clone());
        launch.static_assets = submission
            .assets
            .iter()
            .map(|(name, path)| StaticAsset::named(name, path.clone()))
            .collect();
        launch.labels = submission.labels.clone();
        launch
            .labels
            .insert(labels::BATCH.into(), self.batch.clone());
        launch
            .labels
            .insert(labels::SUBMISSION.into(), submission.id.clone());
        launch
            .labels
            .insert(labels::BATCH_FILE.into(), self.file.display().to_string());
        launch.allocation_pool = Some(self.pool.clone());
        let run_id = launch.run_id.clone();
        let runtime = registry::builtins()
            .spawn(launch.clone())
            .await
            .map_err(|e| format!("submission `{}`: {e}", submission.id))?;
        let started = Supervisor::start_in_store(
            runtime,
            &self.config.store_dir,
            self.config.store_limits,
            &launch,
        )
        .await;
        let supervisor = match started {
            Ok((supervisor, _)) => supervisor,
            Err(e) => {
                return Err(format!(
                    "submission `{}`: cannot record the run: {e}",
                    submission.id
                ));
            }
        };
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(supervisor.clone());
        let _ = self
            .events
            .send(BatchEvent::Started {
                submission: submission.id.clone(),
                run_id: run_id.clone(),
            })
            .await;
        Ok((supervisor, run_id))
    }
}
