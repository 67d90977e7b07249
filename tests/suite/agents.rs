use crate::common;

// `authledger run` with a small `sh -c` script as the agent (the environment it sees for each
// credential kind, exit codes, signals, a killed supervisor), `authledger env`, and the
// fallback of `lease acquire --provider auto`. Every CLI call pins the clock (T0 unless a test
// moves it); nothing sleeps to let time pass. Processes are waited for with bounded polling.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::oauth_server::OAuthServer;
use common::{Home, T0, audit, code, fixture, json_at, mode, must, stderr, stdout};
use serde_json::Value;

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
/// How long any process of these tests may take before the test gives up on it.
const PATIENCE: Duration = Duration::from_secs(60);

const CLAUDE_API_KEY: &str = "sk-ant-api03-FAKEKEY-0123456789abcdef";
const OPENAI_API_KEY: &str = "sk-proj-FAKEKEY-0123456789abcdef";
/// The access token in fixtures/claude-code-credentials.json.
const CLAUDE_OAUTH_TOKEN: &str = "sk-ant-oat01-FAKE";
/// Credentials a parent process may carry, which an agent must never inherit as they are.
const PARENT_SECRETS: &[(&str, &str)] = &[
    ("ANTHROPIC_API_KEY", "sk-ant-api03-PARENT-anthropic"),
    ("CLAUDE_API_KEY", "sk-ant-api03-PARENT-claude"),
    ("ANTHROPIC_AUTH_TOKEN", "PARENT-auth-token"),
    ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-PARENT"),
    ("OPENAI_API_KEY", "sk-proj-PARENT-openai"),
    ("CODEX_API_KEY", "sk-proj-PARENT-codex"),
    ("OPENCODE_AUTH_CONTENT", "{\"parent\":true}"),
    ("ANTHROPIC_BASE_URL", "http://parent.invalid"),
    ("OPENAI_BASE_URL", "http://parent.invalid/v1"),
    ("CODEX_HOME", "/nonexistent/parent-codex-home"),
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Every lease, ended ones included.
fn leases(home: &Home) -> Vec<Value> {
    json_at(home, T0, &["lease", "list", "--all"])
        .as_array()
        .expect("lease list is an array")
        .clone()
}

fn lease(home: &Home, id: &str) -> Value {
    leases(home)
        .into_iter()
        .find(|l| l["lease_id"] == id)
        .unwrap_or_else(|| panic!("no lease {id} in `lease list --all`"))
}

fn active_leases(home: &Home) -> Vec<Value> {
    leases(home)
        .into_iter()
        .filter(|l| l["state"] == "active")
        .collect()
}

/// The exit code `run` put in the `release` audit row of `lease_id`.
fn released_exit_code(home: &Home, lease_id: &str) -> Value {
    let rows = audit(home, "release");
    let row = rows
        .iter()
        .find(|r| r["lease_id"] == lease_id)
        .unwrap_or_else(|| panic!("no release row for {lease_id}: {rows:?}"));
    let d = &row["detail"];
    if d.get("exit_code").is_some() {
        d["exit_code"].clone()
    } else {
        d["holder"]["exit_code"].clone()
    }
}

/// Stores an API key through `login --api-key-stdin`.
fn login_key(home: &Home, provider: &str, account: &str, key: &str) {
    let mut child = home
        .cmd()
        .args(["login", provider, "--account", account, "--api-key-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn login");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{key}\n").as_bytes())
        .unwrap();
    must(
        child.wait_with_output().unwrap(),
        &format!("login {provider} --account {account}"),
    );
}

/// `lease acquire --json` at `now` with `args`, asserting success.
fn acquire_at(home: &Home, now: i64, args: &[&str]) -> Value {
    let mut all = vec!["lease", "acquire"];
    all.extend_from_slice(args);
    json_at(home, now, &all)
}

fn acquire(home: &Home, args: &[&str]) -> Value {
    acquire_at(home, T0, args)
}

/// Polls `done` every 10 ms until it holds; panics after [`PATIENCE`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A scratch directory the agent script writes into (`$SCRATCH`).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("scratch dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_else(|e| panic!("{name} in the scratch dir: {e}"))
    }

    /// The environment the agent dumped with `env > "$SCRATCH/env"`.
    fn env(&self) -> BTreeMap<String, String> {
        parse_env(&self.read("env"))
    }
}

/// Parses `env` output; a line without `=` continues the previous value.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                vars.insert(k.to_string(), v.to_string());
                last = Some(k.to_string());
            }
            _ => {
                if let Some(k) = &last {
                    let v: &mut String = vars.get_mut(k).unwrap();
                    v.push('\n');
                    v.push_str(line);
                }
            }
        }
    }
    vars
}

/// `authledger run <args> -- sh -c '<script>'` at `now`, with `SCRATCH` and `parent` in the
/// supervisor's environment (which `cmd_at` otherwise clears but for PATH).
fn run_cmd(
    home: &Home,
    now: i64,
    scratch: &Scratch,
    args: &[&str],
    parent: &[(&str, &str)],
    script: &str,
) -> Command {
    let mut cmd = home.cmd_at(now);
    cmd.arg("run")
        .args(args)
        .args(["--", "sh", "-c", script])
        .env("SCRATCH", scratch.dir.path());
    for (k, v) in parent {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs an agent that dumps its environment and then runs `script`; returns `run`'s output
/// the environment the agent saw, and the scratch directory.
fn run_agent(
    home: &Home,
    args: &[&str],
    parent: &[(&str, &str)],
    script: &str,
) -> (Output, BTreeMap<String, String>, Scratch) {
    let scratch = Scratch::new();
    let script = format!("env > \"$SCRATCH/env\"\n{script}");
    let child = run_cmd(home, T0, &scratch, args, parent, &script)
        .spawn()
        .expect("spawn run");
    let out = finish(Reaped(Some(child)));
    let env = scratch.env();
    (out, env, scratch)
}

/// A child process killed and reaped when dropped, so a failing test leaves nothing behind.
struct Reaped(Option<Child>);

impl Reaped {
    fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A process that is not our child (an agent whose supervisor was killed), SIGKILLed when
/// dropped.
struct Stray(i32);

impl Drop for Stray {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Waits (bounded) for the process to end and collects its output.
fn finish(mut child: Reaped) -> Output {
    let c = child.0.as_mut().unwrap();
    wait_until("the process to end", || {
        c.try_wait().expect("try_wait").is_some()
    });
    child.0.take().unwrap().wait_with_output().expect("output")
}

/// Waits until process `pid` has handlers for SIGHUP, SIGINT and SIGTERM installed (Linux:
/// `SigCgt` in /proc; elsewhere nothing to look at, so no wait).
fn wait_for_signal_handlers(pid: i32) {
    let status = format!("/proc/{pid}/status");
    if !Path::new(&status).exists() {
        return;
    }
    let wanted: u64 = [1u32, 2, 15].iter().map(|s| 1u64 << (s - 1)).sum();
    wait_until("run's signal handlers", || {
        std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("SigCgt:"))
                    .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            })
            .is_some_and(|mask| mask & wanted == wanted)
    });
}

fn send(pid: i32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("send a signal");
}

/// The bits every agent gets whatever its credential (README "Agent environment").
fn assert_session_vars(home: &Home, env: &BTreeMap<String, String>, agent: &str, provider: &str) {
    let id = env
        .get("AUTHLEDGER_LEASE_ID")
        .unwrap_or_else(|| panic!("AUTHLEDGER_LEASE_ID missing: {env:?}"));
    let l = lease(home, id);
    assert_eq!(l["agent"], agent, "{l}");
    assert_eq!(l["provider"], provider, "{l}");
    assert_eq!(
        env.get("AUTHLEDGER_DB").map(PathBuf::from),
        Some(home.db()),
        "AUTHLEDGER_DB"
    );
    assert_eq!(env.get("AGENT_ID").map(String::as_str), Some(agent));
    assert_eq!(
        env.get("ACTIVE_AUTH_PROVIDER").map(String::as_str),
        Some(provider)
    );
    let expires = chrono::DateTime::from_timestamp_millis(l["expires_at_ms"].as_i64().unwrap())
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        env.get("AUTHLEDGER_LEASE_EXPIRES_AT"),
        Some(&expires),
        "the lease's expiry: {l}"
    );
    let allocated = l["allocated_tokens"]
        .as_i64()
        .expect("allocated")
        .to_string();
    match provider {
        "claude" => {
            assert_eq!(env.get("CLAUDE_AGENT_ID").map(String::as_str), Some(agent));
            assert_eq!(
                env.get("CLAUDE_MAX_TOKENS_ALLOCATED"),
                Some(&allocated),
                "the lease's allocation"
            );
            let session = env.get("CLAUDE_SESSION_ID").expect("CLAUDE_SESSION_ID");
            let groups: Vec<usize> = session.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "a UUID: {session}");
            assert!(
                !env.contains_key("OPENAI_AGENT_QUOTA"),
                "no OpenAI quota for a Claude lease"
            );
        }
        "openai" => {
            assert_eq!(env.get("OPENAI_AGENT_QUOTA"), Some(&allocated));
            assert!(!env.contains_key("CLAUDE_SESSION_ID"));
        }
        other => panic!("provider {other}"),
    }
}

/// `OPENCODE_AUTH_CONTENT` as JSON: opencode's auth.json with the one provider entry.
fn opencode_entry(env: &BTreeMap<String, String>, key: &str) -> Value {
    let text = env
        .get("OPENCODE_AUTH_CONTENT")
        .expect("OPENCODE_AUTH_CONTENT");
    let v: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("OPENCODE_AUTH_CONTENT is not JSON ({e}): {text}"));
    let obj = v.as_object().expect("an object keyed by provider id");
    assert_eq!(obj.len(), 1, "only the lease's provider: {v}");
    v.get(key)
        .unwrap_or_else(|| panic!("no {key:?} entry: {v}"))
        .clone()
}

fn assert_absent(env: &BTreeMap<String, String>, vars: &[&str]) {
    for v in vars {
        assert!(
            !env.contains_key(*v),
            "{v} must not reach the agent, got {:?}",
            env.get(*v)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The environment per credential kind, through `run`
// ---------------------------------------------------------------------------------------------

#[test]
fn a_claude_api_key_goes_in_both_key_variables_and_nothing_else() {
    let home = Home::new();
    login_key(&home, "claude", "key", CLAUDE_API_KEY);
    let (out, env, _) = run_agent(
        &home,
        &[
            "--no-meter",
            "--agent",
            "keyed",
            "--provider",
            "claude",
            "--account",
            "key",
        ],
        PARENT_SECRETS,
        "exit 0",
    );
    must(out, "run");
    assert_eq!(
        env.get("ANTHROPIC_API_KEY").map(String::as_str),
        Some(CLAUDE_API_KEY)
    );
    assert_eq!(
        env.get("CLAUDE_API_KEY").map(String::as_str),
        Some(CLAUDE_API_KEY)
    );
    assert_absent(
        &env,
        &[
            "CLAUDE_CODE_OAUTH_TOKEN",
            "ANTHROPIC_AUTH_TOKEN",
            "OPENAI_API_KEY",
            "CODEX_API_KEY",
            "CODEX_HOME",
            "ANTHROPIC_BASE_URL",
            "CLAUDE_BASE_URL",
            "OPENAI_BASE_URL",
        ],
    );
    assert_session_vars(&home, &env, "keyed", "claude");
    assert_eq!(
        opencode_entry(&env, "anthropic"),
        serde_json::json!({ "type": "api", "key": CLAUDE_API_KEY })
    );
    let id = &env["AUTHLEDGER_LEASE_ID"];
    assert_eq!(lease(&home, id)["account"], "key");
    assert_eq!(lease(&home, id)["state"], "released");
}

#[test]
fn a_claude_agent_gets_the_configured_base_url_and_its_rate_limit() {
    let home = Home::empty();
    std::fs::write(
        home.path().join("config.toml"),
        "[providers.claude]\nbase_url = \"http://127.0.0.1:9/anthropic\"\n",
    )
    .unwrap();
    login_key(&home, "claude", "default", CLAUDE_API_KEY);
    let (out, env, _) = run_agent(
        &home,
        &["--no-meter", "--agent", "routed", "--provider", "claude"],
        PARENT_SECRETS,
        "exit 0",
    );
    must(out, "run");
    for var in ["ANTHROPIC_BASE_URL", "CLAUDE_BASE_URL"] {
        assert_eq!(
            env.get(var).map(String::as_str),
            Some("http://127.0.0.1:9/anthropic"),
            "{var}"
        );
    }
    // An API key account's documented default: 60 requests a minute.
    assert_eq!(
        env.get("CLAUDE_MAX_REQUESTS_PER_MINUTE")
            .map(String::as_str),
        Some("60")
    );
    assert_session_vars(&home, &env, "routed", "claude");

    // A limit set for the account is the one the agent is told.
    let out = home.run(&["limits", "set", "claude", "--rpm", "7"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (out, env, _) = run_agent(&home, &["--agent", "slow", "--provider", "claude"], &[], "");
    must(out, "run");
    assert_eq!(
        env.get("CLAUDE_MAX_REQUESTS_PER_MINUTE")
            .map(String::as_str),
        Some("7")
    );
}

#[test]
fn claude_oauth_is_a_bearer_token_and_the_parents_keys_are_removed() {
    let home = Home::new();
    let mut parent = PARENT_SECRETS.to_vec();
    parent.push(("UNRELATED_SETTING", "kept"));
    let (out, env, _) = run_agent(
        &home,
        &["--no-meter", "--agent", "reviewer"],
        &parent,
        "exit 0",
    );
    must(out, "run");
    assert_eq!(
        env.get("CLAUDE_CODE_OAUTH_TOKEN").map(String::as_str),
        Some(CLAUDE_OAUTH_TOKEN)
    );
    // Never in ANTHROPIC_API_KEY (sent as x-api-key and rejected), and none of the parent's
    // credentials survive, for either provider.
    assert_absent(
        &env,
        &[
            "ANTHROPIC_API_KEY",
            "CLAUDE_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "OPENAI_API_KEY",
            "CODEX_API_KEY",
            "CODEX_HOME",
            "ANTHROPIC_BASE_URL",
            "CLAUDE_BASE_URL",
            "OPENAI_BASE_URL",
        ],
    );
    assert_eq!(
        env.get("UNRELATED_SETTING").map(String::as_str),
        Some("kept"),
        "the rest of the environment is inherited"
    );
    assert_session_vars(&home, &env, "reviewer", "claude");
    assert_eq!(
        env.get("CLAUDE_SUBSCRIPTION_TIER").map(String::as_str),
        Some("max")
    );
    let entry = opencode_entry(&env, "anthropic");
    assert_eq!(entry["type"], "oauth", "{entry}");
    assert_eq!(entry["access"], CLAUDE_OAUTH_TOKEN, "{entry}");
    assert_eq!(
        entry["refresh"], "",
        "agents never get the refresh token: {entry}"
    );
    assert_eq!(entry["expires"], 1_893_456_000_000_i64, "{entry}");

    // Two agents never share a session id.
    let (out, again, _) = run_agent(&home, &["--agent", "reviewer"], &[], "exit 0");
    must(out, "second run");
    assert_ne!(again["AUTHLEDGER_LEASE_ID"], env["AUTHLEDGER_LEASE_ID"]);
    assert_ne!(
        again["CLAUDE_SESSION_ID"], env["CLAUDE_SESSION_ID"],
        "two runs share a CLAUDE_SESSION_ID"
    );
    assert!(active_leases(&home).is_empty(), "both leases released");
}

#[test]
fn chatgpt_oauth_gets_a_private_codex_home_removed_after_the_run() {
    let home = Home::new();
    let scratch = Scratch::new();
    // The agent dumps its environment, says it is ready, and waits (bounded) to be let go, so
    // the test can look at its CODEX_HOME while the lease is held.
    let script = "env > \"$SCRATCH/env\"; touch \"$SCRATCH/ready\"\n\
                  i=0; while [ ! -e \"$SCRATCH/go\" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done";
    let child = Reaped(Some(
        run_cmd(
            &home,
            T0,
            &scratch,
            &["--no-meter", "--agent", "coder", "--provider", "openai"],
            PARENT_SECRETS,
            script,
        )
        .spawn()
        .expect("spawn run"),
    ));
    wait_until("the agent to start", || scratch.path("ready").exists());
    let env = scratch.env();

    let codex_home = PathBuf::from(env.get("CODEX_HOME").expect("CODEX_HOME"));
    let id = env["AUTHLEDGER_LEASE_ID"].clone();
    assert!(
        codex_home.starts_with(home.path().join("agents").join(&id)),
        "CODEX_HOME {} is the lease's own directory beside the ledger",
        codex_home.display()
    );
    assert_eq!(mode(&codex_home), 0o700, "CODEX_HOME is private");
    let auth_path = codex_home.join("auth.json");
    assert_eq!(mode(&auth_path), 0o600, "auth.json is private");
    let auth: Value = serde_json::from_str(&std::fs::read_to_string(&auth_path).unwrap())
        .expect("auth.json is JSON");
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("codex-auth.chatgpt.json")).unwrap())
            .unwrap();
    assert_eq!(auth["auth_mode"], "chatgpt", "{auth}");
    assert_eq!(auth["OPENAI_API_KEY"], Value::Null, "{auth}");
    for field in ["id_token", "access_token", "account_id"] {
        assert_eq!(
            auth["tokens"][field], original["tokens"][field],
            "tokens.{field} in Codex's format"
        );
    }
    assert_eq!(
        auth["tokens"]["refresh_token"], "",
        "the agent's Codex never gets the refresh token: the ledger refreshes"
    );
    assert!(auth.get("last_refresh").is_some(), "{auth}");

    assert_absent(
        &env,
        &[
            "OPENAI_API_KEY",
            "CODEX_API_KEY",
            "OPENAI_BASE_URL",
            "ANTHROPIC_API_KEY",
            "CLAUDE_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "ANTHROPIC_BASE_URL",
            "CLAUDE_BASE_URL",
        ],
    );
    assert_session_vars(&home, &env, "coder", "openai");
    let entry = opencode_entry(&env, "openai");
    assert_eq!(entry["type"], "oauth", "{entry}");
    assert_eq!(
        entry["access"], original["tokens"]["access_token"],
        "{entry}"
    );
    assert_eq!(
        entry["refresh"], "",
        "agents never get the refresh token: {entry}"
    );
    assert_eq!(entry["accountId"], "acct-FAKE", "{entry}");
    assert!(entry["expires"].is_i64(), "{entry}");

    std::fs::write(scratch.path("go"), "").unwrap();
    let out = finish(child);
    must(out, "run");
    assert!(
        !codex_home.exists() && !home.path().join("agents").join(&id).exists(),
        "the private CODEX_HOME is removed when the lease ends"
    );
    assert_eq!(lease(&home, &id)["state"], "released");
}

#[test]
fn an_openai_api_key_with_a_base_url_reaches_codex_through_its_home() {
    let home = Home::empty();
    std::fs::write(
        home.path().join("config.toml"),
        "[providers.openai]\nbase_url = \"http://127.0.0.1:9/v1\"\n",
    )
    .unwrap();
    login_key(&home, "openai", "default", OPENAI_API_KEY);
    // The user's own Codex settings are kept in the private copy.
    let own_codex = tempfile::tempdir().unwrap();
    std::fs::write(own_codex.path().join("config.toml"), "model = \"o3\"\n").unwrap();
    let own = own_codex.path().to_str().unwrap();
    let mut parent = PARENT_SECRETS.to_vec();
    parent.push(("CODEX_HOME", own));
    let (out, env, scratch) = run_agent(
        &home,
        &["--no-meter", "--agent", "codex"],
        &parent,
        "cp \"$CODEX_HOME/config.toml\" \"$SCRATCH/config.toml\"\n\
         cp \"$CODEX_HOME/auth.json\" \"$SCRATCH/auth.json\"",
    );
    must(out, "run");
    assert_eq!(
        env.get("OPENAI_API_KEY").map(String::as_str),
        Some(OPENAI_API_KEY)
    );
    assert_eq!(
        env.get("CODEX_API_KEY").map(String::as_str),
        Some(OPENAI_API_KEY)
    );
    assert_eq!(
        env.get("OPENAI_BASE_URL").map(String::as_str),
        Some("http://127.0.0.1:9/v1")
    );
    let codex_home = env.get("CODEX_HOME").expect("CODEX_HOME");
    assert_ne!(codex_home, own, "a private CODEX_HOME, not the parent's");
    assert_absent(
        &env,
        &[
            "ANTHROPIC_API_KEY",
            "CLAUDE_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "ANTHROPIC_BASE_URL",
            "CLAUDE_BASE_URL",
        ],
    );
    assert_session_vars(&home, &env, "codex", "openai");
    assert_eq!(
        opencode_entry(&env, "openai"),
        serde_json::json!({ "type": "api", "key": OPENAI_API_KEY })
    );

    let config: toml::Table = std::fs::read_to_string(scratch.path("config.toml"))
        .expect("CODEX_HOME/config.toml")
        .parse()
        .expect("config.toml is TOML");
    assert_eq!(
        config.get("openai_base_url").and_then(|v| v.as_str()),
        Some("http://127.0.0.1:9/v1"),
        "{config:?}"
    );
    assert_eq!(
        config.get("model").and_then(|v| v.as_str()),
        Some("o3"),
        "the user's Codex settings are kept: {config:?}"
    );
    let auth: Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.path("auth.json")).unwrap()).unwrap();
    assert_eq!(auth["OPENAI_API_KEY"], OPENAI_API_KEY, "{auth}");
    assert!(
        !Path::new(codex_home).exists(),
        "the private CODEX_HOME is removed after the run"
    );
}

#[test]
fn codex_state_written_under_run_stays_in_the_users_codex_home() {
    let home = Home::new();
    let own_codex = tempfile::tempdir().unwrap();
    let own = own_codex.path();
    std::fs::create_dir_all(own.join("sessions")).unwrap();
    std::fs::write(own.join("sessions/old.jsonl"), "old\n").unwrap();
    std::fs::write(own.join("history.jsonl"), "1\n").unwrap();
    let mut parent = PARENT_SECRETS.to_vec();
    parent.push(("CODEX_HOME", own.to_str().unwrap()));
    let (out, env, scratch) = run_agent(
        &home,
        &["--agent", "codex", "--provider", "openai"],
        &parent,
        "cat \"$CODEX_HOME/sessions/old.jsonl\" > \"$SCRATCH/seen\"\n\
         echo 2 >> \"$CODEX_HOME/history.jsonl\"\n\
         echo new > \"$CODEX_HOME/sessions/new.jsonl\"",
    );
    must(out, "run");
    assert_eq!(
        scratch.read("seen"),
        "old\n",
        "the user's sessions are visible"
    );
    assert!(
        !Path::new(&env["CODEX_HOME"]).exists(),
        "the lease's CODEX_HOME is removed"
    );
    assert_eq!(
        std::fs::read_to_string(own.join("history.jsonl")).unwrap(),
        "1\n2\n"
    );
    assert_eq!(
        std::fs::read_to_string(own.join("sessions/new.jsonl")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(own.join("sessions/old.jsonl")).unwrap(),
        "old\n"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. `authledger env`
// ---------------------------------------------------------------------------------------------

/// A key no shell would take unquoted. `login` refuses whitespace in keys, so it is stored
/// through the library, with the CLI's own key file.
const ODD_KEY: &str = "sk-ant-api03-a'b $c d\"e\\f`g`-0123456789";

fn store_odd_key(home: &Home) {
    use std::sync::Arc;

    use authledger::{
        Account, Credential, KeySource, Ledger, LedgerConfig, ManualClock, Provider, Secret,
    };
    let ledger = Ledger::open(
        LedgerConfig::new(home.db())
            .with_clock(Arc::new(ManualClock::new(T0)))
            .with_key(KeySource::File(home.path().join("keys").join("master.key"))),
    )
    .expect("open the ledger as the CLI does");
    ledger
        .store_credential(&Credential::api_key(
            Provider::Claude,
            Account::new("odd").unwrap(),
            Secret::new(ODD_KEY.into()),
            "stdin",
        ))
        .expect("store the odd key");
}

fn env_output(home: &Home, id: &str, format: &str) -> String {
    stdout(&must(
        home.run(&["env", id, "--format", format]),
        &format!("env --format {format}"),
    ))
}

#[test]
fn env_prints_the_environment_in_three_formats_quoted_correctly() {
    let home = Home::new();
    store_odd_key(&home);
    let l = acquire(
        &home,
        &[
            "--agent",
            "by-hand",
            "--provider",
            "claude",
            "--account",
            "odd",
        ],
    );
    let id = l["lease_id"].as_str().unwrap();

    // shell: evaluated by sh it reproduces the key exactly and unsets the other providers'.
    let shell = env_output(&home, id, "shell");
    let unset: Vec<&str> = shell
        .lines()
        .filter_map(|l| l.strip_prefix("unset "))
        .collect();
    for v in [
        "OPENAI_API_KEY",
        "CODEX_API_KEY",
        "CODEX_HOME",
        "CLAUDE_CODE_OAUTH_TOKEN",
    ] {
        assert!(unset.contains(&v), "no `unset {v}` in:\n{shell}");
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &shell).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "eval \"$(cat \"$1\")\"; printf %s \"$ANTHROPIC_API_KEY\"; \
             printf '|%s|%s|%s' \"$CLAUDE_API_KEY\" \"${OPENAI_API_KEY-unset}\" \"${CLAUDE_CODE_OAUTH_TOKEN-unset}\"",
        )
        .arg("sh")
        .arg(file.path())
        .env("OPENAI_API_KEY", "sk-proj-PARENT")
        .env("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-PARENT")
        .output()
        .unwrap();
    assert!(out.status.success(), "sh: {}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("{ODD_KEY}|{ODD_KEY}|unset|unset"),
        "the shell output evaluated:\n{shell}"
    );

    // json: `set` and `unset`.
    let v: Value = serde_json::from_str(&env_output(&home, id, "json")).expect("json format");
    assert_eq!(v["set"]["ANTHROPIC_API_KEY"], ODD_KEY, "{v}");
    assert_eq!(v["set"]["CLAUDE_API_KEY"], ODD_KEY, "{v}");
    assert_eq!(v["set"]["AUTHLEDGER_LEASE_ID"], id, "{v}");
    assert_eq!(v["set"]["ACTIVE_AUTH_PROVIDER"], "claude", "{v}");
    let unset: Vec<&str> = v["unset"]
        .as_array()
        .expect("unset is an array")
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(unset.contains(&"OPENAI_API_KEY"), "{v}");
    assert!(unset.contains(&"CLAUDE_CODE_OAUTH_TOKEN"), "{v}");
    for u in &unset {
        assert!(v["set"].get(*u).is_none(), "{u} both set and unset: {v}");
    }

    // dotenv: KEY="value" lines, escapes undone give the key back.
    let dotenv = env_output(&home, id, "dotenv");
    let mut vars = BTreeMap::new();
    for line in dotenv.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY=value: {line}"));
        assert!(
            v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
            "not KEY=\"value\": {line}"
        );
        vars.insert(k.to_string(), unescape_dotenv(&v[1..v.len() - 1]));
    }
    assert_eq!(
        vars.get("ANTHROPIC_API_KEY").map(String::as_str),
        Some(ODD_KEY)
    );
    assert_eq!(
        vars.get("AUTHLEDGER_LEASE_ID").map(String::as_str),
        Some(id)
    );
    assert!(!vars.contains_key("OPENAI_API_KEY"), "{dotenv}");
}

fn unescape_dotenv(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 3. Exit codes
// ---------------------------------------------------------------------------------------------

#[test]
fn the_agents_exit_code_is_run_exit_code_and_is_audited() {
    let home = Home::new();
    let (out, env, _) = run_agent(&home, &["--agent", "quitter"], &[], "exit 7");
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    let id = &env["AUTHLEDGER_LEASE_ID"];
    assert_eq!(lease(&home, id)["state"], "released");
    assert_eq!(released_exit_code(&home, id), 7);

    let (out, env, _) = run_agent(&home, &["--agent", "suicidal"], &[], "kill -9 $$");
    assert_eq!(
        out.status.code(),
        Some(137),
        "128 + SIGKILL: {}",
        stderr(&out)
    );
    let id = &env["AUTHLEDGER_LEASE_ID"];
    assert_eq!(lease(&home, id)["state"], "released");
    assert_eq!(released_exit_code(&home, id), 137);
}

#[test]
fn a_missing_command_fails_in_one_line_and_releases_its_lease() {
    let home = Home::new();
    let out = home.run(&[
        "run",
        "--agent",
        "nobody",
        "--",
        "/nonexistent/authledger-test-agent",
        "--flag",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(out.status.code().is_some(), "run exits, it is not killed");
    let err = stderr(&out);
    // Besides the one line naming the lease, exactly one line says what went wrong.
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("authledger: lease-"))
        .collect();
    assert_eq!(problems.len(), 1, "one line of error: {err}");
    assert!(
        problems[0].contains("/nonexistent/authledger-test-agent"),
        "{err}"
    );
    let all = leases(&home);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["state"], "released", "not left active: {all:?}");
    assert!(active_leases(&home).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 4. Signals sent to `run` reach the agent
// ---------------------------------------------------------------------------------------------

fn signal_is_forwarded(name: &str, signal: nix::sys::signal::Signal) {
    let home = Home::new();
    let scratch = Scratch::new();
    let script = format!(
        "trap 'echo \"got {name}\" > \"$SCRATCH/got\"; kill $pid 2>/dev/null; exit 3' {name}\n\
         env > \"$SCRATCH/env\"\n\
         sleep 60 >/dev/null 2>&1 & pid=$!\n\
         touch \"$SCRATCH/ready\"\n\
         wait $pid\n\
         echo 'no signal' > \"$SCRATCH/got\""
    );
    let child = Reaped(Some(
        run_cmd(&home, T0, &scratch, &["--agent", "signalled"], &[], &script)
            .spawn()
            .expect("spawn run"),
    ));
    let run_pid = child.pid();
    wait_until("the agent to start", || scratch.path("ready").exists());
    wait_for_signal_handlers(run_pid);
    send(run_pid, signal);
    let out = finish(child);
    assert_eq!(
        out.status.code(),
        Some(3),
        "SIG{name}: run exits with the agent's code: {}",
        stderr(&out)
    );
    assert_eq!(scratch.read("got").trim(), format!("got {name}"));
    let id = &scratch.env()["AUTHLEDGER_LEASE_ID"];
    assert_eq!(lease(&home, id)["state"], "released", "SIG{name}");
    assert_eq!(released_exit_code(&home, id), 3);
}

#[test]
fn sigterm_to_run_is_forwarded_to_the_agent() {
    signal_is_forwarded("TERM", nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn sighup_to_run_is_forwarded_to_the_agent() {
    signal_is_forwarded("HUP", nix::sys::signal::Signal::SIGHUP);
}

#[test]
fn sigint_to_run_is_forwarded_when_stdin_is_not_a_terminal() {
    signal_is_forwarded("INT", nix::sys::signal::Signal::SIGINT);
}

// ---------------------------------------------------------------------------------------------
// 5. `run` killed: the lease expires and cleanup reclaims it
// ---------------------------------------------------------------------------------------------

#[test]
fn a_killed_run_leaves_a_lease_that_cleanup_reclaims_after_its_ttl() {
    let home = Home::new();
    let scratch = Scratch::new();
    let script = "env > \"$SCRATCH/env\"; echo $$ > \"$SCRATCH/pid.tmp\"; \
                  mv \"$SCRATCH/pid.tmp\" \"$SCRATCH/pid\"; exec sleep 60";
    let mut cmd = run_cmd(
        &home,
        T0,
        &scratch,
        &["--agent", "doomed", "--provider", "openai", "--ttl", "10m"],
        &[],
        script,
    );
    let mut child = Reaped(Some(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn run"),
    ));
    wait_until("the agent to start", || scratch.path("pid").exists());
    let agent = Stray(scratch.read("pid").trim().parse().expect("agent pid"));
    let id = scratch.env()["AUTHLEDGER_LEASE_ID"].clone();
    let codex_home = PathBuf::from(&scratch.env()["CODEX_HOME"]);

    send(child.pid(), nix::sys::signal::Signal::SIGKILL);
    let status = child.0.take().unwrap().wait().expect("reap run");
    assert!(status.code().is_none(), "run was killed");
    drop(agent); // nothing lingers

    let l = lease(&home, &id);
    assert_eq!(l["state"], "active", "nobody released it: {l}");
    assert_eq!(l["expires_at_ms"], T0 + 10 * MINUTE, "{l}");

    let before = json_at(&home, T0 + 10 * MINUTE - 1, &["cleanup"]);
    assert_eq!(before["expired"], 0, "{before}");
    assert_eq!(lease(&home, &id)["state"], "active");
    assert!(codex_home.exists(), "an active lease keeps its CODEX_HOME");

    let after = json_at(&home, T0 + 10 * MINUTE, &["cleanup"]);
    assert_eq!(after["expired"], 1, "{after}");
    assert_eq!(lease(&home, &id)["state"], "expired");
    assert!(active_leases(&home).is_empty());
    assert!(
        !home.path().join("agents").join(&id).exists(),
        "cleanup removes the reclaimed lease's private directory"
    );
}

// ---------------------------------------------------------------------------------------------
// 5b. The heartbeat of `run` (on the wall clock: it renews on a timer)
// ---------------------------------------------------------------------------------------------

/// `run` on the wall clock with an API key account, the agent dumping its environment and
/// then running `script`.
fn run_wall(home: &Home, scratch: &Scratch, args: &[&str], script: &str) -> Reaped {
    let script =
        format!("env > \"$SCRATCH/env.tmp\"; mv \"$SCRATCH/env.tmp\" \"$SCRATCH/env\"\n{script}");
    Reaped(Some(
        home.cmd_wall()
            .arg("run")
            .args(args)
            .args(["--", "sh", "-c", &script])
            .env("SCRATCH", scratch.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn run"),
    ))
}

/// (action, at_ms) of a lease's audit rows, in order.
fn lease_trail(home: &Home, id: &str) -> Vec<(String, i64)> {
    let conn = common::read_only(home);
    let mut stmt = conn
        .prepare("SELECT action, at_ms FROM audit WHERE lease_id = ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn run_renews_every_third_of_the_ttl() {
    let home = Home::empty();
    login_key(&home, "claude", "default", CLAUDE_API_KEY);
    let scratch = Scratch::new();
    const TTL_MS: i64 = 6_000;
    let child = run_wall(
        &home,
        &scratch,
        &["--agent", "beating", "--provider", "claude", "--ttl", "6s"],
        "while [ ! -e \"$SCRATCH/stop\" ]; do sleep 0.05; done",
    );
    wait_until("the agent to start", || scratch.path("env").exists());
    let id = scratch.env()["AUTHLEDGER_LEASE_ID"].clone();
    let renews = || {
        lease_trail(&home, &id)
            .into_iter()
            .filter(|(a, _)| a == "renew")
            .count()
    };
    wait_until("three renews", || renews() >= 3);
    std::fs::write(scratch.path("stop"), "").unwrap();
    let out = finish(child);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let trail = lease_trail(&home, &id);
    assert_eq!(
        trail.first().map(|r| r.0.as_str()),
        Some("acquire"),
        "{trail:?}"
    );
    let granted = trail[0].1;
    let beats: Vec<i64> = trail
        .iter()
        .filter(|(a, _)| a == "renew")
        .map(|r| r.1)
        .collect();
    let mut last = granted;
    for (k, at) in beats.iter().enumerate() {
        // Never before its turn (the k-th heartbeat is due k thirds of the TTL after the
        // grant; 50 ms for the two clocks the process reads) ...
        let due = granted + (k as i64 + 1) * TTL_MS / 3;
        assert!(
            *at >= due - 50,
            "renew {k} at +{} ms: {trail:?}",
            at - granted
        );
        // ... and always before the lease would have lapsed.
        assert!(
            *at < last + TTL_MS,
            "the lease lapsed before renew {k}: {trail:?}"
        );
        last = *at;
    }
    assert_eq!(
        trail.last().map(|r| r.0.as_str()),
        Some("release"),
        "{trail:?}"
    );
}

#[test]
fn run_stops_the_agent_when_its_lease_is_reclaimed() {
    let home = Home::empty();
    login_key(&home, "claude", "default", CLAUDE_API_KEY);
    let scratch = Scratch::new();
    // The agent ignores nothing: SIGTERM ends it, and `run` reports 128 + 15.
    let child = run_wall(
        &home,
        &scratch,
        &["--agent", "evicted", "--provider", "claude", "--ttl", "3s"],
        "exec sleep 600",
    );
    wait_until("the agent to start", || scratch.path("env").exists());
    let id = scratch.env()["AUTHLEDGER_LEASE_ID"].clone();
    // Cleanup from outside, a day later on its own clock, reclaims the lease.
    let day_later = lease(&home, &id)["expires_at_ms"].as_i64().unwrap() + 86_400_000;
    let report = json_at(&home, day_later, &["cleanup"]);
    assert_eq!(report["expired"], 1, "{report}");
    let out = finish(child);
    assert_eq!(code(&out), 128 + 15, "run's exit: {}", stderr(&out));
    assert!(
        stderr(&out).contains("stopping the agent"),
        "{}",
        stderr(&out)
    );
    let actions: Vec<String> = lease_trail(&home, &id).into_iter().map(|r| r.0).collect();
    assert_eq!(
        actions.last().map(String::as_str),
        Some("expire"),
        "nothing after the reclaim: {actions:?}"
    );
    assert_eq!(lease(&home, &id)["state"], "expired");
}

// ---------------------------------------------------------------------------------------------
// 6. Fallback of `--provider auto`
// ---------------------------------------------------------------------------------------------

/// The single fallback audit row, asserting its from, to and that its reason contains `why`.
fn assert_fallback_row(home: &Home, lease_id: &str, why: &[&str]) {
    let rows = audit(home, "fallback");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let d = &rows[0]["detail"];
    assert_eq!(d["from"], "claude/default", "{d}");
    assert_eq!(d["to"], "openai/default", "{d}");
    assert_eq!(rows[0]["lease_id"], lease_id, "{:?}", rows[0]);
    let reason = d["reason"].as_str().unwrap_or_default();
    assert!(
        why.iter().any(|w| reason.contains(w)),
        "fallback reason {reason:?} mentions one of {why:?}"
    );
}

fn assert_auto_falls_back(home: &Home, now: i64, why: &[&str]) -> Value {
    let l = acquire_at(home, now, &["--agent", "next", "--provider", "auto"]);
    assert_eq!(l["provider"], "openai", "{l}");
    assert_eq!(l["fallback"], true, "{l}");
    let reason = l["reason"].as_str().unwrap();
    assert!(
        reason.contains("claude") && why.iter().any(|w| reason.contains(w)),
        "reason {reason:?} names claude and one of {why:?}"
    );
    assert_fallback_row(home, l["lease_id"].as_str().unwrap(), why);
    l
}

#[test]
fn claude_at_its_concurrency_limit_falls_back_to_openai() {
    let home = Home::new();
    must(
        home.run(&["limits", "set", "claude", "--concurrent", "1"]),
        "limits",
    );
    let held = acquire(&home, &["--agent", "first", "--provider", "claude"]);
    assert_eq!(held["provider"], "claude");
    assert_auto_falls_back(&home, T0, &["no free slot"]);
    // The slot frees: Claude is chosen again.
    must(
        home.run(&["lease", "release", held["lease_id"].as_str().unwrap()]),
        "release",
    );
    let l = acquire(&home, &["--agent", "after"]);
    assert_eq!(l["provider"], "claude", "{l}");
    assert_eq!(l["fallback"], false, "{l}");
}

#[test]
fn claude_over_80_percent_of_its_budget_falls_back_to_openai() {
    let home = Home::new();
    must(
        home.run(&["limits", "set", "claude", "--daily-tokens", "1000"]),
        "limits",
    );
    let l = acquire(
        &home,
        &[
            "--agent",
            "spender",
            "--provider",
            "claude",
            "--tokens",
            "850",
        ],
    );
    let id = l["lease_id"].as_str().unwrap();
    must(
        home.run(&["usage", "record", id, "--input", "850", "--output", "0"]),
        "usage record",
    );
    must(home.run(&["lease", "release", id]), "release");
    assert_auto_falls_back(&home, T0, &["80", "%"]);
    // The next day Claude's window is fresh again.
    let tomorrow = (T0 / 86_400_000 + 1) * 86_400_000;
    let l = acquire_at(&home, tomorrow, &["--agent", "tomorrow"]);
    assert_eq!(l["provider"], "claude", "{l}");
}

#[test]
fn a_rate_limited_claude_falls_back_until_retry_after_passes() {
    let home = Home::new();
    must(
        home.run(&[
            "report",
            "claude",
            "--status",
            "429",
            "--header",
            "retry-after: 120",
        ]),
        "report",
    );
    assert_auto_falls_back(&home, T0, &["unhealthy", "429"]);
    let still = acquire_at(&home, T0 + 119 * SECOND, &["--agent", "early"]);
    assert_eq!(still["provider"], "openai", "{still}");
    let back = acquire_at(&home, T0 + 121 * SECOND, &["--agent", "later"]);
    assert_eq!(back["provider"], "claude", "recovers at the reset: {back}");
    assert_eq!(back["fallback"], false, "{back}");
}

#[test]
fn an_expired_claude_token_without_refresh_falls_back_to_openai() {
    let home = Home::new();
    let scratch = Scratch::new();
    let file = scratch.path("credentials.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "claudeAiOauth": {
                "accessToken": "sk-ant-oat01-EXPIRED",
                "expiresAt": T0 - MINUTE,
                "scopes": ["user:inference"],
                "subscriptionType": "max"
            }
        })
        .to_string(),
    )
    .unwrap();
    must(
        home.run(&[
            "login",
            "claude",
            "--from",
            "claude-code",
            "--path",
            file.to_str().unwrap(),
        ]),
        "import an expired token",
    );
    assert_auto_falls_back(&home, T0, &["credential expired"]);
}

/// A Claude Code token is refreshed only by Claude Code: with a `[providers.claude.oauth]`
/// token endpoint configured (say, for a gateway), the ledger still never sends it there. Near
/// expiry it serves as it is; once expired, `auto` falls back, and every message says what to
/// do without pointing at that configuration.
#[test]
fn an_imported_claude_code_token_is_never_sent_to_a_configured_token_endpoint() {
    let server = OAuthServer::start();
    let home = Home::empty();
    std::fs::write(
        home.path().join("config.toml"),
        server.config_toml("claude"),
    )
    .unwrap();
    let scratch = Scratch::new();
    let file = scratch.path("credentials.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "claudeAiOauth": {
                "accessToken": "sk-ant-oat01-SOON",
                "refreshToken": "sk-ant-ort01-CLAUDE-CODES-OWN",
                "expiresAt": T0 + MINUTE,
                "scopes": ["user:inference"],
                "subscriptionType": "max"
            }
        })
        .to_string(),
    )
    .unwrap();
    let out = must(
        home.run(&[
            "login",
            "claude",
            "--from",
            "claude-code",
            "--path",
            file.to_str().unwrap(),
        ]),
        "import",
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    must(
        home.run(&[
            "login",
            "openai",
            "--from",
            "codex",
            "--path",
            &fixture("codex-auth.chatgpt.json"),
        ]),
        "import openai",
    );
    // Near expiry (inside the refresh margin): served as it is.
    let out = home.run(&["token", "claude"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "sk-ant-oat01-SOON");
    let l = acquire(&home, &["--agent", "early", "--provider", "claude"]);
    assert_eq!(l["provider"], "claude", "{l}");

    // Expired: unusable, with the way out, never the configuration.
    let later = T0 + 2 * MINUTE;
    let out = home.run_at(later, &["token", "claude"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refresh it in Claude Code"), "{err}");
    assert!(!err.contains("providers.claude.oauth"), "{err}");
    assert_auto_falls_back(&home, later, &["refresh it in Claude Code"]);
    let out = home.run_at(later, &["providers"]);
    // The reason may wrap within its column.
    let words = stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words.contains("refresh it in Claude Code"),
        "providers says why: {}",
        stdout(&out)
    );
    assert!(
        server.requests().is_empty(),
        "the token endpoint was asked: {:?}",
        server.requests()
    );
}

/// Storing a subscription token that has already expired warns, and `auto` skips it for a
/// usable account of the same provider (here Claude's API key).
#[test]
fn an_expired_imported_subscription_token_is_skipped_by_auto_for_a_usable_account() {
    let home = Home::empty();
    let scratch = Scratch::new();
    let file = scratch.path("credentials.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "claudeAiOauth": {
                "accessToken": "sk-ant-oat01-STALE",
                "refreshToken": "sk-ant-ort01-CLAUDE-CODES-OWN",
                "expiresAt": T0 - 60 * MINUTE,
                "scopes": ["user:inference"],
                "subscriptionType": "max"
            }
        })
        .to_string(),
    )
    .unwrap();
    let out = must(
        home.run(&[
            "login",
            "claude",
            "--from",
            "claude-code",
            "--path",
            file.to_str().unwrap(),
        ]),
        "import an expired token",
    );
    let err = stderr(&out);
    assert!(
        err.contains("warning") && err.contains("expired") && err.contains("Claude Code"),
        "{err}"
    );
    login_key(
        &home,
        "claude",
        "key",
        "sk-ant-api03-Zq7vXk2mPw9rTb4LHy3nQe8sJd5uWc1F0000000",
    );
    let l = acquire(&home, &["--agent", "a", "--provider", "auto"]);
    assert_eq!(
        (l["provider"].as_str(), l["account"].as_str()),
        (Some("claude"), Some("key")),
        "{l}"
    );
    let reason = l["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("refresh it in Claude Code"), "{reason}");
}

#[test]
fn a_logged_out_claude_leaves_openai() {
    let home = Home::new();
    must(home.run(&["logout", "claude"]), "logout");
    let l = acquire(&home, &["--agent", "after-logout"]);
    assert_eq!(l["provider"], "openai", "{l}");
    // Asking for Claude by name says what is missing (exit 4, authentication).
    let out = home.run(&["lease", "acquire", "--agent", "x", "--provider", "claude"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("no credential"), "{}", stderr(&out));
}

#[test]
fn switch_sets_the_preferred_provider_and_auto_goes_back() {
    let home = Home::new();
    must(home.run(&["switch", "openai"]), "switch openai");
    let l = acquire(&home, &["--agent", "a"]);
    assert_eq!(l["provider"], "openai", "{l}");
    assert_eq!(l["reason"], "preferred provider", "{l}");
    assert_eq!(l["fallback"], false, "{l}");
    assert!(
        audit(&home, "fallback").is_empty(),
        "a preference is no fallback"
    );
    let rows = audit(&home, "switch");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["detail"]["to"], "openai", "{:?}", rows[0]);
    assert_eq!(rows[0]["detail"]["from"], "auto", "{:?}", rows[0]);

    must(home.run(&["switch", "auto"]), "switch auto");
    let l = acquire(&home, &["--agent", "b"]);
    assert_eq!(l["provider"], "claude", "{l}");
    let rows = audit(&home, "switch");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r["detail"]["from"] == "openai" && r["detail"]["to"] == "auto"),
        "{rows:?}"
    );
}

#[test]
fn an_explicit_provider_without_a_free_slot_is_refused_not_replaced() {
    let home = Home::new();
    must(
        home.run(&["limits", "set", "claude", "--concurrent", "1"]),
        "limits",
    );
    acquire(&home, &["--agent", "first", "--provider", "claude"]);
    let out = home.run(&[
        "lease",
        "acquire",
        "--agent",
        "second",
        "--provider",
        "claude",
    ]);
    assert_eq!(code(&out), 3, "denied: {}", stderr(&out));
    assert!(stderr(&out).contains("claude"), "{}", stderr(&out));
    let active = active_leases(&home);
    assert_eq!(active.len(), 1, "no fallback lease: {active:?}");
    assert_eq!(active[0]["provider"], "claude");
    assert!(audit(&home, "fallback").is_empty(), "no fallback to openai");
}

#[test]
fn a_refused_run_starts_nothing_and_says_when_a_slot_frees() {
    let home = Home::new();
    must(
        home.run(&["limits", "set", "claude", "--concurrent", "1"]),
        "limits",
    );
    let held = acquire(&home, &["--agent", "first", "--provider", "claude"]);
    let scratch = Scratch::new();
    let child = run_cmd(
        &home,
        T0,
        &scratch,
        &["--agent", "second", "--provider", "claude"],
        &[],
        "touch \"$SCRATCH/started\"",
    )
    .spawn()
    .expect("spawn run");
    let out = finish(Reaped(Some(child)));
    assert_eq!(code(&out), 3, "denied: {}", stderr(&out));
    assert!(!scratch.path("started").exists(), "the agent never started");
    assert_eq!(active_leases(&home).len(), 1);
    // Issue 5: "Refused: exit 3 with what was asked and when it frees." The held lease's
    // expiry is when the slot frees at the latest.
    let err = stderr(&out);
    assert!(err.contains("claude"), "{err}");
    // For people, the clock time (the tests' zone is UTC, and it is the same day); --json
    // says it exactly.
    let expires =
        chrono::DateTime::parse_from_rfc3339(held["expires_at"].as_str().unwrap()).unwrap();
    let frees = expires.format("%H:%M").to_string();
    assert!(
        err.contains(&format!("frees by {frees}")),
        "the refusal says when a slot frees ({frees}): {err}"
    );
}

#[test]
fn regression_the_ledgers_master_key_never_reaches_an_agent() {
    let home = Home::new();
    let key = std::fs::read_to_string(home.path().join("keys/master.key")).unwrap();
    let (out, env, _scratch) = run_agent(
        &home,
        &["--agent", "nosy", "--provider", "claude"],
        &[
            ("AUTHLEDGER_MASTER_KEY", key.trim()),
            ("AUTHLEDGER_NEW_MASTER_KEY", key.trim()),
        ],
        "exit 0",
    );
    must(out, "run with the key in the environment");
    assert!(!env.contains_key("AUTHLEDGER_MASTER_KEY"), "{env:?}");
    assert!(!env.contains_key("AUTHLEDGER_NEW_MASTER_KEY"), "{env:?}");
}

// ---------------------------------------------------------------------------------------------
// 7. `authledger demo`
// ---------------------------------------------------------------------------------------------

#[test]
fn the_demo_runs_every_step_it_promises_on_a_temporary_ledger() {
    let home = Home::empty();
    let tmp = tempfile::tempdir().unwrap();
    let out = home
        .cmd_wall()
        .env("TMPDIR", tmp.path())
        .arg("demo")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let said = stdout(&out);
    // The README's promise: agents sharing a budget, a refusal, a crash reclaimed, the audit
    // trail (verified intact).
    for step in [
        "Three agents share Claude's budget",
        "A fourth agent is refused",
        "denied:",
        "The tester crashes without releasing",
        "cleanup reclaimed 1 lease(s)",
        "The audit trail, chained under a key",
        "audit verify: intact",
    ] {
        assert!(
            said.contains(step),
            "the demo should show {step:?}:\n{said}"
        );
    }
    // The project rule: output fits an 80-column terminal.
    for line in said.lines() {
        assert!(
            line.chars().count() <= 80,
            "a demo line is wider than 80 columns ({}): {line:?}",
            line.chars().count()
        );
    }
    // Its ledger was temporary: gone afterwards, and the user's own never made.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    assert!(!home.db().exists());
}
