//! PostgreSQL benchmark: the ledger's acquire+release on a PostgreSQL store, beside raw
//! PostgreSQL transactions of the same shape on the same server in the same run (pgbench with
//! the custom script `benches/acquire_release.sql`).
//!
//! ```sh
//! cargo bench --bench postgres                 # 5 rounds of 4 s per side and point
//! BENCH_QUICK=1 cargo bench --bench postgres   # 1 round of 1 s
//! BENCH_CLIENTS=16 cargo bench --bench postgres # only 16 clients
//! BENCH_ROUNDS=9 cargo bench --bench postgres   # more rounds
//! ```
//!
//! Raw and ledger take turns, round after round, and each figure is a median: the disk of the
//! VM this was written on changes speed by a third within minutes, which two long runs one
//! after the other would report as a difference between them.
//!
//! One "tx" is one acquire+release pair (two SQL transactions, each under the ledger-wide
//! advisory lock). The server is a private throwaway cluster (`initdb` + `pg_ctl` in a
//! temporary directory, 127.0.0.1 at a free port) with PostgreSQL's default durability (fsync
//! on). The p99 is computed from pgbench's per-transaction log (`--log`), every pair counted.
//! Results go to stdout and to `target/bench/postgres.json`.

#[path = "../tests/suite/common/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use authledger::paths::LedgerLocation;
use authledger::{
    Account, AcquireRequest, AgentId, Credential, KeySource, Ledger, LedgerConfig, LimitsUpdate,
    Provider, Secret,
};

use serde_json::{Value, json};

/// The client counts measured; the issue's targets are read at 16.
const CLIENTS: [usize; 3] = [1, 16, 64];

/// The raw schema: one `windows` row per account (used, reserved, limit), the leases, and the
/// audit chain (each row's hash covers the previous row's, read under the lock).
const SCHEMA: &str = "
CREATE TABLE windows (
    account_id int PRIMARY KEY,
    used bigint NOT NULL DEFAULT 0,
    reserved bigint NOT NULL DEFAULT 0,
    lim bigint NOT NULL
);
CREATE TABLE leases (
    fence bigint PRIMARY KEY,
    account_id int NOT NULL REFERENCES windows,
    reserved bigint NOT NULL,
    state text NOT NULL,
    created_at timestamptz NOT NULL,
    ended_at timestamptz
);
CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    at timestamptz NOT NULL,
    action text NOT NULL,
    lease_fence bigint,
    hash text NOT NULL
);
INSERT INTO windows (account_id, lim)
    SELECT g, 1000000000000000 FROM generate_series(1, 8) AS g;
INSERT INTO audit VALUES (0, now(), 'genesis', NULL, md5('genesis'));
";

/// One run's figures at one client count.
#[derive(Debug, Clone)]
struct Measurement {
    /// acquire+release pairs per second.
    tx_per_s: f64,
    p99_ms: f64,
    /// Pairs that failed (pgbench) or errors surfaced to a caller (ledger).
    errors: u64,
    /// Pairs completed.
    done: u64,
}

/// A ledger on `url` ready for the flood: an API key, limits no pair can reach, and no rate
/// limits (their minute windows would refuse the bench, not measure it).
fn prepare_ledger(url: &str, state: &Path) {
    let ledger = open_ledger(url, state, false);
    for update in [
        LimitsUpdate {
            daily_tokens: Some(authledger::types::MAX_TOKENS / 10),
            concurrent: Some(100_000),
            ..LimitsUpdate::default()
        },
        LimitsUpdate {
            rpm: Some(None),
            tpm: Some(None),
            ..LimitsUpdate::default()
        },
    ] {
        ledger
            .set_limits(Provider::Claude, &Account::default(), &update)
            .expect("limits");
        if update.concurrent.is_some() {
            ledger
                .store_credential(&Credential::api_key(
                    Provider::Claude,
                    Account::default(),
                    Secret::new("sk-ant-api03-bench-key-000000000000".into()),
                    "stdin",
                ))
                .expect("credential");
        }
    }
}

/// This "host"'s anchor for its local files (the daemon's socket among them).
fn anchor(state: &Path) -> PathBuf {
    state.join("servers").join("bench").join("ledger")
}

/// The ledger on the server at `url`, this "host" keeping its local files under `state`;
/// with `daemon`, its writes go through the daemon serving this host.
fn open_ledger(url: &str, state: &Path, daemon: bool) -> Ledger {
    let location = LedgerLocation::Server {
        url: url.to_string().into(),
        anchor: anchor(state),
    };
    let mut config =
        LedgerConfig::at(location).with_key(KeySource::File(state.join("keys").join("master.key")));
    if daemon {
        config = config.with_committer(std::sync::Arc::new(authledger::daemon::Client::new(
            &anchor(state),
        )));
    }
    Ledger::open(config).expect("open the ledger on the server")
}

/// The ledger's side: `clients` callers, each with a ledger of its own (its own connection, as
/// separate agent processes have), doing acquire + release in a loop for `secs` seconds against
/// an empty database on the same server; with `daemon`, through this host's daemon (group
/// commit: one transaction, one WAL flush, for every request that arrived meanwhile). Pairs
/// per second, the p99 of one pair, and every error surfaced to a caller.
fn authledger_side(url: &str, clients: usize, secs: f64, daemon: bool) -> Option<Measurement> {
    let state = tempfile::tempdir().expect("state directory");
    prepare_ledger(url, state.path());
    let _server = daemon.then(|| {
        authledger::daemon::Server::start(&open_ledger(url, state.path(), false))
            .expect("start the daemon")
    });
    let ledgers: Vec<Ledger> = (0..clients)
        .map(|_| open_ledger(url, state.path(), daemon))
        .collect();
    let start = std::sync::Barrier::new(clients);
    let until = std::sync::OnceLock::new();
    let results: Vec<(Vec<f64>, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = ledgers
            .iter()
            .enumerate()
            .map(|(i, ledger)| {
                let (start, until) = (&start, &until);
                s.spawn(move || {
                    let request = AcquireRequest::new(
                        AgentId::new(format!("bench-{i}")).expect("agent"),
                        Provider::Claude,
                    )
                    .tokens(100);
                    start.wait();
                    let end = *until.get_or_init(|| Instant::now() + Duration::from_secs_f64(secs));
                    let (mut pairs_us, mut errors) = (Vec::new(), 0u64);
                    while Instant::now() < end {
                        let t = Instant::now();
                        let pair = ledger
                            .acquire(&request)
                            .and_then(|lease| ledger.release(&lease.id).map(|_| ()));
                        match pair {
                            Ok(()) => pairs_us.push(t.elapsed().as_secs_f64() * 1e6),
                            Err(e) => {
                                errors += 1;
                                eprintln!("client {i}: {e}");
                            }
                        }
                    }
                    (pairs_us, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench client"))
            .collect()
    });
    let errors = results.iter().map(|(_, e)| e).sum();
    let all: Vec<f64> = results.into_iter().flat_map(|(l, _)| l).collect();
    let done = all.len() as u64;
    Some(Measurement {
        tx_per_s: done as f64 / secs,
        p99_ms: p99(all) / 1000.0,
        errors,
        done,
    })
}

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0")
}

/// The client counts to measure: [`CLIENTS`], or `BENCH_CLIENTS=16,64` for some of them.
fn client_counts() -> Vec<usize> {
    match std::env::var("BENCH_CLIENTS") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("BENCH_CLIENTS: client counts, e.g. 1,16")
            })
            .collect(),
        Err(_) => CLIENTS.to_vec(),
    }
}

fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/acquire_release.sql")
}

/// Raw PostgreSQL: pgbench runs the acquire+release script on a fresh database with the raw
/// schema.
fn raw_side(server: &pg::PgServer, clients: usize, secs: f64) -> (Measurement, String) {
    let url = server.fresh_db();
    pg::psql(&url, SCHEMA);
    let logs = tempfile::tempdir().expect("pgbench log directory");
    let prefix = logs.path().join("tx");
    let out = Command::new(pg::pg_bin("pgbench"))
        .args(["-n", "-M", "prepared", "-f"])
        .arg(script_path())
        .args(["-c", &clients.to_string(), "-j", "2", "-T"])
        .arg(format!("{}", secs.ceil().max(1.0) as u64))
        .args(["-r", "--log", "--log-prefix"])
        .arg(&prefix)
        .arg(&url)
        .output()
        .expect("run pgbench");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "pgbench failed: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (latencies_us, failed) = read_logs(logs.path());
    let tps = field(&report, "tps = ").unwrap_or(0.0);
    let m = Measurement {
        tx_per_s: tps,
        p99_ms: p99(latencies_us) / 1000.0,
        errors: failed.max(field(&report, "number of failed transactions: ").unwrap_or(0.0) as u64),
        done: field(&report, "number of transactions actually processed: ").unwrap_or(0.0) as u64,
    };
    (m, report)
}

/// Per-transaction latencies (µs) from pgbench's `--log` files (`client tx time_us script
/// epoch epoch_us`, one file per thread), and the count of failed lines (time not a number).
fn read_logs(dir: &Path) -> (Vec<f64>, u64) {
    let mut latencies = Vec::new();
    let mut failed = 0;
    for entry in std::fs::read_dir(dir).expect("read pgbench logs").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("read pgbench log");
        for line in text.lines() {
            match line.split_whitespace().nth(2).map(str::parse::<f64>) {
                Some(Ok(us)) => latencies.push(us),
                Some(Err(_)) => failed += 1,
                None => {}
            }
        }
    }
    (latencies, failed)
}

fn p99(mut us: Vec<f64>) -> f64 {
    if us.is_empty() {
        return 0.0;
    }
    us.sort_by(|a, b| a.total_cmp(b));
    us[((us.len() as f64 - 1.0) * 0.99).round() as usize]
}

/// The number after `label` in pgbench's report.
fn field(report: &str, label: &str) -> Option<f64> {
    let rest = &report[report.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// How many alternating rounds measure each point: this VM's disk speed drifts by a third
/// within minutes, so raw and ledger take turns and each round's ratio is its own.
fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick() { 1 } else { 5 })
}

/// The median of some figures.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// One side's rounds at one client count: medians of its rate, its p99 and its ratio to the
/// raw rate of the same round; every error of every round.
struct Summary {
    tx_per_s: f64,
    p99_ms: f64,
    ratio: f64,
    errors: u64,
    done: u64,
}

fn summarize(rounds: &[Measurement], raw: &[Measurement]) -> Summary {
    Summary {
        tx_per_s: median(rounds.iter().map(|m| m.tx_per_s).collect()),
        p99_ms: median(rounds.iter().map(|m| m.p99_ms).collect()),
        ratio: median(
            rounds
                .iter()
                .zip(raw)
                .map(|(m, r)| m.tx_per_s / r.tx_per_s)
                .collect(),
        ),
        errors: rounds.iter().map(|m| m.errors).sum(),
        done: rounds.iter().map(|m| m.done).sum(),
    }
}

fn main() {
    let secs = if quick() { 1.0 } else { 4.0 };
    let rounds = rounds();
    let server = pg::PgServer::start_private_durable();
    let version = pg::psql(&server.db_url("postgres"), "SHOW server_version");
    println!("PostgreSQL {version}");
    println!("at {} (fsync on)", server.url_base());
    println!("{rounds} alternating round(s) of {secs} s per side and point; medians");
    println!("pair = one acquire + release (two SQL transactions)");
    println!("×raw = the median of each round's ratio to raw");
    println!();
    println!(
        "{:>7}  {:>9} {:>7}  {:>9} {:>7} {:>5}  {:>9} {:>7} {:>5}",
        "", "raw", "", "direct", "", "", "daemon", "", ""
    );
    println!(
        "{:>7}  {:>9} {:>7}  {:>9} {:>7} {:>5}  {:>9} {:>7} {:>5}",
        "clients", "pairs/s", "p99 ms", "pairs/s", "p99 ms", "×raw", "pairs/s", "p99 ms", "×raw"
    );
    let mut points = Vec::new();
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out_dir).expect("create target/bench");
    for clients in client_counts() {
        let (mut raw, mut direct, mut daemon) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let (r, report) = raw_side(&server, clients, secs);
            std::fs::write(out_dir.join(format!("pgbench-{clients}.txt")), &report)
                .expect("write pgbench report");
            raw.push(r);
            direct.extend(authledger_side(&server.fresh_db(), clients, secs, false));
            daemon.extend(authledger_side(&server.fresh_db(), clients, secs, true));
        }
        let raw_sum = summarize(&raw, &raw);
        let direct = summarize(&direct, &raw);
        let daemon = summarize(&daemon, &raw);
        let cols = |m: &Summary| format!("{:>9.0} {:>7.2} {:>5.2}", m.tx_per_s, m.p99_ms, m.ratio);
        println!(
            "{:>7}  {:>9.0} {:>7.2}  {}  {}",
            clients,
            raw_sum.tx_per_s,
            raw_sum.p99_ms,
            cols(&direct),
            cols(&daemon),
        );
        assert_eq!(
            raw_sum.errors, 0,
            "raw PostgreSQL pairs failed at {clients} clients"
        );
        for (how, m) in [("directly", &direct), ("through the daemon", &daemon)] {
            assert_eq!(
                m.errors, 0,
                "errors surfaced to the ledger's callers {how} at {clients} clients"
            );
        }
        points.push(json!({
            "clients": clients,
            "rounds": rounds,
            "raw": summary_json(&raw_sum),
            "authledger_direct": summary_json(&direct),
            "authledger_daemon": summary_json(&daemon),
        }));
    }
    println!();
    println!("pgbench reports (per-statement latencies): target/bench/pgbench-N.txt");
    let results = json!({
        "server_version": version,
        "secs_per_round": secs,
        "points": points,
    });
    std::fs::write(
        out_dir.join("postgres.json"),
        serde_json::to_string_pretty(&results).expect("json"),
    )
    .expect("write postgres.json");
}

fn summary_json(m: &Summary) -> Value {
    json!({
        "tx_per_s": m.tx_per_s,
        "p99_ms": m.p99_ms,
        "ratio_to_raw": m.ratio,
        "errors": m.errors,
        "pairs": m.done,
    })
}
