//! The loopback callback: a one-request HTTP server on 127.0.0.1 that catches the
//! authorization server's redirect, and the parser for a pasted `code#state` or redirect URL.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::OAuthError;

/// What the redirect carried. The authorization code is a credential until it is exchanged,
/// so `Debug` does not print it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The state we sent (to be checked).
    pub state: Option<String>,
    /// An error code (`access_denied`, …).
    pub error: Option<String>,
    /// The error's description.
    pub error_description: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state)
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish()
    }
}

impl CallbackParams {
    fn from_query(query: &str) -> CallbackParams {
        let mut p = CallbackParams::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let v = Some(v.into_owned());
            match k.as_ref() {
                "code" => p.code = v,
                "state" => p.state = v,
                "error" => p.error = v,
                "error_description" => p.error_description = v,
                _ => {}
            }
        }
        p
    }
}

/// Reads what a user pasted: a full redirect URL, a query string, or `code#state`.
pub fn parse_pasted(text: &str) -> Option<CallbackParams> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(url) = url::Url::parse(text) {
        return Some(CallbackParams::from_query(url.query().unwrap_or("")));
    }
    if text.contains('=') {
        return Some(CallbackParams::from_query(text.trim_start_matches('?')));
    }
    let (code, state) = text.split_once('#')?;
    Some(CallbackParams {
        code: Some(code.to_string()),
        state: Some(state.to_string()),
        ..CallbackParams::default()
    })
}

/// A listener bound to 127.0.0.1 only, waiting for one `/callback` request.
#[derive(Debug)]
pub struct Loopback {
    listener: TcpListener,
    port: u16,
}

const SUCCESS_PAGE: &str = "<!doctype html><title>authledger</title><p>Authorization received. Return to the terminal: it finishes the sign-in.</p>";
const FORGED_PAGE: &str = "<!doctype html><title>authledger</title><p>This callback does not belong to the sign-in in progress; it was ignored.</p>";
const FAILURE_PAGE: &str = "<!doctype html><title>authledger</title><p>Sign-in failed. Return to the terminal for details.</p>";

impl Loopback {
    /// Binds 127.0.0.1 on `port` (0 for an ephemeral one). Never a wildcard address: the code
    /// must not be catchable from another machine.
    pub fn bind(port: u16) -> Result<Loopback, OAuthError> {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| OAuthError::Callback { port, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| OAuthError::Callback { port, source })?
            .port();
        Ok(Loopback { listener, port })
    }

    /// The redirect URI to register with the request.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// Waits until `/callback` is requested with the expected state, or something is pasted,
    /// whichever comes first, answering the browser with a small page. Other paths (a favicon)
    /// get 404, and a callback with another state (a forged or stale one) gets an error page:
    /// the wait goes on for the real one. Each connection is served on its own thread, reads at
    /// most `MAX_REQUEST` bytes, has `HEAD_WAIT` to send its request and never outlives the
    /// deadline, so a client that sends nothing, or a byte at a time, cannot hold the login
    /// past it. At most `MAX_CONNECTIONS` are open at once; a new one closes the oldest, so
    /// idle connections opened by someone else cannot keep the browser's redirect out. Gives
    /// [`OAuthError::Timeout`] at the deadline.
    pub fn wait(
        &self,
        timeout: Duration,
        expected_state: &str,
        pasted: Option<&Receiver<String>>,
    ) -> Result<CallbackParams, OAuthError> {
        let deadline = Instant::now() + timeout;
        let (found_tx, found) = mpsc::channel();
        let live = Arc::new(Live::default());
        loop {
            if let Some(rx) = pasted
                && let Ok(line) = rx.try_recv()
                && let Some(params) = parse_pasted(&line)
            {
                return Ok(params);
            }
            if let Ok(params) = found.try_recv() {
                return Ok(params);
            }
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let Some(id) = live.admit(&stream) else {
                        continue;
                    };
                    let (tx, live, expected) =
                        (found_tx.clone(), live.clone(), expected_state.to_string());
                    let head_deadline = deadline.min(Instant::now() + HEAD_WAIT);
                    std::thread::spawn(move || {
                        if let Some(params) = serve(stream, &expected, head_deadline) {
                            let _ = tx.send(params);
                        }
                        live.leave(id);
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(OAuthError::Timeout(
                            humantime::format_duration(timeout).to_string(),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(source) => {
                    return Err(OAuthError::Callback {
                        port: self.port,
                        source,
                    });
                }
            }
        }
    }
}

/// The most a callback request may send: a request line and headers fit in far less.
pub const MAX_REQUEST: usize = 16 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a connection has to send its request head: a browser sends it at once.
pub const HEAD_WAIT: Duration = Duration::from_secs(3);

/// The connections being served, oldest first.
#[derive(Default)]
struct Live {
    next: AtomicU64,
    open: Mutex<VecDeque<(u64, TcpStream)>>,
}

impl Live {
    /// Registers a new connection, closing the oldest one when [`MAX_CONNECTIONS`] are open
    /// (its reader then sees the end and its thread finishes). `None` if the connection
    /// cannot be tracked (it is then dropped, unread).
    fn admit(&self, stream: &TcpStream) -> Option<u64> {
        let handle = stream.try_clone().ok()?;
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().ok()?;
        while open.len() >= MAX_CONNECTIONS {
            if let Some((_, oldest)) = open.pop_front() {
                let _ = oldest.shutdown(Shutdown::Both);
            }
        }
        open.push_back((id, handle));
        Some(id)
    }

    /// Forgets a connection whose thread is done.
    fn leave(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.retain(|(i, _)| *i != id);
        }
    }
}

/// Reads a request's head (up to the blank line), at most [`MAX_REQUEST`] bytes, giving up
/// at `deadline` however slowly the bytes come.
fn read_head(mut stream: &TcpStream, deadline: Instant) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).ok()?;
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST {
            return None;
        }
    }
    String::from_utf8(head).ok()
}

/// Handles one connection; returns the parameters if it was the callback with the expected
/// state (with a code, or with an error the authorization server sent back). Only a callback
/// with the expected state, a code and no error is shown the success page.
fn serve(stream: TcpStream, expected_state: &str, deadline: Instant) -> Option<CallbackParams> {
    let mut out = &stream;
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let Some(head) = read_head(&stream, deadline) else {
        let _ = out.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return None;
    };
    let request_line = head.lines().next().unwrap_or("");
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/callback" {
        let _ = out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return None;
    }
    let params = CallbackParams::from_query(query);
    let ours = params.state.as_deref() == Some(expected_state);
    let page = if ours && params.code.is_some() && params.error.is_none() {
        SUCCESS_PAGE
    } else if ours {
        FAILURE_PAGE
    } else {
        FORGED_PAGE
    };
    let _ = write!(
        out,
        "HTTP/1.1 {}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        if ours { "200 OK" } else { "400 Bad Request" },
        page.len()
    );
    ours.then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_forms_parse() {
        let p = parse_pasted("abc#xyz").unwrap();
        assert_eq!(
            (p.code.as_deref(), p.state.as_deref()),
            (Some("abc"), Some("xyz"))
        );
        let p = parse_pasted("http://127.0.0.1:5/callback?code=c1&state=s1").unwrap();
        assert_eq!(
            (p.code.as_deref(), p.state.as_deref()),
            (Some("c1"), Some("s1"))
        );
        let p = parse_pasted("error=access_denied&state=s").unwrap();
        assert_eq!(p.error.as_deref(), Some("access_denied"));
        assert!(parse_pasted("   ").is_none());
        assert!(parse_pasted("no-separator").is_none());
        let shown = format!("{:?}", parse_pasted("secret-code#st").unwrap());
        assert!(!shown.contains("secret-code"), "{shown}");
    }

    #[test]
    fn the_callback_is_caught_and_other_paths_ignored() {
        let lb = Loopback::bind(0).unwrap();
        let port = lb.port;
        let client = std::thread::spawn(move || {
            let get = |path: &str| {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut body = String::new();
                let _ = std::io::Read::read_to_string(&mut s, &mut body);
                body
            };
            assert!(get("/favicon.ico").starts_with("HTTP/1.1 404"));
            assert!(get("/callback?code=k&state=s").contains("Authorization received"));
        });
        let p = lb.wait(Duration::from_secs(10), "s", None).unwrap();
        assert_eq!(p.code.as_deref(), Some("k"));
        client.join().unwrap();
    }

    #[test]
    fn a_byte_dripping_client_does_not_extend_the_deadline() {
        use std::sync::atomic::AtomicBool;
        let lb = Loopback::bind(0).unwrap();
        let port = lb.port;
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        // A whole request, a byte every 100 ms: 4 s, far past the 300 ms login deadline.
        let dripper = std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            for b in b"GET /callback?code=k&state=s HTTP/1.1\r\n\r\n" {
                if s.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            flag.store(true, Ordering::SeqCst);
        });
        let r = lb.wait(Duration::from_millis(300), "s", None);
        // Event order, not a stopwatch: the wait gave up while the dripper was still sending.
        assert!(
            !finished.load(Ordering::SeqCst),
            "the wait lasted until the drip ended: {r:?}"
        );
        assert!(matches!(r, Err(OAuthError::Timeout(_))), "{r:?}");
        drop(dripper);
    }

    #[test]
    fn an_oversized_request_is_dropped_and_the_wait_goes_on() {
        let lb = Loopback::bind(0).unwrap();
        let port = lb.port;
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut big = b"GET /callback?state=s&code=".to_vec();
            big.extend(std::iter::repeat_n(b'k', MAX_REQUEST + 10));
            let _ = s.write_all(&big);
            // The loopback closes it at once, without waiting for the rest (its answer may be
            // lost to the reset); only then does the real callback come.
            let _ = std::io::Read::read_to_string(&mut s, &mut String::new());
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(s, "GET /callback?code=real&state=s HTTP/1.1\r\n\r\n").unwrap();
        });
        // Generous against "at once", short against a per-read timeout that waits for more.
        let p = lb.wait(Duration::from_secs(3), "s", None).unwrap();
        assert_eq!(p.code.as_deref(), Some("real"));
        client.join().unwrap();
    }

    #[test]
    fn idle_connections_opened_first_do_not_keep_the_callback_out() {
        let lb = Loopback::bind(0).unwrap();
        let port = lb.port;
        let client = std::thread::spawn(move || {
            // More idle connections than are served at once, all opened before the redirect.
            let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS + 4)
                .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
                .collect();
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(s, "GET /callback?code=real&state=s HTTP/1.1\r\n\r\n").unwrap();
            let mut body = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut body);
            drop(idle);
            body
        });
        // Well inside the head wait the idle ones could otherwise hold their slots for.
        let p = lb.wait(HEAD_WAIT / 2, "s", None).unwrap();
        assert_eq!(p.code.as_deref(), Some("real"));
        assert!(client.join().unwrap().contains("Authorization received"));
    }

    #[test]
    fn nobody_coming_is_a_timeout() {
        let lb = Loopback::bind(0).unwrap();
        assert!(matches!(
            lb.wait(Duration::from_millis(50), "s", None),
            Err(OAuthError::Timeout(_))
        ));
    }
}
