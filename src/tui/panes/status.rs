//! The status bar: key hints, then the last message.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{App, Modal};
use crate::tui::keymap;
use crate::tui::replay::REPLAY_BYTES;

/// `m:ss.s`.
fn clock(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    format!("{}:{:04.1}", (s / 60.0) as u64, s % 60.0)
}

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
        let mut spans = vec![Span::styled(
            format!(
                " {state} replay {} / {} ×{}",
                clock(replay.position),
                clock(replay.length),
                replay.speed
            ),
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        )];
        // What it cannot play, where the clock is.
        if let Some(held) = replay.cut {
            spans.push(Span::styled(
                format!(
                    " holds up to {} (first {} MiB)",
                    clock(held),
                    REPLAY_BYTES >> 20
                ),
                Style::default().fg(Color::LightRed),
            ));
        }
        let keys: Vec<String> = keymap::REPLAY
            .hints()
            .into_iter()
            .map(|(key, word)| format!("{key} {word}"))
            .collect();
        spans.push(Span::styled(
            format!("   {}", keys.join("  ")),
            Style::default().fg(Color::DarkGray),
        ));
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
        return;
    }
    // As many hints as leave room for the message (at least 24 columns).
    let message = app.message().chars().count() + 3;
    let room = usize::from(area.width).saturating_sub(message.clamp(3, 24));
    let mut spans = Vec::new();
    let mut used = 0;
    // The main screen's (a dialog says its own keys).
    for (key, what) in keymap::MAIN.hints() {
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
        format!(" │ {}", app.message()),
        Style::default().fg(Color::Gray),
    ));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
