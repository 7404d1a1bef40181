//! Search in the focused output pane (`/`, then `n` and `N`, as in less):
//! smart-case, over the lines the pane keeps, saying when older ones are
//! only in the run log.

use super::action::Action;
use super::app::{App, Effect, Focus, Modal};
use super::session::PANE_LINES;

impl App {
    /// A key while the search is typed.
    pub(super) fn search_key(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Type(c) => self.search.push(c),
            Action::Erase => {
                self.search.pop();
            }
            Action::Yes => {
                self.modal = Modal::None;
                self.jump(true);
            }
            Action::Close => {
                self.modal = Modal::None;
                self.search.clear();
            }
            _ => {}
        }
        None
    }

    /// The output pane searches and scrolls apply to: stdout (0) or stderr (1).
    pub(super) fn output_pane(&self) -> usize {
        usize::from(self.focus == Focus::Stderr)
    }

    /// Lines of the focused output that contain the search, oldest first.
    pub fn matches(&self) -> Vec<usize> {
        let Some(session) = self.selected() else {
            return Vec::new();
        };
        if self.search.is_empty() {
            return Vec::new();
        }
        let buffer = if self.output_pane() == 1 {
            &session.stderr
        } else {
            &session.stdout
        };
        buffer
            .lines()
            .enumerate()
            .filter(|(_, line)| {
                !crate::tui::sanitize::find_all(&line.text(), &self.search).is_empty()
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Scrolls the focused output to the next match above (`older`) or below
    /// the one in view.
    /// When the searched pane no longer holds the whole output, says so:
    /// the search saw only what the pane keeps.
    pub(super) fn partial_note(&self) -> String {
        let pane = self.output_pane();
        let dropped = self.selected().map_or(0, |s| {
            if pane == 1 {
                s.stderr.dropped()
            } else {
                s.stdout.dropped()
            }
        });
        if dropped > 0 {
            format!(
                " in the last {PANE_LINES} lines ({dropped} older ones are in the run log: subrt export)"
            )
        } else {
            String::new()
        }
    }

    pub(super) fn jump(&mut self, older: bool) {
        let matches = self.matches();
        let pane = self.output_pane();
        let total = self.selected().map_or(0, |s| {
            if pane == 1 {
                s.stderr.len()
            } else {
                s.stdout.len()
            }
        });
        // The line at the bottom of the view, counted from the top.
        let bottom = total.saturating_sub(self.scroll[pane] + 1);
        let target = if older {
            matches
                .iter()
                .rev()
                .find(|&&m| m < bottom)
                .or(matches.last())
        } else {
            matches.iter().find(|&&m| m > bottom).or(matches.first())
        };
        match target {
            Some(&line) => {
                self.scroll[pane] = total - 1 - line;
                self.follow = self.scroll[pane] == 0;
                let at = matches.iter().position(|&m| m == line).unwrap_or(0) + 1;
                let note = self.partial_note();
                self.say(format!(
                    "/{}: match {at} of {}{note}",
                    self.search,
                    matches.len()
                ));
            }
            None => {
                let note = self.partial_note();
                self.say(format!("/{}: no match{note}", self.search));
            }
        }
    }
}
