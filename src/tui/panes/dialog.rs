//! Dialogs over the main screen: help and the confirmations.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::tui::action::KEYS;
use crate::tui::app::{App, FORM_FIELDS, short_id};

/// A centred box of at most `width` x `height`, cleared.
fn popup(frame: &mut Frame, area: Rect, width: u16, height: u16, title: &str) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [rect] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(Color::Yellow))
        .title(format!(" {title} "));
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    inner
}

fn text(frame: &mut Frame, area: Rect, lines: Vec<Line<'static>>) {
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

pub(super) fn help(frame: &mut Frame, area: Rect) {
    let inner = popup(frame, area, 76, KEYS.len() as u16 + 2, "Keys (Esc closes)");
    let lines = KEYS
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{keys:<14}"),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    text(frame, inner, lines);
}

fn question(frame: &mut Frame, area: Rect, title: &str, lines: Vec<String>) {
    let inner = popup(frame, area, 56, lines.len() as u16 + 2, title);
    text(frame, inner, lines.into_iter().map(Line::from).collect());
}

pub(super) fn confirm_kill(frame: &mut Frame, area: Rect, run_id: &str) {
    let id = short_id(run_id);
    question(
        frame,
        area,
        "Kill",
        vec![
            format!("Kill session {id} and everything it started?"),
            "y: kill   n: cancel".into(),
        ],
    );
}

pub(super) fn confirm_cleanup(frame: &mut Frame, area: Rect, run_id: &str) {
    let id = short_id(run_id);
    question(
        frame,
        area,
        "Clean up",
        vec![
            format!("Session {id} is running. Kill it and clean up?"),
            "y: clean up   n: cancel".into(),
        ],
    )
}

pub(super) fn confirm_remove(frame: &mut Frame, area: Rect, container_id: &str) {
    let id = container_id.get(..12).unwrap_or(container_id);
    question(
        frame,
        area,
        "Remove",
        vec![
            format!("Remove container {id} (killed first if it runs)?"),
            "y: remove   n: cancel".into(),
        ],
    );
}

pub(super) fn confirm_quit(frame: &mut Frame, area: Rect, app: &App) {
    question(
        frame,
        area,
        "Quit",
        vec![
            format!("{} session(s) started here still run.", app.running_own()),
            "y: clean them up and quit".into(),
            "l: quit at once without cleaning up (their processes and containers end with subrt all the same)".into(),
            "n: cancel".into(),
        ],
    );
}

pub(super) fn new_run(frame: &mut Frame, area: Rect, app: &App) {
    let form = &app.form;
    let inner = popup(frame, area, 72, 9, "New run (Enter starts, Esc cancels)");
    let mut lines: Vec<Line> = FORM_FIELDS
        .iter()
        .zip(&form.fields)
        .enumerate()
        .map(|(i, (label, value))| {
            let focused = i == form.focus;
            let cursor = if focused { "█" } else { "" };
            let style = if focused {
                Style::default()
                    .fg(Color::Cyan)
                    .add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            Line::from(vec![
                Span::styled(format!("{label:>12}: "), style),
                Span::raw(format!("{value}{cursor}")),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(match &form.error {
        Some(error) => Line::styled(error.clone(), Style::default().fg(Color::Red)),
        None => Line::styled(
            "Tab / ↑ ↓ move between fields",
            Style::default().fg(Color::DarkGray),
        ),
    });
    text(frame, inner, lines);
}
