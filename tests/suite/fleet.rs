use crate::common;

// A fleet on PostgreSQL: real `authledger` processes on four simulated hosts (each its own
// AUTHLEDGER_HOME) sharing one ledger database and one master key. The shared budget holds
// exactly under a flood, one OAuth refresh serves every host, and a server restart mid-run
// loses nothing committed while the processes it cut off fail cleanly, never hang. Every CLI
// call pins the clock at T0 and is bounded by a timeout.

use std::time::Duration;

use common::fleet::{BOUND, Fleet, Host, number, replay_peak, spawn_piped, wait_within};
use common::oauth_server::OAuthServer;
use common::pg;
use common::{code, must, parse_json, stderr, stdout};
use serde_json::Value;

const HOSTS: usize = 4;
const CLAUDE_KEY: &str = "sk-ant-api03-test-key-000000";

/// A fleet of four hosts on `db`, with a Claude API key stored from host 0 and the limits set
/// from host 1: one ledger, whichever host writes.
fn claude_fleet(db: &str, concurrent: &str) -> Fleet {
    let fleet = Fleet::new(db, HOSTS);
    must(
        fleet.hosts[0].run_stdin(&["login", "claude", "--api-key-stdin"], CLAUDE_KEY),
        "login",
    );
    must(
        fleet.hosts[1].run(&[
            "limits",
            "set",
            "claude",
            "--daily-tokens",
            "100000000",
            "--concurrent",
            concurrent,
        ]),
        "limits set",
    );
    fleet
}

/// The claude/default quota (daily window figures at the top level) as `host` sees it.
fn claude_quota(host: &Host) -> Value {
    let q = host.json(&["quota", "--provider", "claude"]);
    assert_eq!(q.as_array().map(Vec::len), Some(1), "{q}");
    q[0].clone()
}

fn acquire_args(agent: &str, extra: &[&'static str]) -> Vec<String> {
    let mut args: Vec<String> = ["--json", "lease", "acquire", "--agent", agent]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(
        ["--provider", "claude", "--ttl", "10m"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
    );
    args
}

/// 24 processes on four hosts: a flood against a concurrency limit of 4 admits exactly 4;
/// usage recorded three times over by different processes on different hosts counts once per
/// key; waiting acquirers on every host never push the replayed peak above the limit; the
/// keyed audit chain verifies.
#[test]
fn a_fleet_of_24_processes_on_4_hosts_keeps_one_budget() {
    const PROCESSES: usize = 24;
    let db = pg::server().fresh_db();
    let fleet = claude_fleet(&db, "4");

    // 1. The flood: all 24 ask at once, nobody waits, every lease is held.
    let children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            let mut c = fleet.host(i).cmd();
            c.args(acquire_args(&format!("flood{i}"), &["--tokens", "10000"]));
            spawn_piped(c, None)
        })
        .collect();
    let mut held = Vec::new();
    let mut refused = 0;
    for (i, child) in children.into_iter().enumerate() {
        let out = wait_within(child, BOUND, &format!("flood acquire {i}"));
        match code(&out) {
            0 => held.push(parse_json(&out)["lease_id"].as_str().unwrap().to_string()),
            3 => refused += 1,
            other => panic!("flood acquire {i} exited {other}: {}", stderr(&out)),
        }
    }
    assert_eq!(held.len(), 4, "the flood admits exactly the cap");
    assert_eq!(refused, PROCESSES - 4);
    let q = claude_quota(&fleet.hosts[2]);
    assert_eq!(q["active_leases"], 4, "{q}");

    // 2. Usage with overlapping idempotency keys: 48 distinct records on the 4 held leases,
    // each sent by 3 of the 24 processes (on different hosts), all at once.
    const RECORDS: usize = 48;
    const EACH: usize = 6;
    let record = |r: usize| -> (String, String, i64, i64) {
        (
            format!("u{r}"),
            held[r % 4].clone(),
            r as i64 + 1,
            2 * (r as i64 + 1),
        )
    };
    let duplicates = std::thread::scope(|s| {
        let workers: Vec<_> = (0..PROCESSES)
            .map(|p| {
                let host = fleet.host(p);
                let record = &record;
                s.spawn(move || {
                    let mut duplicates = 0;
                    for j in 0..EACH {
                        let (key, lease, input, output) = record((p * 2 + j) % RECORDS);
                        let out = must(
                            host.run(&[
                                "--json",
                                "usage",
                                "record",
                                &lease,
                                "--input",
                                &input.to_string(),
                                "--output",
                                &output.to_string(),
                                "--key",
                                &key,
                            ]),
                            &format!("process {p} usage {key}"),
                        );
                        if parse_json(&out)["duplicate"] == true {
                            duplicates += 1;
                        }
                    }
                    duplicates
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(
        duplicates,
        PROCESSES * EACH - RECORDS,
        "every key but its first arrival is a duplicate"
    );
    let expected: i64 = (0..RECORDS).map(|r| record(r).2 + record(r).3).sum();
    assert_eq!(expected, 3528);
    assert_eq!(
        number(&db, "SELECT COUNT(*) FROM usage_events"),
        RECORDS as i64
    );
    assert_eq!(
        number(&db, "SELECT SUM(input + output) FROM usage_events"),
        expected
    );
    assert_eq!(claude_quota(&fleet.hosts[3])["used"], expected);
    for (i, id) in held.iter().enumerate() {
        must(fleet.host(i).run(&["lease", "release", id]), "release");
    }

    // 3. Every process acquires twice more, waiting for a free slot whichever host holds it.
    std::thread::scope(|s| {
        for p in 0..PROCESSES {
            let host = fleet.host(p);
            s.spawn(move || {
                for n in 0..2 {
                    let agent = format!("churn{p}");
                    let args = acquire_args(&agent, &["--tokens", "100", "--wait", "60s"]);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let out = must(host.run(&args), &format!("{agent} acquire #{n}"));
                    let id = parse_json(&out)["lease_id"].as_str().unwrap().to_string();
                    must(host.run(&["lease", "release", &id]), "churn release");
                }
            });
        }
    });

    let (peak, active) = replay_peak(&db);
    assert_eq!(active, 0, "every lease ended");
    assert_eq!(peak, 4, "the replayed peak is the limit, never above");
    let acquires = (4 + PROCESSES * 2) as i64;
    assert_eq!(
        number(&db, "SELECT COUNT(*) FROM audit WHERE action = 'acquire'"),
        acquires
    );
    assert_eq!(
        number(&db, "SELECT COUNT(*) FROM leases WHERE state = 'released'"),
        acquires
    );
    let q = claude_quota(&fleet.hosts[0]);
    assert_eq!(
        (&q["used"], &q["reserved"], &q["active_leases"]),
        (&Value::from(expected), &Value::from(0), &Value::from(0)),
        "{q}"
    );
    for host in &fleet.hosts {
        must(host.run(&["audit", "verify"]), "audit verify");
    }
}

/// 16 processes on four hosts need an OAuth token that is about to expire, all at once: the
/// token endpoint sees exactly one refresh, and every process on every host prints the new
/// token.
#[test]
fn sixteen_processes_on_four_hosts_refresh_once() {
    let server = OAuthServer::start();
    server.set(|m| m.expires_in = Some(120));
    let db = pg::server().fresh_db();
    let fleet = Fleet::new(&db, HOSTS);
    for host in &fleet.hosts {
        std::fs::write(
            host.home.path().join("config.toml"),
            server.config_toml("openai"),
        )
        .expect("write config.toml");
    }
    must(
        fleet.hosts[0].run(&["login", "openai", "--device"]),
        "device login",
    );
    let old = server.access_tokens()[0].clone();
    let old_refresh = server.refresh_tokens()[0].clone();
    // The next tokens live an hour; the refresh answer takes long enough for every process to
    // arrive while it is in flight.
    server.set(|m| {
        m.expires_in = Some(3600);
        m.refresh_delay = Duration::from_millis(500);
    });

    let children: Vec<_> = (0..16)
        .map(|i| {
            let mut c = fleet.host(i).cmd();
            c.args(["token", "openai"]);
            spawn_piped(c, None)
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .enumerate()
        .map(|(i, c)| wait_within(c, BOUND, &format!("token {i}")))
        .collect();

    assert_eq!(
        server.replays(),
        Vec::<String>::new(),
        "a refresh token reused"
    );
    let refreshes = server.token_requests("refresh_token");
    assert_eq!(refreshes.len(), 1, "one refresh for the whole fleet");
    assert_eq!(
        refreshes[0].param("refresh_token"),
        Some(old_refresh.as_str())
    );
    let new = server.access_tokens().last().unwrap().clone();
    assert_ne!(new, old);
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(code(out), 0, "process {i}: {}", stderr(out));
        assert_eq!(stdout(out).trim(), new, "process {i}'s token");
    }
    let refreshed = fleet.hosts[3].json(&["audit", "--action", "refresh"]);
    assert_eq!(refreshed.as_array().map(Vec::len), Some(1), "{refreshed}");
    assert_eq!(refreshed[0]["detail"]["outcome"], "ok");
    assert_eq!(number(&db, "SELECT COUNT(*) FROM refresh_claims"), 0);
    // Stored for all: another host gets the new token without asking the server again.
    let out = must(fleet.hosts[2].run(&["token", "openai"]), "token");
    assert_eq!(stdout(&out).trim(), new);
    assert_eq!(server.token_requests("refresh_token").len(), 1);
}
