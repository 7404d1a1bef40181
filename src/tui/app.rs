//! The TUI's state, changed only by [`App::update`] (an [`Action`]) and
//! [`App::apply`] (a session's event). Whatever needs the runtime (kill,
//! cleanup, poll, quit) comes back as an [`Effect`] for the event loop.

use std::time::{Duration, Instant};

use super::filter::{self, SessionFilter};
use crate::runlog::{self, Body, EndStatus, Owner, RunState, RunSummary, Store, StreamTag, Tail};
use crate::runtime::leftovers::{ManagedContainer, Verdict};
use crate::runtime::{RuntimeEvent, StreamKind};
use crate::supervisor::{SessionEvent, Supervisor};

use super::action::Action;
use super::sanitize::OutputBuffer;

/// Lines kept per stream and session; the run log has everything.
pub const PANE_LINES: usize = 5000;

/// The panes, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// Environment specs.
    Environments,
    /// Sessions.
    Sessions,
    /// The stdout pane (or the merged one).
    Stdout,
    /// The stderr pane.
    Stderr,
}

/// How the two output streams are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// stdout left, stderr right.
    SideBySide,
    /// stdout above stderr.
    Stacked,
    /// One pane, lines in order of arrival, stderr tinted.
    Merged,
}

/// A dialog over the main screen. A question about a run names it by its
/// run id: rows move when runs arrive, ids do not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    /// None.
    None,
    /// The key help.
    Help,
    /// Kill the run with this id?
    ConfirmKill(String),
    /// Kill the marked runs, these ids?
    ConfirmKillMarked(Vec<String>),
    /// Clean up the running run with this id?
    ConfirmCleanup(String),
    /// Quit while sessions run?
    ConfirmQuit,
    /// The new-run form ([`App::form`]).
    NewRun,
    /// Typing a search ([`App::search`]).
    Search,
    /// Typing the Sessions filter ([`App::filter`]).
    Filter,
    /// The details of the run with this id.
    Details(String),
    /// Containers whose owner is gone ([`App::leftovers`]).
    Leftovers,
    /// Remove the leaked container with this id? (Over the leftovers.)
    ConfirmRemove(String),
}

/// The fields of the new-run form, in Tab order.
pub const FORM_FIELDS: [&str; 4] = ["environment", "working dir", "command", "timeout (s)"];

/// What the new-run form holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRunForm {
    /// Field texts, as [`FORM_FIELDS`].
    pub fields: [String; 4],
    /// The field being edited.
    pub focus: usize,
    /// Why the last submit was refused.
    pub error: Option<String>,
}

/// A run to start, from the form or a re-run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// Environment name.
    pub environment: String,
    /// Working directory.
    pub working_dir: std::path::PathBuf,
    /// Command line.
    pub command: String,
    /// Timeout.
    pub timeout: Option<Duration>,
}

/// What the event loop must do for an action; runs and containers are
/// named by their ids, never by their row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Kill the run with this id.
    Kill(String),
    /// Kill the runs with these ids.
    KillMany(Vec<String>),
    /// Cancel the leftover Slurm job with this id.
    CancelJob(String),
    /// Clean up the run with this id.
    Cleanup(String),
    /// Poll the run with this id.
    Poll(String),
    /// Quit; clean up this process's sessions first when `cleanup`.
    Quit {
        /// Clean up (true) or leave them (false).
        cleanup: bool,
    },
    /// Start the run in [`App::pending_run`].
    Launch,
    /// (Re)load the leaked containers.
    LoadLeftovers,
    /// Kill the leaked container with this id (it stays, stopped).
    KillContainer(String),
    /// Remove the leaked container with this id.
    RemoveContainer(String),
    /// Capture the mouse (true) or release it.
    Mouse(bool),
    /// Clear the terminal and draw again.
    Redraw,
}

/// An environment as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRow {
    /// Its name.
    pub name: String,
    /// Its runtime type.
    pub kind: String,
    /// `None` when it can run here; else why not.
    pub problem: Option<String>,
    /// Its check (daemon, cluster) has not answered yet.
    pub checking: bool,
}

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
    /// Another process writes it right now.
    Live,
    /// Its writer died before it ended.
    Interrupted,
    /// Known from the store, no command recorded.
    Empty,
}

impl SessionState {
    /// Still running somewhere.
    pub fn is_running(self) -> bool {
        matches!(self, Self::Setup | Self::Running | Self::Live)
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
            Self::Live => "live".into(),
            Self::Interrupted => "interrupted".into(),
            Self::Empty => "empty".into(),
        }
    }
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
    /// Present for sessions this process runs.
    pub supervisor: Option<Supervisor>,
    /// Its run log, if it has one.
    pub log: Option<std::path::PathBuf>,
    /// The log's output is in the buffers (stored sessions load on view).
    pub loaded: bool,
    /// Follows the log of a run another process is writing.
    pub tail: Option<Tail>,
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
    /// Its name, or its submission in a batch, from its labels.
    pub name: Option<String>,
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
        supervisor: Option<Supervisor>,
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
            supervisor,
            log: None,
            loaded: true,
            tail: None,
            last_process: None,
            owner: None,
            kind: None,
            slurm_job: None,
            summary: None,
            last_output: None,
            working_dir: None,
            timeout: None,
            name: None,
        }
    }

    /// A session known from the store.
    pub fn stored(run: &RunSummary) -> Self {
        let exit = run.outcome.as_ref().map(|o| o.exit_code);
        let state = match (run.state, run.status, exit) {
            (RunState::Running | RunState::Idle, _, _) => SessionState::Live,
            (RunState::Interrupted, _, _) => SessionState::Interrupted,
            (_, Some(EndStatus::TimedOut), _) => SessionState::TimedOut,
            (_, Some(EndStatus::Killed), _) => SessionState::Killed,
            (_, Some(EndStatus::SetupFailed), code) => {
                SessionState::SetupFailed(code.unwrap_or(-1))
            }
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
            supervisor: None,
            log: Some(run.path.clone()),
            loaded: false,
            tail: None,
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
            name: [crate::batch::labels::NAME, crate::batch::labels::SUBMISSION]
                .iter()
                .find_map(|key| run.labels.get(*key).cloned()),
        }
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

    fn since_start(&self) -> Duration {
        self.started.map(|s| s.elapsed()).unwrap_or_default()
    }

    /// For a run another process writes: reads what its log gained since
    /// the last call, and notices when it ended or its writer died.
    pub fn follow(&mut self) {
        let Some(path) = self.log.clone() else { return };
        // Output after the first poll is new: the run is not quiet.
        let following = self.tail.is_some();
        if self.tail.is_none() {
            self.stdout = OutputBuffer::new(PANE_LINES);
            self.stderr = OutputBuffer::new(PANE_LINES);
            self.loaded = true;
            if let Ok(reader) = runlog::open(&path) {
                self.owner = Some(reader.header.owner);
                self.kind = Some(reader.header.environment.kind);
                self.slurm_job = reader.header.slurm_job.map(|job| job.job_id);
            }
            self.tail = Some(Tail::new(&path));
        }
        let Some(tail) = &mut self.tail else { return };
        let records = tail.poll().unwrap_or_default();
        if following && records.iter().any(|r| matches!(r.body, Body::Out { .. })) {
            self.last_output = Some(Instant::now());
        }
        // Of what a poll brings (all of a big log, the first time), only
        // the end of each stream is read: the panes keep their last lines.
        let mut ends = [0u64; 2];
        for record in &records {
            if let Body::Out {
                s,
                o: Some(o),
                n: Some(n),
                ..
            } = &record.body
            {
                ends[s.index()] = ends[s.index()].max(o.saturating_add(*n));
            }
        }
        let mut ended = false;
        for record in records {
            self.elapsed = Duration::from_micros(record.time_us());
            match &record.body {
                Body::Out { s, o, n, .. } => {
                    if let (Some(o), Some(n)) = (o, n)
                        && o.saturating_add(*n).saturating_add(LOAD_BYTES) <= ends[s.index()]
                    {
                        continue;
                    }
                    let bytes = tail.bytes(&record);
                    let at = Duration::from_micros(record.t);
                    match s {
                        StreamTag::Out => self.stdout.push(&bytes, at),
                        StreamTag::Err => self.stderr.push(&bytes, at),
                    }
                }
                Body::Proc {
                    pid,
                    pgid,
                    start,
                    init,
                    init_start,
                } => {
                    self.last_process = Some(Process {
                        pid: *pid,
                        pgid: *pgid,
                        start: *start,
                        init: init.zip(*init_start),
                    })
                }
                Body::End { status, exit, .. } => {
                    ended = true;
                    self.state = match status {
                        EndStatus::TimedOut => SessionState::TimedOut,
                        EndStatus::Killed => SessionState::Killed,
                        EndStatus::SetupFailed => SessionState::SetupFailed(exit.unwrap_or(-1)),
                        EndStatus::Exited => SessionState::Exited(exit.unwrap_or(-1)),
                        EndStatus::Empty => SessionState::Empty,
                    };
                }
                _ => {}
            }
        }
        if ended {
            self.tail = None;
        } else if !self.owner.as_ref().is_some_and(Owner::is_alive) {
            self.state = SessionState::Interrupted;
            self.tail = None;
        }
    }

    /// Reads a stored session's output from its log (once). Returns the
    /// reader's warnings.
    pub fn load(&mut self) -> Vec<String> {
        if self.loaded {
            return Vec::new();
        }
        self.loaded = true;
        let Some(path) = self.log.clone() else {
            return Vec::new();
        };
        let mut reader = match runlog::open(&path) {
            Ok(reader) => reader,
            Err(e) => return vec![e.to_string()],
        };
        // The ends of the streams, not the whole: the panes keep their last
        // lines anyway.
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
                    StreamTag::Out => self.stdout.push(&bytes, at),
                    StreamTag::Err => self.stderr.push(&bytes, at),
                }
            }
        }
        reader.warnings
    }
}

/// Bytes of each stream a stored session loads into its panes: the end.
const LOAD_BYTES: u64 = 4 << 20;

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

/// Output a replay holds at most; a larger log replays its first part.
pub const REPLAY_BYTES: usize = 64 << 20;

/// A finished run played back in the output panes with its timing.
#[derive(Debug)]
pub struct Replay {
    /// The run being replayed, by id.
    pub session: String,
    /// Its output, in order: when, which stream, the bytes.
    chunks: Vec<(Duration, StreamKind, Vec<u8>)>,
    /// How many chunks are in the panes.
    shown: usize,
    /// Where the replay is.
    pub position: Duration,
    /// The time of the last chunk.
    pub duration: Duration,
    /// Speed factor.
    pub speed: f64,
    /// Paused.
    pub paused: bool,
    /// The log held more than [`REPLAY_BYTES`].
    pub cut: bool,
}

impl Replay {
    /// Reads the output of the log at `path`.
    pub fn load(session: String, path: &std::path::Path) -> Result<Self, String> {
        let mut reader = runlog::open(path).map_err(|e| e.to_string())?;
        let mut chunks = Vec::new();
        let (mut bytes, mut cut) = (0, false);
        while let Some(record) = reader.next() {
            if let Body::Out { s, .. } = &record.body {
                let t = &record.t;
                let data = reader.bytes(&record);
                bytes += data.len();
                if bytes > REPLAY_BYTES {
                    cut = true;
                    break;
                }
                let stream = match s {
                    StreamTag::Out => StreamKind::Stdout,
                    StreamTag::Err => StreamKind::Stderr,
                };
                chunks.push((Duration::from_micros(*t), stream, data));
            }
        }
        let duration = chunks.last().map_or(Duration::ZERO, |c| c.0);
        Ok(Self {
            session,
            chunks,
            shown: 0,
            position: Duration::ZERO,
            duration,
            speed: 1.0,
            paused: false,
            cut,
        })
    }

    /// Moves the replay to `position` and updates the session's panes.
    fn seek(&mut self, session: &mut Session, position: Duration) {
        let position = position.min(self.duration);
        if position < self.position {
            session.stdout = OutputBuffer::new(PANE_LINES);
            session.stderr = OutputBuffer::new(PANE_LINES);
            self.shown = 0;
        }
        self.position = position;
        while let Some((at, stream, data)) = self.chunks.get(self.shown) {
            if *at > position {
                break;
            }
            match stream {
                StreamKind::Stdout => session.stdout.push(data, *at),
                StreamKind::Stderr => session.stderr.push(data, *at),
            }
            self.shown += 1;
        }
    }

    /// True when it reached the end.
    pub fn finished(&self) -> bool {
        self.position >= self.duration
    }
}

/// Everything the TUI shows.
#[derive(Debug)]
pub struct App {
    /// The environments.
    pub environments: Vec<EnvironmentRow>,
    /// Sessions: this process's first, newest first, then the store's.
    pub sessions: Vec<Session>,
    /// Selected environment.
    pub selected_environment: usize,
    /// Selected session.
    pub selected_session: usize,
    /// The focused pane.
    pub focus: Focus,
    /// The output layout.
    pub layout: Layout,
    /// The open dialog.
    pub modal: Modal,
    /// Keep the output views at the bottom.
    pub follow: bool,
    /// Wrap long lines.
    pub wrap: bool,
    /// Prefix lines with their time.
    pub timestamps: bool,
    /// Lines scrolled up from the bottom, per output pane (stdout, stderr).
    pub scroll: [usize; 2],
    /// The last message for the status bar.
    pub message: String,
    /// Something changed since the last frame.
    pub dirty: bool,
    /// The new-run form, while it is open.
    pub form: NewRunForm,
    /// The run [`Effect::Launch`] starts.
    pub pending_run: Option<RunRequest>,
    /// Runs this dashboard is starting (their tasks have not reported yet).
    pub launching: std::collections::HashSet<String>,
    /// Which sessions the Sessions pane shows.
    pub filter: SessionFilter,
    /// The focused pane has the whole screen (`z`).
    pub zoom: bool,
    /// The store holds a run too new to list yet (see `refresh_store`).
    pub store_unsettled: bool,
    /// Runs marked with Space, by id, for one kill of them all.
    pub marked: std::collections::BTreeSet<String>,
    /// The working dir the form starts with.
    pub default_dir: String,
    /// The search in the output panes; empty when none.
    pub search: String,
    /// Leaked containers, once loaded; the error when they could not be.
    pub leftovers: Result<Vec<ManagedContainer>, String>,
    /// subrt's Slurm jobs whose owner is gone, listed below the containers.
    pub leftover_jobs: Vec<crate::runtime::slurm::ManagedJob>,
    /// Selected leaked container.
    pub selected_leftover: usize,
    /// The replay in progress.
    pub replay: Option<Replay>,
    /// The mouse is captured (clicks and the wheel go to the app).
    pub mouse: bool,
    /// Run ids at or below this one are not picked up from the store (the
    /// history listed at start was cut there); empty: no floor.
    pub history_floor: String,
    /// Logs that could not be summarised; not tried again.
    unreadable: std::collections::HashSet<String>,
}

impl App {
    /// An app showing `environments` and `sessions`.
    pub fn new(environments: Vec<EnvironmentRow>, sessions: Vec<Session>) -> Self {
        Self {
            environments,
            sessions,
            selected_environment: 0,
            selected_session: 0,
            focus: Focus::Sessions,
            layout: Layout::SideBySide,
            modal: Modal::None,
            follow: true,
            wrap: false,
            timestamps: false,
            scroll: [0, 0],
            message: "? for keys".into(),
            dirty: true,
            form: NewRunForm::default(),
            pending_run: None,
            launching: std::collections::HashSet::new(),
            filter: SessionFilter::default(),
            zoom: false,
            marked: std::collections::BTreeSet::new(),
            store_unsettled: false,
            default_dir: ".".into(),
            search: String::new(),
            leftovers: Ok(Vec::new()),
            leftover_jobs: Vec::new(),
            selected_leftover: 0,
            replay: None,
            mouse: true,
            history_floor: String::new(),
            unreadable: std::collections::HashSet::new(),
        }
    }

    /// A click at (`x`, `y`) on a screen of size `area`: focus the pane,
    /// and in a list select the row clicked.
    pub fn click(&mut self, area: ratatui::layout::Rect, x: u16, y: u16) {
        let Some((focus, row)) = super::panes::hit(area, self, x, y) else {
            return;
        };
        self.focus = focus;
        self.dirty = true;
        let visible =
            |pane_height: u16, header: u16| pane_height.saturating_sub(2 + header) as usize;
        let areas = super::panes::areas(area, self);
        match focus {
            Focus::Environments => {
                let offset = self
                    .selected_environment
                    .saturating_sub(visible(areas.environments.height, 0).saturating_sub(1));
                let index = offset + row as usize;
                if index < self.environments.len() {
                    self.selected_environment = index;
                }
            }
            Focus::Sessions if row > 0 => {
                // Row 0 is the header; the table scrolls to keep the selection in view.
                let rows = self.visible_sessions();
                let at = rows
                    .iter()
                    .position(|&i| i == self.selected_session)
                    .unwrap_or(0);
                let offset = at.saturating_sub(visible(areas.sessions.height, 1).saturating_sub(1));
                if let Some(&index) = rows.get(offset + row as usize - 1) {
                    self.select_session(index);
                }
            }
            _ => {}
        }
    }

    /// The wheel over (`x`, `y`): scroll the pane under it by three lines.
    pub fn wheel(&mut self, area: ratatui::layout::Rect, x: u16, y: u16, up: bool) {
        if let Some((focus, _)) = super::panes::hit(area, self, x, y) {
            self.focus = focus;
            for _ in 0..3 {
                self.update(if up { Action::Up } else { Action::Down });
            }
        }
    }

    /// The id of leaked container `index` of the list.
    fn leftover_id(&self, index: Option<usize>) -> Option<String> {
        let list = self.leftovers.as_ref().ok()?;
        Some(list.get(index?)?.id.clone())
    }

    /// The session with run id `run_id`.
    pub fn session(&self, run_id: &str) -> Option<&Session> {
        self.sessions.iter().find(|s| s.run_id == run_id)
    }

    /// Starts replaying session `index` from its log.
    pub fn start_replay(&mut self, index: usize) {
        let Some(session) = self.sessions.get_mut(index) else {
            return;
        };
        let Some(path) = session.log.clone() else {
            return self.say("this session has no run log to replay");
        };
        match Replay::load(session.run_id.clone(), &path) {
            Ok(mut replay) => {
                session.stdout = OutputBuffer::new(PANE_LINES);
                session.stderr = OutputBuffer::new(PANE_LINES);
                session.loaded = true;
                replay.seek(session, Duration::ZERO);
                if replay.cut {
                    self.message =
                        format!("replaying the first {} MiB of output", REPLAY_BYTES >> 20);
                }
                self.follow = true;
                self.scroll = [0, 0];
                self.replay = Some(replay);
            }
            Err(e) => self.say(format!("cannot replay: {e}")),
        }
        self.dirty = true;
    }

    /// Advances a playing replay by `elapsed` of wall time.
    pub fn tick_replay(&mut self, elapsed: Duration) {
        let Some(replay) = &mut self.replay else {
            return;
        };
        if replay.paused || replay.finished() {
            return;
        }
        let Some(session) = self
            .sessions
            .iter_mut()
            .find(|s| s.run_id == replay.session)
        else {
            return;
        };
        let to = replay.position + elapsed.mul_f64(replay.speed);
        replay.seek(session, to);
        self.dirty = true;
    }

    fn replay_action(&mut self, action: Action) -> bool {
        let Some(replay) = &mut self.replay else {
            return false;
        };
        let Some(session) = self
            .sessions
            .iter_mut()
            .find(|s| s.run_id == replay.session)
        else {
            return false;
        };
        let step = Duration::from_secs(5);
        match action {
            Action::Pause => replay.paused = !replay.paused,
            Action::Faster => replay.speed = (replay.speed * 2.0).min(64.0),
            Action::Slower => replay.speed = (replay.speed / 2.0).max(1.0 / 16.0),
            Action::SeekForward => replay.seek(session, replay.position + step),
            Action::SeekBack => replay.seek(session, replay.position.saturating_sub(step)),
            Action::Top => replay.seek(session, Duration::ZERO),
            Action::Bottom => replay.seek(session, replay.duration),
            Action::Close => {
                // Back to the whole output.
                self.replay = None;
                session.loaded = false;
                session.stdout = OutputBuffer::new(PANE_LINES);
                session.stderr = OutputBuffer::new(PANE_LINES);
                session.load();
            }
            _ => return false,
        }
        self.dirty = true;
        true
    }

    /// The output pane searches and scrolls apply to: stdout (0) or stderr (1).
    fn output_pane(&self) -> usize {
        usize::from(self.focus == Focus::Stderr)
    }

    /// Lines of the focused output that contain the search, oldest first.
    pub fn matches(&self) -> Vec<usize> {
        let Some(session) = self.selected() else {
            return Vec::new();
        };
        if self.search.is_empty() {
            return Vec::new();
        }
        let buffer = if self.output_pane() == 1 {
            &session.stderr
        } else {
            &session.stdout
        };
        buffer
            .lines()
            .enumerate()
            .filter(|(_, line)| !super::sanitize::find_all(&line.text(), &self.search).is_empty())
            .map(|(i, _)| i)
            .collect()
    }

    /// Scrolls the focused output to the next match above (`older`) or below
    /// the one in view.
    /// When the searched pane no longer holds the whole output, says so:
    /// the search saw only what the pane keeps.
    fn partial_note(&self) -> String {
        let pane = self.output_pane();
        let dropped = self.selected().map_or(0, |s| {
            if pane == 1 {
                s.stderr.dropped()
            } else {
                s.stdout.dropped()
            }
        });
        if dropped > 0 {
            format!(
                " in the last {PANE_LINES} lines ({dropped} older ones are in the run log: subrt export)"
            )
        } else {
            String::new()
        }
    }

    fn jump(&mut self, older: bool) {
        let matches = self.matches();
        let pane = self.output_pane();
        let total = self.selected().map_or(0, |s| {
            if pane == 1 {
                s.stderr.len()
            } else {
                s.stdout.len()
            }
        });
        // The line at the bottom of the view, counted from the top.
        let bottom = total.saturating_sub(self.scroll[pane] + 1);
        let target = if older {
            matches
                .iter()
                .rev()
                .find(|&&m| m < bottom)
                .or(matches.last())
        } else {
            matches.iter().find(|&&m| m > bottom).or(matches.first())
        };
        match target {
            Some(&line) => {
                self.scroll[pane] = total - 1 - line;
                self.follow = self.scroll[pane] == 0;
                let at = matches.iter().position(|&m| m == line).unwrap_or(0) + 1;
                let note = self.partial_note();
                self.say(format!(
                    "/{}: match {at} of {}{note}",
                    self.search,
                    matches.len()
                ));
            }
            None => {
                let note = self.partial_note();
                self.say(format!("/{}: no match{note}", self.search));
            }
        }
    }

    fn open_form(&mut self, environment: Option<String>, command: String) {
        let environment = environment
            .or_else(|| {
                self.environments
                    .get(self.selected_environment)
                    .map(|e| e.name.clone())
            })
            .unwrap_or_default();
        self.form = NewRunForm {
            fields: [
                environment,
                self.default_dir.clone(),
                command,
                String::new(),
            ],
            focus: 2,
            error: None,
        };
        self.modal = Modal::NewRun;
    }

    /// Checks the form; on success the run waits in `pending_run`.
    fn submit_form(&mut self) -> Option<Effect> {
        let [environment, dir, command, timeout] = &self.form.fields;
        let error = if !self.environments.iter().any(|e| &e.name == environment) {
            Some(format!(
                "no environment `{environment}` (configured: {})",
                self.environments
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else if command.trim().is_empty() {
            Some("the command is empty".to_owned())
        } else if !std::path::Path::new(dir).is_dir() {
            Some(format!("working dir `{dir}` is not a directory"))
        } else {
            None
        };
        let timeout = match timeout.trim() {
            "" => None,
            text => match text
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
            {
                Some(t) => Some(t),
                None => {
                    self.form.error = Some(format!("timeout `{text}` is not a number of seconds"));
                    return None;
                }
            },
        };
        if let Some(error) = error {
            self.form.error = Some(error);
            return None;
        }
        self.pending_run = Some(RunRequest {
            environment: environment.clone(),
            working_dir: dir.into(),
            command: command.clone(),
            timeout,
        });
        self.modal = Modal::None;
        Some(Effect::Launch)
    }

    /// The selected session.
    pub fn selected(&self) -> Option<&Session> {
        self.sessions.get(self.selected_session)
    }

    /// Sessions this process runs that have not ended.
    pub fn running_own(&self) -> usize {
        self.launching.len()
            + self
                .sessions
                .iter()
                .filter(|s| s.supervisor.is_some() && s.state.is_running())
                .count()
    }

    /// The indices of the sessions the filter shows, in list order.
    pub fn visible_sessions(&self) -> Vec<usize> {
        (0..self.sessions.len())
            .filter(|&i| self.filter.matches(&self.sessions[i]))
            .collect()
    }

    /// After the filter changed: a selected run it hides gives way to the
    /// first one it shows.
    fn refilter(&mut self) {
        let rows = self.visible_sessions();
        if !rows.contains(&self.selected_session)
            && let Some(&first) = rows.first()
        {
            self.select_session(first);
        }
    }

    /// Selects the next (or previous) failed or timed-out run the filter
    /// shows, from the selection on, around the end.
    fn jump_to_failure(&mut self, back: bool) {
        let rows = self.visible_sessions();
        let at = rows.iter().position(|&i| i == self.selected_session);
        let n = rows.len();
        let found = (1..=n).find_map(|step| {
            let index = match (at, back) {
                (Some(at), false) => (at + step) % n,
                (Some(at), true) => (at + n - step % n) % n,
                (None, _) => step - 1,
            };
            let row = rows[index];
            filter::is_failure(self.sessions[row].state).then_some(row)
        });
        match found {
            Some(row) => self.select_session(row),
            None => self.say("no failed or timed-out run among those shown"),
        }
    }

    /// Shows `message` in the status bar.
    pub fn say(&mut self, message: impl Into<String>) {
        self.message = message.into();
        self.dirty = true;
    }

    /// Shows the selected session's output (what selecting it does): for
    /// the run selected when the dashboard opens.
    pub fn show_selected(&mut self) {
        self.select_session(self.selected_session);
    }

    fn select_session(&mut self, index: usize) {
        if self.replay.is_some() {
            self.replay_action(Action::Close);
        }
        self.selected_session = index.min(self.sessions.len().saturating_sub(1));
        self.scroll = [0, 0];
        let warnings = match self.sessions.get_mut(self.selected_session) {
            Some(session) => session.load(),
            None => Vec::new(),
        };
        if let Some(warning) = warnings.first() {
            self.message = format!("warning: {warning}");
        }
    }

    /// Applies `action`; returns what the event loop must do, if anything.
    pub fn update(&mut self, action: Action) -> Option<Effect> {
        self.dirty = true;
        // A selected run the filter hides is not acted on.
        let selected = (self.selected_session < self.sessions.len()
            && self.filter.matches(&self.sessions[self.selected_session]))
        .then_some(self.selected_session);
        let output_index = match self.focus {
            Focus::Stderr => Some(1),
            Focus::Stdout => Some(0),
            _ => None,
        };
        if self.modal == Modal::Leftovers {
            let containers = self.leftovers.as_ref().map_or(0, Vec::len);
            let count = containers + self.leftover_jobs.len();
            let selected = (count > 0).then_some(self.selected_leftover.min(count - 1));
            // A job (below the containers): k and x cancel it, by its id.
            if let Some(job) = selected
                .and_then(|i| i.checked_sub(containers))
                .and_then(|i| self.leftover_jobs.get(i))
                && matches!(action, Action::Kill | Action::Remove)
            {
                return Some(Effect::CancelJob(job.job_id.clone()));
            }
            match action {
                Action::Close => self.modal = Modal::None,
                Action::Down => {
                    self.selected_leftover =
                        (self.selected_leftover + 1).min(count.saturating_sub(1))
                }
                Action::Up => self.selected_leftover = self.selected_leftover.saturating_sub(1),
                Action::Refresh => return Some(Effect::LoadLeftovers),
                Action::Kill => return self.leftover_id(selected).map(Effect::KillContainer),
                Action::Remove => {
                    if let Some(id) = self.leftover_id(selected) {
                        self.modal = Modal::ConfirmRemove(id);
                    }
                }
                _ => {}
            }
            return None;
        }
        if let Modal::ConfirmRemove(id) = &self.modal {
            let id = id.clone();
            match action {
                Action::Yes => {
                    self.modal = Modal::Leftovers;
                    return Some(Effect::RemoveContainer(id));
                }
                Action::No | Action::Close => self.modal = Modal::Leftovers,
                _ => {}
            }
            return None;
        }
        if self.modal == Modal::Filter {
            match action {
                Action::Type(c) => self.filter.text.push(c),
                Action::Erase => {
                    self.filter.text.pop();
                }
                Action::Yes => self.modal = Modal::None,
                Action::Close => {
                    self.modal = Modal::None;
                    self.filter.text.clear();
                }
                _ => return None,
            }
            self.refilter();
            return None;
        }
        if self.modal == Modal::Search {
            match action {
                Action::Type(c) => self.search.push(c),
                Action::Erase => {
                    self.search.pop();
                }
                Action::Yes => {
                    self.modal = Modal::None;
                    self.jump(true);
                }
                Action::Close => {
                    self.modal = Modal::None;
                    self.search.clear();
                }
                _ => {}
            }
            return None;
        }
        let in_output = matches!(self.focus, Focus::Stdout | Focus::Stderr);
        let action = match action {
            // Like less: n and N move between matches while a search is on.
            Action::NewRun if in_output && !self.search.is_empty() => Action::NextMatch,
            other => other,
        };
        if self.modal == Modal::None && self.replay_action(action) {
            return None;
        }
        if self.modal == Modal::NewRun {
            let form = &mut self.form;
            match action {
                Action::Type(c) => form.fields[form.focus].push(c),
                Action::Erase => {
                    form.fields[form.focus].pop();
                }
                Action::NextField => form.focus = (form.focus + 1) % FORM_FIELDS.len(),
                Action::PrevField => {
                    form.focus = (form.focus + FORM_FIELDS.len() - 1) % FORM_FIELDS.len()
                }
                Action::Yes => return self.submit_form(),
                Action::Close | Action::Quit => self.modal = Modal::None,
                _ => {}
            }
            return None;
        }
        match action {
            Action::Search if self.focus == Focus::Sessions => self.modal = Modal::Filter,
            Action::Zoom => self.zoom = !self.zoom,
            // Space, without a replay: mark the selected run, go to the next.
            Action::Pause => match selected {
                Some(i) => {
                    let id = self.sessions[i].run_id.clone();
                    if !self.marked.remove(&id) {
                        self.marked.insert(id);
                    }
                    let marked = self.marked.len();
                    self.say(format!(
                        "{marked} marked: k kills them all (asks), Space unmarks"
                    ));
                    return self.update(Action::Down);
                }
                None => self.say("no session selected"),
            },
            Action::Details => match selected {
                Some(i) => self.modal = Modal::Details(self.sessions[i].run_id.clone()),
                None => self.say("no session selected"),
            },
            Action::ShowView(view) => {
                self.filter.toggle(view);
                self.refilter();
            }
            Action::NextFailure | Action::PrevFailure => {
                self.jump_to_failure(action == Action::PrevFailure)
            }
            Action::Search if in_output => {
                self.search.clear();
                self.modal = Modal::Search;
            }
            Action::Search => self.say("search works in an output pane: Tab to one first"),
            Action::NextMatch => self.jump(false),
            Action::PrevMatch => self.jump(true),
            Action::Close if !self.search.is_empty() => self.search.clear(),
            Action::NewRun => self.open_form(None, String::new()),
            Action::Leftovers => {
                self.modal = Modal::Leftovers;
                return Some(Effect::LoadLeftovers);
            }
            Action::Remove | Action::Refresh => {}
            Action::ToggleMouse => {
                self.mouse = !self.mouse;
                self.say(if self.mouse {
                    "mouse on: click selects, the wheel scrolls (m releases it)"
                } else {
                    "mouse released: select text with it; m takes it back"
                });
                return Some(Effect::Mouse(self.mouse));
            }
            Action::Open if self.focus == Focus::Environments => {
                self.open_form(None, String::new())
            }
            Action::Open => match selected {
                Some(i) if !self.sessions[i].state.is_running() => self.start_replay(i),
                Some(_) => self.say("it is still running: its output is live already"),
                None => {}
            },
            Action::Faster | Action::Slower | Action::SeekBack | Action::SeekForward => {}
            Action::Rerun => match selected {
                Some(i) => {
                    // The run's own place and limit, not the dashboard's.
                    let session = &self.sessions[i];
                    self.pending_run = Some(RunRequest {
                        environment: session.environment.clone(),
                        working_dir: session
                            .working_dir
                            .clone()
                            .unwrap_or_else(|| self.default_dir.clone().into()),
                        command: session.command.clone(),
                        timeout: session.timeout,
                    });
                    return Some(Effect::Launch);
                }
                None => self.say("no session selected"),
            },
            Action::Type(_) | Action::Erase | Action::NextField | Action::PrevField => {}
            Action::Quit if self.running_own() > 0 => self.modal = Modal::ConfirmQuit,
            Action::Quit => return Some(Effect::Quit { cleanup: true }),
            Action::Help => self.modal = Modal::Help,
            Action::Close | Action::No => self.modal = Modal::None,
            Action::FocusNext | Action::FocusPrev => {
                let mut order = vec![Focus::Environments, Focus::Sessions, Focus::Stdout];
                if self.layout != Layout::Merged {
                    order.push(Focus::Stderr);
                }
                let at = order.iter().position(|f| *f == self.focus).unwrap_or(0);
                let step = if action == Action::FocusNext {
                    1
                } else {
                    order.len() - 1
                };
                self.focus = order[(at + step) % order.len()];
            }
            Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom => {
                let delta: isize = match action {
                    Action::Up => -1,
                    Action::Down => 1,
                    Action::PageUp => -20,
                    Action::PageDown => 20,
                    Action::Top => isize::MIN / 2,
                    _ => isize::MAX / 2,
                };
                match (self.focus, output_index) {
                    (Focus::Environments, _) => {
                        let last = self.environments.len().saturating_sub(1) as isize;
                        self.selected_environment =
                            (self.selected_environment as isize + delta).clamp(0, last) as usize;
                    }
                    (Focus::Sessions, _) => {
                        // Among the rows the filter shows.
                        let rows = self.visible_sessions();
                        if !rows.is_empty() {
                            let at = rows
                                .iter()
                                .position(|&i| i >= self.selected_session)
                                .unwrap_or(rows.len() - 1);
                            let last = rows.len() as isize - 1;
                            let to = (at as isize + delta).clamp(0, last) as usize;
                            self.select_session(rows[to]);
                        }
                    }
                    (_, Some(i)) => {
                        // Scrolling is counted from the bottom; up means
                        // more, and never more than the lines there are.
                        let lines = self.selected().map_or(0, |s| match (self.layout, i) {
                            (Layout::Merged, _) => s.stdout.len() + s.stderr.len(),
                            (_, 0) => s.stdout.len(),
                            _ => s.stderr.len(),
                        });
                        let top = lines.saturating_sub(1) as isize;
                        let scroll =
                            (self.scroll[i] as isize - delta).clamp(0, top.max(0)) as usize;
                        self.scroll[i] = scroll;
                        self.follow = scroll == 0;
                    }
                    _ => {}
                }
            }
            Action::Kill if !self.marked.is_empty() => {
                // Only those still listed and running; the question names them.
                let ids: Vec<String> = self
                    .sessions
                    .iter()
                    .filter(|s| self.marked.contains(&s.run_id) && s.state.is_running())
                    .map(|s| s.run_id.clone())
                    .collect();
                if ids.is_empty() {
                    self.marked.clear();
                    self.say("none of the marked runs is still running; marks cleared");
                } else {
                    self.modal = Modal::ConfirmKillMarked(ids);
                }
            }
            Action::Kill => match selected {
                Some(i) if self.sessions[i].state.is_running() => {
                    self.modal = Modal::ConfirmKill(self.sessions[i].run_id.clone())
                }
                Some(_) => self.say("the selected session is not running"),
                None => self.say("no session selected"),
            },
            Action::Cleanup => match selected {
                Some(i) if self.sessions[i].supervisor.is_none() => {
                    self.say("only sessions started here can be cleaned up")
                }
                Some(i) if self.sessions[i].state.is_running() => {
                    self.modal = Modal::ConfirmCleanup(self.sessions[i].run_id.clone())
                }
                Some(i) => return Some(Effect::Cleanup(self.sessions[i].run_id.clone())),
                None => self.say("no session selected"),
            },
            Action::Poll => match selected {
                Some(i) if self.sessions[i].supervisor.is_some() => {
                    return Some(Effect::Poll(self.sessions[i].run_id.clone()));
                }
                Some(_) => {
                    self.say("poll() asks a runtime this process owns; this run is from the store")
                }
                None => self.say("no session selected"),
            },
            Action::ToggleFollow => {
                self.follow = !self.follow;
                if self.follow {
                    self.scroll = [0, 0];
                }
            }
            Action::ToggleWrap => self.wrap = !self.wrap,
            Action::ToggleTimestamps => self.timestamps = !self.timestamps,
            Action::CycleLayout => {
                self.layout = match self.layout {
                    Layout::SideBySide => Layout::Stacked,
                    Layout::Stacked => Layout::Merged,
                    Layout::Merged => Layout::SideBySide,
                };
                if self.layout == Layout::Merged && self.focus == Focus::Stderr {
                    self.focus = Focus::Stdout;
                }
            }
            Action::Yes => {
                let modal = std::mem::replace(&mut self.modal, Modal::None);
                match modal {
                    Modal::ConfirmKill(id) => return Some(Effect::Kill(id)),
                    Modal::ConfirmKillMarked(ids) => {
                        self.marked.clear();
                        return Some(Effect::KillMany(ids));
                    }
                    Modal::ConfirmCleanup(id) => return Some(Effect::Cleanup(id)),
                    Modal::ConfirmQuit => return Some(Effect::Quit { cleanup: true }),
                    Modal::None
                    | Modal::Help
                    | Modal::NewRun
                    | Modal::Search
                    | Modal::Filter
                    | Modal::Details(_)
                    | Modal::Leftovers
                    | Modal::ConfirmRemove(_) => {}
                }
            }
            Action::Leave if self.modal == Modal::ConfirmQuit => {
                self.modal = Modal::None;
                return Some(Effect::Quit { cleanup: false });
            }
            Action::Leave => {}
            Action::Redraw => return Some(Effect::Redraw),
        }
        None
    }

    /// Applies an event of session `index`.
    pub fn apply(&mut self, index: usize, event: SessionEvent) {
        let Some(session) = self.sessions.get_mut(index) else {
            return;
        };
        let at = session.since_start();
        match event {
            SessionEvent::CommandStarted { .. } => session.state = SessionState::Running,
            SessionEvent::Failed { error, .. } => {
                session.state = SessionState::Exited(126);
                self.message = format!("{}: {error}", short_id(&session.run_id));
            }
            SessionEvent::Runtime { event, .. } => match event {
                RuntimeEvent::SetupStarted { .. } => session.state = SessionState::Setup,
                RuntimeEvent::ProcessStarted { .. } => {}
                RuntimeEvent::Output(chunk) => {
                    if chunk.phase == crate::runtime::Phase::Command {
                        session.state = SessionState::Running;
                    }
                    session.last_output = Some(Instant::now());
                    match chunk.stream {
                        StreamKind::Stdout => session.stdout.push(&chunk.data, at),
                        StreamKind::Stderr => session.stderr.push(&chunk.data, at),
                    }
                }
                RuntimeEvent::Note(note) => {
                    self.message = format!("{}: {note}", short_id(&session.run_id));
                }
                RuntimeEvent::Finished(result) => {
                    session.elapsed = result.elapsed;
                    session.state = if let Some(failure) = &result.setup_failure {
                        SessionState::SetupFailed(failure.exit_code)
                    } else if result.timed_out {
                        SessionState::TimedOut
                    } else if result.killed {
                        SessionState::Killed
                    } else {
                        SessionState::Exited(result.exit_code)
                    };
                }
            },
        }
        self.dirty = true;
    }
}

impl App {
    /// Picks up runs that appeared in `store` since the last call, and
    /// follows the live ones (runs other processes are writing).
    pub fn refresh_store(&mut self, store: &Store) {
        let Ok((files, _)) = store.entries() else {
            return;
        };
        self.store_unsettled = false;
        let mut known: std::collections::HashSet<String> =
            self.sessions.iter().map(|s| s.run_id.clone()).collect();
        // Newest first, above everything: a new run of another process is
        // seen at once (the selection follows its run, not its row).
        let mut insert_at = 0;
        for path in files {
            let id = path
                .file_name()
                .map(|s| s.to_string_lossy().trim_end_matches(".jsonl").to_owned())
                .unwrap_or_default();
            // Older than what was listed at start, known, or unreadable.
            // Runs this dashboard is starting join the list as its own.
            if id <= self.history_floor
                || self.unreadable.contains(&id)
                || known.contains(&id)
                || self.launching.contains(&id)
            {
                continue;
            }
            let run = match runlog::summarize(&path) {
                // A copy of a known log (its header names a listed run).
                Ok((run, _)) if known.contains(&run.run_id) => None,
                Ok((run, _)) => Some(run),
                Err(_) => None,
            };
            let Some(run) = run else {
                self.unreadable.insert(id);
                continue;
            };
            // Seen the moment it was made (the store's folder is watched):
            // its first command is not in its log yet. Looked at again in a
            // second, listed as it is after a few.
            if run.command.is_none() && started_within(&run.started_at, YOUNG_RUN) {
                self.store_unsettled = true;
                continue;
            }
            let had_sessions = !self.sessions.is_empty();
            known.insert(run.run_id.clone());
            self.sessions.insert(insert_at, Session::stored(&run));
            // Keep the same session selected.
            if had_sessions && self.selected_session >= insert_at {
                self.selected_session += 1;
            }
            insert_at += 1;
            self.dirty = true;
        }
        for session in &mut self.sessions {
            if session.state == SessionState::Live {
                session.follow();
                self.dirty = true;
            }
        }
    }

    /// Whether a run another process writes is being followed (so the
    /// store is looked at each second).
    pub fn follows_live_runs(&self) -> bool {
        self.store_unsettled || self.sessions.iter().any(|s| s.state == SessionState::Live)
    }

    /// Replaces the leaked-container list: those whose owner is gone, and
    /// those kept on purpose (containers of running owners are not leaks).
    pub fn set_leftovers(&mut self, found: Result<Vec<ManagedContainer>, String>) {
        self.leftovers = found.map(|all| {
            all.into_iter()
                .filter(|c| c.verdict != Verdict::OwnerAlive)
                .collect()
        });
        let count = self.leftovers.as_ref().map_or(0, Vec::len) + self.leftover_jobs.len();
        self.selected_leftover = self.selected_leftover.min(count.saturating_sub(1));
        self.dirty = true;
    }
}

/// How long a run without a command yet is not listed.
const YOUNG_RUN: Duration = Duration::from_secs(5);

/// Whether `started_at` (RFC 3339) is less than `age` ago.
fn started_within(started_at: &str, age: Duration) -> bool {
    humantime::parse_rfc3339_weak(started_at)
        .ok()
        .and_then(|at| std::time::SystemTime::now().duration_since(at).ok())
        .is_some_and(|since| since < age)
}

/// How a run id is shown. Whole: the first 10 characters of a ULID are its
/// time, so runs started together share them, and the whole id is what
/// `subrt export` and `replay` take.
pub fn short_id(run_id: &str) -> &str {
    run_id
}
