//! Ledger benchmarks, each figure beside its baseline measured in the same run on the same
//! file and pragmas: raw SQLite transactions of the ledger's shape
//! (`BEGIN IMMEDIATE; SELECT; UPDATE; INSERT; COMMIT`).
//!
//! ```sh
//! cargo bench --bench ledger                  # the full run (a few minutes)
//! BENCH_QUICK=1 cargo bench --bench ledger    # under a minute; CI runs it, asserting nothing
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

fn ledger_at(dir: &Path, d: Durability) -> Ledger {
    Ledger::open(
        LedgerConfig::new(dir.join("ledger.db"))
            .with_durability(d)
            .with_key(KeySource::File(dir.join("keys").join("master.key"))),
    )
    .expect("open ledger")
}

fn prepare_ledger(dir: &Path, d: Durability) -> Ledger {
    let ledger = ledger_at(dir, d);
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
fn measure(n: usize, mut op: impl FnMut(usize)) -> (f64, Lat) {
    let mut us = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        op(i);
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    (n as f64 / start.elapsed().as_secs_f64(), summarize(us))
}

fn single_process(d: Durability, n: usize) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut raw = raw_open(&dir.path().join("raw.db"), d, true);
    let (raw_rate, raw_lat) = measure(n, |_| {
        raw_tx(&mut raw, "bench");
    });
    let ledger = prepare_ledger(dir.path(), d);
    let mut ids = Vec::with_capacity(n);
    let (acq_rate, acq_lat) = measure(n, |_| {
        ids.push(ledger.acquire(&request("a")).expect("acquire").id)
    });
    let (use_rate, use_lat) = measure(n, |i| {
        ledger
            .record_usage(&ids[i], &UsageRecord::new(1, 0).key(format!("k{i}")))
            .expect("usage");
    });
    let (rel_rate, rel_lat) = measure(n, |i| {
        ledger.release(&ids[i]).expect("release");
    });
    let (pair_rate, pair_lat) = measure(n / 2, |_| {
        let l = ledger.acquire(&request("p")).expect("acquire");
        ledger.release(&l.id).expect("release");
    });
    let row = |rate: f64, lat: &Lat| json!({ "ops_per_s": rate, "ratio_to_raw": rate / raw_rate, "p50_us": lat.p50, "p99_us": lat.p99, "max_us": lat.max });
    json!({
        "durability": durability_name(d),
        "raw": row(raw_rate, &raw_lat),
        "acquire": row(acq_rate, &acq_lat),
        "record_usage": row(use_rate, &use_lat),
        "release": row(rel_rate, &rel_lat),
        "acquire_release_pair": row(pair_rate * 2.0, &pair_lat),
    })
}

// ---------- many processes ----------

/// A worker process: runs raw transactions or acquire+release pairs until `secs` pass.
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
            let ledger = ledger_at(dir, d);
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
    if kind == "ledger" {
        drop(prepare_ledger(dir.path(), d));
    } else {
        drop(raw_open(&dir.path().join("raw.db"), d, true));
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
    let s = summarize(status);
    let a = summarize(acquire);
    json!({
        "status_ms": { "p50": s.p50, "p99": s.p99 },
        "lease_acquire_ms": { "p50": a.p50, "p99": a.p99 },
        "peak_rss_kb_cli": rss_cli,
        "peak_rss_kb_run": rss_run,
    })
}

// ---------- report ----------

/// One point of the chart: processes, ledger tx/s, raw tx/s, ledger p99 ms, raw p99 ms.
type Point = (usize, f64, f64, f64, f64);

fn svg(points: &[Point]) -> String {
    let (w, h, pad) = (640.0, 320.0, 50.0);
    let max_rate = points.iter().map(|p| p.1.max(p.2)).fold(1.0, f64::max);
    let max_p99 = points.iter().map(|p| p.3.max(p.4)).fold(1.0, f64::max);
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / n;
    let line = |f: &dyn Fn(&Point) -> f64, max: f64, color: &str, dash: &str| {
        let pts: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), h - pad - (h - 2.0 * pad) * f(p) / max))
            .collect();
        format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
            pts.join(" ")
        )
    };
    let labels: String = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                r#"<text x="{:.1}" y="{}" font-size="12" text-anchor="middle">{}</text>"#,
                x(i),
                h - pad + 18.0,
                p.0
            )
        })
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{pad}" y="20" font-size="14">Throughput (solid, max {max_rate:.0} tx/s) and p99 latency (dashed, max {max_p99:.1} ms) by processes</text>
<text x="{pad}" y="38" font-size="12" fill="#1f77b4">ledger acquire+release</text><text x="220" y="38" font-size="12" fill="#ff7f0e">raw SQLite transactions</text>
{}{}{}{}{labels}
<text x="{}" y="{}" font-size="12" text-anchor="middle">processes</text>
</svg>"##,
        line(&|p| p.1, max_rate, "#1f77b4", ""),
        line(&|p| p.2, max_rate, "#ff7f0e", ""),
        line(&|p| p.3, max_p99, "#1f77b4", "6 4"),
        line(&|p| p.4, max_p99, "#ff7f0e", "6 4"),
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
    let procs: &[usize] = if quick { &[1, 4] } else { &[1, 4, 16, 64] };
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
        single.push(r);
    }

    let mut multi = Vec::new();
    let mut points = Vec::new();
    for &p in procs {
        let raw = contention("raw", p, Durability::Full, secs);
        let led = contention("ledger", p, Durability::Full, secs);
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
        println!(
            "{p:>2} processes: ledger {:.0} tx/s (min/max per process {}/{}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, busy {}) | raw {:.0} tx/s (min/max {}/{}, p99 {:.1} ms, max {:.1} ms, busy {})",
            f(&led, "commits_per_s"),
            led["min_commits"],
            led["max_commits"],
            f(&led, "p50_us") / 1e3,
            f(&led, "p99_us") / 1e3,
            f(&led, "max_us") / 1e3,
            led["busy_errors"],
            f(&raw, "commits_per_s"),
            raw["min_commits"],
            raw["max_commits"],
            f(&raw, "p99_us") / 1e3,
            f(&raw, "max_us") / 1e3,
            raw["busy_errors"],
        );
        points.push((
            p,
            f(&led, "commits_per_s"),
            f(&raw, "commits_per_s"),
            f(&led, "p99_us") / 1e3,
            f(&raw, "p99_us") / 1e3,
        ));
        multi.push(json!({ "ledger": led, "raw": raw }));
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
