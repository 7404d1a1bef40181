//! Turning a run log back into bytes: raw streams, asciicast, JSON, replay.

use std::io::{self, Write};
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;

use super::{Body, PhaseTag, RunlogReader, StreamTag};
use crate::runtime::Outcome;

/// What `subrt export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The stdout bytes exactly as written.
    Stdout,
    /// The stderr bytes exactly as written.
    Stderr,
    /// asciicast v3: both streams as `"o"` events, for sharing.
    Asciicast,
    /// One JSON object per command: how it ended and how much it printed.
    Json,
}

/// One command of a run, for [`ExportFormat::Json`]: when, and its
/// [`Outcome`] (bytes counted per command here).
#[derive(Debug, Default, Serialize)]
struct CommandResult {
    command: String,
    started_us: u64,
    ended_us: Option<u64>,
    #[serde(flatten)]
    outcome: Option<Outcome>,
    setup_stdout_bytes: u64,
    setup_stderr_bytes: u64,
}

/// Writes the run read by `reader` to `out` in `format`. Setup output is
/// included unless `include_setup` is false. The reader's warnings say what
/// was skipped or not kept.
///
/// # Errors
///
/// Writing to `out` failed.
pub fn export(
    reader: &mut RunlogReader,
    format: ExportFormat,
    include_setup: bool,
    out: &mut impl Write,
) -> io::Result<()> {
    let wanted = |p: PhaseTag| include_setup || p == PhaseTag::Cmd;
    match format {
        ExportFormat::Stdout | ExportFormat::Stderr => {
            let stream = if format == ExportFormat::Stdout {
                StreamTag::Out
            } else {
                StreamTag::Err
            };
            while let Some(record) = reader.next() {
                if let Body::Out { s, p, .. } = &record.body
                    && *s == stream
                    && wanted(*p)
                {
                    out.write_all(&reader.bytes(&record))?;
                }
            }
        }
        ExportFormat::Asciicast => asciicast(reader, wanted, out)?,
        ExportFormat::Json => {
            let mut results: Vec<CommandResult> = Vec::new();
            let mut bytes = [[0u64; 2]; 2];
            while let Some(record) = reader.next() {
                match &record.body {
                    Body::Cmd { command, .. } => {
                        bytes = [[0; 2]; 2];
                        results.push(CommandResult {
                            command: command.clone(),
                            started_us: record.t,
                            ..Default::default()
                        })
                    }
                    Body::Out { s, p, o, n, .. } => {
                        let len = match (o, n) {
                            (Some(_), Some(n)) => *n,
                            _ => reader.bytes(&record).len() as u64,
                        };
                        let phase = usize::from(*p == PhaseTag::Setup);
                        bytes[phase][s.index()] += len;
                    }
                    Body::Exit { .. } => {
                        let Some(current) = results.last_mut() else {
                            continue;
                        };
                        current.ended_us = Some(record.t);
                        current.setup_stdout_bytes = bytes[1][0];
                        current.setup_stderr_bytes = bytes[1][1];
                        current.outcome = record.body.outcome().map(|outcome| Outcome {
                            stdout_bytes: bytes[0][0] + bytes[1][0],
                            stderr_bytes: bytes[0][1] + bytes[1][1],
                            ..outcome
                        });
                    }
                    _ => {}
                }
            }
            let dropped = reader.dropped();
            let truncated = dropped.iter().any(Option::is_some);
            for result in &mut results {
                if let Some(outcome) = &mut result.outcome {
                    outcome.truncated = truncated;
                }
            }
            let document = json!({
                "run_id": reader.header.run_id,
                "truncated": truncated,
                "commands": results,
            });
            serde_json::to_writer_pretty(&mut *out, &document)?;
            writeln!(out)?;
        }
    }
    out.flush()
}

fn asciicast(
    reader: &mut RunlogReader,
    wanted: impl Fn(PhaseTag) -> bool,
    out: &mut impl Write,
) -> io::Result<()> {
    let timestamp = humantime::parse_rfc3339(&reader.header.started_at)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let header = json!({
        "version": 3,
        "term": { "cols": 80, "rows": 24 },
        "timestamp": timestamp,
        "title": format!("subrt run {}", reader.header.run_id),
    });
    serde_json::to_writer(&mut *out, &header)?;
    writeln!(out)?;

    let mut last_us = 0;
    let mut interval = |t: u64| {
        let secs = t.saturating_sub(last_us) as f64 / 1e6;
        last_us = last_us.max(t);
        secs
    };
    let mut text = Utf8Carry::default();
    let mut exit = None;
    while let Some(record) = reader.next() {
        let t = record.t;
        match &record.body {
            Body::Cmd { command, .. } if exit.is_some() => {
                // Later commands of the session: mark them in the recording.
                let line = format!("\r\n$ {command}\r\n");
                serde_json::to_writer(&mut *out, &json!([interval(t), "o", line]))?;
                writeln!(out)?;
            }
            Body::Out { p, .. } if wanted(*p) => {
                let bytes = reader.bytes(&record);
                let data = text
                    .decode(&bytes)
                    .replace("\r\n", "\n")
                    .replace('\n', "\r\n");
                if !data.is_empty() {
                    serde_json::to_writer(&mut *out, &json!([interval(t), "o", data]))?;
                    writeln!(out)?;
                }
            }
            Body::Exit { code, .. } => exit = Some((t, *code)),
            _ => {}
        }
    }
    if let Some((t, code)) = exit {
        serde_json::to_writer(&mut *out, &json!([interval(t), "x", code.to_string()]))?;
        writeln!(out)?;
    }
    Ok(())
}

/// Decodes a byte stream as UTF-8 chunk by chunk, keeping a character split
/// across chunks for the next one and replacing invalid bytes with U+FFFD.
#[derive(Default)]
struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    fn decode(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    out.push_str(valid);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).expect("checked"));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        None => {
                            rest = after; // incomplete character: keep it
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }
}

/// Writes the run's output to `stdout` and `stderr` with its original timing
/// divided by `speed` (0: no delay).
pub fn replay_print(
    reader: &mut RunlogReader,
    speed: f64,
    include_setup: bool,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> io::Result<()> {
    let started = Instant::now();
    while let Some(record) = reader.next() {
        let Body::Out { s, p, .. } = &record.body else {
            continue;
        };
        if !include_setup && *p == PhaseTag::Setup {
            continue;
        }
        if speed > 0.0 {
            let due = Duration::from_secs_f64(record.t as f64 / 1e6 / speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let bytes = reader.bytes(&record);
        match s {
            StreamTag::Out => {
                stdout.write_all(&bytes)?;
                stdout.flush()?;
            }
            StreamTag::Err => {
                stderr.write_all(&bytes)?;
                stderr.flush()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_chunks_decodes_whole() {
        let mut carry = Utf8Carry::default();
        assert_eq!(carry.decode(b"a\xe2\x82"), "a");
        assert_eq!(carry.decode(b"\xac b\xff"), "€ b\u{fffd}");
    }
}
