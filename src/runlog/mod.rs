//! The saved log of a session.
//!
//! # Format, version 2
//!
//! A run is a folder in the store, named by its run id:
//!
//! ```text
//! runs/01KB…/events.jsonl   the index: a header line, then one record a line
//! runs/01KB…/stdout         every byte the session wrote to stdout, as written
//! runs/01KB…/stderr         the same for stderr
//! ```
//!
//! The stream files hold the raw bytes, setup and commands in order: no
//! escaping, no encoding, readable with `cat` and `grep`. The index says
//! which bytes came when: an `out` record names the stream (`s`), the phase
//! (`p`), and the range of the stream (`o` offset, `n` length) that arrived
//! at time `t`. Chunks of one stream that arrive within a few milliseconds
//! of each other share a record.
//!
//! ```text
//! {"format":"subrt-runlog","version":2,"run_id":"01KB…","started_at":"2026-12-01T15:00:00.000000Z","max_run_bytes":1073741824,"containment":"pid-namespace",…}
//! {"seq":1,"t":12,"c":1,"e":"cmd","command":"python3 main.py","timeout":30.0}
//! {"seq":2,"t":950,"c":1,"e":"proc","pid":4242,"pgid":4242,"start":123456,"init":4240,"init_start":123455}
//! {"seq":3,"t":2001,"c":1,"e":"out","s":"out","p":"cmd","o":0,"n":6}
//! {"seq":4,"t":3500,"c":1,"e":"exit","code":0,"signal":null,"timed_out":false,"killed":false,"out":6,"err":0}
//! {"seq":5,"t":3600,"c":1,"e":"end","status":"exited","exit":0,"out":6,"err":0,"commands":1}
//! ```
//!
//! Every record has `seq` (from 1), `t` (microseconds since the session
//! started) and `c` (the command's number, 0 outside commands). Commands
//! run side by side (`SubmissionRuntime::start`) interleave their records,
//! each with its own `c`. A `file` record (`c` 0) says a file of the
//! session was read or written (`op`, `path`, `bytes`, `error`); `end`
//! counts them (`files`). The `exit`
//! of a command is written when it ends; `end` when the session is cleaned
//! up. The header names the owner (host, pid, start time), so another
//! process can tell a live run from an interrupted one, and the `proc`
//! records say what to kill (the PID namespace's init, else the group).
//!
//! **Bounded.** Each stream keeps at most `max_run_bytes` (the header says
//! how many): the first three quarters as written, then the last quarter in
//! a ring, so a flood keeps its beginning and its end and the middle is
//! counted, not kept. Readers know from the offsets which bytes were kept.
//!
//! **Crash-safe.** Bytes are written to a stream file before the record
//! that points at them, and each index line is one `write` to a file opened
//! for append: a reader trusts only ranges that a complete record names, so
//! a log cut short at any moment exports as an exact prefix of what the
//! command wrote (as long as nothing was dropped by the bound).
//!
//! **Off the hot path.** The session's task hands each chunk (a reference,
//! not a copy) to a writer thread through a bounded queue
//! ([`RunlogWriter`]); encoding and writing never happen on the task that
//! reads the pipes.
//!
//! # Version 1
//!
//! `<store>/<run id>.jsonl`, output inline in `out` records as text `d` or
//! base64 `b`. Readers still list, export and replay it.

mod export;
mod reader;
mod store;
mod streams;
mod writer;

pub use export::{ExportFormat, export, replay_print};
pub use reader::{RunlogReader, Tail, open};
pub use store::{RunState, RunSummary, RunTally, Store, StoreLimits, summarize};
pub use writer::RunlogWriter;

/// Kept here too: the run log's header names its owner.
pub use crate::runtime::owner::Owner;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::runtime::{Containment, KilledBy, Outcome, Phase, SetupFailure, StreamKind, Usage};
use crate::spec::EnvironmentSpec;

/// The `format` of line 1.
pub const FORMAT: &str = "subrt-runlog";
/// The version this build writes.
pub const VERSION: u32 = 2;
/// The index file of a version-2 run.
pub const INDEX_FILE: &str = "events.jsonl";
/// What `[store] max_run_bytes` is unless the config says otherwise: 1 GiB.
pub const DEFAULT_MAX_RUN_BYTES: u64 = 1 << 30;

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
    pub containment: Option<Containment>,
    /// Bytes kept per stream at most (version 2).
    #[serde(default)]
    pub max_run_bytes: Option<u64>,
    /// Labels of the run (name, batch, submission, the user's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The Slurm allocation (Slurm runs): job id and node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<crate::runtime::SlurmJob>,
    /// How commands start, where the runtime has more than one way (Docker:
    /// `subrt-agent`, or `docker exec (why)`), as the session began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands_start: Option<String>,
}

/// One line after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Sequence number, from 1.
    pub seq: u64,
    /// Microseconds since the session started.
    pub t: u64,
    /// The command's number (0 outside commands).
    #[serde(default)]
    pub c: u32,
    /// What happened.
    #[serde(flatten)]
    pub body: Body,
}

/// What a [`Record`] says, tagged by `e`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Body {
    /// A command starts.
    Cmd {
        /// The command line.
        command: String,
        /// Its timeout in seconds.
        timeout: Option<f64>,
    },
    /// A setup command starts.
    Setup {
        /// The setup command line.
        command: String,
    },
    /// A host process of the command started.
    Proc {
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
        /// `out` or `err`.
        s: StreamTag,
        /// `setup` or `cmd`.
        p: PhaseTag,
        /// Version 2: where in the stream the bytes start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        o: Option<u64>,
        /// Version 2: how many bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n: Option<u64>,
        /// Version 1: the bytes as text, when they are UTF-8.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        d: Option<String>,
        /// Version 1: the bytes in base64, otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        b: Option<String>,
    },
    /// A command ended.
    Exit {
        /// Exit code (128+N for signal N).
        code: i32,
        /// The signal that ended it.
        signal: Option<i32>,
        /// The timeout ended it.
        timed_out: bool,
        /// `kill` ended it (also a kill from outside the session).
        killed: bool,
        /// Who or what ended it, when it did not end by itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        killed_by: Option<KilledBy>,
        /// The out-of-memory killer ended a process of it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        oom_killed: bool,
        /// Its exit status could not be read, and why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status_lost: Option<String>,
        /// What it cost.
        #[serde(default, flatten, skip_serializing_if = "Usage::is_empty")]
        usage: Usage,
        /// The setup command that failed, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        setup_failure: Option<SetupFailure>,
        /// Stdout bytes of the session so far (version 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        out: Option<u64>,
        /// Stderr bytes of the session so far (version 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        err: Option<u64>,
    },
    /// A warning or error of the runtime or of subrt.
    Note {
        /// The message.
        text: String,
    },
    /// A file of the session was read or written (`c` is 0).
    File {
        /// `read` or `write`.
        op: FileOp,
        /// The path, as the caller gave it.
        path: String,
        /// Bytes read or written.
        bytes: u64,
        /// Why it failed, when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The session ended; always the last line of a complete log.
    End {
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
        /// Microseconds the commands ran, setup included (version 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        busy: Option<u64>,
        /// Why output stopped being recorded before the end (a full
        /// disk): the session ended, its log is incomplete.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incomplete: Option<String>,
        /// File operations of the session (`file` records).
        #[serde(default, skip_serializing_if = "FileCounts::is_empty")]
        files: FileCounts,
    },
}

impl Record {
    /// Microseconds since the session started.
    pub fn time_us(&self) -> u64 {
        self.t
    }
}

impl Body {
    /// The outcome an `exit` record says (byte counts left at 0: they are
    /// the reader's to add up); `None` for other records.
    pub fn outcome(&self) -> Option<Outcome> {
        let Body::Exit {
            code,
            signal,
            timed_out,
            killed,
            killed_by,
            oom_killed,
            status_lost,
            usage,
            setup_failure,
            ..
        } = self
        else {
            return None;
        };
        Some(Outcome {
            exit_code: *code,
            signal: *signal,
            timed_out: *timed_out,
            killed: *killed,
            killed_by: *killed_by,
            oom_killed: *oom_killed,
            status_lost: status_lost.clone(),
            usage: *usage,
            setup_failure: setup_failure.clone(),
            ..Outcome::default()
        })
    }
}

/// How many files a session read and wrote (`file` records), failed
/// attempts included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCounts {
    /// `read_file` calls.
    pub read: u32,
    /// `write_file` calls.
    pub written: u32,
}

impl FileCounts {
    /// No file operation.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Counts `body` in, when it is a `file` record.
    pub fn see(&mut self, body: &Body) {
        match body {
            Body::File {
                op: FileOp::Read, ..
            } => self.read += 1,
            Body::File {
                op: FileOp::Write, ..
            } => self.written += 1,
            _ => {}
        }
    }
}

/// `op` of a `file` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileOp {
    /// `read_file`.
    Read,
    /// `write_file`.
    Write,
}

impl Body {
    /// A `file` record as one line of text, for the views that show notes.
    pub fn file_words(&self) -> Option<String> {
        let Body::File {
            op,
            path,
            bytes,
            error,
        } = self
        else {
            return None;
        };
        let (done, doing) = match op {
            FileOp::Read => ("read", "reading"),
            FileOp::Write => ("wrote", "writing"),
        };
        Some(match error {
            None => format!("{done} file {path:?} ({bytes} bytes)"),
            Some(error) => format!("{doing} file {path:?} failed: {error}"),
        })
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

impl StreamTag {
    /// 0 for stdout, 1 for stderr.
    pub fn index(self) -> usize {
        match self {
            StreamTag::Out => 0,
            StreamTag::Err => 1,
        }
    }

    /// The stream file's name in a version-2 run.
    pub fn file_name(self) -> &'static str {
        match self {
            StreamTag::Out => "stdout",
            StreamTag::Err => "stderr",
        }
    }
}

impl From<StreamKind> for StreamTag {
    fn from(stream: StreamKind) -> Self {
        match stream {
            StreamKind::Stdout => StreamTag::Out,
            StreamKind::Stderr => StreamTag::Err,
        }
    }
}

impl From<StreamTag> for StreamKind {
    fn from(stream: StreamTag) -> Self {
        match stream {
            StreamTag::Out => StreamKind::Stdout,
            StreamTag::Err => StreamKind::Stderr,
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

/// How a command (and so a session, from its last command) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndStatus {
    /// The command exited (with its code).
    Exited,
    /// The timeout ended it.
    TimedOut,
    /// It was killed.
    Killed,
    /// A setup command failed.
    SetupFailed,
    /// How it ended is not known: its status could not be read (a node
    /// failed, the cluster went away).
    StatusLost,
    /// No command ran.
    Empty,
}

impl EndStatus {
    /// How a command ended, from its outcome: the one place this is
    /// decided.
    pub fn of(outcome: &Outcome) -> Self {
        if outcome.status_lost.is_some() {
            EndStatus::StatusLost
        } else if outcome.setup_failure.is_some() {
            EndStatus::SetupFailed
        } else if outcome.timed_out {
            EndStatus::TimedOut
        } else if outcome.killed {
            EndStatus::Killed
        } else {
            EndStatus::Exited
        }
    }
}

impl std::fmt::Display for EndStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EndStatus::Exited => "exited",
            EndStatus::TimedOut => "timed out",
            EndStatus::Killed => "killed",
            EndStatus::SetupFailed => "setup failed",
            EndStatus::StatusLost => "status lost",
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
        #[source]
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
    /// A path in the store is not a run log (a FIFO, a folder, a link).
    #[error("{}: {reason}; skipped", path.display())]
    NotALog {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// More than one run id starts with what was asked for.
    #[error(
        "`{query}` is the start of {} runs in {}: {}; give more of the id",
        matches.len(), store.display(), matches.join(", ")
    )]
    Ambiguous {
        /// What was asked for.
        query: String,
        /// The store.
        store: PathBuf,
        /// The run ids it starts.
        matches: Vec<String>,
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
