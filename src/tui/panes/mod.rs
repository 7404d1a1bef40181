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

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout as Split};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Block, BorderType, Borders};

use super::app::{App, Focus, Layout, Modal};

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let [top, bottom, status_line] = Split::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Percentage(30),
            Constraint::Min(0),
            Constraint::Length(1),
        ])
        .areas(area);
    // Sessions matter more: environments get 30%, from 24 to 40 columns.
    let env_width = (area.width * 3 / 10).clamp(24.min(area.width), 40);
    let [envs, sessions] = Split::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Length(env_width), Constraint::Min(0)])
        .areas(top);
    environments::draw(frame, envs, app);
    sessions::draw(frame, sessions, app);
    match app.layout {
        Layout::Merged => output::draw_merged(frame, bottom, app),
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
            output::draw_stream(frame, out, app, output::Pane::Stdout);
            output::draw_stream(frame, err, app, output::Pane::Stderr);
        }
    }
    status::draw(frame, status_line, app);
    match app.modal {
        Modal::None | Modal::Search => {}
        Modal::Help => dialog::help(frame, area),
        Modal::ConfirmKill(i) => dialog::confirm_kill(frame, area, app, i),
        Modal::ConfirmCleanup(i) => dialog::confirm_cleanup(frame, area, app, i),
        Modal::ConfirmQuit => dialog::confirm_quit(frame, area, app),
        Modal::NewRun => dialog::new_run(frame, area, app),
        Modal::Leftovers => leftovers::draw(frame, area, app),
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
