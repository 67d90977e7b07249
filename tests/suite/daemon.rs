use crate::common;

// Group commit through `authledger daemon`, with real OS processes on one ledger file: many
// clients sharing the daemon's transactions keep every invariant, a daemon killed between its
// commit and its reply loses nothing and doubles nothing, and a ledger never has two daemons.
// The daemon serves only clients on the wall clock, so these commands do not pin the time; the
// API key account they use has no expiry and its rate limits are switched off.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, wall, wall_home};
use common::{Home, code, read_only, stderr, stdout};
use serde_json::Value;

/// (action, lease id) of every audit row, in chain order.
fn audit_rows(home: &Home) -> Vec<(String, Option<String>)> {
    let conn = read_only(home);
    let mut stmt = conn
        .prepare("SELECT action, lease_id FROM audit ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A library ledger on the wall clock at `dir/ledger.db`, handed the daemon's client as its
/// committer (so it uses a serving daemon).
fn open_library(dir: &std::path::Path) -> authledger::Ledger {
    use authledger::{KeySource, Ledger, LedgerConfig};
    let db = dir.join("ledger.db");
    let client = std::sync::Arc::new(authledger::daemon::Client::new(&db));
    Ledger::open(
        LedgerConfig::new(db)
            .with_key(KeySource::File(dir.join("master.key")))
            .with_committer(client),
    )
    .expect("open ledger")
}

/// [`open_library`] with a Claude API key stored.
fn library_with_key(dir: &std::path::Path) -> authledger::Ledger {
    use authledger::{Account, Credential, Provider, Secret};
    let ledger = open_library(dir);
    ledger
        .store_credential(&Credential::api_key(
            Provider::Claude,
            Account::default(),
            Secret::new("sk-ant-api03-library-daemon-0000".into()),
            "stdin",
        ))
        .expect("store credential");
    ledger
}

#[test]
fn processes_writing_through_the_daemon_share_transactions_and_keep_every_invariant() {
    const WORKERS: usize = 8;
    const ROUNDS: usize = 12;
    const CONCURRENT: usize = 3;
    let home = wall_home(&CONCURRENT.to_string());
    let daemon = Daemon::start(&home, &[]);

    // Each worker thread drives real CLI processes: acquire, record usage, renew, release.
    let results: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let home = &home;
                s.spawn(move || {
                    let (mut granted, mut denied) = (0, 0);
                    for _ in 0..ROUNDS {
                        let agent = format!("w{w}");
                        let out = wall(
                            home,
                            &[
                                "--json",
                                "lease",
                                "acquire",
                                "--agent",
                                &agent,
                                "--provider",
                                "claude",
                                "--tokens",
                                "100",
                            ],
                        );
                        match code(&out) {
                            0 => granted += 1,
                            3 => {
                                denied += 1;
                                continue;
                            }
                            other => panic!("acquire exit {other}: {}", stderr(&out)),
                        }
                        let lease: Value = serde_json::from_slice(&out.stdout).unwrap();
                        let id = lease["lease_id"].as_str().unwrap();
                        for args in [
                            vec!["usage", "record", id, "--input", "30", "--output", "10"],
                            vec!["lease", "renew", id],
                            vec!["lease", "release", id],
                        ] {
                            let out = wall(home, &args);
                            assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
                        }
                    }
                    (granted, denied)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let granted: usize = results.iter().map(|r| r.0).sum();
    let denied: usize = results.iter().map(|r| r.1).sum();
    assert_eq!(granted + denied, WORKERS * ROUNDS);
    assert!(granted > 0);

    // Every acquire and every follow-up went through the daemon. How many share a transaction
    // here depends on how the processes happen to overlap; the test above shows that waiting
    // requests do share one.
    let (requests, transactions) = daemon.stop();
    assert_eq!(requests as usize, WORKERS * ROUNDS + 3 * granted);
    assert!(
        transactions >= 1 && transactions <= requests,
        "{transactions} > {requests}"
    );

    // The trail replayed in commit order: never more than CONCURRENT leases at once, every
    // grant used, renewed and released exactly once.
    let rows = audit_rows(&home);
    let mut live: HashMap<String, Vec<&str>> = HashMap::new();
    let mut done = 0;
    let mut peak = 0;
    for (action, lease) in &rows {
        match (action.as_str(), lease) {
            ("acquire", Some(id)) => {
                assert!(
                    live.insert(id.clone(), Vec::new()).is_none(),
                    "{id} granted twice"
                );
                peak = peak.max(live.len());
            }
            ("usage" | "renew", Some(id)) => {
                live.get_mut(id).expect("on a live lease").push(action)
            }
            ("release", Some(id)) => {
                let steps = live.remove(id).expect("release of a live lease");
                assert_eq!(steps, ["usage", "renew"], "{id}");
                done += 1;
            }
            _ => {}
        }
    }
    assert!(live.is_empty(), "leases never released: {live:?}");
    assert_eq!(done, granted);
    assert!(
        peak <= CONCURRENT,
        "{peak} leases at once, limit {CONCURRENT}"
    );
    let out = wall(&home, &["audit", "verify"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let used: i64 = read_only(&home)
        .query_row(
            "SELECT used FROM windows WHERE provider = 'claude' AND kind = 'day'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(used, 40 * granted as i64);
}

#[test]
fn concurrent_clients_requests_share_one_transaction_and_each_gets_its_own_reply() {
    const CLIENTS: usize = 16;
    let home = wall_home(&CLIENTS.to_string());
    // The batcher's first commit is held until all 16 requests wait, as a slow fsync would
    // hold it under real load (where how many overlap is luck): whatever waits must then go
    // in one transaction.
    let daemon = Daemon::start(
        &home,
        &[(
            "AUTHLEDGER_FAULT",
            &format!("daemon:hold-until-queued={CLIENTS}"),
        )],
    );
    let clients: Vec<(String, Child)> = (0..CLIENTS)
        .map(|i| {
            let agent = format!("c{i}");
            let child = home
                .cmd_wall()
                .args([
                    "--json",
                    "lease",
                    "acquire",
                    "--agent",
                    &agent,
                    "--provider",
                    "claude",
                    "--tokens",
                    "100",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn acquire");
            (agent, child)
        })
        .collect();
    let mut granted: HashMap<String, String> = HashMap::new();
    for (agent, child) in clients {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{agent}: {}", stderr(&out));
        let lease: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(lease["agent"], agent.as_str(), "{lease}");
        granted.insert(lease["lease_id"].as_str().unwrap().to_string(), agent);
    }
    assert_eq!(granted.len(), CLIENTS, "every client got its own lease");
    assert_eq!(daemon.stop(), (CLIENTS as u64, 1));
    // The ledger agrees with what each client was told.
    let conn = read_only(&home);
    let mut stmt = conn
        .prepare("SELECT id, agent FROM leases WHERE state = 'active'")
        .unwrap();
    let stored: HashMap<String, String> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored, granted);
}

#[test]
fn a_daemon_killed_between_commit_and_reply_loses_and_doubles_nothing() {
    // One slot: the lease the client finds is the one holding it, and it must still be
    // reported granted.
    let home = wall_home("1");
    // The daemon commits the grant and is killed before answering; the client sees its
    // connection drop, finds its lease in the ledger and reports it.
    let out = through_a_dying_daemon(
        &home,
        &[
            "--json",
            "lease",
            "acquire",
            "--agent",
            "a",
            "--provider",
            "claude",
            "--tokens",
            "100",
        ],
    );
    assert_eq!(code(&out), 0, "acquire: {}", stderr(&out));
    let lease: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = lease["lease_id"].as_str().unwrap().to_string();
    let grants: Vec<_> = audit_rows(&home)
        .into_iter()
        .filter(|(a, _)| a == "acquire")
        .collect();
    assert_eq!(grants, [("acquire".to_string(), Some(id.clone()))]);

    // The dead daemon's socket is left behind; clients work directly and say nothing of it.
    assert!(home.path().join("ledger.db.sock").exists());
    let out = wall(&home, &["lease", "release", &id]);
    assert_eq!(code(&out), 0, "release: {}", stderr(&out));
    let active: i64 = read_only(&home)
        .query_row(
            "SELECT COUNT(*) FROM leases WHERE state = 'active'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(active, 0);

    // A new daemon takes the stale socket over.
    let again = Daemon::start(&home, &[]);
    let out = wall(
        &home,
        &[
            "lease",
            "acquire",
            "--agent",
            "b",
            "--provider",
            "claude",
            "--tokens",
            "1",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(again.stop(), (1, 1));
}

#[test]
fn one_daemon_per_ledger_owner_only_socket_and_none_on_a_pinned_clock() {
    use std::os::unix::fs::PermissionsExt;
    let home = wall_home("5");
    let first = Daemon::start(&home, &[]);
    let socket = home.path().join("ledger.db.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    let doctor = wall(&home, &["doctor"]);
    assert!(
        stdout(&doctor).contains(&format!("serving writes at {}", socket.display())),
        "{}",
        stdout(&doctor)
    );

    let second = wall(&home, &["daemon", "--interval", "1h"]);
    assert_eq!(code(&second), 1);
    assert!(
        stderr(&second).contains("another daemon already serves"),
        "{}",
        stderr(&second)
    );

    // A command told to stay off the daemon works directly: the daemon counts nothing.
    let out = home
        .cmd_wall()
        .env("AUTHLEDGER_NO_DAEMON", "1")
        .args([
            "lease",
            "acquire",
            "--agent",
            "d",
            "--provider",
            "claude",
            "--tokens",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(first.stop(), (0, 0));
    assert!(!socket.exists(), "a stopped daemon removes its socket");
    assert!(stdout(&wall(&home, &["doctor"])).contains("none: writes go to the database directly"));

    // On a pinned clock the daemon cleans up but serves no one.
    let mut pinned = home
        .cmd()
        .args(["daemon", "--interval", "1h"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(pinned.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("cleanup"), "{line}");
    assert!(!socket.exists());
    pinned.kill().unwrap();
    pinned.wait().unwrap();
}

#[test]
fn a_library_ledger_uses_a_server_in_its_process_and_gets_the_same_errors() {
    use authledger::daemon::{ServedStats, Server};
    use authledger::{
        Account, AcquireRequest, AgentId, Error, LimitsUpdate, Provider, QuotaError, UsageRecord,
    };
    let dir = tempfile::tempdir().unwrap();
    let owner = library_with_key(dir.path());
    owner
        .set_limits(
            Provider::Claude,
            &Account::default(),
            &LimitsUpdate {
                concurrent: Some(1),
                rpm: Some(None),
                tpm: Some(None),
                ..LimitsUpdate::default()
            },
        )
        .unwrap();
    let server = Server::start(&owner).unwrap();
    let client = open_library(dir.path());
    let ask = |agent: &str| {
        AcquireRequest::new(AgentId::new(agent).unwrap(), Provider::Claude).tokens(100)
    };

    let lease = client.acquire(&ask("a")).unwrap();
    let err = client.acquire(&ask("b")).unwrap_err();
    assert!(matches!(err, Error::Quota(QuotaError::Denied(_))), "{err}");
    assert_eq!(err.exit_code(), 3);
    client
        .record_usage(&lease.id, &UsageRecord::new(10, 5).key("u1"))
        .unwrap();
    // The retry of a usage record counts once, through the daemon as directly.
    let again = client
        .record_usage(&lease.id, &UsageRecord::new(10, 5).key("u1"))
        .unwrap();
    assert!(again.duplicate);
    let released = client.release(&lease.id).unwrap();
    assert_eq!(released.returned, 85);
    let err = client.release(&lease.id).unwrap_err();
    assert!(
        matches!(err, Error::Quota(QuotaError::LeaseLost { .. })),
        "{err}"
    );
    assert_eq!(
        server.stats(),
        ServedStats {
            requests: 6,
            transactions: 6
        }
    );
    // Told to stay off the daemon, a ledger works directly.
    client.direct().acquire(&ask("c")).expect("direct acquire");
    assert_eq!(server.stats().requests, 6);
    drop(server);
    assert!(!dir.path().join("ledger.db.sock").exists());
}

#[test]
fn a_daemon_that_did_not_run_the_request_is_passed_by_and_the_write_done_directly() {
    use authledger::daemon::protocol::{
        Envelope, Reply, VERSION, WireError, read_frame, write_frame,
    };
    use authledger::{AcquireRequest, AgentId, Provider};
    // A daemon from a future release, and one too busy to start the request in time: neither
    // did anything, so the client does it itself.
    for refusal in [WireError::Version { served: 99 }, WireError::Expired] {
        let dir = tempfile::tempdir().unwrap();
        let ledger = library_with_key(dir.path());
        let socket = authledger::daemon::socket_path_for(&dir.path().join("ledger.db")).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let answer = refusal.clone();
        let fake = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let envelope: Envelope = read_frame(&mut conn).unwrap().unwrap();
            let reply: Reply = Err(answer);
            write_frame(&mut conn, &reply).unwrap();
            envelope
        });
        let before = ledger.now();
        let lease = ledger
            .acquire(&AcquireRequest::new(AgentId::new("a").unwrap(), Provider::Claude).tokens(10))
            .expect("done directly");
        let envelope = fake.join().unwrap();
        assert_eq!(envelope.v, VERSION);
        // The deadline the daemon would have checked: some seconds ahead of the client's clock.
        assert!(envelope.deadline_ms > before + 1_000, "{refusal:?}");
        assert_eq!(ledger.lease(&lease.id).unwrap().id, lease.id);
        let grants = ledger
            .audit(&authledger::AuditQuery {
                action: Some("acquire".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(grants.len(), 1, "{refusal:?}");
    }
}

/// Runs `args` through a daemon armed to stop between its commit and its reply, kills the
/// daemon there, and returns the client's output (the client settles the outcome itself).
fn through_a_dying_daemon(home: &Home, args: &[&str]) -> Output {
    through_a_dying_daemon_with(home, args, || {})
}

/// [`through_a_dying_daemon`], running `meanwhile` after the daemon committed and before it
/// is killed.
fn through_a_dying_daemon_with(home: &Home, args: &[&str], meanwhile: impl FnOnce()) -> Output {
    let mut daemon = Daemon::start(home, &[("AUTHLEDGER_FAULT", "daemon:before-reply")]);
    let client = home
        .cmd_wall()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    daemon.wait_for("fault point daemon:before-reply reached");
    meanwhile();
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    client.wait_with_output().unwrap()
}

#[test]
fn usage_and_release_lost_with_the_daemon_count_once() {
    let home = wall_home("5");
    let direct = |args: &[&str]| {
        home.cmd_wall()
            .env("AUTHLEDGER_NO_DAEMON", "1")
            .args(args)
            .output()
            .unwrap()
    };
    let out = direct(&[
        "--json",
        "lease",
        "acquire",
        "--agent",
        "a",
        "--provider",
        "claude",
        "--tokens",
        "100",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["lease_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Usage committed by the daemon that died: the client's direct retry finds its key.
    let out = through_a_dying_daemon(
        &home,
        &[
            "usage", "record", &id, "--input", "30", "--output", "10", "--key", "req-1",
        ],
    );
    assert_eq!(code(&out), 0, "usage: {}", stderr(&out));
    // Release committed by the daemon that died: the client finds the lease released and
    // reports what the release gave back, even though more usage arrived on the ended lease
    // before the client looked.
    let out = through_a_dying_daemon_with(&home, &["--json", "lease", "release", &id], || {
        let late = direct(&["usage", "record", &id, "--input", "15", "--output", "5"]);
        // Recorded, and the holder told the lease is gone (exit 3).
        assert_eq!(code(&late), 3, "late usage: {}", stderr(&late));
        assert!(
            stderr(&late).contains("usage recorded"),
            "{}",
            stderr(&late)
        );
    });
    assert_eq!(code(&out), 0, "release: {}", stderr(&out));
    let released: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(released["returned_tokens"], 60, "{released}");

    let actions: Vec<String> = audit_rows(&home)
        .into_iter()
        .filter(|(_, lease)| lease.as_deref() == Some(id.as_str()))
        .map(|(a, _)| a)
        .collect();
    assert_eq!(actions, ["acquire", "usage", "release", "usage"]);
    let (used, reserved): (i64, i64) = read_only(&home)
        .query_row(
            "SELECT used, reserved FROM windows WHERE provider = 'claude' AND kind = 'day'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((used, reserved), (60, 0));
}

#[test]
fn clients_of_a_stopped_server_in_a_live_process_go_on_directly() {
    use authledger::daemon::Server;
    use authledger::{AcquireRequest, AgentId, Provider};
    let dir = tempfile::tempdir().unwrap();
    let ledger = library_with_key(dir.path());
    let ask = || AcquireRequest::new(AgentId::new("a").unwrap(), Provider::Claude).tokens(1);
    let server = Server::start(&ledger).unwrap();
    let client = open_library(dir.path());
    client.acquire(&ask()).unwrap();
    let served = server.stats().requests;
    assert_eq!(served, 1);
    drop(server);
    // The client's kept connection is refused at its next request; it settles that request on
    // the database and goes on directly, and a new server may start at once.
    let lease = client.acquire(&ask()).unwrap();
    assert_eq!(client.lease(&lease.id).unwrap().id, lease.id);
    let again = Server::start(&ledger).unwrap();
    assert_eq!(again.stats().requests, 0);
    let grants = client
        .audit(&authledger::AuditQuery {
            action: Some("acquire".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(grants.len(), 2);
}

#[test]
fn a_batcher_that_panics_withdraws_the_socket_and_clients_go_on_directly() {
    let home = wall_home("5");
    let mut daemon = Daemon::start(&home, &[("AUTHLEDGER_FAULT", "daemon:batcher-panic")]);
    let acquire = |agent: &str| {
        wall(
            &home,
            &[
                "lease",
                "acquire",
                "--agent",
                agent,
                "--provider",
                "claude",
                "--tokens",
                "10",
            ],
        )
    };
    // The request reaches a batcher that dies: the client learns at once, not by a timeout
    // (its own is an hour here, so it finishes only if told), and settles it on the database.
    let client = home
        .cmd_wall()
        .env("AUTHLEDGER_DAEMON_TIMEOUT_MS", "3600000")
        .args([
            "lease",
            "acquire",
            "--agent",
            "a",
            "--provider",
            "claude",
            "--tokens",
            "10",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finished(client, "the client waited for a reply that cannot come");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    daemon.wait_for("fault point daemon:batcher-panic reached");
    let socket = home.path().join("ledger.db.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() {
        assert!(Instant::now() < deadline, "the socket is still there");
        std::thread::yield_now();
    }
    // Later clients find no daemon and work directly; the daemon itself runs on.
    let out = acquire("b");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(daemon.stop(), (0, 0));
    let grants = audit_rows(&home)
        .into_iter()
        .filter(|(a, _)| a == "acquire")
        .count();
    assert_eq!(grants, 2);
}

/// The output of `child`, which must finish within a minute: far less than the hour-long
/// timeouts the tests give their clients, far more than a loaded machine needs.
fn finished(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A socket at the ledger's daemon path that takes connections and never answers; each
/// connection's bytes are reported once the client hangs up.
struct HungDaemon {
    received: mpsc::Receiver<Vec<u8>>,
}

impl HungDaemon {
    fn start(home: &Home) -> HungDaemon {
        use std::io::Read;
        let listener =
            std::os::unix::net::UnixListener::bind(home.path().join("ledger.db.sock")).unwrap();
        let (tx, received) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let _ = conn.read_to_end(&mut got);
                    let _ = tx.send(got);
                });
            }
        });
        HungDaemon { received }
    }
}

#[test]
fn a_hung_daemon_costs_a_client_its_timeout_then_it_works_directly() {
    let home = wall_home("5");
    let hung = HungDaemon::start(&home);
    // `run` acquires (through the hung daemon: lost after the client's timeout, then found
    // not granted and done directly) and releases (directly: the client no longer asks).
    const TIMEOUT_MS: u64 = 500;
    let started = Instant::now();
    let client = home
        .cmd_wall()
        .env("AUTHLEDGER_DAEMON_TIMEOUT_MS", TIMEOUT_MS.to_string())
        .args([
            "run",
            "--agent",
            "a",
            "--provider",
            "claude",
            "--tokens",
            "10",
            "--",
            "true",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finished(client, "the client hung with its daemon");
    let took = started.elapsed();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // It waited for the daemon, but not the built-in 15 s.
    assert!(took >= Duration::from_millis(TIMEOUT_MS), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The daemon saw one request, the acquire; the release never went its way.
    let first = hung.received.recv().unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("acquire"),
        "{first:?}"
    );
    assert!(
        hung.received.try_recv().is_err(),
        "a second request was sent"
    );
    let actions: Vec<String> = audit_rows(&home).into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "acquire").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "release").count(),
        1,
        "{actions:?}"
    );
}

#[test]
fn a_socket_served_by_another_user_is_never_sent_a_request() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let home = wall_home("5");
    if std::fs::metadata(home.path()).unwrap().uid() != 0 {
        // Serving as another user takes root; the check itself runs on every connect.
        eprintln!("skipped: not root, cannot serve a socket as another user");
        return;
    }
    // A process of another user listens in a directory it may write to; root moves the
    // socket to the ledger's daemon path (a bound socket keeps its owner when moved).
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    got = b""
    while True:
        b = c.recv(4096)
        if not b:
            break
        got += b
    print("got", len(got), flush=True)
"#;
    let mut foreign = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(open.path().join("s"))
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 as nobody");
    let mut said = BufReader::new(foreign.stdout.take().unwrap()).lines();
    assert_eq!(said.next().unwrap().unwrap(), "ready");
    std::fs::rename(open.path().join("s"), home.path().join("ledger.db.sock")).unwrap();

    let client = home
        .cmd_wall()
        .env("AUTHLEDGER_DAEMON_TIMEOUT_MS", "2000")
        .args([
            "lease",
            "acquire",
            "--agent",
            "a",
            "--provider",
            "claude",
            "--tokens",
            "10",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finished(client, "the client hung on the other user's socket");
    // The client connected, saw the other user, hung up without a word, and worked directly.
    let line = said.next().unwrap().unwrap();
    let _ = foreign.kill();
    let _ = foreign.wait();
    assert_eq!(line, "got 0", "the other user's socket was sent a request");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let grants = audit_rows(&home)
        .into_iter()
        .filter(|(a, _)| a == "acquire")
        .count();
    assert_eq!(grants, 1);
}
