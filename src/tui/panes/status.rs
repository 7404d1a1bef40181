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

const HINTS: &[(&str, &str)] = &[
    ("p", "poll"),
    ("k", "kill"),
    ("c", "cleanup"),
    ("s", "layout"),
    ("f", "follow"),
    ("?", "help"),
    ("q", "quit"),
];

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App) {
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
    let mut spans = Vec::new();
    for (key, what) in HINTS {
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
