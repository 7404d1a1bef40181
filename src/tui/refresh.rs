//! The store as the dashboard shows it: listed at start, then runs other
//! processes start appear at the top, and live ones show what they print.
//! The reading is done by [`store_watch`](super::store_watch)'s thread.

use super::app::App;
use super::sanitize::OutputBuffer;
use super::session::{Origin, PANE_LINES, Session, SessionState};
use super::store_watch::{Followed, StoreNews};
use crate::runlog::{RunState, RunSummary, StreamTag};

impl App {
    /// Takes the store's runs as listed at start (newest first, with the
    /// reader's warnings): the first `limit` join the list below the runs
    /// this dashboard started meanwhile. Runs newer than those are picked
    /// up live ([`App::store_news`]); older ones are not.
    pub fn listed(&mut self, listed: Result<(Vec<RunSummary>, Vec<String>, usize), String>) {
        self.store_listed = true;
        self.dirty = true;
        let (runs, warnings, limit) = match listed {
            Ok(listed) => listed,
            Err(e) => return self.say(format!("cannot list the store: {e}")),
        };
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

    /// Puts what the store's thread found on screen: new runs at the top,
    /// newest first (the selection stays on its run), and what live runs
    /// of other processes wrote into their panes.
    pub fn store_news(&mut self, news: StoreNews) {
        self.store_unsettled = news.unsettled;
        let known: std::collections::HashSet<String> =
            self.sessions.iter().map(|s| s.run_id.clone()).collect();
        let mut insert_at = 0;
        for run in &news.new_runs {
            // Runs this dashboard is starting join the list as its own.
            if known.contains(&run.run_id) || self.launching.contains(&run.run_id) {
                continue;
            }
            let had_sessions = !self.sessions.is_empty();
            self.sessions.insert(insert_at, Session::stored(run));
            if had_sessions && self.selected_session >= insert_at {
                self.selected_session += 1;
            }
            insert_at += 1;
        }
        for followed in news.followed {
            self.followed(followed);
        }
        self.dirty = true;
    }

    fn followed(&mut self, followed: Followed) {
        let Some(session) = self
            .sessions
            .iter_mut()
            .find(|s| s.run_id == followed.run_id)
        else {
            return;
        };
        if let Some(summary) = followed.summary {
            // What `ls` reads: the time (to now while a command runs), the
            // bytes and the state of another process's run move with it.
            if !matches!(session.origin, Origin::Own(_)) {
                session.elapsed = summary.duration;
                session.state = match summary.state {
                    RunState::Running => SessionState::Running,
                    RunState::Idle => SessionState::Idle,
                    _ => session.state,
                };
                session.last_output = summary
                    .silent_for
                    .and_then(|quiet| std::time::Instant::now().checked_sub(quiet));
            }
            session.summary = Some(Box::new(summary));
        }
        if matches!(session.origin, Origin::Own(_)) {
            return;
        }
        if followed.first {
            session.stdout = OutputBuffer::new(PANE_LINES);
            session.stderr = OutputBuffer::new(PANE_LINES);
            session.loaded = true;
            session.origin = Origin::Followed;
        }
        if let Some((owner, kind, slurm_job)) = followed.header {
            session.owner = Some(owner);
            session.kind = Some(kind);
            session.slurm_job = slurm_job;
        }
        if followed.printed {
            session.last_output = Some(std::time::Instant::now());
        }
        for (stream, bytes, at) in &followed.output {
            match stream {
                StreamTag::Out => session.stdout.push(bytes, *at),
                StreamTag::Err => session.stderr.push(bytes, *at),
            }
        }
        if let Some(process) = followed.last_process {
            session.last_process = Some(process);
        }
        if let Some(state) = followed.ended {
            session.state = state;
            session.origin = Origin::Stored;
        }
    }

    /// Whether a live run is followed (another process's, or this
    /// dashboard's own), so the store is looked at each second.
    pub fn follows_live_runs(&self) -> bool {
        self.store_unsettled || self.sessions.iter().any(|s| s.state.is_running())
    }
}
