//! Bounded capture of a stream's bytes for [`RuntimeResult`](super::RuntimeResult).

use base64::Engine;
use bytes::{Bytes, BytesMut};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// The bytes a result kept of one stream, and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    /// The first bytes written, up to the capture limit.
    pub data: Bytes,
    /// Every byte written, kept or not.
    pub total_bytes: u64,
}

impl CapturedOutput {
    /// True when bytes were written beyond what `data` kept.
    pub fn truncated(&self) -> bool {
        self.total_bytes > self.data.len() as u64
    }
}

/// JSON form: `text` when the kept bytes are UTF-8, else `base64`; plus
/// `bytes` (the full count) and `truncated`.
impl Serialize for CapturedOutput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CapturedOutput", 3)?;
        match std::str::from_utf8(&self.data) {
            Ok(text) => s.serialize_field("text", text)?,
            Err(_) => s.serialize_field(
                "base64",
                &base64::engine::general_purpose::STANDARD.encode(&self.data),
            )?,
        }
        s.serialize_field("bytes", &self.total_bytes)?;
        s.serialize_field("truncated", &self.truncated())?;
        s.end()
    }
}

/// Accumulates up to `limit` bytes and counts all of them.
#[derive(Debug)]
pub(crate) struct Capture {
    kept: BytesMut,
    limit: usize,
    total: u64,
}

impl Capture {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            kept: BytesMut::new(),
            limit,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.limit - self.kept.len();
        if room > 0 {
            self.kept.extend_from_slice(&data[..room.min(data.len())]);
        }
    }

    pub(crate) fn finish(self) -> CapturedOutput {
        CapturedOutput {
            data: self.kept.freeze(),
            total_bytes: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_limit_and_counts_everything() {
        let mut c = Capture::new(5);
        c.push(b"abc");
        c.push(b"defgh");
        c.push(b"ij");
        let out = c.finish();
        assert_eq!(&out.data[..], b"abcde");
        assert_eq!(out.total_bytes, 10);
        assert!(out.truncated());
    }

    #[test]
    fn json_uses_base64_only_for_non_utf8() {
        let text = CapturedOutput {
            data: Bytes::from_static("héllo".as_bytes()),
            total_bytes: 6,
        };
        let v = serde_json::to_value(&text).unwrap();
        assert_eq!(v["text"], "héllo");
        let binary = CapturedOutput {
            data: Bytes::from_static(b"\xff\x00"),
            total_bytes: 2,
        };
        let v = serde_json::to_value(&binary).unwrap();
        assert_eq!(v["base64"], "/wA=");
        assert_eq!(v["truncated"], false);
    }
}
