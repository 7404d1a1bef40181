//! The output panes: stdout and stderr of the selected session, or both
//! merged in order of arrival with stderr tinted.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::block;
use crate::tui::app::{App, Focus};
use crate::tui::sanitize::{OutputLine, find_all};

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

/// Splits spans so that every occurrence of `needle` is highlighted (in the
/// case the search matches, see [`find_all`]).
fn highlight(line: Line<'static>, needle: &str) -> Line<'static> {
    let mark = Style::default().bg(Color::Yellow).fg(Color::Black);
    let mut spans = Vec::new();
    for span in line.spans {
        let text = span.content.into_owned();
        let mut from = 0;
        for at in find_all(&text, needle) {
            if at < from {
                continue; // overlapping matches: the first wins
            }
            if at > from {
                spans.push(Span::styled(text[from..at].to_owned(), span.style));
            }
            let end = at + needle.len();
            spans.push(Span::styled(text[at..end].to_owned(), mark));
            from = end;
        }
        if from < text.len() {
            spans.push(Span::styled(text[from..].to_owned(), span.style));
        }
    }
    Line::from(spans)
}

fn render(line: &OutputLine, app: &App, tint: Option<Color>) -> Line<'static> {
    let mut rendered = line.to_line();
    // A match split across two differently styled spans is not marked.
    if !app.search.is_empty() && !find_all(&line.text(), &app.search).is_empty() {
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

/// What a pane shows of its lines: those in `start..end`, rendered, and
/// the rows to skip at the top of them so that the last one ends at the
/// pane's bottom (with wrap on, a line may take several rows).
struct Window {
    lines: Vec<Line<'static>>,
    skip: u16,
}

/// The window of `total` lines that ends `scroll` lines above the last one
/// (`scroll` past the top shows the top), filling `area`'s rows; `line(i)`
/// renders line `i`. Only the lines shown are rendered, and with wrap off
/// each is one row.
fn window(
    total: usize,
    area: Rect,
    scroll: usize,
    wrap: bool,
    mut line: impl FnMut(usize) -> Line<'static>,
) -> Window {
    let visible = usize::from(area.height.saturating_sub(2));
    let width = area.width.saturating_sub(2).max(1);
    let rows_of = |l: &Line<'static>| {
        if wrap {
            Paragraph::new(l.clone())
                .wrap(Wrap { trim: false })
                .line_count(width)
                .max(1)
        } else {
            1
        }
    };
    let mut end = total.saturating_sub(scroll);
    let mut start = end;
    let mut back = Vec::new();
    let mut rows = 0;
    // Back from the end until the pane is full...
    while start > 0 && rows < visible {
        start -= 1;
        let rendered = line(start);
        rows += rows_of(&rendered);
        back.push(rendered);
    }
    back.reverse();
    let skip = rows.saturating_sub(visible);
    // ...and at the top, on from the end: a pane is never half empty.
    while end < total && rows < visible {
        let rendered = line(end);
        rows += rows_of(&rendered);
        back.push(rendered);
        end += 1;
    }
    Window {
        lines: back,
        skip: u16::try_from(skip).unwrap_or(u16::MAX),
    }
}

fn paragraph(window: Window, app: &App, title: String, focus: Focus) -> Paragraph<'static> {
    let mut paragraph = Paragraph::new(window.lines)
        .block(block(title, app, focus))
        .scroll((window.skip, 0));
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
    let (shown, title) = match app.selected() {
        Some(session) => {
            let buffer = if pane == Pane::Stdout {
                &session.stdout
            } else {
                &session.stderr
            };
            let lines: Vec<&OutputLine> = buffer.lines().collect();
            let shown = window(lines.len(), area, app.scroll[index], app.wrap, |i| {
                render(lines[i], app, None)
            });
            let title = format!(
                " {name} {} {}",
                crate::tui::session::short_id(&session.run_id),
                flags(app)
            );
            (shown, title)
        }
        None => (
            window(0, area, 0, false, |_| Line::default()),
            format!(" {name} "),
        ),
    };
    frame.render_widget(paragraph(shown, app, title, focus), area);
}

pub(super) fn draw_merged(frame: &mut Frame, area: Rect, app: &App) {
    let (shown, title) = match app.selected() {
        Some(session) => {
            // Merged by the time each line started (stdout first on ties).
            let mut out = session.stdout.lines().peekable();
            let mut err = session.stderr.lines().peekable();
            let mut merged: Vec<(&OutputLine, Option<Color>)> =
                Vec::with_capacity(session.stdout.len() + session.stderr.len());
            loop {
                let take_out = match (out.peek(), err.peek()) {
                    (Some(o), Some(e)) => o.at <= e.at,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                merged.push(if take_out {
                    (out.next().expect("peeked"), None)
                } else {
                    (err.next().expect("peeked"), Some(Color::LightRed))
                });
            }
            let shown = window(merged.len(), area, app.scroll[0], app.wrap, |i| {
                render(merged[i].0, app, merged[i].1)
            });
            let title = format!(
                " stdout+stderr {} {}",
                crate::tui::session::short_id(&session.run_id),
                flags(app)
            );
            (shown, title)
        }
        None => (
            window(0, area, 0, false, |_| Line::default()),
            " stdout+stderr ".to_owned(),
        ),
    };
    frame.render_widget(paragraph(shown, app, title, Focus::Stdout), area);
}
