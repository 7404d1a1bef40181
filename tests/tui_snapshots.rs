//! Every pane and state of the TUI, drawn on a fixed-size TestBackend and
//! compared with insta snapshots (tests/snapshots/).

use std::path::PathBuf;
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use subrt::runlog::{EndStatus, RunState, RunSummary};
use subrt::tui::action::Action;
use subrt::tui::app::{App, EnvironmentRow};
use subrt::tui::form;
use subrt::tui::panes::{self, Part};
use subrt::tui::session::{Session, SessionState};

fn summary(
    n: u32,
    command: &str,
    state: RunState,
    status: Option<EndStatus>,
    exit: Option<i32>,
) -> RunSummary {
    RunSummary {
        run_id: format!("01JD0000000000000000000{n:03}"),
        path: PathBuf::from("/nonexistent"),
        environment: "local".into(),
        command: Some(command.into()),
        timeout: None,
        commands: 1,
        working_dir: PathBuf::from("/"),
        state,
        status,
        outcome: exit.map(|exit_code| subrt::runtime::Outcome {
            exit_code,
            // What sandboxed runs measure: shown in PEAK and in details.
            usage: subrt::runtime::Usage {
                peak_memory_bytes: (n == 4).then_some(48 << 20),
                cpu_user_seconds: (n == 4).then_some(1.25),
                cpu_system_seconds: (n == 4).then_some(0.5),
            },
            ..Default::default()
        }),
        started_at: "2026-11-24T12:00:00Z".into(),
        duration: Duration::from_secs(u64::from(n) * 7),
        silent_for: None,
        bytes_out: 0,
        bytes_err: 0,
        truncated: false,
        log_incomplete: None,
        files: Default::default(),
        disk_bytes: None,
        containment: None,
        labels: Default::default(),
    }
}

fn session(n: u32, command: &str, state: SessionState) -> Session {
    let mut s = Session::stored(&summary(
        n,
        command,
        RunState::Finished,
        Some(EndStatus::Exited),
        Some(0),
    ));
    s.log = None; // nothing to load: the output is fed below
    s.state = state;
    s
}

/// Does what the event loop's tasks do for `app`: reads the log the
/// selected run's panes asked for.
fn settle(app: &mut App) {
    if let Some((run_id, path)) = app.load_request.take() {
        app.output_loaded(&run_id, subrt::tui::session::read_output(&path));
    }
}

/// Enter on the selected (finished) run, and the replay read as the
/// event loop's task reads it.
fn open_replay(app: &mut App) {
    match app.update(Action::Open) {
        Some(subrt::tui::app::Effect::LoadReplay { run_id, path }) => {
            let replay = subrt::tui::replay::Replay::load(run_id.clone(), &path);
            app.replay_loaded(&run_id, replay);
        }
        other => panic!("Enter asked for {other:?}, not a replay"),
    }
}

/// An app with sessions in every state; the first prints on both streams.
fn app() -> App {
    let environments = vec![
        EnvironmentRow {
            name: "local".into(),
            kind: "local".into(),
            problem: None,
            checking: false,
        },
        EnvironmentRow {
            name: "python-docker".into(),
            kind: "docker".into(),
            problem: Some("cannot reach the Docker daemon".into()),
            checking: false,
        },
    ];
    let mut first = session(1, "python3 main.py", SessionState::Running);
    for i in 0..30u64 {
        let at = Duration::from_millis(i * 250);
        first
            .stdout
            .push(format!("step {i}: \x1b[32mok\x1b[0m\n").as_bytes(), at);
        if i % 3 == 0 {
            first.stderr.push(
                format!("warning {i}: slow\x1b]0;pwned\x07\n").as_bytes(),
                at,
            );
        }
    }
    first.stdout.push(
        b"a line long enough to need wrapping in a narrow pane, and then some more text\n",
        Duration::from_secs(8),
    );
    let sessions = vec![
        first,
        session(2, "sh setup-heavy.sh", SessionState::Setup),
        session(3, "python3 ok.py", SessionState::Exited(0)),
        session(4, "python3 broken.py", SessionState::Exited(1)),
        session(5, "sleep 1000", SessionState::TimedOut),
        session(6, "yes", SessionState::Killed),
        session(7, "make test", SessionState::SetupFailed(2)),
        session(8, "other-harness run", SessionState::Running),
        session(9, "crashed run", SessionState::Interrupted),
    ];
    let mut app = App::new(environments, sessions);
    app.message = "ready".into();
    app
}

/// One part of the screen alone, `width` x `height`: its snapshot changes
/// only when that part does.
fn render_part(app: &App, part: Part, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| panes::draw_part(frame, app, part))
        .unwrap();
    terminal.backend().to_string()
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| panes::draw(frame, app)).unwrap();
    terminal.backend().to_string()
}

#[test]
fn main_screen_with_sessions_in_every_state() {
    insta::assert_snapshot!(render(&app(), 120, 36));
}

#[test]
fn stacked_layout() {
    let mut app = app();
    app.update(Action::CycleLayout);
    insta::assert_snapshot!(render(&app, 120, 36));
}

#[test]
fn merged_layout_interleaves_by_time() {
    let mut app = app();
    app.update(Action::CycleLayout);
    app.update(Action::CycleLayout);
    let screen = render(&app, 120, 36);
    assert!(screen.contains("stdout+stderr"));
    insta::assert_snapshot!(render_part(&app, Part::Stdout, 120, 24));
}

#[test]
fn help_lists_every_key_and_scrolls_at_small_sizes() {
    use subrt::tui::keymap;
    let mut app = app();
    app.update(Action::Help);
    let first = render(&app, 100, 30);
    assert!(first.contains("Keys 1-28 of"), "{first}");
    insta::assert_snapshot!(render_part(&app, Part::Dialog, 100, 30));
    // Page down to the end: every binding's line was on some screen.
    let mut seen = first.clone();
    for _ in 0..20 {
        app.update(Action::PageDown);
        seen += &render(&app, 100, 30);
    }
    for map in keymap::ALL {
        assert!(seen.contains(map.title), "help lacks {}", map.title);
        for binding in map.bindings {
            let start: String = binding.help.chars().take(40).collect();
            assert!(seen.contains(&start), "help lacks {start:?}");
        }
    }
    let last = render(&app, 100, 30);
    assert!(
        last.contains("clear and redraw"),
        "the end is reachable: {last}"
    );
    app.update(Action::Top);
    assert_eq!(render(&app, 100, 30), first, "g goes back to the top");
    app.update(Action::Close);
    assert_eq!(app.modal, subrt::tui::app::Modal::None);
}

#[test]
fn kill_asks_first() {
    let mut app = app();
    app.update(Action::Kill);
    let first = app.sessions[0].run_id.clone();
    assert_eq!(
        app.modal,
        subrt::tui::app::Modal::ConfirmKill(first),
        "k asks first, naming the run"
    );
    let dialog = render_part(&app, Part::Dialog, 70, 8);
    assert!(
        dialog.contains("01JD0000000000000000000001") && dialog.contains("y: kill"),
        "the whole id and the keys to answer:\n{dialog}"
    );
    insta::assert_snapshot!(dialog);
    app.update(Action::No);
    assert_eq!(app.modal, subrt::tui::app::Modal::None);
    app.selected_session = 2; // exited: nothing to kill
    app.update(Action::Kill);
    assert!(app.message.contains("not running"), "{}", app.message);
}

#[test]
fn quit_confirmation() {
    let mut app = app();
    app.modal = subrt::tui::app::Modal::ConfirmQuit;
    insta::assert_snapshot!(render_part(&app, Part::Dialog, 70, 8));
}

#[test]
fn timestamps_and_wrap() {
    let mut app = app();
    app.update(Action::ToggleTimestamps);
    app.update(Action::ToggleWrap);
    insta::assert_snapshot!(render_part(&app, Part::Stdout, 60, 28));
}

#[test]
fn scrolling_up_stops_following() {
    let mut app = app();
    app.update(Action::FocusNext); // stdout
    for _ in 0..5 {
        app.update(Action::Up);
    }
    assert!(!app.follow);
    let screen = render(&app, 100, 30);
    assert!(!screen.contains("[follow]"));
    insta::assert_snapshot!(render_part(&app, Part::Stdout, 60, 28));
    app.update(Action::Bottom);
    assert!(app.follow);
}

#[test]
fn an_80x24_terminal() {
    insta::assert_snapshot!(render(&app(), 80, 24));
}

#[test]
fn a_40x10_terminal_still_lists_runs_by_command_and_state() {
    use subrt::tui::app::Focus;
    let mut app = app();
    let screen = render(&app, 40, 10);
    let rows: Vec<&str> = screen
        .lines()
        .filter(|l| l.contains("python3") || l.contains("sh setup"))
        .collect();
    assert!(rows.len() >= 3, "three runs listed:\n{screen}");
    assert!(
        rows[0].contains("python3 main.py") && rows[0].contains("running"),
        "command and state:\n{screen}"
    );
    assert!(
        !screen.contains("Environments"),
        "no room for them:\n{screen}"
    );
    insta::assert_snapshot!(screen);
    // Tab does not focus the pane that is not shown.
    app.focus = Focus::Sessions;
    app.update(Action::FocusPrev);
    assert_eq!(
        app.focus,
        Focus::Stderr,
        "around the end, not to Environments"
    );
}

#[test]
fn s_sorts_by_duration_then_state_and_keeps_the_selected_run() {
    let mut app = app();
    let selected = app.selected().unwrap().run_id.clone();
    app.update(Action::Sort);
    let by_duration: Vec<u64> = app
        .visible_sessions()
        .iter()
        .map(|&i| app.sessions[i].elapsed().as_secs())
        .collect();
    assert!(
        by_duration.windows(2).all(|w| w[0] >= w[1]),
        "longest first: {by_duration:?}"
    );
    assert_eq!(app.selected().unwrap().run_id, selected, "the same run");
    assert!(app.message.contains("duration"), "{}", app.message);
    app.update(Action::Sort);
    let first = app.visible_sessions()[0];
    assert!(
        app.sessions[first].state.is_running(),
        "running first when sorted by state"
    );
    let order: Vec<&str> = app
        .visible_sessions()
        .iter()
        .map(|&i| app.sessions[i].command.as_str())
        .collect();
    let failed = order
        .iter()
        .position(|c| *c == "python3 broken.py")
        .unwrap();
    let ok = order.iter().position(|c| *c == "python3 ok.py").unwrap();
    assert!(failed < ok, "failures before successes: {order:?}");
    // By batch: the newest batch first, each by submission, then the rest.
    app.sessions[3].batch = Some("01JDBATCH10000000000000AAAAAA".into());
    app.sessions[3].name = Some("bob".into());
    app.sessions[6].batch = Some("01JDBATCH20000000000000BBBBBB".into());
    app.sessions[6].name = Some("zed".into());
    app.sessions[5].batch = Some("01JDBATCH20000000000000BBBBBB".into());
    app.sessions[5].name = Some("amy".into());
    app.update(Action::Sort);
    assert_eq!(
        &app.visible_sessions()[..3],
        [5, 6, 3],
        "newest batch first, by submission"
    );
    let screen = render_part(&app, Part::Sessions, 120, 8);
    assert!(screen.contains("by batch"), "{screen}");
    assert!(
        screen.contains("BBBBBB amy: yes"),
        "each row says its batch:\n{screen}"
    );
    app.update(Action::Sort);
    assert_eq!(
        app.visible_sessions(),
        (0..app.sessions.len()).collect::<Vec<_>>(),
        "back to newest first"
    );
}

#[test]
fn a_200x50_terminal() {
    insta::assert_snapshot!(render(&app(), 200, 50));
}

#[test]
fn a_tiny_terminal_does_not_panic() {
    let mut app = app();
    // Drawing only: TestBackend cannot print a 0x0 buffer itself.
    let draw = |app: &App, w, h| {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal.draw(|frame| panes::draw(frame, app)).unwrap();
    };
    for (w, h) in [(20, 6), (1, 1), (0, 0), (5, 40)] {
        draw(&app, w, h);
        app.update(Action::Help);
        draw(&app, w, h);
        app.update(Action::Close);
    }
    insta::assert_snapshot!(render(&app, 20, 6));
}

#[test]
fn no_escape_sequence_reaches_the_screen() {
    let screen = render(&app(), 120, 36);
    assert!(!screen.contains("pwned") && !screen.contains('\x1b'));
}

#[test]
fn new_run_form_prefills_and_checks() {
    let mut app = app();
    app.default_dir = "/".into();
    app.update(Action::NewRun);
    for c in "python3 main.py".chars() {
        app.update(Action::Type(c));
    }
    insta::assert_snapshot!(render_part(&app, Part::Dialog, 80, 12));
    // A timeout that is not a number is refused, with the reason.
    app.update(Action::NextField);
    app.update(Action::NextField);
    app.update(Action::Type('x'));
    assert_eq!(app.update(Action::Yes), None);
    assert!(app.form.error.as_deref().unwrap().contains("`x`"));
    app.update(Action::Erase);
    app.update(Action::Type('5'));
    assert_eq!(
        app.update(Action::Yes),
        Some(subrt::tui::app::Effect::Launch)
    );
    let run = app.pending_run.clone().unwrap();
    assert_eq!(
        (run.environment.as_str(), run.command.as_str()),
        ("local", "python3 main.py")
    );
    assert_eq!(run.timeout, Some(Duration::from_secs(5)));
}

#[test]
fn new_run_picks_the_environment_and_recalls_commands() {
    let mut app = app();
    app.default_dir = "/".into();
    app.update(Action::NewRun);
    app.update(Action::PrevField);
    app.update(Action::PrevField);
    assert_eq!(app.form.focus, form::ENVIRONMENT);
    app.update(Action::Type('g'));
    assert_eq!(app.form.fields[form::ENVIRONMENT], "local", "not typed");
    app.update(Action::Down);
    assert_eq!(app.form.fields[form::ENVIRONMENT], "python-docker");
    app.update(Action::Down);
    assert_eq!(
        app.form.fields[form::ENVIRONMENT],
        "local",
        "around the end"
    );
    app.update(Action::Up);
    assert_eq!(app.form.fields[form::ENVIRONMENT], "python-docker");
    // The command field: ↑ goes back through the listed runs' commands.
    app.update(Action::NextField);
    app.update(Action::NextField);
    assert_eq!(app.form.focus, form::COMMAND);
    app.update(Action::Type('x'));
    app.update(Action::Up);
    assert_eq!(
        app.form.fields[form::COMMAND],
        "python3 main.py",
        "the newest"
    );
    app.update(Action::Up);
    assert_eq!(app.form.fields[form::COMMAND], "sh setup-heavy.sh");
    let screen = render(&app, 100, 30);
    assert!(screen.contains("earlier 2 of"), "{screen}");
    app.update(Action::Down);
    app.update(Action::Down);
    assert_eq!(
        app.form.fields[form::COMMAND],
        "x",
        "what was typed comes back"
    );
    // A stdin file that is not there is named.
    app.update(Action::NextField);
    for c in "no-such-input.txt".chars() {
        app.update(Action::Type(c));
    }
    assert_eq!(app.update(Action::Yes), None);
    let error = app.form.error.clone().unwrap();
    assert!(error.contains("`no-such-input.txt`"), "{error}");
}

#[test]
fn a_stdin_file_is_checked_and_passed_to_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "7 8\n").unwrap();
    let mut app = app();
    app.default_dir = dir.path().display().to_string();
    app.update(Action::NewRun);
    for c in "python3 sum.py".chars() {
        app.update(Action::Type(c));
    }
    app.update(Action::NextField);
    for c in "in.txt".chars() {
        app.update(Action::Type(c));
    }
    assert_eq!(
        app.update(Action::Yes),
        Some(subrt::tui::app::Effect::Launch)
    );
    let run = app.pending_run.clone().unwrap();
    assert_eq!(run.stdin, Some(dir.path().join("in.txt")));
}

#[test]
fn search_highlights_and_jumps_between_matches() {
    let mut app = app();
    app.update(Action::FocusNext); // stdout
    app.update(Action::Search);
    for c in "step 1".chars() {
        app.update(Action::Type(c));
    }
    let typing = render(&app, 100, 30);
    assert!(typing.contains("/step 1█"), "the query shows while typed");
    app.update(Action::Yes);
    // Matches: step 1 and step 10..19: Enter goes to the newest (19).
    assert!(app.message.contains("match 11 of 11"), "{}", app.message);
    app.update(Action::PrevMatch);
    assert!(app.message.contains("match 10 of 11"), "{}", app.message);
    app.update(Action::NewRun); // n: next match while searching
    assert!(app.message.contains("match 11 of 11"), "{}", app.message);

    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    terminal.draw(|frame| panes::draw(frame, &app)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    let highlighted = (0..buffer.area.height)
        .flat_map(|y| (0..buffer.area.width).map(move |x| (x, y)))
        .filter(|&(x, y)| buffer[(x, y)].bg == ratatui::style::Color::Yellow)
        .count();
    assert!(
        highlighted >= "step 1".len() * 3,
        "matches are highlighted ({highlighted} cells)"
    );
    insta::assert_snapshot!(render_part(&app, Part::Stdout, 60, 28));
    app.update(Action::Close);
    assert!(app.search.is_empty(), "Esc ends the search");
}

#[test]
fn leaked_containers_view() {
    use subrt::runtime::leftovers::{ManagedContainer, Verdict};
    let container = |n: u32, verdict| ManagedContainer {
        id: format!("{n:064x}"),
        name: format!("subrt-box-01jd000000000000000000000{n}-1"),
        run_id: format!("01JD00000000000000000000{n:02}"),
        environment: "box".into(),
        state: "running".into(),
        image: "python:3.12-slim".into(),
        // Three hours ago, give or take the test's own time.
        created: Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
                - 3 * 3600
                - 60,
        ),
        owner: "vm/4242/1".into(),
        verdict,
    };
    let mut app = app();
    app.update(Action::Leftovers);
    app.set_leftovers(Ok(vec![
        container(1, Verdict::OwnerGone),
        container(2, Verdict::OwnerAlive),
        container(3, Verdict::Kept),
    ]));
    let list = app.leftovers.as_ref().unwrap();
    assert_eq!(list.len(), 2, "containers of running owners are not leaks");
    app.update(Action::Down);
    let kept = format!("{:064x}", 3);
    assert_eq!(app.update(Action::Remove), None, "x asks first");
    assert_eq!(
        app.modal,
        subrt::tui::app::Modal::ConfirmRemove(kept.clone())
    );
    assert!(render(&app, 140, 30).contains("Remove container"));
    app.update(Action::No);
    assert_eq!(app.modal, subrt::tui::app::Modal::Leftovers, "n goes back");
    app.update(Action::Remove);
    assert_eq!(
        app.update(Action::Yes),
        Some(subrt::tui::app::Effect::RemoveContainer(kept))
    );
    insta::assert_snapshot!(render_part(&app, Part::Dialog, 140, 30));
    app.set_leftovers(Err(
        "cannot reach the Docker daemon at unix:///var/run/docker.sock".into(),
    ));
    assert!(render(&app, 140, 30).contains("cannot reach the Docker daemon"));
}

/// A run log with output at known times: "one" at 0 s, "err" at 1 s (stderr),
/// "two" at 2 s, "three" at 9 s.
fn timed_log(dir: &std::path::Path) -> PathBuf {
    timed_log_named(dir, "01JDREPLAY0000000000000000")
}

fn timed_log_named(dir: &std::path::Path, run_id: &str) -> PathBuf {
    use subrt::runlog::{Body, Header, Owner, PhaseTag, Record, StreamTag};
    let header = Header {
        format: subrt::runlog::FORMAT.into(),
        version: subrt::runlog::VERSION,
        run_id: run_id.into(),
        started_at: "2026-11-24T12:00:00Z".into(),
        subrt_version: "test".into(),
        environment: subrt::spec::EnvironmentSpec::local("local"),
        working_dir: "/".into(),
        owner: Owner {
            host: "elsewhere".into(),
            pid: 1,
            start_time: None,
        },
        container_id: None,
        containment: None,
        max_run_bytes: Some(1 << 30),
        labels: Default::default(),
        slurm_job: None,
        commands_start: None,
    };
    let run = dir.join(run_id);
    std::fs::create_dir_all(&run).unwrap();
    let mut streams = [Vec::new(), Vec::new()];
    let mut text = serde_json::to_string(&header).unwrap() + "\n";
    let chunks = [
        (0, StreamTag::Out, "one\n"),
        (1, StreamTag::Err, "err\n"),
        (2, StreamTag::Out, "two\n"),
        (9, StreamTag::Out, "three\n"),
    ];
    for (seq, (secs, s, chunk)) in chunks.into_iter().enumerate() {
        let stream = &mut streams[s.index()];
        let record = Record {
            seq: seq as u64 + 1,
            t: secs * 1_000_000,
            c: 1,
            body: Body::Out {
                s,
                p: PhaseTag::Cmd,
                o: Some(stream.len() as u64),
                n: Some(chunk.len() as u64),
                d: None,
                b: None,
            },
        };
        stream.extend_from_slice(chunk.as_bytes());
        text += &(serde_json::to_string(&record).unwrap() + "\n");
    }
    std::fs::write(run.join("events.jsonl"), text).unwrap();
    std::fs::write(run.join("stdout"), &streams[0]).unwrap();
    std::fs::write(run.join("stderr"), &streams[1]).unwrap();
    run
}

#[test]
fn replay_plays_a_finished_run_with_its_timing() {
    let dir = tempfile::tempdir().unwrap();
    let path = timed_log(dir.path());
    let mut stored = summary(
        20,
        "python3 slow.py",
        RunState::Finished,
        Some(EndStatus::Exited),
        Some(0),
    );
    stored.path = path;
    let mut app = App::new(vec![], vec![Session::stored(&stored)]);
    let texts =
        |app: &App| -> Vec<String> { app.sessions[0].stdout.lines().map(|l| l.text()).collect() };
    open_replay(&mut app);
    assert!(app.replay.is_some(), "{}", app.message);
    assert_eq!(texts(&app), ["one"], "only what was printed at 0 s");
    app.tick_replay(Duration::from_millis(2500));
    assert_eq!(texts(&app), ["one", "two"]);
    assert_eq!(app.sessions[0].stderr.lines().count(), 1);
    app.update(Action::Pause);
    app.tick_replay(Duration::from_secs(60));
    assert_eq!(texts(&app), ["one", "two"], "paused");
    app.update(Action::Pause);
    app.update(Action::Faster); // x2
    app.tick_replay(Duration::from_secs(1)); // 2.5 s + 2 s
    assert_eq!(
        app.replay.as_ref().unwrap().position,
        Duration::from_millis(4500)
    );
    insta::assert_snapshot!(
        render_part(&app, Part::Stdout, 60, 8) + &render_part(&app, Part::Status, 100, 1)
    );
    app.update(Action::SeekBack);
    assert_eq!(texts(&app), ["one"], "seeking back rebuilds the panes");
    app.update(Action::Bottom);
    assert_eq!(texts(&app), ["one", "two", "three"]);
    assert!(app.replay.as_ref().unwrap().finished());
    app.update(Action::Close);
    assert!(app.replay.is_none());
    settle(&mut app);
    assert_eq!(
        texts(&app),
        ["one", "two", "three"],
        "back to the whole output"
    );
}

#[test]
fn clicks_select_and_focus_and_the_wheel_scrolls() {
    use ratatui::layout::Rect;
    use subrt::tui::app::Focus;
    let mut app = app();
    let screen = Rect::new(0, 0, 120, 36);
    let areas = panes::areas(screen, &app);
    // The third row of the Sessions table: border, header, then rows.
    let (x, y) = (areas.sessions.x + 5, areas.sessions.y + 2 + 2);
    app.click(screen, x, y);
    assert_eq!((app.focus, app.selected_session), (Focus::Sessions, 2));
    app.click(screen, areas.stderr.x + 3, areas.stderr.y + 3);
    assert_eq!(app.focus, Focus::Stderr);
    // The wheel over the output of the run that printed (an empty output
    // does not scroll).
    app.selected_session = 0;
    app.wheel(screen, areas.stdout.x + 3, areas.stdout.y + 3, true);
    assert_eq!(app.focus, Focus::Stdout);
    assert_eq!(app.scroll[0], 3, "the wheel scrolls three lines");
    assert!(!app.follow);
    app.update(Action::ToggleMouse);
    assert!(!app.mouse && app.message.contains("released"));
}

#[test]
fn the_store_is_picked_up_above_the_history_floor_only() {
    let dir = tempfile::tempdir().unwrap();
    for id in [
        "01JDA0000000000000000000OLD",
        "01JDB000000000000000000LIST",
        "01JDC0000000000000000000NEW",
    ] {
        timed_log_named(dir.path(), id);
    }
    std::fs::write(
        dir.path().join("01JDD0000000000000000000BAD.jsonl"),
        "not a log\n",
    )
    .unwrap();
    let store = subrt::runlog::Store::new(dir.path());
    let mut app = App::new(vec![], vec![]);
    // What the store's thread does: a look, its news put on screen.
    let mut view =
        subrt::tui::store_watch::StoreView::new(store, "01JDA0000000000000000000OLD".into(), &[]);
    app.store_news(view.look());
    let ids: Vec<&str> = app.sessions.iter().map(|s| s.run_id.as_str()).collect();
    assert_eq!(
        ids,
        ["01JDC0000000000000000000NEW", "01JDB000000000000000000LIST"],
        "newest first, none at or below the floor, the bad file skipped"
    );
    app.store_news(view.look());
    assert_eq!(app.sessions.len(), 2, "nothing is added twice");
}

#[test]
fn a_confirmed_kill_hits_the_named_run_even_after_rows_moved() {
    let mut app = app();
    let target = app.sessions[0].run_id.clone();
    app.update(Action::Kill);
    // Meanwhile a new run arrives above it (as a store refresh inserts one).
    app.sessions
        .insert(0, session(99, "sleep 1000", SessionState::Running));
    assert_eq!(
        app.update(Action::Yes),
        Some(subrt::tui::app::Effect::Kill(target)),
        "the run the question named, not the row it was on"
    );
}

#[test]
fn ctrl_letters_are_not_their_letters() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use subrt::tui::keymap::action_for;
    let ctrl = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
    let modal = subrt::tui::app::Modal::None;
    assert_eq!(
        action_for(ctrl('k'), &modal, false),
        None,
        "Ctrl-K is not kill"
    );
    assert_eq!(action_for(ctrl('n'), &modal, false), None);
    assert_eq!(action_for(ctrl('l'), &modal, false), Some(Action::Redraw));
    assert_eq!(action_for(ctrl('c'), &modal, false), Some(Action::Quit));
    let mut app = app();
    let focus = app.focus;
    assert_eq!(
        app.update(Action::Redraw),
        Some(subrt::tui::app::Effect::Redraw)
    );
    assert_eq!(app.focus, focus, "focus did not move");
}

#[test]
fn the_run_selected_at_start_shows_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut stored = summary(
        20,
        "python3 slow.py",
        RunState::Finished,
        Some(EndStatus::Exited),
        Some(0),
    );
    stored.path = timed_log(dir.path());
    // As at start: the store is listed in a task, then the first run's
    // output is read in another.
    let mut app = App::new(vec![], vec![]);
    app.listed(Ok((vec![stored], vec![], 2000)));
    assert!(
        app.load_request.is_some(),
        "the selected run's output is asked for"
    );
    settle(&mut app);
    let lines: Vec<String> = app.sessions[0].stdout.lines().map(|l| l.text()).collect();
    assert_eq!(lines, ["one", "two", "three"]);
    assert!(render(&app, 100, 30).contains("three"));
}

#[test]
fn r_runs_a_run_again_in_its_own_dir_with_its_own_timeout() {
    let mut stored = summary(
        5,
        "python3 hangs.py",
        RunState::Finished,
        Some(EndStatus::TimedOut),
        Some(137),
    );
    stored.working_dir = PathBuf::from("/srv/subs/alice");
    stored.timeout = Some(2.5);
    let mut app = App::new(vec![], vec![Session::stored(&stored)]);
    app.default_dir = "/where/the/dashboard/runs".into();
    assert_eq!(
        app.update(Action::Rerun),
        Some(subrt::tui::app::Effect::Launch)
    );
    let pending = app.pending_run.as_ref().unwrap();
    assert_eq!(pending.working_dir, PathBuf::from("/srv/subs/alice"));
    assert_eq!(pending.timeout, Some(Duration::from_millis(2500)));
    assert_eq!(pending.command, "python3 hangs.py");
}

#[test]
fn the_title_counts_states_and_batch_runs_show_their_submission() {
    let mut stored = summary(
        3,
        "sh main.sh",
        RunState::Finished,
        Some(EndStatus::Exited),
        Some(1),
    );
    stored.labels.insert("submission".into(), "alice".into());
    let app = App::new(
        vec![],
        vec![
            Session::stored(&stored),
            session(4, "sleep 9", SessionState::Running),
            session(5, "true", SessionState::Exited(0)),
            session(6, "true", SessionState::Exited(0)),
        ],
    );
    let screen = render(&app, 120, 20);
    assert!(
        screen.contains("Sessions (4)  1 running · 1 failed · 2 ok"),
        "{screen}"
    );
    assert!(screen.contains("alice: sh main.sh"), "{screen}");
}

/// The Sessions rows shown (their commands), top to bottom.
fn shown_commands(screen: &str) -> Vec<&'static str> {
    [
        "python3 main.py",
        "sh setup-heavy.sh",
        "python3 ok.py",
        "python3 broken.py",
        "sleep 1000",
        "yes",
        "make test",
        "other-harness run",
        "crashed run",
    ]
    .into_iter()
    .filter(|c| screen.contains(c))
    .collect()
}

#[test]
fn the_failed_view_shows_only_failures_and_says_so() {
    use subrt::tui::filter::View;
    let mut app = app();
    app.update(Action::ShowView(View::Failed));
    let screen = render(&app, 120, 30);
    assert!(screen.contains("Sessions (2 of 9) [failed]"), "{screen}");
    assert_eq!(shown_commands(&screen), ["python3 broken.py", "make test"]);
    // The selection moved to a shown run: its output is what the panes show.
    assert_eq!(
        app.sessions[app.selected_session].command,
        "python3 broken.py"
    );
    insta::assert_snapshot!(render_part(&app, Part::Sessions, 120, 12));
    app.update(Action::ShowView(View::TimedOut));
    assert_eq!(shown_commands(&render(&app, 120, 30)), ["sleep 1000"]);
    app.update(Action::ShowView(View::TimedOut));
    assert_eq!(
        shown_commands(&render(&app, 120, 50)).len(),
        9,
        "the same key: all again"
    );
}

#[test]
fn slash_on_sessions_filters_as_you_type() {
    let mut app = app();
    app.update(Action::Search);
    for c in "PYTHON3".chars() {
        app.update(Action::Type(c));
    }
    let screen = render(&app, 120, 30);
    assert!(screen.contains("filter: PYTHON3█"), "{screen}");
    assert_eq!(
        shown_commands(&screen),
        ["python3 main.py", "python3 ok.py", "python3 broken.py"]
    );
    for c in " b".chars() {
        app.update(Action::Type(c));
    }
    app.update(Action::Yes); // keep it
    let screen = render(&app, 120, 30);
    assert!(screen.contains("Sessions (1 of 9) /PYTHON3 b"), "{screen}");
    assert_eq!(shown_commands(&screen), ["python3 broken.py"]);
    insta::assert_snapshot!(render_part(&app, Part::Sessions, 120, 12));
    // Kill and friends act on the run shown selected, never on a hidden one.
    assert_eq!(
        app.sessions[app.selected_session].command,
        "python3 broken.py"
    );
    app.update(Action::Search);
    app.update(Action::Close); // Esc clears
    assert_eq!(shown_commands(&render(&app, 120, 50)).len(), 9);
}

#[test]
fn e_jumps_from_failure_to_failure_around_the_end() {
    let mut app = app();
    let mut seen = Vec::new();
    for _ in 0..4 {
        app.update(Action::NextFailure);
        seen.push(app.sessions[app.selected_session].command.clone());
    }
    assert_eq!(
        seen,
        [
            "python3 broken.py",
            "sleep 1000",
            "make test",
            "python3 broken.py"
        ]
    );
    app.update(Action::PrevFailure);
    assert_eq!(app.sessions[app.selected_session].command, "make test");
}

#[test]
fn details_of_the_selected_run() {
    let mut app = app();
    app.update(Action::NextFailure); // python3 broken.py
    let run = &mut app.sessions[app.selected_session];
    run.log = Some(PathBuf::from("/store/01JD0000000000000000000004"));
    run.summary.as_mut().unwrap().labels =
        [("submission".to_owned(), "alice\x1b]0;x\x07".to_owned())].into();
    // A session an inspect sandbox (or the Python API) wrote files into.
    run.summary.as_mut().unwrap().files = subrt::runlog::FileCounts {
        read: 1,
        written: 2,
    };
    app.update(Action::Details);
    let screen = render(&app, 120, 36);
    for expected in [
        "Run 01JD0000000000000000000004",
        "command      python3 broken.py",
        "state        exited 1",
        "working dir",
        "started",
        "output       stdout",
        "cost         peak memory 48M, CPU 1.25 s user, 0.50 s system",
        "files        2 written, 1 read",
        "labels       submission=alice ",
        "log          /store/01JD0000000000000000000004",
    ] {
        assert!(
            screen.contains(expected),
            "details lack {expected:?}:\n{screen}"
        );
    }
    insta::assert_snapshot!(render_part(&app, Part::Dialog, 120, 30));
    app.update(Action::Close);
    assert!(!render(&app, 120, 36).contains("Esc closes"));
}

#[test]
fn space_marks_runs_and_k_kills_exactly_the_marked_ones() {
    use subrt::tui::app::{Effect, Modal};
    let mut app = app();
    // Mark the first (running) and second (setup) runs: Space moves down.
    app.update(Action::Pause);
    app.update(Action::Pause);
    assert_eq!(app.marked.len(), 2);
    let screen = render(&app, 120, 36);
    assert!(screen.contains("2 marked"), "{screen}");
    assert!(
        screen.contains("*1JD0000000000000000000001") || screen.contains("*00000001"),
        "{screen}"
    );
    app.update(Action::Kill);
    let Modal::ConfirmKillMarked(ids) = app.modal.clone() else {
        panic!("k with marks asks about them: {:?}", app.modal)
    };
    let screen = render(&app, 120, 36);
    assert!(screen.contains("Kill these 2 runs"), "{screen}");
    assert!(
        screen.contains("python3 main.py") && screen.contains("sh setup-heavy.sh"),
        "{screen}"
    );
    insta::assert_snapshot!(render_part(&app, Part::Sessions, 120, 14));
    // A run arriving meanwhile moves every row: `y` still kills those named.
    app.sessions.insert(
        0,
        session(42, "newcomer", subrt::tui::session::SessionState::Running),
    );
    let effect = app.update(Action::Yes);
    assert_eq!(effect, Some(Effect::KillMany(ids.clone())));
    assert_eq!(
        ids,
        ["01JD0000000000000000000001", "01JD0000000000000000000002"]
    );
    assert!(app.marked.is_empty(), "the marks are used up");
}

#[test]
fn a_running_run_silent_for_a_minute_shows_quiet() {
    let mut app = app();
    let hung = &mut app.sessions[1]; // sh setup-heavy.sh, in setup
    hung.last_output = std::time::Instant::now().checked_sub(Duration::from_secs(125));
    let chatty = &mut app.sessions[0];
    chatty.last_output = Some(std::time::Instant::now());
    let screen = render(&app, 120, 36);
    let row = |needle: &str| {
        screen
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row("sh setup-heavy.sh").contains("quiet 2:0"), "{screen}");
    assert!(row("python3 main.py").contains("running"), "{screen}");
}

/// An app whose selected run printed `lines` short lines on stdout.
fn app_with_output(lines: usize) -> App {
    let mut run = session(1, "printf lines", SessionState::Exited(0));
    for i in 1..=lines {
        run.stdout.push(
            format!("line {i}\n").as_bytes(),
            Duration::from_millis(i as u64),
        );
    }
    let mut app = App::new(Vec::new(), vec![run]);
    app.focus = subrt::tui::app::Focus::Stdout;
    app
}

#[test]
fn top_of_a_short_output_shows_its_first_line() {
    let mut app = app_with_output(6);
    app.update(Action::Top);
    let screen = render(&app, 100, 30);
    assert!(
        screen.contains("line 1") && screen.contains("line 6"),
        "{screen}"
    );
    app.update(Action::PageUp);
    app.update(Action::PageUp);
    let screen = render(&app, 100, 30);
    assert!(
        screen.contains("line 1"),
        "PgUp past the top shows blank space:\n{screen}"
    );
    app.update(Action::Bottom);
    assert!(render(&app, 100, 30).contains("line 6"));
}

#[test]
fn top_of_a_long_output_then_bottom_follows_again() {
    let mut app = app_with_output(500);
    app.update(Action::Top);
    let screen = render(&app, 100, 30);
    assert!(
        screen.contains("line 1 ") || screen.contains("line 1│"),
        "{screen}"
    );
    assert!(!screen.contains("line 500"), "{screen}");
    app.update(Action::Bottom);
    let screen = render(&app, 100, 30);
    assert!(
        screen.contains("line 500"),
        "G shows the last line:\n{screen}"
    );
    assert!(app.follow, "G follows again");
}

#[test]
fn wrap_on_still_shows_the_newest_line() {
    let mut run = session(1, "long lines", SessionState::Exited(0));
    for i in 1..=40 {
        let line = format!("{i:03} {}\n", "x".repeat(150));
        run.stdout.push(line.as_bytes(), Duration::from_millis(i));
    }
    run.stdout
        .push(b"the newest line\n", Duration::from_millis(41));
    let mut app = App::new(Vec::new(), vec![run]);
    app.update(Action::ToggleWrap);
    let screen = render(&app, 100, 30);
    assert!(
        screen.contains("the newest line"),
        "wrap hid the newest line:\n{screen}"
    );
}

#[test]
fn the_filter_finds_runs_by_label() {
    let mut app = app();
    app.sessions[4].summary.as_mut().unwrap().labels =
        [("batch".to_owned(), "01JBATCH".to_owned())].into();
    app.update(Action::Search);
    for c in "batch=01jb".chars() {
        app.update(Action::Type(c));
    }
    assert_eq!(shown_commands(&render(&app, 120, 50)), ["sleep 1000"]);
}

#[test]
fn leaked_slurm_jobs_are_listed_and_cancelled_by_id() {
    use subrt::runtime::slurm::ManagedJob;
    use subrt::tui::app::Effect;
    let mut app = app();
    app.update(Action::Leftovers);
    app.set_leftovers(Ok(Vec::new()));
    app.leftover_jobs = vec![ManagedJob {
        job_id: "77".into(),
        name: "subrt-cluster-01JD0000000000000000000042".into(),
        state: "RUNNING".into(),
        nodes: "n2".into(),
        owner: "vm/4242/1".into(),
        owner_gone: true,
    }];
    let screen = render(&app, 140, 30);
    assert!(screen.contains("job 77 on n2"), "{screen}");
    assert!(
        screen.contains("01JD0000000000000000000042") && screen.contains("cluster"),
        "{screen}"
    );
    insta::assert_snapshot!(render_part(&app, Part::Dialog, 140, 30));
    assert_eq!(app.update(Action::Kill), None, "k asks first");
    assert!(render(&app, 140, 30).contains("Cancel Slurm job 77"));
    assert_eq!(app.update(Action::No), None);
    assert_eq!(app.modal, subrt::tui::app::Modal::Leftovers, "n goes back");
    app.update(Action::Remove);
    assert_eq!(
        app.update(Action::Yes),
        Some(Effect::CancelJob("77".into()))
    );
}

#[test]
fn z_gives_the_focused_pane_the_whole_screen() {
    let mut app = app_with_output(60);
    app.update(Action::Zoom);
    let screen = render(&app, 100, 30);
    assert!(
        !screen.contains("Sessions") && !screen.contains("Environments"),
        "{screen}"
    );
    assert!(!screen.contains("stderr"), "{screen}");
    // 29 rows but the status line, 27 inside the borders: the last lines.
    assert!(
        screen.contains("line 60") && screen.contains("line 34"),
        "{screen}"
    );
    assert!(
        !screen.contains("line 33\n") && !screen.contains("line 33 "),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
    app.update(Action::Zoom);
    let screen = render(&app, 100, 30);
    assert!(
        screen.contains("Sessions") && screen.contains("stderr"),
        "{screen}"
    );
}

#[test]
fn search_ignores_case_unless_asked_and_says_what_it_searched() {
    let mut app = app_with_output(5_100);
    let search = |app: &mut App, text: &str| {
        app.update(Action::Search);
        for c in text.chars() {
            app.update(Action::Type(c));
        }
        app.update(Action::Yes);
        let said = app.message.clone();
        app.update(Action::Close);
        said
    };
    let said = search(&mut app, "LINE 5099");
    assert!(
        said.contains("no match"),
        "upper case is matched exactly: {said}"
    );
    let said = search(&mut app, "Line 5099");
    assert!(said.contains("no match"), "{said}");
    let said = search(&mut app, "line 5099");
    assert!(said.contains("match 1 of 1"), "{said}");
    assert!(
        said.contains("in the last 5000 lines") && said.contains("subrt export"),
        "a pane that dropped lines says the search saw only its last ones: {said}"
    );
    let mut short = app_with_output(3);
    short.sessions[0]
        .stdout
        .push(b"An ERROR here\nan Error there\n", Duration::from_millis(9));
    let said = search(&mut short, "LINE");
    assert!(
        said.contains("no match") && !said.contains("last"),
        "{said}"
    );
    let said = search(&mut short, "error");
    assert!(said.contains("of 2"), "lower case finds any case: {said}");
    let said = search(&mut short, "ERROR");
    assert!(said.contains("of 1"), "upper case finds itself: {said}");
}

#[test]
fn a_status_message_goes_after_its_time() {
    let mut app = app();
    app.say("/xyz: no match");
    let bar = render_part(&app, Part::Status, 100, 1);
    assert!(bar.contains("no match"), "{bar}");
    // As if MESSAGE_FOR had passed (the event loop wakes up for it).
    app.message_until = Some(std::time::Instant::now() - Duration::from_millis(1));
    let bar = render_part(&app, Part::Status, 100, 1);
    assert!(!bar.contains("no match"), "{bar}");
    assert!(bar.contains("n new"), "the hints stay: {bar}");
}

#[test]
fn the_store_thread_follows_another_processes_run_to_its_end() {
    use subrt::tui::store_watch::StoreView;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[[environments]]\nname = \"local\"\ntype = \"local\"\n",
    )
    .unwrap();
    // Another process's run: it prints, waits, prints, ends.
    let mut other = std::process::Command::new(env!("CARGO_BIN_EXE_subrt"))
        .arg("--config")
        .arg(&config)
        .args(["run", "--", "echo FIRST; sleep 1.5; echo SECOND; exit 4"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let store = subrt::runlog::Store::new(dir.path().join("runs"));
    let mut app = App::new(vec![], vec![]);
    let mut view = StoreView::new(store, String::new(), &[]);
    let texts = |app: &App| -> Vec<String> {
        app.sessions
            .first()
            .map(|s| s.stdout.lines().map(|l| l.text()).collect())
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while texts(&app) != ["FIRST"] {
        assert!(std::time::Instant::now() < deadline, "FIRST never showed");
        app.store_news(view.look());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(app.sessions[0].state, SessionState::Running);
    // While it sleeps, silent, its time moves and its bytes are counted,
    // as `subrt ls` reads them.
    let summary = |app: &App| app.sessions[0].summary.clone().unwrap();
    assert_eq!(summary(&app).bytes_out, 6);
    let before = app.sessions[0].elapsed();
    std::thread::sleep(Duration::from_millis(600));
    app.store_news(view.look());
    assert!(
        app.sessions[0].elapsed() >= before + Duration::from_millis(500),
        "TIME stood still: {before:?} then {:?}",
        app.sessions[0].elapsed()
    );
    while app.sessions[0].state == SessionState::Running {
        assert!(std::time::Instant::now() < deadline, "the run never ended");
        app.store_news(view.look());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(texts(&app), ["FIRST", "SECOND"]);
    let last = summary(&app);
    assert_eq!(
        (last.bytes_out, last.state),
        (13, subrt::runlog::RunState::Finished)
    );
    assert_eq!(app.sessions[0].state, SessionState::Exited(4));
    assert_eq!(other.wait().unwrap().code(), Some(4));
    assert_eq!(app.sessions.len(), 1, "listed once");
}

#[test]
fn m_shows_every_message_whole_newest_first() {
    let mut app = app();
    app.update(Action::Messages);
    assert!(render(&app, 100, 30).contains("no message yet"));
    app.update(Action::Close);
    let long = format!(
        "run 01JD…: {}",
        "a message longer than any status bar ".repeat(6)
    );
    app.say(long.clone());
    app.say("the newest\x1b]0;title\x07 message");
    app.update(Action::Messages);
    let screen = render(&app, 100, 30);
    let newest = screen
        .find("the newest message")
        .expect("newest shown, sanitised");
    let older = screen.find("run 01JD…").expect("the long one shown");
    assert!(newest < older, "newest first:\n{screen}");
    assert!(
        screen.contains("status bar a message longer"),
        "wrapped, not cut:\n{screen}"
    );
    insta::assert_snapshot!(render_part(&app, Part::Dialog, 100, 30));
    app.update(Action::Close);
    assert!(!render(&app, 100, 30).contains("newest first"));
}

/// One meaning per word: over the same store, the dashboard's views, `subrt
/// ls --state` and the batch's summary count the same runs as failed,
/// timed out and killed (the dashboard's F left out killed runs, ls
/// counted them as failed, the summary had no killed count).
#[test]
fn the_outcome_words_agree_between_the_dashboard_ls_and_the_batch_summary() {
    use subrt::tui::filter::View;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[[environments]]\nname = \"local\"\ntype = \"local\"\n\
         environment = { include_os_env = true }\n",
    )
    .unwrap();
    let mut batch = String::new();
    // Two of each; `kill -TERM 1` ends the session's PID namespace from
    // inside, a kill from outside the command.
    for (i, command) in [
        "true",
        "true",
        "exit 3",
        "exit 4",
        "{ run = \"sleep 5\", timeout = 0.2 }",
        "{ run = \"sleep 5\", timeout = 0.2 }",
        "kill -TERM 1; sleep 5",
        "kill -TERM 1; sleep 5",
    ]
    .iter()
    .enumerate()
    {
        std::fs::create_dir_all(dir.path().join(format!("s{i}"))).unwrap();
        let command = if command.starts_with('{') {
            (*command).to_owned()
        } else {
            format!("{command:?}")
        };
        batch += &format!(
            "[[submissions]]\nid = \"s{i}\"\nworkdir = \"s{i}\"\ncommands = [{command}]\n"
        );
    }
    std::fs::write(dir.path().join("batch.toml"), batch).unwrap();
    let subrt = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_subrt"))
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = subrt(&[
        "batch",
        dir.path().join("batch.toml").to_str().unwrap(),
        "--json",
    ]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    let ls = |state: &str| {
        String::from_utf8_lossy(&subrt(&["ls", "--json", "--state", state]).stdout)
            .lines()
            .count()
    };
    let store = subrt::runlog::Store::new(dir.path().join("runs"));
    let (runs, warnings) = store.list().unwrap();
    let mut app = App::new(vec![], vec![]);
    let count = runs.len();
    app.listed(Ok((runs, warnings, count)));
    let mut shown = |view: View| {
        app.filter.toggle(view);
        let n = app.visible_sessions().len();
        app.filter.toggle(view);
        n
    };
    let failed = shown(View::Failed);
    let timed_out = shown(View::TimedOut);
    let killed = app
        .sessions
        .iter()
        .filter(|s| s.state.verdict() == Some(subrt::runtime::Verdict::Killed))
        .count();
    assert_eq!(
        (summary["failed"].as_u64(), ls("failed"), failed),
        (Some(2), 2, 2),
        "{summary}"
    );
    assert_eq!(
        (summary["timed_out"].as_u64(), ls("timed_out"), timed_out),
        (Some(2), 2, 2),
        "{summary}"
    );
    assert_eq!(
        (summary["killed"].as_u64(), ls("killed"), killed),
        (Some(2), 2, 2),
        "{summary}"
    );
    assert_eq!((summary["passed"].as_u64(), ls("ok")), (Some(2), 2));
}
