//! The terminal dashboard: the event loop that ties input, sessions and
//! drawing together. State lives in [`app`], keys in [`action`], drawing in
//! [`panes`], output sanitising in [`sanitize`].
//!
//! Redraws happen only when something changed, at most every
//! [`FRAME`]; idle, the loop waits on input, session events and signals,
//! nothing else (a 1 s tick only while sessions run, for their clocks).

pub mod action;
pub mod app;
pub mod filter;
pub mod form;
pub mod keymap;
pub mod leftovers;
pub mod panes;
mod refresh;
pub mod replay;
pub mod sanitize;
pub mod search;
pub mod session;
pub mod store_watch;
pub mod tasks;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind, MouseButton, MouseEventKind};
use futures_util::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::Config;
use crate::runlog::Store;
use crate::runtime::leftovers::ManagedContainer;
use crate::runtime::{RuntimeEvent, StreamKind};
use crate::supervisor::{SessionEvent, Supervisor};

use app::{App, Effect, EnvironmentRow};
use keymap::action_for;
use session::short_id;
use store_watch::StoreWatch;
use tasks::{Done, Launch, OtherRun, Started, StoreAt, Tasks};

/// The shortest time between two frames (about 30 a second).
pub const FRAME: Duration = Duration::from_millis(33);
/// Time spent applying queued session events before input is looked at.
const DRAIN_BUDGET: Duration = Duration::from_millis(10);
/// Events applied in one turn at most.
const DRAIN_EVENTS: usize = 512;
/// How often live runs of other processes are followed (and the store
/// rescanned, where it cannot be watched).
const STORE_REFRESH: Duration = Duration::from_secs(1);
/// Session events queued for the event loop at most.
const EVENT_QUEUE: usize = 64;
/// How long a quit waits for launches under way, to clean up what they make.
const LAUNCH_GRACE: Duration = Duration::from_millis(500);
/// Stored runs listed at start.
const HISTORY: usize = 2000;

/// How the dashboard starts.
#[derive(Debug, Default)]
pub struct Options {
    /// Replay this run at once (`subrt replay RUN`); the config's
    /// `[ui] startup` commands are not started.
    pub replay: Option<ReplayStart>,
}

/// A run to replay when the dashboard opens.
#[derive(Debug)]
pub struct ReplayStart {
    /// The run, as the store summarised it.
    pub run: crate::runlog::RunSummary,
    /// Its speed factor.
    pub speed: f64,
}

/// Runs the dashboard on `config` until the user quits; returns the signal
/// that ended it, if one did.
///
/// # Errors
///
/// The terminal could not be set up or drawn on.
pub async fn run(config: Config, options: Options) -> io::Result<Option<i32>> {
    let opened = Instant::now();
    let mut trace = Trace::from_env();
    let mut replay_start = options.replay;
    // Events hold output chunks of up to 256 KiB: a short queue bounds what
    // a flood pins here (the sessions wait, they do not lose output).
    let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
    // Startup and new runs work in the config file's folder.
    let base = config
        .path
        .as_deref()
        .and_then(std::path::Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf);
    // Checked in a task (a daemon may take seconds to answer).
    let environments = config
        .environments
        .iter()
        .map(|spec| EnvironmentRow {
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            problem: None,
            checking: true,
        })
        .collect();
    let store = Store::new(&config.store_dir);
    let mut app = App::new(environments, Vec::new());
    app.default_dir = base.display().to_string();
    app.store_listed = false;

    // Slow work (launches, kills, the daemon) reports back here.
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let done_for_store = done_tx.clone();
    let store_at = StoreAt {
        dir: config.store_dir.clone(),
        limits: config.store_limits,
    };
    let tasks = Tasks::new(done_tx, events_tx.clone(), store_at);
    // The first frame does not wait for the store (thousands of runs): a
    // thread lists it, then looks again when asked.
    let store_watch = StoreWatch::start(store, HISTORY, done_for_store);
    tasks.check_environments(config.environments.clone());
    if replay_start.is_none()
        && let Ok(spec) = config.environment(None)
    {
        let startup: Vec<Launch> = config
            .startup
            .iter()
            .rev()
            .map(|command| Launch::new(spec.clone(), base.clone(), command.clone(), None))
            .collect();
        app.launching = startup.iter().map(|l| l.run_id.clone()).collect();
        for run_id in &app.launching {
            store_watch.know(run_id);
        }
        tasks.launch(startup, false);
    }

    let mut terminal = ratatui::try_init()?;
    mouse_capture(true);
    // ratatui's panic hook restores the screen; the mouse is ours to release.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        mouse_capture(false);
        previous_hook(info);
    }));
    // None while a pager has the terminal: its keys are not ours.
    let mut input = Some(EventStream::new());
    let mut pager: Option<Pager> = None;
    let mut terminate = signal(SignalKind::terminate())?;
    // A closed terminal: quit as for SIGTERM, cleaning up.
    let mut hangup = signal(SignalKind::hangup())?;
    let mut draw_error = None;
    // The signal that ended the dashboard, for its exit status (128+N).
    let mut ended_by = None;
    let mut next_frame = Instant::now();
    // When the replay's clock last moved.
    let mut replay_clock = Instant::now();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    // New runs of other processes show up when the store's folder changes;
    // the runs they write are followed each second while there are any.
    // Without a watch, the store is rescanned each second.
    let (_watcher, mut store_changed) = match tasks::watch_store(&config.store_dir) {
        Some((watcher, changed)) => (Some(watcher), Some(changed)),
        None => (None, None),
    };
    let mut store_tick = tokio::time::interval(STORE_REFRESH);
    let quit = loop {
        if app.dirty && pager.is_none() && Instant::now() >= next_frame {
            // The terminal is gone: clean up, then report it.
            if let Err(e) = terminal.draw(|frame| panes::draw(frame, &app)) {
                draw_error = Some(e);
                break true;
            }
            trace.drawn(opened, app.store_listed, app.sessions.len());
            app.dirty = false;
            next_frame = Instant::now() + FRAME;
        }
        let running = app.sessions.iter().any(|s| s.state.is_running());
        let replaying = app
            .replay
            .as_ref()
            .is_some_and(|r| !r.paused && !r.finished());
        if !replaying {
            replay_clock = Instant::now();
        }
        // In this order: keys and what tasks report come before session
        // output, so that a flood (whose events never stop) delays neither.
        let effect = tokio::select! {
            biased;
            read = async { input.as_mut()?.next().await }, if input.is_some() => match read {
                Some(Ok(event)) => match event {
                    Event::Key(key) if key.kind == KeyEventKind::Press => {
                        trace.key();
                        let replaying = app.replay.is_some();
                        action_for(key, &app.modal, replaying).and_then(|a| app.update(a))
                    }
                    Event::Resize(..) => {
                        app.dirty = true;
                        None
                    }
                    Event::Mouse(mouse) => {
                        let area = terminal.get_frame().area();
                        match mouse.kind {
                            MouseEventKind::Down(MouseButton::Left) => app.click(area, mouse.column, mouse.row),
                            MouseEventKind::ScrollUp => app.wheel(area, mouse.column, mouse.row, true),
                            MouseEventKind::ScrollDown => app.wheel(area, mouse.column, mouse.row, false),
                            _ => {}
                        }
                        None
                    }
                    _ => None,
                },
                // The terminal is gone (EIO after a hangup, end of input):
                // a quit that cleans up, as for SIGHUP.
                Some(Err(_)) | None => Some(Effect::Quit { cleanup: true }),
            },
            Some(report) = done.recv() => match report {
                Done::Pager(file) => {
                    // The pager gets the terminal until it exits.
                    input = None;
                    mouse_capture(false);
                    let _ = ratatui::try_restore();
                    app.dirty = true;
                    match Pager::start(file) {
                        Ok(started) => {
                            pager = Some(started);
                            None
                        }
                        Err(e) => {
                            app.say(e);
                            match take_back_terminal(app.mouse) {
                                Ok((reopened, keys)) => {
                                    terminal = reopened;
                                    input = Some(keys);
                                    None
                                }
                                Err(e) => terminal_lost(&mut draw_error, e),
                            }
                        }
                    }
                }
                Done::Listed(listed) => {
                    app.listed(listed.map(|(runs, warnings)| (runs, warnings, HISTORY)));
                    // `subrt replay RUN`: once the list is there.
                    replay_start
                        .take()
                        .and_then(|start| app.open_replay(&start.run, start.speed))
                }
                report => {
                    finished(&mut app, report, &tasks);
                    None
                }
            },
            status = async { pager.as_mut()?.child.wait().await.ok() }, if pager.is_some() => {
                pager = None;
                if let Some(status) = status.filter(|s| !s.success()) {
                    app.say(format!("the pager exited with {status}"));
                }
                app.dirty = true;
                match take_back_terminal(app.mouse) {
                    Ok((reopened, keys)) => {
                        terminal = reopened;
                        input = Some(keys);
                        None
                    }
                    Err(e) => terminal_lost(&mut draw_error, e),
                }
            }
            () = tokio::time::sleep_until(next_frame), if app.dirty => None,
            // The message's time is up: draw the bar without it.
            () = sleep_until_std(app.message_until), if app.message_until.is_some() => {
                app.message_until = None;
                app.message.clear();
                app.dirty = true;
                None
            }
            // Wakes the loop for the replay's clock, which moves below
            // whatever woke it (a flood of events must not stop it).
            () = tokio::time::sleep(FRAME), if replaying => None,
            _ = clock.tick(), if running => {
                app.dirty = true;
                None
            }
            Some(()) = async {
                match &mut store_changed {
                    Some(changed) => changed.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                store_watch.look();
                None
            }
            _ = store_tick.tick(), if store_changed.is_none() || app.follows_live_runs() => {
                store_watch.look();
                None
            }
            _ = terminate.recv() => {
                ended_by = Some(libc::SIGTERM);
                Some(Effect::Quit { cleanup: true })
            }
            _ = hangup.recv() => {
                ended_by = Some(libc::SIGHUP);
                Some(Effect::Quit { cleanup: true })
            }
            // Last: under a flood it is always ready.
            Some((run_id, event)) = events.recv() => {
                apply(&mut app, &run_id, event);
                // Take what else is queued before drawing again, within a
                // budget: under a flood the queue never empties, and keys
                // must still get their turn.
                let budget = Instant::now() + DRAIN_BUDGET;
                for _ in 0..DRAIN_EVENTS {
                    let Ok((run_id, event)) = events.try_recv() else { break };
                    apply(&mut app, &run_id, event);
                    if Instant::now() > budget {
                        break;
                    }
                }
                None
            }
        };
        if replaying {
            let now = Instant::now();
            app.tick_replay(now - replay_clock);
            replay_clock = now;
        }
        match effect {
            Some(Effect::Quit { cleanup }) => break cleanup,
            Some(Effect::Redraw) => {
                let _ = terminal.clear();
                app.dirty = true;
            }
            Some(effect) => perform(&mut app, effect, &config, &tasks, &store_watch),
            None => {}
        }
        // The selected run's output is read from its log in a task.
        if let Some((run_id, path)) = app.load_request.take() {
            tasks.load_output(run_id, path);
        }
    };
    mouse_capture(false);
    // Quietly: after a hangup the terminal is gone, and ratatui's own
    // restore and drop would say so on stderr, which is that terminal too;
    // a failed print panics, and subrt would die before its cleanup.
    let _ = ratatui::try_restore();
    if terminal.show_cursor().is_err() {
        std::mem::forget(terminal);
    }
    // Nobody reads session events any more: close the channel so that the
    // sessions' publishers do not wait on it (cleanup queues behind them).
    drop(events);
    // Launches under way finish within a moment; what they made is cleaned
    // up with the rest (were subrt to exit first, containment ends it).
    drop(tasks);
    while let Ok(Some(report)) = tokio::time::timeout(LAUNCH_GRACE, done.recv()).await {
        if let Done::Launched {
            result: Ok(started),
            ..
        } = report
        {
            app.sessions.push(*started.session);
        }
    }
    if quit {
        let cleanups = app
            .sessions
            .iter()
            .filter_map(|s| s.supervisor().cloned())
            .map(|supervisor| async move { supervisor.cleanup().await });
        futures_util::future::join_all(cleanups).await;
    }
    draw_error.map_or(Ok(ended_by), Err)
}

/// The terminal back from a pager, cleared, with the mouse as the user
/// had it, and a fresh reader of its keys.
fn take_back_terminal(mouse: bool) -> io::Result<(ratatui::DefaultTerminal, EventStream)> {
    let mut terminal = ratatui::try_init()?;
    terminal.clear()?;
    mouse_capture(mouse);
    Ok((terminal, EventStream::new()))
}

/// The terminal could not be taken back (after a pager): the dashboard
/// quits as when a frame cannot be drawn, cleaning up its sessions first,
/// and reports `error` after that.
fn terminal_lost(draw_error: &mut Option<std::io::Error>, error: std::io::Error) -> Option<Effect> {
    *draw_error = Some(error);
    Some(Effect::Quit { cleanup: true })
}

/// Takes (or releases) mouse events from the terminal.
fn mouse_capture(on: bool) {
    use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
    let _ = if on {
        crossterm::execute!(io::stdout(), EnableMouseCapture)
    } else {
        crossterm::execute!(io::stdout(), DisableMouseCapture)
    };
}

fn apply(app: &mut App, run_id: &str, event: SessionEvent) {
    let Some(index) = app.sessions.iter().position(|s| s.run_id == run_id) else {
        return;
    };
    let finished = matches!(
        event,
        SessionEvent::Runtime {
            event: RuntimeEvent::Finished(_),
            ..
        }
    );
    app.apply(index, event);
    // A dashboard session runs one command: once it is done, its runtime
    // (a container, a namespace) is released at once, in a task of its own.
    if finished && let Some(supervisor) = app.sessions[index].supervisor().cloned() {
        tokio::spawn(async move {
            if let Err(e) = supervisor.cleanup().await {
                tracing::warn!(error = %e, "cleanup of a finished session");
            }
        });
    }
}

/// Hands what an action asked of a runtime, the daemon or the cluster to
/// a task (quitting and redrawing are the event loop's); only what needs no
/// waiting is done here.
fn perform(
    app: &mut App,
    effect: Effect,
    config: &Config,
    tasks: &Tasks,
    store_watch: &StoreWatch,
) {
    // Runs are named by id: whatever moved in the list since it was asked.
    let message = match effect {
        Effect::Quit { .. } | Effect::Redraw => return,
        Effect::LoadReplay { run_id, path } => return tasks.load_replay(run_id, path),
        Effect::Pager {
            run_id,
            path,
            stream,
        } => {
            tasks.pager_file(run_id.clone(), path, stream);
            let name = match stream {
                StreamKind::Stdout => "stdout",
                StreamKind::Stderr => "stderr",
            };
            format!("{}: opening its {name} in the pager…", short_id(&run_id))
        }
        Effect::Save { run_id, path } => {
            tasks.save_output(run_id.clone(), path);
            format!("{}: saving its output…", short_id(&run_id))
        }
        Effect::Mouse(on) => return mouse_capture(on),
        Effect::Launch => {
            let Some(run) = app.pending_run.take() else {
                return;
            };
            match config.environment(Some(&run.environment)) {
                Ok(spec) => {
                    let mut launch = Launch::new(
                        spec.clone(),
                        run.working_dir,
                        run.command.clone(),
                        run.timeout,
                    );
                    launch.stdin = run.stdin;
                    app.launching.insert(launch.run_id.clone());
                    store_watch.know(&launch.run_id);
                    tasks.launch(vec![launch], true);
                    format!("starting `{}` on {}…", run.command, run.environment)
                }
                Err(e) => e.to_string(),
            }
        }
        Effect::LoadLeftovers => {
            let slurm = config.environments.iter().any(|e| e.kind == "slurm");
            return tasks.load_leftovers(slurm);
        }
        Effect::CancelJob(job_id) => return tasks.cancel_job(job_id),
        Effect::KillContainer(id) => {
            if let Some(container) = leaked(app, &id) {
                tasks.container_action(container, false);
            }
            return;
        }
        Effect::RemoveContainer(id) => {
            if let Some(container) = leaked(app, &id) {
                tasks.container_action(container, true);
            }
            return;
        }
        Effect::Kill(run_id) => match app.session(&run_id) {
            Some(session) => {
                match session.supervisor() {
                    Some(supervisor) => tasks.kill(&run_id, supervisor.clone()),
                    // A run another process writes.
                    None => tasks.kill_other(OtherRun::of(session)),
                }
                format!("{}: killing…", short_id(&run_id))
            }
            None => format!("{run_id}: no longer listed; nothing killed"),
        },
        Effect::KillMany(ids) => {
            for run_id in &ids {
                if let Some(session) = app.session(run_id) {
                    match session.supervisor() {
                        Some(supervisor) => tasks.kill(run_id, supervisor.clone()),
                        None => tasks.kill_other(OtherRun::of(session)),
                    }
                }
            }
            format!("killing {} runs…", ids.len())
        }
        Effect::Cleanup(run_id) => match app.session(&run_id).and_then(|s| s.supervisor().cloned())
        {
            Some(supervisor) => {
                tasks.cleanup(&run_id, supervisor);
                return;
            }
            None => return,
        },
        Effect::Poll(run_id) => match app.session(&run_id) {
            Some(session) => {
                let id = short_id(&session.run_id);
                match session.supervisor().map(Supervisor::poll) {
                    Some(None) => format!("{id}: poll() = None (running)"),
                    Some(Some(code)) => format!("{id}: poll() = {code}"),
                    None => return,
                }
            }
            None => return,
        },
    };
    app.say(message);
}

/// The leaked container `id` as last listed.
fn leaked(app: &App, id: &str) -> Option<ManagedContainer> {
    app.leftovers
        .as_ref()
        .ok()?
        .iter()
        .find(|c| c.id == id)
        .cloned()
}

/// What a task reported, into the dashboard's state.
fn finished(app: &mut App, report: Done, tasks: &Tasks) {
    match report {
        Done::Said(message) => app.say(message),
        Done::Leftovers(found) => app.set_leftovers(found),
        Done::LeftoverJobs(jobs) => {
            app.leftover_jobs = jobs;
            app.dirty = true;
        }
        Done::Environments(rows) => {
            app.environments = rows;
            app.dirty = true;
        }
        Done::Output { run_id, output } => app.output_loaded(&run_id, *output),
        Done::Replay { run_id, replay } => app.replay_loaded(&run_id, replay),
        Done::Store(news) => app.store_news(*news),
        // Handled by the event loop (it gives the terminal away, it starts
        // a replay).
        Done::Pager(_) | Done::Listed(_) => {}
        Done::Launched {
            run_id,
            command,
            environment,
            result,
            asked,
        } => {
            app.launching.remove(&run_id);
            launched(app, tasks, command, environment, result, asked);
        }
    }
}

/// A run this dashboard started joins the list (or says why it did not).
fn launched(
    app: &mut App,
    tasks: &Tasks,
    command: String,
    environment: String,
    result: Result<Started, String>,
    asked: bool,
) {
    match result {
        Ok(Started { session, events }) => {
            tasks.forward(session.run_id.clone(), events);
            let selected = app
                .sessions
                .get(app.selected_session)
                .map(|s| s.run_id.clone());
            // The store may have listed the new run already, as another
            // process's: this session takes the place of that row.
            if let Some(at) = app.sessions.iter().position(|s| s.run_id == session.run_id) {
                app.sessions[at] = *session;
            } else {
                app.sessions.insert(0, *session);
                // Keep the selected run selected, unless the selection
                // is at the top, where new runs are to be seen.
                if !asked && app.selected_session > 0 {
                    app.selected_session += 1;
                }
            }
            if asked {
                app.selected_session = 0;
                app.say(format!("started `{command}` on {environment}"));
            }
            let now = app.sessions.get(app.selected_session).map(|s| &s.run_id);
            if now != selected.as_ref() || asked {
                app.show_selected();
            }
            app.dirty = true;
        }
        Err(e) => app.say(format!("cannot start `{command}`: {e}")),
    }
}

/// A pager showing a run's output; the terminal is its until it exits.
struct Pager {
    child: tokio::process::Child,
    /// The text it shows; removed when the pager is done.
    _file: tempfile::NamedTempFile,
}

impl Pager {
    /// Starts `$PAGER` (else `less`) on `file`; the words of `$PAGER` are
    /// split at spaces (`less -S`).
    fn start(file: tempfile::NamedTempFile) -> Result<Self, String> {
        let pager = std::env::var("PAGER")
            .ok()
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| "less".into());
        let mut words = pager.split_whitespace();
        let program = words.next().unwrap_or("less");
        let child = tokio::process::Command::new(program)
            .args(words)
            .arg(file.path())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the pager `{pager}` ($PAGER): {e}"))?;
        Ok(Self { child, _file: file })
    }
}

/// With `SUBRT_TUI_TRACE=FILE`, the dashboard writes to FILE when its first
/// frame was drawn and, for each key, how long it took until a frame showed
/// its effect (the time a user waits, measured inside the process). For
/// `benches/dashboard.rs`; off (and free) otherwise.
struct Trace {
    out: Option<io::BufWriter<std::fs::File>>,
    /// Keys read since the last frame.
    keys: Vec<Instant>,
    first_frame: bool,
    /// The first frame with the store's runs was written.
    listed_frame: bool,
}

impl Trace {
    fn from_env() -> Self {
        let out = std::env::var_os("SUBRT_TUI_TRACE")
            .and_then(|path| std::fs::File::create(path).ok())
            .map(io::BufWriter::new);
        Self {
            out,
            keys: Vec::new(),
            first_frame: true,
            listed_frame: false,
        }
    }

    fn key(&mut self) {
        if self.out.is_some() {
            self.keys.push(Instant::now());
        }
    }

    /// A frame was drawn; `listed`: with the store's runs (`sessions`).
    fn drawn(&mut self, opened: Instant, listed: bool, sessions: usize) {
        use std::io::Write;
        let Some(out) = &mut self.out else { return };
        let now = Instant::now();
        let since = (now - opened).as_micros();
        if std::mem::take(&mut self.first_frame) {
            let _ = writeln!(out, "first_frame_us {since}");
        }
        if listed && !std::mem::replace(&mut self.listed_frame, true) {
            let _ = writeln!(out, "listed_frame_us {since} {sessions}");
        }
        for key in self.keys.drain(..) {
            let _ = writeln!(out, "key_us {}", (now - key).as_micros());
        }
        let _ = out.flush();
    }
}

/// Sleeps until `at` (a std instant), or forever when there is none.
async fn sleep_until_std(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
