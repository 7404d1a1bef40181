//! The stream of events of one running command.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::{RuntimeError, RuntimeEvent, RuntimeResult};

/// Events of one command, ending with [`RuntimeEvent::Finished`].
///
/// Backed by a bounded channel: a slow reader slows the command down instead
/// of buffering without limit. Dropping it kills the command.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<RuntimeEvent>,
}

/// Events buffered between a runtime and the reader of its stream.
pub(crate) const EVENT_BUFFER: usize = 16;

impl EventStream {
    /// A stream and the sender a runtime feeds it through.
    pub(crate) fn channel() -> (mpsc::Sender<RuntimeEvent>, Self) {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        (tx, Self { rx })
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
