//! The Sessions pane: this process's sessions, then the store's runs.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Row, Table, TableState};

use super::block;
use crate::runtime::Verdict;
use crate::tui::app::{App, Focus};
use crate::tui::filter::Sort;
use crate::tui::session::{SessionState, short_id};

fn state_color(state: SessionState) -> Color {
    match state.verdict() {
        Some(Verdict::Running | Verdict::Idle) => Color::Yellow,
        Some(Verdict::Ok) => Color::Green,
        Some(Verdict::Failed) => Color::Red,
        Some(Verdict::TimedOut | Verdict::Killed | Verdict::Interrupted) => Color::Magenta,
        None => Color::DarkGray,
    }
}

/// `48M`, `1.2G`: bytes in a few characters.
pub(crate) fn bytes_short(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    let mut value = bytes as f64 / 1024.0;
    for unit in UNITS {
        if value < 10.0 {
            return format!("{value:.1}{unit}");
        }
        if value < 1024.0 {
            return format!("{value:.0}{unit}");
        }
        value /= 1024.0;
    }
    format!("{value:.0}P")
}

/// A running run that has printed nothing for this long shows `quiet`
/// in its STATE, with how long: what a hang looks like from outside.
pub const QUIET_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// `m:ss`, or `h:mm:ss` from an hour on.
pub(crate) fn clock(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The RUN column: the whole id when there is room, else `…` and its last
/// 8 characters (the random part of the ULID, which tells runs apart; the
/// output pane's title shows the whole id).
fn run_column(run_id: &str, wide: bool) -> String {
    let id = short_id(run_id);
    let count = id.chars().count();
    if wide || count <= 9 {
        id.to_owned()
    } else {
        let tail: String = id.chars().skip(count - 8).collect();
        format!("…{tail}")
    }
}

/// The title: how many runs, and how many are in each state that matters
/// (`3 running · 7 failed · 2 timed out · 31 ok`), as many whole counts as
/// fit in `width`, the most urgent first.
fn title(app: &App, width: u16) -> String {
    // By verdict, the most urgent first: the words of `ls --state`.
    let parts = Verdict::ALL.map(|verdict| {
        let n = app
            .sessions
            .iter()
            .filter(|s| s.state.verdict() == Some(verdict))
            .count();
        (n, verdict.word())
    });
    let marked = match app.marked.len() {
        0 => String::new(),
        n => format!("{n} marked "),
    };
    let mut title = if app.filter.is_active() {
        let shown = app.visible_sessions().len();
        format!(
            " Sessions ({shown} of {}) {} ",
            app.sessions.len(),
            app.filter.describe()
        )
    } else {
        format!(" Sessions ({}) ", app.sessions.len())
    };
    title.push_str(&marked);
    title.push_str(match app.sort {
        Sort::Start => "",
        Sort::Duration => "by duration ",
        Sort::State => "by state ",
        Sort::Batch => "by batch ",
    });
    let room = usize::from(width.saturating_sub(4));
    let mut first = true;
    for (n, what) in parts.iter().filter(|(n, _)| *n > 0) {
        let part = format!("{}{n} {what} ", if first { " " } else { "· " });
        if title.chars().count() + part.chars().count() > room {
            break;
        }
        title.push_str(&part);
        first = false;
    }
    title
}

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let wide = area.width >= 100;
    let shown = app.visible_sessions();
    // Exact widths that add up to the room there is: a layout solver left
    // to shrink competing columns picks differently from run to run. On a
    // narrow pane TIME goes first, then RUN (the command, the submission's
    // name and the state are what tell runs apart); a column without room
    // is left out, gap and all.
    let room = area.width.saturating_sub(2 + 2 + 5); // borders, marker, gaps
    let run = match room + 1 {
        r if r < 44 => 0,
        _ if wide => 26,
        _ => 9,
    };
    let time = if room + 1 < 32 { 0 } else { 7 };
    let state = if room + 1 < 48 { 11 } else { 14 };
    // What a run's last command held at most, where measured (sandbox,
    // Docker, Slurm): on a wide pane only.
    let peak = if wide && room + 1 >= 120 { 6 } else { 0 };
    let fixed = run + state + time + peak;
    let env = if room >= fixed + 12 + 12 { 12 } else { 0 };
    // The gaps of the columns left out go to the command.
    let unused_gaps = [run, env, time, peak].iter().filter(|w| **w == 0).count() as u16;
    let command = (room + unused_gaps).saturating_sub(fixed + env);
    let columns = [
        ("RUN", run),
        ("ENV", env),
        ("COMMAND", command),
        ("STATE", state),
        ("PEAK", peak),
        ("TIME", time),
    ];
    let keep = |cells: [String; 6]| -> Vec<String> {
        cells
            .into_iter()
            .zip(columns)
            .filter(|(_, (_, width))| *width > 0)
            .map(|(cell, _)| cell)
            .collect()
    };
    let rows: Vec<Row> = shown
        .iter()
        .map(|&i| &app.sessions[i])
        .map(|s| {
            // Command lines come from configs and users, but may hold
            // control characters: show them as `?`.
            // A batch's run is told apart by its name or submission first.
            let mut shown = match &s.name {
                Some(name) => format!("{name}: {}", s.command),
                None => s.command.clone(),
            };
            // Grouped by batch: each row says its batch (the end of its id).
            if app.sort == Sort::Batch {
                let tag = s.batch.as_deref().map_or("-".to_owned(), |b| {
                    b.chars()
                        .skip(b.chars().count().saturating_sub(6))
                        .collect()
                });
                shown = format!("{tag:>6} {shown}");
            }
            let mut command = crate::sanitize::plain(&shown);
            let (state, color) = match s.quiet_for() {
                Some(quiet) if quiet >= QUIET_AFTER => {
                    (format!("quiet {}", clock(quiet)), Color::LightRed)
                }
                _ => (s.state.label(), state_color(s.state)),
            };
            let mut run = run_column(&s.run_id, wide);
            if app.marked.contains(&s.run_id) {
                // A mark in place of the first character (a ULID's is `0`),
                // or before the command when RUN has no room.
                if columns[0].1 == 0 {
                    command.insert(0, '*');
                } else {
                    run = format!("*{}", run.chars().skip(1).collect::<String>());
                }
            }
            let peak = s.peak_memory().map_or("-".to_owned(), bytes_short);
            Row::new(keep([
                run,
                s.environment.clone(),
                command,
                state,
                peak,
                clock(s.elapsed()),
            ]))
            .style(Style::default().fg(color))
        })
        .collect();
    let widths: Vec<Constraint> = columns
        .iter()
        .filter(|(_, width)| *width > 0)
        .map(|(_, width)| Constraint::Length(*width))
        .collect();
    let header: Vec<&str> = columns
        .iter()
        .filter(|(_, width)| *width > 0)
        .map(|(name, _)| *name)
        .collect();
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::default().add_modifier(Modifier::BOLD)))
        .block(block(title(app, area.width), app, Focus::Sessions))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ");
    let selected = shown.iter().position(|&i| i == app.selected_session);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}
