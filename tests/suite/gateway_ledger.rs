//! The gateway on a real ledger (issue 13): lease tokens resolved to the real credential,
//! usage recorded as the upstream reported it, top-ups then provider-format 429s, 401 for an
//! ended lease, and provider health from the upstream's answers. A fake upstream on 127.0.0.1
//! behaves like the provider's API; the ledger runs on the manual clock.

use std::time::Duration;

use authledger::config_file::ConfigFile;
use authledger::gateway::HostedGateway;
use authledger::{
    Account, AcquireRequest, AgentId, AuditQuery, Credential, KeySource, Lease, Ledger,
    LedgerConfig, LimitsUpdate, ManualClock, Provider, Secret,
};
use bytes::Bytes;

use crate::common::upstream::{FakeUpstream, Reply};

const T0: i64 = 1_795_399_200_000;
const REAL_KEY: &str = "sk-ant-api03-real-key-never-shown-0000";

/// Fields drop in this order: the gateway writes its last records before the ledger's
/// directory goes.
struct Rig {
    gateway: Option<HostedGateway>,
    upstream: FakeUpstream,
    ledger: Ledger,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start(daily: i64) -> Rig {
        Rig::with_base_path(daily, "").await
    }

    /// A rig whose configured `base_url` is the upstream's address plus `path`.
    async fn with_base_path(daily: i64, path: &str) -> Rig {
        let upstream = FakeUpstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let file = ConfigFile::parse(
            &dir.path().join("config.toml"),
            &format!(
                "[providers.claude]\nbase_url = \"http://{}{path}\"\n",
                upstream.addr
            ),
        )
        .unwrap();
        let ledger = Ledger::open(
            LedgerConfig::new(dir.path().join("ledger.db"))
                .with_clock(std::sync::Arc::new(clock.clone()))
                .with_key(KeySource::File(dir.path().join("master.key")))
                .with_file_config(file),
        )
        .unwrap();
        let limits = LimitsUpdate {
            daily_tokens: Some(daily),
            concurrent: Some(4),
            ..Default::default()
        };
        ledger
            .set_limits(Provider::Claude, &Account::default(), &limits)
            .unwrap();
        ledger
            .store_credential(&Credential::api_key(
                Provider::Claude,
                Account::default(),
                Secret::new(REAL_KEY.into()),
                "stdin",
            ))
            .unwrap();
        let gateway =
            HostedGateway::start(ledger.clone(), "127.0.0.1:0".parse().unwrap(), 2).unwrap();
        Rig {
            _dir: dir,
            clock,
            ledger,
            upstream,
            gateway: Some(gateway),
        }
    }

    fn gateway(&self) -> &HostedGateway {
        self.gateway.as_ref().unwrap()
    }

    fn lease(&self, tokens: i64) -> (Lease, String) {
        let req =
            AcquireRequest::new(AgentId::new("agent-1").unwrap(), Provider::Claude).tokens(tokens);
        let lease = self.ledger.acquire(&req).unwrap();
        let token = self.ledger.issue_lease_token(&lease.id).unwrap();
        (lease, token.expose_secret().to_string())
    }

    fn url(&self) -> String {
        format!("{}/v1/messages", self.gateway().url())
    }

    /// Waits for every record so far to be written.
    fn flush(&self) {
        self.gateway().flush();
    }

    /// Waits until `n` usage rows are written: a record leaves the response path when the
    /// agent's connection lets go of the body, which may be just after the agent has read it.
    /// (The limit only guards against a hang.)
    async fn await_rows(&self, n: usize) -> Vec<Vec<String>> {
        for _ in 0..2_000 {
            self.flush();
            let rows = self.usage_rows();
            if rows.len() >= n {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} usage rows never written: {:?}", self.usage_rows());
    }

    /// The usage rows, keyed by the upstream's id (the ledger's key is `<lease>:<id>`): (id, input, output, cache_read, cache_write, model, status).
    fn usage_rows(&self) -> Vec<Vec<String>> {
        let mut rows = crate::common::query_rows(
            &self._dir.path().join("ledger.db"),
            "SELECT idem_key, input, output, cache_read, cache_write, model, status \
             FROM usage_events ORDER BY idem_key",
        );
        for row in &mut rows {
            let (lease, id) = row[0].split_once(':').expect("a lease-scoped key");
            assert!(lease.starts_with("lease-"), "{lease}");
            row[0] = id.to_string();
        }
        rows
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn message(id: &str, input: u64, output: u64) -> Vec<u8> {
    format!(
        r#"{{"id":"{id}","type":"message","model":"claude-x","content":[],"usage":{{"input_tokens":{input},"output_tokens":{output}}}}}"#
    )
    .into_bytes()
}

fn json_reply(id: &str, input: u64, output: u64) -> Reply {
    Reply::Whole {
        status: 200,
        content_type: "application/json",
        body: message(id, input, output),
    }
}

/// An Anthropic stream in events: `message_start` with input and cache figures, deltas,
/// cumulative `message_delta`s (the last is the total), `message_stop`.
fn sse_events(id: &str, input: u64, cache_read: u64, cache_write: u64, output: u64) -> Vec<String> {
    vec![
        format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"{id}\",\"model\":\"claude-y\",\"usage\":{{\"input_tokens\":{input},\"cache_read_input_tokens\":{cache_read},\"cache_creation_input_tokens\":{cache_write},\"output_tokens\":1}}}}}}\n\n"
        ),
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n".to_string(),
        format!(
            "event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":null}},\"usage\":{{\"output_tokens\":{}}}}}\n\n",
            output / 2
        ),
        format!(
            "event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{output}}}}}\n\n"
        ),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string(),
    ]
}

async fn post(rig: &Rig, token: &str) -> reqwest::Response {
    client()
        .post(rig.url())
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(r#"{"model":"claude-x","max_tokens":5,"messages":[]}"#)
        .send()
        .await
        .unwrap()
}

fn row(
    key: &str,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    model: &str,
) -> Vec<String> {
    [
        key.to_string(),
        input.to_string(),
        output.to_string(),
        cache_read.to_string(),
        cache_write.to_string(),
        model.to_string(),
        "completed".to_string(),
    ]
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_streams_are_recorded_as_the_upstream_reported_them() {
    let rig = Rig::start(10_000_000).await;
    let (lease, token) = rig.lease(1_000_000);
    const STREAMS: u64 = 6;
    let mut feeds = Vec::new();
    let mut expected = Vec::new();
    for s in 0..STREAMS {
        let (reply, feed) = Reply::stream("text/event-stream");
        rig.upstream.reply(reply);
        let id = format!("msg_stream_{s}");
        let figures = (100 + s, 10 * s, 3 + s, 40 + 7 * s);
        expected.push(row(
            &id, figures.0, figures.3, figures.1, figures.2, "claude-y",
        ));
        feeds.push((
            feed,
            sse_events(&id, figures.0, figures.1, figures.2, figures.3),
        ));
    }
    // Every request is in flight before any stream sends its first event.
    let mut responses = Vec::new();
    for _ in 0..STREAMS {
        responses.push(tokio::spawn({
            let (url, token) = (rig.url(), token.clone());
            async move {
                client()
                    .post(url)
                    .header("x-api-key", token)
                    .body("{}")
                    .send()
                    .await
                    .unwrap()
            }
        }));
    }
    let mut upstream = rig.upstream;
    for _ in 0..STREAMS {
        let seen = upstream.seen.recv().await.unwrap();
        assert_eq!(seen.headers["x-api-key"], REAL_KEY);
    }
    // The streams' events interleave: event 0 of every stream, then event 1 of every stream...
    for e in 0..5 {
        for (feed, events) in &feeds {
            feed.send(Bytes::from(events[e].clone())).unwrap();
        }
    }
    drop(feeds);
    for response in responses {
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    // JSON answers among them.
    let json_expected = row("msg_json_a", 21, 4, 0, 0, "claude-x");
    upstream.reply(json_reply("msg_json_a", 21, 4));
    let rig = Rig { upstream, ..rig };
    assert_eq!(post(&rig, &token).await.status(), 200);

    expected.push(json_expected);
    expected.sort();
    let rows = rig.await_rows(expected.len()).await;
    assert_eq!(rows, expected, "one row per request, as reported");
    let total: u64 = expected
        .iter()
        .map(|r| (1..=4).map(|i| r[i].parse::<u64>().unwrap()).sum::<u64>())
        .sum();
    let lease = rig.ledger.lease(&lease.id).unwrap();
    assert_eq!(lease.used, total as i64, "the lease is charged the sum");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_delivered_twice_counts_once() {
    let rig = Rig::start(10_000_000).await;
    let (lease, token) = rig.lease(100_000);
    for _ in 0..2 {
        rig.upstream.reply(json_reply("msg_same", 50, 5));
        let response = post(&rig, &token).await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    // Stopping the gateway writes every record it has.
    let mut rig = rig;
    tokio::task::block_in_place(|| rig.gateway.take().unwrap().stop()).unwrap();
    assert_eq!(
        rig.usage_rows(),
        vec![row("msg_same", 50, 5, 0, 0, "claude-x")]
    );
    assert_eq!(rig.ledger.lease(&lease.id).unwrap().used, 55);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_stream_is_charged_what_was_seen() {
    let rig = Rig::start(10_000_000).await;
    let (lease, token) = rig.lease(100_000);
    let (reply, feed) = Reply::stream("text/event-stream");
    rig.upstream.reply(reply);
    let events = sse_events("msg_cut", 700, 0, 0, 90);
    let mut response = post(&rig, &token).await;
    feed.send(Bytes::from(events[0].clone())).unwrap();
    // The agent reads the first event, then goes away.
    let first = tokio::time::timeout(Duration::from_secs(20), response.chunk())
        .await
        .expect("the first event arrives")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    drop(response);
    // The gateway notices when the upstream's next bytes find no reader; the upstream keeps
    // sending as the real API would.
    let mut rows = Vec::new();
    for e in events.iter().skip(1).cycle().take(400) {
        // Fails once the gateway has dropped the upstream's body: nothing more to send.
        let _ = feed.send(Bytes::from(e.clone()));
        rig.flush();
        rows = rig.usage_rows();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rows.len(), 1, "one record for the cut stream");
    assert_eq!(rows[0][0], "msg_cut");
    assert_eq!(rows[0][1], "700", "charged at least the input");
    assert_eq!(rows[0][6], "truncated");
    assert!(rig.ledger.lease(&lease.id).unwrap().used >= 700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_lease_is_topped_up_while_budget_remains_then_refused_with_a_429() {
    let rig = Rig::start(30_000).await;
    let (lease, token) = rig.lease(1_000);
    // Each answer costs 9,000 tokens: past the lease's 1,000 at once.
    for n in 0..4 {
        rig.upstream
            .reply(json_reply(&format!("msg_{n}"), 8_000, 1_000));
        let response = post(&rig, &token).await;
        assert_eq!(response.status(), 200, "request {n} is forwarded");
        response.bytes().await.unwrap();
        rig.await_rows(n + 1).await;
    }
    let topups = rig
        .ledger
        .audit(&AuditQuery {
            action: Some("topup".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(topups.len(), 3, "requests 2, 3 and 4 needed a top-up");
    // The day's 30,000 are gone: the fifth is refused in Anthropic's format, never forwarded.
    let mut upstream = rig.upstream;
    for _ in 0..4 {
        upstream.seen.recv().await.unwrap();
    }
    let rig = Rig { upstream, ..rig };
    let response = post(&rig, &token).await;
    assert_eq!(response.status(), 429);
    let reset_in = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    let day_end = rig.ledger.quota(Some(Provider::Claude)).unwrap()[0].resets_at;
    assert_eq!(
        reset_in,
        (day_end - rig.ledger.now() + 999) / 1000,
        "seconds to the reset"
    );
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let mut upstream = rig.upstream;
    assert!(
        upstream.seen.try_recv().is_err(),
        "the refused request reached the upstream"
    );
    let denies: Vec<_> = rig
        .ledger
        .audit(&AuditQuery {
            action: Some("deny".into()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|e| e.lease_id.as_deref() == Some(lease.id.as_str()))
        .collect();
    assert_eq!(denies.len(), 1, "the refusal is audited");
    let lease = rig.ledger.lease(&lease.id).unwrap();
    assert_eq!(
        lease.used, 36_000,
        "usage past the budget is still recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_lease_and_an_unknown_token_get_401() {
    let rig = Rig::start(1_000_000).await;
    let (lease, token) = rig.lease(10_000);
    rig.ledger.release(&lease.id).unwrap();
    for token in [token.as_str(), "alt-not-a-token-anyone-was-given"] {
        let response = post(&rig, token).await;
        assert_eq!(response.status(), 401);
        let body: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
    }
    let mut upstream = rig.upstream;
    assert!(
        upstream.seen.try_recv().is_err(),
        "the upstream saw a request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_a_reset_takes_the_account_out_of_selection_until_then() {
    let rig = Rig::start(1_000_000).await;
    let (_lease, token) = rig.lease(10_000);
    let reset = chrono::DateTime::from_timestamp_millis(T0 + 90_000)
        .unwrap()
        .to_rfc3339();
    rig.upstream.reply(Reply::Headed {
        status: 429,
        headers: vec![
            ("anthropic-ratelimit-tokens-remaining", "0".into()),
            ("anthropic-ratelimit-tokens-reset", reset),
        ],
        content_type: "application/json",
        body: br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#
            .to_vec(),
    });
    let response = post(&rig, &token).await;
    assert_eq!(
        response.status(),
        429,
        "the upstream's answer reaches the agent"
    );
    response.bytes().await.unwrap();
    rig.flush();
    let auto = |ledger: &Ledger| {
        ledger.acquire_selected(
            &AcquireRequest::new(AgentId::new("next").unwrap(), Provider::Claude).tokens(10),
            &authledger::select::Choice::Auto,
        )
    };
    let refused = auto(&rig.ledger).expect_err("claude is out until the reset");
    assert!(refused.to_string().contains("rate limited"), "{refused}");
    rig.clock.advance_ms(91_000);
    auto(&rig.ledger).expect("claude is back after the reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_base_url_ending_in_v1_gets_the_agents_path_once() {
    let rig = Rig::with_base_path(1_000_000, "/proxy/v1").await;
    let (_lease, token) = rig.lease(10_000);
    rig.upstream.reply(json_reply("msg_path", 1, 1));
    let response = post(&rig, &token).await;
    assert_eq!(response.status(), 200);
    let mut upstream = rig.upstream;
    let seen = upstream.seen.recv().await.unwrap();
    assert_eq!(seen.path_and_query, "/proxy/v1/messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_whose_account_credential_expired_gets_401_saying_so() {
    let rig = Rig::start(1_000_000).await;
    // A Claude Code login, imported: refreshed by Claude Code, never by the ledger.
    let mut imported = Credential::api_key(
        Provider::Claude,
        Account::default(),
        Secret::new("unused".into()),
        "claude-code",
    );
    imported.kind = authledger::CredentialKind::Oauth;
    imported.api_key = None;
    imported.access_token = Some(Secret::new("sk-ant-oat01-imported".into()));
    imported.expires_at = Some(T0 + 3_600_000);
    rig.ledger.store_credential(&imported).unwrap();
    let (_lease, token) = rig.lease(10_000);
    // The access token expires while the lease (2 h) lives on.
    rig.clock.advance_ms(3_700_000);
    let response = post(&rig, &token).await;
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("credential cannot be used"), "{message}");
    assert!(!message.contains("sk-ant-oat01-imported"), "{message}");
    let mut upstream = rig.upstream;
    assert!(
        upstream.seen.try_recv().is_err(),
        "forwarded with an expired token"
    );
}

/// The `x-api-key` the upstream received for the next request it saw.
async fn next_key_seen(upstream: &mut FakeUpstream) -> String {
    let seen = upstream.seen.recv().await.unwrap();
    seen.headers["x-api-key"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_stored_again_is_the_one_the_next_request_carries() {
    let mut rig = Rig::start(1_000_000).await;
    let (_lease, token) = rig.lease(10_000);
    rig.upstream.reply(json_reply("msg_1", 5, 1));
    assert_eq!(post(&rig, &token).await.status(), 200);
    assert_eq!(next_key_seen(&mut rig.upstream).await, REAL_KEY);
    // A new login, well within the second the gateway holds a credential it decrypted.
    const NEW_KEY: &str = "sk-ant-api03-the-new-key-0000000000000";
    rig.ledger
        .store_credential(&Credential::api_key(
            Provider::Claude,
            Account::default(),
            Secret::new(NEW_KEY.into()),
            "stdin",
        ))
        .unwrap();
    rig.upstream.reply(json_reply("msg_2", 5, 1));
    assert_eq!(post(&rig, &token).await.status(), 200);
    assert_eq!(next_key_seen(&mut rig.upstream).await, NEW_KEY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_ends_the_lease_for_the_next_request_and_nothing_is_forwarded() {
    let mut rig = Rig::start(1_000_000).await;
    let (_lease, token) = rig.lease(10_000);
    rig.upstream.reply(json_reply("msg_1", 5, 1));
    assert_eq!(post(&rig, &token).await.status(), 200);
    assert_eq!(next_key_seen(&mut rig.upstream).await, REAL_KEY);
    rig.ledger
        .logout(Provider::Claude, &Account::default())
        .unwrap();
    // The logout revoked the lease, within the second the decrypted credential is held.
    assert_eq!(post(&rig, &token).await.status(), 401);
    assert!(
        rig.upstream.seen.try_recv().is_err(),
        "the upstream saw a request after the logout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_by_another_process_is_followed_by_the_gateway() {
    let mut rig = Rig::start(1_000_000).await;
    let (_lease, token) = rig.lease(10_000);
    rig.upstream.reply(json_reply("msg_1", 5, 1));
    assert_eq!(post(&rig, &token).await.status(), 200);
    assert_eq!(next_key_seen(&mut rig.upstream).await, REAL_KEY);
    // Another process (its own handle on the same files) rotates the master key: the ledger
    // now names its own key file, and the configured one still holds the old key.
    let other = Ledger::open(
        LedgerConfig::new(rig._dir.path().join("ledger.db"))
            .with_clock(std::sync::Arc::new(rig.clock.clone()))
            .with_key(KeySource::File(rig._dir.path().join("master.key"))),
    )
    .unwrap();
    let rotation = other.rotate_key().unwrap();
    assert!(rotation.key_file.is_some());
    // Past the second a decrypted credential is held: the gateway decrypts it again, under
    // the key the ledger now names.
    rig.clock.advance_ms(1_500);
    for id in ["msg_2", "msg_3"] {
        rig.upstream.reply(json_reply(id, 5, 1));
        assert_eq!(post(&rig, &token).await.status(), 200);
        assert_eq!(next_key_seen(&mut rig.upstream).await, REAL_KEY);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_answer_left_half_read_is_still_charged_whole() {
    let rig = Rig::start(10_000_000).await;
    let (_lease, token) = rig.lease(100_000);
    // A whole (not streamed) answer, arriving in two parts; its usage is in the second.
    let (reply, feed) = Reply::stream("application/json");
    rig.upstream.reply(reply);
    let body = String::from_utf8(message("msg_half", 900, 80)).unwrap();
    let (first, rest) = body.split_at(body.len() / 3);
    let mut response = post(&rig, &token).await;
    feed.send(Bytes::from(first.to_string())).unwrap();
    tokio::time::timeout(Duration::from_secs(20), response.chunk())
        .await
        .expect("the first part arrives")
        .unwrap()
        .unwrap();
    // The agent goes away; the upstream had generated all of it and sends the rest.
    drop(response);
    let _ = feed.send(Bytes::from(rest.to_string()));
    drop(feed);
    let rows = rig.await_rows(1).await;
    assert_eq!(rows, vec![row("msg_half", 900, 80, 0, 0, "claude-x")]);
}
