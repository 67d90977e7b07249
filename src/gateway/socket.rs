//! Codex's WebSocket on `GET /v1/responses`, carried to the upstream and metered.
//!
//! Codex opens a WebSocket before anything else and falls back to HTTP only after several
//! failed attempts, so the gateway carries it rather than making Codex wait. Once the lease is
//! admitted (as for any request), the gateway opens the upstream's WebSocket first, with the
//! real credential: if the upstream refuses the upgrade, the agent gets the upstream's own
//! answer (a 426 makes Codex fall back to HTTP at once); if it accepts, the agent gets its 101
//! and the two sockets are relayed message by message, both ways, until either side closes.
//!
//! Over the socket each `response.create` the agent sends is one request: it is admitted
//! before it is forwarded, and a refusal is answered on the socket with the error event Codex
//! reads (`{"type":"error","status":429,"error":{…},"headers":{…}}`, which it treats like the
//! same HTTP error), the socket staying open. Every text message from the upstream is
//! forwarded first and then shown to a [`SocketMeter`]; each request's record goes to
//! [`Authority::record`] on the blocking pool. A request still in flight when the socket ends
//! is recorded with what was seen, as [`Outcome::Truncated`](super::Outcome::Truncated).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, CONTENT_LENGTH, HeaderMap, HeaderValue};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::authority::{Admission, Authority, Grant};
use super::errors::{ErrorReply, Refusal};
use super::proxy::{bad_gateway, forwarded_headers, header_pairs, returned_headers};
use super::tap::{ReplyBody, record_off_path};
use super::usage::{Api, SocketMeter, json_type};
use crate::types::LeaseId;

/// How long one side may take to finish closing once the other has: the upstream's
/// acknowledgement (and any events it had already sent) after the agent left, or the agent's
/// after the upstream closed. A peer that never answers does not hold the task forever.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The handshake headers of one hop: tungstenite writes its own towards the upstream, and the
/// gateway its own towards the agent (no extension is negotiated on either hop, so the
/// messages pass as they are).
const HANDSHAKE: [&str; 4] = [
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
];

type AgentSocket = WebSocketStream<TokioIo<Upgraded>>;
type UpstreamSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Whether the gateway carries this upgrade: a WebSocket handshake (`GET`, `Upgrade:
/// websocket`, a key, version 13) on the Responses path, the one API whose socket it meters.
pub(super) fn carries(req: &Request<Incoming>) -> bool {
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    req.method() == Method::GET
        && Api::for_path(req.uri().path()) == Some(Api::OpenAiResponses)
        && has_token(header::UPGRADE, "websocket")
        && has_token(header::CONNECTION, "upgrade")
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13")
}

/// Answers an admitted WebSocket handshake: opens the upstream's socket, then either passes
/// its refusal on or switches the agent's connection and relays the two sockets on their own
/// task. The caller has checked [`carries`].
pub(super) async fn carry(
    mut req: Request<Incoming>,
    grant: Grant,
    authority: Arc<dyn Authority>,
    format: Api,
    relays: &tokio_util::task::TaskTracker,
) -> Response<ReplyBody> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let Some(accept) = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|key| derive_accept_key(key.as_bytes()))
    else {
        return bad_gateway(format, "the WebSocket handshake has no key");
    };
    let upstream_request = match upstream_request(&req, &grant) {
        Ok(request) => request,
        Err(why) => return bad_gateway(format, why),
    };
    // The agent's request is not needed past this point (its upgrade is in `on_upgrade`).
    drop(req);
    let connected =
        tokio_tungstenite::connect_async_with_config(upstream_request, None, true).await;
    let (upstream, handshake) = match connected {
        Ok(connected) => connected,
        Err(tungstenite::Error::Http(refused)) => {
            let headers = returned_headers(refused.headers());
            authority.observe(&grant, refused.status().as_u16(), &header_pairs(&headers));
            return passed_on(*refused, headers);
        }
        Err(e) => {
            eprintln!("authledger gateway: upstream WebSocket unreachable: {e}");
            return bad_gateway(format, "the upstream cannot be reached");
        }
    };
    let mut headers = returned_headers(handshake.headers());
    authority.observe(&grant, handshake.status().as_u16(), &header_pairs(&headers));
    for name in HANDSHAKE {
        headers.remove(name);
    }
    headers.remove(CONTENT_LENGTH);
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        return bad_gateway(format, "the WebSocket handshake has no key");
    };
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    // Tracked, so a gateway told to stop lets the socket's response in flight end and be
    // recorded (within its drain time) before it returns.
    relays.spawn(switch_and_relay(
        on_upgrade,
        upstream,
        grant.lease_id,
        authority,
    ));
    let mut reply = Response::new(ReplyBody::Own(None));
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *reply.headers_mut() = headers;
    reply
}

/// The upstream's handshake request: the grant's URL in `ws`/`wss`, the agent's end-to-end
/// headers without its own handshake ones, and the real credential.
fn upstream_request(
    req: &Request<Incoming>,
    grant: &Grant,
) -> Result<tungstenite::handshake::client::Request, &'static str> {
    const NO_PATH: &str = "the configured upstream URL cannot take this path";
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut url = grant.url_for(path_and_query).map_err(|_| NO_PATH)?;
    let scheme = match url.scheme() {
        "http" => "ws",
        "https" => "wss",
        _ => return Err(NO_PATH),
    };
    url.set_scheme(scheme).map_err(|()| NO_PATH)?;
    let mut headers = forwarded_headers(req.headers());
    for name in HANDSHAKE {
        headers.remove(name);
    }
    grant
        .authorize(&mut headers)
        .map_err(|_| "the stored credential cannot be sent in a header")?;
    let mut request = url.as_str().into_client_request().map_err(|_| NO_PATH)?;
    request.headers_mut().extend(headers);
    Ok(request)
}

/// The upstream's refusal of the upgrade (its status and body, e.g. 426 or 401) as the
/// agent's answer; nothing was generated, so nothing is metered.
fn passed_on(
    refused: tungstenite::http::Response<Option<Vec<u8>>>,
    headers: HeaderMap,
) -> Response<ReplyBody> {
    let (parts, body) = refused.into_parts();
    let mut reply = Response::new(ReplyBody::Own(body.map(Bytes::from)));
    *reply.status_mut() = parts.status;
    *reply.headers_mut() = headers;
    // The body is what tungstenite read with the headers; its length is the body's own.
    reply.headers_mut().remove(CONTENT_LENGTH);
    reply
}

/// Waits for the agent's connection to switch, then relays until the socket ends.
async fn switch_and_relay(
    on_upgrade: OnUpgrade,
    upstream: UpstreamSocket,
    lease: LeaseId,
    authority: Arc<dyn Authority>,
) {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        // The agent went away before the switch: dropping the upstream closes it.
        Err(e) => {
            eprintln!("authledger gateway: the agent's WebSocket upgrade failed: {e}");
            return;
        }
    };
    let agent = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    relay(agent, upstream, lease, authority).await;
}

/// Relays both ways at once (neither direction waits for the other) until one side closes,
/// gives the other side [`CLOSE_WAIT`] to finish, and records a request left in flight.
async fn relay(
    agent: AgentSocket,
    upstream: UpstreamSocket,
    lease: LeaseId,
    authority: Arc<dyn Authority>,
) {
    let (mut agent_tx, mut agent_rx) = agent.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let (notice_tx, mut notice_rx) = mpsc::unbounded_channel();
    let (ended_tx, ended_rx) = watch::channel(0u64);
    let mut meter = SocketMeter::new();
    {
        let up = upward(
            &mut agent_rx,
            &mut upstream_tx,
            notice_tx,
            ended_rx,
            (&lease, &authority),
        );
        let down = downward(
            &mut upstream_rx,
            &mut agent_tx,
            &mut notice_rx,
            &mut meter,
            &ended_tx,
            (&lease, &authority),
        );
        tokio::pin!(up, down);
        tokio::select! {
            () = &mut up => {
                let _ = tokio::time::timeout(CLOSE_WAIT, &mut down).await;
            }
            () = &mut down => {
                let _ = tokio::time::timeout(CLOSE_WAIT, &mut up).await;
            }
        }
    }
    // The upstream did not finish closing in time: what it sent is all there is.
    if let Some(metered) = meter.finish() {
        record_off_path(&authority, &lease, metered);
    }
}

/// Agent to upstream: every message forwarded as it comes, except a `response.create` the
/// lease may not make, which is answered (through `notices`) instead. Ends once the agent has
/// closed or gone away and the upstream has been told (see [`pass_close`]).
async fn upward(
    agent: &mut SplitStream<AgentSocket>,
    upstream: &mut SplitSink<UpstreamSocket, Message>,
    notices: mpsc::UnboundedSender<Message>,
    mut ended: watch::Receiver<u64>,
    (lease, authority): (&LeaseId, &Arc<dyn Authority>),
) {
    // Requests forwarded; `ended` counts those the meter has seen end.
    let mut sent = 0u64;
    loop {
        let message = match agent.next().await {
            Some(Ok(message)) => message,
            Some(Err(_)) | None => {
                let away = CloseFrame {
                    code: CloseCode::Away,
                    reason: "the agent went away".into(),
                };
                pass_close(upstream, Message::Close(Some(away)), sent, &mut ended).await;
                return;
            }
        };
        let request = match &message {
            Message::Text(text) => creates_response(text.as_bytes()),
            // Codex sends text; a binary message is checked the same way, so a request
            // cannot slip past admission in another frame type.
            Message::Binary(data) => creates_response(data),
            _ => false,
        };
        if request {
            if let Some(refusal) = refused(lease, authority).await {
                let _ = notices.send(Message::text(error_event(refusal)));
                continue;
            }
            sent += 1;
        }
        if let Message::Close(_) = message {
            // The agent's side answers its close at once (see `downward`).
            let _ = notices.send(Message::Close(None));
            pass_close(upstream, message, sent, &mut ended).await;
            return;
        }
        if upstream.send(message).await.is_err() {
            return;
        }
    }
}

/// Tells the upstream the agent has closed, once the requests already forwarded have ended
/// (or after [`CLOSE_WAIT`]): a response cut off by the close would be billed by the upstream
/// without ever reporting its usage (Responses reports it only at the end), so the gateway
/// lets it finish and meters it, as Codex itself does with a response it no longer wants.
async fn pass_close(
    upstream: &mut SplitSink<UpstreamSocket, Message>,
    close: Message,
    sent: u64,
    ended: &mut watch::Receiver<u64>,
) {
    let _ = tokio::time::timeout(CLOSE_WAIT, ended.wait_for(|ended| *ended >= sent)).await;
    let _ = upstream.send(close).await;
}

/// Upstream to agent: every message forwarded as it comes, each text message shown to the
/// meter after it was sent, and the gateway's own refusals slotted in between. Ends when the
/// upstream closes or breaks; if the agent has gone, the upstream is still read (not
/// forwarded) so what it sends before closing is metered.
async fn downward(
    upstream: &mut SplitStream<UpstreamSocket>,
    agent: &mut SplitSink<AgentSocket, Message>,
    notices: &mut mpsc::UnboundedReceiver<Message>,
    meter: &mut SocketMeter,
    ended: &watch::Sender<u64>,
    (lease, authority): (&LeaseId, &Arc<dyn Authority>),
) {
    let mut agent_open = true;
    let mut notices_open = true;
    loop {
        let next = tokio::select! {
            notice = notices.recv(), if notices_open => {
                match notice {
                    // The agent closed: its close is answered now (which flushes the reply
                    // tungstenite queued), while the upstream may still be finishing.
                    Some(Message::Close(_)) => {
                        if agent_open {
                            let _ = agent.close().await;
                        }
                        agent_open = false;
                    }
                    Some(notice) if agent_open => {
                        agent_open = agent.send(notice).await.is_ok();
                    }
                    Some(_) => {}
                    None => notices_open = false,
                }
                continue;
            }
            next = upstream.next() => next,
        };
        let Some(Ok(message)) = next else {
            if agent_open {
                let lost = CloseFrame {
                    code: CloseCode::Error,
                    reason: "authledger: the upstream connection was lost".into(),
                };
                let _ = agent.send(Message::Close(Some(lost))).await;
            }
            break;
        };
        let closing = matches!(message, Message::Close(_));
        // The text shares the message's buffer: nothing is copied for the meter.
        let text = match &message {
            Message::Text(text) => Some(text.clone()),
            _ => None,
        };
        if agent_open {
            agent_open = agent.send(message).await.is_ok();
        }
        if let Some(metered) = text.and_then(|t| meter.feed_message(t.as_bytes())) {
            record_off_path(authority, lease, metered);
            ended.send_modify(|ended| *ended += 1);
        }
        if closing {
            break;
        }
    }
    // Nothing more will end: a request in flight is recorded with what was seen, and a close
    // waiting on the requests in flight may go now.
    if let Some(metered) = std::mem::take(meter).finish() {
        record_off_path(authority, lease, metered);
    }
    ended.send_replace(u64::MAX);
}

/// Whether an agent's message asks for a response (a new request to admit and meter).
fn creates_response(message: &[u8]) -> bool {
    json_type(message).as_deref() == Some("response.create")
}

/// The refusal for the next request on the socket, or `None` when it may go. Runs the
/// authority on the blocking pool; an authority that cannot answer refuses (fail closed).
async fn refused(lease: &LeaseId, authority: &Arc<dyn Authority>) -> Option<Refusal> {
    let authority = Arc::clone(authority);
    let lease = lease.clone();
    let admitted = tokio::task::spawn_blocking(move || authority.admit(&lease)).await;
    match admitted {
        Ok(Ok(Admission::Go)) => None,
        Ok(Ok(Admission::Refuse(refusal))) => Some(refusal),
        Ok(Err(e)) => {
            eprintln!("authledger gateway: request refused, ledger unavailable: {e}");
            Some(Refusal::Unmeterable)
        }
        Err(_) => Some(Refusal::Unmeterable),
    }
}

/// The refusal as the error event the Responses WebSocket sends: Codex reads `status`,
/// `error` and `headers` as the HTTP error it stands for (a 429 with `retry-after`).
fn error_event(refusal: Refusal) -> String {
    let reply = ErrorReply::refuse(Api::OpenAiResponses, refusal);
    let error = serde_json::from_str::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|mut body| body.get_mut("error").map(serde_json::Value::take))
        .unwrap_or_default();
    let mut headers = serde_json::Map::new();
    if let Some(secs) = reply.retry_after_secs {
        headers.insert("retry-after".into(), json!(secs.to_string()));
    }
    json!({
        "type": "error",
        "status": reply.status,
        "error": error,
        "headers": headers,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_response_create_is_a_request() {
        assert!(creates_response(
            br#"{"type":"response.create","model":"m"}"#
        ));
        assert!(creates_response(
            br#"{"model":"m","type":"response.create"}"#
        ));
        assert!(!creates_response(br#"{"type":"response.processed"}"#));
        assert!(!creates_response(b"not json"));
    }

    #[test]
    fn a_refusal_is_the_error_event_codex_maps_to_its_http_error() {
        let event = error_event(Refusal::RateLimited {
            retry_after_secs: 90,
        });
        let event: serde_json::Value = serde_json::from_str(&event).expect("JSON");
        assert_eq!(event["type"], "error");
        assert_eq!(event["status"], 429);
        assert_eq!(event["error"]["code"], "rate_limit_exceeded");
        assert!(event["error"]["message"].is_string());
        assert_eq!(event["headers"]["retry-after"], "90");
        let event = error_event(Refusal::QuotaExhausted);
        let event: serde_json::Value = serde_json::from_str(&event).expect("JSON");
        assert_eq!(event["error"]["code"], "insufficient_quota");
        assert!(event["headers"].as_object().is_some_and(|h| h.is_empty()));
    }
}
