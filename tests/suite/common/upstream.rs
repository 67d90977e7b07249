//! A fake provider API on 127.0.0.1 for the gateway tests: it hands every request it gets to
//! the test, and answers each with the next scripted reply (a whole body, or a stream the test
//! feeds chunk by chunk, so the test decides when each event leaves the upstream).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One request as the upstream received it.
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// What the upstream answers.
pub enum Reply {
    /// A whole body at once, with a `content-length`.
    Whole {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A whole body with extra response headers (rate-limit facts, `retry-after`).
    Headed {
        status: u16,
        headers: Vec<(&'static str, String)>,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A stream: each chunk sent on the test's sender leaves at once; dropping the sender ends
    /// the body.
    Stream {
        content_type: &'static str,
        chunks: mpsc::UnboundedReceiver<Bytes>,
    },
}

impl Reply {
    /// A stream reply and the sender that feeds it.
    pub fn stream(content_type: &'static str) -> (Reply, mpsc::UnboundedSender<Bytes>) {
        let (tx, chunks) = mpsc::unbounded_channel();
        (
            Reply::Stream {
                content_type,
                chunks,
            },
            tx,
        )
    }
}

/// The running fake: its base URL, the requests it got, the replies it will give.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let replies: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let queue = Arc::clone(&replies);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen_tx = seen_tx.clone();
                let queue = Arc::clone(&queue);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let seen_tx = seen_tx.clone();
                        let queue = Arc::clone(&queue);
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes().to_vec();
                            let _ = seen_tx.send(Seen {
                                method: parts.method.to_string(),
                                path_and_query: parts.uri.path_and_query().unwrap().to_string(),
                                headers: parts.headers,
                                body,
                            });
                            let reply = queue.lock().unwrap().pop_front();
                            Ok::<_, Infallible>(respond(reply))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeUpstream {
            addr,
            seen,
            replies,
        }
    }

    /// The base URL a grant points at.
    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).unwrap()
    }

    /// Queues the answer to the next request.
    pub fn reply(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }
}

fn respond(reply: Option<Reply>) -> Response<ChannelBody> {
    let mut extra = Vec::new();
    let (status, content_type, body) = match reply {
        Some(Reply::Headed {
            status,
            headers,
            content_type,
            body,
        }) => {
            extra = headers;
            (
                status,
                content_type,
                ChannelBody::Whole(Some(Bytes::from(body))),
            )
        }
        Some(Reply::Whole {
            status,
            content_type,
            body,
        }) => (
            status,
            content_type,
            ChannelBody::Whole(Some(Bytes::from(body))),
        ),
        Some(Reply::Stream {
            content_type,
            chunks,
        }) => (200, content_type, ChannelBody::Stream(chunks)),
        None => (
            500,
            "text/plain",
            ChannelBody::Whole(Some("no reply".into())),
        ),
    };
    let mut response = Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A body given whole, or fed by the test through a channel.
pub enum ChannelBody {
    Whole(Option<Bytes>),
    Stream(mpsc::UnboundedReceiver<Bytes>),
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ChannelBody::Whole(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            ChannelBody::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ChannelBody::Whole(Some(b)) => hyper::body::SizeHint::with_exact(b.len() as u64),
            ChannelBody::Whole(None) => hyper::body::SizeHint::with_exact(0),
            ChannelBody::Stream(_) => hyper::body::SizeHint::default(),
        }
    }
}

/// What the fake WebSocket upstream answers to the next `response.create`: events sent at
/// once, or events the test feeds one by one (closing the sender ends the reply; the socket
/// stays open).
pub enum SocketReply {
    Events(Vec<String>),
    Stream(mpsc::UnboundedReceiver<String>),
}

impl SocketReply {
    /// A fed reply and the sender that feeds it.
    pub fn stream() -> (SocketReply, mpsc::UnboundedSender<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (SocketReply::Stream(rx), tx)
    }
}

/// Fed to a [`SocketReply::Stream`], makes the fake close the socket there (an upstream that
/// breaks off mid-response).
pub const CLOSE_SOCKET: &str = "<close>";

/// The rate-limit headers the fake puts on its handshake answer, as the ChatGPT backend does.
pub const SOCKET_RATE_HEADERS: [(&str, &str); 3] = [
    ("x-codex-primary-used-percent", "42.5"),
    ("x-codex-primary-window-minutes", "300"),
    ("x-codex-primary-reset-at", "1795431600"),
];

/// A fake Responses WebSocket (`GET /v1/responses`), like the real one: the handshake answer
/// carries rate-limit headers; each `response.create` text message is answered with the
/// Responses events, one JSON object per text message (no `event:` lines), and the socket
/// stays open for the next request. It hands the test every handshake and every message.
pub struct FakeSocketUpstream {
    pub addr: SocketAddr,
    /// One per handshake the upstream received (`body` empty).
    pub seen: mpsc::UnboundedReceiver<Seen>,
    /// Every text message the upstream received, in order.
    pub messages: mpsc::UnboundedReceiver<String>,
    replies: Arc<Mutex<VecDeque<SocketReply>>>,
    refusal: Arc<Mutex<Option<(u16, &'static str)>>>,
}

impl FakeSocketUpstream {
    pub async fn start() -> FakeSocketUpstream {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (messages_tx, messages) = mpsc::unbounded_channel();
        let replies: Arc<Mutex<VecDeque<SocketReply>>> = Arc::default();
        let refusal: Arc<Mutex<Option<(u16, &'static str)>>> = Arc::default();
        let (queue, refuse) = (Arc::clone(&replies), Arc::clone(&refusal));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen_tx, messages_tx) = (seen_tx.clone(), messages_tx.clone());
                let (queue, refuse) = (Arc::clone(&queue), Arc::clone(&refuse));
                tokio::spawn(async move {
                    // tungstenite's callback type: its error is a whole HTTP response.
                    #[allow(clippy::result_large_err)]
                    let handshake = |req: &Request, mut resp: Response| {
                        let _ = seen_tx.send(Seen {
                            method: req.method().to_string(),
                            path_and_query: req.uri().path_and_query().unwrap().to_string(),
                            headers: req.headers().clone(),
                            body: Vec::new(),
                        });
                        if let Some((status, body)) = *refuse.lock().unwrap() {
                            let mut refused = ErrorResponse::new(Some(body.to_string()));
                            *refused.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            return Err(refused);
                        }
                        for (name, value) in SOCKET_RATE_HEADERS {
                            resp.headers_mut().insert(name, value.parse().unwrap());
                        }
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, handshake).await
                    else {
                        return;
                    };
                    let mut feeding: Option<mpsc::UnboundedReceiver<String>> = None;
                    loop {
                        tokio::select! {
                            // What the client sent is read before what the test fed after it.
                            biased;
                            message = ws.next() => {
                                let Some(Ok(message)) = message else { return };
                                let Message::Text(text) = message else {
                                    if message.is_close() {
                                        // The client closed: acknowledge and stop.
                                        let _ = ws.close(None).await;
                                        return;
                                    }
                                    continue;
                                };
                                let _ = messages_tx.send(text.to_string());
                                if !text.contains("\"response.create\"") {
                                    continue;
                                }
                                let next = queue.lock().unwrap().pop_front();
                                match next {
                                    Some(SocketReply::Events(events)) => {
                                        for event in events {
                                            if ws.send(Message::text(event)).await.is_err() {
                                                return;
                                            }
                                        }
                                    }
                                    Some(SocketReply::Stream(rx)) => feeding = Some(rx),
                                    None => {}
                                }
                            }
                            event = async { feeding.as_mut().unwrap().recv().await },
                                if feeding.is_some() =>
                            {
                                match event {
                                    Some(event) if event == CLOSE_SOCKET => {
                                        let _ = ws.close(None).await;
                                        feeding = None;
                                    }
                                    Some(event) => {
                                        if ws.send(Message::text(event)).await.is_err() {
                                            return;
                                        }
                                    }
                                    None => feeding = None,
                                }
                            }
                        }
                    }
                });
            }
        });
        FakeSocketUpstream {
            addr,
            seen,
            messages,
            replies,
            refusal,
        }
    }

    /// The base URL a grant points at (`http`: the gateway turns it into `ws`).
    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).unwrap()
    }

    /// Queues the answer to the next `response.create`.
    pub fn reply(&self, reply: SocketReply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    /// Refuses every later upgrade with this status and body.
    pub fn refuse(&self, status: u16, body: &'static str) {
        *self.refusal.lock().unwrap() = Some((status, body));
    }
}
