//! The status bar: key hints, then the last message.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{App, Modal};

/// `m:ss.s`.
fn clock(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    format!("{}:{:04.1}", (s / 60.0) as u64, s % 60.0)
}

/// The keys a user reaches for first, most needed first (as many as fit).
const HINTS: &[(&str, &str)] = &[
    ("n", "new"),
    ("/", "filter"),
    ("F", "failed"),
    ("e", "next failure"),
    ("k", "kill"),
    ("Enter", "replay"),
    ("r", "rerun"),
    ("o", "leaks"),
    ("?", "help"),
    ("q", "quit"),
];

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App) {
    if app.modal == Modal::Filter {
        let typed: String = app
            .filter
            .text
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        let prompt = Line::from(vec![
            Span::styled(
                "filter: ",
                Style::default()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{typed}█")),
            Span::styled(
                "   Enter: keep   Esc: clear",
                Style::default().fg(Color::DarkGray),
            ),
        ]);
        frame.render_widget(Paragraph::new(prompt), area);
        return;
    }
    if app.modal == Modal::Search {
        let prompt = Line::from(vec![
            Span::styled(
                "/",
                Style::default()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{}█", app.search)),
            Span::styled(
                "   Enter: find   Esc: cancel",
                Style::default().fg(Color::DarkGray),
            ),
        ]);
        frame.render_widget(Paragraph::new(prompt), area);
        return;
    }
    if let Some(replay) = &app.replay {
        let state = if replay.paused {
            "⏸"
        } else if replay.finished() {
            "■"
        } else {
            "▶"
        };
        let line = Line::from(vec![
            Span::styled(
                format!(
                    " {state} replay {} / {} ×{}",
                    clock(replay.position),
                    clock(replay.duration),
                    replay.speed
                ),
                Style::default()
                    .fg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            ),
            Span::styled(
                "   Space pause  + - speed  ← → 5 s  Home End  Esc stop",
                Style::default().fg(Color::DarkGray),
            ),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    // As many hints as leave room for the message (at least 24 columns).
    let message = app.message.chars().count() + 3;
    let room = usize::from(area.width).saturating_sub(message.clamp(3, 24));
    let mut spans = Vec::new();
    let mut used = 0;
    for (key, what) in HINTS {
        let width = key.chars().count() + what.chars().count() + 3;
        if used + width > room {
            break;
        }
        used += width;
        spans.push(Span::styled(
            format!(" {key}"),
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(format!(" {what} ")));
    }
    spans.push(Span::styled(
        format!(" │ {}", app.message),
        Style::default().fg(Color::Gray),
    ));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
