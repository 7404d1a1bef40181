//! Replay (Enter on a finished run): its output played back into the
//! panes with its timing, paused, faster, slower, seeking.

use std::time::Duration;

use super::action::Action;
use super::app::{App, Effect};
use super::panes::clock;
use super::sanitize::OutputBuffer;
use super::session::{PANE_LINES, Session, short_id};
use crate::runlog::{self, Body, StreamTag};
use crate::runtime::StreamKind;

/// Output a replay holds at most; a larger log replays its first part.
pub const REPLAY_BYTES: usize = 64 << 20;

/// The slowest replay.
const MIN_SPEED: f64 = 1.0 / 16.0;
/// The fastest.
const MAX_SPEED: f64 = 64.0;

/// When, which stream, the bytes.
type Chunk = (Duration, StreamKind, Vec<u8>);

/// A finished run played back in the output panes with its timing.
#[derive(Debug)]
pub struct Replay {
    /// The run being replayed, by id.
    pub session: String,
    /// Its output, in order: when, which stream, the bytes.
    chunks: Vec<Chunk>,
    /// How many chunks are in the panes.
    shown: usize,
    /// Where the replay is.
    pub position: Duration,
    /// The time of the last chunk it holds: where it ends.
    pub duration: Duration,
    /// The time of the run's last output (past `duration` when cut).
    pub length: Duration,
    /// Speed factor.
    pub speed: f64,
    /// Paused.
    pub paused: bool,
    /// The log held more than [`REPLAY_BYTES`]: the replay holds its
    /// output up to this time.
    pub cut: Option<Duration>,
}

impl Replay {
    /// Reads the output of the log at `path`: the first [`REPLAY_BYTES`],
    /// and how long the run printed. Blocking: the dashboard calls it in a
    /// task.
    ///
    /// # Errors
    ///
    /// The log cannot be opened (its message).
    pub fn load(session: String, path: &std::path::Path) -> Result<Self, String> {
        let mut reader = runlog::open(path).map_err(|e| e.to_string())?;
        let mut chunks = Vec::new();
        let (mut bytes, mut cut, mut length) = (0, None, Duration::ZERO);
        while let Some(record) = reader.next() {
            if let Body::Out { s, n, .. } = &record.body {
                let t = &record.t;
                length = Duration::from_micros(*t);
                if cut.is_some() {
                    // Past what it holds: only the times, not the bytes.
                    continue;
                }
                // Version 2 says the size up front: too much is not read.
                let data = match n {
                    Some(n) if bytes + *n as usize > REPLAY_BYTES => None,
                    _ => Some(reader.bytes(&record)),
                };
                let Some(data) = data.filter(|d| bytes + d.len() <= REPLAY_BYTES) else {
                    cut = Some(chunks.last().map_or(Duration::ZERO, |c: &Chunk| c.0));
                    continue;
                };
                bytes += data.len();
                let stream = match s {
                    StreamTag::Out => StreamKind::Stdout,
                    StreamTag::Err => StreamKind::Stderr,
                };
                chunks.push((Duration::from_micros(*t), stream, data));
            }
        }
        let duration = chunks.last().map_or(Duration::ZERO, |c| c.0);
        Ok(Self {
            session,
            chunks,
            shown: 0,
            position: Duration::ZERO,
            duration,
            length: length.max(duration),
            speed: 1.0,
            paused: false,
            cut,
        })
    }

    /// Moves the replay to `position` and updates the session's panes.
    fn seek(&mut self, session: &mut Session, position: Duration) {
        let position = position.min(self.duration);
        if position < self.position {
            session.stdout = OutputBuffer::new(PANE_LINES);
            session.stderr = OutputBuffer::new(PANE_LINES);
            self.shown = 0;
        }
        self.position = position;
        while let Some((at, stream, data)) = self.chunks.get(self.shown) {
            if *at > position {
                break;
            }
            match stream {
                StreamKind::Stdout => session.stdout.push(data, *at),
                StreamKind::Stderr => session.stderr.push(data, *at),
            }
            self.shown += 1;
        }
    }

    /// True when it reached the end.
    pub fn finished(&self) -> bool {
        self.position >= self.duration
    }
}

impl App {
    /// Asks for the replay of session `index`: its log is read in a task
    /// ([`Effect::LoadReplay`]), then [`App::replay_loaded`] starts it.
    pub(super) fn start_replay(&mut self, index: usize) -> Option<Effect> {
        let session = self.sessions.get(index)?;
        let run_id = session.run_id.clone();
        let Some(path) = session.log.clone() else {
            self.say("this session has no run log to replay");
            return None;
        };
        self.say(format!("{}: reading its log to replay…", short_id(&run_id)));
        Some(Effect::LoadReplay { run_id, path })
    }

    /// Selects `run` (listing it first when the history left it out) and
    /// asks for its replay at `speed`: `subrt replay RUN`.
    pub fn open_replay(&mut self, run: &crate::runlog::RunSummary, speed: f64) -> Option<Effect> {
        let index = match self.sessions.iter().position(|s| s.run_id == run.run_id) {
            Some(index) => index,
            None => {
                self.sessions.insert(0, Session::stored(run));
                0
            }
        };
        self.filter = Default::default();
        self.select_session(index);
        self.replay_speed = speed.clamp(MIN_SPEED, MAX_SPEED);
        self.start_replay(index)
    }

    /// Starts the replay [`Replay::load`] read, if its run is still the
    /// selected one.
    pub fn replay_loaded(&mut self, run_id: &str, loaded: Result<Replay, String>) {
        self.dirty = true;
        let Some(session) = self.sessions.get_mut(self.selected_session) else {
            return;
        };
        if session.run_id != run_id {
            return;
        }
        match loaded {
            Ok(mut replay) => {
                if self.replay.is_some() {
                    return;
                }
                session.stdout = OutputBuffer::new(PANE_LINES);
                session.stderr = OutputBuffer::new(PANE_LINES);
                session.loaded = true;
                replay.speed = std::mem::replace(&mut self.replay_speed, 1.0);
                replay.seek(session, Duration::ZERO);
                let message = match replay.cut {
                    Some(held) => format!(
                        "this replay holds the first {} MiB of output, up to {}; the run printed until {}",
                        REPLAY_BYTES >> 20,
                        clock(held),
                        clock(replay.length)
                    ),
                    None => "replaying: Space pauses, + - change the speed, Esc stops".into(),
                };
                self.follow = true;
                self.scroll = [0, 0];
                self.replay = Some(replay);
                self.say(message);
            }
            Err(e) => self.say(format!("cannot replay: {e}")),
        }
    }

    /// Advances a playing replay by `elapsed` of wall time.
    pub fn tick_replay(&mut self, elapsed: Duration) {
        let Some(replay) = &mut self.replay else {
            return;
        };
        if replay.paused || replay.finished() {
            return;
        }
        let Some(session) = self
            .sessions
            .iter_mut()
            .find(|s| s.run_id == replay.session)
        else {
            return;
        };
        let to = replay.position + elapsed.mul_f64(replay.speed);
        replay.seek(session, to);
        self.dirty = true;
    }

    pub(super) fn replay_action(&mut self, action: Action) -> bool {
        let Some(replay) = &mut self.replay else {
            return false;
        };
        let Some(session) = self
            .sessions
            .iter_mut()
            .find(|s| s.run_id == replay.session)
        else {
            return false;
        };
        let step = Duration::from_secs(5);
        match action {
            Action::Pause => replay.paused = !replay.paused,
            Action::Faster => replay.speed = (replay.speed * 2.0).min(MAX_SPEED),
            Action::Slower => replay.speed = (replay.speed / 2.0).max(MIN_SPEED),
            Action::SeekForward => replay.seek(session, replay.position + step),
            Action::SeekBack => replay.seek(session, replay.position.saturating_sub(step)),
            Action::Top => replay.seek(session, Duration::ZERO),
            Action::Bottom => replay.seek(session, replay.duration),
            Action::Close => {
                // Back to the whole output, read again in a task.
                self.replay = None;
                session.loaded = false;
                session.stdout = OutputBuffer::new(PANE_LINES);
                session.stderr = OutputBuffer::new(PANE_LINES);
                self.request_output();
            }
            _ => return false,
        }
        self.dirty = true;
        true
    }
}
