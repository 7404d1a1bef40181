//! Dialogs over the main screen: help and the confirmations.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::tui::app::App;
use crate::tui::form::{self, FORM_FIELDS};
use crate::tui::keymap;
use crate::tui::session::short_id;

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

/// The help, from the key tables; it scrolls (↑ ↓ PgUp PgDn) where the
/// screen is too small to show it whole.
pub(super) fn help(frame: &mut Frame, area: Rect, app: &App) {
    const KEYS: usize = 16;
    let width = 86.min(area.width);
    // What a key does, wrapped at words beside its keys.
    let room = usize::from(width.saturating_sub(2))
        .saturating_sub(KEYS)
        .max(16);
    let mut lines = Vec::new();
    for (title, bindings) in keymap::help() {
        if !lines.is_empty() {
            lines.push(Line::default());
        }
        lines.push(Line::styled(
            title,
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
        for (keys, what) in bindings {
            for (i, part) in wrap_words(what, room).into_iter().enumerate() {
                let keys = if i == 0 { keys.as_str() } else { "" };
                lines.push(Line::from(vec![
                    Span::styled(
                        format!("{keys:<KEYS$}"),
                        Style::default().add_modifier(Modifier::BOLD),
                    ),
                    Span::raw(part),
                ]));
            }
        }
    }
    let paragraph = Paragraph::new(lines).wrap(Wrap { trim: false });
    let rows = paragraph.line_count(width.saturating_sub(2));
    let height = (rows as u16).saturating_add(2).min(area.height);
    let visible = usize::from(height.saturating_sub(2));
    let top = app.help_scroll.min(rows.saturating_sub(visible));
    app.help_rows.set((rows, visible));
    let title = if rows > visible {
        format!(
            "Keys {}-{} of {rows} (↑ ↓ PgUp PgDn scroll, Esc closes)",
            top + 1,
            (top + visible).min(rows)
        )
    } else {
        "Keys (Esc closes)".to_owned()
    };
    let inner = popup(frame, area, width, height, &title);
    frame.render_widget(paragraph.scroll((top as u16, 0)), inner);
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let line = lines.last_mut().expect("never empty");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_owned());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// A question in a box as tall as its wrapped lines (the answer keys on
/// the last line must show).
fn question(frame: &mut Frame, area: Rect, title: &str, lines: Vec<String>) {
    let width = 64.min(area.width);
    let paragraph = Paragraph::new(lines.into_iter().map(Line::from).collect::<Vec<_>>())
        .wrap(Wrap { trim: false });
    let rows = paragraph.line_count(width.saturating_sub(2)) as u16;
    let inner = popup(frame, area, width, rows + 2, title);
    frame.render_widget(paragraph, inner);
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

/// Kill these runs? Each is named, by id and name or command, so that
/// what `y` kills is what the question shows (the first 10, and a count).
pub(super) fn confirm_kill_marked(frame: &mut Frame, area: Rect, app: &App, ids: &[String]) {
    let mut lines = vec![format!(
        "Kill these {} runs and everything they started?",
        ids.len()
    )];
    for id in ids.iter().take(10) {
        let what = app
            .session(id)
            .map(|s| match &s.name {
                Some(name) => format!("{name}: {}", s.command),
                None => s.command.clone(),
            })
            .unwrap_or_default();
        let line: String = format!("  {}  {}", short_id(id), clean(&what))
            .chars()
            .take(70)
            .collect();
        lines.push(line);
    }
    if ids.len() > 10 {
        lines.push(format!("  and {} more", ids.len() - 10));
    }
    lines.push("y: kill them all   n: cancel".into());
    let inner = popup(frame, area, 76, lines.len() as u16 + 2, "Kill marked");
    text(frame, inner, lines.into_iter().map(Line::from).collect());
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

pub(super) fn confirm_cancel_job(frame: &mut Frame, area: Rect, job_id: &str) {
    question(
        frame,
        area,
        "Cancel job",
        vec![
            format!("Cancel Slurm job {job_id} and everything it runs?"),
            "y: cancel it   n: keep it".into(),
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
    let inner = popup(frame, area, 72, 10, "New run (Enter starts, Esc cancels)");
    let history = app.command_history().len();
    let mut lines: Vec<Line> = FORM_FIELDS
        .iter()
        .zip(&form.fields)
        .enumerate()
        .map(|(i, (label, value))| {
            let focused = i == form.focus;
            let style = if focused {
                Style::default()
                    .fg(Color::Cyan)
                    .add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            let value = clean(value);
            let shown = match (i, focused) {
                // Picked from a list, not typed: no cursor.
                (form::ENVIRONMENT, true) => {
                    let at = app.environments.iter().position(|e| e.name == value);
                    let of = app.environments.len();
                    format!("‹ {value} ›  {} of {of}, ↑ ↓ pick", at.map_or(0, |a| a + 1))
                }
                (form::COMMAND, true) => match form.history_at {
                    Some(at) => format!("{value}█  (earlier {} of {history})", at + 1),
                    None => format!("{value}█"),
                },
                (_, true) => format!("{value}█"),
                _ => value,
            };
            Line::from(vec![
                Span::styled(format!("{label:>12}: "), style),
                Span::raw(shown),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(match &form.error {
        Some(error) => Line::styled(error.clone(), Style::default().fg(Color::Red)),
        None => Line::styled(
            "Tab moves between fields; ↑ ↓ on the command: earlier commands",
            Style::default().fg(Color::DarkGray),
        ),
    });
    text(frame, inner, lines);
}

/// Text from a run's log or config on one line: control characters (and
/// so escape sequences) shown as `?`.
/// `text` (a command, a label, a path: untrusted) as it may reach the
/// screen: see [`crate::sanitize::plain`].
fn clean(text: &str) -> String {
    crate::sanitize::plain(text)
}

/// The details of run `run_id` (`d`): where and how it runs, what holds
/// it, how it ended, what it wrote, where its log is.
pub(super) fn details(frame: &mut Frame, area: Rect, app: &App, run_id: &str) {
    let mut rows: Vec<(&str, String)> = Vec::new();
    match app.session(run_id) {
        None => rows.push(("run", format!("{run_id} is no longer listed"))),
        Some(s) => {
            rows.push(("run", s.run_id.clone()));
            if let Some(name) = &s.name {
                rows.push(("name", name.clone()));
            }
            let kind = s
                .supervisor()
                .map(|sup| sup.info().kind)
                .or_else(|| s.kind.clone())
                .unwrap_or_default();
            rows.push((
                "environment",
                format!("{} {kind}", s.environment).trim().to_owned(),
            ));
            rows.push(("command", s.command.clone()));
            if let Some(dir) = &s.working_dir {
                rows.push(("working dir", dir.display().to_string()));
            }
            let timeout = s.timeout.map_or("no timeout".to_owned(), |t| {
                format!("timeout {}", super::sessions::clock(t))
            });
            rows.push((
                "state",
                format!(
                    "{} after {}, {timeout}",
                    s.state.label(),
                    super::sessions::clock(s.elapsed())
                ),
            ));
            if let Some(sup) = s.supervisor() {
                let info = sup.info();
                rows.push((
                    "owner",
                    format!("this dashboard, pid {}", std::process::id()),
                ));
                rows.push(("containment", info.containment.describe().to_owned()));
                if let Some(id) = &info.container_id {
                    rows.push(("container", id.clone()));
                }
                if let Some(job) = &info.slurm_job {
                    rows.push(("slurm", format!("job {} on node {}", job.job_id, job.node)));
                }
                match (info.pid, info.init_pid) {
                    (Some(pid), init) => rows.push((
                        "process",
                        format!(
                            "pid {pid}, group {}{}",
                            info.pgid.unwrap_or(pid as i32),
                            init.map_or(String::new(), |i| format!(", namespace init {i}"))
                        ),
                    )),
                    (None, Some(init)) => rows.push(("process", format!("namespace init {init}"))),
                    (None, None) => {}
                }
            } else {
                if let Some(p) = &s.last_process {
                    let init = p
                        .init
                        .map_or(String::new(), |(i, _)| format!(", namespace init {i}"));
                    rows.push(("process", format!("pid {}, group {}{init}", p.pid, p.pgid)));
                }
                if let Some(job) = &s.slurm_job {
                    rows.push(("slurm", format!("job {job}")));
                }
                if let Some(owner) = &s.owner {
                    rows.push(("owner", format!("{} pid {}", owner.host, owner.pid)));
                }
            }
            if let Some(run) = &s.summary {
                if let Some(containment) = run.containment
                    && s.supervisor().is_none()
                {
                    rows.push(("containment", containment.describe().to_owned()));
                }
                rows.push(("started", run.started_at.clone()));
                if let Some(outcome) = &run.outcome {
                    let signal = outcome
                        .signal
                        .map_or(String::new(), |n| format!(", signal {n}"));
                    let mut how = format!("exit code {}{signal}", outcome.exit_code);
                    if outcome.timed_out {
                        how.push_str(", timed out");
                    }
                    if outcome.killed {
                        how.push_str(", killed");
                    }
                    if let Some(failure) = &outcome.setup_failure {
                        how.push_str(&format!(", setup `{}` failed", failure.command));
                    }
                    if let Some(by) = outcome.killed_by {
                        how.push_str(&format!(", ended by {by}"));
                    }
                    if let Some(lost) = &outcome.status_lost {
                        how.push_str(&format!(", status lost: {lost}"));
                    }
                    rows.push(("ended", how));
                    let usage = outcome.usage;
                    if !usage.is_empty() {
                        let mut cost = Vec::new();
                        if let Some(peak) = usage.peak_memory_bytes {
                            cost.push(format!(
                                "peak memory {}",
                                super::sessions::bytes_short(peak)
                            ));
                        }
                        if let (Some(user), Some(system)) =
                            (usage.cpu_user_seconds, usage.cpu_system_seconds)
                        {
                            cost.push(format!("CPU {user:.2} s user, {system:.2} s system"));
                        }
                        rows.push(("cost", cost.join(", ")));
                    }
                }
                rows.push((
                    "output",
                    format!(
                        "stdout {} bytes, stderr {} bytes{}",
                        run.bytes_out,
                        run.bytes_err,
                        if run.truncated {
                            ", not all kept (max_run_bytes)"
                        } else {
                            ""
                        }
                    ),
                ));
                if !run.files.is_empty() {
                    rows.push((
                        "files",
                        format!(
                            "{} written, {} read (read_file, write_file)",
                            run.files.written, run.files.read
                        ),
                    ));
                }
                if let Some(problem) = &run.log_incomplete {
                    rows.push(("log", format!("incomplete: {problem}")));
                }
                if !run.labels.is_empty() {
                    let labels: Vec<String> =
                        run.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    rows.push(("labels", labels.join(" ")));
                }
            }
            if let Some(log) = &s.log {
                rows.push(("log", log.display().to_string()));
            }
        }
    }
    let lines: Vec<Line<'static>> = rows
        .into_iter()
        .map(|(key, value)| {
            Line::from(vec![
                Span::styled(
                    format!("{key:<13}"),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(clean(&value)),
            ])
        })
        .collect();
    let width = area.width.saturating_sub(4).min(110);
    // Borders, and room for a long path or command to wrap.
    let height = lines.len() as u16 + 4;
    let title = format!("Run {} (Esc closes)", short_id(run_id));
    let inner = popup(frame, area, width, height, &title);
    text(frame, inner, lines);
}

/// Every message of the status bar, whole and wrapped, newest first.
pub(super) fn messages(frame: &mut Frame, area: Rect, app: &App) {
    let width = area.width.saturating_sub(4).min(110);
    let height = area.height.saturating_sub(2);
    let inner = popup(
        frame,
        area,
        width,
        height,
        "Messages, newest first (Esc closes)",
    );
    let lines: Vec<Line<'static>> = if app.messages.is_empty() {
        vec![Line::raw("no message yet")]
    } else {
        app.messages
            .iter()
            .rev()
            .map(|message| Line::raw(format!("• {}", clean(message))))
            .collect()
    };
    text(frame, inner, lines);
}
