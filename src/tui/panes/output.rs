//! The output panes: stdout and stderr of the selected session, or both
//! merged in order of arrival with stderr tinted.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::block;
use crate::tui::app::{App, Focus};
use crate::tui::sanitize::OutputLine;

/// Which stream a pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pane {
    Stdout,
    Stderr,
}

fn flags(app: &App) -> String {
    let mut flags = Vec::new();
    if app.follow {
        flags.push("follow");
    }
    if app.wrap {
        flags.push("wrap");
    }
    if app.timestamps {
        flags.push("time");
    }
    if flags.is_empty() {
        String::new()
    } else {
        format!("[{}] ", flags.join(" "))
    }
}

/// Splits spans so that every occurrence of `needle` is highlighted.
fn highlight(line: Line<'static>, needle: &str) -> Line<'static> {
    let mark = Style::default().bg(Color::Yellow).fg(Color::Black);
    let mut spans = Vec::new();
    for span in line.spans {
        let text = span.content.into_owned();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(needle) {
            if at > 0 {
                spans.push(Span::styled(rest[..at].to_owned(), span.style));
            }
            spans.push(Span::styled(needle.to_owned(), mark));
            rest = &rest[at + needle.len()..];
        }
        if !rest.is_empty() {
            spans.push(Span::styled(rest.to_owned(), span.style));
        }
    }
    Line::from(spans)
}

fn render(line: &OutputLine, app: &App, tint: Option<Color>) -> Line<'static> {
    let mut rendered = line.to_line();
    // A match split across two differently styled spans is not marked.
    if !app.search.is_empty() && line.text().contains(&app.search) {
        rendered = highlight(rendered, &app.search);
    }
    if let Some(tint) = tint {
        for span in &mut rendered.spans {
            if span.style.fg.is_none() {
                span.style = span.style.fg(tint);
            }
        }
    }
    if app.timestamps {
        let stamp = format!("{:>8.3} ", line.at.as_secs_f64());
        rendered
            .spans
            .insert(0, Span::styled(stamp, Style::default().fg(Color::DarkGray)));
    }
    rendered
}

/// The lines of a `total`-line buffer to show in `area`: the window that
/// ends `scroll` lines above the end. Only these are rendered.
fn window(total: usize, area: Rect, scroll: usize) -> std::ops::Range<usize> {
    let visible = area.height.saturating_sub(2) as usize;
    let end = total.saturating_sub(scroll);
    end.saturating_sub(visible)..end
}

fn paragraph(
    lines: Vec<Line<'static>>,
    app: &App,
    title: String,
    focus: Focus,
) -> Paragraph<'static> {
    let mut paragraph = Paragraph::new(lines).block(block(title, app, focus));
    if app.wrap {
        paragraph = paragraph.wrap(Wrap { trim: false });
    }
    paragraph
}

pub(super) fn draw_stream(frame: &mut Frame, area: Rect, app: &App, pane: Pane) {
    let (name, focus, index) = match pane {
        Pane::Stdout => ("stdout", Focus::Stdout, 0),
        Pane::Stderr => ("stderr", Focus::Stderr, 1),
    };
    let (lines, title) = match app.selected() {
        Some(session) => {
            let buffer = if pane == Pane::Stdout {
                &session.stdout
            } else {
                &session.stderr
            };
            let range = window(buffer.len(), area, app.scroll[index]);
            let lines: Vec<Line> = buffer
                .lines()
                .skip(range.start)
                .take(range.len())
                .map(|l| render(l, app, None))
                .collect();
            let title = format!(
                " {name} {} {}",
                crate::tui::app::short_id(&session.run_id),
                flags(app)
            );
            (lines, title)
        }
        None => (Vec::new(), format!(" {name} ")),
    };
    frame.render_widget(paragraph(lines, app, title, focus), area);
}

pub(super) fn draw_merged(frame: &mut Frame, area: Rect, app: &App) {
    let (lines, title) = match app.selected() {
        Some(session) => {
            // Merge by the time each line started (stdout first on ties);
            // render only the window.
            let total = session.stdout.len() + session.stderr.len();
            let range = window(total, area, app.scroll[0]);
            let mut out = session.stdout.lines().peekable();
            let mut err = session.stderr.lines().peekable();
            let mut lines = Vec::with_capacity(range.len());
            for position in 0..range.end {
                let take_out = match (out.peek(), err.peek()) {
                    (Some(o), Some(e)) => o.at <= e.at,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                let (line, tint) = if take_out {
                    (out.next().expect("peeked"), None)
                } else {
                    (err.next().expect("peeked"), Some(Color::LightRed))
                };
                if position >= range.start {
                    lines.push(render(line, app, tint));
                }
            }
            let title = format!(
                " stdout+stderr {} {}",
                crate::tui::app::short_id(&session.run_id),
                flags(app)
            );
            (lines, title)
        }
        None => (Vec::new(), " stdout+stderr ".to_owned()),
    };
    frame.render_widget(paragraph(lines, app, title, Focus::Stdout), area);
}
