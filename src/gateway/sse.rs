//! An incremental Server-Sent Events parser that observes a stream without owning it.
//!
//! The gateway forwards every upstream chunk to the agent unchanged; this parser is handed the
//! same `&[u8]` afterwards and reports each event as soon as the blank line that ends it has been
//! seen. It follows the WHATWG `text/event-stream` rules: lines end with CRLF, LF or CR (a CRLF
//! split between two chunks counts once), `:` starts a comment, a field without `:` has an
//! empty value, one space after the colon is dropped, several `data:` lines join with `\n`,
//! `event:` names the event, `id:` sets the last event id (kept across events, ignored when it
//! contains NUL), a BOM at the start of the stream is skipped and unknown fields (`retry:`
//! included: the gateway does not reconnect) are ignored. One deliberate difference: at the end
//! of the stream [`SseParser::finish`] still dispatches an event that lacks its final blank line,
//! because for metering what the upstream sent counts even if it was cut short.
//!
//! # Design
//! - No copy of the pass-through bytes. Lines are found in the caller's chunk with `memchr`
//!   (SIMD) and read in place. An event whose single `data:` line lies inside one chunk is handed
//!   to the sink as a slice of that chunk: nothing is copied at all. Only what must outlive the
//!   chunk is kept: a line split across chunks, and the data of an event not finished when its
//!   chunk ends.
//! - No per-byte or per-event allocation: the three buffers (partial line, data, event name) are
//!   reused, so after the first few events the parser allocates nothing.
//! - Bounded memory. An event's size is the sum of its lines' lengths (terminators excluded;
//!   comment lines are checked but do not accumulate). An event that grows past the limit is
//!   reported once as [`SseError::EventTooLarge`], its bytes are dropped and the parser skips to
//!   the blank line that ends it, then carries on with the next event. The limit is counted on
//!   the stream's bytes, not on what happened to be buffered, so every chunking of the same
//!   stream gives the same events and the same errors.
//! - Bytes, not text: UTF-8 is never decoded here, so a character split between chunks is simply
//!   joined with the rest of its line; the consumer decodes the finished data (JSON parsers
//!   validate it anyway).

use memchr::memchr2;

/// The largest event the gateway's meters accept by default (8 MiB): far above any real event
/// (a `response.completed` carrying a long answer is a few hundred KiB), small enough that a
/// hostile or broken upstream cannot make the gateway grow without bound.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One complete event, borrowed from the parser or from the chunk being fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field; empty when the event had none (an unnamed, "message" event).
    pub event: &'a [u8],
    /// The `data:` lines joined with `\n` (no trailing newline).
    pub data: &'a [u8],
    /// The last event id seen on the stream so far (`id:` persists across events).
    pub id: Option<&'a [u8]>,
}

/// What can go wrong while parsing: only size, since every byte sequence is a valid stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// One event was larger than the parser's limit; it was dropped and parsing went on with
    /// the next event.
    #[error("an event-stream event exceeded {limit} bytes and was skipped")]
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Incremental parser state for one stream. Feed it chunks in order, then call
/// [`finish`](SseParser::finish) at the end of the stream.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// A line begun in an earlier chunk and not yet ended.
    line: Vec<u8>,
    /// The current event's data, once it had to be kept beyond its chunk (or had two lines).
    data: Vec<u8>,
    /// Whether the current event has had a `data:` field (its data may still be empty).
    has_data: bool,
    event: Vec<u8>,
    id: Vec<u8>,
    has_id: bool,
    /// Bytes of the current event's completed lines.
    event_bytes: usize,
    /// The previous chunk ended with CR: an LF starting the next chunk belongs to it.
    after_cr: bool,
    /// Skipping the rest of an oversized event up to its blank line.
    discarding: bool,
    /// While discarding: the current line already has bytes (so it is not the blank line).
    discard_line_open: bool,
    /// No line has been read yet (a BOM may start the stream).
    first_line: bool,
}

/// Where the current event's data is while a chunk is being parsed: not yet seen, in the
/// parser's own buffer, or still in the caller's chunk (the zero-copy case).
#[derive(Clone, Copy)]
enum DataAt {
    Parser,
    Chunk(usize, usize),
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser that refuses events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            event: Vec::new(),
            id: Vec::new(),
            has_id: false,
            event_bytes: 0,
            after_cr: false,
            discarding: false,
            discard_line_open: false,
            first_line: true,
        }
    }

    /// Parses the next chunk of the stream, calling `sink` with every event it completes (and
    /// with an error for every event it had to drop), in stream order.
    pub fn feed<F>(&mut self, chunk: &[u8], mut sink: F)
    where
        F: FnMut(Result<SseEvent<'_>, SseError>),
    {
        if chunk.is_empty() {
            return;
        }
        let mut pos = 0;
        if self.after_cr {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                pos = 1;
            }
        }
        let mut at = DataAt::Parser;
        while pos < chunk.len() {
            let Some(i) = memchr2(b'\n', b'\r', &chunk[pos..]) else {
                self.keep_partial(&chunk[pos..], &mut sink);
                break;
            };
            let end = pos + i;
            let mut next = end + 1;
            if chunk[end] == b'\r' {
                if next == chunk.len() {
                    self.after_cr = true;
                } else if chunk[next] == b'\n' {
                    next += 1;
                }
            }
            if self.discarding {
                let blank = end == pos && !self.discard_line_open;
                self.discard_line_open = false;
                if blank {
                    self.discarding = false;
                }
            } else if self.line.is_empty() {
                self.process_line(chunk, &chunk[pos..end], Some(pos), &mut at, &mut sink);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[pos..end]);
                self.process_line(chunk, &line, None, &mut at, &mut sink);
                line.clear();
                self.line = line;
            }
            pos = next;
        }
        // Data still pointing into the chunk must be kept before the chunk goes away.
        if let DataAt::Chunk(s, e) = at
            && self.has_data
            && !self.discarding
        {
            self.data.extend_from_slice(&chunk[s..e]);
        }
    }

    /// Ends the stream: a last line without its line ending is read, and an event without its
    /// blank line is dispatched (see the module docs for why).
    pub fn finish<F>(&mut self, mut sink: F)
    where
        F: FnMut(Result<SseEvent<'_>, SseError>),
    {
        let mut at = DataAt::Parser;
        if !self.discarding && !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&[], &line, None, &mut at, &mut sink);
        }
        if !self.discarding && self.has_data {
            self.dispatch(&[], &mut at, &mut sink);
        }
        self.reset_event();
        self.line.clear();
        self.discarding = false;
        self.discard_line_open = false;
        self.after_cr = false;
    }

    fn keep_partial<F>(&mut self, rest: &[u8], sink: &mut F)
    where
        F: FnMut(Result<SseEvent<'_>, SseError>),
    {
        if self.discarding {
            self.discard_line_open = true;
            return;
        }
        if self.event_bytes + self.line.len() + rest.len() > self.max_event_bytes {
            self.line.clear();
            self.overflow(sink);
            self.discard_line_open = true;
            return;
        }
        self.line.extend_from_slice(rest);
    }

    /// Applies one complete line. `offset` is where the line starts in `chunk` when it lies
    /// there (so its data can be borrowed); `None` when it was assembled in the parser.
    fn process_line<F>(
        &mut self,
        chunk: &[u8],
        mut line: &[u8],
        mut offset: Option<usize>,
        at: &mut DataAt,
        sink: &mut F,
    ) where
        F: FnMut(Result<SseEvent<'_>, SseError>),
    {
        if self.first_line {
            self.first_line = false;
            if let Some(rest) = line.strip_prefix(BOM) {
                line = rest;
                offset = offset.map(|o| o + BOM.len());
            }
        }
        if line.is_empty() {
            if self.has_data {
                self.dispatch(chunk, at, sink);
            }
            self.reset_event();
            return;
        }
        if self.event_bytes + line.len() > self.max_event_bytes {
            self.overflow(sink);
            *at = DataAt::Parser;
            return;
        }
        if line[0] == b':' {
            return;
        }
        self.event_bytes += line.len();
        let (name, value, value_start) = match memchr::memchr(b':', line) {
            Some(c) => {
                let skip = if line.get(c + 1) == Some(&b' ') { 2 } else { 1 };
                (&line[..c], &line[c + skip..], c + skip)
            }
            None => (line, &line[line.len()..], line.len()),
        };
        match name {
            b"data" => {
                if !self.has_data {
                    self.has_data = true;
                    match offset {
                        Some(o) => *at = DataAt::Chunk(o + value_start, o + line.len()),
                        None => self.data.extend_from_slice(value),
                    }
                } else {
                    if let DataAt::Chunk(s, e) = *at {
                        self.data.extend_from_slice(&chunk[s..e]);
                        *at = DataAt::Parser;
                    }
                    self.data.push(b'\n');
                    self.data.extend_from_slice(value);
                }
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" if memchr::memchr(0, value).is_none() => {
                self.id.clear();
                self.id.extend_from_slice(value);
                self.has_id = true;
            }
            _ => {}
        }
    }

    fn dispatch<F>(&mut self, chunk: &[u8], at: &mut DataAt, sink: &mut F)
    where
        F: FnMut(Result<SseEvent<'_>, SseError>),
    {
        let data = match *at {
            DataAt::Chunk(s, e) => &chunk[s..e],
            DataAt::Parser => &self.data[..],
        };
        sink(Ok(SseEvent {
            event: &self.event,
            data,
            id: self.has_id.then_some(&self.id[..]),
        }));
        *at = DataAt::Parser;
    }

    fn overflow<F>(&mut self, sink: &mut F)
    where
        F: FnMut(Result<SseEvent<'_>, SseError>),
    {
        self.reset_event();
        self.discarding = true;
        self.discard_line_open = false;
        sink(Err(SseError::EventTooLarge {
            limit: self.max_event_bytes,
        }));
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.event.clear();
        self.has_data = false;
        self.event_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned copy of an event, to compare runs.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Got {
        Event {
            event: String,
            data: String,
            id: Option<String>,
        },
        TooLarge(usize),
    }

    fn own(item: Result<SseEvent<'_>, SseError>) -> Got {
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf-8 in test streams");
        match item {
            Ok(ev) => Got::Event {
                event: s(ev.event),
                data: s(ev.data),
                id: ev.id.map(s),
            },
            Err(SseError::EventTooLarge { limit }) => Got::TooLarge(limit),
        }
    }

    fn run_chunks(limit: usize, chunks: &[&[u8]]) -> Vec<Got> {
        let mut p = SseParser::new(limit);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |e| out.push(own(e)));
        }
        p.finish(|e| out.push(own(e)));
        out
    }

    fn run(limit: usize, stream: &[u8], split: usize) -> Vec<Got> {
        let chunks: Vec<&[u8]> = stream.chunks(split.max(1)).collect();
        run_chunks(limit, &chunks)
    }

    fn ev(event: &str, data: &str, id: Option<&str>) -> Got {
        Got::Event {
            event: event.into(),
            data: data.into(),
            id: id.map(Into::into),
        }
    }

    /// Every split size from 1 byte to the whole stream gives the same result.
    fn same_for_every_split(limit: usize, stream: &[u8]) -> Vec<Got> {
        let whole = run(limit, stream, stream.len());
        for split in 1..stream.len() {
            assert_eq!(
                run(limit, stream, split),
                whole,
                "split every {split} bytes"
            );
        }
        whole
    }

    #[test]
    fn fields_follow_the_event_stream_rules() {
        let stream = b": a comment\n\
            event: first\n\
            id: 7\n\
            data: line one\n\
            data:line two\n\
            data\n\
            unknown: ignored\n\
            retry: 10\n\
            \n\
            \n\
            event: nodata\n\
            \n\
            data: \n\
            \n\
            data:  two spaces\n\
            id: bad\0id\n\
            \n";
        let got = same_for_every_split(1 << 10, stream);
        assert_eq!(
            got,
            vec![
                ev("first", "line one\nline two\n", Some("7")),
                ev("", "", Some("7")),
                ev("", " two spaces", Some("7")),
            ]
        );
    }

    #[test]
    fn crlf_cr_and_lf_line_endings_give_the_same_events() {
        let lf = "event: a\ndata: 1\ndata: 2\n\ndata: é\n\n";
        let want = same_for_every_split(1 << 10, lf.as_bytes());
        assert_eq!(want, vec![ev("a", "1\n2", None), ev("", "é", None)]);
        let crlf = lf.replace('\n', "\r\n");
        let cr = lf.replace('\n', "\r");
        assert_eq!(same_for_every_split(1 << 10, crlf.as_bytes()), want);
        assert_eq!(same_for_every_split(1 << 10, cr.as_bytes()), want);
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_ending() {
        // Were the LF read as a second line ending, the blank line would end the event early.
        let got = run_chunks(1 << 10, &[b"data: a\r", b"\ndata: b\r\n\r\n"]);
        assert_eq!(got, vec![ev("", "a\nb", None)]);
    }

    #[test]
    fn an_event_is_dispatched_when_its_blank_line_arrives() {
        let mut p = SseParser::new(1 << 10);
        let mut out = Vec::new();
        p.feed(b"event: x\ndata: 1\n", |e| out.push(own(e)));
        assert!(out.is_empty(), "no event before its blank line");
        p.feed(b"\nda", |e| out.push(own(e)));
        assert_eq!(out, vec![ev("x", "1", None)]);
    }

    #[test]
    fn utf8_split_across_chunks_is_joined() {
        let text = "data: naïve 日本語 🚀\n\n";
        let got = same_for_every_split(1 << 10, text.as_bytes());
        assert_eq!(got, vec![ev("", "naïve 日本語 🚀", None)]);
    }

    #[test]
    fn a_bom_at_the_start_is_skipped_even_when_split() {
        let stream = b"\xEF\xBB\xBFdata: x\n\n";
        assert_eq!(
            same_for_every_split(1 << 10, stream),
            vec![ev("", "x", None)]
        );
    }

    #[test]
    fn the_last_event_is_dispatched_at_the_end_without_its_blank_line() {
        let got = same_for_every_split(1 << 10, b"data: a\n\nevent: end\ndata: b\ndata: c");
        assert_eq!(got, vec![ev("", "a", None), ev("end", "b\nc", None)]);
    }

    #[test]
    fn a_single_line_event_inside_one_chunk_is_borrowed_not_copied() {
        let chunk = b"event: e\ndata: {\"k\":1}\n\n".to_vec();
        let range = chunk.as_ptr_range();
        let mut p = SseParser::new(1 << 10);
        let mut inside = Vec::new();
        p.feed(&chunk, |e| {
            let e = e.expect("an event");
            assert_eq!(e.data, b"{\"k\":1}");
            inside.push(range.contains(&e.data.as_ptr()));
        });
        assert_eq!(inside, vec![true]);
        assert_eq!(p.data.capacity(), 0, "nothing was buffered");
    }

    #[test]
    fn an_oversized_event_is_reported_skipped_and_parsing_goes_on() {
        let big = "x".repeat(100);
        let stream = format!(
            "data: ok1\n\ndata: {big}\ndata: more\n\ndata: ok2\n\n: {big}\n\ndata: ok3\n\n"
        );
        let got = same_for_every_split(64, stream.as_bytes());
        assert_eq!(
            got,
            vec![
                ev("", "ok1", None),
                Got::TooLarge(64),
                ev("", "ok2", None),
                Got::TooLarge(64),
                ev("", "ok3", None),
            ]
        );
    }

    #[test]
    fn many_small_lines_adding_up_past_the_limit_are_one_oversized_event() {
        let stream = format!("{}\ndata: after\n\n", "data: 0123456789\n".repeat(20));
        let got = same_for_every_split(100, stream.as_bytes());
        assert_eq!(got, vec![Got::TooLarge(100), ev("", "after", None)]);
    }

    #[test]
    fn a_line_that_never_ends_keeps_memory_bounded() {
        let mut p = SseParser::new(1024);
        let mut errors = 0;
        let chunk = [b'a'; 100];
        for _ in 0..20_000 {
            p.feed(&chunk, |e| {
                assert!(e.is_err());
                errors += 1;
            });
        }
        assert_eq!(errors, 1);
        assert!(p.line.capacity() <= 2048, "{}", p.line.capacity());
        assert!(p.data.capacity() <= 2048);
        let mut after = Vec::new();
        p.feed(b"\n\ndata: next\n\n", |e| after.push(own(e)));
        assert_eq!(after, vec![ev("", "next", None)]);
    }

    #[test]
    fn comments_between_events_do_not_count_toward_the_limit() {
        let stream = ": keep-alive\n".repeat(50) + "data: x\n\n";
        assert_eq!(
            same_for_every_split(64, stream.as_bytes()),
            vec![ev("", "x", None)]
        );
    }
}
