use crate::common;

// OAuth end to end, with real CLI processes against a fake authorization server started inside
// each test on 127.0.0.1 (tests/common/oauth_server.rs): the PKCE login through the loopback
// callback or a paste, its refusals, the device grant, setup-token, and the single-flight
// refresh across processes. Every CLI call pins the clock (T0 unless a test moves it).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::oauth_server::{Authorize, CLIENT_ID, DEVICE_GRANT, OAuthServer, USER_CODE, s256};
use common::{Home, T0, audit, code, stderr, stdout};
use serde_json::Value;

const SECOND: i64 = 1000;
/// The three stderr lines `login --oauth --no-browser` prints before it waits.
const PREAMBLE: usize = 3;

fn configure(home: &Home, server: &OAuthServer) {
    std::fs::write(
        home.path().join("config.toml"),
        server.config_toml("openai"),
    )
    .expect("write config.toml");
}

/// A CLI process whose stderr is read line by line on a thread, so a test can wait for a
/// line without hanging when it never comes.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

/// How a [`Running`] process ended.
struct Finished {
    code: i32,
    stdout: String,
    stderr: Vec<String>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn authledger");
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first (further) stderr line satisfying `wanted`.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no {what} on stderr; saw {:?}", self.seen),
            }
        }
    }

    /// Types a line on the process's stdin.
    fn paste(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{text}").expect("write stdin");
    }

    /// Waits (at most 90 s) for the exit, and collects stdout and every stderr line.
    fn finish(mut self) -> Finished {
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still running after 90 s; stderr so far: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(self.stdin.take());
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .expect("read stdout");
        self.seen.extend(self.lines.iter());
        Finished {
            code: status.code().expect("exited normally"),
            stdout: out,
            stderr: self.seen,
        }
    }

    /// SIGKILLs the process and reaps it.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("reap");
        assert!(status.code().is_none(), "killed by a signal: {status}");
    }
}

/// Starts `login openai --oauth --no-browser --timeout <timeout>` and waits for the authorize
/// URL it prints.
fn start_login(home: &Home, timeout: &str) -> (Running, url::Url) {
    let mut cmd = home.cmd();
    cmd.args([
        "login",
        "openai",
        "--oauth",
        "--no-browser",
        "--timeout",
        timeout,
    ]);
    let mut running = Running::spawn(cmd);
    let line = running.wait_for("authorize URL", |l| l.starts_with("http://"));
    let url = url::Url::parse(&line).expect("the printed URL parses");
    (running, url)
}

/// The browser step: GET the authorize URL and follow the redirect to the CLI's loopback.
/// Returns the final status and page.
fn browse(url: &url::Url) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = client.get(url.as_str()).send().expect("browser GET");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// The browser step without following: the `Location` the authorization server answers with.
fn redirect_location(url: &url::Url) -> url::Url {
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = client.get(url.as_str()).send().expect("browser GET");
    assert_eq!(r.status().as_u16(), 302, "the server redirects");
    let location = r.headers()["location"].to_str().unwrap();
    url::Url::parse(location).expect("Location parses")
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A whole login through the browser step; asserts it succeeded.
fn login(home: &Home, server: &OAuthServer) -> Finished {
    let (running, url) = start_login(home, "30s");
    let (status, page) = browse(&url);
    assert_eq!(status, 200, "the loopback answered: {page}");
    let done = running.finish();
    assert_eq!(done.code, 0, "login failed: {:?}", done.stderr);
    assert_eq!(server.problems(), Vec::<String>::new());
    done
}

/// The `<provider>/default` credential summary from `status --json` at `now`.
fn credential_at(home: &Home, now: i64, provider: &str) -> Value {
    let out = home.run_at(now, &["--json", "status", "--provider", provider]);
    assert_eq!(code(&out), 0, "status: {}", stderr(&out));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("status json");
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["provider"] == provider))
        .map(|r| r["credential"].clone())
        .unwrap_or_else(|| panic!("no {provider} row: {rows}"))
}

fn credential(home: &Home, provider: &str) -> Value {
    credential_at(home, T0, provider)
}

fn token_at(home: &Home, now: i64) -> Output {
    home.run_at(now, &["token", "openai"])
}

/// `redacted` shows a head and the last four characters, never the secret itself.
fn assert_redacts(redacted: &Value, secret: &str) {
    let r = redacted.as_str().expect("redacted is text");
    assert!(
        r.contains('…') && r.ends_with(&secret[secret.len() - 4..]) && !r.contains(secret),
        "{r:?} does not redact {secret:?}"
    );
}

fn refresh_claims(home: &Home) -> Vec<(String, i64)> {
    let conn = common::read_only(home);
    let mut stmt = conn
        .prepare("SELECT holder, expires_at FROM refresh_claims")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. The full login
// ---------------------------------------------------------------------------------------------

#[test]
fn a_full_login_checks_pkce_redirect_uri_and_client_id() {
    let server = OAuthServer::start();
    let home = Home::empty();
    configure(&home, &server);

    let (running, url) = start_login(&home, "30s");
    let (status, page) = browse(&url);
    assert_eq!(status, 200);
    assert!(page.contains("Authorization received"), "{page}");
    let done = running.finish();
    assert_eq!(done.code, 0, "{:?}", done.stderr);
    assert!(
        done.stdout.contains("stored openai/default: oauth"),
        "{}",
        done.stdout
    );

    // What the server saw and checked: the authorization request…
    assert_eq!(server.problems(), Vec::<String>::new());
    let authorize: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/authorize")
        .collect();
    assert_eq!(authorize.len(), 1);
    let a = &authorize[0];
    assert_eq!(a.param("response_type"), Some("code"));
    assert_eq!(a.param("client_id"), Some(CLIENT_ID));
    assert_eq!(a.param("code_challenge_method"), Some("S256"));
    assert_eq!(a.param("scope"), Some("openid offline_access"));
    assert_eq!(
        a.param("audience"),
        Some("test-api"),
        "extra_params are sent"
    );
    let redirect_uri = a.param("redirect_uri").unwrap();
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/callback"),
        "{redirect_uri}"
    );
    assert!(
        a.param("state").is_some_and(|s| s.len() >= 16),
        "a random state"
    );
    // …and the one code exchange: form-encoded, the verifier behind the challenge, the same
    // redirect URI, the client id in the body and no secret.
    let exchanges = server.token_requests("authorization_code");
    assert_eq!(exchanges.len(), 1);
    let x = &exchanges[0];
    assert_eq!(
        s256(x.param("code_verifier").unwrap()),
        a.param("code_challenge").unwrap()
    );
    assert_eq!(x.param("redirect_uri"), Some(redirect_uri));
    assert_eq!(x.param("client_id"), Some(CLIENT_ID));
    assert_eq!(x.param("client_secret"), None);

    // What the ledger holds: the tokens, expiring T0 + expires_in, shown redacted.
    let access = server.access_tokens()[0].clone();
    let c = credential(&home, "openai");
    assert_eq!(c["kind"], "oauth", "{c}");
    assert_eq!(c["tier"], "chatgpt");
    assert_eq!(c["source"], "oauth");
    assert_eq!(c["status"], "ok");
    assert_eq!(c["refreshable"], true);
    assert_eq!(c["expires_at_ms"], T0 + 3600 * SECOND);
    assert_eq!(c["scopes"], serde_json::json!(["openid", "offline_access"]));
    assert_no_secret_shown(&home, &access);
    assert_redacts(&c["redacted"], &access);
    let out = token_at(&home, T0);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), access);

    let logins = audit(&home, "login");
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["provider"], "openai");
    assert_eq!(logins[0]["detail"]["source"], "oauth");
    assert_eq!(logins[0]["detail"]["kind"], "oauth");
}

/// Neither `status` nor the audit trail ever shows a token.
fn assert_no_secret_shown(home: &Home, secret: &str) {
    for args in [&["--json", "status"][..], &["status"], &["--json", "audit"]] {
        let out = home.run(args);
        assert!(!stdout(&out).contains(secret), "{args:?} shows a secret");
    }
}

#[test]
fn a_login_without_refresh_token_or_expiry_is_stored_without_expiry() {
    let server = OAuthServer::start();
    server.set(|m| {
        m.expires_in = None;
        m.refresh_token = false;
        m.token_type = "bearer";
    });
    let home = Home::empty();
    configure(&home, &server);
    login(&home, &server);

    let access = server.access_tokens()[0].clone();
    let c = credential(&home, "openai");
    assert_eq!(c["kind"], "oauth", "{c}");
    assert_eq!(c["expires_at_ms"], Value::Null);
    assert_eq!(c["refreshable"], false);
    // With no expiry there is nothing to refresh, even a year later.
    let out = token_at(&home, T0 + 365 * 24 * 3600 * SECOND);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), access);
    assert!(server.token_requests("refresh_token").is_empty());
}

// ---------------------------------------------------------------------------------------------
// 2. The paste path
// ---------------------------------------------------------------------------------------------

#[test]
fn a_pasted_code_and_state_or_redirect_url_completes_the_login() {
    for paste_whole_url in [false, true] {
        let server = OAuthServer::start();
        let home = Home::empty();
        configure(&home, &server);
        let (mut running, url) = start_login(&home, "30s");
        let location = redirect_location(&url);
        let pasted = if paste_whole_url {
            location.to_string()
        } else {
            format!(
                "{}#{}",
                query(&location, "code").unwrap(),
                query(&location, "state").unwrap()
            )
        };
        running.paste(&pasted);
        let done = running.finish();
        assert_eq!(done.code, 0, "pasting {pasted}: {:?}", done.stderr);
        assert_eq!(server.problems(), Vec::<String>::new());
        assert_eq!(server.token_requests("authorization_code").len(), 1);
        let c = credential(&home, "openai");
        assert_eq!(c["kind"], "oauth", "{c}");
        assert_eq!(c["expires_at_ms"], T0 + 3600 * SECOND);
        assert_redacts(&c["redacted"], &server.access_tokens()[0]);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Refusals: exit 4, one error line, nothing stored
// ---------------------------------------------------------------------------------------------

/// A refused login: exit 4, the preamble then exactly one error line naming `needle`, and a
/// ledger snapshot equal to `before`.
fn assert_refused(home: &Home, before: &str, done: &Finished, needle: &str) {
    assert_eq!(done.code, 4, "{:?}", done.stderr);
    assert_eq!(done.stdout, "");
    let (last, earlier) = done.stderr.split_last().expect("stderr");
    assert_eq!(
        earlier.len(),
        PREAMBLE,
        "one error line after the URL: {earlier:?}"
    );
    assert!(
        last.starts_with("authledger: ") && last.contains(needle),
        "expected an error naming {needle:?}, got {last:?}"
    );
    assert_eq!(
        home.snapshot(),
        before,
        "a refused login changed the ledger"
    );
}

/// A home with the fixture credentials (so a refusal must also leave an existing OpenAI
/// credential alone) configured for `server`, and its snapshot.
fn refusal_home(server: &OAuthServer) -> (Home, String) {
    let home = Home::new();
    configure(&home, server);
    let before = home.snapshot();
    (home, before)
}

#[test]
fn a_pasted_state_mismatch_is_refused_before_any_token_request() {
    let server = OAuthServer::start();
    let (home, before) = refusal_home(&server);
    let (mut running, url) = start_login(&home, "30s");
    let location = redirect_location(&url);
    running.paste(&format!(
        "{}#forged-state",
        query(&location, "code").unwrap()
    ));
    let done = running.finish();
    assert_refused(&home, &before, &done, "state does not match");
    assert!(server.token_requests("authorization_code").is_empty());
}

#[test]
fn access_denied_is_refused() {
    let server = OAuthServer::start();
    server.set(|m| m.authorize = Authorize::Deny);
    let (home, before) = refusal_home(&server);
    let (running, url) = start_login(&home, "30s");
    let (_, page) = browse(&url);
    assert!(!page.contains("Authorization received"), "{page}");
    let done = running.finish();
    assert_refused(&home, &before, &done, "access_denied");
    assert!(server.token_requests("authorization_code").is_empty());
}

#[test]
fn nobody_completing_the_login_is_a_timeout() {
    let server = OAuthServer::start();
    let (home, before) = refusal_home(&server);
    let (running, _url) = start_login(&home, "1s");
    let done = running.finish();
    assert_refused(&home, &before, &done, "no authorization arrived within 1s");
    assert!(server.requests().is_empty());
}

#[test]
fn a_token_endpoint_400_is_refused() {
    let server = OAuthServer::start();
    server.set(|m| m.code_error = Some("invalid_request"));
    let (home, before) = refusal_home(&server);
    let (running, url) = start_login(&home, "30s");
    browse(&url);
    let done = running.finish();
    assert_refused(&home, &before, &done, "invalid_request");
    assert_eq!(server.token_requests("authorization_code").len(), 1);
    assert_eq!(server.problems(), Vec::<String>::new());
}

/// A callback with another state (anyone on this machine can send one) is answered with an
/// error page and ignored: the login goes on waiting and completes with the real one.
#[test]
fn a_forged_callback_is_ignored_while_the_real_one_completes() {
    let server = OAuthServer::start();
    let (home, _before) = refusal_home(&server);
    let (running, url) = start_login(&home, "30s");
    let redirect_uri = query(&url, "redirect_uri").unwrap();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for forged in [
        format!("{redirect_uri}?code=forged-code&state=forged-state"),
        format!("{redirect_uri}?error=access_denied&state=forged-state"),
        format!("{redirect_uri}?code=forged-code"),
    ] {
        let r = client.get(&forged).send().expect("forged callback");
        assert_eq!(r.status().as_u16(), 400, "{forged}");
        let page = r.text().unwrap_or_default();
        assert!(
            page.contains("ignored") && !page.contains("Authorization received"),
            "{page}"
        );
    }
    let (status, page) = browse(&url);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Authorization received"), "{page}");
    let done = running.finish();
    assert_eq!(
        done.code, 0,
        "the real callback completed: {:?}",
        done.stderr
    );
    let exchanges = server.token_requests("authorization_code");
    assert_eq!(exchanges.len(), 1);
    assert_ne!(exchanges[0].param("code"), Some("forged-code"));
    assert_eq!(server.problems(), Vec::<String>::new());
    assert_redacts(
        &credential(&home, "openai")["redacted"],
        &server.access_tokens()[0],
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Configuration errors
// ---------------------------------------------------------------------------------------------

fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait")
}

/// Exit 2, one stderr line containing `needle`, nothing changed.
fn assert_usage_error(home: &Home, before: &str, out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(code(out), 2, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
    assert_eq!(home.snapshot(), before);
}

#[test]
fn a_missing_client_id_is_named() {
    let server = OAuthServer::start();
    let home = Home::new();
    let config: String = server
        .config_toml("openai")
        .lines()
        .filter(|l| !l.starts_with("client_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(home.path().join("config.toml"), config).unwrap();
    let before = home.snapshot();
    for flow in ["--oauth", "--device"] {
        let mut cmd = home.cmd();
        cmd.args(["login", "openai", flow]);
        let out = run_with_stdin(cmd, "");
        assert_usage_error(&home, &before, &out, "providers.openai.oauth.client_id");
    }
    assert!(server.requests().is_empty());
}

#[test]
fn no_claude_subscription_oauth_flow_of_our_own() {
    let home = Home::new();
    std::fs::write(
        home.path().join("config.toml"),
        "[providers.claude.oauth]\n\
         authorize_url = \"https://claude.ai/oauth/authorize\"\n\
         token_url = \"https://console.anthropic.com/v1/oauth/token\"\n\
         device_authorization_url = \"https://claude.ai/oauth/device\"\n\
         client_id = \"someone-elses-client\"\n",
    )
    .unwrap();
    let before = home.snapshot();
    for flow in ["--oauth", "--device"] {
        let mut cmd = home.cmd();
        cmd.args(["login", "claude", flow]);
        if flow == "--oauth" {
            cmd.arg("--no-browser");
        }
        let out = run_with_stdin(cmd, "");
        assert_usage_error(&home, &before, &out, "setup-token");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. setup-token
// ---------------------------------------------------------------------------------------------

#[test]
fn a_setup_token_is_stored_as_a_max_oauth_credential() {
    let home = Home::empty();
    let token = "sk-ant-oat01-Qm9vYmFyYmF6cXV4LXNldHVwLXRva2VuLWZvci10ZXN0cy0xMjM0NTY3ODkw";
    let mut cmd = home.cmd();
    cmd.args(["login", "claude", "--setup-token"]);
    let out = run_with_stdin(cmd, &format!("{token}\n"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let c = credential(&home, "claude");
    assert_eq!(c["kind"], "oauth", "{c}");
    assert_eq!(c["tier"], "max");
    assert_eq!(c["source"], "setup-token");
    assert_eq!(c["expires_at_ms"], Value::Null);
    assert_eq!(c["refreshable"], false);
    assert_redacts(&c["redacted"], token);
    let out = home.run(&["token", "claude"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), token);
    assert_eq!(audit(&home, "login").len(), 1);

    let before = home.snapshot();
    for not_a_token in [
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
        "hello",
        "",
    ] {
        let mut cmd = home.cmd();
        cmd.args(["login", "claude", "--setup-token"]);
        let out = run_with_stdin(cmd, &format!("{not_a_token}\n"));
        let needle = if not_a_token.is_empty() {
            "no key on stdin"
        } else {
            "sk-ant-oat"
        };
        assert_usage_error(&home, &before, &out, needle);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. The device grant
// ---------------------------------------------------------------------------------------------

#[test]
fn a_device_login_shows_the_code_and_stores_the_tokens() {
    let server = OAuthServer::start();
    let home = Home::empty();
    configure(&home, &server);
    let mut cmd = home.cmd();
    cmd.args(["login", "openai", "--device"]);
    let done = Running::spawn(cmd).finish();
    assert_eq!(done.code, 0, "{:?}", done.stderr);
    let said = done.stderr.join("\n");
    assert!(
        said.contains(USER_CODE) && said.contains(&server.url("/device")),
        "the user code and verification URI are shown: {said}"
    );
    assert_eq!(server.problems(), Vec::<String>::new());
    let device = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/device/code")
        .expect("a device authorization request");
    assert_eq!(device.param("client_id"), Some(CLIENT_ID));
    assert_eq!(device.param("scope"), Some("openid offline_access"));
    assert_eq!(server.token_requests(DEVICE_GRANT).len(), 1);

    let c = credential(&home, "openai");
    assert_eq!(c["kind"], "oauth", "{c}");
    assert_eq!(c["expires_at_ms"], T0 + 3600 * SECOND);
    assert_eq!(c["account_id"], server.account_ids()[0].as_str(), "{c}");
    assert_redacts(&c["redacted"], &server.access_tokens()[0]);
    assert_eq!(audit(&home, "login").len(), 1);
}

/// The pauses between device polls, recorded instead of waited out: the server's interval
/// while pending, 5 s more after `slow_down` (RFC 8628 section 3.5).
#[test]
fn the_device_grant_polls_at_the_interval_and_slows_down() {
    use std::sync::Mutex;

    use authledger::Provider;
    use authledger::config_file::ConfigFile;

    let server = OAuthServer::start();
    server.set(|m| {
        m.pending_polls = 2;
        m.slow_down = true;
    });
    let file = ConfigFile::parse(
        std::path::Path::new("config.toml"),
        &server.config_toml("openai"),
    )
    .unwrap();
    let cfg = file
        .provider(Provider::Openai)
        .and_then(|p| p.oauth.clone())
        .unwrap();
    let pauses = Mutex::new(Vec::new());
    let polls_at_pause = Mutex::new(Vec::new());
    let tokens = authledger::oauth::device_login_with(
        &cfg,
        Provider::Openai,
        |_, code, _| assert_eq!(code, USER_CODE),
        |d| {
            pauses.lock().unwrap().push(d);
            polls_at_pause
                .lock()
                .unwrap()
                .push(server.token_requests(DEVICE_GRANT).len());
        },
    )
    .expect("device login");
    assert_eq!(
        tokens.access_token.expose_secret(),
        server.access_tokens()[0]
    );
    assert!(tokens.id_token.is_some(), "the id_token is kept");
    let s = Duration::from_secs;
    // Two authorization_pending, one slow_down, then the tokens: a pause after each refusal.
    assert_eq!(*pauses.lock().unwrap(), vec![s(1), s(1), s(6)]);
    assert_eq!(*polls_at_pause.lock().unwrap(), vec![1, 2, 3]);
    assert_eq!(server.token_requests(DEVICE_GRANT).len(), 4);
    assert_eq!(server.problems(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// 7–9. Refresh: single-flight across processes, invalid_grant, a killed claimer
// ---------------------------------------------------------------------------------------------

/// A home logged in at T0 with a token that expires in 2 minutes (inside the 5-minute refresh
/// margin), against a server whose later tokens live an hour. Returns the home, the access
/// token and the refresh token of that login.
fn logged_in_near_expiry(server: &OAuthServer) -> (Home, String, String) {
    server.set(|m| m.expires_in = Some(120));
    let home = Home::empty();
    configure(&home, server);
    login(&home, server);
    server.set(|m| m.expires_in = Some(3600));
    let c = credential(&home, "openai");
    assert_eq!(c["expires_at_ms"], T0 + 120 * SECOND, "{c}");
    (
        home,
        server.access_tokens()[0].clone(),
        server.refresh_tokens()[0].clone(),
    )
}

/// Starts 16 `token openai` processes at once, all at T0, and waits for them all.
fn sixteen_token_processes(home: &Home) -> Vec<Output> {
    let children: Vec<Child> = (0..16)
        .map(|_| {
            home.cmd()
                .args(["token", "openai"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn token")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect()
}

#[test]
fn sixteen_processes_refresh_once() {
    // Whether a loser of the race slips through depends on timing, so three independent rounds.
    for round in 1..=3 {
        let server = OAuthServer::start();
        let (home, old, old_refresh) = logged_in_near_expiry(&server);
        server.set(|m| m.refresh_delay = Duration::from_millis(500));

        let started = Instant::now();
        let outs = sixteen_token_processes(&home);
        println!(
            "round {round}: 16 concurrent `token` calls took {:?}",
            started.elapsed()
        );
        for (i, out) in outs.iter().enumerate().filter(|(_, o)| code(o) != 0) {
            println!("round {round}: process {i} failed: {}", stderr(out).trim());
        }

        let refreshes = server.token_requests("refresh_token");
        assert_eq!(
            server.replays(),
            Vec::<String>::new(),
            "round {round}: a refresh token was presented twice"
        );
        assert_eq!(refreshes.len(), 1, "round {round}: one refresh request");
        assert_eq!(
            refreshes[0].param("refresh_token"),
            Some(old_refresh.as_str())
        );
        assert_eq!(refreshes[0].param("client_id"), Some(CLIENT_ID));
        let new = server.access_tokens().last().unwrap().clone();
        assert_ne!(new, old);
        for (i, out) in outs.iter().enumerate() {
            assert_eq!(code(out), 0, "round {round}: process {i}: {}", stderr(out));
            assert_eq!(
                stdout(out).trim(),
                new,
                "round {round}: process {i}'s token"
            );
        }

        let rows = audit(&home, "refresh");
        assert_eq!(rows.len(), 1, "round {round}: {rows:?}");
        assert_eq!(rows[0]["detail"]["outcome"], "ok");
        let c = credential(&home, "openai");
        assert_eq!(c["refreshed_at_ms"], T0, "{c}");
        assert_eq!(c["expires_at_ms"], T0 + 3600 * SECOND);
        assert_eq!(c["status"], "ok");
        assert_redacts(&c["redacted"], &new);
        assert!(refresh_claims(&home).is_empty(), "the claim was released");

        // The rotated refresh token was kept: the next refresh (near the new expiry) presents
        // the one the first refresh issued.
        server.set(|m| m.refresh_delay = Duration::ZERO);
        let out = token_at(&home, T0 + 3600 * SECOND - 60 * SECOND);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let refreshes = server.token_requests("refresh_token");
        assert_eq!(refreshes.len(), 2);
        assert_eq!(
            refreshes[1].param("refresh_token"),
            Some(server.refresh_tokens()[1].as_str())
        );
        assert_eq!(server.replays(), Vec::<String>::new());
        assert_eq!(stdout(&out).trim(), server.access_tokens().last().unwrap());
    }
}

#[test]
fn invalid_grant_marks_the_credential_as_needing_login() {
    let server = OAuthServer::start();
    let (home, _old, _) = logged_in_near_expiry(&server);
    server.forget_refresh_tokens();

    let out = token_at(&home, T0);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("log in again"), "{}", stderr(&out));
    assert_eq!(server.token_requests("refresh_token").len(), 1);

    let c = credential(&home, "openai");
    assert_eq!(c["status"], "needs_login", "{c}");
    let out = home.run(&[
        "lease",
        "acquire",
        "--agent",
        "a",
        "--provider",
        "openai",
        "--tokens",
        "100",
    ]);
    assert_eq!(code(&out), 4, "lease acquire: {}", stderr(&out));
    let rows = audit(&home, "refresh");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["detail"]["outcome"], "invalid_grant");

    // Asking again does not present the refused token again.
    let out = token_at(&home, T0);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(server.token_requests("refresh_token").len(), 1);

    // A new login makes it usable again.
    login(&home, &server);
    assert_eq!(credential(&home, "openai")["status"], "ok");
    let out = token_at(&home, T0);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), server.access_tokens().last().unwrap());
}

#[test]
fn a_killed_claimer_is_taken_over_after_its_claim_expires() {
    use std::sync::Arc;

    use authledger::config_file::ConfigFile;
    use authledger::{Account, KeySource, Ledger, LedgerConfig, ManualClock, Provider};

    let server = OAuthServer::start();
    let (home, old, old_refresh) = logged_in_near_expiry(&server);

    // A `token` process takes the claim and is killed before its refresh request.
    let mut cmd = home.cmd();
    cmd.env("AUTHLEDGER_FAULT", "refresh:claimed")
        .args(["token", "openai"]);
    let mut claimer = Running::spawn(cmd);
    claimer.wait_for("the fault point", |l| {
        l.contains("fault point refresh:claimed reached")
    });
    claimer.kill();
    assert!(server.token_requests("refresh_token").is_empty());
    let claims = refresh_claims(&home);
    assert_eq!(claims.len(), 1, "the dead claimer's claim is left behind");
    assert_eq!(claims[0].1, T0 + 30 * SECOND, "claims live 30 s");

    // While the claim is live nobody else refreshes; a caller that gives up waiting gets the
    // old token, which is still valid. (Through the library, to wait 1 s instead of the CLI's
    // 40 s.)
    let file = ConfigFile::parse(
        std::path::Path::new("config.toml"),
        &server.config_toml("openai"),
    )
    .unwrap();
    let mut config = LedgerConfig::new(home.db())
        .with_clock(Arc::new(ManualClock::new(T0 + 10 * SECOND)))
        .with_key(KeySource::File(home.path().join("keys").join("master.key")))
        .with_file_config(file);
    config.refresh.wait = Duration::from_secs(1);
    let ledger = Ledger::open(config).unwrap();
    let token = ledger
        .access_token(Provider::Openai, &Account::default())
        .unwrap();
    assert_eq!(token.expose_secret(), old);
    assert!(server.token_requests("refresh_token").is_empty());
    drop(ledger);

    // After the claim expired, the next caller takes over and refreshes, once.
    let started = Instant::now();
    let out = token_at(&home, T0 + 31 * SECOND);
    println!("the take-over took {:?}", started.elapsed());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let refreshes = server.token_requests("refresh_token");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(
        refreshes[0].param("refresh_token"),
        Some(old_refresh.as_str())
    );
    assert_eq!(server.replays(), Vec::<String>::new());
    let new = server.access_tokens().last().unwrap().clone();
    assert_ne!(new, old);
    assert_eq!(stdout(&out).trim(), new);
    assert!(refresh_claims(&home).is_empty());
    let rows = audit(&home, "refresh");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["detail"]["outcome"], "ok");
    assert_eq!(
        credential_at(&home, T0 + 31 * SECOND, "openai")["refreshed_at_ms"],
        T0 + 31 * SECOND
    );
}

// ---------------------------------------------------------------------------------------------
// 10. A credential's identity, and where its refresh token may go
// ---------------------------------------------------------------------------------------------

/// A refresh that read the old credential is still in flight when the user logs out and logs
/// in again: its answer (new tokens, or `invalid_grant`) must not land on the new login.
#[test]
fn a_refresh_in_flight_never_overwrites_a_newer_login() {
    for refused in [false, true] {
        let server = OAuthServer::start();
        let (home, _old, _) = logged_in_near_expiry(&server);
        if refused {
            server.forget_refresh_tokens();
        }
        server.set(|m| m.refresh_hold = true);
        let mut cmd = home.cmd();
        cmd.args(["token", "openai"]);
        let refresher = Running::spawn(cmd);
        // The refresh request has reached the token endpoint; its answer is held.
        server.wait_for_requests("/token", 2);
        assert_eq!(server.token_requests("refresh_token").len(), 1);

        let out = home.run(&["logout", "openai"]);
        assert_eq!(code(&out), 0, "logout: {}", stderr(&out));
        login(&home, &server);
        let new = server.access_tokens().last().unwrap().clone();
        let new_account = server.account_ids().last().unwrap().clone();

        server.release();
        let done = refresher.finish();
        assert_eq!(done.code, 0, "refused={refused}: {:?}", done.stderr);
        assert_eq!(done.stdout.trim(), new, "the refresher reads the new login");

        let c = credential(&home, "openai");
        assert_redacts(&c["redacted"], &new);
        assert_eq!(c["account_id"], new_account.as_str(), "{c}");
        assert_eq!(c["status"], "ok", "refused={refused}: {c}");
        assert_eq!(c["refreshed_at_ms"], Value::Null, "no refresh on top: {c}");
        let rows = audit(&home, "refresh");
        assert_eq!(rows.len(), 1, "{rows:?}");
        let expected = if refused {
            "invalid_grant"
        } else {
            "superseded"
        };
        assert_eq!(rows[0]["detail"]["outcome"], expected, "{rows:?}");
        if refused {
            assert_eq!(rows[0]["detail"]["superseded"], true, "{rows:?}");
        }
    }
}

/// The tokens of a login are refreshed only at the token endpoint and with the client that
/// issued them: pointing the configuration elsewhere sends nothing there.
#[test]
fn a_token_is_refreshed_only_where_it_was_issued() {
    let server = OAuthServer::start();
    let (home, old, _) = logged_in_near_expiry(&server);
    let other = OAuthServer::start();
    configure(&home, &other);

    // Still valid: served as it is.
    let out = token_at(&home, T0);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), old);
    // Expired: refused with what to do, and nothing sent anywhere.
    let out = token_at(&home, T0 + 121 * SECOND);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("log in again") && err.contains(&server.url("/token")),
        "{err}"
    );
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    assert!(server.token_requests("refresh_token").is_empty());
}

/// A login the ledger made before it recorded each login's token endpoint is refreshed at the
/// configured endpoint once, which is then recorded: a later change of configuration no longer
/// moves it.
#[test]
fn a_login_from_before_endpoints_were_recorded_adopts_the_configured_one() {
    let server = OAuthServer::start();
    let (home, old, _) = logged_in_near_expiry(&server);
    let forget = "UPDATE credentials SET refresh_token_url = NULL, refresh_client_id = NULL";
    assert_eq!(common::raw(&home.db()).execute(forget, []).unwrap(), 1);
    let out = token_at(&home, T0);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_ne!(stdout(&out).trim(), old, "refreshed");
    assert_eq!(server.token_requests("refresh_token").len(), 1);
    let recorded: Vec<Vec<String>> = common::query_rows(
        &home.db(),
        "SELECT refresh_token_url FROM credentials WHERE provider = 'openai'",
    );
    assert_eq!(recorded, vec![vec![server.url("/token")]]);
    // An import never adopts an endpoint.
    let import = "UPDATE credentials SET refresh_token_url = NULL, refresh_client_id = NULL, source = 'codex'";
    assert_eq!(common::raw(&home.db()).execute(import, []).unwrap(), 1);
    let out = token_at(&home, T0 + 3_600_000 * 24);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(server.token_requests("refresh_token").len(), 1);
}

/// The OAuth token client never follows a redirect: a refresh token must not be carried to
/// another endpoint.
#[test]
fn the_token_client_does_not_follow_redirects() {
    let server = OAuthServer::start();
    let (home, old, _) = logged_in_near_expiry(&server);
    server.set(|m| m.token_redirect = true);
    let out = token_at(&home, T0);
    assert_eq!(code(&out), 0, "the old token serves: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), old);
    let elsewhere: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/elsewhere")
        .collect();
    assert!(elsewhere.is_empty(), "followed the redirect: {elsewhere:?}");
    assert_eq!(server.token_requests("refresh_token").len(), 1);
}

/// A refresh that timed out may have rotated the token: it is not retried, and the old token
/// serves while it is valid.
#[test]
fn a_timed_out_refresh_is_not_retried_and_the_old_token_serves() {
    let server = OAuthServer::start();
    let (home, old, _) = logged_in_near_expiry(&server);
    server.set(|m| m.refresh_hang = true);
    let out = token_at(&home, T0);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), old);
    assert_eq!(
        server.token_requests("refresh_token").len(),
        1,
        "one attempt, never a blind retry"
    );
    let rows = audit(&home, "refresh");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["detail"]["outcome"], "ambiguous");
    assert!(refresh_claims(&home).is_empty(), "the claim was released");
    let c = credential(&home, "openai");
    assert_eq!(c["status"], "ok", "{c}");
    assert_redacts(&c["redacted"], &old);
}

// ---------------------------------------------------------------------------------------------
// 11. The id_token and Codex
// ---------------------------------------------------------------------------------------------

/// `run --provider openai` with a shell that prints its Codex `auth.json`, at `now`.
fn codex_auth_under_run(home: &Home, now: i64) -> Value {
    let out = home.run_at(
        now,
        &[
            "run",
            "--no-meter",
            "--agent",
            "coder",
            "--provider",
            "openai",
            "--",
            "sh",
            "-c",
            "cat \"$CODEX_HOME/auth.json\"",
        ],
    );
    assert_eq!(code(&out), 0, "run: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("auth.json is JSON")
}

#[test]
fn an_oauth_login_with_an_id_token_gives_codex_its_auth_json_under_run() {
    let server = OAuthServer::start();
    let home = Home::empty();
    configure(&home, &server);
    login(&home, &server);
    let account = server.account_ids()[0].clone();
    assert_eq!(credential(&home, "openai")["account_id"], account.as_str());

    let auth = codex_auth_under_run(&home, T0);
    assert_eq!(auth["auth_mode"], "chatgpt", "{auth}");
    assert_eq!(auth["OPENAI_API_KEY"], Value::Null);
    let tokens = &auth["tokens"];
    assert_eq!(
        tokens["id_token"],
        common::oauth_server::id_token(&account).as_str()
    );
    assert_eq!(tokens["access_token"], server.access_tokens()[0].as_str());
    assert_eq!(tokens["account_id"], account.as_str());
    assert_eq!(
        tokens["refresh_token"], "",
        "agents never get the refresh token"
    );
}

#[test]
fn run_hands_over_a_token_it_refreshed_first_with_the_new_id_token() {
    let server = OAuthServer::start();
    let (home, old, _) = logged_in_near_expiry(&server);
    let auth = codex_auth_under_run(&home, T0);
    assert_eq!(server.token_requests("refresh_token").len(), 1);
    let new = server.access_tokens()[1].clone();
    assert_ne!(new, old);
    let account = server.account_ids()[1].clone();
    assert_eq!(auth["tokens"]["access_token"], new.as_str(), "{auth}");
    assert_eq!(
        auth["tokens"]["id_token"],
        common::oauth_server::id_token(&account).as_str()
    );
    assert_eq!(auth["tokens"]["account_id"], account.as_str());
}

// ---------------------------------------------------------------------------------------------
// 12. The daemon refreshes ahead of expiry
// ---------------------------------------------------------------------------------------------

#[test]
fn the_daemon_refreshes_a_token_ahead_of_expiry_once() {
    let server = OAuthServer::start();
    server.set(|m| m.expires_in = Some(301));
    let home = Home::empty();
    configure(&home, &server);
    login(&home, &server);
    server.set(|m| m.expires_in = Some(3600));
    let old = server.access_tokens()[0].clone();
    // Outside `token`'s 5-minute margin: it does not refresh.
    let out = token_at(&home, T0);
    assert_eq!(stdout(&out).trim(), old, "{}", stderr(&out));
    assert!(server.token_requests("refresh_token").is_empty());

    // The daemon looks 5 min + 2 x --refresh-every ahead, every second.
    let mut cmd = home.cmd();
    cmd.args(["daemon", "--interval", "1h", "--refresh-every", "1s"]);
    let mut daemon = Running::spawn(cmd);
    daemon.wait_for("the refresh", |l| l.contains("refreshed openai/default"));
    let new = server.access_tokens()[1].clone();
    let out = token_at(&home, T0);
    assert_eq!(stdout(&out).trim(), new, "{}", stderr(&out));
    std::process::Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let done = daemon.finish();
    assert_eq!(done.code, 0, "{:?}", done.stderr);
    assert_eq!(
        server.token_requests("refresh_token").len(),
        1,
        "exactly one refresh"
    );
    let rows = audit(&home, "refresh");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["detail"]["outcome"], "ok");
    assert_eq!(
        credential(&home, "openai")["expires_at_ms"],
        T0 + 3600 * SECOND
    );
}
