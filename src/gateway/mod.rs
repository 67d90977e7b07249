//! The metering gateway's core: reading what each response cost, and answering in each
//! provider's own format.
//!
//! Agents (Claude Code, Codex, opencode) do not report their usage, so the ledger cannot learn
//! it from them. The gateway stands between an agent and its provider: the agent holds only a
//! lease token and a base URL pointing at the gateway; the gateway swaps the token for the real
//! credential, forwards the request, and forwards the response back unchanged while it
//! *observes* it. Metering has to sit in the response path because that is the only place the
//! true figures exist: the provider reports usage inside the response (a JSON `usage`, or events
//! near the end of a stream), and a client that disconnects mid-stream has still been charged
//! for what the upstream sent.
//!
//! This module holds the synchronous parts every transport shares, with no networking and no
//! ledger calls (the host wires them to the HTTP server and the ledger):
//! - [`sse`]: an incremental Server-Sent Events parser that reads the forwarded chunks in place,
//!   with bounded memory;
//! - [`usage`]: a [`Meter`] per response (or a [`SocketMeter`] per Codex WebSocket) that turns
//!   the provider's events into one [`Metered`] record per request;
//! - [`errors`]: the provider-format error bodies for refusals (401, 429, 503).
//!
//! On top of them sits the HTTP proxy ([`proxy`], [`serve`]): hyper on a listener the host
//! binds (127.0.0.1), reqwest's async client to the upstream. It takes the agent's token from
//! `x-api-key` or `Authorization: Bearer`, asks an [`Authority`] (the seam the ledger
//! implements) for the [`Grant`] and an [`Admission`], forwards the request with the real
//! credential, and streams the response back frame by frame while a meter watches it; the
//! record goes to [`Authority::record`] on the blocking pool after the response ends (or the
//! agent goes away). An authority that fails means 503 and nothing forwarded.
//!
//! Codex opens a WebSocket on `GET /v1/responses` before it tries HTTP; the proxy carries it
//! (`socket.rs`): the upstream's socket is opened first with the real credential, then the two
//! are relayed message by message, each `response.create` admitted before it is forwarded and
//! each request on the socket metered by a [`SocketMeter`]. Any other upgrade gets 426.
//!
//! The ledger implements the seam in [`LedgerAuthority`] (lease tokens, admission with
//! top-ups, records batched by one recorder thread, health from every answer); [`HostedGateway`]
//! runs it on a loopback port for `run` ([`run_metered`]), `authledger gateway` and
//! `daemon --gateway`.
//!
//! ```
//! use authledger::gateway::{Api, Meter, Outcome};
//!
//! let stream = concat!(
//!     "event: message_start\n",
//!     r#"data: {"type":"message_start","message":{"id":"msg_1","model":"claude-x","#,
//!     r#""usage":{"input_tokens":10,"output_tokens":1}}}"#,
//!     "\n\nevent: message_delta\n",
//!     r#"data: {"type":"message_delta","usage":{"output_tokens":7}}"#,
//!     "\n\nevent: message_stop\n",
//!     r#"data: {"type":"message_stop"}"#,
//!     "\n\n",
//! );
//! let mut meter = Meter::for_response(Api::AnthropicMessages, Some("text/event-stream"));
//! // The host forwards each chunk to the agent first, then shows the same bytes to the meter.
//! for chunk in stream.as_bytes().chunks(50) {
//!     meter.feed(chunk)?;
//! }
//! let record = meter.finish(false);
//! let record = record.as_ref().map(|r| (r.upstream_id.as_deref(), r.input, r.output, r.outcome));
//! assert_eq!(record, Some((Some("msg_1"), 10, 7, Outcome::Completed)));
//! # Ok::<(), authledger::gateway::MeterError>(())
//! ```
//!
//! # Cost on the hot path
//! The meter runs on every byte an agent receives, so it never delays or copies the bytes it
//! forwards: the caller forwards a chunk first and hands the same slice to the meter after.
//! Lines are found with `memchr`; events that cannot carry usage are skipped by name without
//! parsing JSON; buffers are reused, so steady-state parsing allocates nothing; no regexes.

pub mod authority;
pub mod errors;
pub mod host;
mod latency;
pub mod ledger_authority;
pub mod proxy;
mod route;
pub mod run;
mod socket;
pub mod sse;
mod tap;
pub mod usage;

pub use authority::{Admission, Authority, Decided, GatewayError, Grant, UpstreamAuth};
pub use errors::{ErrorReply, Refusal};
pub use host::HostedGateway;
pub use ledger_authority::LedgerAuthority;
pub use proxy::serve;
pub use run::run_metered;
pub use sse::{SseError, SseEvent, SseParser};
pub use usage::{Api, Meter, MeterError, Metered, Outcome, SocketMeter};
