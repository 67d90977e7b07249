//! A fake OAuth 2.0 authorization server on 127.0.0.1 for the CLI tests: the authorization
//! code grant with PKCE (RFC 6749, RFC 7636), rotating refresh tokens, and the device grant
//! (RFC 8628). std::net only, one thread per connection; every request is recorded, and every
//! check the server makes that fails is kept in `problems()` for the tests to assert on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The public client the server knows (no secret).
pub const CLIENT_ID: &str = "authledger-test-client";
/// The device grant's `grant_type`.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const DEVICE_CODE: &str = "device-code-1";
/// The user code the device endpoint hands out.
pub const USER_CODE: &str = "WDJB-MJHT";

/// Where `/authorize` sends the browser back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorize {
    /// With a code and the state it was given.
    Grant,
    /// With `error=access_denied` (and the right state).
    Deny,
    /// With a code but a state that is not the one it was given.
    WrongState,
}

/// How the server behaves; change it with [`OAuthServer::set`].
#[derive(Debug, Clone)]
pub struct Mode {
    pub authorize: Authorize,
    /// `Some(error)`: the code exchange answers 400 with this standard error.
    pub code_error: Option<&'static str>,
    /// `expires_in` of every token answer (none: the field is left out).
    pub expires_in: Option<u64>,
    /// Whether token answers carry a `refresh_token`.
    pub refresh_token: bool,
    /// `token_type` of token answers (case-insensitive per RFC 6749).
    pub token_type: &'static str,
    /// How long a refresh request is held before it is answered.
    pub refresh_delay: Duration,
    /// Refresh requests are never answered.
    pub refresh_hang: bool,
    /// Refresh requests are held (the token already issued) until [`OAuthServer::release`].
    pub refresh_hold: bool,
    /// Whether token answers carry an OpenID `id_token` (a JWT naming a ChatGPT account).
    pub id_token: bool,
    /// `/token` answers 307 to `/elsewhere` instead (which must never be asked).
    pub token_redirect: bool,
    /// Device polls answered `authorization_pending` before anything else.
    pub pending_polls: u32,
    /// After the pending polls, one `slow_down`.
    pub slow_down: bool,
}

impl Default for Mode {
    fn default() -> Self {
        Mode {
            authorize: Authorize::Grant,
            code_error: None,
            expires_in: Some(3600),
            refresh_token: true,
            token_type: "Bearer",
            refresh_delay: Duration::ZERO,
            refresh_hang: false,
            refresh_hold: false,
            id_token: true,
            token_redirect: false,
            pending_polls: 0,
            slow_down: false,
        }
    }
}

/// One request as the server saw it: query parameters for GET, form fields for POST.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub params: BTreeMap<String, String>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

#[derive(Debug, Default)]
struct State {
    mode: Mode,
    requests: Vec<Request>,
    problems: Vec<String>,
    /// Issued codes: (code_challenge, redirect_uri).
    codes: HashMap<String, (String, String)>,
    live_refresh: HashSet<String>,
    used_refresh: HashSet<String>,
    replays: Vec<String>,
    access_tokens: Vec<String>,
    refresh_tokens: Vec<String>,
    device_polls: u32,
    slowed_down: bool,
    serial: u32,
    /// Opened by [`OAuthServer::release`]: held refresh answers go out.
    gate: Arc<(Mutex<bool>, Condvar)>,
    /// The ChatGPT account id of every id token issued, oldest first.
    account_ids: Vec<String>,
}

/// A running server; it lives until the test process exits.
pub struct OAuthServer {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl OAuthServer {
    pub fn start() -> OAuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake OAuth server");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || handle(stream, port, &state));
            }
        });
        OAuthServer { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A `[providers.<provider>.oauth]` table pointing at this server.
    pub fn config_toml(&self, provider: &str) -> String {
        format!(
            "[providers.{provider}.oauth]\n\
             authorize_url = \"{}\"\n\
             token_url = \"{}\"\n\
             device_authorization_url = \"{}\"\n\
             client_id = \"{CLIENT_ID}\"\n\
             scopes = [\"openid\", \"offline_access\"]\n\
             extra_params = {{ audience = \"test-api\" }}\n",
            self.url("/authorize"),
            self.url("/token"),
            self.url("/device/code"),
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, f: impl FnOnce(&mut Mode)) {
        f(&mut self.lock().mode);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Token endpoint requests with this `grant_type`.
    pub fn token_requests(&self, grant_type: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/token" && r.param("grant_type") == Some(grant_type))
            .collect()
    }

    /// Checks that failed (a wrong verifier, redirect URI or client id, a secret sent by a
    /// public client, a malformed request…). Empty when everything the client sent was right.
    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }

    /// Refresh tokens presented after they had already been used.
    pub fn replays(&self) -> Vec<String> {
        self.lock().replays.clone()
    }

    /// Every access token issued, oldest first.
    pub fn access_tokens(&self) -> Vec<String> {
        self.lock().access_tokens.clone()
    }

    /// Every refresh token issued, oldest first.
    pub fn refresh_tokens(&self) -> Vec<String> {
        self.lock().refresh_tokens.clone()
    }

    /// Lets held refresh answers (mode `refresh_hold`) go out.
    pub fn release(&self) {
        let gate = self.lock().gate.clone();
        *gate.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        gate.1.notify_all();
    }

    /// The ChatGPT account id of every id token issued, oldest first.
    pub fn account_ids(&self) -> Vec<String> {
        self.lock().account_ids.clone()
    }

    /// Waits (at most 30 s) until `n` requests to `path` have arrived.
    pub fn wait_for_requests(&self, path: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.requests().iter().filter(|r| r.path == path).count() < n {
            assert!(Instant::now() < deadline, "no {n} requests to {path}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Makes every refresh token issued so far unknown (as after a revocation).
    pub fn forget_refresh_tokens(&self) {
        self.lock().live_refresh.clear();
    }
}

fn handle(stream: TcpStream, port: u16, state: &Mutex<State>) {
    let Some((method, target, body)) = read_request(&stream) else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let params: BTreeMap<String, String> =
        url::form_urlencoded::parse(if method == "GET" { query } else { &body }.as_bytes())
            .into_owned()
            .collect();
    let request = Request {
        at: Instant::now(),
        method: method.clone(),
        path: path.to_string(),
        params: params.clone(),
    };
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    lock().requests.push(request);
    let redirect = lock().mode.token_redirect;
    let answer = match (method.as_str(), path) {
        ("GET", "/authorize") => authorize(&mut lock(), &params),
        ("POST", "/token") if redirect => {
            Answer::Redirect307(format!("http://127.0.0.1:{port}/elsewhere"))
        }
        ("POST", "/token") => token(state, port, &params),
        ("POST", "/device/code") => device_code(&mut lock(), port, &params),
        _ => Answer::Status(404, String::new()),
    };
    let Some(answer) = answer.wait() else {
        // Hang: hold the connection open and never answer.
        loop {
            std::thread::park();
        }
    };
    let (status, headers, body) = match answer {
        Answer::Redirect(location) => (302, format!("Location: {location}\r\n"), String::new()),
        Answer::Redirect307(location) => (307, format!("Location: {location}\r\n"), String::new()),
        Answer::Json(status, body) => (
            status,
            "Content-Type: application/json\r\nCache-Control: no-store\r\n".to_string(),
            body.to_string(),
        ),
        Answer::Status(status, body) => (status, String::new(), body),
        Answer::Later(..) | Answer::Held(..) | Answer::Never => unreachable!(),
    };
    let reason = match status {
        200 => "OK",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let _ = write!(
        &stream,
        "HTTP/1.1 {status} {reason}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Reads the request line, the headers and a `Content-Length` body.
fn read_request(stream: &TcpStream) -> Option<(String, String, String)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next()?.to_string(), words.next()?.to_string());
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? <= 2 {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, target, String::from_utf8(body).ok()?))
}

enum Answer {
    Redirect(String),
    Redirect307(String),
    /// Answer this once the gate opens.
    Held(Arc<(Mutex<bool>, Condvar)>, Box<Answer>),
    Json(u16, Value),
    Status(u16, String),
    /// Answer this after a pause.
    Later(Duration, Box<Answer>),
    /// Never answer.
    Never,
}

impl Answer {
    /// Sleeps out any pause; `None` for an answer that never comes.
    fn wait(self) -> Option<Answer> {
        match self {
            Answer::Later(pause, answer) => {
                std::thread::sleep(pause);
                answer.wait()
            }
            Answer::Held(gate, answer) => {
                let mut open = gate.0.lock().unwrap_or_else(|e| e.into_inner());
                while !*open {
                    open = gate.1.wait(open).unwrap_or_else(|e| e.into_inner());
                }
                drop(open);
                answer.wait()
            }
            Answer::Never => None,
            other => Some(other),
        }
    }
}

fn error(code: &str) -> Answer {
    Answer::Json(400, json!({ "error": code }))
}

/// Checks one request field, noting a problem when it is wrong.
fn expect(s: &mut State, params: &BTreeMap<String, String>, name: &str, want: &str) -> bool {
    let got = params.get(name).map(String::as_str);
    if got != Some(want) {
        s.problems
            .push(format!("{name} is {got:?}, expected {want:?}"));
        return false;
    }
    true
}

fn authorize(s: &mut State, p: &BTreeMap<String, String>) -> Answer {
    let mut ok = expect(s, p, "response_type", "code");
    ok &= expect(s, p, "client_id", CLIENT_ID);
    ok &= expect(s, p, "code_challenge_method", "S256");
    let redirect = p.get("redirect_uri").cloned().unwrap_or_default();
    let challenge = p.get("code_challenge").cloned().unwrap_or_default();
    let state = p.get("state").cloned().unwrap_or_default();
    if !redirect.starts_with("http://127.0.0.1:") || !redirect.ends_with("/callback") {
        s.problems.push(format!(
            "redirect_uri {redirect:?} is not a loopback /callback"
        ));
        ok = false;
    }
    if challenge.len() != 43 || state.is_empty() {
        s.problems.push("no S256 code_challenge or no state".into());
        ok = false;
    }
    if !ok {
        return Answer::Status(400, "bad authorization request".into());
    }
    s.serial += 1;
    let code = format!("code-{}", s.serial);
    s.codes.insert(code.clone(), (challenge, redirect.clone()));
    let mut back = url::Url::parse(&redirect).expect("redirect_uri parses");
    match s.mode.authorize {
        Authorize::Grant => back.query_pairs_mut().append_pair("code", &code),
        Authorize::Deny => back
            .query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("error_description", "The user said no"),
        Authorize::WrongState => back
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", "forged-state"),
    };
    if s.mode.authorize != Authorize::WrongState {
        back.query_pairs_mut().append_pair("state", &state);
    }
    Answer::Redirect(back.into())
}

fn token(state: &Mutex<State>, port: u16, p: &BTreeMap<String, String>) -> Answer {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    if p.contains_key("client_secret") {
        s.problems
            .push("a public client sent a client_secret".into());
    }
    if !expect(&mut s, p, "client_id", CLIENT_ID) {
        return error("invalid_client");
    }
    let param = |name: &str| p.get(name).cloned().unwrap_or_default();
    match param("grant_type").as_str() {
        "authorization_code" => {
            let Some((challenge, redirect)) = s.codes.remove(&param("code")) else {
                s.problems
                    .push(format!("unknown or reused code {:?}", param("code")));
                return error("invalid_grant");
            };
            let verifier = param("code_verifier");
            if !(43..=128).contains(&verifier.len()) || s256(&verifier) != challenge {
                s.problems
                    .push("code_verifier does not match the code_challenge".into());
                return error("invalid_grant");
            }
            if param("redirect_uri") != redirect {
                s.problems.push(format!(
                    "redirect_uri {:?} is not the authorization request's {redirect:?}",
                    param("redirect_uri")
                ));
                return error("invalid_grant");
            }
            match s.mode.code_error {
                Some(e) => error(e),
                None => issue(&mut s, port),
            }
        }
        "refresh_token" => {
            if s.mode.refresh_hang {
                return Answer::Never;
            }
            let presented = param("refresh_token");
            let answer = if s.live_refresh.remove(&presented) {
                s.used_refresh.insert(presented);
                issue(&mut s, port)
            } else {
                if s.used_refresh.contains(&presented) {
                    s.replays.push(presented);
                }
                error("invalid_grant")
            };
            let answer = Answer::Later(s.mode.refresh_delay, Box::new(answer));
            if s.mode.refresh_hold {
                Answer::Held(s.gate.clone(), Box::new(answer))
            } else {
                answer
            }
        }
        DEVICE_GRANT => {
            if !expect(&mut s, p, "device_code", DEVICE_CODE) {
                return error("invalid_grant");
            }
            s.device_polls += 1;
            if s.device_polls <= s.mode.pending_polls {
                error("authorization_pending")
            } else if s.mode.slow_down && !s.slowed_down {
                s.slowed_down = true;
                error("slow_down")
            } else {
                issue(&mut s, port)
            }
        }
        other => {
            s.problems.push(format!("unsupported grant_type {other:?}"));
            error("unsupported_grant_type")
        }
    }
}

/// A token answer per the mode: RFC 6749 section 5.1.
fn issue(s: &mut State, port: u16) -> Answer {
    s.serial += 1;
    let n = s.serial;
    let access = format!("access-{port}-{n:04}-Zq7vXk2mPw9rTb4L");
    s.access_tokens.push(access.clone());
    let mut body = json!({ "access_token": access, "token_type": s.mode.token_type });
    if let Some(e) = s.mode.expires_in {
        body["expires_in"] = json!(e);
    }
    if s.mode.refresh_token {
        let refresh = format!("refresh-{port}-{n:04}-Hy3nQe8sJd5uWc1F");
        s.live_refresh.insert(refresh.clone());
        s.refresh_tokens.push(refresh.clone());
        body["refresh_token"] = json!(refresh);
    }
    if s.mode.id_token {
        let account = format!("acct-{port}-{n:04}");
        s.account_ids.push(account.clone());
        body["id_token"] = json!(id_token(&account));
    }
    Answer::Json(200, body)
}

fn device_code(s: &mut State, port: u16, p: &BTreeMap<String, String>) -> Answer {
    if !expect(s, p, "client_id", CLIENT_ID) {
        return error("invalid_client");
    }
    Answer::Json(
        200,
        json!({
            "device_code": DEVICE_CODE,
            "user_code": USER_CODE,
            "verification_uri": format!("http://127.0.0.1:{port}/device"),
            "expires_in": 120,
            "interval": 1,
        }),
    )
}

/// An OpenID id token as OpenAI's issuer shapes it for Codex: a JWT (unsigned here) whose
/// `https://api.openai.com/auth` claim names the ChatGPT account.
pub fn id_token(account: &str) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({ "alg": "RS256", "typ": "JWT" })),
        b64(json!({
            "iss": "https://auth.example.test",
            "sub": format!("user-{account}"),
            "aud": CLIENT_ID,
            "exp": 4_102_444_800_i64,
            "email": "dev@example.test",
            "https://api.openai.com/auth": {
                "chatgpt_account_id": account,
                "chatgpt_plan_type": "plus"
            }
        }))
    )
}

/// The S256 code challenge of a verifier: BASE64URL-NOPAD(SHA-256(verifier)).
pub fn s256(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}
