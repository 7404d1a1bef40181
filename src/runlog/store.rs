//! The folder of run logs: listing, summarising, finding and pruning runs.
//!
//! Listing reads each run's index (the header, and the last record when
//! the run is complete), never its output; anything in the folder that is
//! not a run log (a FIFO, a folder named like a log, a symbolic link) is
//! skipped with a warning, never opened.
//!
//! A finished run never changes, so its summary is kept in the store's
//! catalog ([`CATALOG_FILE`]) the first time a listing reads it: a store of
//! 100,000 runs is then listed from one file and one read of the folder,
//! not from 100,000 indexes. A run is listed from the catalog only while
//! its folder is in the store.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use serde::{Deserialize, Serialize};

use super::reader::{describe, index_path, open_regular};
use super::streams::Layout;
use super::writer::INCOMPLETE_FILE;
use super::{
    Body, DEFAULT_MAX_RUN_BYTES, EndStatus, FileCounts, INDEX_FILE, Record, RunlogError, open,
};
use crate::runtime::{Containment, Outcome, Verdict};

/// What a run is doing, as far as its log and its owner tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// A command runs (its owner is alive).
    Running,
    /// Between commands: no command runs, the session is alive.
    Idle,
    /// Over: cleaned up (the log has its `end`).
    Finished,
    /// Its owner died without ending it: while a command ran, or between
    /// two commands. Silence is not success: a run is finished only when
    /// its log says so.
    Interrupted,
}

impl RunState {
    /// Running or idle: the session is alive.
    pub fn is_live(self) -> bool {
        matches!(self, RunState::Running | RunState::Idle)
    }
}

impl RunSummary {
    /// How the run stands, in the one vocabulary ([`Verdict`]): running,
    /// idle or interrupted from its state, else how its last command ended
    /// (`None`: finished without a command).
    pub fn verdict(&self) -> Option<Verdict> {
        match self.state {
            RunState::Running => Some(Verdict::Running),
            RunState::Idle => Some(Verdict::Idle),
            RunState::Interrupted => Some(Verdict::Interrupted),
            RunState::Finished => self.outcome.as_ref().map(Verdict::of),
        }
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunState::Running => "running",
            RunState::Idle => "idle",
            RunState::Finished => "finished",
            RunState::Interrupted => "interrupted",
        })
    }
}

/// One line of `subrt ls`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// Its folder (version 2) or file (version 1).
    pub path: PathBuf,
    /// The environment's name.
    pub environment: String,
    /// The first command.
    pub command: Option<String>,
    /// The first command's timeout, in seconds.
    pub timeout: Option<f64>,
    /// Commands started in the session.
    pub commands: u32,
    /// The submission's working directory.
    pub working_dir: PathBuf,
    /// Running, idle, finished or interrupted.
    pub state: RunState,
    /// How the last command that ended ended.
    pub status: Option<EndStatus>,
    /// The last ended command's outcome; the byte counts are the session's.
    #[serde(flatten)]
    pub outcome: Option<Outcome>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Wall time of its commands; for a running command, up to now.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// While a command runs: how long since it last printed.
    #[serde(serialize_with = "opt_secs")]
    pub silent_for: Option<Duration>,
    /// Stdout bytes, setup included.
    pub bytes_out: u64,
    /// Stderr bytes, setup included.
    pub bytes_err: u64,
    /// The log kept only part of a stream (`max_run_bytes`). In JSON it is
    /// the outcome's `truncated` (one key, not two), so it shows once a
    /// command has ended.
    #[serde(skip)]
    pub truncated: bool,
    /// Why the recording stopped early, when it did ("log incomplete").
    pub log_incomplete: Option<String>,
    /// What held the session's processes together, when the log says.
    pub containment: Option<Containment>,
    /// The run's labels.
    pub labels: BTreeMap<String, String>,
    /// Files the session read and wrote.
    #[serde(skip_serializing_if = "FileCounts::is_empty")]
    pub files: FileCounts,
    /// What the run's files take, when the store's catalog knows it (a
    /// finished run's size does not change); `None` for others.
    #[serde(skip)]
    pub disk_bytes: Option<u64>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Bytes read from the end of an index to find its last record.
const TAIL: u64 = 64 * 1024;

/// A run's summary, built record by record: from a whole log by
/// [`summarize`], or as a live log grows (the dashboard follows runs of
/// other processes with one, so that it reads what `subrt ls` reads).
#[derive(Debug, Clone)]
pub struct RunTally {
    path: PathBuf,
    header: super::Header,
    command: Option<String>,
    timeout: Option<f64>,
    commands: u32,
    /// Start of the command that has not ended.
    running_since: Option<u64>,
    busy: u64,
    last_output: Option<u64>,
    bytes: [u64; 2],
    last: Option<(EndStatus, Outcome)>,
    ended: Option<Body>,
    /// The time of the last record.
    last_t: u64,
    files: FileCounts,
}

impl RunTally {
    /// A tally of the run at `path` whose header is `header`, no record
    /// seen yet.
    pub fn new(path: &Path, header: super::Header) -> Self {
        Self {
            path: path.to_owned(),
            header,
            command: None,
            timeout: None,
            commands: 0,
            running_since: None,
            busy: 0,
            last_output: None,
            bytes: [0, 0],
            last: None,
            ended: None,
            last_t: 0,
            files: FileCounts::default(),
        }
    }

    /// Counts `record` in.
    pub fn see(&mut self, record: &Record) {
        self.last_t = self.last_t.max(record.t);
        self.files.see(&record.body);
        match &record.body {
            Body::Cmd { command, timeout } => {
                if self.command.is_none() {
                    self.command = Some(command.clone());
                    self.timeout = *timeout;
                }
                self.commands = self.commands.max(record.c);
                self.running_since = Some(record.t);
            }
            Body::Out { s, o, n, .. } => {
                self.last_output = Some(record.t);
                let index = s.index();
                self.bytes[index] = match (o, n) {
                    (Some(o), Some(n)) => self.bytes[index].max(o.saturating_add(*n)),
                    _ => self.bytes[index] + reader_bytes_len(record),
                };
            }
            Body::Exit { out, err, .. } => {
                if let Some(start) = self.running_since.take() {
                    self.busy += record.t.saturating_sub(start);
                }
                // Version 2 says the session's bytes at each exit.
                if let (Some(out), Some(err)) = (out, err) {
                    self.bytes = [self.bytes[0].max(*out), self.bytes[1].max(*err)];
                }
                let outcome = record.body.outcome().expect("an exit record");
                let status = EndStatus::of(&outcome);
                self.last = Some((status, outcome));
            }
            Body::End {
                commands, files, ..
            } => {
                self.commands = *commands;
                // What a summary that skipped the middle of the log did not
                // count.
                self.files = *files;
                self.ended = Some(record.body.clone());
            }
            _ => {}
        }
    }

    /// Whether the log has its `end`.
    pub fn ended(&self) -> bool {
        self.ended.is_some()
    }

    /// The run as its records so far, its owner and the clock say now.
    pub fn summary(&self) -> RunSummary {
        let header = &self.header;
        let now = SystemTime::now();
        let started = humantime::parse_rfc3339(&header.started_at).ok();
        let since_start = |t: u64| {
            started
                .and_then(|s| now.duration_since(s + Duration::from_micros(t)).ok())
                .unwrap_or_default()
        };
        let (state, status, exit_code) = match &self.ended {
            Some(Body::End { status, exit, .. }) => (RunState::Finished, Some(*status), *exit),
            _ => {
                let (status, exit) = match &self.last {
                    Some((status, outcome)) => (Some(*status), Some(outcome.exit_code)),
                    None => (None, None),
                };
                let state = match (header.owner.is_alive(), self.running_since.is_some()) {
                    (true, true) => RunState::Running,
                    (true, false) => RunState::Idle,
                    (false, _) => RunState::Interrupted,
                };
                (state, status, exit)
            }
        };
        let mut bytes = self.bytes;
        let mut duration = Duration::from_micros(self.busy);
        let mut silent_for = None;
        if let Some(Body::End { out, err, busy, .. }) = &self.ended {
            bytes = [*out, *err];
            // Version 1 has no busy time: from the start to the end, then.
            duration = Duration::from_micros(busy.unwrap_or(self.last_t));
        }
        if let (RunState::Running, Some(start)) = (state, self.running_since) {
            duration += since_start(start);
            silent_for = Some(since_start(self.last_output.unwrap_or(start)));
        }
        let layout = header.max_run_bytes.map(Layout::new);
        // Only version 2 has a bound (and so a layout).
        let truncated =
            layout.is_some_and(|l| bytes.iter().any(|&total| l.dropped(total).is_some()));
        let outcome = self.last.clone().map(|(_, mut outcome)| {
            if let Some(code) = exit_code {
                outcome.exit_code = code;
            }
            outcome.stdout_bytes = bytes[0];
            outcome.stderr_bytes = bytes[1];
            outcome.truncated = truncated;
            outcome
        });
        let log_incomplete = match &self.ended {
            Some(Body::End {
                incomplete: Some(reason),
                ..
            }) => Some(reason.clone()),
            _ => (header.version >= 2)
                .then(|| std::fs::read_to_string(self.path.join(INCOMPLETE_FILE)).ok())
                .flatten()
                .map(|reason| reason.trim().to_owned()),
        };
        RunSummary {
            run_id: header.run_id.clone(),
            path: self.path.clone(),
            environment: header.environment.name.clone(),
            command: self.command.clone(),
            timeout: self.timeout,
            commands: self.commands,
            working_dir: header.working_dir.clone(),
            state,
            status,
            outcome,
            started_at: header.started_at.clone(),
            duration,
            silent_for,
            bytes_out: bytes[0],
            bytes_err: bytes[1],
            truncated,
            log_incomplete,
            containment: header.containment,
            labels: header.labels.clone(),
            files: self.files,
            disk_bytes: None,
        }
    }
}

/// Summarises the run at `path` (a version-2 folder or a version-1 file)
/// from its index.
///
/// # Errors
///
/// The index is missing, not a regular file, or has no usable header.
pub fn summarize(path: &Path) -> Result<(RunSummary, Vec<String>), RunlogError> {
    let mut reader = open(path)?;
    let mut tally = RunTally::new(path, reader.header.clone());
    let index = index_path(path);
    let [last, before] = last_records(&index);
    match last {
        // A complete log: its end says the totals, the first lines say the
        // command, and the last exit is near the end.
        Some(
            end @ Record {
                body: Body::End { .. },
                ..
            },
        ) => {
            for record in reader.by_ref().take(16) {
                if let Body::Cmd { .. } = &record.body {
                    tally.see(&record);
                    break;
                }
            }
            if let Some(
                exit @ Record {
                    body: Body::Exit { .. },
                    ..
                },
            ) = before
            {
                tally.see(&exit);
            }
            tally.see(&end);
        }
        _ => {
            for record in reader.by_ref() {
                tally.see(&record);
            }
        }
    }
    Ok((tally.summary(), reader.warnings))
}

/// Bytes of a version-1 output record, without decoding text.
fn reader_bytes_len(record: &Record) -> u64 {
    match &record.body {
        Body::Out { d: Some(text), .. } => text.len() as u64,
        // Base64: 3 bytes per 4 characters, less the padding.
        Body::Out { b: Some(b64), .. } => {
            let padding = b64.bytes().rev().take_while(|&c| c == b'=').count();
            (b64.len() / 4 * 3).saturating_sub(padding) as u64
        }
        _ => 0,
    }
}

/// The complete lines of the last [`TAIL`] bytes of the file at `index`,
/// last first.
fn last_lines(index: &Path) -> Option<Vec<Vec<u8>>> {
    let mut file = open_regular(index).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.read_to_end(&mut tail).ok()?;
    let body = tail.strip_suffix(b"\n")?;
    let mut lines: Vec<Vec<u8>> = body.rsplit(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    // Without the start of the file, the first line found may be cut.
    if start > 0 {
        lines.pop();
        if lines.is_empty() {
            return None;
        }
    }
    Some(lines)
}

/// The last complete line of the index at `index`, if it is a record.
pub(super) fn last_record(index: &Path) -> Option<Record> {
    let [last, _] = last_records(index);
    last
}

/// The last record of the index at `index`, and the last `exit` record
/// before it (file operations, and commands side by side, may come
/// between them), as far as the index's last [`TAIL`] bytes hold them.
fn last_records(index: &Path) -> [Option<Record>; 2] {
    let lines = last_lines(index).unwrap_or_default();
    let decode = |line: &Vec<u8>| serde_json::from_slice::<Record>(line).ok();
    let last = lines.first().and_then(decode);
    let exit = lines
        .iter()
        .skip(1)
        // Only lines that can be an exit are decoded.
        .filter(|line| line.windows(10).any(|w| w == b"\"e\":\"exit\""))
        .find_map(decode)
        .filter(|record| matches!(record.body, Body::Exit { .. }));
    [last, exit]
}

/// The store's bounds, from `[store]` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Bytes kept per stream of one run (`max_run_bytes`, default 1 GiB).
    pub max_run_bytes: u64,
    /// When the store grows past this, the oldest finished runs go
    /// (`max_bytes`, optional).
    pub max_bytes: Option<u64>,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_run_bytes: DEFAULT_MAX_RUN_BYTES,
            max_bytes: None,
        }
    }
}

/// The store's catalog of finished runs' summaries, one JSON line per run,
/// appended to by whoever lists the store (see the module's doc).
pub const CATALOG_FILE: &str = ".catalog";

/// The file in a store that says when `[store] max_bytes` was last
/// checked (its time) and how many runs there were (its text).
const SHRINK_MARK: &str = ".max_bytes_checked";
/// Below this many runs, the store is checked at every session's start.
pub const SHRINK_ALWAYS_BELOW: usize = 1000;
/// How often a bigger store is checked.
pub const SHRINK_EVERY: Duration = Duration::from_secs(10);

/// A finished run's summary as the catalog keeps it: every field of
/// [`RunSummary`] but its path (the folder it is found in) and what only a
/// live run has.
#[derive(Debug, Serialize, Deserialize)]
struct CatalogEntry {
    run: String,
    environment: String,
    command: Option<String>,
    timeout: Option<f64>,
    commands: u32,
    working_dir: PathBuf,
    status: Option<EndStatus>,
    outcome: Option<Outcome>,
    started_at: String,
    duration: Duration,
    bytes_out: u64,
    bytes_err: u64,
    truncated: bool,
    log_incomplete: Option<String>,
    containment: Option<Containment>,
    labels: BTreeMap<String, String>,
    files: FileCounts,
    /// What the run's files took when it was catalogued (absent in entries
    /// written before this was kept).
    #[serde(default)]
    disk_bytes: Option<u64>,
}

impl CatalogEntry {
    /// The entry of `summary`, when it is a finished run's: nothing about
    /// it can change any more.
    fn of(summary: &RunSummary) -> Option<Self> {
        (summary.state == RunState::Finished).then(|| Self {
            run: summary.run_id.clone(),
            environment: summary.environment.clone(),
            command: summary.command.clone(),
            timeout: summary.timeout,
            commands: summary.commands,
            working_dir: summary.working_dir.clone(),
            status: summary.status,
            outcome: summary.outcome.clone(),
            started_at: summary.started_at.clone(),
            duration: summary.duration,
            bytes_out: summary.bytes_out,
            bytes_err: summary.bytes_err,
            truncated: summary.truncated,
            log_incomplete: summary.log_incomplete.clone(),
            containment: summary.containment,
            labels: summary.labels.clone(),
            files: summary.files,
            disk_bytes: summary.disk_bytes,
        })
    }

    /// The entry as a catalog's line, without its empty fields (`null`s
    /// read back as `None`): a third less to read.
    fn to_line(&self) -> serde_json::Result<Vec<u8>> {
        fn strip(value: &mut serde_json::Value) {
            if let serde_json::Value::Object(fields) = value {
                fields.retain(|_, field| !field.is_null());
                fields.values_mut().for_each(strip);
            }
        }
        let mut value = serde_json::to_value(self)?;
        strip(&mut value);
        serde_json::to_vec(&value)
    }

    fn summary(self, path: PathBuf) -> RunSummary {
        RunSummary {
            run_id: self.run,
            path,
            environment: self.environment,
            command: self.command,
            timeout: self.timeout,
            commands: self.commands,
            working_dir: self.working_dir,
            state: RunState::Finished,
            status: self.status,
            outcome: self.outcome,
            started_at: self.started_at,
            duration: self.duration,
            silent_for: None,
            bytes_out: self.bytes_out,
            bytes_err: self.bytes_err,
            truncated: self.truncated,
            log_incomplete: self.log_incomplete,
            containment: self.containment,
            labels: self.labels,
            files: self.files,
            disk_bytes: self.disk_bytes,
        }
    }
}

/// The store's catalog as read: its entries by run id, how many lines it
/// has, and whether its last line is torn (no newline).
#[derive(Default)]
struct Catalog {
    /// In the file's order; a run id's is taken out of it into `index`.
    entries: Vec<Option<CatalogEntry>>,
    /// Where each run's entry is in `entries` (small, so that a lookup
    /// stays in the cache; the entries are read in order).
    index: foldhash::HashMap<String, u32>,
    lines: usize,
    torn: bool,
}

impl Catalog {
    fn contains(&self, run: &str) -> bool {
        self.index.contains_key(run)
    }

    /// Takes the entry of `run` out, its run id put back.
    fn take(&mut self, run: &str) -> Option<CatalogEntry> {
        let (run, at) = self.index.remove_entry(run)?;
        let mut entry = self.entries.get_mut(at as usize)?.take()?;
        entry.run = run;
        Some(entry)
    }
}

/// The catalog of the store in `dir`. A line that is not an entry (torn by
/// a writer that died, or of a later version) is passed over: its run is
/// read from its index.
fn read_catalog(dir: &Path) -> Catalog {
    let Ok(file) = open_regular(&dir.join(CATALOG_FILE)) else {
        return Catalog::default();
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut catalog = Catalog::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        match std::io::BufRead::read_until(&mut reader, b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        catalog.torn = line.last() != Some(&b'\n');
        catalog.lines += 1;
        if let Ok(mut entry) = serde_json::from_slice::<CatalogEntry>(&line) {
            let at = catalog.entries.len() as u32;
            // A run listed twice (listings side by side): its last line.
            if let Some(was) = catalog.index.insert(std::mem::take(&mut entry.run), at) {
                catalog.entries[was as usize] = None;
            }
            catalog.entries.push(Some(entry));
        }
    }
    catalog
}

/// Adds `lines` to the catalog in one append (whole lines, so that
/// listings side by side interleave lines, never bytes of one; after a
/// torn last line, on a line of their own); a store this process cannot
/// write to is listed all the same.
fn append_catalog(dir: &Path, lines: &[u8], after_torn: bool) {
    let mut text = Vec::with_capacity(lines.len() + 1);
    if after_torn {
        text.push(b'\n');
    }
    text.extend_from_slice(lines);
    // Not through a link, as the catalog is read.
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(CATALOG_FILE))
        .and_then(|mut file| file.write_all(&text));
    if let Err(e) = appended {
        tracing::debug!("the store's catalog was not appended to: {e}");
    }
}

/// Writes the catalog anew with `entries` only (a rename, so a reader sees
/// the old one or the new one whole).
fn rewrite_catalog<'a>(dir: &Path, entries: impl Iterator<Item = &'a CatalogEntry>) {
    let temporary = dir.join(format!("{CATALOG_FILE}.{}", std::process::id()));
    let written = (|| {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&temporary)?);
        for entry in entries {
            file.write_all(&entry.to_line()?)?;
            file.write_all(b"\n")?;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&temporary, dir.join(CATALOG_FILE))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        tracing::debug!("the store's catalog was not rewritten: {e}");
    }
}

/// A folder of run logs.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Whether `name` is a run id: 26 characters of Crockford's base32.
fn looks_like_run_id(name: &str) -> bool {
    name.len() == 26
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
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

    /// The runs (folders of version 2, `.jsonl` files of version 1),
    /// newest first (run ids sort by time), and what was skipped, said.
    ///
    /// # Errors
    ///
    /// The store's folder cannot be read.
    pub fn entries(&self) -> Result<(Vec<PathBuf>, Vec<String>), RunlogError> {
        self.scan(|_| false, |_| false)
    }

    /// The runs of [`Store::entries`] that are not in `seen` and whose id
    /// sorts after `after` (empty: any): what a watcher of the store has
    /// not seen yet, found without looking at the others' indexes (the
    /// dashboard looks at each change of the folder; 100,000 runs were
    /// 100,000 lookups each time).
    ///
    /// # Errors
    ///
    /// The store's folder cannot be read.
    pub fn entries_unseen(
        &self,
        seen: &HashSet<String>,
        after: &str,
    ) -> Result<(Vec<PathBuf>, Vec<String>), RunlogError> {
        self.scan(
            |_| false,
            |name| {
                let id = name.trim_end_matches(".jsonl");
                id <= after || seen.contains(id)
            },
        )
    }

    /// [`Store::entries`] without the names `pass` is true of, taking the
    /// folders named in `known` (the catalog's runs) for runs without
    /// looking for their index.
    fn scan(
        &self,
        known: impl Fn(&str) -> bool,
        pass: impl Fn(&str) -> bool,
    ) -> Result<(Vec<PathBuf>, Vec<String>), RunlogError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()));
            }
            Err(source) => {
                return Err(RunlogError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut runs = Vec::new();
        let mut warnings = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if pass(&name) {
                continue;
            }
            let path = entry.path();
            let is_v1 = name.ends_with(".jsonl");
            // The entry itself, not what a link points at.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let skip = |reason: String| {
                RunlogError::NotALog {
                    path: path.clone(),
                    reason,
                }
                .to_string()
            };
            if is_v1 {
                match kind.is_file() {
                    true => runs.push(path),
                    false => warnings.push(skip(describe(kind))),
                }
            } else if kind.is_dir() && (known(&name) || path.join(INDEX_FILE).exists()) {
                runs.push(path);
            } else if looks_like_run_id(&name) {
                warnings.push(skip(match kind.is_dir() {
                    true => format!("a folder without {INDEX_FILE}, not a run"),
                    false => describe(kind),
                }));
            }
            // Anything else (the TUI's log, a user's notes) is not a run.
        }
        // Newest first: run ids sort by time. (A key per entry, made once:
        // `file_name` in each comparison was a tenth of listing 100,000.)
        runs.sort_by_cached_key(|path| std::cmp::Reverse(path.file_name().map(ToOwned::to_owned)));
        Ok((runs, warnings))
    }

    /// Summaries of every run, newest first, and warnings about what could
    /// not be read.
    ///
    /// # Errors
    ///
    /// The store's folder cannot be read.
    pub fn list(&self) -> Result<(Vec<RunSummary>, Vec<String>), RunlogError> {
        let mut catalog = read_catalog(&self.dir);
        let (lines, torn) = (catalog.lines, catalog.torn);
        let (paths, mut warnings) = self.scan(|name| catalog.contains(name), |_| false)?;
        let mut runs = Vec::with_capacity(paths.len());
        let mut added = Vec::new();
        // The finished runs, by their place in `runs`; how many came from
        // the catalog.
        let mut listed = Vec::new();
        let mut used = 0;
        let mut refreshed = 0;
        for path in paths {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Some(entry) = name.as_deref().and_then(|name| catalog.take(name)) {
                let mut summary = entry.summary(path);
                if summary.disk_bytes.is_none() {
                    // Catalogued before sizes were kept: measured once,
                    // and catalogued again (the later line is the one read;
                    // the earlier one counts as stale).
                    summary.disk_bytes = Some(Self::size_of(&summary.path));
                    refreshed += 1;
                    if let Some(entry) = CatalogEntry::of(&summary)
                        && let Ok(mut line) = entry.to_line()
                    {
                        line.push(b'\n');
                        added.extend_from_slice(&line);
                    }
                }
                runs.push(summary);
                listed.push(runs.len() - 1);
                used += 1;
                continue;
            }
            match summarize(&path) {
                Ok((mut summary, mut w)) => {
                    // Version 2 runs read without a warning only, in the
                    // folder their header names (not a copy of another).
                    if w.is_empty()
                        && path.is_dir()
                        && name.as_deref() == Some(summary.run_id.as_str())
                        && summary.state == RunState::Finished
                    {
                        // Measured once, for `[store] max_bytes`.
                        summary.disk_bytes = Some(Self::size_of(&path));
                    }
                    if summary.disk_bytes.is_some()
                        && let Some(entry) = CatalogEntry::of(&summary)
                        && let Ok(mut line) = entry.to_line()
                    {
                        line.push(b'\n');
                        added.extend_from_slice(&line);
                        listed.push(runs.len());
                    }
                    runs.push(summary);
                    warnings.append(&mut w);
                }
                Err(e) => warnings.push(e.to_string()),
            }
        }
        // Lines not used are runs removed since (prune, the store's bounds),
        // lines written twice by listings side by side, and torn ones: when
        // they outweigh the live entries, the catalog is written anew.
        let stale = lines.saturating_sub(used) + refreshed;
        if stale > 1000 && stale >= listed.len() {
            let entries: Vec<CatalogEntry> = listed
                .iter()
                .filter_map(|&i| CatalogEntry::of(&runs[i]))
                .collect();
            rewrite_catalog(&self.dir, entries.iter());
        } else if !added.is_empty() {
            append_catalog(&self.dir, &added, torn);
        }
        Ok((runs, warnings))
    }

    /// The run `query` names: a full run id, a unique prefix of one, or
    /// `last`.
    ///
    /// # Errors
    ///
    /// No run, or more than one, matches.
    pub fn resolve(&self, query: &str) -> Result<PathBuf, RunlogError> {
        let (paths, _) = self.entries()?;
        let id = |p: &PathBuf| {
            let name = p.file_name().map(|s| s.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            name.strip_suffix(".jsonl")
                .map(str::to_owned)
                .unwrap_or(name)
        };
        let not_found = |reason: String| RunlogError::NotFound {
            query: query.to_owned(),
            store: self.dir.clone(),
            reason,
        };
        if query == "last" {
            return paths
                .into_iter()
                .next()
                .ok_or_else(|| not_found("the store has no runs".into()));
        }
        if let Some(exact) = paths.iter().find(|p| id(p) == query) {
            return Ok(exact.clone());
        }
        let matches: Vec<&PathBuf> = paths.iter().filter(|p| id(p).starts_with(query)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(not_found("no run id starts with it".into())),
            many => Err(RunlogError::Ambiguous {
                query: query.to_owned(),
                store: self.dir.clone(),
                matches: many.iter().map(|p| id(p)).collect(),
            }),
        }
    }

    /// The runs that `subrt prune` removes: runs that are over
    /// (finished or interrupted), but the newest `keep` of them, and of the
    /// rest only those that started more than `older_than` ago.
    ///
    /// # Errors
    ///
    /// The store's folder cannot be read.
    pub fn prunable(
        &self,
        older_than: Option<Duration>,
        keep: usize,
    ) -> Result<Vec<RunSummary>, RunlogError> {
        let (runs, _) = self.list()?;
        let now = SystemTime::now();
        Ok(runs
            .into_iter()
            .filter(|run| !run.state.is_live())
            .skip(keep)
            .filter(|run| match older_than {
                None => true,
                Some(age) => humantime::parse_rfc3339(&run.started_at)
                    .ok()
                    .and_then(|started| now.duration_since(started).ok())
                    .is_some_and(|ran| ran > age),
            })
            .collect())
    }

    /// Removes a run's folder or file.
    ///
    /// # Errors
    ///
    /// It could not be removed.
    pub fn remove(&self, run: &RunSummary) -> Result<(), RunlogError> {
        let removed = if run.path.is_dir() {
            std::fs::remove_dir_all(&run.path)
        } else {
            std::fs::remove_file(&run.path)
        };
        removed.map_err(|source| RunlogError::Io {
            path: run.path.clone(),
            source,
        })
    }

    /// Bytes the run at `path` takes on disk.
    fn size_of(path: &Path) -> u64 {
        let size = |p: &Path| std::fs::symlink_metadata(p).map_or(0, |m| m.len());
        match std::fs::read_dir(path) {
            Ok(entries) => entries.flatten().map(|e| size(&e.path())).sum(),
            Err(_) => size(path),
        }
    }

    /// Removes the oldest runs that are over until the store takes at most
    /// `max_bytes`; returns the ones removed.
    ///
    /// A store of `SHRINK_ALWAYS_BELOW` runs or more (as the last check
    /// counted) is measured at most every `SHRINK_EVERY`, whichever
    /// process asks: measuring lists the store (0.4 s at 100,000 runs),
    /// and a batch starts a session every few milliseconds. What runs
    /// write in between can pass the bound until the next check.
    ///
    /// # Errors
    ///
    /// The store's folder cannot be read.
    pub fn shrink_to(&self, max_bytes: u64) -> Result<Vec<RunSummary>, RunlogError> {
        let mark = self.dir.join(SHRINK_MARK);
        let checked = open_regular(&mark).ok().and_then(|mut file| {
            let age = file.metadata().ok()?.modified().ok()?.elapsed().ok()?;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).ok()?;
            Some((age, text.trim().parse::<usize>().ok()?))
        });
        if let Some((age, runs)) = checked
            && runs >= SHRINK_ALWAYS_BELOW
            && age < SHRINK_EVERY
        {
            return Ok(Vec::new());
        }
        let (runs, _) = self.list()?;
        // Not through a link, as the catalog is written.
        let marked = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&mark)
            .and_then(|mut file| file.write_all(runs.len().to_string().as_bytes()));
        if let Err(e) = marked {
            tracing::debug!("the store's max_bytes mark was not written: {e}");
        }
        let size = |run: &RunSummary| run.disk_bytes.unwrap_or_else(|| Self::size_of(&run.path));
        let mut total: u64 = runs.iter().map(size).sum();
        let mut removed = Vec::new();
        for run in runs.iter().rev().filter(|r| !r.state.is_live()) {
            if total <= max_bytes {
                break;
            }
            let bytes = size(run);
            if self.remove(run).is_ok() {
                total = total.saturating_sub(bytes);
                removed.push(run.clone());
            }
        }
        Ok(removed)
    }
}
