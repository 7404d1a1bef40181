//! Reads a run log line by line, never the whole file at once.
//!
//! Complete lines are kept; a torn last line (a writer that died mid-write)
//! is dropped and an unreadable line in the middle is skipped, each with a
//! warning naming the file and line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{FORMAT, Header, Record, RunlogError, VERSION};

/// Lines longer than this are skipped unread: no valid record comes close
/// (output chunks are at most a few hundred KiB), and a corrupt file must
/// not make the reader hold gigabytes.
const MAX_LINE: usize = 16 << 20;

/// The records of one run log, after its header.
#[derive(Debug)]
pub struct RunlogReader {
    path: PathBuf,
    lines: BufReader<File>,
    line_no: usize,
    buf: Vec<u8>,
    /// The header (line 1).
    pub header: Header,
    /// Problems met so far: skipped and dropped lines.
    pub warnings: Vec<String>,
}

/// Opens `path` and reads its header.
pub fn open(path: &Path) -> Result<RunlogReader, RunlogError> {
    let file = File::open(path).map_err(|source| RunlogError::Io {
        path: path.to_owned(),
        source,
    })?;
    let bad = |reason: String| RunlogError::BadHeader {
        path: path.to_owned(),
        reason,
    };
    let mut lines = BufReader::with_capacity(256 * 1024, file);
    let mut buf = Vec::new();
    let first = read_line(&mut lines, &mut buf).map_err(|source| RunlogError::Io {
        path: path.to_owned(),
        source,
    })?;
    if first != Line::Complete {
        return Err(bad(
            "no complete header line: not a subrt run log, or empty".into(),
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(&buf).map_err(|e| bad(format!("line 1 is not JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(bad(format!("line 1 is not a `{FORMAT}` header")));
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(bad(format!(
                "run log format version {v} is not supported by this subrt \
                 (it reads version {VERSION}); use the subrt that wrote it"
            )));
        }
        None => return Err(bad("the header has no format version".into())),
    }
    let header: Header =
        serde_json::from_value(value).map_err(|e| bad(format!("bad header: {e}")))?;
    Ok(RunlogReader {
        path: path.to_owned(),
        lines,
        line_no: 1,
        buf,
        header,
        warnings: Vec::new(),
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Line {
    Complete,
    /// Bytes at the end of the file without a newline.
    Torn,
    /// Longer than [`MAX_LINE`]; skipped.
    TooLong,
    Eof,
}

/// Reads one line into `buf` (without its newline), up to [`MAX_LINE`].
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Line> {
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

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
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
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
}

/// Bytes read per poll at most, so a flood cannot stall the caller.
const TAIL_READ: u64 = 8 << 20;

impl Tail {
    /// Follows `path` from its first record (after the header).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            offset: 0,
            pending: Vec::new(),
        }
    }

    /// The records completed since the last poll (the header is skipped).
    pub fn poll(&mut self) -> std::io::Result<Vec<Record>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut chunk = Vec::new();
        file.take(TAIL_READ).read_to_end(&mut chunk)?;
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
}
