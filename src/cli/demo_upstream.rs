//! A stand-in for Anthropic's Messages API, for the demo only: it answers `POST /v1/messages`
//! with the event stream the real API sends (usage in `message_start` and a cumulative
//! `message_delta`), and 401 unless it gets the real key, so the tour shows the gateway
//! swapping the agent's lease token for the credential.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::error::Error;

/// The stand-in API, serving on a loopback port until the process ends.
pub struct DemoUpstream {
    addr: SocketAddr,
}

impl DemoUpstream {
    /// Starts it on its own thread; it accepts only `key`.
    pub fn start(key: String) -> Result<DemoUpstream, Error> {
        let io = |source| Error::Io {
            what: "cannot start the demo's stand-in API".into(),
            source,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io)?;
        let key = Arc::new(key);
        let served = Arc::new(AtomicU64::new(0));
        std::thread::Builder::new()
            .name("demo-upstream".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    while let Ok((stream, _)) = listener.accept().await {
                        let (key, served) = (Arc::clone(&key), Arc::clone(&served));
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                let (key, served) = (Arc::clone(&key), Arc::clone(&served));
                                async move { Ok::<_, Infallible>(answer(&req, &key, &served)) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            })
            .map_err(io)?;
        Ok(DemoUpstream { addr })
    }

    /// Its base URL, for `config.toml`'s `base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn answer(
    req: &Request<hyper::body::Incoming>,
    key: &str,
    served: &AtomicU64,
) -> Response<Full<Bytes>> {
    let authorized = req
        .headers()
        .get("x-api-key")
        .is_some_and(|v| v.as_bytes() == key.as_bytes());
    if !authorized || req.uri().path() != "/v1/messages" {
        let mut r = Response::new(Full::new(Bytes::from_static(
            br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        )));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    let n = served.fetch_add(1, Ordering::Relaxed) + 1;
    let (input, cache_read, output) = (1_200 * n, 4_000, 350 * n);
    let body = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_demo_{n}\",\"model\":\"claude-sonnet-4-5\",\"usage\":{{\"input_tokens\":{input},\"cache_read_input_tokens\":{cache_read},\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}}}}\n\n\
         event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"Looks good.\"}}}}\n\n\
         event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":null}},\"usage\":{{\"output_tokens\":{half}}}}}\n\n\
         event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{output}}}}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n",
        half = output / 2
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    r
}
