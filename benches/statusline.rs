//! How long `authledger statusline` takes, as Claude Code runs it: a new process per update,
//! Claude Code's JSON on stdin, one line on stdout. Measured end to end (spawn to exit) on a
//! prepared ledger (a lease with a few hundred priced usage records, other agents' leases, a
//! provider report), beside a baseline of spawning `/bin/true` the same way in the same run:
//! the difference is what authledger itself costs. Asserts only that each run succeeds and
//! prints a line, nothing about time.
//!
//! ```sh
//! cargo bench --bench statusline                 # 500 runs of each
//! BENCH_QUICK=1 cargo bench --bench statusline   # 50 runs of each
//! ```

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_authledger");

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0")
}

/// The CLI on the prepared home.
fn cli(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AUTHLEDGER_HOME", home);
    c
}

fn must(home: &Path, args: &[&str]) -> String {
    let out = cli(home).args(args).output().expect("run authledger");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lease(home: &Path, agent: &str) -> String {
    let out = must(
        home,
        &[
            "--json",
            "lease",
            "acquire",
            "--agent",
            agent,
            "--provider",
            "claude",
            "--tokens",
            "100000",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("lease json");
    v["lease_id"].as_str().expect("lease id").to_string()
}

/// A ledger as a busy day leaves it; returns the lease the measured session holds.
fn prepare(home: &Path, records: usize) -> String {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    must(
        home,
        &[
            "login",
            "claude",
            "--from",
            "claude-code",
            "--path",
            &format!("{fixtures}/claude-code-credentials.json"),
        ],
    );
    must(
        home,
        &["limits", "set", "claude", "--daily-tokens", "100000000"],
    );
    must(home, &["limits", "set", "claude", "--concurrent", "20"]);
    for i in 0..5 {
        lease(home, &format!("other-{i}"));
    }
    let id = lease(home, "coder");
    for i in 0..records {
        let model = if i % 3 == 0 {
            "claude-opus-4-5"
        } else {
            "claude-sonnet-4-5"
        };
        must(
            home,
            &[
                "usage",
                "record",
                &id,
                "--model",
                model,
                "--input",
                "120",
                "--output",
                "40",
                "--cache-read",
                "90",
                "--cache-write",
                "10",
            ],
        );
    }
    must(
        home,
        &[
            "report",
            "claude",
            "--status",
            "200",
            "--header",
            "anthropic-ratelimit-unified-5h-utilization: 0.42",
        ],
    );
    id
}

/// Spawn-to-exit times in milliseconds of `runs` runs of `make`, `input` written to stdin.
fn time(runs: usize, input: &[u8], mut make: impl FnMut() -> Command, check: bool) -> Vec<f64> {
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            let mut child = make()
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            // `/bin/true` may exit before reading: a broken pipe is fine.
            let _ = child.stdin.take().expect("stdin").write_all(input);
            let out = child.wait_with_output().expect("wait");
            let ms = started.elapsed().as_secs_f64() * 1e3;
            assert!(out.status.success(), "exit {:?}", out.status);
            if check {
                let line = String::from_utf8_lossy(&out.stdout);
                assert!(line.contains("lease"), "no lease in the line: {line}");
            }
            ms
        })
        .collect()
}

fn summary(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), ms[ms.len() - 1])
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let records = if quick() { 50 } else { 300 };
    let runs = if quick() { 50 } else { 500 };
    let id = prepare(home, records);
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/claude-code-statusline.json"
    ))
    .expect("sample");

    // Warm both paths (page cache, dynamic loader), then show the line once.
    let _ = time(10, &input, || statusline(home, &id), true);
    let _ = time(10, &input, || Command::new("/bin/true"), false);
    let line = {
        let mut c = statusline(home, &id);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let _ = child.stdin.take().expect("stdin").write_all(&input);
        let out = child.wait_with_output().expect("wait");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };

    let base = summary(time(runs, &input, || Command::new("/bin/true"), false));
    let line_ms = summary(time(runs, &input, || statusline(home, &id), true));
    println!("statusline on a ledger with {records} usage records, {runs} runs each");
    println!("  line: {line}");
    println!("{:<26} {:>8} {:>8} {:>8}", "", "p50 ms", "p99 ms", "max ms");
    for (name, (p50, p99, max)) in [
        ("spawn /bin/true (baseline)", base),
        ("authledger statusline", line_ms),
    ] {
        println!("{name:<26} {p50:>8.2} {p99:>8.2} {max:>8.2}");
    }
    println!(
        "{:<26} {:>8.2} {:>8.2}",
        "statusline less baseline",
        line_ms.0 - base.0,
        line_ms.1 - base.1
    );
}

/// `authledger statusline` for the measured session's lease.
fn statusline(home: &Path, lease: &str) -> Command {
    let mut c = cli(home);
    c.env("AUTHLEDGER_LEASE_ID", lease).arg("statusline");
    c
}
