//! The response body the agent reads: the upstream's body, forwarded frame by frame as it
//! arrives, with a [`Meter`] watching the same bytes.
//!
//! Each data frame is handed to the agent's connection first; the meter reads it when the
//! connection asks for the next frame (or when the body ends or is dropped), so metering never
//! delays a byte. When the body ends, or the agent's connection drops it early, the record goes
//! to [`Authority::record`], which only queues it: nothing waits for the ledger.
//!
//! Frames the upstream has already sent go out to the agent together. The upstream's
//! connection hands its body over one frame at a time (a task of its own, a channel of one),
//! so a body that has just yielded a frame is pending until that task has run again, even
//! when the next events were read with the first: forwarding each at once costs a write to the
//! agent (and its wake-up) per SSE event. Instead, a relay holding data that finds the
//! upstream pending lets the runtime run (it wakes itself and yields) and takes whatever
//! arrived meanwhile, for as long as the upstream keeps handing over frames; once
//! [`IDLE_TURNS`] turns in a row bring nothing, or [`GATHER_MAX`] bytes are held, the data
//! goes. An upstream that pauses between events still has each event forwarded as soon as it
//! comes, [`IDLE_TURNS`] scheduler turns later.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};

use super::authority::Authority;
use super::usage::{Meter, Metered};
use crate::types::LeaseId;

/// The body of every answer the proxy gives: its own error bodies, or an upstream's.
pub(crate) enum ReplyBody {
    /// A body the gateway wrote (a refusal), sent once.
    Own(Option<Bytes>),
    /// The upstream's body, metered when `tap` is set.
    Upstream(Box<Relay>),
}

/// The most bytes gathered from the upstream before they are forwarded.
const GATHER_MAX: usize = 64 * 1024;
/// Turns of the runtime without a new frame after which what was gathered is forwarded: the
/// upstream's connection task needs two to hand over a frame it has already read (measured:
/// one turn gathers nothing, two gather a burst of events whole).
const IDLE_TURNS: u8 = 2;

/// The upstream's body on its way to the agent.
pub(crate) struct Relay {
    inner: reqwest::Body,
    tap: Option<Box<Tap>>,
    /// The upstream's body has ended and the agent has had all of it.
    ended: bool,
    /// Data taken from the upstream, not forwarded yet.
    gathered: BytesMut,
    /// What the upstream gave after `gathered` (a trailer, an error, its end), due next.
    after: Option<Option<Result<Frame<Bytes>, reqwest::Error>>>,
    /// Turns yielded in a row, with `gathered` held, without a new frame.
    idle_turns: u8,
}

impl ReplyBody {
    pub(crate) fn own(body: String) -> ReplyBody {
        ReplyBody::Own(Some(Bytes::from(body)))
    }

    /// The upstream's `body`, metered by `tap` if given.
    pub(crate) fn upstream(inner: reqwest::Body, tap: Option<Box<Tap>>) -> ReplyBody {
        ReplyBody::Upstream(Box::new(Relay {
            inner,
            tap,
            ended: false,
            gathered: BytesMut::new(),
            after: None,
            idle_turns: 0,
        }))
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

    /// Whether its meter reads a whole JSON body rather than a stream.
    fn reads_whole_body(&self) -> bool {
        self.meter.as_ref().is_some_and(Meter::reads_whole_body)
    }

    /// Notes a frame forwarded now: the meter reads it when asked for the next one.
    fn forwarded(&mut self, data: Bytes) {
        self.catch_up();
        self.unread = Some(data);
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

/// Reads the rest of an upstream body nobody will receive, for its meter, then records it (as
/// cut off if the upstream's body fails).
async fn read_to_end(mut inner: reqwest::Body, mut tap: Box<Tap>) {
    use http_body_util::BodyExt;
    let mut complete = true;
    while let Some(frame) = inner.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    tap.forwarded(data);
                }
            }
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    tap.end(!complete);
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
    /// which case what was seen is charged (data gathered but not forwarded included: the
    /// upstream counts it).
    fn drop(&mut self) {
        let ReplyBody::Upstream(relay) = self else {
            return;
        };
        let Some(mut tap) = relay.tap.take() else {
            return;
        };
        let held = !relay.gathered.is_empty();
        if held {
            tap.forwarded(relay.gathered.split().freeze());
        }
        let cut = held || !relay.inner.is_end_stream();
        // A whole JSON answer whose agent left before its end: the upstream generated (and
        // bills) all of it, and its usage is at the end, so the rest is read for the meter. A
        // stream is not: dropping it stops the generation, and what was seen is charged.
        if cut
            && tap.reads_whole_body()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let inner = std::mem::replace(&mut relay.inner, reqwest::Body::from(Vec::new()));
            drop(runtime.spawn(read_to_end(inner, tap)));
            return;
        }
        tap.end(cut);
    }
}

impl Relay {
    /// Hands what was gathered to the agent.
    fn release(&mut self) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        self.idle_turns = 0;
        let data = self.gathered.split().freeze();
        if let Some(tap) = self.tap.as_mut() {
            tap.forwarded(data.clone());
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    /// Hands on what the upstream gave that is not gathered data, metering its end.
    fn pass(
        &mut self,
        polled: Option<Result<Frame<Bytes>, reqwest::Error>>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        match &polled {
            Some(Ok(frame)) => {
                if let (Some(tap), Some(data)) = (self.tap.as_mut(), frame.data_ref()) {
                    tap.forwarded(data.clone());
                }
            }
            // The upstream broke off: what was seen is what was charged.
            Some(Err(_)) => {
                if let Some(tap) = self.tap.as_mut() {
                    tap.end(true);
                }
            }
            None => {
                self.ended = true;
                if let Some(tap) = self.tap.as_mut() {
                    tap.end(false);
                }
            }
        }
        Poll::Ready(polled)
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        if let Some(tap) = self.tap.as_mut() {
            tap.catch_up();
        }
        if let Some(after) = self.after.take() {
            return self.pass(after);
        }
        loop {
            if self.gathered.len() >= GATHER_MAX {
                return self.release();
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                    if let Ok(data) = frame.into_data() {
                        self.gathered.extend_from_slice(&data);
                    }
                    // Progress: worth more turns before forwarding.
                    self.idle_turns = 0;
                }
                Poll::Ready(other) if self.gathered.is_empty() => return self.pass(other),
                Poll::Ready(other) => {
                    self.after = Some(other);
                    return self.release();
                }
                Poll::Pending if self.gathered.is_empty() => return Poll::Pending,
                Poll::Pending if self.idle_turns < IDLE_TURNS => {
                    // Let the upstream's connection hand over what it has already read.
                    self.idle_turns += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => return self.release(),
            }
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
            ReplyBody::Upstream(relay) => relay.poll_frame(cx),
        }
    }

    /// Never true before the upstream's body has said so, so the connection polls once more
    /// and the meter learns the response ended normally rather than by a drop.
    fn is_end_stream(&self) -> bool {
        match self {
            ReplyBody::Own(body) => body.is_none(),
            ReplyBody::Upstream(relay) => relay.ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplyBody::Own(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ReplyBody::Own(None) => SizeHint::with_exact(0),
            ReplyBody::Upstream(relay) => relay.inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::Waker;

    use super::*;

    /// An upstream body as the upstream's connection hands it over: the first frame at once,
    /// each later one (and the end) only after `gap` polls that find nothing; `None`: the
    /// upstream says nothing more.
    struct Handover {
        frames: VecDeque<Bytes>,
        gap: Option<usize>,
        waited: usize,
        started: bool,
    }

    impl Handover {
        fn body(frames: Vec<Bytes>, gap: Option<usize>) -> ReplyBody {
            ReplyBody::upstream(
                reqwest::Body::wrap(Handover {
                    frames: frames.into(),
                    gap,
                    waited: 0,
                    started: false,
                }),
                None,
            )
        }
    }

    impl Body for Handover {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            let me = &mut *self;
            if me.started {
                match me.gap {
                    None => return Poll::Pending,
                    Some(gap) if me.waited < gap => {
                        me.waited += 1;
                        return Poll::Pending;
                    }
                    Some(_) => {}
                }
            }
            me.started = true;
            me.waited = 0;
            Poll::Ready(me.frames.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    /// Polls `body` up to `polls` times: the data frames it gave, and whether it ended.
    fn drain(body: &mut ReplyBody, polls: usize) -> (Vec<Bytes>, bool) {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        for _ in 0..polls {
            match Pin::new(&mut *body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => out.push(frame.into_data().unwrap()),
                Poll::Ready(Some(Err(e))) => panic!("{e}"),
                Poll::Ready(None) => return (out, true),
                Poll::Pending => {}
            }
        }
        (out, false)
    }

    fn events(n: usize, size: usize) -> Vec<Bytes> {
        (0..n)
            .map(|i| Bytes::from(format!("data: {i:0>width$}\n\n", width = size - 8)))
            .collect()
    }

    #[test]
    fn events_handed_over_back_to_back_reach_the_agent_in_one_write() {
        let sent = events(40, 160);
        let mut body = Handover::body(sent.clone(), Some(1));
        let (out, ended) = drain(&mut body, 1_000);
        assert!(ended);
        assert_eq!(out.len(), 1, "one frame (one write) for the whole burst");
        assert_eq!(out.concat(), sent.concat());
    }

    #[test]
    fn an_event_goes_out_while_the_upstream_is_still_silent() {
        let sent = events(2, 160);
        let mut body = Handover::body(sent.clone(), None);
        let (out, ended) = drain(&mut body, usize::from(IDLE_TURNS) + 1);
        assert!(!ended);
        assert_eq!(
            out,
            [sent[0].clone()],
            "the first event did not wait for the second"
        );
    }

    #[test]
    fn a_long_burst_goes_out_in_frames_of_at_most_the_cap() {
        let sent = events(40, 16 * 1024);
        let mut body = Handover::body(sent.clone(), Some(0));
        let (out, ended) = drain(&mut body, 1_000);
        assert!(ended);
        assert!(out.len() > 1);
        assert!(out.iter().all(|f| f.len() < GATHER_MAX + 16 * 1024));
        assert_eq!(out.concat(), sent.concat());
    }
}
