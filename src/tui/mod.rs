//! The terminal dashboard: the event loop that ties input, sessions and
//! drawing together. State lives in [`app`], keys in [`action`], drawing in
//! [`panes`], output sanitising in [`sanitize`].
//!
//! Redraws happen only when something changed, at most every
//! [`FRAME`]; idle, the loop waits on input, session events and signals,
//! nothing else (a 1 s tick only while sessions run, for their clocks).

pub mod action;
pub mod app;
pub mod panes;
pub mod sanitize;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind, MouseButton, MouseEventKind};
use futures_util::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::Config;
use crate::runlog::{RunlogWriter, Store, StoreLimits};
use crate::runtime::{
    ExecRequest, LaunchSpec, RuntimeEvent, docker, leftovers, process_group, registry, slurm,
};
use crate::spec::EnvironmentSpec;
use crate::supervisor::{SessionEvent, Supervisor};

use action::action_for;
use app::{App, Effect, EnvironmentRow, Process, Session};

/// The shortest time between two frames (about 30 a second).
pub const FRAME: Duration = Duration::from_millis(33);
/// Time spent applying queued session events before input is looked at.
const DRAIN_BUDGET: Duration = Duration::from_millis(10);
/// Events applied in one turn at most.
const DRAIN_EVENTS: usize = 512;
/// How often the store is checked for new and live runs.
const STORE_REFRESH: Duration = Duration::from_secs(1);
/// Session events queued for the event loop at most.
const EVENT_QUEUE: usize = 64;
/// Stored runs listed at start.
const HISTORY: usize = 200;

/// Events of this process's sessions, by run id.
type Events = mpsc::Sender<(String, SessionEvent)>;

/// Starts `command` on `spec` in `working_dir`, recorded in `store`.
async fn launch(
    spec: &EnvironmentSpec,
    working_dir: PathBuf,
    store: (&std::path::Path, StoreLimits),
    command: &str,
    timeout: Option<Duration>,
    events: &Events,
) -> Result<Session, String> {
    let working_dir_of_run = working_dir.clone();
    let launch = LaunchSpec::new(spec.clone(), working_dir);
    let run_id = launch.run_id.clone();
    let runtime = registry::builtins()
        .spawn(launch.clone())
        .await
        .map_err(|e| e.to_string())?;
    let (store, limits) = store;
    let log =
        RunlogWriter::create(store, limits, &launch, &runtime.info()).map_err(|e| e.to_string())?;
    let log_path = log.path().to_owned();
    let supervisor = Supervisor::start_recorded(runtime, log);
    let mut rx = supervisor.subscribe();
    let events = events.clone();
    let id = run_id.clone();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if events.send((id.clone(), event)).await.is_err() {
                break;
            }
        }
    });
    let mut request = ExecRequest::new(command).capture_limit(0);
    request.timeout = timeout;
    drop(supervisor.submit(request).await);
    let mut session = Session::own(
        run_id,
        spec.name.clone(),
        command.to_owned(),
        Some(supervisor),
    );
    session.log = Some(log_path);
    session.working_dir = Some(working_dir_of_run);
    session.timeout = timeout;
    Ok(session)
}

async fn environment_rows(config: &Config) -> Vec<EnvironmentRow> {
    let mut rows = Vec::new();
    for spec in &config.environments {
        let problem = registry::builtins()
            .check(spec)
            .await
            .err()
            .map(|e| e.to_string());
        rows.push(EnvironmentRow {
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            problem,
        });
    }
    rows
}

/// Runs the dashboard on `config` until the user quits.
pub async fn run(config: Config) -> io::Result<Option<i32>> {
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
    let environments = environment_rows(&config).await;
    let store = Store::new(&config.store_dir);
    let (history, warnings) = store.list().unwrap_or_default();
    let sessions = history.iter().take(HISTORY).map(Session::stored).collect();
    // Newer runs than the listed ones are picked up live; older ones are not.
    let floor = match history.get(HISTORY) {
        Some(first_left_out) => first_left_out.run_id.clone(),
        None => String::new(),
    };
    let mut app = App::new(environments, sessions);
    app.default_dir = base.display().to_string();
    app.history_floor = floor;
    if let Some(warning) = warnings.first() {
        app.say(format!("warning: {warning}"));
    }

    if let Ok(spec) = config.environment(None) {
        for command in config.startup.iter().rev() {
            match launch(
                spec,
                base.clone(),
                (&config.store_dir, config.store_limits),
                command,
                None,
                &events_tx,
            )
            .await
            {
                Ok(session) => app.sessions.insert(0, session),
                Err(e) => app.say(format!("cannot start `{command}`: {e}")),
            }
        }
    }

    // The run selected at start shows its output at once.
    app.show_selected();
    let mut terminal = ratatui::try_init()?;
    mouse_capture(true);
    // ratatui's panic hook restores the screen; the mouse is ours to release.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        mouse_capture(false);
        previous_hook(info);
    }));
    let mut input = EventStream::new();
    let mut terminate = signal(SignalKind::terminate())?;
    // A closed terminal: quit as for SIGTERM, cleaning up.
    let mut hangup = signal(SignalKind::hangup())?;
    let mut draw_error = None;
    // The signal that ended the dashboard, for its exit status (128+N).
    let mut ended_by = None;
    let mut next_frame = Instant::now();
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    // Runs other processes start or write show up within a second.
    let mut store_tick = tokio::time::interval(STORE_REFRESH);
    let quit = loop {
        if app.dirty && Instant::now() >= next_frame {
            // The terminal is gone: clean up, then report it.
            if let Err(e) = terminal.draw(|frame| panes::draw(frame, &app)) {
                draw_error = Some(e);
                break true;
            }
            app.dirty = false;
            next_frame = Instant::now() + FRAME;
        }
        let running = app.sessions.iter().any(|s| s.state.is_running());
        let replaying = app
            .replay
            .as_ref()
            .is_some_and(|r| !r.paused && !r.finished());
        let tick_from = Instant::now();
        let effect = tokio::select! {
            read = input.next() => match read {
                Some(Ok(event)) => match event {
                    Event::Key(key) if key.kind == KeyEventKind::Press => {
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
            () = tokio::time::sleep_until(next_frame), if app.dirty => None,
            () = tokio::time::sleep(FRAME), if replaying => {
                app.tick_replay(tick_from.elapsed());
                None
            }
            _ = clock.tick(), if running => {
                app.dirty = true;
                None
            }
            _ = store_tick.tick() => {
                app.refresh_store(&store);
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
        };
        match effect {
            Some(Effect::Quit { cleanup }) => break cleanup,
            Some(Effect::Redraw) => {
                let _ = terminal.clear();
                app.dirty = true;
            }
            Some(effect) => perform(&mut app, effect, &config, &events_tx).await,
            None => {}
        }
    };
    mouse_capture(false);
    ratatui::restore();
    // Nobody reads session events any more: close the channel so that the
    // sessions' publishers do not wait on it (cleanup queues behind them).
    drop(events);
    if quit {
        let cleanups = app
            .sessions
            .iter()
            .filter_map(|s| s.supervisor.clone())
            .map(|supervisor| async move { supervisor.cleanup().await });
        futures_util::future::join_all(cleanups).await;
    }
    draw_error.map_or(Ok(ended_by), Err)
}

/// Lists the subrt containers of the default daemon into the leaked view.
async fn load_leftovers(app: &mut App) {
    let found = match docker::connect(None).await {
        Ok(docker) => leftovers::managed_containers(&docker)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    app.set_leftovers(found);
}

/// Kills (`remove` false) or removes the leaked container `container_id`,
/// then reloads.
async fn container_action(app: &mut App, container_id: &str, remove: bool) {
    let Some(container) = app
        .leftovers
        .as_ref()
        .ok()
        .and_then(|l| l.iter().find(|c| c.id == container_id))
        .cloned()
    else {
        return;
    };
    let outcome = match docker::connect(None).await {
        Ok(docker) if remove => leftovers::remove(&docker, &container.id).await,
        Ok(docker) => leftovers::kill(&docker, &container.id).await,
        Err(e) => Err(e),
    };
    app.say(match outcome {
        Ok(()) if remove => format!("removed {}", container.name),
        Ok(()) => format!("killed {}", container.name),
        Err(e) => e.to_string(),
    });
    load_leftovers(app).await;
}

/// Starts the run the form or a re-run left in `app.pending_run`.
async fn start_pending(app: &mut App, config: &Config, events: &Events) {
    let Some(run) = app.pending_run.take() else {
        return;
    };
    let spec = match config.environment(Some(&run.environment)) {
        Ok(spec) => spec,
        Err(e) => return app.say(e.to_string()),
    };
    match launch(
        spec,
        run.working_dir,
        (&config.store_dir, config.store_limits),
        &run.command,
        run.timeout,
        events,
    )
    .await
    {
        Ok(session) => {
            app.sessions.insert(0, session);
            app.selected_session = 0;
            app.scroll = [0, 0];
            app.say(format!("started `{}` on {}", run.command, run.environment));
        }
        Err(e) => app.say(format!("cannot start `{}`: {e}", run.command)),
    }
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
    if finished && let Some(supervisor) = app.sessions[index].supervisor.clone() {
        tokio::spawn(async move {
            if let Err(e) = supervisor.cleanup().await {
                tracing::warn!(error = %e, "cleanup of a finished session");
            }
        });
    }
}

/// Kills a run another process writes: its containers (Docker), or its
/// process group once the recorded pid is checked to still be the recorded
/// process (same start time), so a recycled pid is never signalled.
async fn kill_other(session: &Session) -> String {
    let id = &session.run_id;
    if session.kind.as_deref() == Some("docker") {
        let docker = match docker::connect(None).await {
            Ok(docker) => docker,
            Err(e) => return e.to_string(),
        };
        let containers = match leftovers::managed_containers(&docker).await {
            Ok(all) => all
                .into_iter()
                .filter(|c| &c.run_id == id)
                .collect::<Vec<_>>(),
            Err(e) => return e.to_string(),
        };
        for container in &containers {
            if let Err(e) = leftovers::kill(&docker, &container.id).await {
                return e.to_string();
            }
        }
        return format!("{id}: killed {} container(s)", containers.len());
    }
    if let Some(job) = &session.slurm_job {
        return match slurm::cancel_job(job).await {
            Ok(()) => format!("{id}: cancelled its Slurm job {job}"),
            Err(e) => e.to_string(),
        };
    }
    let alive = |pid: u32, start: u64| process_group::process_start_time(pid) == Some(start);
    match session.last_process {
        // The session's namespace: its init's death takes every process.
        Some(Process {
            init: Some((init, start)),
            ..
        }) if alive(init, start) => match process_group::signal_process(init, libc::SIGKILL) {
            Ok(()) => format!("{id}: killed its session (PID namespace init {init})"),
            Err(e) => format!("{id}: cannot kill PID namespace init {init}: {e}"),
        },
        Some(Process {
            pid,
            pgid,
            start: Some(start),
            init: None,
        }) if alive(pid, start) => match process_group::kill_group(pgid) {
            Ok(()) => format!("{id}: killed process group {pgid}"),
            Err(e) => format!("{id}: cannot kill process group {pgid}: {e}"),
        },
        Some(Process { pid, .. }) => {
            format!("{id}: process {pid} is gone or is not the one recorded; nothing killed")
        }
        None => format!("{id}: its log names no process yet; nothing killed"),
    }
}

/// Carries out what an action asked of a runtime, the daemon or the
/// terminal (quitting is the event loop's).
async fn perform(app: &mut App, effect: Effect, config: &Config, events: &Events) {
    // The run named by id: whatever moved in the list since it was asked.
    let session = |app: &App, run_id: &str| {
        let session = app.session(run_id)?;
        Some((
            app::short_id(&session.run_id).to_owned(),
            session.supervisor.clone(),
        ))
    };
    let message = match effect {
        Effect::Quit { .. } | Effect::Redraw => return,
        Effect::Launch => return start_pending(app, config, events).await,
        Effect::LoadLeftovers => return load_leftovers(app).await,
        Effect::KillContainer(id) => return container_action(app, &id, false).await,
        Effect::RemoveContainer(id) => return container_action(app, &id, true).await,
        Effect::Mouse(on) => return mouse_capture(on),
        Effect::Kill(run_id) => match session(app, &run_id) {
            Some((id, Some(supervisor))) => match supervisor.kill().await {
                Ok(()) => format!("{id}: killed"),
                Err(e) => format!("{id}: kill failed: {e}"),
            },
            // A run another process writes.
            Some((_, None)) => match app.session(&run_id) {
                Some(other) => kill_other(other).await,
                None => return,
            },
            None => format!("{run_id}: no longer listed; nothing killed"),
        },
        Effect::Cleanup(run_id) => match session(app, &run_id) {
            Some((id, Some(supervisor))) => match supervisor.cleanup().await {
                Ok(()) => format!("{id}: cleaned up"),
                Err(e) => format!("{id}: cleanup failed: {e}"),
            },
            _ => return,
        },
        Effect::Poll(run_id) => match session(app, &run_id) {
            Some((id, Some(supervisor))) => match supervisor.poll() {
                None => format!("{id}: poll() = None (running)"),
                Some(code) => format!("{id}: poll() = {code}"),
            },
            _ => return,
        },
    };
    app.say(message);
}
