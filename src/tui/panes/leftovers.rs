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
        .title(" Leaked containers and Slurm jobs (k kill, x remove, r refresh, Esc close) ");
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
            let rows = list.iter().map(|c| {
                let color = match c.verdict {
                    Verdict::OwnerGone => Color::Red,
                    _ => Color::Gray,
                };
                Row::new(vec![
                    c.name.clone(),
                    c.run_id.clone(),
                    c.environment.clone(),
                    c.state.clone(),
                    c.verdict.to_string(),
                ])
                .style(Style::default().fg(color))
            });
            // Jobs of owners that are gone: k and x cancel them.
            let jobs = app.leftover_jobs.iter().map(|job| {
                Row::new(vec![
                    format!("slurm job {} on {}", job.job_id, job.nodes),
                    job.name.rsplit('-').next().unwrap_or_default().to_owned(),
                    job.name
                        .strip_prefix("subrt-")
                        .and_then(|rest| rest.rsplit_once('-'))
                        .map_or_else(String::new, |(env, _)| env.to_owned()),
                    job.state.to_lowercase(),
                    "owner is gone".to_owned(),
                ])
                .style(Style::default().fg(Color::Red))
            });
            let rows = rows.chain(jobs);
            let table = Table::new(
                rows,
                [
                    Constraint::Fill(3),
                    Constraint::Length(26),
                    Constraint::Length(12),
                    Constraint::Length(8),
                    Constraint::Length(22),
                ],
            )
            .header(
                Row::new(["NAME", "RUN", "ENV", "STATE", "WHY"])
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
