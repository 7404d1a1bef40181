//! The Environments pane: name, type, and whether it can run here.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState};

use super::block;
use crate::tui::app::{App, Focus};

pub(super) fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let name_width = app
        .environments
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(0);
    let kind_width = app
        .environments
        .iter()
        .map(|e| e.kind.chars().count())
        .max()
        .unwrap_or(0);
    let items: Vec<ListItem> = app
        .environments
        .iter()
        .map(|env| {
            let (status, color) = match &env.problem {
                _ if env.checking => ("checking", Color::Yellow),
                None => ("ready", Color::Green),
                Some(_) => ("unavailable", Color::Red),
            };
            ListItem::new(Line::from(vec![
                Span::raw(format!(
                    "{:<name_width$} {:<kind_width$} ",
                    env.name, env.kind
                )),
                Span::styled(status, Style::default().fg(color)),
            ]))
        })
        .collect();
    let mut title = " Environments ".to_owned();
    if let Some(env) = app.environments.get(app.selected_environment)
        && let Some(problem) = &env.problem
        && app.focus == Focus::Environments
    {
        title = format!(" Environments: {problem} ");
    }
    let list = List::new(items)
        .block(block(title, app, Focus::Environments))
        .highlight_symbol("▶ ")
        .highlight_style(Style::default().add_modifier(Modifier::BOLD));
    let mut state = ListState::default().with_selected(Some(app.selected_environment));
    frame.render_stateful_widget(list, area, &mut state);
}
