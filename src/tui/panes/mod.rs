//! Drawing: one file per block. [`draw`] lays the screen out.
//!
//! ```text
//! ┌ Environments ─┐┌ Sessions ──────────────────────────────┐
//! └───────────────┘└────────────────────────────────────────┘
//! ┌ stdout ───────────────────┐┌ stderr ───────────────────┐
//! └───────────────────────────┘└───────────────────────────┘
//!  status: key hints and the last message
//! ```

mod dialog;
mod environments;
mod leftovers;
mod output;
mod sessions;
mod status;

pub(crate) use sessions::clock;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout as Split, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, BorderType, Borders};

use super::app::{App, Focus, Layout, Modal};

/// Below this many columns, the Environments pane is left out.
pub const NARROW: u16 = 60;

/// Where each block is on a screen of size `area`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// The Environments pane.
    pub environments: Rect,
    /// The Sessions pane.
    pub sessions: Rect,
    /// The stdout pane (or the merged one).
    pub stdout: Rect,
    /// The stderr pane (empty when merged).
    pub stderr: Rect,
    /// The status line.
    pub status: Rect,
}

/// The layout of the screen, for drawing and for mouse clicks. Zoomed
/// (`z`), the focused pane has the screen but the status line, the others
/// none.
pub fn areas(area: Rect, app: &App) -> Areas {
    if app.zoom {
        let [pane, status] = Split::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Min(0), Constraint::Length(1)])
            .areas(area);
        let mut areas = Areas {
            environments: Rect::default(),
            sessions: Rect::default(),
            stdout: Rect::default(),
            stderr: Rect::default(),
            status,
        };
        match (app.focus, app.layout) {
            (Focus::Environments, _) => areas.environments = pane,
            (Focus::Sessions, _) => areas.sessions = pane,
            (Focus::Stdout, _) | (Focus::Stderr, Layout::Merged) => areas.stdout = pane,
            (Focus::Stderr, _) => areas.stderr = pane,
        }
        return areas;
    }
    // The top gets 30% of the rows, and on a small screen at least room
    // for three runs (7 rows) while the output keeps one line (3 rows).
    let top_rows = ((area.height * 3 + 5) / 10).max(7.min(area.height.saturating_sub(4)));
    let [top, bottom, status] = Split::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(top_rows),
            Constraint::Min(0),
            Constraint::Length(1),
        ])
        .areas(area);
    // Sessions matter more: environments get 30%, from 24 to 40 columns,
    // and none below 60 columns (the new-run form lists them).
    let env_width = if area.width < NARROW {
        0
    } else {
        (area.width * 3 / 10).clamp(24, 40)
    };
    let [environments, sessions] = Split::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Length(env_width), Constraint::Min(0)])
        .areas(top);
    let (stdout, stderr) = match app.layout {
        Layout::Merged => (bottom, Rect::default()),
        layout => {
            let direction = if layout == Layout::SideBySide {
                Direction::Horizontal
            } else {
                Direction::Vertical
            };
            let [out, err] = Split::default()
                .direction(direction)
                .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(bottom);
            (out, err)
        }
    };
    Areas {
        environments,
        sessions,
        stdout,
        stderr,
        status,
    }
}

/// Which pane is at (`x`, `y`), and the row inside it (0 = first inside the
/// border).
pub fn hit(area: Rect, app: &App, x: u16, y: u16) -> Option<(Focus, u16)> {
    let areas = areas(area, app);
    let position = ratatui::layout::Position { x, y };
    [
        (areas.environments, Focus::Environments),
        (areas.sessions, Focus::Sessions),
        (areas.stdout, Focus::Stdout),
        (areas.stderr, Focus::Stderr),
    ]
    .into_iter()
    .find(|(rect, _)| rect.contains(position))
    .map(|(rect, focus)| (focus, y.saturating_sub(rect.y + 1)))
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    app.screen.set(area);
    let Areas {
        environments: envs,
        sessions,
        stdout,
        stderr,
        status: status_line,
    } = areas(area, app);
    // Zoomed, the other panes have no room and are not drawn.
    let room = |rect: Rect| rect.width > 0 && rect.height > 0;
    if room(envs) {
        environments::draw(frame, envs, app);
    }
    if room(sessions) {
        sessions::draw(frame, sessions, app);
    }
    match app.layout {
        Layout::Merged if room(stdout) => output::draw_merged(frame, stdout, app),
        Layout::Merged => {}
        _ => {
            if room(stdout) {
                output::draw_stream(frame, stdout, app, output::Pane::Stdout);
            }
            if room(stderr) {
                output::draw_stream(frame, stderr, app, output::Pane::Stderr);
            }
        }
    }
    status::draw(frame, status_line, app);
    draw_dialog(frame, area, app);
}

/// One part of the screen, drawn alone over the whole frame: what a
/// snapshot test of that part looks at, so that a change to one pane
/// churns only its own snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The Environments pane.
    Environments,
    /// The Sessions pane.
    Sessions,
    /// The stdout pane (the merged one when merged).
    Stdout,
    /// The stderr pane.
    Stderr,
    /// The status line (its first row).
    Status,
    /// The open dialog, over nothing.
    Dialog,
}

/// Draws only `part` of the screen, over the whole frame.
pub fn draw_part(frame: &mut Frame, app: &App, part: Part) {
    let area = frame.area();
    app.screen.set(area);
    match part {
        Part::Environments => environments::draw(frame, area, app),
        Part::Sessions => sessions::draw(frame, area, app),
        Part::Stdout if app.layout == Layout::Merged => output::draw_merged(frame, area, app),
        Part::Stdout => output::draw_stream(frame, area, app, output::Pane::Stdout),
        Part::Stderr => output::draw_stream(frame, area, app, output::Pane::Stderr),
        Part::Status => status::draw(frame, Rect { height: 1, ..area }, app),
        Part::Dialog => draw_dialog(frame, area, app),
    }
}

/// The open dialog, if any, over `area`.
fn draw_dialog(frame: &mut Frame, area: Rect, app: &App) {
    match &app.modal {
        Modal::None | Modal::Search | Modal::Filter => {}
        Modal::Help => dialog::help(frame, area, app),
        Modal::Details(id) => dialog::details(frame, area, app, id),
        Modal::Messages => dialog::messages(frame, area, app),
        Modal::ConfirmKill(id) => dialog::confirm_kill(frame, area, id),
        Modal::ConfirmKillMarked(ids) => dialog::confirm_kill_marked(frame, area, app, ids),
        Modal::ConfirmCleanup(id) => dialog::confirm_cleanup(frame, area, id),
        Modal::ConfirmQuit => dialog::confirm_quit(frame, area, app),
        Modal::NewRun => dialog::new_run(frame, area, app),
        Modal::Leftovers => leftovers::draw(frame, area, app),
        Modal::ConfirmRemove(id) => {
            leftovers::draw(frame, area, app);
            dialog::confirm_remove(frame, area, id);
        }
        Modal::ConfirmCancelJob(id) => {
            leftovers::draw(frame, area, app);
            dialog::confirm_cancel_job(frame, area, id);
        }
    }
}

/// A bordered block titled `title`, highlighted when `focus` is the app's.
fn block(title: String, app: &App, focus: Focus) -> Block<'static> {
    let focused = app.focus == focus;
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(if focused {
            Style::default().fg(Color::Cyan)
        } else {
            Style::default()
        })
        .title(title)
        .title_style(Style::default().add_modifier(Modifier::BOLD))
}
