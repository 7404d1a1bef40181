//! The process that owns a session: who may clean it up, and whether it
//! still runs. Run logs and container labels name it.

use serde::{Deserialize, Serialize};

use super::process_group::process_start_time;

/// The process that owns a run, named so that another process can tell
/// whether it still runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (see [`process_start_time`]).
    pub start_time: Option<u64>,
}

impl Owner {
    /// This process, on this host.
    pub fn this_process() -> Self {
        let pid = std::process::id();
        Self {
            host: hostname(),
            pid,
            start_time: process_start_time(pid),
        }
    }

    /// True when the owner is a process on this host that still runs (same
    /// pid and start time, and not a zombie: a SIGKILLed owner its parent
    /// has not reaped yet is gone).
    pub fn is_alive(&self) -> bool {
        self.host == hostname()
            && self
                .start_time
                .is_some_and(|start| super::process_group::is_running(self.pid, start))
    }

    /// The `subrt.owner` label form: `host/pid/start_time` (0 when unknown).
    pub fn label(&self) -> String {
        format!(
            "{}/{}/{}",
            self.host,
            self.pid,
            self.start_time.unwrap_or(0)
        )
    }

    /// Parses [`label`](Self::label)'s form.
    pub fn parse_label(label: &str) -> Option<Self> {
        let mut parts = label.rsplitn(3, '/');
        let start_time: u64 = parts.next()?.parse().ok()?;
        let pid: u32 = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_owned();
        Some(Owner {
            host,
            pid,
            start_time: (start_time != 0).then_some(start_time),
        })
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "unknown".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
