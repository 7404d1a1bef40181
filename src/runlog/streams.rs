//! Where the kept bytes of a bounded stream live in its file.
//!
//! A stream keeps at most `max` bytes: the first three quarters (the head)
//! at their own offsets, then the last quarter (the tail) in a ring after
//! the head. Offsets here are *logical* (bytes the command wrote so far)
//! unless they say `file`.

use std::ops::Range;

/// The layout of one stream file for a `max_run_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    head: u64,
    tail: u64,
}

/// A piece of a plan: `len` bytes at `file` in the stream file, which are
/// bytes `logical..logical + len` of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub file: u64,
    pub logical: u64,
    pub len: u64,
}

impl Layout {
    /// The layout for at most `max` bytes (at least 2) kept per stream.
    pub fn new(max: u64) -> Self {
        let max = max.max(2);
        let head = max / 4 * 3;
        Self {
            head,
            tail: max - head,
        }
    }

    /// Bytes kept at most.
    pub fn max(&self) -> u64 {
        self.head + self.tail
    }

    fn file_pos(&self, logical: u64) -> u64 {
        if logical < self.head {
            logical
        } else {
            self.head + (logical - self.head) % self.tail
        }
    }

    /// Splits logical `range` into pieces that are contiguous in the file.
    fn pieces(&self, range: Range<u64>) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let mut at = range.start;
        while at < range.end {
            let file = self.file_pos(at);
            let room = if at < self.head {
                self.head - at
            } else {
                self.head + self.tail - file
            };
            let len = room.min(range.end - at);
            pieces.push(Piece {
                file,
                logical: at,
                len,
            });
            at += len;
        }
        pieces
    }

    /// Where to write bytes `at..at + len` of the stream: the part in the
    /// head, then what of the rest can still be in the tail (of a write
    /// longer than the tail, only its end).
    pub fn write_plan(&self, at: u64, len: u64) -> Vec<Piece> {
        let end = at + len;
        let mut plan = self.pieces(at.min(self.head)..end.min(self.head));
        let tail_start = at.max(self.head).max(end.saturating_sub(self.tail));
        plan.extend(self.pieces(tail_start..end.max(tail_start)));
        plan
    }

    /// The bytes of a stream of `total` bytes that are kept: the head, and
    /// the tail (empty while nothing was dropped).
    pub fn kept(&self, total: u64) -> [Range<u64>; 2] {
        if total <= self.max() {
            [0..total, total..total]
        } else {
            [0..self.head, total - self.tail..total]
        }
    }

    /// The bytes of a stream of `total` bytes that were dropped, if any.
    pub fn dropped(&self, total: u64) -> Option<Range<u64>> {
        (total > self.max()).then(|| self.head..total - self.tail)
    }

    /// Where to read the kept part of logical `range` of a stream of
    /// `total` bytes, in order.
    pub fn read_plan(&self, total: u64, range: Range<u64>) -> Vec<Piece> {
        let mut plan = Vec::new();
        for kept in self.kept(total) {
            let start = range.start.max(kept.start);
            let end = range.end.min(kept.end);
            if start < end {
                plan.extend(self.pieces(start..end));
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `data` through the layout into a simulated file, then reads
    /// back what is kept.
    fn roundtrip(max: u64, writes: &[usize]) -> (Vec<u8>, Vec<u8>) {
        let layout = Layout::new(max);
        let mut file = vec![0u8; layout.max() as usize];
        let mut written = Vec::new();
        let mut at = 0u64;
        for (i, &len) in writes.iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
            for piece in layout.write_plan(at, len as u64) {
                let from = (piece.logical - at) as usize;
                file[piece.file as usize..][..piece.len as usize]
                    .copy_from_slice(&data[from..from + piece.len as usize]);
            }
            written.extend_from_slice(&data);
            at += len as u64;
        }
        let mut read = Vec::new();
        for piece in layout.read_plan(at, 0..at) {
            read.extend_from_slice(&file[piece.file as usize..][..piece.len as usize]);
        }
        let [head, tail] = layout.kept(at);
        let mut expected = written[head.start as usize..head.end as usize].to_vec();
        expected.extend_from_slice(&written[tail.start as usize..tail.end as usize]);
        (read, expected)
    }

    #[test]
    fn under_the_bound_everything_is_kept_in_place() {
        let layout = Layout::new(100);
        assert_eq!(layout.kept(60), [0..60, 60..60]);
        assert_eq!(layout.kept(90), [0..90, 90..90]);
        assert_eq!(layout.dropped(100), None);
        assert_eq!(layout.dropped(60), None);
        let (read, expected) = roundtrip(100, &[10, 20, 30]);
        assert_eq!(read, expected);
        assert_eq!(read.len(), 60);
    }

    #[test]
    fn over_the_bound_the_head_and_the_tail_are_kept() {
        let layout = Layout::new(100);
        assert_eq!(layout.kept(1000), [0..75, 975..1000]);
        assert_eq!(layout.dropped(1000), Some(75..975));
        for writes in [
            &[1000][..],
            &[7; 150][..],
            &[74, 1, 1, 24, 1, 30][..],
            &[80, 3, 200, 5][..],
        ] {
            let (read, expected) = roundtrip(100, writes);
            assert_eq!(read, expected, "{writes:?}");
        }
    }

    #[test]
    fn a_range_reads_only_what_was_kept_of_it() {
        let layout = Layout::new(100);
        // 75..975 was dropped.
        assert!(layout.read_plan(1000, 100..200).is_empty());
        let plan = layout.read_plan(1000, 70..980);
        let lens: u64 = plan.iter().map(|p| p.len).sum();
        assert_eq!(lens, 5 + 5);
    }
}
