//! Replay (Enter on a finished run): its output played back into the
//! panes with its timing, paused, faster, slower, seeking.

use std::time::Duration;

use super::action::Action;
use super::app::App;
use super::sanitize::OutputBuffer;
use super::session::{PANE_LINES, Session};
use crate::runlog::{self, Body, StreamTag};
use crate::runtime::StreamKind;

/// Output a replay holds at most; a larger log replays its first part.
pub const REPLAY_BYTES: usize = 64 << 20;

/// A finished run played back in the output panes with its timing.
#[derive(Debug)]
pub struct Replay {
    /// The run being replayed, by id.
    pub session: String,
    /// Its output, in order: when, which stream, the bytes.
    chunks: Vec<(Duration, StreamKind, Vec<u8>)>,
    /// How many chunks are in the panes.
    shown: usize,
    /// Where the replay is.
    pub position: Duration,
    /// The time of the last chunk.
    pub duration: Duration,
    /// Speed factor.
    pub speed: f64,
    /// Paused.
    pub paused: bool,
    /// The log held more than [`REPLAY_BYTES`].
    pub cut: bool,
}

impl Replay {
    /// Reads the output of the log at `path`.
    pub fn load(session: String, path: &std::path::Path) -> Result<Self, String> {
        let mut reader = runlog::open(path).map_err(|e| e.to_string())?;
        let mut chunks = Vec::new();
        let (mut bytes, mut cut) = (0, false);
        while let Some(record) = reader.next() {
            if let Body::Out { s, .. } = &record.body {
                let t = &record.t;
                let data = reader.bytes(&record);
                bytes += data.len();
                if bytes > REPLAY_BYTES {
                    cut = true;
                    break;
                }
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
    /// Starts replaying session `index` from its log.
    pub fn start_replay(&mut self, index: usize) {
        let Some(session) = self.sessions.get_mut(index) else {
            return;
        };
        let Some(path) = session.log.clone() else {
            return self.say("this session has no run log to replay");
        };
        match Replay::load(session.run_id.clone(), &path) {
            Ok(mut replay) => {
                session.stdout = OutputBuffer::new(PANE_LINES);
                session.stderr = OutputBuffer::new(PANE_LINES);
                session.loaded = true;
                replay.seek(session, Duration::ZERO);
                if replay.cut {
                    self.message =
                        format!("replaying the first {} MiB of output", REPLAY_BYTES >> 20);
                }
                self.follow = true;
                self.scroll = [0, 0];
                self.replay = Some(replay);
            }
            Err(e) => self.say(format!("cannot replay: {e}")),
        }
        self.dirty = true;
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
            Action::Faster => replay.speed = (replay.speed * 2.0).min(64.0),
            Action::Slower => replay.speed = (replay.speed / 2.0).max(1.0 / 16.0),
            Action::SeekForward => replay.seek(session, replay.position + step),
            Action::SeekBack => replay.seek(session, replay.position.saturating_sub(step)),
            Action::Top => replay.seek(session, Duration::ZERO),
            Action::Bottom => replay.seek(session, replay.duration),
            Action::Close => {
                // Back to the whole output.
                self.replay = None;
                session.loaded = false;
                session.stdout = OutputBuffer::new(PANE_LINES);
                session.stderr = OutputBuffer::new(PANE_LINES);
                session.load();
            }
            _ => return false,
        }
        self.dirty = true;
        true
    }
}
