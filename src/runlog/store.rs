//! The folder of run logs: listing, summarising and finding runs.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{EndStatus, Record, RunlogError, open};

/// Whether a run is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// The log is complete (it has its `end` line).
    Finished,
    /// No `end` yet, and the process writing it still runs.
    Live,
    /// No `end`, and its writer is gone: it crashed or was killed.
    Interrupted,
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunState::Finished => "finished",
            RunState::Live => "live",
            RunState::Interrupted => "interrupted",
        })
    }
}

/// One line of `subrt ls`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// Its log file.
    pub path: PathBuf,
    /// The environment's name.
    pub environment: String,
    /// The first command.
    pub command: Option<String>,
    /// Finished, live or interrupted.
    pub state: RunState,
    /// How the last command ended, when one did.
    pub status: Option<EndStatus>,
    /// The last command's exit code.
    pub exit: Option<i32>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// From the start to the last line.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Stdout bytes, setup included.
    pub bytes_out: u64,
    /// Stderr bytes, setup included.
    pub bytes_err: u64,
    /// What held the session's processes together, when the log says.
    pub containment: Option<crate::runtime::Containment>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Bytes read from the end of a file to find its `end` line.
const TAIL: u64 = 64 * 1024;

/// Summarises the log at `path`: from its first lines and its `end` line
/// when it has one, else from a pass over the whole file (streamed).
pub fn summarize(path: &Path) -> Result<(RunSummary, Vec<String>), RunlogError> {
    let mut reader = open(path)?;
    let header = reader.header.clone();
    let mut summary = RunSummary {
        run_id: header.run_id.clone(),
        path: path.to_owned(),
        environment: header.environment.name.clone(),
        command: None,
        state: RunState::Finished,
        status: None,
        exit: None,
        started_at: header.started_at.clone(),
        duration: Duration::ZERO,
        bytes_out: 0,
        bytes_err: 0,
        containment: header.containment,
    };
    if let Some(Record::End {
        t,
        status,
        exit,
        out,
        err,
        ..
    }) = last_record(path)
    {
        summary.command = reader.by_ref().take(16).find_map(|r| match r {
            Record::Cmd { command, .. } => Some(command),
            _ => None,
        });
        summary.status = Some(status);
        summary.exit = exit;
        summary.duration = Duration::from_micros(t);
        summary.bytes_out = out;
        summary.bytes_err = err;
        return Ok((summary, reader.warnings));
    }
    for record in reader.by_ref() {
        summary.duration = Duration::from_micros(record.time_us());
        match record {
            Record::Cmd { command, .. } if summary.command.is_none() => {
                summary.command = Some(command)
            }
            Record::Out {
                s, ref d, ref b, ..
            } => {
                let len = match (d, b) {
                    (Some(text), _) => text.len() as u64,
                    _ => record.output_bytes().map_or(0, |v| v.len() as u64),
                };
                match s {
                    super::StreamTag::Out => summary.bytes_out += len,
                    super::StreamTag::Err => summary.bytes_err += len,
                }
            }
            Record::Exit {
                code,
                timed_out,
                killed,
                ref setup_failure,
                ..
            } => {
                summary.exit = Some(code);
                summary.status = Some(if setup_failure.is_some() {
                    EndStatus::SetupFailed
                } else if timed_out {
                    EndStatus::TimedOut
                } else if killed {
                    EndStatus::Killed
                } else {
                    EndStatus::Exited
                });
            }
            _ => {}
        }
    }
    summary.state = if header.owner.is_alive() {
        RunState::Live
    } else {
        RunState::Interrupted
    };
    Ok((summary, reader.warnings))
}

/// The last complete line of the file, if it is a record.
fn last_record(path: &Path) -> Option<Record> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.read_to_end(&mut tail).ok()?;
    let body = tail.strip_suffix(b"\n")?;
    let line = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None if start == 0 => body,
        None => return None,
    };
    serde_json::from_slice(line).ok()
}

/// A folder of run logs.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log files, newest first (run ids sort by time).
    pub fn files(&self) -> Result<Vec<PathBuf>, RunlogError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(RunlogError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort_by(|a, b| b.file_name().cmp(&a.file_name()));
        Ok(files)
    }

    /// Summaries of every run, newest first, and warnings about the files
    /// that could not be read.
    pub fn list(&self) -> Result<(Vec<RunSummary>, Vec<String>), RunlogError> {
        let mut runs = Vec::new();
        let mut warnings = Vec::new();
        for path in self.files()? {
            match summarize(&path) {
                Ok((summary, mut w)) => {
                    runs.push(summary);
                    warnings.append(&mut w);
                }
                Err(e) => warnings.push(e.to_string()),
            }
        }
        Ok((runs, warnings))
    }

    /// The log of `query`: a full run id, a unique prefix of one, or `last`.
    pub fn resolve(&self, query: &str) -> Result<PathBuf, RunlogError> {
        let files = self.files()?;
        let id = |p: &PathBuf| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let not_found = |reason: String| RunlogError::NotFound {
            query: query.to_owned(),
            store: self.dir.clone(),
            reason,
        };
        if query == "last" {
            return files
                .into_iter()
                .next()
                .ok_or_else(|| not_found("the store has no runs".into()));
        }
        if let Some(exact) = files.iter().find(|p| id(p) == query) {
            return Ok(exact.clone());
        }
        let matches: Vec<&PathBuf> = files.iter().filter(|p| id(p).starts_with(query)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(not_found("no run id starts with it".into())),
            many => Err(not_found(format!(
                "ambiguous: {}",
                many.iter().map(|p| id(p)).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}
