//! The TUI's state, changed only by [`App::update`] (an [`Action`]) and
//! [`App::apply`] (a session's event). Whatever needs the runtime (kill,
//! cleanup, poll, quit) comes back as an [`Effect`] for the event loop.

use std::path::PathBuf;
use std::time::Instant;

use super::action::Action;
use super::filter::{SessionFilter, Sort};
use super::form::{NewRunForm, RunRequest};
use super::replay::Replay;
use super::session::{Session, SessionState, short_id};
use crate::runtime::leftovers::ManagedContainer;
use crate::runtime::{RuntimeEvent, StreamKind};
use crate::supervisor::SessionEvent;

/// How long a status-bar message shows: long enough to read, not so long
/// that it speaks of another run than the one on screen.
pub const MESSAGE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// Every message of the status bar ([`App::messages`]).
    Messages,
    /// Containers whose owner is gone ([`App::leftovers`]).
    Leftovers,
    /// Remove the leaked container with this id? (Over the leftovers.)
    ConfirmRemove(String),
    /// Cancel the leftover Slurm job with this id? (Over the leftovers.)
    ConfirmCancelJob(String),
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
    /// Read the log of the run with this id for a replay
    /// ([`App::replay_loaded`]).
    LoadReplay {
        /// The run.
        run_id: String,
        /// Its log.
        path: PathBuf,
    },
    /// Show one stream of a run's log in `$PAGER`.
    Pager {
        /// The run.
        run_id: String,
        /// Its log.
        path: PathBuf,
        /// Which stream.
        stream: StreamKind,
    },
    /// Save both streams of a run's log, byte for byte.
    Save {
        /// The run.
        run_id: String,
        /// Its log.
        path: PathBuf,
    },
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

/// Status-bar messages [`App::messages`] keeps.
pub const MESSAGES_KEPT: usize = 200;

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
    /// The last message for the status bar (see [`App::message`]).
    pub message: String,
    /// When it stops showing.
    pub message_until: Option<Instant>,
    /// Every message shown, newest last, at most [`MESSAGES_KEPT`]: the
    /// status bar cuts long ones, `M` shows them whole.
    pub messages: std::collections::VecDeque<String>,
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
    /// A log to read into the selected session's panes (in a task, then
    /// [`App::output_loaded`]): run id and path.
    pub load_request: Option<(String, PathBuf)>,
    /// The screen's size at the last frame (panes it has no room for are
    /// not focused).
    pub screen: std::cell::Cell<ratatui::layout::Rect>,
    /// The store's runs were listed.
    pub store_listed: bool,
    /// The speed the next replay starts at.
    pub replay_speed: f64,
    /// Rows the help is scrolled down.
    pub help_scroll: usize,
    /// The help's rows and how many of them the last frame showed.
    pub help_rows: std::cell::Cell<(usize, usize)>,
    /// How the Sessions pane orders runs.
    pub sort: Sort,
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
            message_until: None,
            messages: std::collections::VecDeque::new(),
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
            load_request: None,
            store_listed: true,
            screen: std::cell::Cell::new(ratatui::layout::Rect::new(0, 0, 120, 40)),
            replay_speed: 1.0,
            help_scroll: 0,
            help_rows: std::cell::Cell::new((0, 0)),
            sort: Sort::default(),
        }
    }

    /// A click at (`x`, `y`) on a screen of size `area`: focus the pane,
    /// and in a list select the row clicked.
    pub fn click(&mut self, area: ratatui::layout::Rect, x: u16, y: u16) {
        let Some((focus, row)) = crate::tui::panes::hit(area, self, x, y) else {
            return;
        };
        self.focus = focus;
        self.dirty = true;
        let visible =
            |pane_height: u16, header: u16| pane_height.saturating_sub(2 + header) as usize;
        let areas = crate::tui::panes::areas(area, self);
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
        if let Some((focus, _)) = crate::tui::panes::hit(area, self, x, y) {
            self.focus = focus;
            for _ in 0..3 {
                self.update(if up { Action::Up } else { Action::Down });
            }
        }
    }

    /// The session with run id `run_id`.
    pub fn session(&self, run_id: &str) -> Option<&Session> {
        self.sessions.iter().find(|s| s.run_id == run_id)
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
                .filter(|s| s.supervisor().is_some() && s.state.is_running())
                .count()
    }

    /// A key in the help: it scrolls.
    fn help_key(&mut self, action: Action) {
        let (rows, visible) = self.help_rows.get();
        let last = rows.saturating_sub(visible);
        let page = visible.max(1);
        self.help_scroll = match action {
            Action::Down => self.help_scroll + 1,
            Action::Up => self.help_scroll.saturating_sub(1),
            Action::PageDown => self.help_scroll + page,
            Action::PageUp => self.help_scroll.saturating_sub(page),
            Action::Top => 0,
            Action::Close => {
                self.modal = Modal::None;
                0
            }
            _ => self.help_scroll,
        }
        .min(last);
    }

    /// Shows `message` in the status bar, for [`MESSAGE_FOR`].
    pub fn say(&mut self, message: impl Into<String>) {
        self.message = message.into();
        // Also in the dashboard's log (its messages are what it has to say).
        tracing::info!(target: "subrt::tui", "{}", self.message);
        if self.messages.len() == MESSAGES_KEPT {
            self.messages.pop_front();
        }
        self.messages.push_back(self.message.clone());
        self.message_until = Some(Instant::now() + MESSAGE_FOR);
        self.dirty = true;
    }

    /// The status bar's message, unless it is older than [`MESSAGE_FOR`].
    pub fn message(&self) -> &str {
        match self.message_until {
            Some(until) if Instant::now() >= until => "",
            _ => &self.message,
        }
    }

    /// Shows the selected session's output (what selecting it does): for
    /// the run selected when the dashboard opens.
    pub fn show_selected(&mut self) {
        self.select_session(self.selected_session);
    }

    pub(super) fn select_session(&mut self, index: usize) {
        if self.replay.is_some() {
            self.replay_action(Action::Close);
        }
        self.selected_session = index.min(self.sessions.len().saturating_sub(1));
        self.scroll = [0, 0];
        self.request_output();
    }

    /// Asks for the selected session's output from its log, unless its
    /// panes hold it already.
    pub(super) fn request_output(&mut self) {
        self.load_request = self
            .sessions
            .get(self.selected_session)
            .filter(|s| !s.loaded)
            .and_then(|s| Some((s.run_id.clone(), s.log.clone()?)));
    }

    /// The output [`read_output`](super::session::read_output) read for
    /// run `run_id`.
    pub fn output_loaded(&mut self, run_id: &str, output: super::session::Output) {
        if let Some(warning) = output.warnings.first()
            && self.selected().is_some_and(|s| s.run_id == run_id)
        {
            self.say(format!("warning: {warning}"));
        }
        if let Some(session) = self.sessions.iter_mut().find(|s| s.run_id == run_id) {
            session.take_output(output);
        }
        self.dirty = true;
    }

    /// `v` and `W`: the selected run's whole output, from its log (the
    /// panes keep only its end); the focused pane's stream for the pager.
    fn whole_output(&mut self, action: Action) -> Option<Effect> {
        let session = self.selected()?;
        let Some(path) = session.log.clone() else {
            self.say("this session has no run log");
            return None;
        };
        let run_id = session.run_id.clone();
        Some(match action {
            Action::Pager => Effect::Pager {
                run_id,
                path,
                stream: if self.focus == Focus::Stderr {
                    StreamKind::Stderr
                } else {
                    StreamKind::Stdout
                },
            },
            _ => Effect::Save { run_id, path },
        })
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
        // Dialogs with keys of their own.
        match &self.modal {
            Modal::Leftovers => return self.leftovers_key(action),
            Modal::ConfirmRemove(_) | Modal::ConfirmCancelJob(_) => {
                return self.confirm_remove_key(action);
            }
            Modal::Filter => return self.filter_key(action),
            Modal::Search => return self.search_key(action),
            Modal::NewRun => return self.form_key(action),
            Modal::Help => {
                self.help_key(action);
                return None;
            }
            _ => {}
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
        match action {
            Action::Search if self.focus == Focus::Sessions => self.modal = Modal::Filter,
            Action::Zoom => self.zoom = !self.zoom,
            Action::Sort => self.next_sort(),
            Action::Pager | Action::Save => return self.whole_output(action),
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
            Action::Messages => self.modal = Modal::Messages,
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
                Some(i) if !self.sessions[i].state.is_running() => return self.start_replay(i),
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
                        stdin: session.stdin_file.clone(),
                        timeout: session.timeout,
                    });
                    return Some(Effect::Launch);
                }
                None => self.say("no session selected"),
            },
            Action::Type(_) | Action::Erase | Action::NextField | Action::PrevField => {}
            Action::Quit if self.running_own() > 0 => self.modal = Modal::ConfirmQuit,
            Action::Quit => return Some(Effect::Quit { cleanup: true }),
            Action::Help => {
                self.help_scroll = 0;
                self.modal = Modal::Help;
            }
            Action::Close | Action::No => self.modal = Modal::None,
            Action::FocusNext | Action::FocusPrev => {
                let mut order = vec![Focus::Environments, Focus::Sessions, Focus::Stdout];
                if self.layout != Layout::Merged {
                    order.push(Focus::Stderr);
                }
                // Not those the screen has no room for (unless zoomed).
                if !self.zoom {
                    let areas = crate::tui::panes::areas(self.screen.get(), self);
                    order.retain(|focus| match focus {
                        Focus::Environments => !areas.environments.is_empty(),
                        _ => true,
                    });
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
                            // A selection the filter hides moves from the top.
                            let at = rows
                                .iter()
                                .position(|&i| i == self.selected_session)
                                .unwrap_or(0);
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
                Some(i) if self.sessions[i].supervisor().is_none() => {
                    self.say("only sessions started here can be cleaned up")
                }
                Some(i) if self.sessions[i].state.is_running() => {
                    self.modal = Modal::ConfirmCleanup(self.sessions[i].run_id.clone())
                }
                Some(i) => return Some(Effect::Cleanup(self.sessions[i].run_id.clone())),
                None => self.say("no session selected"),
            },
            Action::Poll => match selected {
                Some(i) if self.sessions[i].supervisor().is_some() => {
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
                    | Modal::Messages
                    | Modal::Leftovers
                    | Modal::ConfirmRemove(_)
                    | Modal::ConfirmCancelJob(_) => {}
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
                let message = format!("{}: {error}", short_id(&session.run_id));
                self.say(message);
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
                    let message = format!("{}: {note}", short_id(&session.run_id));
                    self.say(message);
                }
                RuntimeEvent::Finished(result) => {
                    session.elapsed = result.elapsed;
                    session.state = if result.status_lost.is_some() {
                        SessionState::StatusLost
                    } else if let Some(failure) = &result.setup_failure {
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
