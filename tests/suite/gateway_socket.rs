//! Codex's WebSocket through the gateway: an agent (a tokio-tungstenite client) with a lease
//! token opens `GET /v1/responses`, the gateway carries it to a fake Responses WebSocket
//! upstream and meters each request on it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use authledger::gateway::{Admission, Metered, Outcome, Refusal, UpstreamAuth};
use authledger::types::Provider;
use authledger::vault::Secret;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::upstream::{CLOSE_SOCKET, FakeSocketUpstream, SOCKET_RATE_HEADERS, SocketReply};
use crate::gateway::{Gateway, REAL_OPENAI, TOKEN, lease};

const RESPONSES_WS: &str = include_str!("../../fixtures/gateway/openai-responses.ws.jsonl");

type Agent = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The fixture's two requests: the warm-up's events, then the real request's.
fn warmup_events() -> Vec<String> {
    RESPONSES_WS.lines().take(2).map(str::to_string).collect()
}

fn real_events() -> Vec<String> {
    RESPONSES_WS.lines().skip(2).map(str::to_string).collect()
}

/// Codex's request message; the warm-up has `generate: false`.
fn create(generate: bool) -> String {
    format!(
        r#"{{"type":"response.create","model":"gpt-5-codex","input":[],"stream":true,"generate":{generate},"client_metadata":{{}}}}"#
    )
}

async fn rig() -> (FakeSocketUpstream, Gateway) {
    rig_with(Admission::Go).await
}

async fn rig_with(admission: Admission) -> (FakeSocketUpstream, Gateway) {
    let upstream = FakeSocketUpstream::start().await;
    let gateway = Gateway::start(
        upstream.url(),
        Provider::Openai,
        UpstreamAuth::ApiKey(Secret::new(REAL_OPENAI.into())),
        admission,
        false,
    )
    .await;
    (upstream, gateway)
}

/// Opens the socket as Codex does.
async fn connect(
    gateway: &Gateway,
    token: &str,
) -> Result<(Agent, tungstenite::handshake::client::Response), tungstenite::Error> {
    let url = format!("ws://{}/v1/responses", gateway.addr);
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert(
        "openai-beta",
        "responses_websockets=2026-02-06".parse().unwrap(),
    );
    headers.insert("originator", "codex_cli_rs".parse().unwrap());
    guard(tokio_tungstenite::connect_async(request)).await
}

/// Waits for `future`, failing instead of hanging when the gateway holds a message back (the
/// limit is a guard, never a measure).
async fn guard<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the gateway relays without waiting")
}

/// The next text message the agent receives.
async fn next_text(agent: &mut Agent) -> String {
    loop {
        match guard(agent.next()).await {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

async fn next_message(upstream: &mut FakeSocketUpstream) -> String {
    guard(upstream.messages.recv()).await.expect("a message")
}

fn figures(m: &Metered) -> (Option<&str>, u64, u64, u64, u64, Outcome) {
    (
        m.upstream_id.as_deref(),
        m.input,
        m.cache_read,
        m.output,
        m.reasoning,
        m.outcome,
    )
}

#[tokio::test]
async fn websocket_is_carried_with_the_real_key_and_each_request_recorded() {
    let (mut upstream, mut gateway) = rig().await;
    upstream.reply(SocketReply::Events(warmup_events()));
    upstream.reply(SocketReply::Events(real_events()));
    let (mut agent, handshake) = connect(&gateway, TOKEN).await.expect("upgraded");
    assert_eq!(handshake.status(), 101);
    // The upstream's rate-limit headers reach the agent and provider health.
    for (name, value) in SOCKET_RATE_HEADERS {
        assert_eq!(handshake.headers()[name], value, "{name}");
    }
    {
        let observed = gateway.authority.observed.lock().unwrap();
        let (status, headers) = observed.first().expect("the handshake observed");
        assert_eq!(*status, 101);
        let used = headers
            .iter()
            .find(|(k, _)| k == "x-codex-primary-used-percent");
        assert_eq!(used.map(|(_, v)| v.as_str()), Some("42.5"));
    }

    let seen = upstream.seen.recv().await.unwrap();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path_and_query, "/v1/responses");
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {REAL_OPENAI}").as_str()
    );
    assert_eq!(
        seen.headers["openai-beta"],
        "responses_websockets=2026-02-06"
    );
    assert_eq!(seen.headers["originator"], "codex_cli_rs");
    for (name, value) in &seen.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(!value.contains(TOKEN), "{name} carries the lease token");
    }

    // The warm-up, then the real request, on the same socket.
    agent.send(Message::text(create(false))).await.unwrap();
    for event in warmup_events() {
        assert_eq!(next_text(&mut agent).await, event);
    }
    let (lease_id, warmup) = gateway.record().await;
    assert_eq!(lease_id, lease());
    assert_eq!(
        figures(&warmup),
        (Some("resp_warmup_0001"), 4200, 0, 0, 0, Outcome::Completed)
    );
    agent.send(Message::text(create(true))).await.unwrap();
    for event in real_events() {
        assert_eq!(next_text(&mut agent).await, event);
    }
    let (_, real) = gateway.record().await;
    assert_eq!(
        figures(&real),
        (
            Some("resp_real_0002"),
            4310 - 4096,
            4096,
            57,
            32,
            Outcome::Completed
        )
    );
    assert_eq!(real.model.as_deref(), Some("gpt-5-codex"));
    // The upstream got both requests unchanged; each was admitted (after the handshake).
    assert_eq!(next_message(&mut upstream).await, create(false));
    assert_eq!(next_message(&mut upstream).await, create(true));
    assert_eq!(gateway.authority.admits.load(Ordering::SeqCst), 3);

    agent.close(None).await.unwrap();
    let end = guard(agent.next()).await;
    assert!(end.as_ref().is_none_or(|m| m.is_ok()), "{end:?}");
    assert!(gateway.records.try_recv().is_err(), "nothing else recorded");
}

#[tokio::test]
async fn websocket_events_reach_the_agent_one_by_one() {
    let (upstream, mut gateway) = rig().await;
    let (reply, feed) = SocketReply::stream();
    upstream.reply(reply);
    let (mut agent, _) = connect(&gateway, TOKEN).await.expect("upgraded");
    agent.send(Message::text(create(true))).await.unwrap();
    for event in real_events() {
        feed.send(event.clone()).unwrap();
        // Each event arrives before the upstream sends the next.
        assert_eq!(next_text(&mut agent).await, event);
    }
    let (_, m) = gateway.record().await;
    assert_eq!(m.upstream_id.as_deref(), Some("resp_real_0002"));
    assert_eq!(m.outcome, Outcome::Completed);
}

#[tokio::test]
async fn websocket_closed_by_the_agent_mid_response_is_charged_what_the_upstream_reports() {
    let (mut upstream, mut gateway) = rig().await;
    let (reply, feed) = SocketReply::stream();
    upstream.reply(reply);
    let (mut agent, _) = connect(&gateway, TOKEN).await.expect("upgraded");
    agent.send(Message::text(create(true))).await.unwrap();
    let events = real_events();
    let (last, first) = events.split_last().unwrap();
    for event in first {
        feed.send(event.clone()).unwrap();
        assert_eq!(next_text(&mut agent).await, *event);
    }
    // The agent closes mid-response and its close is answered at once; the upstream, told
    // only once the response has ended, still finishes it and reports its usage.
    agent.close(None).await.unwrap();
    match guard(agent.next()).await {
        Some(Ok(Message::Close(_))) | None => {}
        other => panic!("expected the close, got {other:?}"),
    }
    assert_eq!(next_message(&mut upstream).await, create(true));
    feed.send(last.clone()).unwrap();
    let (_, m) = gateway.record().await;
    assert_eq!(
        figures(&m),
        (
            Some("resp_real_0002"),
            4310 - 4096,
            4096,
            57,
            32,
            Outcome::Completed
        )
    );
}

#[tokio::test]
async fn websocket_cut_by_the_upstream_mid_response_records_what_was_seen() {
    let (upstream, mut gateway) = rig().await;
    let (reply, feed) = SocketReply::stream();
    upstream.reply(reply);
    let (mut agent, _) = connect(&gateway, TOKEN).await.expect("upgraded");
    agent.send(Message::text(create(true))).await.unwrap();
    let events = real_events();
    for event in &events[..3] {
        feed.send(event.clone()).unwrap();
        assert_eq!(next_text(&mut agent).await, *event);
    }
    feed.send(CLOSE_SOCKET.to_string()).unwrap();
    // The agent sees the upstream's close.
    match guard(agent.next()).await {
        Some(Ok(Message::Close(_))) | None => {}
        other => panic!("expected the close, got {other:?}"),
    }
    let (_, m) = gateway.record().await;
    assert_eq!(m.upstream_id.as_deref(), Some("resp_real_0002"));
    assert_eq!(m.outcome, Outcome::Truncated);
}

#[tokio::test]
async fn websocket_with_an_unknown_token_gets_401_and_the_upstream_sees_no_connection() {
    let (mut upstream, gateway) = rig().await;
    let refused = connect(&gateway, "not-a-lease-token").await;
    let Err(tungstenite::Error::Http(response)) = refused else {
        panic!("expected an HTTP refusal, got {refused:?}");
    };
    assert_eq!(response.status(), 401);
    let body: serde_json::Value =
        serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(upstream.seen.try_recv().is_err(), "no upstream connection");
    assert_eq!(gateway.authority.admits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn websocket_request_refused_by_admission_gets_the_error_event_and_is_not_forwarded() {
    let (mut upstream, mut gateway) = rig().await;
    upstream.reply(SocketReply::Events(warmup_events()));
    upstream.reply(SocketReply::Events(real_events()));
    // The handshake and the warm-up are admitted, the next request is not, then one is.
    gateway.authority.admissions.lock().unwrap().extend([
        Admission::Go,
        Admission::Go,
        Admission::Refuse(Refusal::RateLimited {
            retry_after_secs: 1234,
        }),
        Admission::Go,
    ]);
    let (mut agent, _) = connect(&gateway, TOKEN).await.expect("upgraded");
    agent.send(Message::text(create(false))).await.unwrap();
    for event in warmup_events() {
        assert_eq!(next_text(&mut agent).await, event);
    }
    gateway.record().await;

    agent.send(Message::text(create(true))).await.unwrap();
    let event: serde_json::Value = serde_json::from_str(&next_text(&mut agent).await).unwrap();
    assert_eq!(event["type"], "error");
    assert_eq!(event["status"], 429);
    assert_eq!(event["error"]["code"], "rate_limit_exceeded");
    assert_eq!(event["headers"]["retry-after"], "1234");

    // The socket stays open: the next request goes through, and the upstream never got the
    // refused one.
    agent.send(Message::text(create(true))).await.unwrap();
    for event in real_events() {
        assert_eq!(next_text(&mut agent).await, event);
    }
    let (_, m) = gateway.record().await;
    assert_eq!(m.upstream_id.as_deref(), Some("resp_real_0002"));
    assert_eq!(next_message(&mut upstream).await, create(false));
    assert_eq!(next_message(&mut upstream).await, create(true));
    assert!(
        upstream.messages.try_recv().is_err(),
        "the refused one was sent"
    );
    assert_eq!(gateway.authority.admits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn websocket_refused_by_the_upstream_passes_its_answer_on() {
    let (upstream, mut gateway) = rig().await;
    let body = r#"{"error":{"message":"websockets are not enabled","code":"upgrade_required"}}"#;
    upstream.refuse(426, body);
    let refused = connect(&gateway, TOKEN).await;
    let Err(tungstenite::Error::Http(response)) = refused else {
        panic!("expected an HTTP refusal, got {refused:?}");
    };
    assert_eq!(response.status(), 426);
    assert_eq!(response.body().as_deref(), Some(body.as_bytes()));
    let observed = gateway.authority.observed.lock().unwrap().clone();
    assert_eq!(observed.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [426]);
    assert!(gateway.records.try_recv().is_err(), "nothing metered");
}

#[tokio::test]
async fn websocket_to_an_unreachable_upstream_gets_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = url::Url::parse(&format!("http://{}", closed.local_addr().unwrap())).unwrap();
    drop(closed);
    let gateway = Gateway::start(
        url,
        Provider::Openai,
        UpstreamAuth::ApiKey(Secret::new(REAL_OPENAI.into())),
        Admission::Go,
        false,
    )
    .await;
    let refused = connect(&gateway, TOKEN).await;
    let Err(tungstenite::Error::Http(response)) = refused else {
        panic!("expected an HTTP refusal, got {refused:?}");
    };
    assert_eq!(response.status(), 502);
}
