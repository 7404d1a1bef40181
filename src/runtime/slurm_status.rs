//! How a Slurm step says its command ended without ending itself.
//!
//! A step ends when its task does, and takes every process of its cgroup
//! with it; but a command's background processes must outlive the command
//! (the contract). So the step's task is [`WRAPPER`]: it runs the command,
//! writes its exit status to stdout and to stderr between two `\x1e`
//! (record separator) bytes with a nonce no command can guess, then stays
//! until the step holds no other process. [`StatusFilter`] takes that
//! record out of each stream's bytes and hands the status over.
//!
//! The record on stdout is the stream's end: srun forwards the two streams
//! apart, and the status on stderr can come while the tail of stdout is
//! still on its way. A stream's bytes before its record are the command's
//! whole output to it (bar its background processes'); a stream that ends
//! without the record was cut short.
//!
//! # Why srun's stdin stays open
//!
//! srun sends its stdin's end of file to the step's slurmstepd over the
//! connection that brings the output back. A step that ends before its
//! slurmstepd has read that message closes the connection with it unread,
//! and the kernel then sends a reset in place of what it had not sent yet:
//! the last message of output (up to 1 KiB) and the end records vanish, and
//! srun exits 0 ("Dropped pending I/O for terminated task" at `srun -v`).
//! On this machine's test cluster that was 1 to 2 in 100 commands with four
//! sessions at once. So a command given no stdin reads `/dev/null` inside
//! the step, and srun's stdin is a pipe the runtime holds open until srun
//! has exited: srun has nothing to send. A command given stdin has its
//! leftovers read by the wrapper, so that the end of file is read before
//! the step ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::oneshot;

/// The step's task: `sh -c WRAPPER subrt-step SHELL LINE NONCE INPUT
/// [ARGS...]` (ARGS are the command's `$1`..., for an argv request).
///
/// INPUT is `none` for a command given no stdin: it reads `/dev/null`,
/// while srun's own stdin stays open (see the module doc). With `stdin`, the
/// command reads the step's stdin, and what it left of it is read to its
/// end after it (by `cat`, or by `read` where the image has none).
///
/// Around the command it counts the out-of-memory kills its memory cgroup
/// and the two above it (the step's and the job's, which holds `--mem`)
/// have seen, and reports their growth beside the status
/// (`CODE:OOMKILLS`). After the command it waits (polling its cgroup's
/// `cgroup.procs` each second, with shell builtins only, so that the count
/// sees no helper of its own and a container image needs nothing but `sh`)
/// until its background processes are gone; the step then ends.
pub(crate) const WRAPPER: &str = r#"shell=$1 line=$2 nonce=$3 input=$4
shift 4
p=
m=
while IFS=: read -r _ controller path; do
  case $controller in
    freezer) p=/sys/fs/cgroup/freezer$path/cgroup.procs ;;
    memory) m=/sys/fs/cgroup/memory$path ;;
    "") [ -n "$p" ] || p=/sys/fs/cgroup$path/cgroup.procs
        [ -n "$m" ] || m=/sys/fs/cgroup$path ;;
  esac
done < /proc/self/cgroup
ooms() {
  n=0
  for d in "$m" "${m%/*}" "${m%/*/*}"; do
    for f in "$d/memory.oom_control" "$d/memory.events"; do
      [ -r "$f" ] || continue
      while read -r k v; do [ "$k" = oom_kill ] && n=$((n + v)); done < "$f"
    done
  done
}
ooms
o=$n
if [ "$input" = none ]; then exec 0< /dev/null; fi
if [ $# -gt 0 ]; then "$shell" -c "$line" sh "$@"; else "$shell" -c "$line"; fi
s=$?
if [ "$input" = none ]; then :
elif command -v cat > /dev/null; then cat > /dev/null
else while IFS= read -r _; do :; done
fi
ooms
record='\036subrt-exit-%s:%s:%s\036'
printf "$record" "$nonce" "$s" "$((n - o))"
printf "$record" "$nonce" "$s" "$((n - o))" >&2
while [ -r "$p" ]; do
  n=0
  while read -r pid; do [ "$pid" = "$$" ] || n=$((n + 1)); done < "$p"
  [ "$n" -gt 0 ] || break
  sleep 1
done
"#;

const SEPARATOR: u8 = 0x1e;

/// How a step's command ended, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepStatus {
    /// The shell's exit status.
    pub code: i32,
    /// Out-of-memory kills in its cgroups while it ran.
    pub oom_kills: u64,
}

/// A step's stdout or stderr with the status record taken out.
pub(crate) struct StatusFilter<R> {
    inner: R,
    /// `\x1esubrt-exit-<nonce>:`
    prefix: Vec<u8>,
    /// Bytes read but not yet given out: a possible start of the record.
    held: Vec<u8>,
    /// Bytes ready to give out.
    ready: Vec<u8>,
    status: Option<oneshot::Sender<StepStatus>>,
    eof: bool,
    /// What each read of `inner` goes into, made once (a buffer made at
    /// each poll, as large as the reader's 256 KiB, was an allocation and a
    /// memset at every wakeup).
    scratch: Box<[u8]>,
}

/// Bytes of a filter's reads of its pipe.
const SCRATCH: usize = 64 * 1024;

impl<R> StatusFilter<R> {
    /// Filters `inner`; the status goes to `status` when the record passes.
    pub(crate) fn new(inner: R, nonce: &str, status: oneshot::Sender<StepStatus>) -> Self {
        let mut prefix = vec![SEPARATOR];
        prefix.extend_from_slice(format!("subrt-exit-{nonce}:").as_bytes());
        Self {
            inner,
            prefix,
            held: Vec::new(),
            ready: Vec::new(),
            status: Some(status),
            eof: false,
            scratch: vec![0; SCRATCH].into_boxed_slice(),
        }
    }

    /// Moves what `held` can no longer be part of a record into `ready`.
    fn sift(&mut self) {
        loop {
            let Some(start) = self.held.iter().position(|&b| b == SEPARATOR) else {
                self.ready.append(&mut self.held);
                return;
            };
            self.ready.extend(self.held.drain(..start));
            // `held` starts with a separator: a record, a prefix of one, or
            // an ordinary byte.
            let known = self.held.len().min(self.prefix.len());
            if self.held[..known] != self.prefix[..known] {
                self.ready.push(self.held.remove(0));
                continue;
            }
            if self.held.len() < self.prefix.len() {
                return; // maybe a record: wait for more
            }
            let rest = &self.held[self.prefix.len()..];
            let field = |b: &u8| b.is_ascii_digit() || *b == b':';
            match rest.iter().position(|&b| b == SEPARATOR) {
                None if rest.len() <= 24 && rest.iter().all(field) => return,
                Some(end) if rest[..end].iter().all(field) && end > 0 => {
                    let text = std::str::from_utf8(&rest[..end]).unwrap_or_default();
                    let mut parts = text.split(':');
                    let code = parts.next().and_then(|t| t.parse().ok()).unwrap_or(-1);
                    let oom_kills = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
                    if let Some(status) = self.status.take() {
                        let _ = status.send(StepStatus { code, oom_kills });
                    }
                    let record = self.prefix.len() + end + 1;
                    self.held.drain(..record);
                }
                _ => self.ready.push(self.held.remove(0)),
            }
        }
    }
}

impl<R: AsyncRead + super::process_io::Output> super::process_io::Output for StatusFilter<R> {
    async fn read_into(&mut self, buf: &mut bytes::BytesMut) -> std::io::Result<usize> {
        self.read_buf(buf).await
    }

    fn pending(&self) -> usize {
        // Not `held`: a part of a record is given out only once more comes.
        self.ready.len() + self.inner.pending()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for StatusFilter<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // What was held back was not a record after all.
                this.ready.append(&mut this.held);
                if this.ready.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            let room = buf.remaining().clamp(1, SCRATCH);
            let mut read = ReadBuf::new(&mut this.scratch[..room]);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let filled = read.filled();
                    if filled.is_empty() {
                        this.eof = true;
                    } else {
                        this.held.extend_from_slice(filled);
                        this.sift();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Feeds `parts` one read at a time; returns what passes and the status.
    async fn filter(parts: &[&[u8]]) -> (Vec<u8>, Option<i32>) {
        let (out, status) = filter_status(parts).await;
        (out, status.map(|s| s.code))
    }

    async fn filter_status(parts: &[&[u8]]) -> (Vec<u8>, Option<StepStatus>) {
        let mut builder = tokio_test_reader(parts);
        let (tx, mut rx) = oneshot::channel();
        let mut filtered = StatusFilter::new(&mut builder, "n0nce", tx);
        let mut out = Vec::new();
        filtered.read_to_end(&mut out).await.unwrap();
        (out, rx.try_recv().ok())
    }

    fn tokio_test_reader(parts: &[&[u8]]) -> impl AsyncRead + Unpin {
        let chunks: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        Chunks(chunks.into_iter().collect())
    }

    struct Chunks(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if let Some(chunk) = self.0.pop_front() {
                buf.put_slice(&chunk);
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_record_is_taken_out_and_read() {
        let (out, status) = filter(&[b"err\n\x1esubrt-exit-n0nce:3\x1emore"]).await;
        assert_eq!((out.as_slice(), status), (&b"err\nmore"[..], Some(3)));
    }

    #[tokio::test]
    async fn the_records_out_of_memory_count_is_read() {
        let (out, status) = filter_status(&[b"x\x1esubrt-exit-n0nce:137:2\x1e"]).await;
        assert_eq!(out, b"x");
        assert_eq!(
            status,
            Some(StepStatus {
                code: 137,
                oom_kills: 2
            })
        );
    }

    #[tokio::test]
    async fn a_record_split_across_reads_is_found() {
        let (out, status) = filter(&[b"a\x1esubrt-ex", b"it-n0nce:1", b"37", b"\x1eb"]).await;
        assert_eq!((out.as_slice(), status), (&b"ab"[..], Some(137)));
    }

    #[tokio::test]
    async fn other_separators_and_other_nonces_pass_untouched() {
        let input: &[u8] = b"\x1e\x1esubrt-exit-guess:0\x1e x\x1e";
        let (out, status) = filter(&[input]).await;
        assert_eq!((out.as_slice(), status), (input, None));
        let (out, _) = filter(&[b"tail\x1esubrt-exit-n0"]).await;
        assert_eq!(
            out, b"tail\x1esubrt-exit-n0",
            "an unfinished record at the end is output"
        );
    }
}
