//! The store, read off the event loop. A thread of its own lists the store
//! when the dashboard opens, then, each time it is asked to look again (the
//! store's folder changed, or a second passed while runs of other processes
//! are live), reads the runs that appeared since and what the live ones
//! appended to their logs. It reports [`StoreNews`] to the loop, which only
//! puts them on screen.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use super::session::{LOAD_BYTES, Process, SessionState};
use super::tasks::Done;
use crate::runlog::{self, Body, EndStatus, Owner, RunSummary, Store, StreamTag, Tail};

/// How long a run without a command yet is not listed.
const YOUNG_RUN: Duration = Duration::from_secs(5);

/// What the store gained since the last look.
#[derive(Debug, Default)]
pub struct StoreNews {
    /// Runs that appeared, newest first.
    pub new_runs: Vec<RunSummary>,
    /// What live runs of other processes wrote.
    pub followed: Vec<Followed>,
    /// A run too new to list is there: look again in a second.
    pub unsettled: bool,
}

impl StoreNews {
    fn is_empty(&self) -> bool {
        self.new_runs.is_empty() && self.followed.is_empty() && !self.unsettled
    }
}

/// What one live run's log gained.
#[derive(Debug)]
pub struct Followed {
    /// The run.
    pub run_id: String,
    /// The first look: its panes start over (with the end of its output).
    pub first: bool,
    /// From its header, on the first look: who writes it, its runtime
    /// type, its Slurm job.
    pub header: Option<(Owner, String, Option<String>)>,
    /// Output, in order: stream, bytes, time since the run started.
    pub output: Vec<(StreamTag, Vec<u8>, Duration)>,
    /// It printed since the last look (not counting the first).
    pub printed: bool,
    /// The last host process it recorded.
    pub last_process: Option<Process>,
    /// It ended (or its writer died: interrupted); no longer followed.
    pub ended: Option<SessionState>,
    /// The run as `subrt ls` reads it now: state, time (to now, while a
    /// command runs), bytes, outcome.
    pub summary: Option<RunSummary>,
}

/// A live run being followed (another process's, or this dashboard's own,
/// whose figures are read where `ls` reads them).
struct Following {
    path: PathBuf,
    /// Made once its log has a header.
    tail: Option<Tail>,
    owner: Option<Owner>,
    looked: bool,
    tally: Option<runlog::RunTally>,
    /// This dashboard's own run: its output comes from its supervisor;
    /// only its summary is read here.
    own: bool,
}

/// What the thread keeps between looks; [`StoreView::look`] is one look
/// (public so that tests can take one without the thread).
pub struct StoreView {
    store: Store,
    /// Run ids at or below this one are not picked up (the history listed
    /// at start was cut there); empty: no floor.
    floor: String,
    known: HashSet<String>,
    unreadable: HashSet<String>,
    following: HashMap<String, Following>,
}

impl StoreView {
    /// A view of `store` that knows the runs `known` and follows the live
    /// ones among `listed`.
    pub fn new(store: Store, floor: String, listed: &[RunSummary]) -> Self {
        let mut view = Self {
            store,
            floor,
            known: listed.iter().map(|r| r.run_id.clone()).collect(),
            unreadable: HashSet::new(),
            following: HashMap::new(),
        };
        for run in listed.iter().filter(|r| r.state.is_live()) {
            view.follow(run);
        }
        view
    }

    /// A run the dashboard starts itself: not listed as new, and followed
    /// for its figures once its log is there.
    pub fn know(&mut self, run_id: String) {
        let path = self.store.dir().join(&run_id);
        self.following.insert(
            run_id.clone(),
            Following {
                path,
                tail: None,
                owner: None,
                looked: false,
                tally: None,
                own: true,
            },
        );
        self.known.insert(run_id);
    }

    fn follow(&mut self, run: &RunSummary) {
        self.following.insert(
            run.run_id.clone(),
            Following {
                path: run.path.clone(),
                tail: None,
                owner: None,
                looked: false,
                tally: None,
                own: false,
            },
        );
    }

    /// Reads the runs new since the last look, and what live ones wrote.
    pub fn look(&mut self) -> StoreNews {
        let mut news = StoreNews::default();
        // Neither older than what was listed at start nor known.
        if let Ok((files, _)) = self.store.entries_unseen(&self.known, &self.floor) {
            for path in files {
                let id = path
                    .file_name()
                    .map(|s| s.to_string_lossy().trim_end_matches(".jsonl").to_owned())
                    .unwrap_or_default();
                if self.unreadable.contains(&id) {
                    continue;
                }
                let run = match runlog::summarize(&path) {
                    // A copy of a known log (its header names a listed run).
                    Ok((run, _)) if self.known.contains(&run.run_id) => None,
                    Ok((run, _)) => Some(run),
                    Err(_) => None,
                };
                let Some(run) = run else {
                    self.unreadable.insert(id);
                    continue;
                };
                // Seen the moment it was made (the folder is watched): its
                // first command is not in its log yet. Looked at again in a
                // second, listed as it is after a few.
                if run.command.is_none() && started_within(&run.started_at, YOUNG_RUN) {
                    news.unsettled = true;
                    continue;
                }
                self.known.insert(run.run_id.clone());
                if run.state.is_live() {
                    self.follow(&run);
                }
                news.new_runs.push(run);
            }
        }
        let mut done = Vec::new();
        for (run_id, following) in &mut self.following {
            let followed = poll(run_id, following);
            if followed.ended.is_some() {
                done.push(run_id.clone());
            }
            news.followed.push(followed);
        }
        for run_id in done {
            self.following.remove(&run_id);
        }
        news
    }
}

/// What the log of `following` gained since the last look.
fn poll(run_id: &str, following: &mut Following) -> Followed {
    let mut followed = Followed {
        run_id: run_id.to_owned(),
        first: false,
        header: None,
        output: Vec::new(),
        printed: false,
        last_process: None,
        ended: None,
        summary: None,
    };
    if following.tally.is_none() {
        // Its header (a run this dashboard starts may not have one yet).
        let Ok(reader) = runlog::open(&following.path) else {
            return followed;
        };
        following.owner = Some(reader.header.owner.clone());
        following.tally = Some(runlog::RunTally::new(
            &following.path,
            reader.header.clone(),
        ));
        following.tail = Some(Tail::new(&following.path));
        followed.header = Some((
            reader.header.owner,
            reader.header.environment.kind,
            reader.header.slurm_job.map(|job| job.job_id),
        ));
    }
    let (Some(tail), Some(tally)) = (&mut following.tail, &mut following.tally) else {
        return followed;
    };
    followed.first = !std::mem::replace(&mut following.looked, true);
    let records = tail.poll().unwrap_or_default();
    for record in &records {
        tally.see(record);
    }
    followed.summary = Some(tally.summary());
    if following.own {
        // Its state and output come from its supervisor.
        if tally.ended() {
            followed.ended = Some(SessionState::Empty);
        }
        return followed;
    }
    let first = followed.first;
    followed.printed = !first && records.iter().any(|r| matches!(r.body, Body::Out { .. }));
    // Of what a look brings (all of a big log, the first time), only the
    // end of each stream is read: the panes keep their last lines.
    let mut ends = [0u64; 2];
    for record in &records {
        if let Body::Out {
            s,
            o: Some(o),
            n: Some(n),
            ..
        } = &record.body
        {
            ends[s.index()] = ends[s.index()].max(o.saturating_add(*n));
        }
    }
    for record in records {
        match &record.body {
            Body::Out { s, o, n, .. } => {
                if let (Some(o), Some(n)) = (o, n)
                    && o.saturating_add(*n).saturating_add(LOAD_BYTES) <= ends[s.index()]
                {
                    continue;
                }
                let bytes = tail.bytes(&record);
                followed
                    .output
                    .push((*s, bytes, Duration::from_micros(record.t)));
            }
            Body::Proc {
                pid,
                pgid,
                start,
                init,
                init_start,
            } => {
                followed.last_process = Some(Process {
                    pid: *pid,
                    pgid: *pgid,
                    start: *start,
                    init: init.zip(*init_start),
                })
            }
            Body::End { status, exit, .. } => {
                followed.ended = Some(match status {
                    EndStatus::TimedOut => SessionState::TimedOut,
                    EndStatus::Killed => SessionState::Killed,
                    EndStatus::SetupFailed => SessionState::SetupFailed(exit.unwrap_or(-1)),
                    EndStatus::StatusLost => SessionState::StatusLost,
                    EndStatus::Exited => SessionState::Exited(exit.unwrap_or(-1)),
                    EndStatus::Empty => SessionState::Empty,
                });
            }
            _ => {}
        }
    }
    // Interrupted only once everything its writer wrote has been read: a
    // big log's `end` may still be ahead of the tail.
    if followed.ended.is_none()
        && tail.caught_up()
        && !following.owner.as_ref().is_some_and(Owner::is_alive)
    {
        followed.ended = Some(SessionState::Interrupted);
    }
    followed
}

/// Whether `started_at` (RFC 3339) is less than `age` ago.
fn started_within(started_at: &str, age: Duration) -> bool {
    humantime::parse_rfc3339_weak(started_at)
        .ok()
        .and_then(|at| std::time::SystemTime::now().duration_since(at).ok())
        .is_some_and(|since| since < age)
}

enum Ask {
    Look,
    Know(String),
}

/// The thread that reads the store for the dashboard; it ends when this
/// is dropped.
pub struct StoreWatch {
    asks: std::sync::mpsc::Sender<Ask>,
}

impl StoreWatch {
    /// Lists `store` (the newest `history` runs; [`Done::Listed`]), then
    /// looks again whenever asked ([`Done::Store`]).
    pub fn start(store: Store, history: usize, done: mpsc::UnboundedSender<Done>) -> Self {
        let (asks, asked) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("subrt-store".into())
            .spawn(move || watch(store, history, &asked, &done))
            .expect("a thread for the store");
        Self { asks }
    }

    /// Look at the store again.
    pub fn look(&self) {
        let _ = self.asks.send(Ask::Look);
    }

    /// `run_id` is the dashboard's own: not to be reported as new.
    pub fn know(&self, run_id: &str) {
        let _ = self.asks.send(Ask::Know(run_id.to_owned()));
    }
}

fn watch(
    store: Store,
    history: usize,
    asked: &std::sync::mpsc::Receiver<Ask>,
    done: &mpsc::UnboundedSender<Done>,
) {
    let listed = store.list().map_err(|e| e.to_string());
    let mut view = match &listed {
        Ok((runs, _)) => {
            let floor = runs
                .get(history)
                .map(|first_left_out| first_left_out.run_id.clone())
                .unwrap_or_default();
            let shown = &runs[..runs.len().min(history)];
            StoreView::new(store, floor, shown)
        }
        Err(_) => StoreView::new(store, String::new(), &[]),
    };
    if done.send(Done::Listed(listed)).is_err() {
        return;
    }
    let mut look = true;
    loop {
        if look {
            let news = view.look();
            if !news.is_empty() && done.send(Done::Store(Box::new(news))).is_err() {
                return;
            }
        }
        // Wait for the next ask, then take all that are queued: many
        // changes of the folder make one look.
        let Ok(first) = asked.recv() else { return };
        look = false;
        for ask in std::iter::once(first).chain(asked.try_iter()) {
            match ask {
                Ask::Look => look = true,
                Ask::Know(run_id) => view.know(run_id),
            }
        }
    }
}
