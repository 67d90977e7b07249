//! The gateway's proxy, end to end on 127.0.0.1: an agent (a plain HTTP client) with a lease
//! token, the gateway, and a fake upstream started by each test; a fake `Authority` maps tokens
//! to grants and collects what is recorded.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authledger::gateway::{
    Admission, Authority, GatewayError, Grant, Metered, Outcome, Refusal, UpstreamAuth, serve,
};
use authledger::types::{LeaseId, Provider};
use authledger::vault::Secret;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::common::upstream::{FakeUpstream, Reply};

const ANTHROPIC_SSE: &str = include_str!("../../fixtures/gateway/anthropic-messages.sse");
const RESPONSES_SSE: &str = include_str!("../../fixtures/gateway/openai-responses.sse");

pub(crate) const TOKEN: &str = "alt-lease-token-0123456789abcdef";
const REAL_KEY: &str = "sk-ant-api03-REAL-KEY-abcdef0123456789";
const REAL_OAUTH: &str = "sk-ant-oat01-REAL-OAUTH-abcdef0123456789";
pub(crate) const REAL_OPENAI: &str = "sk-proj-REAL-OPENAI-abcdef0123456789";

/// One `observe` call: the upstream's status and headers.
pub(crate) type Observed = (u16, Vec<(String, String)>);

/// An authority over one token, recording every call.
pub(crate) struct FakeAuthority {
    grants: HashMap<String, Grant>,
    admission: Admission,
    /// Answers to the next `admit` calls, before `admission` takes over.
    pub(crate) admissions: Mutex<VecDeque<Admission>>,
    broken: bool,
    pub(crate) resolves: AtomicUsize,
    pub(crate) admits: AtomicUsize,
    records: mpsc::UnboundedSender<(LeaseId, Metered)>,
    /// Every status and header list `observe` was given.
    pub(crate) observed: Mutex<Vec<Observed>>,
}

impl Authority for FakeAuthority {
    fn resolve(&self, token: &str) -> Result<Option<Grant>, GatewayError> {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        if self.broken {
            return Err(GatewayError::Unavailable("disk I/O error".into()));
        }
        Ok(self.grants.get(token).cloned())
    }

    fn admit(&self, _lease: &LeaseId) -> Result<Admission, GatewayError> {
        self.admits.fetch_add(1, Ordering::SeqCst);
        let next = self.admissions.lock().unwrap().pop_front();
        Ok(next.unwrap_or(self.admission))
    }

    fn record(&self, lease: &LeaseId, metered: Metered) -> Result<(), GatewayError> {
        let _ = self.records.send((lease.clone(), metered));
        Ok(())
    }

    fn observe(&self, _grant: &Grant, status: u16, headers: &[(String, String)]) {
        self.observed
            .lock()
            .unwrap()
            .push((status, headers.to_vec()));
    }
}

pub(crate) fn lease() -> LeaseId {
    LeaseId::from_random([7; 10])
}

/// A gateway in front of `upstream` with `TOKEN` granted `credential` for `provider`.
struct Rig {
    upstream: FakeUpstream,
    gateway: SocketAddr,
    records: mpsc::UnboundedReceiver<(LeaseId, Metered)>,
    authority: Arc<FakeAuthority>,
    _stop: oneshot::Sender<()>,
}

/// A gateway on 127.0.0.1 whose authority grants `TOKEN` for `upstream`.
pub(crate) struct Gateway {
    pub(crate) addr: SocketAddr,
    pub(crate) records: mpsc::UnboundedReceiver<(LeaseId, Metered)>,
    pub(crate) authority: Arc<FakeAuthority>,
    _stop: oneshot::Sender<()>,
}

impl Gateway {
    pub(crate) async fn start(
        upstream: url::Url,
        provider: Provider,
        credential: UpstreamAuth,
        admission: Admission,
        broken: bool,
    ) -> Gateway {
        let grant = Grant::new(lease(), provider, upstream, credential);
        let (records_tx, records) = mpsc::unbounded_channel();
        let authority = Arc::new(FakeAuthority {
            grants: HashMap::from([(TOKEN.to_string(), grant)]),
            admission,
            admissions: Mutex::default(),
            broken,
            resolves: AtomicUsize::new(0),
            admits: AtomicUsize::new(0),
            records: records_tx,
            observed: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let dyn_authority: Arc<dyn Authority> = authority.clone();
        tokio::spawn(serve(listener, dyn_authority, async {
            let _ = stopped.await;
        }));
        Gateway {
            addr,
            records,
            authority,
            _stop: stop,
        }
    }

    /// The next usage record (the wait only guards against a hang).
    pub(crate) async fn record(&mut self) -> (LeaseId, Metered) {
        tokio::time::timeout(Duration::from_secs(20), self.records.recv())
            .await
            .expect("a record")
            .expect("the authority is alive")
    }
}

impl Rig {
    async fn start(provider: Provider, credential: UpstreamAuth) -> Rig {
        Rig::with(provider, credential, Admission::Go, false).await
    }

    async fn with(
        provider: Provider,
        credential: UpstreamAuth,
        admission: Admission,
        broken: bool,
    ) -> Rig {
        let upstream = FakeUpstream::start().await;
        let gateway = Gateway::start(upstream.url(), provider, credential, admission, broken).await;
        Rig {
            upstream,
            gateway: gateway.addr,
            records: gateway.records,
            authority: gateway.authority,
            _stop: gateway._stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway)
    }

    /// The next usage record (the wait only guards against a hang).
    async fn record(&mut self) -> (LeaseId, Metered) {
        tokio::time::timeout(Duration::from_secs(20), self.records.recv())
            .await
            .expect("a record")
            .expect("the authority is alive")
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn anthropic_json() -> Vec<u8> {
    br#"{"id":"msg_json_1","type":"message","model":"claude-x","content":[],
"usage":{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,
"output_tokens":7}}"#
        .to_vec()
}

fn json_reply() -> Reply {
    Reply::Whole {
        status: 200,
        content_type: "application/json",
        body: anthropic_json(),
    }
}

/// No header the upstream got carries the lease token.
fn assert_no_token(seen: &crate::common::upstream::Seen) {
    for (name, value) in &seen.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(!value.contains(TOKEN), "{name} carries the lease token");
    }
}

/// Waits for `future`, failing the test instead of hanging when the gateway holds a stream
/// back (the limit is a guard, never a measure).
async fn guard<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the gateway forwards without waiting for the upstream's end")
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// Reads one event's bytes from a streamed response (however the transport cuts them).
async fn next_event(response: &mut reqwest::Response, event: &str) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < event.len() {
        // The wait only guards against a gateway that holds the stream back.
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("the event arrives before the upstream sends the next")
            .unwrap()
            .expect("the event");
        got.extend_from_slice(&chunk);
    }
    assert_eq!(String::from_utf8_lossy(&got), event);
    got
}

/// The SSE fixture cut into whole events.
fn events(sse: &str) -> Vec<String> {
    sse.split_inclusive("\n\n").map(str::to_string).collect()
}

#[tokio::test]
async fn upstream_gets_the_real_api_key_and_the_agents_request_unchanged() {
    let mut rig = Rig::start(
        Provider::Claude,
        UpstreamAuth::ApiKey(Secret::new(REAL_KEY.into())),
    )
    .await;
    rig.upstream.reply(json_reply());
    let body = r#"{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hé"}]}"#;
    let response = client()
        .post(rig.url("/v1/messages?beta=true"))
        .header("x-api-key", TOKEN)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "fine-grained-tool-streaming-2025-05-14")
        .header("x-stainless-lang", "js")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "for this connection only")
        .header("accept-encoding", "gzip, br")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        anthropic_json().len().to_string().as_str()
    );
    assert_eq!(response.bytes().await.unwrap(), anthropic_json());

    let seen = rig.upstream.seen.recv().await.unwrap();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path_and_query, "/v1/messages?beta=true");
    assert_eq!(seen.headers["x-api-key"], REAL_KEY);
    assert!(seen.headers.get("authorization").is_none());
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        seen.headers["anthropic-beta"],
        "fine-grained-tool-streaming-2025-05-14"
    );
    assert_eq!(seen.headers["x-stainless-lang"], "js");
    assert!(
        seen.headers.get("x-hop").is_none(),
        "hop-by-hop header forwarded"
    );
    assert_eq!(seen.headers["accept-encoding"], "identity");
    assert_eq!(seen.body, body.as_bytes());
    assert_no_token(&seen);
}

#[tokio::test]
async fn oauth_grant_goes_as_bearer_with_the_agents_betas() {
    let mut rig = Rig::start(
        Provider::Claude,
        UpstreamAuth::OAuth(Secret::new(REAL_OAUTH.into())),
    )
    .await;
    rig.upstream.reply(json_reply());
    rig.upstream.reply(json_reply());
    let betas = "oauth-2025-04-20,interleaved-thinking-2025-05-14";
    client()
        .post(rig.url("/v1/messages"))
        .bearer_auth(TOKEN)
        .header("anthropic-beta", betas)
        .body("{}")
        .send()
        .await
        .unwrap();
    let seen = rig.upstream.seen.recv().await.unwrap();
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {REAL_OAUTH}").as_str()
    );
    assert!(seen.headers.get("x-api-key").is_none());
    assert_eq!(seen.headers["anthropic-beta"], betas);
    assert_no_token(&seen);

    // An agent that sent the token as a key and no OAuth beta still reaches the API as OAuth.
    client()
        .post(rig.url("/v1/messages"))
        .header("x-api-key", TOKEN)
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .body("{}")
        .send()
        .await
        .unwrap();
    let seen = rig.upstream.seen.recv().await.unwrap();
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {REAL_OAUTH}").as_str()
    );
    assert_eq!(
        seen.headers["anthropic-beta"],
        "interleaved-thinking-2025-05-14,oauth-2025-04-20"
    );
    assert_no_token(&seen);
}

#[tokio::test]
async fn openai_key_goes_as_bearer() {
    let mut rig = Rig::start(
        Provider::Openai,
        UpstreamAuth::ApiKey(Secret::new(REAL_OPENAI.into())),
    )
    .await;
    rig.upstream.reply(json_reply());
    client()
        .post(rig.url("/v1/responses"))
        .bearer_auth(TOKEN)
        .header("openai-beta", "responses=experimental")
        .body("{}")
        .send()
        .await
        .unwrap();
    let seen = rig.upstream.seen.recv().await.unwrap();
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {REAL_OPENAI}").as_str()
    );
    assert!(seen.headers.get("x-api-key").is_none());
    assert_eq!(seen.headers["openai-beta"], "responses=experimental");
    assert_no_token(&seen);
}

#[tokio::test]
async fn anthropic_sse_reaches_the_agent_event_by_event_and_records_the_last_delta() {
    let mut rig = Rig::start(
        Provider::Claude,
        UpstreamAuth::ApiKey(Secret::new(REAL_KEY.into())),
    )
    .await;
    let (reply, upstream) = Reply::stream("text/event-stream");
    rig.upstream.reply(reply);
    let events = events(ANTHROPIC_SSE);
    let (first, rest) = events.split_first().unwrap();
    upstream.send(Bytes::from(first.clone())).unwrap();

    let mut response = guard(
        client()
            .post(rig.url("/v1/messages"))
            .header("x-api-key", TOKEN)
            .body("{}")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    // The first event reaches the agent while the upstream has not sent the others.
    let mut received = next_event(&mut response, first).await;
    for event in rest {
        upstream.send(Bytes::from(event.clone())).unwrap();
        // Each event is forwarded as it comes, before the upstream sends the next.
        received.extend(next_event(&mut response, event).await);
    }
    drop(upstream);
    assert!(response.chunk().await.unwrap().is_none());
    assert_eq!(received, ANTHROPIC_SSE.as_bytes());

    let (lease_id, m) = rig.record().await;
    assert_eq!(lease_id, lease());
    assert_eq!(
        m.upstream_id.as_deref(),
        Some("msg_01XFDUDYJgAACzvnptvVoYEL")
    );
    assert_eq!(m.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(
        (m.input, m.output, m.cache_creation, m.cache_read, m.outcome),
        (472, 95, 1830, 12044, Outcome::Completed)
    );
}

#[tokio::test]
async fn json_response_is_metered() {
    let mut rig = Rig::start(
        Provider::Claude,
        UpstreamAuth::ApiKey(Secret::new(REAL_KEY.into())),
    )
    .await;
    rig.upstream.reply(json_reply());
    let response = client()
        .post(rig.url("/v1/messages"))
        .header("x-api-key", TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    response.bytes().await.unwrap();
    let (_, m) = rig.record().await;
    assert_eq!(m.upstream_id.as_deref(), Some("msg_json_1"));
    assert_eq!(
        (m.input, m.output, m.cache_creation, m.cache_read, m.outcome),
        (11, 7, 3, 5, Outcome::Completed)
    );
}

#[tokio::test]
async fn openai_responses_stream_is_metered_from_response_completed() {
    let mut rig = Rig::start(
        Provider::Openai,
        UpstreamAuth::ApiKey(Secret::new(REAL_OPENAI.into())),
    )
    .await;
    let (reply, upstream) = Reply::stream("text/event-stream");
    rig.upstream.reply(reply);
    for event in events(RESPONSES_SSE) {
        upstream.send(Bytes::from(event)).unwrap();
    }
    drop(upstream);
    let response = client()
        .post(rig.url("/v1/responses"))
        .bearer_auth(TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.bytes().await.unwrap(), RESPONSES_SSE.as_bytes());
    let (_, m) = rig.record().await;
    assert_eq!(
        m.upstream_id.as_deref(),
        Some("resp_68af4030592c81938ec0a5fbab4a3e9f05438e46b5f69a3b")
    );
    assert_eq!(
        (m.input, m.cache_read, m.output, m.reasoning, m.outcome),
        (5123 - 4096, 4096, 311, 256, Outcome::Completed)
    );
}

#[tokio::test]
async fn unknown_token_gets_401_in_the_providers_format_and_nothing_is_forwarded() {
    let mut rig = Rig::start(
        Provider::Claude,
        UpstreamAuth::ApiKey(Secret::new(REAL_KEY.into())),
    )
    .await;
    let response = client()
        .post(rig.url("/v1/messages"))
        .header("x-api-key", "not-a-lease-token")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = json(response).await;
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");

    for path in ["/v1/responses", "/v1/chat/completions"] {
        let response = client()
            .post(rig.url(path))
            .bearer_auth("not-a-lease-token")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let body: serde_json::Value = json(response).await;
        assert_eq!(body["error"]["code"], "invalid_api_key", "{path}");
    }
    // No token at all is refused the same way.
    let response = client()
        .post(rig.url("/v1/messages"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(rig.upstream.seen.try_recv().is_err(), "nothing forwarded");
}

#[tokio::test]
async fn failing_authority_gets_503_and_nothing_is_forwarded() {
    let mut rig = Rig::with(
        Provider::Claude,
        UpstreamAuth::ApiKey(Secret::new(REAL_KEY.into())),
        Admission::Go,
        true,
    )
    .await;
    rig.upstream.reply(json_reply());
    let response = client()
        .post(rig.url("/v1/messages"))
        .header("x-api-key", TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = json(response).await;
    assert_eq!(body["error"]["type"], "api_error");
    assert_eq!(rig.authority.resolves.load(Ordering::SeqCst), 1);

    let response = client()
        .post(rig.url("/v1/responses"))
        .bearer_auth(TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = json(response).await;
    assert!(body["error"]["message"].is_string());
    assert!(rig.upstream.seen.try_recv().is_err(), "nothing forwarded");
}

#[tokio::test]
async fn refused_admission_gets_the_providers_429_with_retry_after() {
    let mut rig = Rig::with(
        Provider::Claude,
        UpstreamAuth::ApiKey(Secret::new(REAL_KEY.into())),
        Admission::Refuse(Refusal::RateLimited {
            retry_after_secs: 1234,
        }),
        false,
    )
    .await;
    rig.upstream.reply(json_reply());
    let response = client()
        .post(rig.url("/v1/messages"))
        .header("x-api-key", TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1234");
    let body: serde_json::Value = json(response).await;
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(rig.upstream.seen.try_recv().is_err(), "nothing forwarded");
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_recorded_as_truncated() {
    let mut rig = Rig::start(
        Provider::Claude,
        UpstreamAuth::ApiKey(Secret::new(REAL_KEY.into())),
    )
    .await;
    let (reply, upstream) = Reply::stream("text/event-stream");
    rig.upstream.reply(reply);
    let events = events(ANTHROPIC_SSE);
    upstream.send(Bytes::from(events[0].clone())).unwrap();

    let mut agent = tokio::net::TcpStream::connect(rig.gateway).await.unwrap();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {TOKEN}\r\n\
         content-length: 2\r\n\r\n{{}}"
    );
    agent.write_all(request.as_bytes()).await.unwrap();
    // Read until the first event has arrived, then go away with the stream open.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("message_start\"") {
        let n = guard(agent.read(&mut buf)).await.unwrap();
        assert!(n > 0, "the gateway closed early");
        got.extend_from_slice(&buf[..n]);
    }
    drop(agent);

    let (_, m) = rig.record().await;
    assert_eq!(m.outcome, Outcome::Truncated);
    assert_eq!(
        m.upstream_id.as_deref(),
        Some("msg_01XFDUDYJgAACzvnptvVoYEL")
    );
    assert_eq!((m.input, m.output), (472, 2));
    drop(upstream);
}

#[tokio::test]
async fn an_upgrade_the_gateway_cannot_meter_is_refused_and_nothing_forwarded() {
    let mut rig = Rig::start(
        Provider::Openai,
        UpstreamAuth::ApiKey(Secret::new(REAL_OPENAI.into())),
    )
    .await;
    rig.upstream.reply(json_reply());
    // HTTP/2 in clear text, and a WebSocket on a path whose socket is not metered.
    let upgrades = [("/v1/responses", "h2c"), ("/v1/realtime", "websocket")];
    for (path, protocol) in upgrades {
        let response = client()
            .get(rig.url(path))
            .bearer_auth(TOKEN)
            .header("connection", "Upgrade")
            .header("upgrade", protocol)
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .send()
            .await
            .unwrap();
        // A path the gateway does not meter is not forwarded at all (404); an upgrade it
        // cannot carry on a metered path gets 426, which makes Codex fall back to HTTP.
        let (status, says) = if path == "/v1/responses" {
            (426, "only a WebSocket on /v1/responses")
        } else {
            (404, "is not forwarded")
        };
        assert_eq!(response.status(), status, "{path} {protocol}");
        let message = json(response).await["error"]["message"].to_string();
        assert!(message.contains(says), "{message}");
    }
    assert!(rig.upstream.seen.try_recv().is_err(), "nothing forwarded");
}

#[tokio::test]
async fn only_metered_or_free_paths_are_forwarded() {
    let mut rig = Rig::start(
        Provider::Claude,
        UpstreamAuth::ApiKey(Secret::new(REAL_KEY.into())),
    )
    .await;
    for path in [
        "/v1/messages/batches",
        "/v1/complete",
        "/v1/embeddings",
        "/responses",
    ] {
        let response = client()
            .post(rig.url(path))
            .header("x-api-key", TOKEN)
            .header("anthropic-version", "2023-06-01")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body = json(response).await;
        assert_eq!(body["type"], "error", "{path}: {body}");
    }
    // Dot segments, sent raw (an HTTP client would resolve them before sending): refused, not
    // resolved into the metered path on the way to the upstream.
    for path in ["/x/../v1/messages", "/x/%2e%2E/v1/messages"] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(rig.gateway).await.unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nx-api-key: {TOKEN}\r\n\
             content-length: 2\r\nconnection: close\r\n\r\n{{}}"
        );
        raw.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        raw.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
    }
    assert!(
        rig.upstream.seen.try_recv().is_err(),
        "an unmetered path was forwarded"
    );
    // Counting tokens costs nothing: it is passed through.
    rig.upstream.reply(Reply::Whole {
        status: 200,
        content_type: "application/json",
        body: br#"{"input_tokens":12}"#.to_vec(),
    });
    let response = client()
        .post(rig.url("/v1/messages/count_tokens"))
        .header("x-api-key", TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = rig.upstream.seen.recv().await.unwrap();
    assert_eq!(seen.path_and_query, "/v1/messages/count_tokens");
    assert_eq!(seen.headers["x-api-key"], REAL_KEY);
}

#[tokio::test]
async fn a_streamed_chat_completion_is_asked_for_its_usage_and_metered() {
    let mut rig = Rig::start(
        Provider::Openai,
        UpstreamAuth::ApiKey(Secret::new(REAL_OPENAI.into())),
    )
    .await;
    let stream = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",",
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-x\",",
        "\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":4,\"total_tokens\":25}}\n\n",
        "data: [DONE]\n\n",
    );
    rig.upstream.reply(Reply::Whole {
        status: 200,
        content_type: "text/event-stream",
        body: stream.as_bytes().to_vec(),
    });
    // The agent asked for a stream without usage, with its own stream options.
    let asked = r#"{"model":"gpt-x","stream":true,"stream_options":{"x":1},"messages":[]}"#;
    let response = client()
        .post(rig.url("/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(asked)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let seen = rig.upstream.seen.recv().await.unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true, "{sent}");
    assert_eq!(
        sent["stream_options"]["x"], 1,
        "the agent's own options are kept"
    );
    assert_eq!(sent["messages"], serde_json::json!([]));
    let (_, m) = rig.record().await;
    assert_eq!((m.input, m.output), (21, 4));
}
