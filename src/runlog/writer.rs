//! Writes a session's run log as it happens.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use base64::Engine;
use serde::Serialize;

use super::{EndStatus, FORMAT, Header, Owner, PhaseTag, Record, RunlogError, StreamTag, VERSION};
use crate::runtime::process_group::process_start_time;
use crate::runtime::{LaunchSpec, RuntimeEvent, RuntimeInfo, StreamKind};
use crate::supervisor::SessionEvent;

/// Appends records to `<store>/<run_id>.jsonl`, one `write` per line.
#[derive(Debug)]
pub struct RunlogWriter {
    file: File,
    path: PathBuf,
    started: Instant,
    seq: u64,
    line: Vec<u8>,
    bytes: [u64; 2],
    commands: u32,
    last_exit: Option<(EndStatus, i32)>,
}

/// An output line, serialised from borrowed data (no copy of the text); `b`
/// is appended by hand.
#[derive(Serialize)]
struct OutLine<'a> {
    e: &'static str,
    seq: u64,
    t: u64,
    c: u32,
    s: StreamTag,
    p: PhaseTag,
    #[serde(skip_serializing_if = "Option::is_none")]
    d: Option<&'a str>,
}

impl RunlogWriter {
    /// Creates the log of the run `launch` in `store_dir` (made if missing)
    /// and writes its header.
    pub fn create(
        store_dir: &Path,
        launch: &LaunchSpec,
        runtime: &RuntimeInfo,
    ) -> Result<Self, RunlogError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RunlogError::Io { path, source }
        };
        std::fs::create_dir_all(store_dir).map_err(io(store_dir))?;
        let path = store_dir.join(format!("{}.jsonl", launch.run_id));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io(&path))?;
        let header = Header {
            format: FORMAT.to_owned(),
            version: VERSION,
            run_id: launch.run_id.clone(),
            started_at: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            subrt_version: env!("CARGO_PKG_VERSION").to_owned(),
            environment: launch.environment.clone(),
            working_dir: launch.working_dir.clone(),
            owner: Owner::this_process(),
            container_id: runtime.container_id.clone(),
            containment: Some(runtime.containment),
        };
        let mut writer = Self {
            file,
            path,
            started: Instant::now(),
            seq: 0,
            line: Vec::with_capacity(4096),
            bytes: [0, 0],
            commands: 0,
            last_exit: None,
        };
        writer.write_value(&header)?;
        Ok(writer)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn elapsed_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Serialises `value` as one line and appends it with a single write.
    fn write_value(&mut self, value: &impl Serialize) -> Result<(), RunlogError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, value).expect("records serialise");
        self.line.push(b'\n');
        self.write_line()
    }

    /// Appends the line in `self.line` with a single write.
    fn write_line(&mut self) -> Result<(), RunlogError> {
        let result = self.file.write_all(&self.line);
        if self.line.capacity() > 1 << 20 {
            self.line = Vec::with_capacity(4096); // do not keep a flood's buffer
        }
        result.map_err(|source| RunlogError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Records one event of the session.
    pub fn record(&mut self, event: &SessionEvent) -> Result<(), RunlogError> {
        let t = self.elapsed_us();
        match event {
            SessionEvent::CommandStarted {
                number,
                command,
                timeout,
            } => {
                self.commands = *number;
                let record = Record::Cmd {
                    seq: self.next_seq(),
                    t,
                    c: *number,
                    command: command.clone(),
                    timeout: timeout.map(|d| d.as_secs_f64()),
                };
                self.write_value(&record)
            }
            SessionEvent::Failed { number, error } => {
                let record = Record::Note {
                    seq: self.next_seq(),
                    t,
                    c: *number,
                    text: error.clone(),
                };
                self.write_value(&record)
            }
            SessionEvent::Runtime { number, event } => self.record_runtime(*number, t, event),
        }
    }

    fn record_runtime(&mut self, c: u32, t: u64, event: &RuntimeEvent) -> Result<(), RunlogError> {
        let seq = self.next_seq();
        match event {
            RuntimeEvent::Output(chunk) => {
                let index = usize::from(chunk.stream == StreamKind::Stderr);
                self.bytes[index] += chunk.data.len() as u64;
                let (s, p) = (chunk.stream.into(), chunk.phase.into());
                match as_text(&chunk.data) {
                    Some(text) => {
                        let d = Some(text);
                        let line = OutLine {
                            e: "out",
                            seq,
                            t,
                            c,
                            s,
                            p,
                            d,
                        };
                        self.write_value(&line)
                    }
                    None => {
                        self.line.clear();
                        let prefix = OutLine {
                            e: "out",
                            seq,
                            t,
                            c,
                            s,
                            p,
                            d: None,
                        };
                        serde_json::to_writer(&mut self.line, &prefix).expect("serialises");
                        // Base64 needs no JSON escaping: encode straight into
                        // the line, replacing the closing brace.
                        self.line.pop();
                        self.line.extend_from_slice(b",\"b\":\"");
                        let start = self.line.len();
                        let engine = &base64::engine::general_purpose::STANDARD;
                        let len = base64::encoded_len(chunk.data.len(), true).expect("fits");
                        self.line.resize(start + len, 0);
                        engine
                            .encode_slice(&chunk.data, &mut self.line[start..])
                            .expect("sized by encoded_len");
                        self.line.extend_from_slice(b"\"}\n");
                        self.write_line()
                    }
                }
            }
            RuntimeEvent::SetupStarted { command } => self.write_value(&Record::Setup {
                seq,
                t,
                c,
                command: command.clone(),
            }),
            RuntimeEvent::ProcessStarted { pid, pgid, init } => self.write_value(&Record::Proc {
                seq,
                t,
                c,
                pid: *pid,
                pgid: *pgid,
                start: process_start_time(*pid),
                init: *init,
                init_start: init.and_then(process_start_time),
            }),
            RuntimeEvent::Note(text) => self.write_value(&Record::Note {
                seq,
                t,
                c,
                text: text.clone(),
            }),
            RuntimeEvent::Finished(result) => {
                let status = if result.setup_failure.is_some() {
                    EndStatus::SetupFailed
                } else if result.timed_out {
                    EndStatus::TimedOut
                } else if result.killed {
                    EndStatus::Killed
                } else {
                    EndStatus::Exited
                };
                self.last_exit = Some((status, result.exit_code));
                self.write_value(&Record::Exit {
                    seq,
                    t,
                    c,
                    code: result.exit_code,
                    signal: result.signal,
                    timed_out: result.timed_out,
                    killed: result.killed,
                    setup_failure: result.setup_failure.clone(),
                })
            }
        }
    }

    /// Writes the `end` trailer; the log is complete.
    pub fn finish(mut self) -> Result<(), RunlogError> {
        let (status, exit) = match self.last_exit {
            Some((status, code)) => (status, Some(code)),
            None => (EndStatus::Empty, None),
        };
        let record = Record::End {
            seq: self.next_seq(),
            t: self.elapsed_us(),
            status,
            exit,
            out: self.bytes[0],
            err: self.bytes[1],
            commands: self.commands,
        };
        self.write_value(&record)
    }
}

/// The chunk as text when it is UTF-8 and escaping it would not bloat the
/// log: JSON spells most control bytes as six characters, so chunks with
/// many of them (a flood of NULs, say) go as base64 instead.
fn as_text(data: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(data).ok()?;
    let escaped = data
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\t' | b'\r'))
        .count();
    (escaped * 8 <= data.len()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_unless_invalid_or_mostly_control_bytes() {
        assert_eq!(as_text(b"hello\n\tworld\r\n"), Some("hello\n\tworld\r\n"));
        assert_eq!(as_text(b"\xff"), None);
        assert_eq!(as_text(&[0u8; 64]), None);
        assert_eq!(
            as_text(b"\x1b[31mred\x1b[0m and some more text"),
            Some("\x1b[31mred\x1b[0m and some more text")
        );
    }
}
