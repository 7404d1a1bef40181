//! The stream of events of one running command.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{RuntimeError, RuntimeEvent, RuntimeResult};

/// Events of one command, ending with [`RuntimeEvent::Finished`].
///
/// Backed by a bounded channel: a slow reader slows the command down instead
/// of buffering without limit. Dropping it kills the command;
/// [`kill`](Self::kill) does too, and its `Finished` still follows.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<RuntimeEvent>,
    cancel: CancellationToken,
}

/// Events buffered between a runtime and the reader of its stream.
pub const EVENT_BUFFER: usize = 16;

impl EventStream {
    /// A stream, the sender a runtime feeds it through and the token
    /// [`kill`](Self::kill) cancels.
    pub(crate) fn channel() -> (mpsc::Sender<RuntimeEvent>, CancellationToken, Self) {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let cancel = CancellationToken::new();
        (tx, cancel.clone(), Self { rx, cancel })
    }

    /// Kills this command as dropping the stream would (what its
    /// [`KillScope`](super::KillScope) says), and keeps the stream: its
    /// last events and `Finished` (saying `killed`) still come.
    pub fn kill(&self) {
        self.cancel.cancel();
    }

    /// A handle that kills this command from elsewhere, as
    /// [`kill`](Self::kill) does.
    pub fn killer(&self) -> impl Fn() + Send + Sync + 'static {
        let cancel = self.cancel.clone();
        move || cancel.cancel()
    }

    /// The next event; `None` after `Finished`.
    pub async fn next_event(&mut self) -> Option<RuntimeEvent> {
        self.rx.recv().await
    }

    /// Skips to the end and returns the result.
    pub async fn finish(mut self) -> Result<RuntimeResult, RuntimeError> {
        while let Some(event) = self.next_event().await {
            if let RuntimeEvent::Finished(result) = event {
                return Ok(*result);
            }
        }
        Err(RuntimeError::StreamEnded)
    }
}

impl futures_core::Stream for EventStream {
    type Item = RuntimeEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RuntimeEvent>> {
        self.rx.poll_recv(cx)
    }
}
