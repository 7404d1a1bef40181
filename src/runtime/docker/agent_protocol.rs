//! The frames between subrt and its agent in a container (see
//! [`super::agent`]), shared by both sides: the agent's crate (`agent/`)
//! includes this file, so it uses `std` only.
//!
//! A frame is a 9-byte header, its kind (a byte), the command's id (u32)
//! and the payload's length (u32), little-endian, then the payload. subrt
//! writes frames to the agent's stdin; the agent writes them to its stdout
//! (both through the container's attach connection, which is also the
//! session's lifeline: the agent kills everything and exits when its
//! stdin ends).

/// The header's size in bytes.
pub const HEADER: usize = 9;
/// The largest payload either side sends (a bigger one is a broken stream).
pub const MAX_PAYLOAD: u32 = 16 << 20;

/// Start command `id`: a [`Start`].
pub const START: u8 = 1;
/// Bytes for command `id`'s stdin; an empty payload closes it.
pub const STDIN: u8 = 2;
/// Signal command `id`'s process group and every descendant of it: one
/// byte, the signal's number.
pub const SIGNAL: u8 = 3;

/// Command `id` started: its pid in the container (u32).
pub const STARTED: u8 = 10;
/// Bytes command `id` wrote to stdout.
pub const STDOUT: u8 = 11;
/// Bytes command `id` wrote to stderr.
pub const STDERR: u8 = 12;
/// Command `id` ended, after all of its output: an [`Exited`].
pub const EXITED: u8 = 13;
/// Command `id` could not start: why (UTF-8).
pub const FAILED: u8 = 14;
/// The agent is up (id 0): its version (UTF-8). Its first frame.
pub const READY: u8 = 15;

/// A frame's header.
pub fn header(kind: u8, id: u32, len: usize) -> [u8; HEADER] {
    let mut header = [0; HEADER];
    header[0] = kind;
    header[1..5].copy_from_slice(&id.to_le_bytes());
    header[5..9].copy_from_slice(&(len as u32).to_le_bytes());
    header
}

/// A header's kind, id and payload length.
pub fn parse_header(header: &[u8; HEADER]) -> (u8, u32, u32) {
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    (header[0], word(1), word(5))
}

/// A whole frame: header and payload.
pub fn frame(kind: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&header(kind, id, payload.len()));
    frame.extend_from_slice(payload);
    frame
}

/// What a command is: `argv[0]` run with `argv`, in `cwd`, as `uid:gid`,
/// with `env` over the agent's own environment (the image's).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Start {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Whether stdin frames follow (else stdin is `/dev/null`).
    pub stdin: bool,
}

impl Start {
    /// The payload: uid, gid, stdin (u32 each), then length-prefixed
    /// strings: cwd, argv's count and items, env's count and pairs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let word = |out: &mut Vec<u8>, n: u32| out.extend_from_slice(&n.to_le_bytes());
        word(&mut out, self.uid);
        word(&mut out, self.gid);
        word(&mut out, u32::from(self.stdin));
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        text(&mut out, &self.cwd);
        word(&mut out, self.argv.len() as u32);
        for arg in &self.argv {
            text(&mut out, arg);
        }
        word(&mut out, self.env.len() as u32);
        for (key, value) in &self.env {
            text(&mut out, key);
            text(&mut out, value);
        }
        out
    }

    /// Reads a payload made by [`Start::encode`]; `None` if it is not one.
    #[allow(dead_code, reason = "the agent's side")]
    pub fn decode(mut payload: &[u8]) -> Option<Self> {
        fn word(p: &mut &[u8]) -> Option<u32> {
            let (head, rest) = p.split_first_chunk::<4>()?;
            *p = rest;
            Some(u32::from_le_bytes(*head))
        }
        fn text(p: &mut &[u8]) -> Option<String> {
            let len = word(p)? as usize;
            if p.len() < len {
                return None;
            }
            let (head, rest) = p.split_at(len);
            *p = rest;
            String::from_utf8(head.to_vec()).ok()
        }
        let p = &mut payload;
        let uid = word(p)?;
        let gid = word(p)?;
        let stdin = word(p)? != 0;
        let cwd = text(p)?;
        let argc = word(p)?;
        let argv = (0..argc).map(|_| text(p)).collect::<Option<Vec<_>>>()?;
        let envc = word(p)?;
        let env = (0..envc)
            .map(|_| Some((text(p)?, text(p)?)))
            .collect::<Option<Vec<_>>>()?;
        (p.is_empty() && !argv.is_empty()).then_some(Self {
            argv,
            env,
            cwd,
            uid,
            gid,
            stdin,
        })
    }
}

/// How a command ended and what it cost (its process's `wait4`: itself
/// and the descendants it waited for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Exited {
    /// The raw wait status.
    pub status: i32,
    /// Peak resident size, KiB.
    pub max_rss_kib: u64,
    /// CPU time in user mode, microseconds.
    pub user_us: u64,
    /// CPU time in the kernel, microseconds.
    pub system_us: u64,
}

impl Exited {
    /// The payload: status (i32), then the three costs (u64), little-endian.
    #[allow(dead_code, reason = "the agent's side")]
    pub fn encode(&self) -> [u8; 28] {
        let mut out = [0; 28];
        out[..4].copy_from_slice(&self.status.to_le_bytes());
        out[4..12].copy_from_slice(&self.max_rss_kib.to_le_bytes());
        out[12..20].copy_from_slice(&self.user_us.to_le_bytes());
        out[20..28].copy_from_slice(&self.system_us.to_le_bytes());
        out
    }

    /// Reads a payload made by [`Exited::encode`].
    pub fn decode(payload: &[u8]) -> Option<Self> {
        let payload: &[u8; 28] = payload.try_into().ok()?;
        let long = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
        Some(Self {
            status: i32::from_le_bytes(payload[..4].try_into().expect("4 bytes")),
            max_rss_kib: long(4),
            user_us: long(12),
            system_us: long(20),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_reads_back_as_it_was_written() {
        let start = Start {
            argv: vec!["/bin/sh".into(), "-c".into(), "echo é $1".into()],
            env: vec![("A".into(), "1=2".into()), ("EMPTY".into(), String::new())],
            cwd: "/workspace".into(),
            uid: 1000,
            gid: 100,
            stdin: true,
        };
        assert_eq!(Start::decode(&start.encode()), Some(start.clone()));
        let encoded = start.encode();
        assert_eq!(
            Start::decode(&encoded[..encoded.len() - 1]),
            None,
            "cut short"
        );
    }

    #[test]
    fn an_exit_and_a_header_read_back() {
        let exited = Exited {
            status: 9,
            max_rss_kib: 1 << 40,
            user_us: 3,
            system_us: u64::MAX,
        };
        assert_eq!(Exited::decode(&exited.encode()), Some(exited));
        assert_eq!(parse_header(&header(STDOUT, 7, 65536)), (STDOUT, 7, 65536));
    }
}
