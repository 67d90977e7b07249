//! Ledger benchmarks, each figure beside its baseline measured in the same run on the same
//! file and pragmas: raw SQLite transactions of the ledger's shape
//! (`BEGIN IMMEDIATE; SELECT; UPDATE; INSERT; COMMIT`).
//!
//! ```sh
//! cargo bench --bench ledger                  # the full run (a few minutes)
//! BENCH_QUICK=1 cargo bench --bench ledger    # under a minute; CI runs it, asserting nothing
//! BENCH_PROCS=16,64 cargo bench --bench ledger # only these contention points (and 1, the baseline)
//! ```
//!
//! Results go to stdout as a table and to `target/bench/results.json`; the contention chart
//! (throughput and p99 against processes, ledger beside raw SQLite) to
//! `target/bench/contention.svg`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use authledger::select::Choice;
use authledger::{
    Account, AcquireRequest, AgentId, Credential, Durability, KeySource, Ledger, LedgerConfig,
    LimitsUpdate, Provider, Secret, UsageRecord,
};
use serde_json::{Value, json};

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0")
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Default)]
struct Lat {
    p50: f64,
    p99: f64,
    max: f64,
}

fn summarize(mut us: Vec<f64>) -> Lat {
    if us.is_empty() {
        return Lat::default();
    }
    us.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize];
    Lat {
        p50: at(0.50),
        p99: at(0.99),
        max: *us.last().unwrap_or(&0.0),
    }
}

fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    }
}

fn parse_durability(s: &str) -> Durability {
    if s == "NORMAL" {
        Durability::Normal
    } else {
        Durability::Full
    }
}

// ---------- raw SQLite baseline ----------

fn raw_open(db: &Path, d: Durability, create: bool) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(db).expect("open raw db");
    c.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    c.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 4000;",
        durability_name(d)
    ))
    .expect("raw pragmas");
    if create {
        // The parent creates the file once; workers only open it (WAL mode persists).
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, who TEXT NOT NULL);
             INSERT OR IGNORE INTO counters (id, n) VALUES (1, 0);",
        )
        .expect("raw schema");
    }
    c
}

/// One transaction of the ledger's shape; returns false on SQLITE_BUSY.
fn raw_tx(c: &mut rusqlite::Connection, who: &str) -> bool {
    let run = |c: &mut rusqlite::Connection| -> rusqlite::Result<()> {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n: i64 = tx.query_row("SELECT n FROM counters WHERE id = 1", [], |r| r.get(0))?;
        tx.execute("UPDATE counters SET n = ?1 WHERE id = 1", [n + 1])?;
        tx.execute(
            "INSERT INTO events (at, who) VALUES (?1, ?2)",
            rusqlite::params![n, who],
        )?;
        tx.commit()
    };
    run(c).is_ok()
}

// ---------- ledger fixture ----------

/// The ledger in `dir`; `daemon` lets its writes go through a daemon serving that file.
fn ledger_at(dir: &Path, d: Durability, daemon: bool) -> Ledger {
    let db = dir.join("ledger.db");
    let mut config = LedgerConfig::new(&db)
        .with_durability(d)
        .with_key(KeySource::File(dir.join("keys").join("master.key")));
    if daemon {
        config = config.with_committer(std::sync::Arc::new(authledger::daemon::Client::new(&db)));
    }
    Ledger::open(config).expect("open ledger")
}

fn prepare_ledger(dir: &Path, d: Durability) -> Ledger {
    let ledger = ledger_at(dir, d, false);
    ledger
        .set_limits(
            Provider::Claude,
            &Account::default(),
            &LimitsUpdate {
                daily_tokens: Some(authledger::types::MAX_TOKENS / 10),
                concurrent: Some(100_000),
                ..LimitsUpdate::default()
            },
        )
        .expect("limits");
    ledger
        .store_credential(&Credential::api_key(
            Provider::Claude,
            Account::default(),
            Secret::new("sk-ant-api03-bench-key-000000000000".into()),
            "stdin",
        ))
        .expect("credential");
    // API-key defaults would rate-limit the benchmark; lift them.
    ledger
        .set_limits(
            Provider::Claude,
            &Account::default(),
            &LimitsUpdate {
                rpm: Some(None),
                tpm: Some(None),
                ..LimitsUpdate::default()
            },
        )
        .expect("limits");
    ledger
}

fn request(agent: &str) -> AcquireRequest {
    AcquireRequest::new(AgentId::new(agent).expect("agent"), Provider::Claude).tokens(1)
}

// ---------- single process ----------

/// Runs `op` `n` times; returns (ops/s, latencies).
fn measure(n: usize, op: impl FnMut(usize)) -> (f64, Lat) {
    let mut series = Series::default();
    series.run(n, op);
    (series.rate(), series.lat())
}

/// Timings of one kind of operation, gathered over several rounds.
#[derive(Default)]
struct Series {
    us: Vec<f64>,
    secs: f64,
}

impl Series {
    fn run(&mut self, n: usize, mut op: impl FnMut(usize)) {
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            op(i);
            self.us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        self.secs += start.elapsed().as_secs_f64();
    }

    fn rate(&self) -> f64 {
        self.us.len() as f64 / self.secs.max(1e-9)
    }

    fn lat(&self) -> Lat {
        summarize(self.us.clone())
    }
}

/// One process, each operation beside raw transactions. The disk's fsync speed drifts during a
/// run (±50 % on the VM), so the kinds take turns in ten rounds rather than one after another:
/// each ratio compares figures taken over the same stretch of time.
fn single_process(d: Durability, n: usize) -> Value {
    const ROUNDS: usize = 10;
    let chunk = (n / ROUNDS).max(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut raw = raw_open(&dir.path().join("raw.db"), d, true);
    let ledger = prepare_ledger(dir.path(), d);
    let [mut raw_s, mut acq, mut usage, mut rel, mut pair] =
        std::array::from_fn(|_| Series::default());
    let mut key = 0u64;
    for _ in 0..ROUNDS {
        raw_s.run(chunk, |_| {
            raw_tx(&mut raw, "bench");
        });
        let mut ids = Vec::with_capacity(chunk);
        acq.run(chunk, |_| {
            ids.push(ledger.acquire(&request("a")).expect("acquire").id)
        });
        usage.run(chunk, |i| {
            key += 1;
            ledger
                .record_usage(&ids[i], &UsageRecord::new(1, 0).key(format!("k{key}")))
                .expect("usage");
        });
        rel.run(chunk, |i| {
            ledger.release(&ids[i]).expect("release");
        });
        pair.run(chunk / 2, |_| {
            let l = ledger.acquire(&request("p")).expect("acquire");
            ledger.release(&l.id).expect("release");
        });
    }
    let raw_rate = raw_s.rate();
    let row = |rate: f64, lat: Lat| json!({ "ops_per_s": rate, "ratio_to_raw": rate / raw_rate, "p50_us": lat.p50, "p99_us": lat.p99, "max_us": lat.max });
    json!({
        "durability": durability_name(d),
        "raw": row(raw_rate, raw_s.lat()),
        "acquire": row(acq.rate(), acq.lat()),
        "record_usage": row(usage.rate(), usage.lat()),
        "release": row(rel.rate(), rel.lat()),
        "acquire_release_pair": row(pair.rate() * 2.0, pair.lat()),
        "wal_frames_per_tx": wal_frames(d),
    })
}

/// WAL frames (database pages) each kind of transaction writes: at synchronous=NORMAL, where no
/// fsync hides them, they are most of a transaction's cost. Counted on fresh files, starting
/// from an empty WAL each time.
fn wal_frames(d: Durability) -> Value {
    const K: usize = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut raw = raw_open(&dir.path().join("raw.db"), d, true);
    let ledger = prepare_ledger(dir.path(), d);
    let side = raw_open(&dir.path().join("ledger.db"), d, false);
    let frames = |c: &rusqlite::Connection, op: &mut dyn FnMut()| -> f64 {
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("truncate the WAL");
        for _ in 0..K {
            op();
        }
        let log: i64 = c
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .expect("count WAL frames");
        log as f64 / K as f64
    };
    let raw_side = raw_open(&dir.path().join("raw.db"), d, false);
    let raw_frames = frames(&raw_side, &mut || {
        raw_tx(&mut raw, "bench");
    });
    let mut ids = Vec::new();
    let acquire = frames(&side, &mut || {
        ids.push(ledger.acquire(&request("f")).expect("acquire").id)
    });
    let mut i = 0;
    let usage = frames(&side, &mut || {
        ledger
            .record_usage(&ids[i], &UsageRecord::new(1, 0).key(format!("f{i}")))
            .expect("usage");
        i += 1;
    });
    let mut j = 0;
    let release = frames(&side, &mut || {
        ledger.release(&ids[j]).expect("release");
        j += 1;
    });
    json!({ "raw": raw_frames, "acquire": acquire, "record_usage": usage, "release": release })
}

// ---------- many processes ----------

/// A worker process: runs raw transactions or acquire+release pairs (directly, or through the
/// daemon for `daemon`) until `secs` pass.
fn worker(kind: &str, dir: &Path, d: Durability, secs: f64, name: &str) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut us = Vec::new();
    let mut busy = 0u64;
    match kind {
        "raw" => {
            let mut c = raw_open(&dir.join("raw.db"), d, false);
            while Instant::now() < deadline {
                let t = Instant::now();
                if raw_tx(&mut c, name) {
                    us.push(t.elapsed().as_secs_f64() * 1e6);
                } else {
                    busy += 1;
                }
            }
        }
        _ => {
            let ledger = ledger_at(dir, d, kind == "daemon");
            while Instant::now() < deadline {
                let t = Instant::now();
                match ledger.acquire(&request(name)) {
                    Ok(l) => {
                        us.push(t.elapsed().as_secs_f64() * 1e6);
                        let t = Instant::now();
                        match ledger.release(&l.id) {
                            Ok(_) => us.push(t.elapsed().as_secs_f64() * 1e6),
                            Err(_) => busy += 1,
                        }
                    }
                    Err(_) => busy += 1,
                }
            }
        }
    }
    let lat = summarize(us.clone());
    println!(
        "{}",
        json!({ "commits": us.len(), "busy": busy, "p50_us": lat.p50, "p99_us": lat.p99, "max_us": lat.max, "all_us": us })
    );
}

fn contention(kind: &str, procs: usize, d: Durability, secs: f64) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    // Kept alive (serving) until the workers are done.
    let mut _server = None;
    if kind == "raw" {
        drop(raw_open(&dir.path().join("raw.db"), d, true));
    } else {
        let ledger = prepare_ledger(dir.path(), d);
        if kind == "daemon" {
            _server = Some(authledger::daemon::Server::start(&ledger).expect("start the daemon"));
        }
    }
    let exe = std::env::current_exe().expect("current exe");
    let children: Vec<_> = (0..procs)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "--worker",
                    kind,
                    &dir.path().to_string_lossy(),
                    durability_name(d),
                    &secs.to_string(),
                    &format!("w{i}"),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    let mut commits = Vec::new();
    let mut busy = 0;
    let mut all = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("worker");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        commits.push(v["commits"].as_u64().unwrap_or(0));
        busy += v["busy"].as_u64().unwrap_or(0);
        all.extend(
            v["all_us"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64),
        );
    }
    let total: u64 = commits.iter().sum();
    let mean = total as f64 / procs as f64;
    let lat = summarize(all);
    json!({
        "kind": kind,
        "processes": procs,
        "durability": durability_name(d),
        "commits_per_s": total as f64 / secs,
        "min_commits": commits.iter().min(),
        "max_commits": commits.iter().max(),
        "max_over_mean": commits.iter().max().map(|m| *m as f64 / mean.max(1.0)),
        "min_over_mean": commits.iter().min().map(|m| *m as f64 / mean.max(1.0)),
        "p50_us": lat.p50,
        "p99_us": lat.p99,
        "max_us": lat.max,
        "busy_errors": busy,
    })
}

// ---------- hot paths ----------

fn hot_paths(n: usize) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = prepare_ledger(dir.path(), Durability::Full);
    let (_, token) = measure(n, |_| {
        ledger
            .access_token(Provider::Claude, &Account::default())
            .expect("token");
    });
    let (_, select) = measure(n, |_| {
        ledger.select(&Choice::Auto).expect("select");
    });
    json!({
        "access_token": { "p50_us": token.p50, "p99_us": token.p99, "bound_us": 100_000.0 },
        "selection": { "p50_us": select.p50, "p99_us": select.p99, "bound_us": 500_000.0 },
    })
}

// ---------- whole processes ----------

fn children_peak_rss_kb() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(0)
}

fn cli(home: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_authledger"))
        .env("AUTHLEDGER_HOME", home)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run authledger");
    assert!(out.success(), "authledger {args:?} failed");
    t.elapsed()
}

fn whole_processes(n: usize) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(prepare_ledger(dir.path(), Durability::Full));
    let mut status = Vec::new();
    let mut acquire = Vec::new();
    for _ in 0..n {
        status.push(cli(dir.path(), &["status"]).as_secs_f64() * 1e3);
        acquire.push(
            cli(
                dir.path(),
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
            )
            .as_secs_f64()
                * 1e3,
        );
    }
    let rss_cli = children_peak_rss_kb();
    // `run` holding a lease while its agent sleeps briefly.
    cli(
        dir.path(),
        &[
            "run",
            "--agent",
            "r",
            "--provider",
            "claude",
            "--tokens",
            "1",
            "--",
            "sleep",
            "0.2",
        ],
    );
    let rss_run = children_peak_rss_kb();
    let concurrent = concurrent_runs(dir.path(), if quick() { 8 } else { 64 });
    let s = summarize(status);
    let a = summarize(acquire);
    json!({
        "status_ms": { "p50": s.p50, "p99": s.p99 },
        "lease_acquire_ms": { "p50": a.p50, "p99": a.p99 },
        "peak_rss_kb_cli": rss_cli,
        "peak_rss_kb_run": rss_run,
        "concurrent_runs": concurrent,
    })
}

/// Starts `n` `run`s at once, each holding a lease while its agent sleeps; each agent reads its
/// `run`'s peak RSS (VmHWM) from /proc while the lease is held. Returns per-process figures.
fn concurrent_runs(home: &Path, n: usize) -> Value {
    let script = "sleep 1; grep VmHWM /proc/$PPID/status";
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_authledger"))
                .env("AUTHLEDGER_HOME", home)
                .args(["run", "--agent", &format!("c{i}"), "--provider", "claude"])
                .args(["--tokens", "1", "--", "sh", "-c", script])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn run")
        })
        .collect();
    let mut kb: Vec<f64> = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(v) = text
            .split_whitespace()
            .skip_while(|w| *w != "VmHWM:")
            .nth(1)
            .and_then(|v| v.parse().ok())
        {
            kb.push(v);
        }
    }
    let reported = kb.len();
    let total: f64 = kb.iter().sum();
    let lat = summarize(kb);
    json!({ "runs": n, "reported": reported, "peak_rss_kb_p50": lat.p50, "peak_rss_kb_max": lat.max, "peak_rss_kb_sum": total })
}

// ---------- report ----------

/// One point of the chart: per series (daemon, direct, raw) throughput and p99.
struct Point {
    processes: usize,
    rate: [f64; 3],
    p99_ms: [f64; 3],
}

const SERIES: [(&str, &str); 3] = [
    ("ledger through the daemon", "#2ca02c"),
    ("ledger direct", "#1f77b4"),
    ("raw SQLite", "#ff7f0e"),
];

fn svg(points: &[Point]) -> String {
    let (w, h, pad) = (680.0, 340.0, 50.0);
    let max_rate = points.iter().flat_map(|p| p.rate).fold(1.0, f64::max);
    let max_p99 = points.iter().flat_map(|p| p.p99_ms).fold(1.0, f64::max);
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / n;
    let line = |value: &dyn Fn(&Point) -> f64, max: f64, color: &str, dash: &str| {
        let pts: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "{:.1},{:.1}",
                    x(i),
                    h - pad - (h - 2.0 * pad) * value(p) / max
                )
            })
            .collect();
        format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
            pts.join(" ")
        )
    };
    let mut body = String::new();
    for (k, (name, color)) in SERIES.iter().enumerate() {
        body += &line(&|p| p.rate[k], max_rate, color, "");
        body += &line(&|p| p.p99_ms[k], max_p99, color, "6 4");
        body += &format!(
            r#"<text x="{}" y="40" font-size="12" fill="{color}">{name}</text>"#,
            pad + 200.0 * k as f64
        );
    }
    let labels: String = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                r#"<text x="{:.1}" y="{}" font-size="12" text-anchor="middle">{}</text>"#,
                x(i),
                h - pad + 18.0,
                p.processes
            )
        })
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{pad}" y="20" font-size="14">acquire+release, synchronous=FULL: throughput (solid, top {max_rate:.0} tx/s), p99 (dashed, top {max_p99:.1} ms)</text>
{body}{labels}
<text x="{}" y="{}" font-size="12" text-anchor="middle">processes</text>
</svg>"##,
        w / 2.0,
        h - 8.0
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        let secs: f64 = args[5].parse().unwrap_or(1.0);
        worker(
            &args[2],
            &PathBuf::from(&args[3]),
            parse_durability(&args[4]),
            secs,
            &args[6],
        );
        return;
    }
    let quick = quick();
    let n = if quick { 300 } else { 3_000 };
    let secs = if quick { 1.5 } else { 5.0 };
    // BENCH_PROCS=16,64 measures only those contention points (the 1-process baseline is
    // always taken: the ratios need it).
    let chosen: Option<Vec<usize>> = std::env::var("BENCH_PROCS").ok().map(|v| {
        let mut p: Vec<usize> = v.split(',').filter_map(|n| n.trim().parse().ok()).collect();
        p.insert(0, 1);
        p.dedup();
        p
    });
    let default: &[usize] = if quick { &[1, 4] } else { &[1, 4, 16, 64] };
    let procs: &[usize] = chosen.as_deref().unwrap_or(default);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "authledger benchmarks ({} mode, {cores} cores)",
        if quick { "quick" } else { "full" }
    );

    let mut single = Vec::new();
    for d in [Durability::Full, Durability::Normal] {
        let r = single_process(d, n);
        println!(
            "1 process, synchronous={}: raw {:.0} tx/s; acquire {:.2}×, record_usage {:.2}×, release {:.2}×, acquire+release {:.2}× of raw",
            durability_name(d),
            r["raw"]["ops_per_s"].as_f64().unwrap_or(0.0),
            r["acquire"]["ratio_to_raw"].as_f64().unwrap_or(0.0),
            r["record_usage"]["ratio_to_raw"].as_f64().unwrap_or(0.0),
            r["release"]["ratio_to_raw"].as_f64().unwrap_or(0.0),
            r["acquire_release_pair"]["ratio_to_raw"]
                .as_f64()
                .unwrap_or(0.0),
        );
        let frames = &r["wal_frames_per_tx"];
        println!(
            "   WAL frames per transaction: raw {:.1}; acquire {:.1}, record_usage {:.1}, release {:.1}",
            frames["raw"].as_f64().unwrap_or(0.0),
            frames["acquire"].as_f64().unwrap_or(0.0),
            frames["record_usage"].as_f64().unwrap_or(0.0),
            frames["release"].as_f64().unwrap_or(0.0),
        );
        single.push(r);
    }

    let mut multi = Vec::new();
    let mut points = Vec::new();
    let mut raw_one_process = 0.0;
    for &p in procs {
        let raw = contention("raw", p, Durability::Full, secs);
        let led = contention("ledger", p, Durability::Full, secs);
        let dmn = contention("daemon", p, Durability::Full, secs);
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
        if p == 1 {
            raw_one_process = f(&raw, "commits_per_s");
        }
        let line = |name: &str, v: &Value| {
            format!(
                "{name} {:.0} tx/s ({:.2}× raw 1-process; per process {}–{}, {:.2}–{:.2}× mean; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; busy {})",
                f(v, "commits_per_s"),
                f(v, "commits_per_s") / raw_one_process.max(1.0),
                v["min_commits"],
                v["max_commits"],
                f(v, "min_over_mean"),
                f(v, "max_over_mean"),
                f(v, "p50_us") / 1e3,
                f(v, "p99_us") / 1e3,
                f(v, "max_us") / 1e3,
                v["busy_errors"],
            )
        };
        println!("{p:>2} processes:");
        println!("   {}", line("through the daemon", &dmn));
        println!("   {}", line("direct (ticket queue)", &led));
        println!("   {}", line("raw SQLite", &raw));
        points.push(Point {
            processes: p,
            rate: [
                f(&dmn, "commits_per_s"),
                f(&led, "commits_per_s"),
                f(&raw, "commits_per_s"),
            ],
            p99_ms: [
                f(&dmn, "p99_us") / 1e3,
                f(&led, "p99_us") / 1e3,
                f(&raw, "p99_us") / 1e3,
            ],
        });
        multi.push(json!({ "daemon": dmn, "ledger": led, "raw": raw, "raw_one_process_tx_per_s": raw_one_process }));
    }

    let hot = hot_paths(if quick { 500 } else { 5_000 });
    println!(
        "access_token p50 {:.1} µs p99 {:.1} µs; selection p50 {:.1} µs p99 {:.1} µs",
        hot["access_token"]["p50_us"].as_f64().unwrap_or(0.0),
        hot["access_token"]["p99_us"].as_f64().unwrap_or(0.0),
        hot["selection"]["p50_us"].as_f64().unwrap_or(0.0),
        hot["selection"]["p99_us"].as_f64().unwrap_or(0.0),
    );
    let whole = whole_processes(if quick { 5 } else { 30 });
    println!(
        "whole processes: status p50 {:.1} ms, lease acquire p50 {:.1} ms; peak RSS {} KB (CLI), {} KB (run)",
        whole["status_ms"]["p50"].as_f64().unwrap_or(0.0),
        whole["lease_acquire_ms"]["p50"].as_f64().unwrap_or(0.0),
        whole["peak_rss_kb_cli"],
        whole["peak_rss_kb_run"],
    );
    let runs = &whole["concurrent_runs"];
    println!(
        "{} concurrent runs holding leases: peak RSS per run p50 {} KB, max {} KB, all together {} KB ({} reported)",
        runs["runs"],
        runs["peak_rss_kb_p50"],
        runs["peak_rss_kb_max"],
        runs["peak_rss_kb_sum"],
        runs["reported"],
    );

    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out_dir);
    let results = json!({ "cores": cores, "quick": quick, "single": single, "multi": multi, "hot": hot, "whole": whole });
    let _ = std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    );
    let _ = std::fs::write(out_dir.join("contention.svg"), svg(&points));
    println!("wrote {}", out_dir.join("results.json").display());
}
