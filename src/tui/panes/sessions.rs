//! The Sessions pane: this process's sessions, then the store's runs.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Row, Table, TableState};

use super::block;
use crate::tui::app::{App, Focus, SessionState, short_id};

fn state_color(state: SessionState) -> Color {
    match state {
        SessionState::Setup | SessionState::Running | SessionState::Live => Color::Yellow,
        SessionState::Exited(0) => Color::Green,
        SessionState::Exited(_) | SessionState::SetupFailed(_) => Color::Red,
        SessionState::TimedOut | SessionState::Killed | SessionState::Interrupted => Color::Magenta,
        SessionState::Empty => Color::DarkGray,
    }
}

/// `m:ss`, or `h:mm:ss` from an hour on.
pub(crate) fn clock(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let rows: Vec<Row> = app
        .sessions
        .iter()
        .map(|s| {
            // Command lines come from configs and users, but may hold
            // control characters: show them as `?`.
            let command: String = s
                .command
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            Row::new(vec![
                short_id(&s.run_id).to_owned(),
                s.environment.clone(),
                command,
                s.state.label(),
                clock(s.elapsed()),
            ])
            .style(Style::default().fg(state_color(s.state)))
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Min(10),
            Constraint::Length(16),
            Constraint::Length(7),
        ],
    )
    .header(
        Row::new(["RUN", "ENV", "COMMAND", "STATE", "TIME"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(block(
        format!(" Sessions ({}) ", app.sessions.len()),
        app,
        Focus::Sessions,
    ))
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
    .highlight_symbol("▶ ");
    let selected = (!app.sessions.is_empty()).then_some(app.selected_session);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}
