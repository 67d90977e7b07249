use crate::common;

// A fleet on PostgreSQL: real `authledger` processes on four simulated hosts (each its own
// AUTHLEDGER_HOME) sharing one ledger database and one master key. The shared budget holds
// exactly under a flood, one OAuth refresh serves every host, and a server restart mid-run
// loses nothing committed while the processes it cut off fail cleanly, never hang. Every CLI
// call pins the clock at T0 and is bounded by a timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::fleet::{BOUND, Fleet, Host, number, replay_peak, rows, spawn_piped, wait_within};
use common::oauth_server::OAuthServer;
use common::pg::{self, PgServer};
use common::{assert_refused, code, must, parse_json, stderr, stdout};
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
            // The clock is pinned: per-minute limits would only count the whole test as one
            // minute.
            "--rpm",
            "off",
            "--tpm",
            "off",
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

/// One host's daemon on a server ledger (each request's reads sent ahead in one round trip)
/// racing direct writers on another host, all real CLI processes: the replayed
/// peak never passes the limit, every grant's usage counts once and it is released once, and
/// the chain verifies.
#[test]
fn a_daemon_on_one_host_and_direct_writers_on_another_keep_one_budget() {
    const CONCURRENT: i64 = 3;
    const ROUNDS: usize = 6;
    let db = pg::server().fresh_db();
    let fleet = claude_fleet(&db, &CONCURRENT.to_string());
    let daemon = common::daemon::Daemon::start(&fleet.hosts[0].home, &fleet.hosts[0].ledger_env());
    // Six workers through host 0's daemon, three directly on host 1.
    let workers: Vec<&Host> = (0..9)
        .map(|w| &fleet.hosts[if w < 6 { 0 } else { 1 }])
        .collect();
    let granted: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter()
            .enumerate()
            .map(|(w, host)| {
                s.spawn(move || {
                    let agent = format!("w{w}");
                    let mut granted = 0;
                    for _ in 0..ROUNDS {
                        let args = acquire_args(&agent, &["--tokens", "100"]);
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        let out = host.run_wall(&args);
                        if code(&out) == 3 {
                            continue;
                        }
                        let lease = parse_json(&must(out, "acquire"));
                        let id = lease["lease_id"].as_str().unwrap().to_string();
                        must(
                            host.run_wall(&[
                                "usage", "record", &id, "--input", "30", "--output", "10",
                            ]),
                            "usage record",
                        );
                        must(host.run_wall(&["lease", "release", &id]), "release");
                        granted += 1;
                    }
                    granted
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let through_daemon: usize = granted[..6].iter().sum();
    let (requests, transactions) = daemon.stop();
    println!("through the daemon: {requests} requests in {transactions} transactions");
    assert_eq!(
        requests as usize,
        6 * ROUNDS + 2 * through_daemon,
        "every call of host 0 went through its daemon"
    );
    let (peak, active) = replay_peak(&db);
    assert!(
        peak <= CONCURRENT,
        "{peak} leases at once, limit {CONCURRENT}"
    );
    assert_eq!(active, 0);
    let total: usize = granted.iter().sum();
    assert!(total > 0);
    assert_eq!(
        number(&db, "SELECT COUNT(*) FROM audit WHERE action = 'acquire'"),
        total as i64
    );
    assert_eq!(
        number(
            &db,
            "SELECT COALESCE(SUM(used), 0) FROM windows WHERE kind = 'day'"
        ),
        40 * total as i64
    );
    must(fleet.hosts[2].run(&["audit", "verify"]), "audit verify");
}

/// Batches that really hold many requests on a server ledger: 8 callers in one process, each
/// with a ledger of its own, through an in-process daemon (so requests wait together and are
/// committed together, each reading ahead after the writes of the ones before it), racing 2
/// callers writing directly. Never more than the limit live at once (replayed from the
/// trail), every grant released once, the chain verifies.
#[test]
fn batched_requests_on_a_server_race_direct_writers_and_keep_the_limit() {
    use authledger::paths::LedgerLocation;
    use authledger::{
        Account, AcquireRequest, AgentId, Error, KeySource, Ledger, LedgerConfig, LimitsUpdate,
        Provider, QuotaError,
    };
    const LIMIT: i64 = 3;
    let db = pg::server().fresh_db();
    let state = tempfile::tempdir().unwrap();
    let anchor = state.path().join("servers").join("test").join("ledger");
    let open = |through_daemon: bool| {
        let location = LedgerLocation::Server {
            url: db.clone().into(),
            anchor: anchor.clone(),
        };
        let mut config = LedgerConfig::at(location).with_key(KeySource::File(
            state.path().join("keys").join("master.key"),
        ));
        if through_daemon {
            config = config.with_committer(std::sync::Arc::new(authledger::daemon::Client::new(
                &anchor,
            )));
        }
        Ledger::open(config).unwrap()
    };
    let owner = open(false);
    owner
        .set_limits(
            Provider::Claude,
            &Account::default(),
            &LimitsUpdate {
                concurrent: Some(LIMIT),
                rpm: Some(None),
                tpm: Some(None),
                ..LimitsUpdate::default()
            },
        )
        .unwrap();
    owner
        .store_credential(&authledger::Credential::api_key(
            Provider::Claude,
            Account::default(),
            authledger::Secret::new(CLAUDE_KEY.into()),
            "stdin",
        ))
        .unwrap();
    let server = authledger::daemon::Server::start(&owner).unwrap();
    let callers: Vec<(Ledger, bool)> = (0..10).map(|i| (open(i < 8), i < 8)).collect();
    let granted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = callers
            .iter()
            .enumerate()
            .map(|(i, (ledger, _))| {
                s.spawn(move || {
                    let ask = AcquireRequest::new(
                        AgentId::new(format!("c{i}")).unwrap(),
                        Provider::Claude,
                    )
                    .tokens(10);
                    let mut granted = 0;
                    for _ in 0..40 {
                        match ledger.acquire(&ask) {
                            Ok(lease) => {
                                ledger.release(&lease.id).unwrap();
                                granted += 1;
                            }
                            Err(Error::Quota(QuotaError::Denied(_))) => {}
                            Err(e) => panic!("caller {i}: {e}"),
                        }
                    }
                    granted
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let stats = server.stats();
    drop(server);
    println!(
        "through the daemon: {} requests in {} transactions",
        stats.requests, stats.transactions
    );
    assert!(
        stats.transactions < stats.requests,
        "no batch held two requests: {stats:?}"
    );
    let (peak, active) = replay_peak(&db);
    assert!(peak <= LIMIT, "{peak} leases at once, limit {LIMIT}");
    assert_eq!(active, 0);
    assert!(granted > 0);
    assert_eq!(
        number(&db, "SELECT COUNT(*) FROM audit WHERE action = 'release'"),
        granted as i64
    );
    assert!(owner.verify_audit().unwrap().ok);
}

/// What one looping worker of the restart test saw.
#[derive(Default)]
struct Seen {
    /// Lease ids printed by acquires that succeeded.
    leases: Vec<String>,
    /// (key, lease, tokens) of usage records that succeeded.
    usage: Vec<(String, String, i64)>,
    /// Leases whose release succeeded.
    released: Vec<String>,
    /// Every failed command: its description and output.
    failures: Vec<(String, std::process::Output)>,
    /// Full cycles (acquire, record, release) that succeeded.
    cycles: usize,
}

/// The ledger's advisory lock key (`LEDGER_LOCK` in src/store/pg.rs).
const LEDGER_LOCK: i64 = 0x6175_7468_6c65_6467;
const PASSWORD: &str = "fleet-secret-pw";

/// A private server restarted under 8 looping processes on four hosts: at the restart every
/// worker is inside a write, waiting for the ledger's lock (held from psql); each either
/// fails with exit 5 and one line or is retried once the server is back, none hangs,
/// everything reported committed is in the database, and every worker goes on succeeding.
/// Then, with the server stopped, a command fails with exit 5 within 20 s, naming the
/// server, never the password.
#[test]
fn a_server_restart_mid_run_loses_nothing_committed_and_nobody_hangs() {
    const WORKERS: usize = 8;
    let server = PgServer::start_private();
    let plain = server.fresh_db();
    let mut url = url::Url::parse(&plain).unwrap();
    url.set_password(Some(PASSWORD)).unwrap();
    let db = url.to_string();
    let fleet = claude_fleet(&db, "1000");

    let seen: Vec<Mutex<Seen>> = (0..WORKERS).map(|_| Mutex::default()).collect();
    let restarted = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let cycles_after = |w: usize, restart_at: usize| seen[w].lock().unwrap().cycles - restart_at;
    std::thread::scope(|s| {
        // Whatever happens here, the workers stop (a failed assertion must not leave them
        // looping forever inside the scope).
        let _stop = StopOnDrop(&stop);
        for (w, seen) in seen.iter().enumerate() {
            let host = fleet.host(w);
            let (stop, back) = (&stop, &restarted);
            s.spawn(move || worker(w, host, seen, stop, back));
        }
        let started = Instant::now();
        let wait_until = |what: &str, done: &dyn Fn() -> bool| {
            while !done() {
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "waited too long for {what}: locks {:?}",
                    rows(
                        &plain,
                        "SELECT l.granted, l.objid, l.pid, a.state, a.wait_event_type, \
                         a.backend_start, a.xact_start, left(a.query, 50) FROM pg_locks l \
                         JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
                    )
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        wait_until("two cycles per worker", &|| {
            (0..WORKERS).all(|w| cycles_after(w, 0) >= 2)
        });

        // Hold the ledger's write lock from another session until all 8 workers wait for it.
        let mut holder = std::process::Command::new(pg::pg_bin("psql"))
            .args(["-X", "-q", "-d", &plain])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn psql");
        {
            use std::io::Write;
            let stdin = holder.stdin.as_mut().unwrap();
            writeln!(stdin, "BEGIN; SELECT pg_advisory_xact_lock({LEDGER_LOCK});").unwrap();
            stdin.flush().unwrap();
        }
        let waiting = |granted: bool| {
            number(
                &plain,
                &format!(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted = {granted}"
                ),
            )
        };
        wait_until("psql to hold the lock", &|| waiting(true) == 1);
        wait_until("8 writers waiting", &|| waiting(false) == WORKERS as i64);
        let at_restart: Vec<usize> = seen.iter().map(|s| s.lock().unwrap().cycles).collect();
        server.restart();
        restarted.store(true, Ordering::SeqCst);
        let _ = holder.kill();
        let _ = holder.wait();

        wait_until("two more cycles per worker", &|| {
            (0..WORKERS).all(|w| cycles_after(w, at_restart[w]) >= 2)
        });
        stop.store(true, Ordering::SeqCst);
    });
    assert!(restarted.load(Ordering::SeqCst));

    let seen: Vec<Seen> = seen.into_iter().map(|s| s.into_inner().unwrap()).collect();
    let failures: Vec<&(String, std::process::Output)> =
        seen.iter().flat_map(|s| &s.failures).collect();
    for (what, out) in &failures {
        println!("cut off by the restart: {what}: {}", stderr(out).trim());
        assert_storage_error(out, what, &format!("127.0.0.1:{}", server.port()));
    }
    // A writer that was only waiting for the ledger's lock (nothing of its transaction ran)
    // is retried on a new connection when the server is back in time; one cut off later in
    // its transaction fails cleanly. Either way no more than the 8 interrupted writers fail.
    assert!(
        failures.len() <= WORKERS,
        "only the writers the restart cut off may fail: {:?}",
        failures
            .iter()
            .map(|(w, o)| format!("{w}: {}", stderr(o)))
            .collect::<Vec<_>>()
    );

    // Everything reported committed is there, and nothing else.
    let leases: BTreeMap<String, String> = rows(&plain, "SELECT id, state FROM leases")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let printed: BTreeSet<&String> = seen.iter().flat_map(|s| &s.leases).collect();
    assert_eq!(
        leases.keys().collect::<BTreeSet<_>>(),
        printed,
        "the leases in the database are the ones processes printed"
    );
    for id in seen.iter().flat_map(|s| &s.released) {
        assert_eq!(leases[id], "released", "{id}");
    }
    let usage: BTreeSet<(String, String, i64)> = rows(
        &plain,
        "SELECT idem_key, lease_id, input + output FROM usage_events",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone(), r[2].parse().unwrap()))
    .collect();
    let reported: BTreeSet<(String, String, i64)> =
        seen.iter().flat_map(|s| s.usage.iter().cloned()).collect();
    assert_eq!(
        usage, reported,
        "the usage in the database is what was reported"
    );
    let used: i64 = reported.iter().map(|u| u.2).sum();
    assert_eq!(claude_quota(&fleet.hosts[0])["used"], used);
    must(fleet.hosts[1].run(&["audit", "verify"]), "audit verify");

    // The server stopped: a clear storage error naming it, within 20 s.
    server.stop();
    let started = Instant::now();
    let out = fleet.hosts[2].run(&["status"]);
    let took = started.elapsed();
    println!("server stopped, after {took:?}: {}", stderr(&out).trim());
    let port = format!("127.0.0.1:{}", server.port());
    assert_refused(&out, 5, &[&port], "status with the server stopped");
    assert!(!stderr(&out).contains(PASSWORD), "{}", stderr(&out));
    assert!(took < Duration::from_secs(20), "the failure took {took:?}");
    server.start();
    must(
        fleet.hosts[2].run(&["status"]),
        "status after the server came back",
    );
}

/// A clean storage error: exit 5, nothing on stdout, one line on stderr (JSON for `--json`
/// commands) naming the server at `server`, never the password.
fn assert_storage_error(out: &std::process::Output, what: &str, server: &str) {
    let err = stderr(out);
    assert!(!err.contains(PASSWORD), "{what}: the password shows: {err}");
    assert!(
        err.contains(server),
        "{what}: the server is not named: {err}"
    );
    // The driver's bare "db error" would hide what the server said.
    assert!(
        !err.contains("db error\n") && !err.contains("db error\""),
        "{what}: the server's message is missing: {err}"
    );
    if err.starts_with('{') {
        assert_eq!(code(out), 5, "{what}: {err}");
        assert!(out.stdout.is_empty(), "{what}: stdout {:?}", stdout(out));
        assert_eq!(err.matches('\n').count(), 1, "{what}: one line: {err:?}");
        let v: Value = serde_json::from_str(&err).expect("a JSON error");
        assert_eq!(v["exit_code"], 5, "{what}: {v}");
        assert!(!v["error"].as_str().unwrap_or("").is_empty(), "{what}: {v}");
    } else {
        assert_refused(out, 5, &[], what);
    }
}

/// Sets its flag when dropped, even by a panic.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Acquire, record, release in a loop until `stop`, on `host`, remembering what each command
/// reported.
/// One looping worker. A worker the restart cut off waits until the server is back before its
/// next command, so the only failures are the writes the restart interrupted (a command
/// started while the server is down fails too, cleanly, but says nothing about the restart).
fn worker(w: usize, host: &Host, seen: &Mutex<Seen>, stop: &AtomicBool, back: &AtomicBool) {
    let fail = |what: String, out: std::process::Output| {
        seen.lock().unwrap().failures.push((what, out));
        while !back.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let agent = format!("w{w}");
        let args = acquire_args(&agent, &["--tokens", "100"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = host.run(&args);
        if code(&out) != 0 {
            fail(format!("{agent} acquire #{n}"), out);
            continue;
        }
        let id = parse_json(&out)["lease_id"].as_str().unwrap().to_string();
        seen.lock().unwrap().leases.push(id.clone());
        let key = format!("{agent}-{n}");
        let input = n as i64;
        let out = host.run(&[
            "usage",
            "record",
            &id,
            "--input",
            &input.to_string(),
            "--output",
            "1",
            "--key",
            &key,
        ]);
        let recorded = code(&out) == 0;
        if recorded {
            seen.lock()
                .unwrap()
                .usage
                .push((key, id.clone(), input + 1));
        } else {
            fail(format!("{agent} usage #{n}"), out);
        }
        let out = host.run(&["lease", "release", &id]);
        if code(&out) == 0 {
            let mut seen = seen.lock().unwrap();
            seen.released.push(id);
            if recorded {
                seen.cycles += 1;
            }
        } else {
            fail(format!("{agent} release #{n}"), out);
        }
    }
}
