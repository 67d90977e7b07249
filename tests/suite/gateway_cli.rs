//! The gateway as people run it (issue 13): `authledger gateway` and `authledger run` as real
//! processes in front of a fake provider API on 127.0.0.1, with `env` handing out the gateway's
//! URL and a lease token.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::upstream::{FakeUpstream, Reply};
use crate::common::{Home, T0, code, stderr};

/// The fake Claude Code login's access token (fixtures/claude-code-credentials.json).
fn real_claude_token() -> String {
    let text =
        std::fs::read_to_string(crate::common::fixture("claude-code-credentials.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["claudeAiOauth"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A home whose Claude API is the fake upstream.
pub(crate) fn home_in_front_of(upstream: &FakeUpstream) -> Home {
    let home = Home::new();
    std::fs::write(
        home.path().join("config.toml"),
        format!("[providers.claude]\nbase_url = \"{}\"\n", upstream.url()),
    )
    .unwrap();
    home
}

pub(crate) fn acquire(home: &Home) -> String {
    let lease = home.json(&[
        "lease",
        "acquire",
        "--agent",
        "gw-agent",
        "--provider",
        "claude",
    ]);
    lease["lease_id"].as_str().unwrap().to_string()
}

/// A process killed if the test ends without waiting for it (a failed assertion), so no
/// gateway or agent outlives its test.
pub(crate) struct Reaped(Option<Child>);

impl Reaped {
    fn id(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    pub(crate) fn finish(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `authledger gateway` at T0 with `extra` environment, and the URL it prints.
pub(crate) fn start_gateway(home: &Home, extra: &[(&str, &str)]) -> (Reaped, String) {
    let mut cmd = home.cmd_at(T0);
    cmd.args(["--json", "gateway"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!("gateway printed {line:?}: {e}");
    });
    (
        Reaped(Some(child)),
        json["gateway"].as_str().unwrap().to_string(),
    )
}

/// The environment `authledger env` gives the lease, as name → value.
pub(crate) fn env_of(home: &Home, lease: &str) -> serde_json::Value {
    let out = home.run(&["env", lease, "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["set"].clone()
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub(crate) async fn post_messages(base: &str, token: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/v1/messages"))
        .bearer_auth(token)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "oauth-2025-04-20")
        .body(r#"{"model":"claude-x","max_tokens":5,"messages":[]}"#)
        .send()
        .await
        .unwrap()
}

pub(crate) fn answer(id: &str, input: u64, output: u64) -> Reply {
    Reply::Whole {
        status: 200,
        content_type: "application/json",
        body: format!(
            r#"{{"id":"{id}","type":"message","model":"claude-x","content":[],"usage":{{"input_tokens":{input},"output_tokens":{output}}}}}"#
        )
        .into_bytes(),
    }
}

pub(crate) fn terminate(child: &Reaped) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
}

/// The upstream ids the usage rows are keyed by (the ledger's key is `<lease>:<id>`).
fn usage_keys(db: &Path) -> Vec<String> {
    crate::common::query_rows(db, "SELECT idem_key FROM usage_events ORDER BY idem_key")
        .into_iter()
        .map(|r| match r[0].split_once(':') {
            Some((lease, id)) if lease.starts_with("lease-") => id.to_string(),
            _ => r[0].clone(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_hands_out_the_running_gateway_and_sigterm_writes_every_record() {
    let mut upstream = FakeUpstream::start().await;
    let home = home_in_front_of(&upstream);
    let lease = acquire(&home);
    let (gateway, url) = start_gateway(&home, &[]);
    let env = env_of(&home, &lease);
    assert_eq!(env["ANTHROPIC_BASE_URL"], url.as_str(), "{env}");
    let token = env["CLAUDE_CODE_OAUTH_TOKEN"].as_str().unwrap().to_string();
    assert!(token.starts_with("alt-"), "the agent holds a lease token");
    let real = real_claude_token();
    assert!(
        !env.to_string().contains(&real),
        "the real token is in the agent's environment"
    );

    for n in 0..5 {
        upstream.reply(answer(&format!("msg_cli_{n}"), 10 + n, 2));
        let response = post_messages(&url, &token).await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        let seen = upstream.seen.recv().await.unwrap();
        assert_eq!(
            seen.headers["authorization"],
            format!("Bearer {real}").as_str()
        );
    }
    // Stopped at once: what the gateway still holds is written before it exits.
    terminate(&gateway);
    let out = gateway.finish();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let keys = usage_keys(&home.db());
    assert_eq!(
        keys,
        (0..5).map(|n| format!("msg_cli_{n}")).collect::<Vec<_>>()
    );
    assert!(
        !home.db().with_extension("db.gateway").exists(),
        "the stopped gateway's URL is still published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_ledger_takes_no_writes_answers_503_and_forwards_nothing() {
    let mut upstream = FakeUpstream::start().await;
    let home = home_in_front_of(&upstream);
    let lease = acquire(&home);
    // The gateway process's storage refuses every write (a debug-build fault point: the
    // state a full disk or a file made read-only under a running process leaves).
    let (gateway, url) = start_gateway(&home, &[("AUTHLEDGER_FAULT", "store:read-only")]);
    let env = env_of(&home, &lease);
    let token = env["CLAUDE_CODE_OAUTH_TOKEN"].as_str().unwrap().to_string();
    upstream.reply(answer("msg_never", 1, 1));
    let response = post_messages(&url, &token).await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["type"], "error", "{body}");
    terminate(&gateway);
    gateway.finish();
    assert!(
        upstream.seen.try_recv().is_err(),
        "an unmeterable request was forwarded"
    );
    assert!(usage_keys(&home.db()).is_empty());
}

#[test]
fn the_gateway_listens_only_on_loopback() {
    let home = Home::new();
    let out = home.run(&["gateway", "--listen", "0.0.0.0:0"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("loopback"), "{}", stderr(&out));
    let out = home.run(&["gateway", "--listen", "not-an-address"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

/// The agent `run` starts: it writes its environment to `$AGENT_OUT`, then waits until the
/// test creates `$AGENT_GO`.
fn waiting_agent(cmd: &mut Command, dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let out = dir.join("agent-env");
    let go = dir.join("agent-go");
    cmd.env("AGENT_OUT", &out).env("AGENT_GO", &go).args([
        "sh",
        "-c",
        r#"env > "$AGENT_OUT.tmp" && mv "$AGENT_OUT.tmp" "$AGENT_OUT"; while [ ! -e "$AGENT_GO" ]; do sleep 0.02; done"#,
    ]);
    (out, go)
}

fn read_env_file(path: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_meters_its_agent_which_holds_only_the_lease_token() {
    let mut upstream = FakeUpstream::start().await;
    let home = home_in_front_of(&upstream);
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = home.cmd_at(T0);
    cmd.args(["run", "--agent", "metered", "--provider", "claude", "--"]);
    let (out_file, go) = waiting_agent(&mut cmd, scratch.path());
    let run = Reaped(Some(cmd.stderr(Stdio::piped()).spawn().unwrap()));
    // The agent waits for this file: made on every way out, so it never outlives the test.
    struct Go(std::path::PathBuf);
    impl Drop for Go {
        fn drop(&mut self) {
            let _ = std::fs::write(&self.0, "");
        }
    }
    let _go = Go(go.clone());
    // Written by the agent once it has started (the limit only guards against a hang).
    for _ in 0..2_000 {
        if out_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let env = read_env_file(&out_file);
    let real = real_claude_token();
    assert!(
        env.values().all(|v| !v.contains(&real)),
        "the real token is in the agent's environment"
    );
    let base = env["ANTHROPIC_BASE_URL"].clone();
    let token = env["CLAUDE_CODE_OAUTH_TOKEN"].clone();
    assert!(token.starts_with("alt-"));
    // Claude Code's request form: `$ANTHROPIC_BASE_URL/v1/messages?beta=true`.
    upstream.reply(answer("msg_run_1", 30, 3));
    let response = post_messages(&base, &token).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let seen = upstream.seen.recv().await.unwrap();
    assert_eq!(seen.path_and_query, "/v1/messages");
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {real}").as_str()
    );
    // opencode's: `<baseURL>/messages`, its baseURL from OPENCODE_CONFIG_CONTENT.
    let config: serde_json::Value = serde_json::from_str(&env["OPENCODE_CONFIG_CONTENT"]).unwrap();
    let opencode_base = config["provider"]["anthropic"]["options"]["baseURL"]
        .as_str()
        .unwrap()
        .to_string();
    upstream.reply(answer("msg_run_2", 40, 4));
    let response = client()
        .post(format!("{opencode_base}/messages"))
        .header("x-api-key", &token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let seen = upstream.seen.recv().await.unwrap();
    assert_eq!(seen.path_and_query, "/v1/messages", "opencode's path");

    std::fs::write(&go, "").unwrap();
    let done = run.finish();
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    // Every request is recorded before the lease is released.
    assert_eq!(usage_keys(&home.db()), ["msg_run_1", "msg_run_2"]);
    let leases = crate::common::query_rows(&home.db(), "SELECT state, used FROM leases");
    assert_eq!(leases, [["released".to_string(), "77".to_string()]]);
}

/// Replays the audit trail's grants, top-ups and usage for the day window and checks that no
/// grant or top-up ever took `used + reserved` past `limit` (invariant 1). Returns the
/// window's `(used, reserved)` at the end of the trail.
fn replay_day_window(rows: &[serde_json::Value], limit: i64) -> (i64, i64) {
    use std::collections::HashMap;
    let (mut used, mut reserved) = (0i64, 0i64);
    let mut held: HashMap<String, i64> = HashMap::new();
    let n = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    for row in rows {
        let lease = row["lease_id"].as_str().unwrap_or_default().to_string();
        let d = &row["detail"];
        match row["action"].as_str().unwrap() {
            "acquire" | "topup" => {
                let tokens = n(&d["tokens"]);
                *held.entry(lease).or_default() += tokens;
                reserved += tokens;
                assert!(
                    used + reserved <= limit,
                    "row {} granted past the limit: used {used} + reserved {reserved} > {limit}",
                    row["seq"]
                );
            }
            "usage" => {
                let tokens =
                    n(&d["input"]) + n(&d["output"]) + n(&d["cache_read"]) + n(&d["cache_write"]);
                let h = held.entry(lease).or_default();
                let take = tokens.min(*h);
                *h -= take;
                reserved -= take;
                used += tokens;
            }
            "release" | "expire" | "revoke" => {
                reserved -= held.remove(&lease).unwrap_or(0);
            }
            _ => {}
        }
    }
    (used, reserved)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_topping_up_leases_of_one_budget_never_grant_past_it() {
    const LIMIT: i64 = 40_000;
    const REQUESTS: usize = 64;
    let upstream = FakeUpstream::start().await;
    let home = home_in_front_of(&upstream);
    home.json(&[
        "limits",
        "set",
        "claude",
        "--daily-tokens",
        "40000",
        "--concurrent",
        "8",
    ]);
    for n in 0..REQUESTS {
        upstream.reply(answer(&format!("msg_race_{n:03}"), 1_000, 500));
    }
    let leases: Vec<String> = (0..4)
        .map(|i| {
            let lease = home.json(&[
                "lease",
                "acquire",
                "--agent",
                &format!("racer-{i}"),
                "--provider",
                "claude",
                "--tokens",
                "2000",
            ]);
            lease["lease_id"].as_str().unwrap().to_string()
        })
        .collect();
    let (first, first_url) = start_gateway(&home, &[]);
    let (second, second_url) = start_gateway(&home, &[]);
    let tokens: Vec<String> = leases
        .iter()
        .map(|l| {
            env_of(&home, l)["CLAUDE_CODE_OAUTH_TOKEN"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // The four agents at once, each making its requests one after another (as an agent does)
    // through its gateway: two agents on each gateway process.
    let mut agents = Vec::new();
    for (i, token) in tokens.clone().into_iter().enumerate() {
        let url = if i % 2 == 0 { &first_url } else { &second_url }.clone();
        agents.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..REQUESTS / 4 {
                let response = post_messages(&url, &token).await;
                let status = response.status().as_u16();
                answers.push((status, response.bytes().await.unwrap()));
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for agent in agents {
        answers.extend(agent.await.unwrap());
    }
    let mut forwarded = 0;
    for (status, body) in answers {
        match status {
            200 => forwarded += 1,
            429 => {
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(body["error"]["type"], "rate_limit_error");
            }
            other => panic!("status {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    for gateway in [first, second] {
        terminate(&gateway);
        let out = gateway.finish();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    for lease in &leases {
        home.json(&["lease", "release", lease]);
    }
    // Every forwarded request is recorded once; some were refused once the budget was gone.
    let keys = usage_keys(&home.db());
    assert_eq!(keys.len(), forwarded, "one usage row per forwarded request");
    assert!(forwarded < REQUESTS, "the budget stopped nothing");
    let mut rows = crate::common::audit_rows(&home, T0, "acquire");
    for action in ["topup", "usage", "release"] {
        rows.extend(crate::common::audit_rows(&home, T0, action));
    }
    rows.sort_by_key(|r| r["seq"].as_i64());
    assert!(
        rows.iter().any(|r| r["action"] == "topup"),
        "no lease was topped up"
    );
    let (used, reserved) = replay_day_window(&rows, LIMIT);
    assert_eq!(used, forwarded as i64 * 1_500);
    assert_eq!(reserved, 0);
    // Past the budget only by what was in flight when it ran out: one request per agent, whose
    // cost is known only when it ends (recorded, never lost).
    assert!(used <= LIMIT + 4 * 1_500, "used {used} of {LIMIT}");
    // The ledger agrees: everything used, nothing left reserved once every lease ended.
    let quota = home.json(&["quota", "--provider", "claude"]);
    let quota = if quota.is_array() {
        quota[0].clone()
    } else {
        quota
    };
    assert_eq!(quota["used"], used, "{quota}");
    assert_eq!(quota["reserved"], 0, "{quota}");
    let out = home.run(&["audit", "verify"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_inside_its_usage_commit_leaves_the_ledger_whole() {
    let mut upstream = FakeUpstream::start().await;
    let home = home_in_front_of(&upstream);
    let lease = acquire(&home);
    // The recorder stops inside its write transaction, after the usage rows' updates began.
    let mut cmd = home.cmd_at(T0);
    cmd.args(["--json", "gateway"])
        .env("AUTHLEDGER_FAULT", "usage:before-insert")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr_pipe = child.stderr.take().unwrap();
    let gateway = Reaped(Some(child));
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = serde_json::from_str::<serde_json::Value>(&line).unwrap()["gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let token = env_of(&home, &lease)["CLAUDE_CODE_OAUTH_TOKEN"]
        .as_str()
        .unwrap()
        .to_string();
    upstream.reply(answer("msg_crash", 300, 30));
    let response = post_messages(&url, &token).await;
    assert_eq!(
        response.status(),
        200,
        "the response is never held for its record"
    );
    response.bytes().await.unwrap();
    upstream.seen.recv().await.unwrap();
    // Wait until the recorder says it stopped inside the transaction, then kill -9.
    let mut said = String::new();
    let mut lines = BufReader::new(stderr_pipe);
    while !said.contains("fault point usage:before-insert reached") {
        said.clear();
        if lines.read_line(&mut said).unwrap() == 0 {
            panic!("the gateway ended before its fault point");
        }
    }
    kill(Pid::from_raw(gateway.id() as i32), Signal::SIGKILL).unwrap();
    drop(gateway);
    // Nothing half-written: no usage row, the lease untouched, the trail intact, and the
    // ledger takes writes again.
    assert!(usage_keys(&home.db()).is_empty());
    let leases = crate::common::query_rows(&home.db(), "SELECT state, used FROM leases");
    assert_eq!(leases, [["active".to_string(), "0".to_string()]]);
    let out = home.run(&["audit", "verify"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = home.run(&[
        "usage", "record", &lease, "--input", "300", "--output", "30",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn env_trusts_no_gateway_file_left_by_a_dead_gateway() {
    let home = Home::new();
    let lease = acquire(&home);
    // A listener anyone could have bound since, named by a file whose gateway is gone.
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", stranger.local_addr().unwrap());
    let file = home.path().join("ledger.db.gateway");
    // The URL alone (no process to check), a process that does not exist, nonsense.
    for content in [
        format!("{url}\n"),
        format!("{url} 999999999\n"),
        format!("{url} 0\n"),
        format!("{url} not-a-pid\n"),
    ] {
        std::fs::write(&file, content).unwrap();
        let out = home.run(&["env", &lease, "--format", "json"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let env: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            env["set"].get("ANTHROPIC_BASE_URL").is_none(),
            "the agent was sent to a stranger's listener: {env}"
        );
        assert!(
            stderr(&out).contains("no gateway running"),
            "{}",
            stderr(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_gateway_meters_an_agent_started_by_hand() {
    use crate::common::daemon::{Daemon, wall, wall_home};
    const KEY: &str = "sk-ant-api03-daemon-test-key-0000000000";
    let mut upstream = FakeUpstream::start().await;
    let home = wall_home("4");
    std::fs::write(
        home.path().join("config.toml"),
        format!("[providers.claude]\nbase_url = \"{}\"\n", upstream.url()),
    )
    .unwrap();
    let mut daemon = Daemon::start_with(&home, &[], &["--gateway", "127.0.0.1:0"]);
    let line = daemon.wait_for("metering gateway on");
    let url = line.rsplit(' ').next().unwrap().to_string();
    let out = wall(
        &home,
        &[
            "--json",
            "lease",
            "acquire",
            "--agent",
            "by-hand",
            "--provider",
            "claude",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lease: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lease = lease["lease_id"].as_str().unwrap();
    // `eval "$(authledger env LEASE)"`, as a user starting an agent by hand would.
    let out = wall(&home, &["env", lease, "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let env: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(env["set"]["ANTHROPIC_BASE_URL"], url.as_str(), "{env}");
    let token = env["set"]["ANTHROPIC_API_KEY"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("alt-") && !env.to_string().contains(KEY));
    upstream.reply(answer("msg_daemon", 70, 7));
    let response = client()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", &token)
        .header("anthropic-version", "2023-06-01")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let seen = upstream.seen.recv().await.unwrap();
    assert_eq!(seen.headers["x-api-key"], KEY);
    // SIGTERM: the daemon's gateway writes what it holds before the daemon exits.
    daemon.stop_line();
    assert_eq!(usage_keys(&home.db()), ["msg_daemon"]);
}
