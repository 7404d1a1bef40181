//! The leaked-containers view: subrt containers whose owner is gone (and
//! those kept on purpose), with kill and remove. Same data as `subrt gc`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState};

use crate::runtime::leftovers::Verdict;
use crate::tui::app::App;

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let rect = Rect {
        x: area.x + area.width / 20,
        y: area.y + area.height / 8,
        width: area.width - area.width / 10,
        height: area.height - area.height / 4,
    };
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(Style::default().fg(Color::Yellow))
        .title(
            " Leaked containers and Slurm jobs (k kill, x remove (asks), r refresh, Esc close) ",
        );
    match &app.leftovers {
        Err(error) => {
            let text = Paragraph::new(Line::styled(error.clone(), Style::default().fg(Color::Red)));
            frame.render_widget(text.block(block), rect);
        }
        Ok(list) if list.is_empty() && app.leftover_jobs.is_empty() => {
            let text = Paragraph::new("No leaked subrt containers: every owner is still running.");
            frame.render_widget(text.block(block), rect);
        }
        Ok(list) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let rows = list.iter().map(|c| {
                let color = match c.verdict {
                    Verdict::OwnerGone => Color::Red,
                    _ => Color::Gray,
                };
                Row::new(vec![
                    c.name.clone(),
                    c.environment.clone(),
                    c.image.clone(),
                    c.state.clone(),
                    c.created.map_or_else(String::new, |at| age(now - at)),
                    owner(&c.owner),
                    c.verdict.to_string(),
                ])
                .style(Style::default().fg(color))
            });
            // Jobs of owners that are gone: k and x cancel them.
            let jobs = app.leftover_jobs.iter().map(|job| {
                Row::new(vec![
                    job.name.clone(),
                    job.name
                        .strip_prefix("subrt-")
                        .and_then(|rest| rest.rsplit_once('-'))
                        .map_or_else(String::new, |(env, _)| env.to_owned()),
                    format!("job {} on {}", job.job_id, job.nodes),
                    job.state.to_lowercase(),
                    String::new(),
                    owner(&job.owner),
                    "owner gone".to_owned(),
                ])
                .style(Style::default().fg(Color::Red))
            });
            let rows = rows.chain(jobs);
            let table = Table::new(
                rows,
                [
                    Constraint::Fill(5),
                    Constraint::Length(12),
                    Constraint::Fill(2),
                    Constraint::Length(8),
                    Constraint::Length(5),
                    Constraint::Length(14),
                    Constraint::Length(16),
                ],
            )
            .header(
                Row::new(["NAME", "ENV", "IMAGE", "STATE", "AGE", "OWNER", "WHY"])
                    .style(Style::default().add_modifier(Modifier::BOLD)),
            )
            .block(block)
            .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
            .highlight_symbol("▶ ");
            let mut state = TableState::default().with_selected(Some(app.selected_leftover));
            frame.render_stateful_widget(table, rect, &mut state);
        }
    }
}

/// `42s`, `17m`, `3h`, `12d`.
fn age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// An owner label (`host/pid/start`) as `host/pid`: the start time only
/// tells a pid's reuse apart.
fn owner(label: &str) -> String {
    match label.rsplit_once('/') {
        Some((host_pid, _start)) => host_pid.to_owned(),
        None => label.to_owned(),
    }
}
