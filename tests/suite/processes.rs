use crate::common;

// Real OS processes on one ledger file: contention, a grant flood, SIGKILL at random points,
// and the daemon's SIGTERM. Every CLI call pins the clock (T0 unless a test moves it), so
// nothing expires unless a test says so.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Home, T0, code, json_at, must, parse_json, read_only, stderr};
use serde_json::Value;

const MINUTE: i64 = 60_000;

/// The claude/default account's quota (daily window figures at the top level) at `now`.
fn claude_quota(home: &Home, now: i64) -> Value {
    let q = json_at(home, now, &["quota", "--provider", "claude"]);
    assert_eq!(
        q.as_array().map(Vec::len),
        Some(1),
        "one claude account: {q}"
    );
    q[0].clone()
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

fn audit_verify_ok(home: &Home, now: i64) {
    let out = home.run_at(now, &["audit", "verify"]);
    assert_eq!(code(&out), 0, "audit verify: {}", stderr(&out));
}

/// A small xorshift64 generator; the seed is printed so a failing run can be replayed with
/// `AUTHLEDGER_TEST_SEED`.
struct XorShift(u64);

impl XorShift {
    fn from_time() -> XorShift {
        let seed = std::env::var("AUTHLEDGER_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        println!("xorshift seed: {seed}");
        XorShift(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// SIGKILLs each child once its own delay has passed since it was spawned, then reaps them all.
/// Children that finished first are simply reaped.
fn kill_after(mut children: Vec<(Child, Instant)>) -> usize {
    children.sort_by_key(|(_, at)| *at);
    let mut killed = 0;
    for (child, at) in &mut children {
        if let Some(left) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
        if child.try_wait().expect("try_wait").is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
        }
    }
    for (child, _) in &mut children {
        child.wait().expect("reap");
    }
    killed
}

#[test]
fn contention_keeps_every_invariant() {
    let home = Home::new();
    must(
        home.run(&[
            "limits",
            "set",
            "claude",
            "--daily-tokens",
            "1000000",
            "--concurrent",
            "4",
        ]),
        "limits set",
    );
    const AGENTS: usize = 12;
    const CYCLES: usize = 5;
    std::thread::scope(|s| {
        for i in 0..AGENTS {
            let home = &home;
            s.spawn(move || {
                let agent = format!("w{i}");
                for n in 0..CYCLES {
                    let acquire = must(
                        home.run(&[
                            "lease",
                            "acquire",
                            "--agent",
                            &agent,
                            "--provider",
                            "claude",
                            "--tokens",
                            "100",
                            "--wait",
                            "60s",
                            "--json",
                        ]),
                        &format!("{agent} acquire #{n}"),
                    );
                    let id = parse_json(&acquire)["lease_id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let key = format!("{agent}-c{n}");
                    for attempt in 0..2 {
                        must(
                            home.run(&[
                                "usage", "record", &id, "--input", "30", "--output", "20", "--key",
                                &key,
                            ]),
                            &format!("{agent} usage record #{n} attempt {attempt}"),
                        );
                    }
                    must(
                        home.run(&["lease", "release", &id]),
                        &format!("{agent} release #{n}"),
                    );
                }
            });
        }
    });

    let q = claude_quota(&home, T0);
    assert_eq!(q["used"], (AGENTS * CYCLES * 50) as i64, "{q}");
    assert_eq!(q["reserved"], 0, "{q}");
    assert_eq!(q["active_leases"], 0, "{q}");

    let conn = read_only(&home);
    let recorded = count(
        &conn,
        "SELECT COALESCE(SUM(input + output), 0) FROM usage_events",
    );
    assert_eq!(
        recorded,
        q["used"].as_i64().unwrap(),
        "usage_events vs quota used"
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM usage_events"),
        (AGENTS * CYCLES) as i64,
        "each retried record stored once"
    );

    // Replay the audit trail: how many leases were active at once, at worst.
    let mut stmt = conn
        .prepare("SELECT action, lease_id FROM audit ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let (mut active, mut peak) = (0i64, 0i64);
    for (action, lease) in &rows {
        match action.as_str() {
            "acquire" => active += 1,
            "release" | "expire" | "revoke" => active -= 1,
            _ => continue,
        }
        assert!(
            active >= 0,
            "lease {lease:?} ended more often than it began"
        );
        peak = peak.max(active);
    }
    println!("peak concurrently active leases: {peak}");
    assert_eq!(active, 0, "every lease ended");
    assert!(peak <= 4, "concurrency limit 4 exceeded: {peak}");
    assert!(peak >= 2, "no contention observed (peak {peak})");
    drop(stmt);
    drop(conn);

    audit_verify_ok(&home, T0);
}

#[test]
fn flood_grants_exactly_the_daily_cap() {
    let home = Home::new();
    must(
        home.run(&[
            "limits",
            "set",
            "claude",
            "--daily-tokens",
            "4000",
            "--concurrent",
            "64",
        ]),
        "limits set",
    );
    const THREADS: usize = 16;
    const ATTEMPTS: usize = 500;
    let started = Instant::now();
    let (grants, refusals) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let home = &home;
                s.spawn(move || {
                    let agent = format!("f{t}");
                    let (mut granted, mut refused) = (0usize, 0usize);
                    for n in 0..ATTEMPTS {
                        let out = home.run(&[
                            "--json",
                            "lease",
                            "acquire",
                            "--agent",
                            &agent,
                            "--provider",
                            "claude",
                            "--tokens",
                            "1",
                        ]);
                        match out.status.code() {
                            Some(0) => {
                                let id = parse_json(&out)["lease_id"].as_str().unwrap().to_string();
                                let key = format!("{agent}-{n}");
                                must(
                                    home.run(&[
                                        "usage", "record", &id, "--input", "1", "--output", "0",
                                        "--key", &key,
                                    ]),
                                    "usage record",
                                );
                                must(home.run(&["lease", "release", &id]), "release");
                                granted += 1;
                            }
                            Some(3) => refused += 1,
                            other => panic!("acquire exited {other:?}: {}", stderr(&out)),
                        }
                    }
                    (granted, refused)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |(g, r), (g1, r1)| (g + g1, r + r1))
    });
    println!(
        "flood: {} attempts, {grants} grants, {refusals} refusals in {:.1?}",
        THREADS * ATTEMPTS,
        started.elapsed()
    );
    assert_eq!(grants, 4000);
    assert_eq!(refusals, THREADS * ATTEMPTS - 4000);
    let q = claude_quota(&home, T0);
    assert_eq!(q["used"], 4000, "{q}");
    assert_eq!(q["reserved"], 0, "{q}");
    audit_verify_ok(&home, T0);
}

#[test]
fn killed_processes_leak_nothing_after_ttl() {
    let home = Home::new();
    must(
        home.run(&[
            "limits",
            "set",
            "claude",
            "--daily-tokens",
            "1000000",
            "--concurrent",
            "1000",
        ]),
        "limits set",
    );
    // One lease whose holder outlives the chaos, so at least one lease is left to expire.
    let holder = json_at(
        &home,
        T0,
        &[
            "lease",
            "acquire",
            "--agent",
            "holder",
            "--provider",
            "claude",
            "--tokens",
            "100",
            "--ttl",
            "10m",
        ],
    )["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut rng = XorShift::from_time();

    // Phase A: 40 acquires at once, each SIGKILLed after 0-40 ms.
    let children: Vec<_> = (0..40)
        .map(|i| {
            let child = home
                .cmd()
                .args([
                    "lease",
                    "acquire",
                    "--agent",
                    &format!("k{i}"),
                    "--provider",
                    "claude",
                    "--tokens",
                    "100",
                    "--ttl",
                    "10m",
                    "--json",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn acquire");
            let at = Instant::now() + Duration::from_millis(rng.below(41));
            (child, at)
        })
        .collect();
    let killed_a = kill_after(children);

    // Phase B: release half of the live leases (the ones phase A left, and others granted now
    // so the releases never depend on phase A's timing), SIGKILLing the releases after
    // 0-20 ms.
    for i in 0..8 {
        json_at(
            &home,
            T0,
            &[
                "lease",
                "acquire",
                "--agent",
                &format!("r{i}"),
                "--provider",
                "claude",
                "--tokens",
                "100",
                "--ttl",
                "10m",
            ],
        );
    }
    let active = json_at(&home, T0, &["lease", "list"]);
    let targets: Vec<String> = active
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lease_id"].as_str().unwrap().to_string())
        .filter(|id| *id != holder)
        .collect();
    let targets = &targets[..targets.len() / 2];
    // The kills hit live leases: every target is active in the database right now.
    let live_targets = {
        let conn = read_only(&home);
        targets
            .iter()
            .filter(|id| {
                count(
                    &conn,
                    &format!("SELECT COUNT(*) FROM leases WHERE id = '{id}' AND state = 'active'"),
                ) == 1
            })
            .count()
    };
    assert!(live_targets >= 4, "{live_targets} live leases to release");
    assert_eq!(live_targets, targets.len());
    let children: Vec<_> = targets
        .iter()
        .map(|id| {
            let child = home
                .cmd()
                .args(["lease", "release", id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn release");
            (child, Instant::now() + Duration::from_millis(rng.below(21)))
        })
        .collect();
    let killed_b = kill_after(children);
    assert!(
        killed_a + killed_b > 0,
        "no process was killed while it ran: nothing was tested"
    );

    // Consistency: a killed process left either all of its transaction or none of it.
    let conn = read_only(&home);
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let leases = count(&conn, "SELECT COUNT(*) FROM leases");
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM audit WHERE action = 'acquire'"),
        leases,
        "one acquire row per lease"
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM audit WHERE action = 'release'"),
        count(
            &conn,
            "SELECT COUNT(*) FROM leases WHERE state = 'released'"
        ),
        "one release row per released lease"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COALESCE(SUM(w.reserved), 0) FROM lease_windows w JOIN leases l ON l.id = w.lease_id
             WHERE l.state <> 'active'"
        ),
        0,
        "an ended lease still holds tokens"
    );
    drop(conn);
    audit_verify_ok(&home, T0);

    let active = json_at(&home, T0, &["lease", "list"]);
    let active = active.as_array().unwrap();
    let held: i64 = active
        .iter()
        .map(|l| l["allocated_tokens"].as_i64().unwrap() - l["used_tokens"].as_i64().unwrap())
        .sum();
    let q = claude_quota(&home, T0);
    assert_eq!(q["reserved"], held, "reserved vs active leases: {q}");
    assert_eq!(q["active_leases"], active.len() as i64, "{q}");
    println!(
        "phase A: {killed_a}/40 acquires SIGKILLed; phase B: {} releases, {killed_b} SIGKILLed; {} leases in all, {} active",
        targets.len(),
        leases,
        active.len()
    );
    assert!(active.iter().any(|l| l["lease_id"] == holder.as_str()));

    // Nothing expires a millisecond early.
    let early = json_at(&home, T0 + 10 * MINUTE - 1, &["cleanup"]);
    assert_eq!(early["expired"], 0, "{early}");
    assert_eq!(early["idle"], 0, "{early}");

    // At the TTL every remaining lease is reclaimed, once.
    let at_ttl = T0 + 10 * MINUTE;
    let report = json_at(&home, at_ttl, &["cleanup"]);
    assert_eq!(report["expired"], active.len() as i64, "{report}");
    let reclaimed: HashSet<&str> = report["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let was_active: HashSet<&str> = active
        .iter()
        .map(|l| l["lease_id"].as_str().unwrap())
        .collect();
    assert_eq!(reclaimed, was_active);
    let q = claude_quota(&home, at_ttl);
    assert_eq!(q["reserved"], 0, "{q}");
    assert_eq!(q["active_leases"], 0, "{q}");

    let conn = read_only(&home);
    let mut stmt = conn
        .prepare("SELECT lease_id FROM audit WHERE action = 'expire'")
        .unwrap();
    let mut expired_rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    expired_rows.sort();
    let mut expected: Vec<String> = was_active.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(expired_rows, expected, "one expire row per reclaimed lease");
    drop(stmt);
    drop(conn);
    audit_verify_ok(&home, at_ttl);

    // The old holder comes back too late.
    for verb in ["renew", "release"] {
        let out = home.run_at(at_ttl + 1, &["lease", verb, &holder]);
        assert_eq!(code(&out), 3, "late {verb}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("lost"),
            "late {verb}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn daemon_reclaims_and_stops_on_sigterm() {
    let home = Home::new();
    let id = json_at(
        &home,
        T0,
        &[
            "lease",
            "acquire",
            "--agent",
            "sleeper",
            "--provider",
            "claude",
            "--tokens",
            "100",
            "--ttl",
            "10m",
        ],
    )["lease_id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut daemon = home
        .cmd_at(T0 + 11 * MINUTE)
        .args(["daemon", "--interval", "1h"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    let (tx, rx) = mpsc::channel();
    let pipe = daemon.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let pass = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("cleanup:") => break line,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = daemon.kill();
                let _ = daemon.wait();
                panic!("no cleanup line from the daemon within 30 s; stderr: {seen:?}");
            }
        }
    };
    assert!(pass.contains("1 expired"), "{pass}");

    let term = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("run kill");
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = daemon.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = daemon.kill();
            let _ = daemon.wait();
            panic!("daemon still running 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "daemon exit: {status:?}");
    reader.join().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("daemon stopping")),
        "{rest:?}"
    );

    let all = json_at(&home, T0 + 11 * MINUTE, &["lease", "list", "--all"]);
    let lease = all
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["lease_id"] == id.as_str())
        .expect("lease listed");
    assert_eq!(lease["state"], "expired", "{lease}");
}

#[test]
fn a_kill_inside_a_write_transaction_leaves_no_trace() {
    let home = Home::new();
    let lease = parse_json(&must(
        home.run(&[
            "--json",
            "lease",
            "acquire",
            "--agent",
            "a",
            "--provider",
            "claude",
            "--tokens",
            "100",
        ]),
        "acquire",
    ));
    let id = lease["lease_id"].as_str().unwrap().to_string();
    let cases: [(&str, Vec<&str>); 3] = [
        (
            "acquire:before-audit",
            vec![
                "lease",
                "acquire",
                "--agent",
                "b",
                "--provider",
                "claude",
                "--tokens",
                "50",
            ],
        ),
        (
            "usage:before-insert",
            vec![
                "usage", "record", &id, "--input", "5", "--output", "5", "--key", "k1",
            ],
        ),
        ("release:after-end", vec!["lease", "release", &id]),
    ];
    for (point, args) in cases {
        let before = home.snapshot();
        home.kill_at_fault_point(point, &args);
        assert_eq!(
            before,
            home.snapshot(),
            "{point}: a killed transaction left a trace"
        );
        audit_verify_ok(&home, T0);
        // The same operation then goes through whole.
        must(home.run(&args), point);
    }
    let q = claude_quota(&home, T0);
    assert_eq!(
        (q["used"].as_i64(), q["reserved"].as_i64()),
        (Some(10), Some(50))
    );
}
