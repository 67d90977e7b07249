//! Usage metering: what one response cost, read from the response itself.
//!
//! A [`Meter`] watches one HTTP response (a JSON body or an event stream) and a
//! [`SocketMeter`] watches one Codex WebSocket (many requests, one JSON message per event). Both
//! produce a [`Metered`] record per request, following each API exactly:
//!
//! - **Anthropic Messages.** JSON: `id`, `model`, `usage`. SSE: `message_start` carries the id,
//!   model, input and cache figures and a first output figure; each `message_delta` carries a
//!   usage that is *cumulative* (the last one is the total: they are never added up), and may
//!   repeat input or cache fields (the latest non-null value wins); `message_stop` ends it; an
//!   `error` event may come instead.
//! - **OpenAI Responses** (SSE, and Codex's WebSocket with the same objects and no `event:`
//!   lines): `response.created` / `response.in_progress` name the response, and
//!   `response.completed` | `response.failed` | `response.incomplete` carry the usage; an `error`
//!   event may come instead.
//! - **OpenAI Chat Completions.** Stream: `chat.completion.chunk` objects, the usage chunk
//!   (`choices: []`, with `stream_options.include_usage`), then `[DONE]`. JSON: `usage`.
//!
//! # Token accounting
//! The record uses Anthropic's convention for every API, so figures add up the same way:
//! `input` is the uncached input only; `cache_read` and `cache_creation` are apart from it, and
//! the tokens the request consumed are `input + cache_creation + cache_read + output`
//! ([`Metered::total`]). OpenAI counts cached tokens *inside* its `input_tokens` /
//! `prompt_tokens`, so for OpenAI `input = input_tokens - cached_tokens` and `cache_read =
//! cached_tokens`. `reasoning` is a breakdown of `output` (OpenAI counts reasoning tokens inside
//! `output_tokens`), never added to the total.
//!
//! # Design
//! Streams are cheap to watch: an SSE event whose `event:` name shows it carries no usage
//! (`content_block_delta`, `response.output_text.delta`, …: almost all of them) is skipped
//! without being parsed. Unnamed events have their `type` read by a prefix scan of the JSON
//! (both providers write `"type"` first), falling back to a parse when that fails. Only events
//! that carry ids or usage are deserialized, into structs that borrow their strings from the
//! event. JSON bodies are gathered up to a limit and parsed once at the end.

use std::borrow::Cow;

use serde::Deserialize;

use super::sse::{DEFAULT_MAX_EVENT_BYTES, SseError, SseEvent, SseParser};

/// The API a request was made to; it decides how its response is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Api {
    /// Anthropic `POST /v1/messages`.
    AnthropicMessages,
    /// OpenAI `POST /v1/responses` (and Codex's WebSocket on `GET /v1/responses`).
    OpenAiResponses,
    /// OpenAI `POST /v1/chat/completions`.
    OpenAiChatCompletions,
}

impl Api {
    /// The metered API a request path belongs to (the query string is ignored), or `None` for
    /// paths that carry no usage, such as `/v1/messages/count_tokens` or `/v1/models`.
    pub fn for_path(path: &str) -> Option<Api> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        match path.trim_end_matches('/') {
            "/v1/messages" => Some(Api::AnthropicMessages),
            // Codex's remote compaction answers a Responses object too.
            "/v1/responses" | "/v1/responses/compact" => Some(Api::OpenAiResponses),
            "/v1/chat/completions" => Some(Api::OpenAiChatCompletions),
            _ => None,
        }
    }
}

/// How a metered request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The response ended normally (Anthropic `message_stop`, Responses `response.completed`,
    /// Chat Completions `[DONE]`, or a complete JSON body).
    Completed,
    /// OpenAI `response.failed`.
    Failed,
    /// OpenAI `response.incomplete` (e.g. `max_output_tokens` reached).
    Incomplete,
    /// The upstream sent an error event in the stream.
    Error,
    /// The stream stopped before its final event: the client disconnected or the upstream
    /// closed early. The figures are what had been seen (for Anthropic at least the input).
    Truncated,
}

impl Outcome {
    /// A stable lower-case name, for records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Incomplete => "incomplete",
            Outcome::Error => "error",
            Outcome::Truncated => "truncated",
        }
    }
}

/// What one request cost, as its response reported it. See the module docs for how `input`
/// relates to the cache figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metered {
    /// The model that answered, as the upstream named it.
    pub model: Option<String>,
    /// The upstream's id for this response (`msg_…`, `resp_…`, `chatcmpl-…`): the idempotency
    /// key, so a record delivered twice is counted once.
    pub upstream_id: Option<String>,
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens (reasoning included).
    pub output: u64,
    /// Input tokens written to the prompt cache (Anthropic `cache_creation_input_tokens`).
    pub cache_creation: u64,
    /// Input tokens read from the prompt cache (Anthropic `cache_read_input_tokens`, OpenAI
    /// `cached_tokens`).
    pub cache_read: u64,
    /// Reasoning tokens, a part of `output` (OpenAI `reasoning_tokens`).
    pub reasoning: u64,
    /// How the request ended.
    pub outcome: Outcome,
    /// Events (or a body) the meter had to skip because they were too large or not the JSON
    /// their kind requires. Non-zero means the figures may be low.
    pub skipped: u32,
}

impl Metered {
    /// Every token the request consumed: `input + cache_creation + cache_read + output`.
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.cache_creation)
            .saturating_add(self.cache_read)
            .saturating_add(self.output)
    }
}

/// Something the meter could not read. The response is still forwarded; the caller decides
/// what to log or flag, and the final record counts it in [`Metered::skipped`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeterError {
    /// An SSE event was larger than the limit and was skipped.
    #[error(transparent)]
    Sse(#[from] SseError),
    /// A JSON body was larger than the limit and will not be read.
    #[error("a response body exceeded {limit} bytes and cannot be metered")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// The meter for one HTTP response. Feed it the chunks the gateway forwards, in order, then
/// call [`finish`](Meter::finish).
#[derive(Debug)]
pub struct Meter {
    acc: Acc,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Sse(SseParser),
    Json {
        buf: Vec<u8>,
        max: usize,
        over: bool,
    },
}

impl Meter {
    /// A meter for a response of `api` with this `Content-Type` header value:
    /// `text/event-stream` is read as SSE, anything else as one JSON body. The meter reads the
    /// body as the API writes it, so the host must see it uncompressed: forward the request
    /// with `accept-encoding: identity` (or decode before metering).
    pub fn for_response(api: Api, content_type: Option<&str>) -> Meter {
        Meter::with_limit(api, content_type, DEFAULT_MAX_EVENT_BYTES)
    }

    /// As [`for_response`](Meter::for_response), with `max_bytes` as the largest SSE event or
    /// JSON body that will be read.
    pub fn with_limit(api: Api, content_type: Option<&str>, max_bytes: usize) -> Meter {
        let body = if is_event_stream(content_type) {
            Body::Sse(SseParser::new(max_bytes))
        } else {
            Body::Json {
                buf: Vec::new(),
                max: max_bytes,
                over: false,
            }
        };
        Meter {
            acc: Acc::new(api),
            body,
        }
    }

    /// Whether it reads a whole JSON body (not a stream): such an answer was generated in full
    /// before its first byte came, so reading the rest costs the upstream nothing.
    pub fn reads_whole_body(&self) -> bool {
        !matches!(self.body, Body::Sse(_))
    }

    /// Observes the next chunk of the response body. Errors are reported, not fatal: metering
    /// continues with what can still be read.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), MeterError> {
        let mut first_err = None;
        match &mut self.body {
            Body::Sse(parser) => {
                let acc = &mut self.acc;
                parser.feed(chunk, |item| acc.on_sse(item, &mut first_err));
            }
            Body::Json { buf, max, over } => {
                if *over {
                    return Ok(());
                }
                if buf.len() + chunk.len() > *max {
                    *over = true;
                    *buf = Vec::new();
                    self.acc.skipped += 1;
                    return Err(MeterError::BodyTooLarge { limit: *max });
                }
                buf.extend_from_slice(chunk);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Ends the response: `disconnected` is true when the client went away (or the upstream
    /// connection broke) before the body ended. Returns `None` when nothing in the response
    /// was recognised (an error body, an empty or unreadable one).
    pub fn finish(mut self, disconnected: bool) -> Option<Metered> {
        match &mut self.body {
            Body::Sse(parser) => {
                // A cut stream's last event is read if it is whole; if it is not, that is the
                // cut, not something the meter failed to read.
                let acc = &mut self.acc;
                acc.lenient = disconnected;
                let mut ignored = None;
                parser.finish(|item| acc.on_sse(item, &mut ignored));
            }
            Body::Json { buf, over, .. } => {
                if !*over {
                    self.acc.lenient = disconnected;
                    self.acc.on_json_body(buf);
                }
            }
        }
        self.acc.into_metered()
    }
}

/// The meter for one Codex WebSocket on `/v1/responses`: each text message is one Responses
/// event, and each request on the socket ends at its own terminal event, so the socket yields
/// one record per request.
#[derive(Debug)]
pub struct SocketMeter {
    acc: Acc,
}

impl Default for SocketMeter {
    fn default() -> Self {
        SocketMeter::new()
    }
}

impl SocketMeter {
    /// A meter for a new socket.
    pub fn new() -> Self {
        SocketMeter {
            acc: Acc::new(Api::OpenAiResponses),
        }
    }

    /// Observes one text message from the upstream. Returns the request's record when this
    /// message ended it (`response.completed`, `.failed`, `.incomplete` or `error`), or the
    /// previous request's, as [`Outcome::Truncated`], when this message starts a new one
    /// before the previous one ended.
    pub fn feed_message(&mut self, text: &[u8]) -> Option<Metered> {
        if self.acc.seen && json_type(text).as_deref() == Some("response.created") {
            // A new request began before the last one ended: the last one is cut short, and
            // must not lend its id to the new one.
            let unfinished = std::mem::replace(&mut self.acc, Acc::new(Api::OpenAiResponses));
            self.acc.on_event(b"", text);
            return unfinished.into_metered();
        }
        self.acc.on_event(b"", text);
        if self.acc.outcome.is_some() {
            std::mem::replace(&mut self.acc, Acc::new(Api::OpenAiResponses)).into_metered()
        } else {
            None
        }
    }

    /// Ends the socket: a request still in flight is returned as [`Outcome::Truncated`].
    pub fn finish(self) -> Option<Metered> {
        self.acc.into_metered()
    }
}

fn is_event_stream(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// What has been seen of one request so far.
#[derive(Debug)]
struct Acc {
    api: Api,
    model: Option<String>,
    id: Option<String>,
    input: u64,
    output: u64,
    cache_creation: u64,
    cache_read: u64,
    reasoning: u64,
    outcome: Option<Outcome>,
    /// Anything recognised: an id, a usage or an ending.
    seen: bool,
    /// Chat Completions: the usage chunk has arrived.
    chat_usage: bool,
    skipped: u32,
    /// The stream was cut: a last event that does not parse is not counted as skipped.
    lenient: bool,
}

impl Acc {
    fn new(api: Api) -> Self {
        Acc {
            api,
            model: None,
            id: None,
            input: 0,
            output: 0,
            cache_creation: 0,
            cache_read: 0,
            reasoning: 0,
            outcome: None,
            seen: false,
            chat_usage: false,
            skipped: 0,
            lenient: false,
        }
    }

    fn on_sse(&mut self, item: Result<SseEvent<'_>, SseError>, err: &mut Option<MeterError>) {
        match item {
            Ok(ev) => self.on_event(ev.event, ev.data),
            Err(e) => {
                self.skipped += 1;
                err.get_or_insert(MeterError::Sse(e));
            }
        }
    }

    /// One event: `name` is the SSE `event:` field (empty when absent), `data` its JSON.
    fn on_event(&mut self, name: &[u8], data: &[u8]) {
        if self.api == Api::OpenAiChatCompletions {
            self.on_chat_chunk(data);
            return;
        }
        let parsed;
        let kind: &[u8] = if !name.is_empty() {
            name
        } else {
            match json_type(data) {
                Some(t) => {
                    parsed = t;
                    parsed.as_bytes()
                }
                None => return,
            }
        };
        let ok = match self.api {
            Api::AnthropicMessages => self.on_anthropic(kind, data),
            _ => self.on_responses(kind, data),
        };
        if !ok {
            self.skip();
        }
    }

    /// Returns false when an event that matters was not the JSON it should be.
    fn on_anthropic(&mut self, kind: &[u8], data: &[u8]) -> bool {
        match kind {
            b"message_start" => {
                let Ok(ev) = serde_json::from_slice::<AnthropicStart<'_>>(data) else {
                    return false;
                };
                self.seen = true;
                self.set_id_model(ev.message.id, ev.message.model);
                if let Some(u) = ev.message.usage {
                    self.anthropic_usage(&u);
                }
            }
            b"message_delta" => {
                let Ok(ev) = serde_json::from_slice::<AnthropicDelta>(data) else {
                    return false;
                };
                self.seen = true;
                if let Some(u) = ev.usage {
                    self.anthropic_usage(&u);
                }
            }
            b"message_stop" => {
                self.seen = true;
                self.end(Outcome::Completed);
            }
            b"error" => {
                self.seen = true;
                self.end(Outcome::Error);
            }
            _ => {}
        }
        true
    }

    /// Latest non-null wins: `message_delta` usage is cumulative, so it replaces.
    fn anthropic_usage(&mut self, u: &AnthropicUsage) {
        set(&mut self.input, u.input_tokens);
        set(&mut self.output, u.output_tokens);
        set(&mut self.cache_creation, u.cache_creation_input_tokens);
        set(&mut self.cache_read, u.cache_read_input_tokens);
    }

    fn on_responses(&mut self, kind: &[u8], data: &[u8]) -> bool {
        let outcome = match kind {
            b"response.created" | b"response.in_progress" => {
                if self.id.is_some() {
                    return true;
                }
                None
            }
            b"response.completed" => Some(Outcome::Completed),
            b"response.failed" => Some(Outcome::Failed),
            b"response.incomplete" => Some(Outcome::Incomplete),
            b"error" => {
                self.seen = true;
                self.end(Outcome::Error);
                return true;
            }
            _ => return true,
        };
        let Ok(ev) = serde_json::from_slice::<ResponsesEvent<'_>>(data) else {
            return false;
        };
        self.seen = true;
        self.responses_object(ev.response);
        if let Some(o) = outcome {
            self.end(o);
        }
        true
    }

    fn responses_object(&mut self, r: ResponseObject<'_>) {
        self.set_id_model(r.id, r.model);
        if let Some(u) = r.usage {
            let cached = u
                .input_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0);
            self.openai_usage(
                u.input_tokens,
                cached,
                u.output_tokens,
                u.output_tokens_details.and_then(|d| d.reasoning_tokens),
            );
        }
    }

    fn openai_usage(
        &mut self,
        input: Option<u64>,
        cached: u64,
        out: Option<u64>,
        rsn: Option<u64>,
    ) {
        if let Some(i) = input {
            self.input = i.saturating_sub(cached);
            self.cache_read = cached;
        }
        set(&mut self.output, out);
        set(&mut self.reasoning, rsn);
    }

    fn on_chat_chunk(&mut self, data: &[u8]) {
        if data.trim_ascii() == b"[DONE]" {
            self.seen = true;
            self.end(Outcome::Completed);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<ChatObject<'_>>(data) else {
            self.skip();
            return;
        };
        self.chat_object(chunk);
    }

    fn chat_object(&mut self, c: ChatObject<'_>) {
        if c.error.is_some() {
            self.seen = true;
            self.end(Outcome::Error);
            return;
        }
        if c.id.is_some() || c.usage.is_some() {
            self.seen = true;
        }
        self.set_id_model(c.id, c.model);
        if let Some(u) = c.usage {
            self.chat_usage = true;
            let cached = u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0);
            self.openai_usage(
                u.prompt_tokens,
                cached,
                u.completion_tokens,
                u.completion_tokens_details.and_then(|d| d.reasoning_tokens),
            );
        }
    }

    fn on_json_body(&mut self, body: &[u8]) {
        match self.api {
            Api::AnthropicMessages => {
                let Ok(m) = serde_json::from_slice::<AnthropicMessage<'_>>(body) else {
                    self.skip();
                    return;
                };
                if m.kind.as_deref() == Some("error") || m.id.is_none() {
                    return;
                }
                self.seen = true;
                self.set_id_model(m.id, m.model);
                if let Some(u) = m.usage {
                    self.anthropic_usage(&u);
                }
                self.end(Outcome::Completed);
            }
            Api::OpenAiResponses => {
                let Ok(r) = serde_json::from_slice::<ResponseObject<'_>>(body) else {
                    self.skip();
                    return;
                };
                if r.id.is_none() {
                    return;
                }
                let outcome = match r.status.as_deref() {
                    Some("failed") => Outcome::Failed,
                    Some("incomplete") => Outcome::Incomplete,
                    _ => Outcome::Completed,
                };
                self.seen = true;
                self.responses_object(r);
                self.end(outcome);
            }
            Api::OpenAiChatCompletions => {
                let Ok(c) = serde_json::from_slice::<ChatObject<'_>>(body) else {
                    self.skip();
                    return;
                };
                if c.id.is_none() {
                    return;
                }
                self.chat_object(c);
                self.end(Outcome::Completed);
            }
        }
    }

    fn set_id_model(&mut self, id: Option<Cow<'_, str>>, model: Option<Cow<'_, str>>) {
        if let Some(id) = id
            && self.id.is_none()
        {
            self.id = Some(id.into_owned());
        }
        if let Some(m) = model
            && self.model.as_deref() != Some(&*m)
        {
            self.model = Some(m.into_owned());
        }
    }

    fn skip(&mut self) {
        if !self.lenient {
            self.skipped += 1;
        }
    }

    /// The first ending wins: an `error` after `message_stop` does not undo it.
    fn end(&mut self, outcome: Outcome) {
        self.outcome.get_or_insert(outcome);
    }

    fn into_metered(self) -> Option<Metered> {
        if !self.seen {
            return None;
        }
        let outcome = match self.outcome {
            Some(o) => o,
            // Chat Completions has nothing after the usage chunk but `[DONE]`.
            None if self.chat_usage => Outcome::Completed,
            None => Outcome::Truncated,
        };
        Some(Metered {
            model: self.model,
            upstream_id: self.id,
            input: self.input,
            output: self.output,
            cache_creation: self.cache_creation,
            cache_read: self.cache_read,
            reasoning: self.reasoning,
            outcome,
            skipped: self.skipped,
        })
    }
}

fn set(field: &mut u64, value: Option<u64>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// The `type` member of a JSON event, read by [`peek_type`] when it can be, else parsed.
pub(crate) fn json_type(data: &[u8]) -> Option<Cow<'_, str>> {
    if let Some(k) = peek_type(data) {
        return std::str::from_utf8(k).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<Typed<'_>>(data).ok()?.kind
}

/// The `type` of a JSON object whose first member is `"type"` with a plain string value, read
/// without parsing the rest; `None` when the object is written any other way.
fn peek_type(data: &[u8]) -> Option<&[u8]> {
    let rest = data.trim_ascii_start().strip_prefix(b"{")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"type\"")?;
    let rest = rest.trim_ascii_start().strip_prefix(b":")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    let value = &rest[..end];
    (memchr::memchr(b'\\', value).is_none()).then_some(value)
}

#[derive(Deserialize)]
struct Typed<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct AnthropicMessage<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicStart<'a> {
    #[serde(borrow)]
    message: AnthropicMessage<'a>,
}

#[derive(Deserialize)]
struct AnthropicDelta {
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct CachedDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ReasoningDetails {
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ResponsesUsage {
    input_tokens: Option<u64>,
    input_tokens_details: Option<CachedDetails>,
    output_tokens: Option<u64>,
    output_tokens_details: Option<ReasoningDetails>,
}

#[derive(Deserialize)]
struct ResponseObject<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    usage: Option<ResponsesUsage>,
}

#[derive(Deserialize)]
struct ResponsesEvent<'a> {
    #[serde(borrow)]
    response: ResponseObject<'a>,
}

#[derive(Deserialize)]
struct ChatUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<CachedDetails>,
    completion_tokens_details: Option<ReasoningDetails>,
}

#[derive(Deserialize)]
struct ChatObject<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<ChatUsage>,
    error: Option<serde::de::IgnoredAny>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANTHROPIC_SSE: &str = include_str!("../../fixtures/gateway/anthropic-messages.sse");
    const RESPONSES_SSE: &str = include_str!("../../fixtures/gateway/openai-responses.sse");
    const RESPONSES_WS: &str = include_str!("../../fixtures/gateway/openai-responses.ws.jsonl");
    const CHAT_SSE: &str = include_str!("../../fixtures/gateway/openai-chat.sse");
    const SSE: Option<&str> = Some("text/event-stream; charset=utf-8");

    fn meter_chunks(api: Api, ct: Option<&str>, chunks: &[&[u8]], cut: bool) -> Option<Metered> {
        let mut m = Meter::for_response(api, ct);
        for c in chunks {
            m.feed(c).expect("nothing oversized");
        }
        m.finish(cut)
    }

    fn meter(api: Api, ct: Option<&str>, body: &str) -> Option<Metered> {
        meter_chunks(api, ct, &[body.as_bytes()], false)
    }

    /// A small deterministic generator for chunk boundaries (no `rand` in the crate).
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    /// The record is the same whole, 1 byte at a time, in random splits and with CRLF or CR
    /// line endings.
    fn same_in_any_chunking(api: Api, body: &str) -> Metered {
        let whole = meter(api, SSE, body).expect("a record");
        let bytes: Vec<&[u8]> = body.as_bytes().chunks(1).collect();
        assert_eq!(meter_chunks(api, SSE, &bytes, false).as_ref(), Some(&whole));
        let mut rng = Lcg(0x5eed);
        for round in 0..200 {
            let b = body.as_bytes();
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < b.len() {
                let n = 1 + rng.below(97);
                chunks.push(&b[at..(at + n).min(b.len())]);
                at += n;
            }
            let got = meter_chunks(api, SSE, &chunks, false);
            assert_eq!(got.as_ref(), Some(&whole), "round {round}");
        }
        for ending in ["\r\n", "\r"] {
            let other = body.replace('\n', ending);
            assert_eq!(meter(api, SSE, &other).as_ref(), Some(&whole), "{ending:?}");
        }
        whole
    }

    #[test]
    fn anthropic_stream_takes_the_last_cumulative_message_delta() {
        let m = same_in_any_chunking(Api::AnthropicMessages, ANTHROPIC_SSE);
        let want = Metered {
            model: Some("claude-sonnet-4-5-20250929".into()),
            upstream_id: Some("msg_01XFDUDYJgAACzvnptvVoYEL".into()),
            input: 472,
            // 95, not 2 + 40 + 95: message_delta usage is cumulative.
            output: 95,
            cache_creation: 1830,
            cache_read: 12044,
            reasoning: 0,
            outcome: Outcome::Completed,
            skipped: 0,
        };
        assert_eq!(m, want);
        assert_eq!(m.total(), 472 + 1830 + 12044 + 95);
    }

    #[test]
    fn anthropic_message_delta_input_and_cache_replace_when_present() {
        let s = "event: message_start\n\
            data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\
            \"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":5,\
            \"cache_read_input_tokens\":7,\"output_tokens\":1}}}\n\n\
            event: message_delta\n\
            data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"input_tokens\":25,\
            \"cache_read_input_tokens\":null,\"output_tokens\":9}}\n\n\
            event: message_delta\n\
            data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":12,\
            \"cache_creation_input_tokens\":6}}\n\n";
        let m = meter(Api::AnthropicMessages, SSE, s).expect("a record");
        assert_eq!(
            (m.input, m.cache_creation, m.cache_read, m.output),
            (25, 6, 7, 12)
        );
        assert_eq!(m.outcome, Outcome::Truncated, "no message_stop was seen");
    }

    #[test]
    fn anthropic_stream_cut_after_message_start_is_charged_the_input() {
        let cut = ANTHROPIC_SSE
            .find("event: content_block_delta")
            .expect("fixture");
        // Cut in the middle of an event, as a disconnect does.
        let part = &ANTHROPIC_SSE.as_bytes()[..cut + 40];
        let m = meter_chunks(Api::AnthropicMessages, SSE, &[part], true).expect("a record");
        assert_eq!(
            m.upstream_id.as_deref(),
            Some("msg_01XFDUDYJgAACzvnptvVoYEL")
        );
        assert_eq!(
            (m.input, m.cache_creation, m.cache_read),
            (472, 1830, 12044)
        );
        assert_eq!(m.output, 2, "the first output figure from message_start");
        assert_eq!(m.outcome, Outcome::Truncated);
        assert_eq!(
            m.skipped, 0,
            "the cut event is the disconnect, not a bad event"
        );
    }

    #[test]
    fn anthropic_stream_cut_inside_the_last_delta_keeps_the_first_delta() {
        // Cut inside the last message_delta's JSON: the first delta's figure stands, and the
        // half event is the disconnect, not a malformed event.
        let cut = ANTHROPIC_SSE
            .rfind("event: message_delta")
            .expect("fixture");
        let part = &ANTHROPIC_SSE.as_bytes()[..cut + 60];
        let m = meter_chunks(Api::AnthropicMessages, SSE, &[part], true).expect("a record");
        assert_eq!(
            (m.output, m.outcome, m.skipped),
            (40, Outcome::Truncated, 0)
        );
    }

    #[test]
    fn a_stream_error_then_failed_response_keeps_error_and_the_usage() {
        let s = RESPONSES_SSE.replace(
            "event: response.completed",
            "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\
             \"message\":\"boom\",\"param\":null}\n\nevent: response.failed",
        );
        let m = meter(Api::OpenAiResponses, SSE, &s).expect("a record");
        assert_eq!((m.outcome, m.output, m.skipped), (Outcome::Error, 311, 0));
    }

    #[test]
    fn anthropic_error_event_mid_stream_ends_with_error_and_keeps_the_input() {
        let cut = ANTHROPIC_SSE
            .find("event: content_block_stop")
            .expect("fixture");
        let s = format!(
            "{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\
             \"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n",
            &ANTHROPIC_SSE[..cut]
        );
        let m = meter(Api::AnthropicMessages, SSE, &s).expect("a record");
        assert_eq!((m.input, m.outcome), (472, Outcome::Error));
    }

    #[test]
    fn an_empty_or_error_only_stream_gives_no_record_unless_an_error_was_sent() {
        assert_eq!(meter(Api::AnthropicMessages, SSE, ""), None);
        assert_eq!(
            meter(
                Api::AnthropicMessages,
                SSE,
                ": hi\n\nevent: ping\ndata: {}\n\n"
            ),
            None
        );
        let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}\n\n";
        let m = meter(Api::AnthropicMessages, SSE, err).expect("a record");
        assert_eq!((m.upstream_id, m.outcome), (None, Outcome::Error));
    }

    #[test]
    fn anthropic_json_body_is_metered() {
        let body = r#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant",
            "model":"claude-opus-4-1-20250805","content":[{"type":"text","text":"Hi! \u00e9"}],
            "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2095,
            "cache_creation_input_tokens":0,"cache_read_input_tokens":1536,"output_tokens":503}}"#;
        let half = body.len() / 2;
        let chunks = [&body.as_bytes()[..half], &body.as_bytes()[half..]];
        let json = Some("application/json");
        let m = meter_chunks(Api::AnthropicMessages, json, &chunks, false).expect("a record");
        assert_eq!(
            m.upstream_id.as_deref(),
            Some("msg_013Zva2CMHLNnXjNJJKqJ2EF")
        );
        assert_eq!(m.model.as_deref(), Some("claude-opus-4-1-20250805"));
        assert_eq!((m.input, m.cache_read, m.output), (2095, 1536, 503));
        assert_eq!(m.outcome, Outcome::Completed);
        let error = r#"{"type":"error","error":{"type":"rate_limit_error","message":"x"}}"#;
        assert_eq!(meter(Api::AnthropicMessages, json, error), None);
    }

    #[test]
    fn responses_stream_keeps_cached_tokens_apart_from_input() {
        let m = same_in_any_chunking(Api::OpenAiResponses, RESPONSES_SSE);
        let want = Metered {
            model: Some("gpt-5-codex".into()),
            upstream_id: Some("resp_68af4030592c81938ec0a5fbab4a3e9f05438e46b5f69a3b".into()),
            input: 5123 - 4096,
            output: 311,
            cache_creation: 0,
            cache_read: 4096,
            reasoning: 256,
            outcome: Outcome::Completed,
            skipped: 0,
        };
        assert_eq!(m, want);
        assert_eq!(m.total(), 5434, "the total equals OpenAI's total_tokens");
    }

    #[test]
    fn responses_stream_cut_before_completion_names_the_response() {
        let cut = RESPONSES_SSE
            .find("event: response.completed")
            .expect("fixture");
        let part = &RESPONSES_SSE.as_bytes()[..cut + 60];
        let m = meter_chunks(Api::OpenAiResponses, SSE, &[part], true).expect("a record");
        assert!(
            m.upstream_id
                .as_deref()
                .is_some_and(|i| i.starts_with("resp_68af"))
        );
        assert_eq!((m.total(), m.outcome), (0, Outcome::Truncated));
    }

    #[test]
    fn responses_failed_and_incomplete_endings_are_kept_with_their_usage() {
        for (kind, outcome) in [
            ("response.failed", Outcome::Failed),
            ("response.incomplete", Outcome::Incomplete),
        ] {
            let s = RESPONSES_SSE.replace("response.completed", kind);
            let m = meter(Api::OpenAiResponses, SSE, &s).expect("a record");
            assert_eq!((m.outcome, m.output), (outcome, 311), "{kind}");
        }
        let err = "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\
                   \"message\":\"boom\",\"param\":null,\"sequence_number\":2}\n\n";
        let cut = RESPONSES_SSE
            .find("event: response.output_item.added")
            .expect("fixture");
        let s = format!("{}{err}", &RESPONSES_SSE[..cut]);
        let m = meter(Api::OpenAiResponses, SSE, &s).expect("a record");
        assert_eq!(m.outcome, Outcome::Error);
        assert!(m.upstream_id.is_some());
    }

    #[test]
    fn responses_events_without_names_are_read_by_their_type() {
        // The SSE transcript without `event:` lines, and with `type` not written first.
        let unnamed: String = RESPONSES_SSE
            .lines()
            .filter(|l| !l.starts_with("event:"))
            .map(|l| l.replacen("{\"type\":", "{\"x\":0,\"type\":", 1) + "\n")
            .collect();
        let m = meter(Api::OpenAiResponses, SSE, &unnamed).expect("a record");
        assert_eq!(
            m,
            meter(Api::OpenAiResponses, SSE, RESPONSES_SSE).expect("a record")
        );
    }

    #[test]
    fn each_request_on_a_codex_websocket_gets_its_own_record() {
        let mut ws = SocketMeter::new();
        let records: Vec<Metered> = RESPONSES_WS
            .lines()
            .filter_map(|msg| ws.feed_message(msg.as_bytes()))
            .collect();
        assert_eq!(ws.finish(), None, "nothing in flight at the end");
        let ids: Vec<_> = records.iter().map(|r| r.upstream_id.as_deref()).collect();
        assert_eq!(ids, [Some("resp_warmup_0001"), Some("resp_real_0002")]);
        // The warm-up is billed for its input.
        assert_eq!((records[0].input, records[0].output), (4200, 0));
        let r = &records[1];
        assert_eq!(
            (r.input, r.cache_read, r.output, r.reasoning),
            (4310 - 4096, 4096, 57, 32)
        );
        assert!(records.iter().all(|r| r.outcome == Outcome::Completed));
    }

    #[test]
    fn a_websocket_closed_mid_request_yields_it_truncated() {
        let mut ws = SocketMeter::new();
        let msgs: Vec<&str> = RESPONSES_WS.lines().collect();
        for msg in &msgs[..4] {
            ws.feed_message(msg.as_bytes());
        }
        let m = ws.finish().expect("the request in flight");
        assert_eq!(m.upstream_id.as_deref(), Some("resp_real_0002"));
        assert_eq!(m.outcome, Outcome::Truncated);
    }

    #[test]
    fn a_websocket_request_left_unfinished_does_not_absorb_the_next_one() {
        let msgs: Vec<&str> = RESPONSES_WS.lines().collect();
        let mut ws = SocketMeter::new();
        // The warm-up starts but never ends; the next request runs to completion.
        let mut records: Vec<Metered> = Vec::new();
        for msg in [msgs[0], msgs[2], msgs[3], msgs[4], msgs[5]] {
            records.extend(ws.feed_message(msg.as_bytes()));
        }
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.upstream_id.as_deref(), r.outcome, r.output))
            .collect();
        assert_eq!(
            got,
            [
                (Some("resp_warmup_0001"), Outcome::Truncated, 0),
                (Some("resp_real_0002"), Outcome::Completed, 57),
            ]
        );
    }

    #[test]
    fn chat_completions_stream_reads_the_usage_chunk() {
        let m = same_in_any_chunking(Api::OpenAiChatCompletions, CHAT_SSE);
        let want = Metered {
            model: Some("gpt-4o-2024-08-06".into()),
            upstream_id: Some("chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG".into()),
            input: 1117 - 1024,
            output: 46,
            cache_creation: 0,
            cache_read: 1024,
            reasoning: 12,
            outcome: Outcome::Completed,
            skipped: 0,
        };
        assert_eq!(m, want);
        assert_eq!(m.total(), 1163);
    }

    #[test]
    fn chat_completions_stream_cut_before_usage_is_truncated() {
        let cut = CHAT_SSE.find(
            "data: {\"id\":\"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\"object\"\
            :\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\
            \"system_fingerprint\":\"fp_eb9dce56a8\",\"choices\":[],",
        );
        let cut = cut.expect("the usage chunk");
        let part = &CHAT_SSE.as_bytes()[..cut + 10];
        let m = meter_chunks(Api::OpenAiChatCompletions, SSE, &[part], true).expect("a record");
        assert_eq!((m.total(), m.outcome), (0, Outcome::Truncated));
        assert!(m.upstream_id.is_some());
    }

    #[test]
    fn chat_completions_json_body_is_metered() {
        let body = r#"{"id":"chatcmpl-abc123","object":"chat.completion","created":1741569952,
          "model":"gpt-4.1-2025-04-14","choices":[{"index":0,"message":{"role":"assistant",
          "content":"Hello!","refusal":null,"annotations":[]},"logprobs":null,
          "finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,
          "total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},
          "completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,
          "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},
          "service_tier":"default"}"#;
        let m = meter(Api::OpenAiChatCompletions, Some("application/json"), body);
        let m = m.expect("a record");
        assert_eq!(m.upstream_id.as_deref(), Some("chatcmpl-abc123"));
        assert_eq!((m.input, m.output, m.outcome), (19, 10, Outcome::Completed));
    }

    #[test]
    fn chat_completions_error_in_the_stream_or_as_the_body() {
        let cut = CHAT_SSE.find("\n\n").expect("fixture") + 2;
        let s = format!(
            "{}data: {{\"error\":{{\"message\":\"overloaded\",\"type\":\"server_error\",\
             \"param\":null,\"code\":null}}}}\n\n",
            &CHAT_SSE[..cut]
        );
        let m = meter(Api::OpenAiChatCompletions, SSE, &s).expect("a record");
        assert_eq!(m.outcome, Outcome::Error);
        assert!(m.upstream_id.is_some());
        let body = r#"{"error":{"message":"x","type":"invalid_request_error","param":null,
                       "code":"invalid_api_key"}}"#;
        assert_eq!(meter(Api::OpenAiChatCompletions, None, body), None);
    }

    #[test]
    fn outcome_names_are_stable() {
        let names: Vec<_> = [
            Outcome::Completed,
            Outcome::Failed,
            Outcome::Incomplete,
            Outcome::Error,
            Outcome::Truncated,
        ]
        .map(Outcome::as_str)
        .into();
        assert_eq!(
            names,
            ["completed", "failed", "incomplete", "error", "truncated"]
        );
    }

    #[test]
    fn responses_json_body_is_metered_with_its_status() {
        let body = r#"{"id":"resp_1","object":"response","status":"incomplete",
          "model":"gpt-5","output":[],"usage":{"input_tokens":300,
          "input_tokens_details":{"cached_tokens":100},"output_tokens":50,
          "output_tokens_details":{"reasoning_tokens":40},"total_tokens":350}}"#;
        let m = meter(Api::OpenAiResponses, None, body).expect("a record");
        assert_eq!(
            (m.input, m.cache_read, m.output, m.reasoning, m.outcome),
            (200, 100, 50, 40, Outcome::Incomplete)
        );
    }

    #[test]
    fn an_oversized_event_is_reported_and_the_rest_still_metered() {
        let big = format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\
             \"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n",
            "y".repeat(5000)
        );
        let at = ANTHROPIC_SSE
            .find("event: content_block_stop")
            .expect("fixture");
        let s = format!("{}{big}{}", &ANTHROPIC_SSE[..at], &ANTHROPIC_SSE[at..]);
        let mut m = Meter::with_limit(Api::AnthropicMessages, SSE, 4096);
        let errors: Vec<_> = s
            .as_bytes()
            .chunks(700)
            .filter_map(|c| m.feed(c).err())
            .collect();
        assert_eq!(
            errors,
            [MeterError::Sse(SseError::EventTooLarge { limit: 4096 })]
        );
        let m = m.finish(false).expect("a record");
        assert_eq!((m.input, m.output, m.skipped), (472, 95, 1));
        assert_eq!(m.outcome, Outcome::Completed);
    }

    #[test]
    fn an_oversized_json_body_is_refused_and_not_buffered() {
        let mut m = Meter::with_limit(Api::AnthropicMessages, None, 1000);
        assert_eq!(m.feed(&[b' '; 600]), Ok(()));
        assert_eq!(
            m.feed(&[b' '; 600]),
            Err(MeterError::BodyTooLarge { limit: 1000 })
        );
        assert_eq!(m.feed(&[b' '; 600]), Ok(()), "reported once");
        match &m.body {
            Body::Json { buf, .. } => assert_eq!(buf.capacity(), 0),
            Body::Sse(_) => panic!("a JSON meter"),
        }
        assert_eq!(m.finish(false), None);
    }

    #[test]
    fn a_malformed_event_that_carries_usage_is_counted_as_skipped() {
        let s = ANTHROPIC_SSE.replacen("\"output_tokens\":95", "\"output_tokens\":-1", 1);
        let m = meter(Api::AnthropicMessages, SSE, &s).expect("a record");
        assert_eq!((m.output, m.skipped), (40, 1));
    }

    #[test]
    fn content_type_and_path_choose_how_a_response_is_read() {
        assert!(is_event_stream(Some("text/event-stream")));
        assert!(is_event_stream(Some("Text/Event-Stream ; charset=utf-8")));
        assert!(!is_event_stream(Some("application/json")));
        assert!(!is_event_stream(None));
        assert_eq!(
            Api::for_path("/v1/messages?beta=true"),
            Some(Api::AnthropicMessages)
        );
        assert_eq!(Api::for_path("/v1/responses"), Some(Api::OpenAiResponses));
        assert_eq!(
            Api::for_path("/v1/chat/completions"),
            Some(Api::OpenAiChatCompletions)
        );
        assert_eq!(Api::for_path("/v1/messages/count_tokens"), None);
        assert_eq!(Api::for_path("/v1/v1/messages"), None);
    }
}
