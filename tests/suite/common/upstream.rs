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
