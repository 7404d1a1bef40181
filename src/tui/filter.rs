//! Which sessions the Sessions pane shows: a text typed after `/` and a
//! view of one kind of state (`R` running, `F` failed, `T` timed out), so
//! that the one hung or failed run among hundreds is on screen in seconds.

use super::action::Action;
use super::app::{App, Effect, Modal};
use super::session::{Session, SessionState};
use crate::runtime::Verdict;

/// The order of the Sessions pane's rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Newest first: the order in which runs started (arrived).
    #[default]
    Start,
    /// Longest first (running runs by how long they have run so far).
    Duration,
    /// Running first (the longest silent first), then failures, timeouts,
    /// kills, the rest; newest first within each.
    State,
    /// Grouped by batch, the newest batch first, each batch's runs by
    /// submission; runs of no batch last.
    Batch,
}

impl Sort {
    /// How the title and the status bar name it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Start => "start (newest first)",
            Self::Duration => "duration (longest first)",
            Self::State => "state (running, failed, timed out, killed, ok)",
            Self::Batch => "batch (newest first, then submission)",
        }
    }
}

/// Where a run goes when sorted by state: lower first.
fn urgency(session: &Session) -> (u8, std::cmp::Reverse<u64>) {
    let rank = match session.state {
        SessionState::Setup | SessionState::Running | SessionState::Idle => 0,
        SessionState::Exited(0) => 5,
        SessionState::Exited(_) | SessionState::SetupFailed(_) | SessionState::StatusLost => 1,
        SessionState::TimedOut => 2,
        SessionState::Killed | SessionState::Interrupted => 3,
        SessionState::Empty => 6,
    };
    let quiet = session.quiet_for().map_or(0, |q| q.as_secs());
    (rank, std::cmp::Reverse(quiet))
}

/// Runs of one kind of state, or all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum View {
    /// Every run.
    #[default]
    All,
    /// Alive: running or idle (this dashboard's runs and other processes').
    Running,
    /// Failed, as `ls --state failed` says (not timed out, not killed).
    Failed,
    /// Ended by its timeout.
    TimedOut,
}

impl View {
    /// The word in the pane's title.
    pub fn label(self) -> &'static str {
        match self {
            View::All => "all",
            View::Running => "running",
            View::Failed => "failed",
            View::TimedOut => "timed out",
        }
    }

    fn admits(self, state: SessionState) -> bool {
        match self {
            View::All => true,
            View::Running => state.is_running(),
            View::Failed => state.verdict() == Some(Verdict::Failed),
            View::TimedOut => state.verdict() == Some(Verdict::TimedOut),
        }
    }
}

/// Failed, or timed out: what `e` jumps to.
pub fn is_failure(state: SessionState) -> bool {
    matches!(state.verdict(), Some(Verdict::Failed | Verdict::TimedOut))
}

/// The Sessions pane's filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Text to find, case-insensitive, in the run id, name, command,
    /// environment, state or labels (`key=value`, so `batch=01J…` finds a
    /// batch's runs).
    pub text: String,
    /// The kind of state shown.
    pub view: View,
}

impl SessionFilter {
    /// Whether anything is filtered out.
    pub fn is_active(&self) -> bool {
        !self.text.is_empty() || self.view != View::All
    }

    /// Whether `session` is shown.
    pub fn matches(&self, session: &Session) -> bool {
        if !self.view.admits(session.state) {
            return false;
        }
        if self.text.is_empty() {
            return true;
        }
        let needle = self.text.to_lowercase();
        let state = session.state.label();
        // `/fail` finds every failure, whatever its exit code.
        let failed = if is_failure(session.state) {
            "failed"
        } else {
            ""
        };
        let found = |field: &str| field.to_lowercase().contains(&needle);
        let labels = session.summary.iter().flat_map(|run| run.labels.iter());
        [
            session.run_id.as_str(),
            session.name.as_deref().unwrap_or(""),
            session.command.as_str(),
            session.environment.as_str(),
            state.as_str(),
            failed,
        ]
        .into_iter()
        .any(found)
            || labels
                .map(|(key, value)| format!("{key}={value}"))
                .any(|label| found(&label))
    }

    /// Shows only `view` (or every run again, when it is shown already).
    pub fn toggle(&mut self, view: View) {
        self.view = if self.view == view { View::All } else { view };
    }

    /// What the title says of it: `[failed] /alice`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.view != View::All {
            parts.push(format!("[{}]", self.view.label()));
        }
        if !self.text.is_empty() {
            let text: String = self
                .text
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            parts.push(format!("/{text}"));
        }
        parts.join(" ")
    }
}

impl App {
    /// A key while the filter is typed: the rows follow each key.
    pub(super) fn filter_key(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Type(c) => self.filter.text.push(c),
            Action::Erase => {
                self.filter.text.pop();
            }
            Action::Yes => self.modal = Modal::None,
            Action::Close => {
                self.modal = Modal::None;
                self.filter.text.clear();
            }
            _ => return None,
        }
        self.refilter();
        None
    }

    /// The indices of the sessions the filter shows, in the order of
    /// [`App::sort`].
    pub fn visible_sessions(&self) -> Vec<usize> {
        let mut rows: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| self.filter.matches(&self.sessions[i]))
            .collect();
        let sessions = &self.sessions;
        // The list is in order of arrival, newest first: ties keep it
        // (the sorts are stable).
        match self.sort {
            Sort::Start => {}
            Sort::Duration => {
                rows.sort_by_key(|&i| std::cmp::Reverse(sessions[i].elapsed().as_secs()))
            }
            Sort::State => rows.sort_by_key(|&i| urgency(&sessions[i])),
            Sort::Batch => rows.sort_by(|&a, &b| {
                let key = |s: &Session| (s.batch.is_none(), std::cmp::Reverse(s.batch.clone()));
                key(&sessions[a])
                    .cmp(&key(&sessions[b]))
                    .then_with(|| sessions[a].name.cmp(&sessions[b].name))
            }),
        }
        rows
    }

    /// Sorts by the next key, keeping the selected run selected.
    pub(super) fn next_sort(&mut self) {
        self.sort = match self.sort {
            Sort::Start => Sort::Duration,
            Sort::Duration => Sort::State,
            Sort::State => Sort::Batch,
            Sort::Batch => Sort::Start,
        };
        self.say(format!("sorted by {}", self.sort.describe()));
    }

    /// After the filter changed: a selected run it hides gives way to the
    /// first one it shows.
    pub(super) fn refilter(&mut self) {
        let rows = self.visible_sessions();
        if !rows.contains(&self.selected_session)
            && let Some(&first) = rows.first()
        {
            self.select_session(first);
        }
    }

    /// Selects the next (or previous) failed or timed-out run the filter
    /// shows, from the selection on, around the end.
    pub(super) fn jump_to_failure(&mut self, back: bool) {
        let rows = self.visible_sessions();
        let at = rows.iter().position(|&i| i == self.selected_session);
        let n = rows.len();
        let found = (1..=n).find_map(|step| {
            let index = match (at, back) {
                (Some(at), false) => (at + step) % n,
                (Some(at), true) => (at + n - step % n) % n,
                (None, _) => step - 1,
            };
            let row = rows[index];
            is_failure(self.sessions[row].state).then_some(row)
        });
        match found {
            Some(row) => self.select_session(row),
            None => self.say("no failed or timed-out run among those shown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runlog::{RunState, RunSummary};

    fn session(command: &str, state: SessionState) -> Session {
        let mut s = Session::stored(&RunSummary {
            run_id: "01JRUN".into(),
            environment: "local".into(),
            path: "/nonexistent".into(),
            command: Some(command.into()),
            timeout: None,
            commands: 1,
            working_dir: "/".into(),
            state: RunState::Finished,
            status: None,
            outcome: None,
            started_at: "2026-11-24T12:00:00Z".into(),
            duration: std::time::Duration::ZERO,
            silent_for: None,
            bytes_out: 0,
            bytes_err: 0,
            truncated: false,
            log_incomplete: None,
            files: Default::default(),
            disk_bytes: None,
            containment: None,
            labels: Default::default(),
        });
        s.log = None;
        s.state = state;
        s
    }

    #[test]
    fn text_matches_any_column_whatever_the_case() {
        let mut s = session("python3 main.py", SessionState::Exited(1));
        s.name = Some("Alice".into());
        let filter = |text: &str| SessionFilter {
            text: text.into(),
            view: View::All,
        };
        for hit in ["alice", "MAIN", "exited 1", "local", "01jrun"] {
            assert!(filter(hit).matches(&s), "{hit}");
        }
        assert!(!filter("bob").matches(&s));
    }

    #[test]
    fn views_show_one_kind_of_state() {
        let failed = session("a", SessionState::Exited(2));
        let timed_out = session("b", SessionState::TimedOut);
        let ok = session("c", SessionState::Exited(0));
        let running = session("d", SessionState::Running);
        let mut filter = SessionFilter::default();
        filter.toggle(View::Failed);
        let shown = |f: &SessionFilter| {
            [&failed, &timed_out, &ok, &running]
                .iter()
                .filter(|s| f.matches(s))
                .map(|s| s.command.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(&filter), ["a"]);
        filter.toggle(View::TimedOut);
        assert_eq!(shown(&filter), ["b"]);
        filter.toggle(View::Running);
        assert_eq!(shown(&filter), ["d"]);
        filter.toggle(View::Running);
        assert_eq!(shown(&filter).len(), 4, "the same key again shows all");
        assert!(is_failure(timed_out.state) && !is_failure(ok.state));
    }
}
