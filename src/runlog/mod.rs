//! The saved log of a session: `<store>/<run_id>.jsonl`, one JSON object a
//! line.
//!
//! Line 1 is a [`Header`]; every other line is a [`Record`], tagged by `e`.
//! Output records carry the bytes as `d` (text) when they are valid UTF-8
//! and mostly printable, else as `b` (base64), so replay and export
//! reproduce every byte exactly. Each line is written whole with one write
//! to a file opened for append, so it is visible to other processes at once
//! and a crash tears at most the last line.
//!
//! ```text
//! {"format":"subrt-runlog","version":1,"run_id":"01K…","started_at":"2026-11-24T15:00:00.000000Z",…}
//! {"e":"cmd","seq":1,"t":12,"c":1,"command":"python3 main.py","timeout":30.0}
//! {"e":"proc","seq":2,"t":950,"c":1,"pid":4242,"pgid":4242,"start":123456}
//! {"e":"out","seq":3,"t":2001,"c":1,"s":"out","p":"cmd","d":"hello\n"}
//! {"e":"exit","seq":4,"t":3500,"c":1,"code":0,"signal":null,"timed_out":false,"killed":false}
//! {"e":"end","seq":5,"t":3600,"status":"exited","exit":0,"out":6,"err":0,"commands":1}
//! ```

mod export;
mod reader;
mod store;
mod writer;

/// Kept here too: the run log's header names its owner.
pub use crate::runtime::owner::Owner;
pub use export::{ExportFormat, export, replay_print};
pub use reader::{RunlogReader, Tail, open};
pub use store::{RunState, RunSummary, Store, summarize};
pub use writer::RunlogWriter;

use std::path::PathBuf;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::runtime::{Phase, SetupFailure, StreamKind};
use crate::spec::EnvironmentSpec;

/// The `format` of line 1.
pub const FORMAT: &str = "subrt-runlog";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// Line 1 of a run log: what the run is, and who runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version; readers refuse versions they do not know.
    pub version: u32,
    /// The run's id, also the file's name.
    pub run_id: String,
    /// When the session started, RFC 3339 in UTC.
    pub started_at: String,
    /// The subrt version that wrote the file.
    pub subrt_version: String,
    /// The environment spec as used.
    pub environment: EnvironmentSpec,
    /// The submission's working directory.
    pub working_dir: PathBuf,
    /// The subrt process that writes the file.
    pub owner: Owner,
    /// The container (Docker runs).
    #[serde(default)]
    pub container_id: Option<String>,
    /// What holds the session's processes together (absent in logs written
    /// before subrt recorded it).
    #[serde(default)]
    pub containment: Option<crate::runtime::Containment>,
}

/// One line after the header. `seq` numbers every record from 1, `t` is
/// microseconds since the session started, `c` the command's number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Record {
    /// A command starts.
    Cmd {
        /// Sequence number.
        seq: u64,
        /// Microseconds since the start.
        t: u64,
        /// Command number.
        c: u32,
        /// The command line.
        command: String,
        /// Its timeout in seconds.
        timeout: Option<f64>,
    },
    /// A setup command starts.
    Setup {
        /// Sequence number.
        seq: u64,
        /// Microseconds since the start.
        t: u64,
        /// Command number.
        c: u32,
        /// The setup command line.
        command: String,
    },
    /// A host process of the command started.
    Proc {
        /// Sequence number.
        seq: u64,
        /// Microseconds since the start.
        t: u64,
        /// Command number.
        c: u32,
        /// Its pid.
        pid: u32,
        /// Its process group.
        pgid: i32,
        /// Its start time in clock ticks since boot, if it was still alive
        /// when recorded.
        start: Option<u64>,
        /// The init of the session's PID namespace: SIGKILL to it kills
        /// every process of the session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<u32>,
        /// The init's start time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init_start: Option<u64>,
    },
    /// Output.
    Out {
        /// Sequence number.
        seq: u64,
        /// Microseconds since the start.
        t: u64,
        /// Command number.
        c: u32,
        /// `out` or `err`.
        s: StreamTag,
        /// `setup` or `cmd`.
        p: PhaseTag,
        /// The bytes as text, when they are UTF-8.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        d: Option<String>,
        /// The bytes in base64, otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        b: Option<String>,
    },
    /// A command ended.
    Exit {
        /// Sequence number.
        seq: u64,
        /// Microseconds since the start.
        t: u64,
        /// Command number.
        c: u32,
        /// Exit code (128+N for signal N).
        code: i32,
        /// The signal that ended it.
        signal: Option<i32>,
        /// The timeout ended it.
        timed_out: bool,
        /// `kill` ended it.
        killed: bool,
        /// The setup command that failed, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        setup_failure: Option<SetupFailure>,
    },
    /// A warning or error of the runtime or of subrt.
    Note {
        /// Sequence number.
        seq: u64,
        /// Microseconds since the start.
        t: u64,
        /// Command number (0 outside commands).
        c: u32,
        /// The message.
        text: String,
    },
    /// The session ended; always the last line of a complete log.
    End {
        /// Sequence number.
        seq: u64,
        /// Microseconds since the start.
        t: u64,
        /// How the last command ended.
        status: EndStatus,
        /// The last command's exit code.
        exit: Option<i32>,
        /// Stdout bytes of the whole session, setup included.
        out: u64,
        /// Stderr bytes of the whole session, setup included.
        err: u64,
        /// Commands run.
        commands: u32,
    },
}

impl Record {
    /// Microseconds since the session started.
    pub fn time_us(&self) -> u64 {
        match self {
            Record::Cmd { t, .. }
            | Record::Setup { t, .. }
            | Record::Proc { t, .. }
            | Record::Out { t, .. }
            | Record::Exit { t, .. }
            | Record::Note { t, .. }
            | Record::End { t, .. } => *t,
        }
    }

    /// The bytes of an output record (`None` for other records or a `b`
    /// that is not base64).
    pub fn output_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Record::Out { d: Some(text), .. } => Some(text.clone().into_bytes()),
            Record::Out { b: Some(b64), .. } => {
                base64::engine::general_purpose::STANDARD.decode(b64).ok()
            }
            _ => None,
        }
    }
}

/// `s` of an output record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamTag {
    /// Stdout.
    Out,
    /// Stderr.
    Err,
}

impl From<StreamKind> for StreamTag {
    fn from(stream: StreamKind) -> Self {
        match stream {
            StreamKind::Stdout => StreamTag::Out,
            StreamKind::Stderr => StreamTag::Err,
        }
    }
}

/// `p` of an output record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseTag {
    /// A setup command.
    Setup,
    /// The command.
    Cmd,
}

impl From<Phase> for PhaseTag {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Setup => PhaseTag::Setup,
            Phase::Command => PhaseTag::Cmd,
        }
    }
}

/// How a session ended, from its last command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndStatus {
    /// The last command exited (with `exit`).
    Exited,
    /// The last command timed out.
    TimedOut,
    /// The last command was killed.
    Killed,
    /// A setup command failed.
    SetupFailed,
    /// No command ran.
    Empty,
}

impl std::fmt::Display for EndStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EndStatus::Exited => "exited",
            EndStatus::TimedOut => "timed out",
            EndStatus::Killed => "killed",
            EndStatus::SetupFailed => "setup failed",
            EndStatus::Empty => "empty",
        })
    }
}

/// What went wrong reading or writing a run log.
#[derive(Debug, thiserror::Error)]
pub enum RunlogError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Line 1 is not a header this build understands.
    #[error("{}: {reason}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No run matches what was asked for.
    #[error("no run `{query}` in {} ({reason})", store.display())]
    NotFound {
        /// What was asked for.
        query: String,
        /// The store.
        store: PathBuf,
        /// Why not, e.g. "ambiguous: 01A…, 01B…".
        reason: String,
    },
}
