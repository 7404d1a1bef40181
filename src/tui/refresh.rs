//! The store as the dashboard sees it: runs other processes start appear
//! at the top as their logs appear, and live ones are followed.

use std::time::Duration;

use super::app::App;
use super::session::{Session, SessionState};
use crate::runlog::{self, RunSummary, Store};

impl App {
    /// Takes the store's runs as listed at start (newest first, with the
    /// reader's warnings): the first `limit` join the list below the runs
    /// this dashboard started meanwhile. Runs newer than those are picked
    /// up live; older ones are not.
    pub fn listed(&mut self, listed: Result<(Vec<RunSummary>, Vec<String>, usize), String>) {
        self.store_listed = true;
        self.dirty = true;
        let (runs, warnings, limit) = match listed {
            Ok(listed) => listed,
            Err(e) => return self.say(format!("cannot list the store: {e}")),
        };
        self.history_floor = runs
            .get(limit)
            .map(|first_left_out| first_left_out.run_id.clone())
            .unwrap_or_default();
        let known: std::collections::HashSet<String> =
            self.sessions.iter().map(|s| s.run_id.clone()).collect();
        let was_empty = self.sessions.is_empty();
        for run in runs.iter().take(limit) {
            if !known.contains(&run.run_id) && !self.launching.contains(&run.run_id) {
                self.sessions.push(Session::stored(run));
            }
        }
        if let Some(warning) = warnings.first() {
            self.say(format!("warning: {warning}"));
        }
        if was_empty {
            // The run selected at start shows its output at once.
            self.show_selected();
        }
    }

    /// Picks up runs that appeared in `store` since the last call, and
    /// follows the live ones (runs other processes are writing).
    pub fn refresh_store(&mut self, store: &Store) {
        if !self.store_listed {
            return;
        }
        let Ok((files, _)) = store.entries() else {
            return;
        };
        self.store_unsettled = false;
        let mut known: std::collections::HashSet<String> =
            self.sessions.iter().map(|s| s.run_id.clone()).collect();
        // Newest first, above everything: a new run of another process is
        // seen at once (the selection follows its run, not its row).
        let mut insert_at = 0;
        for path in files {
            let id = path
                .file_name()
                .map(|s| s.to_string_lossy().trim_end_matches(".jsonl").to_owned())
                .unwrap_or_default();
            // Older than what was listed at start, known, or unreadable.
            // Runs this dashboard is starting join the list as its own.
            if id <= self.history_floor
                || self.unreadable.contains(&id)
                || known.contains(&id)
                || self.launching.contains(&id)
            {
                continue;
            }
            let run = match runlog::summarize(&path) {
                // A copy of a known log (its header names a listed run).
                Ok((run, _)) if known.contains(&run.run_id) => None,
                Ok((run, _)) => Some(run),
                Err(_) => None,
            };
            let Some(run) = run else {
                self.unreadable.insert(id);
                continue;
            };
            // Seen the moment it was made (the store's folder is watched):
            // its first command is not in its log yet. Looked at again in a
            // second, listed as it is after a few.
            if run.command.is_none() && started_within(&run.started_at, YOUNG_RUN) {
                self.store_unsettled = true;
                continue;
            }
            let had_sessions = !self.sessions.is_empty();
            known.insert(run.run_id.clone());
            self.sessions.insert(insert_at, Session::stored(&run));
            // Keep the same session selected.
            if had_sessions && self.selected_session >= insert_at {
                self.selected_session += 1;
            }
            insert_at += 1;
            self.dirty = true;
        }
        for session in &mut self.sessions {
            if session.state == SessionState::Live {
                session.follow();
                self.dirty = true;
            }
        }
    }

    /// Whether a run another process writes is being followed (so the
    /// store is looked at each second).
    pub fn follows_live_runs(&self) -> bool {
        self.store_unsettled || self.sessions.iter().any(|s| s.state == SessionState::Live)
    }
}

/// How long a run without a command yet is not listed.
const YOUNG_RUN: Duration = Duration::from_secs(5);

/// Whether `started_at` (RFC 3339) is less than `age` ago.
fn started_within(started_at: &str, age: Duration) -> bool {
    humantime::parse_rfc3339_weak(started_at)
        .ok()
        .and_then(|at| std::time::SystemTime::now().duration_since(at).ok())
        .is_some_and(|since| since < age)
}
