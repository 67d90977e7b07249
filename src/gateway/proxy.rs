//! The HTTP proxy: lease token in, real credential out, every response streamed back as it
//! arrives and metered on the way.
//!
//! For each request: the agent's token is taken from `x-api-key` or `Authorization: Bearer`
//! (both are removed), the [`Authority`] resolves it to a [`Grant`] and admits the lease, and
//! the request (method, path, query, every other end-to-end header, the body streamed) goes to
//! the grant's upstream with the real credential and `accept-encoding: identity` (the meter
//! reads plain bytes). The response comes back frame by frame through `ReplyBody`, which
//! meters it and records the usage when it ends. Refusals are answered in the provider's own
//! format: 401 for an unknown token, the authority's 429, and 503 (nothing forwarded) when the
//! authority cannot answer. An admitted WebSocket upgrade on `/v1/responses` is handed to
//! `socket.rs`; any other upgrade is refused with 426.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body as _, Incoming};
use hyper::header::{
    self, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
    RETRY_AFTER,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::authority::{Admission, Authority, Decided, GatewayError, Grant};
use super::errors::{ErrorReply, Refusal};
use super::latency::Latency;
use super::socket;
use super::tap::{ReplyBody, Tap};
use super::usage::{Api, Meter};
use crate::types::Provider;

/// How long requests still running when the gateway is told to stop may take to finish; a
/// stream cut off after that is charged what it had carried.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves the gateway on `listener` until `shutdown` completes, then stops taking requests,
/// closes idle connections and lets requests already running finish (up to 10 s) before it
/// returns. It binds nothing itself: the host binds 127.0.0.1.
pub async fn serve(
    listener: TcpListener,
    authority: Arc<dyn Authority>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()?;
    let relays = tokio_util::task::TaskTracker::new();
    let state = Arc::new(State {
        authority,
        client,
        relays: relays.clone(),
        latency: Latency::default(),
    });
    let mut shutdown = std::pin::pin!(shutdown);
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections as they go, so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A full file table or an aborted handshake ends one connection, not the
                // gateway.
                Err(e) => {
                    eprintln!("authledger gateway: accept failed: {e}");
                    // Out of file descriptors, retrying at once would spin: give them a moment.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let mut stop = stop.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(state.handle(req).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            // A connection that fails (the agent went away) ends only itself.
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.changed() => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Whatever is still running after the grace period is dropped: its meter charges what it
    // saw.
    // WebSockets relayed on their own tasks (their HTTP connection ended at the 101) drain
    // in the same time.
    relays.close();
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
        relays.wait().await;
    })
    .await;
    connections.shutdown().await;
    Ok(())
}

struct State {
    authority: Arc<dyn Authority>,
    client: reqwest::Client,
    /// The WebSocket relays, running past their connections' upgrade.
    relays: tokio_util::task::TaskTracker,
    /// How long forwarded requests took to their response's headers (`/metrics` only).
    latency: Latency,
}

/// What the authority said about a request.
enum Decision {
    Forward(Grant),
    Refuse(Api, Refusal),
}

impl State {
    async fn handle(&self, req: Request<Incoming>) -> Response<ReplyBody> {
        let arrived = std::time::Instant::now();
        // The ledger's figures, for a scraper on the loopback listener: read-only, no token,
        // nothing forwarded.
        if req.uri().path() == "/metrics"
            && req.method() == hyper::Method::GET
            && let Some(response) = self.metrics().await
        {
            return response;
        }
        let path = req.uri().path();
        let api = Api::for_path(path);
        let format = api.unwrap_or_else(|| error_format(path, req.headers()));
        // Only what is metered (or costs nothing) is forwarded: anything else would spend
        // unmetered (invariant 7). A path with dot segments is refused before it could be
        // normalised into a metered one on the way out.
        if has_dot_segment(req.uri().path()) || (api.is_none() && !costs_nothing(path)) {
            return not_metered(format, path);
        }
        let Some(token) = agent_token(req.headers()) else {
            return refuse(format, Refusal::UnknownToken);
        };
        let decided = match self.authority.decide_now(&token) {
            Some(decided) => decision(decided, format),
            None => {
                let authority = Arc::clone(&self.authority);
                tokio::task::spawn_blocking(move || decision(authority.decide(&token), format))
                    .await
                    .unwrap_or_else(|_| Err(GatewayError::Unavailable("authority panicked".into())))
            }
        };
        let grant = match decided {
            Ok(Decision::Forward(grant)) => grant,
            Ok(Decision::Refuse(format, refusal)) => return refuse(format, refusal),
            // The account's own credential cannot be used (logged out, a refresh the
            // provider refused): the agent's token is fine, the ledger's is not. Said as such,
            // not as a storage failure.
            Err(GatewayError::Ledger(e)) if e.exit_code() == crate::exit::AUTH => {
                eprintln!("authledger gateway: request refused: {e}");
                return credential_unusable(format, &e);
            }
            Err(e) => {
                eprintln!("authledger gateway: request refused, ledger unavailable: {e}");
                return refuse(format, Refusal::Unmeterable);
            }
        };
        let format = api.unwrap_or(match grant.provider {
            Provider::Claude => Api::AnthropicMessages,
            _ => Api::OpenAiResponses,
        });
        if is_upgrade(req.headers()) {
            if socket::carries(&req) {
                return socket::carry(
                    req,
                    grant,
                    Arc::clone(&self.authority),
                    format,
                    &self.relays,
                )
                .await;
            }
            // Any other upgrade (HTTP/2 in clear text, a WebSocket on a path the gateway
            // cannot meter) is refused; 426 makes clients such as Codex fall back to HTTP.
            let reply = ErrorReply::openai(
                426,
                "invalid_request_error",
                None,
                "authledger: only a WebSocket on /v1/responses is carried; use HTTP",
            );
            return reply_with(reply);
        }
        let response = self.forward(req, grant, api, format).await;
        self.latency.observe(arrived.elapsed());
        response
    }

    /// `GET /metrics`: the authority's OpenMetrics text, computed on the blocking pool;
    /// `None` when the authority has none.
    async fn metrics(&self) -> Option<Response<ReplyBody>> {
        let authority = Arc::clone(&self.authority);
        let extra = self.latency.render();
        let text = tokio::task::spawn_blocking(move || authority.metrics(&extra))
            .await
            .ok()??;
        let (status, content_type, body) = match text {
            Ok(text) => (StatusCode::OK, crate::metrics::CONTENT_TYPE, text),
            Err(e) => {
                eprintln!("authledger gateway: /metrics unavailable: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    format!("authledger: metrics unavailable: {e}\n"),
                )
            }
        };
        let mut response = Response::new(ReplyBody::own(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Some(response)
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        grant: Grant,
        api: Option<Api>,
        format: Api,
    ) -> Response<ReplyBody> {
        let (parts, body) = req.into_parts();
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(url) = grant.url_for(path_and_query) else {
            return bad_gateway(format, "the configured upstream URL cannot take this path");
        };
        let mut headers = forwarded_headers(&parts.headers);
        if api == Some(Api::OpenAiChatCompletions) {
            // Its body may be rewritten below; the client sets the new length.
            headers.remove(hyper::header::CONTENT_LENGTH);
        }
        if grant.authorize(&mut headers).is_err() {
            return bad_gateway(format, "the stored credential cannot be sent in a header");
        }
        let mut upstream = self
            .client
            .request(parts.method, url)
            .version(hyper::Version::HTTP_11)
            .headers(headers);
        if api == Some(Api::OpenAiChatCompletions) {
            // A streamed Chat Completion reports usage only when asked to: ask, or it would be
            // spent unmetered.
            match with_usage_requested(body).await {
                Ok(bytes) => upstream = upstream.body(bytes),
                Err(why) => return bad_request(format, why),
            }
        } else if !body.is_end_stream() {
            upstream = upstream.body(reqwest::Body::wrap(body));
        }
        let response = match upstream.send().await {
            Ok(response) => response,
            Err(e) => {
                eprintln!("authledger gateway: upstream unreachable: {e}");
                return bad_gateway(format, "the upstream cannot be reached");
            }
        };
        let status = response.status();
        let headers = returned_headers(response.headers());
        self.authority
            .observe(&grant, status.as_u16(), &header_pairs(&headers));
        let tap = api.map(|api| {
            let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let meter = Meter::for_response(api, content_type);
            Box::new(Tap::new(
                meter,
                grant.lease_id.clone(),
                Arc::clone(&self.authority),
            ))
        });
        let mut reply = Response::new(ReplyBody::upstream(reqwest::Body::from(response), tap));
        *reply.status_mut() = status;
        *reply.headers_mut() = headers;
        reply
    }
}

/// What the authority's answer means for the request.
fn decision(decided: Result<Decided, GatewayError>, format: Api) -> Result<Decision, GatewayError> {
    Ok(match decided? {
        None => Decision::Refuse(format, Refusal::UnknownToken),
        Some((grant, Admission::Go)) => Decision::Forward(grant),
        Some((_, Admission::Refuse(refusal))) => Decision::Refuse(format, refusal),
    })
}

/// The agent's token: `x-api-key`, else `Authorization: Bearer`. Two different tokens are none
/// (which one the agent meant is not ours to guess).
fn agent_token(headers: &HeaderMap) -> Option<String> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let token = match (key, bearer) {
        (Some(k), Some(b)) if k.trim() != b.trim() => return None,
        (Some(k), _) => k,
        (None, Some(b)) => b,
        (None, None) => return None,
    };
    Some(token.trim().to_string()).filter(|t| !t.is_empty())
}

/// The error format for a path no metered API owns: Anthropic for its paths or when the agent
/// speaks Anthropic's headers, else OpenAI.
fn error_format(path: &str, headers: &HeaderMap) -> Api {
    let anthropic = path.starts_with("/v1/messages")
        || path.starts_with("/v1/complete")
        || headers.contains_key("anthropic-version")
        || headers.contains_key("x-api-key");
    if anthropic {
        Api::AnthropicMessages
    } else {
        Api::OpenAiResponses
    }
}

/// The largest Chat Completions request body the gateway reads whole (to ask for usage).
const MAX_CHAT_BODY: usize = 32 << 20;

/// A Chat Completions request body with `stream_options.include_usage` set when it streams,
/// so the stream ends with the usage chunk the meter reads. Other bodies pass unchanged.
async fn with_usage_requested(body: Incoming) -> Result<bytes::Bytes, &'static str> {
    use http_body_util::BodyExt;
    let bytes = http_body_util::Limited::new(body, MAX_CHAT_BODY)
        .collect()
        .await
        .map_err(|_| "the request body is too large or was cut off")?
        .to_bytes();
    let Ok(serde_json::Value::Object(mut request)) = serde_json::from_slice(&bytes) else {
        // Not JSON: the upstream answers it (with an error) and nothing streams.
        return Ok(bytes);
    };
    if request.get("stream") != Some(&serde_json::Value::Bool(true)) {
        return Ok(bytes);
    }
    let options = request
        .entry("stream_options")
        .or_insert_with(|| serde_json::json!({}));
    match options {
        serde_json::Value::Object(o) => {
            o.insert("include_usage".into(), serde_json::Value::Bool(true));
        }
        _ => return Err("stream_options must be an object"),
    }
    serde_json::to_vec(&request)
        .map(bytes::Bytes::from)
        .map_err(|_| "the request body cannot be re-encoded")
}

/// 401 in the provider's format when the ledger's credential for the lease's account cannot
/// be used; the message names the cause (never a secret) so the user knows to log in again.
fn credential_unusable(format: Api, e: &crate::error::Error) -> Response<ReplyBody> {
    let message = format!("authledger: the account's credential cannot be used: {e}");
    let reply = match format {
        Api::AnthropicMessages => ErrorReply::anthropic(401, "authentication_error", &message),
        _ => ErrorReply::openai(
            401,
            "invalid_request_error",
            Some("invalid_api_key"),
            &message,
        ),
    };
    reply_with(reply)
}

fn bad_request(format: Api, why: &str) -> Response<ReplyBody> {
    let message = format!("authledger: {why}");
    let reply = match format {
        Api::AnthropicMessages => ErrorReply::anthropic(400, "invalid_request_error", &message),
        _ => ErrorReply::openai(400, "invalid_request_error", None, &message),
    };
    reply_with(reply)
}

/// Paths forwarded without a meter, because the provider charges nothing for them: counting
/// a prompt's tokens and listing models.
fn costs_nothing(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path == "/v1/messages/count_tokens" || path == "/v1/models" || path.starts_with("/v1/models/")
}

/// Whether a path has a `.` or `..` segment, plain or percent-encoded.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        decoded == "." || decoded == ".."
    })
}

/// 404 in the provider's format for a path the gateway does not meter.
fn not_metered(format: Api, path: &str) -> Response<ReplyBody> {
    let shown: String = path.chars().take(80).collect();
    let message = format!(
        "authledger: {shown} is not forwarded: this gateway meters /v1/messages, \
         /v1/responses and /v1/chat/completions (and passes /v1/models and \
         /v1/messages/count_tokens)"
    );
    let reply = match format {
        Api::AnthropicMessages => ErrorReply::anthropic(404, "not_found_error", &message),
        _ => ErrorReply::openai(404, "invalid_request_error", Some("unknown_url"), &message),
    };
    reply_with(reply)
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), and are never
/// forwarded; `Connection` may name more.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn hop_by_hop(name: &HeaderName, headers: &HeaderMap) -> bool {
    if HOP_BY_HOP.contains(&name.as_str()) || name == header::UPGRADE {
        return true;
    }
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|listed| listed.trim().eq_ignore_ascii_case(name.as_str()))
}

/// The agent's headers as the upstream gets them: no hop-by-hop headers, no `Host` (the
/// client sets the upstream's), no token, plain bytes asked for.
pub(super) fn forwarded_headers(agent: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(agent.len() + 2);
    for (name, value) in agent {
        let dropped = name == header::HOST
            || name == AUTHORIZATION
            || name == "x-api-key"
            || name == ACCEPT_ENCODING
            || hop_by_hop(name, agent);
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    out
}

/// The upstream's headers as the agent gets them: hop-by-hop ones dropped (the agent's
/// connection frames the body itself), `content-length` kept.
pub(super) fn returned_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        if !hop_by_hop(name, upstream) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The headers as name/value text pairs, the form provider health reads (values that are not
/// text are skipped).
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

fn refuse(format: Api, refusal: Refusal) -> Response<ReplyBody> {
    reply_with(ErrorReply::refuse(format, refusal))
}

pub(super) fn bad_gateway(format: Api, why: &str) -> Response<ReplyBody> {
    let message = format!("authledger: {why}");
    let reply = match format {
        Api::AnthropicMessages => ErrorReply::anthropic(502, "api_error", &message),
        _ => ErrorReply::openai(502, "api_error", None, &message),
    };
    reply_with(reply)
}

fn reply_with(reply: ErrorReply) -> Response<ReplyBody> {
    let mut response = Response::new(ReplyBody::own(reply.body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(ErrorReply::CONTENT_TYPE),
    );
    if let Some(secs) = reply.retry_after_secs {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
