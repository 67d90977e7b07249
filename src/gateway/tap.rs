//! The response body the agent reads: the upstream's body, forwarded frame by frame as it
//! arrives, with a [`Meter`] watching the same bytes.
//!
//! Each data frame is handed to the agent's connection first; the meter reads it when the
//! connection asks for the next frame (or when the body ends or is dropped), so metering never
//! delays a byte. When the body ends, or the agent's connection drops it early, the record goes
//! to [`Authority::record`], which only queues it: nothing waits for the ledger.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::authority::Authority;
use super::usage::{Meter, Metered};
use crate::types::LeaseId;

/// The body of every answer the proxy gives: its own error bodies, or an upstream's.
pub(crate) enum ReplyBody {
    /// A body the gateway wrote (a refusal), sent once.
    Own(Option<Bytes>),
    /// The upstream's body, metered when `tap` is set.
    Upstream {
        inner: reqwest::Body,
        tap: Option<Box<Tap>>,
        ended: bool,
    },
}

impl ReplyBody {
    pub(crate) fn own(body: String) -> ReplyBody {
        ReplyBody::Own(Some(Bytes::from(body)))
    }
}

/// A meter on one response and where its record goes.
pub(crate) struct Tap {
    meter: Option<Meter>,
    /// The last frame forwarded, which the meter has not read yet.
    unread: Option<Bytes>,
    lease: LeaseId,
    authority: Arc<dyn Authority>,
}

impl Tap {
    pub(crate) fn new(meter: Meter, lease: LeaseId, authority: Arc<dyn Authority>) -> Tap {
        Tap {
            meter: Some(meter),
            unread: None,
            lease,
            authority,
        }
    }

    /// Shows the meter the frame forwarded last.
    fn catch_up(&mut self) {
        if let (Some(chunk), Some(meter)) = (self.unread.take(), self.meter.as_mut()) {
            // An unreadable event is counted in the record's `skipped`; the bytes were
            // forwarded regardless.
            let _ = meter.feed(&chunk);
        }
    }

    /// Ends the meter once and sends its record, if the response carried one.
    fn end(&mut self, disconnected: bool) {
        self.catch_up();
        let Some(meter) = self.meter.take() else {
            return;
        };
        let Some(metered) = meter.finish(disconnected) else {
            return;
        };
        record_off_path(&self.authority, &self.lease, metered);
    }
}

/// Hands one request's record to [`Authority::record`], which queues it without blocking:
/// the bytes have already been delivered, and nothing the agent sees waits for the ledger. A
/// failure is logged (the response cannot be taken back).
pub(crate) fn record_off_path(authority: &Arc<dyn Authority>, lease: &LeaseId, metered: Metered) {
    if let Err(e) = authority.record(lease, metered) {
        eprintln!("authledger gateway: usage for {lease} not recorded: {e}");
    }
}

impl Drop for ReplyBody {
    /// The agent's connection dropped the body: after its last byte when the length was known
    /// (the connection need not poll for the end), or before it when the agent went away, in
    /// which case what was seen is charged.
    fn drop(&mut self) {
        if let ReplyBody::Upstream {
            inner,
            tap: Some(tap),
            ..
        } = self
        {
            tap.end(!inner.is_end_stream());
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        match self.get_mut() {
            ReplyBody::Own(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            ReplyBody::Upstream { inner, tap, ended } => {
                if let Some(tap) = tap.as_mut() {
                    tap.catch_up();
                }
                let polled = Pin::new(inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let (Some(tap), Some(data)) = (tap.as_mut(), frame.data_ref()) {
                            tap.unread = Some(data.clone());
                        }
                    }
                    // The upstream broke off: what was seen is what was charged.
                    Poll::Ready(Some(Err(_))) => {
                        if let Some(tap) = tap.as_mut() {
                            tap.end(true);
                        }
                    }
                    Poll::Ready(None) => {
                        *ended = true;
                        if let Some(tap) = tap.as_mut() {
                            tap.end(false);
                        }
                    }
                    Poll::Pending => {}
                }
                polled
            }
        }
    }

    /// Never true before the upstream's body has said so, so the connection polls once more
    /// and the meter learns the response ended normally rather than by a drop.
    fn is_end_stream(&self) -> bool {
        match self {
            ReplyBody::Own(body) => body.is_none(),
            ReplyBody::Upstream { ended, .. } => *ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplyBody::Own(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ReplyBody::Own(None) => SizeHint::with_exact(0),
            ReplyBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}
