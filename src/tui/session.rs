//! One row of the Sessions pane: a run this dashboard started, one of the
//! store's, or one another process is writing (its log is followed), with
//! what it printed (sanitised, the last [`PANE_LINES`] lines per stream).

use std::time::{Duration, Instant};

use super::sanitize::OutputBuffer;
use crate::runlog::{self, Body, EndStatus, Owner, RunState, RunSummary, StreamTag};
use crate::supervisor::Supervisor;

/// Lines kept per stream and session; the run log has everything.
pub const PANE_LINES: usize = 5000;

/// Where a session is, as the Sessions pane shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Running setup commands.
    Setup,
    /// Running its command.
    Running,
    /// Exited with this code.
    Exited(i32),
    /// Ended by its timeout.
    TimedOut,
    /// Ended by a kill.
    Killed,
    /// A setup command failed with this code.
    SetupFailed(i32),
    /// How it ended could not be read (a node failed, the cluster went).
    StatusLost,
    /// Alive, between commands (another process's run).
    Idle,
    /// Its writer died before it ended.
    Interrupted,
    /// Known from the store, no command recorded.
    Empty,
}

impl SessionState {
    /// Alive somewhere: a command runs, or the session waits for one.
    pub fn is_running(self) -> bool {
        matches!(self, Self::Setup | Self::Running | Self::Idle)
    }

    /// How it stands in the one vocabulary of `ls --state` and the batch
    /// summary; `None` for a run that ended without a command.
    pub fn verdict(self) -> Option<crate::runtime::Verdict> {
        use crate::runtime::Verdict;
        Some(match self {
            Self::Setup | Self::Running => Verdict::Running,
            Self::Idle => Verdict::Idle,
            Self::Exited(0) => Verdict::Ok,
            Self::Exited(_) | Self::SetupFailed(_) | Self::StatusLost => Verdict::Failed,
            Self::TimedOut => Verdict::TimedOut,
            Self::Killed => Verdict::Killed,
            Self::Interrupted => Verdict::Interrupted,
            Self::Empty => return None,
        })
    }

    /// The words shown for it.
    pub fn label(self) -> String {
        match self {
            Self::Setup => "setup".into(),
            Self::Running => "running".into(),
            Self::Exited(code) => format!("exited {code}"),
            Self::TimedOut => "timed out".into(),
            Self::Killed => "killed".into(),
            Self::SetupFailed(code) => format!("setup failed {code}"),
            Self::StatusLost => "status lost".into(),
            Self::Idle => "idle".into(),
            Self::Interrupted => "interrupted".into(),
            Self::Empty => "empty".into(),
        }
    }
}

/// Whose a session is: this dashboard's own, or another process's.
#[derive(Debug)]
pub enum Origin {
    /// Started by this dashboard: its supervisor runs it and sends its
    /// events.
    Own(Supervisor),
    /// Another process's run, read from its log when it is viewed.
    Stored,
    /// Another process's run, live: its log is followed as it grows (by
    /// the store's thread, [`store_watch`](super::store_watch)).
    Followed,
}

/// One session: its identity, state and what it printed.
#[derive(Debug)]
pub struct Session {
    /// Run id.
    pub run_id: String,
    /// Environment name.
    pub environment: String,
    /// Its (first) command.
    pub command: String,
    /// Where it is.
    pub state: SessionState,
    /// When this process started it (own sessions).
    pub started: Option<Instant>,
    /// How long it ran (ended or stored sessions).
    pub elapsed: Duration,
    /// Sanitised stdout.
    pub stdout: OutputBuffer,
    /// Sanitised stderr.
    pub stderr: OutputBuffer,
    /// Whose run it is, and how the dashboard hears of its output.
    pub origin: Origin,
    /// Its run log, if it has one.
    pub log: Option<std::path::PathBuf>,
    /// The log's output is in the buffers (stored sessions load on view).
    pub loaded: bool,
    /// The last host process the log recorded.
    pub last_process: Option<Process>,
    /// The process writing the log (runs of other processes).
    pub owner: Option<Owner>,
    /// The runtime type of a followed run, from its log header.
    pub kind: Option<String>,
    /// The Slurm job of a followed run (Slurm runs), from its log header.
    pub slurm_job: Option<String>,
    /// Where its command ran (what `r` runs again in).
    pub working_dir: Option<std::path::PathBuf>,
    /// Its command's timeout (what `r` runs again with).
    pub timeout: Option<Duration>,
    /// The file its stdin was read from (runs started here with one).
    pub stdin_file: Option<std::path::PathBuf>,
    /// Its name, or its submission in a batch, from its labels.
    pub name: Option<String>,
    /// The batch it belongs to, from its labels.
    pub batch: Option<String>,
    /// What the store said of it when it was listed (stored runs).
    pub summary: Option<Box<RunSummary>>,
    /// When it last wrote output, as far as this dashboard knows.
    pub last_output: Option<Instant>,
}

impl Session {
    /// A session this process starts.
    pub fn own(
        run_id: String,
        environment: String,
        command: String,
        supervisor: Supervisor,
    ) -> Self {
        Self {
            run_id,
            environment,
            command,
            state: SessionState::Running,
            started: Some(Instant::now()),
            elapsed: Duration::ZERO,
            stdout: OutputBuffer::new(PANE_LINES),
            stderr: OutputBuffer::new(PANE_LINES),
            origin: Origin::Own(supervisor),
            log: None,
            loaded: true,
            last_process: None,
            owner: None,
            kind: None,
            slurm_job: None,
            summary: None,
            last_output: None,
            working_dir: None,
            timeout: None,
            stdin_file: None,
            name: None,
            batch: None,
        }
    }

    /// A session known from the store.
    pub fn stored(run: &RunSummary) -> Self {
        let exit = run.outcome.as_ref().map(|o| o.exit_code);
        let state = match (run.state, run.status, exit) {
            (RunState::Running, _, _) => SessionState::Running,
            (RunState::Idle, _, _) => SessionState::Idle,
            (RunState::Interrupted, _, _) => SessionState::Interrupted,
            (_, Some(EndStatus::TimedOut), _) => SessionState::TimedOut,
            (_, Some(EndStatus::Killed), _) => SessionState::Killed,
            (_, Some(EndStatus::SetupFailed), code) => {
                SessionState::SetupFailed(code.unwrap_or(-1))
            }
            (_, Some(EndStatus::StatusLost), _) => SessionState::StatusLost,
            (_, Some(EndStatus::Exited), code) => SessionState::Exited(code.unwrap_or(-1)),
            _ => SessionState::Empty,
        };
        Self {
            run_id: run.run_id.clone(),
            environment: run.environment.clone(),
            command: run.command.clone().unwrap_or_default(),
            state,
            started: None,
            elapsed: run.duration,
            stdout: OutputBuffer::new(PANE_LINES),
            stderr: OutputBuffer::new(PANE_LINES),
            origin: Origin::Stored,
            log: Some(run.path.clone()),
            loaded: false,
            last_process: None,
            owner: None,
            kind: None,
            slurm_job: None,
            summary: Some(Box::new(run.clone())),
            // The store measured the silence when it listed the run.
            last_output: run
                .silent_for
                .and_then(|quiet| Instant::now().checked_sub(quiet)),
            working_dir: Some(run.working_dir.clone()),
            timeout: run
                .timeout
                .and_then(|t| Duration::try_from_secs_f64(t).ok()),
            stdin_file: None,
            name: [crate::batch::labels::NAME, crate::batch::labels::SUBMISSION]
                .iter()
                .find_map(|key| run.labels.get(*key).cloned()),
            batch: run.labels.get(crate::batch::labels::BATCH).cloned(),
        }
    }

    /// The supervisor of a session this dashboard started.
    pub fn supervisor(&self) -> Option<&Supervisor> {
        match &self.origin {
            Origin::Own(supervisor) => Some(supervisor),
            Origin::Stored | Origin::Followed => None,
        }
    }

    /// The most memory its last command held, where it was measured.
    pub fn peak_memory(&self) -> Option<u64> {
        self.summary
            .as_ref()?
            .outcome
            .as_ref()?
            .usage
            .peak_memory_bytes
    }

    /// Time since it started, or how long it ran.
    pub fn elapsed(&self) -> Duration {
        match (self.started, self.state.is_running()) {
            (Some(started), true) => started.elapsed(),
            _ => self.elapsed,
        }
    }

    /// How long a running run has written nothing (since its start when it
    /// has written nothing yet); `None` when it is not running.
    pub fn quiet_for(&self) -> Option<Duration> {
        if !self.state.is_running() {
            return None;
        }
        match (self.last_output, self.started) {
            (Some(at), _) | (None, Some(at)) => Some(at.elapsed()),
            (None, None) => None,
        }
    }

    pub(super) fn since_start(&self) -> Duration {
        self.started.map(|s| s.elapsed()).unwrap_or_default()
    }

    /// Takes the output [`read_output`] read from its log, unless the
    /// panes were filled meanwhile (a replay, a follow).
    pub fn take_output(&mut self, output: Output) {
        if !self.loaded {
            self.stdout = output.stdout;
            self.stderr = output.stderr;
            self.loaded = true;
        }
    }
}

/// A stored run's output, as its panes show it.
#[derive(Debug)]
pub struct Output {
    /// Sanitised stdout (its end).
    pub stdout: OutputBuffer,
    /// Sanitised stderr (its end).
    pub stderr: OutputBuffer,
    /// What the reader skipped or could not read.
    pub warnings: Vec<String>,
}

/// Reads the end of each stream of the log at `path` (the panes keep their
/// last lines anyway): the index's records are walked, the bytes read only
/// for the last `LOAD_BYTES`. Blocking: the dashboard calls it in a task.
pub fn read_output(path: &std::path::Path) -> Output {
    let mut output = Output {
        stdout: OutputBuffer::new(PANE_LINES),
        stderr: OutputBuffer::new(PANE_LINES),
        warnings: Vec::new(),
    };
    let mut reader = match runlog::open(path) {
        Ok(reader) => reader,
        Err(e) => {
            output.warnings.push(e.to_string());
            return output;
        }
    };
    let from = reader.totals().map(|t| t.saturating_sub(LOAD_BYTES));
    while let Some(record) = reader.next() {
        if let Body::Out { s, o, n, .. } = &record.body {
            if let (Some(o), Some(n)) = (o, n)
                && o.saturating_add(*n) <= from[s.index()]
            {
                continue;
            }
            let bytes = reader.bytes(&record);
            let at = Duration::from_micros(record.t);
            match s {
                StreamTag::Out => output.stdout.push(&bytes, at),
                StreamTag::Err => output.stderr.push(&bytes, at),
            }
        }
    }
    output.warnings = reader.warnings;
    output
}

/// Bytes of each stream a stored session loads into its panes: the end.
pub(super) const LOAD_BYTES: u64 = 4 << 20;

/// A host process a run's log recorded, for killing it from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// The command's shell.
    pub pid: u32,
    /// Its process group.
    pub pgid: i32,
    /// The shell's start time.
    pub start: Option<u64>,
    /// The session's PID-namespace init and its start time: killing it
    /// kills the whole session.
    pub init: Option<(u32, u64)>,
}

/// How a run id is shown. Whole: the first 10 characters of a ULID are its
/// time, so runs started together share them, and the whole id is what
/// `subrt export` and `replay` take.
pub fn short_id(run_id: &str) -> &str {
    run_id
}
