//! Reads a run log, version 2 or 1, never a whole file at once.
//!
//! Complete lines are kept; a torn last line (a writer that died mid-write)
//! is dropped and an unreadable line in the middle is skipped, each with a
//! warning naming the file and line. Output bytes are read from the stream
//! files (version 2) or decoded from the record (version 1); bytes that
//! cannot be had (dropped by the bound, a short stream file, base64 that
//! does not decode) are reported the same way.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;

use super::streams::Layout;
use super::{Body, FORMAT, Header, INDEX_FILE, Record, RunlogError, StreamTag, VERSION};

/// An output record covers at most this many bytes (the writer's records
/// hold at most 1 MiB; a damaged index must not make a reader allocate more).
const MAX_RECORD_BYTES: u64 = 64 << 20;

/// Lines longer than this are skipped unread: no valid record comes close,
/// and a corrupt file must not make the reader hold gigabytes.
const MAX_LINE: usize = 16 << 20;

/// Opens `path` for reading only if it is a regular file: a FIFO would
/// block the reader, a device would never end.
pub(super) fn open_regular(path: &Path) -> Result<File, RunlogError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => RunlogError::NotALog {
                path: path.to_owned(),
                reason: "a symbolic link".into(),
            },
            _ => RunlogError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
    let kind = file
        .metadata()
        .map_err(|source| RunlogError::Io {
            path: path.to_owned(),
            source,
        })?
        .file_type();
    if !kind.is_file() {
        return Err(RunlogError::NotALog {
            path: path.to_owned(),
            reason: describe(kind),
        });
    }
    Ok(file)
}

/// What a file that is not a regular one is, in words.
pub(super) fn describe(kind: std::fs::FileType) -> String {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a folder, not a file".into()
    } else if kind.is_fifo() {
        "a FIFO, not a file".into()
    } else if kind.is_symlink() {
        "a symbolic link".into()
    } else if kind.is_socket() {
        "a socket, not a file".into()
    } else {
        "a device, not a file".into()
    }
}

/// The index file of the run at `path`: the run's folder (version 2), its
/// `events.jsonl`, or a `.jsonl` file (version 1).
pub(super) fn index_path(path: &Path) -> PathBuf {
    if path.extension().is_some_and(|x| x == "jsonl") {
        path.to_owned()
    } else {
        path.join(INDEX_FILE)
    }
}

/// The records of one run log, after its header, with their output.
#[derive(Debug)]
pub struct RunlogReader {
    path: PathBuf,
    lines: BufReader<File>,
    line_no: usize,
    buf: Vec<u8>,
    /// The header (line 1).
    pub header: Header,
    /// Problems met so far: skipped lines, bytes that could not be read.
    pub warnings: Vec<String>,
    streams: Option<Streams>,
}

/// The stream files of a version-2 run, opened on first use.
#[derive(Debug)]
struct Streams {
    files: Option<[Option<File>; 2]>,
    layout: Layout,
    /// Each stream's length as the whole index says (what is kept of it
    /// depends on it); read on first use.
    totals: Option<[u64; 2]>,
    /// The drop of each stream was reported.
    said_dropped: [bool; 2],
}

/// Opens the run at `path` (see `index_path`) and reads its header.
///
/// # Errors
///
/// The file is missing, not a regular file, or has no header of a version
/// this build reads.
pub fn open(path: &Path) -> Result<RunlogReader, RunlogError> {
    let index = index_path(path);
    let file = open_regular(&index)?;
    let bad = |reason: String| RunlogError::BadHeader {
        path: index.clone(),
        reason,
    };
    let mut lines = BufReader::with_capacity(64 * 1024, file);
    let mut buf = Vec::new();
    let first = read_line(&mut lines, &mut buf).map_err(|source| RunlogError::Io {
        path: index.clone(),
        source,
    })?;
    if first != Line::Complete {
        return Err(bad(
            "no complete header line: not a subrt run log, or empty".into(),
        ));
    }
    // The common case in one pass; what is wrong, when something is, in a
    // second look.
    let header = match serde_json::from_slice::<Header>(&buf) {
        Ok(header) if header.format == FORMAT && (1..=VERSION).contains(&header.version) => header,
        _ => return Err(bad(header_problem(&buf))),
    };
    let streams = (header.version >= 2).then(|| Streams {
        files: None,
        layout: Layout::new(header.max_run_bytes.unwrap_or(u64::MAX)),
        totals: None,
        said_dropped: [false, false],
    });
    Ok(RunlogReader {
        path: index,
        lines,
        line_no: 1,
        buf,
        header,
        warnings: Vec::new(),
        streams,
    })
}

/// Why line 1 (`line`) is not a header this build reads.
fn header_problem(line: &[u8]) -> String {
    let value: serde_json::Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(e) => return format!("line 1 is not JSON: {e}"),
    };
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return format!("line 1 is not a `{FORMAT}` header");
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if !(1..=u64::from(VERSION)).contains(&v) => format!(
            "run log format version {v} is not supported by this subrt \
             (it reads versions 1 to {VERSION}); use the subrt that wrote it"
        ),
        None => "the header has no format version".into(),
        Some(_) => match serde_json::from_value::<Header>(value) {
            Err(e) => format!("bad header: {e}"),
            Ok(_) => "bad header".into(),
        },
    }
}

/// How long each stream of a version-2 run is, from its last record when
/// that says (`end`, `exit`), else from every output record.
pub(super) fn stream_totals(index: &Path) -> [u64; 2] {
    match super::store::last_record(index).map(|r| r.body) {
        Some(Body::End { out, err, .. }) => return [out, err],
        Some(Body::Exit {
            out: Some(out),
            err: Some(err),
            ..
        }) => return [out, err],
        _ => {}
    }
    let mut totals = [0, 0];
    let Ok(file) = open_regular(index) else {
        return totals;
    };
    let mut lines = BufReader::new(file);
    let mut buf = Vec::new();
    while let Ok(Line::Complete | Line::TooLong) = read_line(&mut lines, &mut buf) {
        if let Ok(Record {
            body:
                Body::Out {
                    s,
                    o: Some(o),
                    n: Some(n),
                    ..
                },
            ..
        }) = serde_json::from_slice::<Record>(&buf)
        {
            totals[s.index()] = totals[s.index()].max(o.saturating_add(n));
        }
    }
    totals
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    Complete,
    /// Bytes at the end of the file without a newline.
    Torn,
    /// Longer than [`MAX_LINE`]; skipped.
    TooLong,
    Eof,
}

/// Reads one line into `buf` (without its newline), up to [`MAX_LINE`].
pub(super) fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(match (buf.is_empty() && !too_long, too_long) {
                (true, _) => Line::Eof,
                (_, true) => Line::TooLong,
                _ => Line::Torn,
            });
        }
        let (chunk, done) = match memchr(available) {
            Some(i) => (&available[..i], i + 1),
            None => (available, available.len()),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let found_newline = done > chunk.len();
        reader.consume(done);
        if found_newline {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

impl Iterator for RunlogReader {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            let line = match read_line(&mut self.lines, &mut self.buf) {
                Ok(line) => line,
                Err(e) => {
                    self.warn(format!("read error, stopping here: {e}"));
                    return None;
                }
            };
            self.line_no += 1;
            match line {
                Line::Eof => return None,
                Line::Torn => {
                    self.warn("incomplete last line (the writer stopped mid-line), dropped".into());
                    return None;
                }
                Line::TooLong => self.warn(format!("longer than {MAX_LINE} bytes, skipped")),
                Line::Complete => match serde_json::from_slice(&self.buf) {
                    Ok(record) => return Some(record),
                    Err(e) => self.warn(format!("unreadable record, skipped: {e}")),
                },
            }
        }
    }
}

impl RunlogReader {
    fn warn(&mut self, message: String) {
        self.warnings.push(format!(
            "{}:{}: {message}",
            self.path.display(),
            self.line_no
        ));
    }

    /// The index file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The output bytes of `record` (the one [`next`](Iterator::next) just
    /// returned), as far as the log kept them; empty for other records.
    /// What cannot be had is reported in [`warnings`](Self::warnings).
    pub fn bytes(&mut self, record: &Record) -> Vec<u8> {
        let Body::Out { s, o, n, d, b, .. } = &record.body else {
            return Vec::new();
        };
        match (&mut self.streams, o, n) {
            (Some(streams), Some(o), Some(n)) => {
                let (data, problem) = streams.read(&self.path, *s, *o, *n);
                if let Some(problem) = problem {
                    self.warn(problem);
                }
                data
            }
            _ => match (d, b) {
                (Some(text), _) => text.clone().into_bytes(),
                (None, Some(b64)) => {
                    match base64::engine::general_purpose::STANDARD.decode(b64) {
                        Ok(data) => data,
                        Err(e) => {
                            self.warn(format!("output record whose base64 does not decode ({e}); its bytes are lost"));
                            Vec::new()
                        }
                    }
                }
                (None, None) => {
                    self.warn("output record without bytes".into());
                    Vec::new()
                }
            },
        }
    }

    /// How long each stream is (version 2), by the index.
    pub fn totals(&mut self) -> [u64; 2] {
        let index = self.path.clone();
        self.streams.as_mut().map_or([0, 0], |s| s.totals(&index))
    }

    /// Bytes dropped from each stream by `max_run_bytes`, with where.
    pub fn dropped(&mut self) -> [Option<std::ops::Range<u64>>; 2] {
        let index = self.path.clone();
        match &mut self.streams {
            Some(streams) => {
                let totals = streams.totals(&index);
                [0, 1].map(|i| streams.layout.dropped(totals[i]))
            }
            None => [None, None],
        }
    }
}

impl Streams {
    fn totals(&mut self, index: &Path) -> [u64; 2] {
        *self.totals.get_or_insert_with(|| stream_totals(index))
    }

    /// Reads the kept part of bytes `o..o + n` of stream `s` of the run
    /// whose index is `index`; says what is missing.
    fn read(
        &mut self,
        index_path: &Path,
        s: StreamTag,
        o: u64,
        n: u64,
    ) -> (Vec<u8>, Option<String>) {
        let index = s.index();
        let end = o.saturating_add(n);
        let total = self.totals(index_path)[index].max(end);
        if n > MAX_RECORD_BYTES {
            // The writer never makes such a record: a damaged index.
            let problem = format!(
                "an output record claims {n} bytes of {}; skipped",
                s.file_name()
            );
            return (Vec::new(), Some(problem));
        }
        let plan = self.layout.read_plan(total, o..end);
        let kept: u64 = plan.iter().map(|p| p.len).sum();
        let mut problem = None;
        if kept < n && !self.said_dropped[index] {
            self.said_dropped[index] = true;
            if let Some(dropped) = self.layout.dropped(total) {
                problem = Some(format!(
                    "{}: {} bytes at offsets {}..{} were not kept ([store] max_run_bytes = {})",
                    s.file_name(),
                    dropped.end - dropped.start,
                    dropped.start,
                    dropped.end,
                    self.layout.max()
                ));
            }
        }
        let dir = index_path.parent().unwrap_or(Path::new(".")).to_owned();
        let files = self.files.get_or_insert_with(|| {
            [StreamTag::Out, StreamTag::Err].map(|s| open_regular(&dir.join(s.file_name())).ok())
        });
        let Some(file) = &files[index] else {
            return (
                Vec::new(),
                Some(format!("{} is missing or not a file", s.file_name())),
            );
        };
        let mut data = vec![0; kept as usize];
        let mut filled = 0;
        for piece in plan {
            let target = &mut data[filled..filled + piece.len as usize];
            match file.read_exact_at(target, piece.file) {
                Ok(()) => filled += piece.len as usize,
                Err(e) => {
                    data.truncate(filled);
                    return (
                        data,
                        Some(format!(
                            "{}: bytes {}.. cannot be read: {e}",
                            s.file_name(),
                            piece.logical
                        )),
                    );
                }
            }
        }
        (data, problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(Line, Vec<u8>)> {
        let mut reader = std::io::BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let line = read_line(&mut reader, &mut buf).unwrap();
            if line == Line::Eof {
                return out;
            }
            out.push((line, buf.clone()));
        }
    }

    #[test]
    fn splits_lines_and_notices_a_torn_end() {
        let got = lines(b"one\ntwo, longer than the buffer\nthr");
        assert_eq!(got[0], (Line::Complete, b"one".to_vec()));
        assert_eq!(
            got[1],
            (Line::Complete, b"two, longer than the buffer".to_vec())
        );
        assert_eq!(got[2], (Line::Torn, b"thr".to_vec()));
    }
}

/// Follows a log another process is still writing: each [`poll`](Tail::poll)
/// returns the records completed since the last one. A line being written
/// is not an error here: it waits for the next poll.
#[derive(Debug)]
pub struct Tail {
    index: PathBuf,
    offset: u64,
    pending: Vec<u8>,
    /// Version 2: the stream files, opened on first use.
    streams: Option<[Option<File>; 2]>,
    /// Version 2: the bound of the stream files.
    layout: Option<Layout>,
    /// The last poll read to the end of the index (a big log takes several).
    caught_up: bool,
}

/// Bytes read per poll at most, so a flood cannot stall the caller.
const TAIL_READ: u64 = 8 << 20;
/// Output bytes [`Tail::bytes`] reads per record at most.
const TAIL_BYTES: u64 = 1 << 20;

impl Tail {
    /// Follows the run at `path` from its first record (after the header).
    pub fn new(path: &Path) -> Self {
        let index = index_path(path);
        let layout = open(path)
            .ok()
            .filter(|reader| reader.streams.is_some())
            .map(|reader| Layout::new(reader.header.max_run_bytes.unwrap_or(u64::MAX)));
        Self {
            layout,
            index,
            offset: 0,
            pending: Vec::new(),
            streams: None,
            caught_up: false,
        }
    }

    /// Whether the last [`poll`](Self::poll) read to the end of what the
    /// index held then: what a writer wrote before it died has been read.
    pub fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// The records completed since the last poll (the header is skipped).
    ///
    /// # Errors
    ///
    /// The index cannot be opened (it is gone, or not a regular file).
    pub fn poll(&mut self) -> Result<Vec<Record>, RunlogError> {
        let mut file = open_regular(&self.index)?;
        let io = |source| RunlogError::Io {
            path: self.index.clone(),
            source,
        };
        file.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut chunk = Vec::new();
        file.take(TAIL_READ).read_to_end(&mut chunk).map_err(io)?;
        self.caught_up = (chunk.len() as u64) < TAIL_READ;
        self.offset += chunk.len() as u64;
        self.pending.extend_from_slice(&chunk);
        let mut records = Vec::new();
        let mut start = 0;
        while let Some(end) = memchr(&self.pending[start..]) {
            let line = &self.pending[start..start + end];
            // The header and unreadable lines are not records: skip them.
            if let Ok(record) = serde_json::from_slice::<Record>(line) {
                records.push(record);
            }
            start += end + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE {
            self.pending.clear(); // a corrupt endless line
        }
        Ok(records)
    }

    /// The output bytes of `record` (up to 1 MiB of them), for display: a
    /// live run's bound may already have moved past them, which shows as
    /// other bytes of the same stream.
    pub fn bytes(&mut self, record: &Record) -> Vec<u8> {
        let Body::Out { s, o, n, d, b, .. } = &record.body else {
            return Vec::new();
        };
        match (o, n, self.layout) {
            (Some(o), Some(n), Some(layout)) => {
                let dir = self.index.parent().unwrap_or(Path::new(".")).to_owned();
                let files = self.streams.get_or_insert_with(|| {
                    [StreamTag::Out, StreamTag::Err]
                        .map(|s| open_regular(&dir.join(s.file_name())).ok())
                });
                let Some(file) = &files[s.index()] else {
                    return Vec::new();
                };
                // The last MiB of the record, where the bound kept it (as
                // far as this record knows the stream's length).
                let len = (*n).min(TAIL_BYTES);
                if o.checked_add(*n).is_none() {
                    return Vec::new();
                }
                let range = o + n - len..o + n;
                let mut data = Vec::with_capacity(len as usize);
                for piece in layout.read_plan(o + n, range) {
                    let mut part = vec![0; piece.len as usize];
                    if file.read_exact_at(&mut part, piece.file).is_err() {
                        break;
                    }
                    data.extend_from_slice(&part);
                }
                data
            }
            _ => match (d, b) {
                (Some(text), _) => text.clone().into_bytes(),
                (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
        }
    }
}
