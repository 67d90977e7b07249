//! A fleet for the multi-host tests: several simulated hosts, each with its own state directory
//! (`AUTHLEDGER_HOME`: lease directories, daemon socket, gateway file, `config.toml`), all
//! sharing one ledger on a PostgreSQL database (`AUTHLEDGER_DB`) and one master key
//! (`AUTHLEDGER_MASTER_KEY`), as machines of a real fleet would.

use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use super::{Home, T0};

/// One host: its own home, the fleet's database URL and master key.
pub struct Host {
    pub home: Home,
    db: String,
    key: String,
}

impl Host {
    /// The CLI on this host with the clock pinned at `now_ms`.
    pub fn cmd_at(&self, now_ms: i64) -> Command {
        let mut c = self.home.cmd_at(now_ms);
        c.env("AUTHLEDGER_DB", &self.db)
            .env("AUTHLEDGER_MASTER_KEY", &self.key);
        c
    }

    /// What points a process of this host at the fleet's ledger: the database and the key.
    pub fn ledger_env(&self) -> [(&str, &str); 2] {
        [
            ("AUTHLEDGER_DB", self.db.as_str()),
            ("AUTHLEDGER_MASTER_KEY", self.key.as_str()),
        ]
    }

    /// Runs `args` on this host on the wall clock (the clock a daemon serves), bounded by
    /// [`BOUND`].
    pub fn run_wall(&self, args: &[&str]) -> Output {
        let mut c = self.home.cmd_wall();
        c.envs(self.ledger_env()).args(args);
        output_within(c, BOUND, &format!("{args:?}"))
    }

    /// The CLI on this host at [`T0`].
    pub fn cmd(&self) -> Command {
        self.cmd_at(T0)
    }

    /// Runs `args` at [`T0`] on this host, bounded by [`BOUND`].
    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(args);
        output_within(c, BOUND, &format!("{args:?}"))
    }

    /// Runs `args` at [`T0`] with `input` on stdin, bounded by [`BOUND`].
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut c = self.cmd();
        c.args(args);
        run_within(c, Some(input), BOUND, &format!("{args:?}"))
    }

    /// `--json` output of `args` at [`T0`], asserting success.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        super::parse_json(&super::must(self.run(&all), &format!("{args:?}")))
    }
}

/// Hosts sharing one ledger.
pub struct Fleet {
    /// The database URL every host uses.
    pub db: String,
    pub hosts: Vec<Host>,
}

impl Fleet {
    /// `n` hosts on the database at `db` with one fresh random master key.
    pub fn new(db: &str, n: usize) -> Fleet {
        let key = master_key();
        let hosts = (0..n)
            .map(|_| Host {
                home: Home::empty(),
                db: db.to_string(),
                key: key.clone(),
            })
            .collect();
        Fleet {
            db: db.to_string(),
            hosts,
        }
    }

    /// The host serving process number `i` (round robin).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i % self.hosts.len()]
    }
}

/// A fresh random master key, as `AUTHLEDGER_MASTER_KEY` takes it (base64 of 32 bytes).
pub fn master_key() -> String {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// How long any one CLI process of the fleet tests may run before the test fails: a hang is a
/// failure, never a wait.
pub const BOUND: Duration = Duration::from_secs(90);

/// Runs `cmd` (stdin closed) and returns its output; kills it and fails the test if it is still
/// running after `limit`.
pub fn output_within(cmd: Command, limit: Duration, what: &str) -> Output {
    run_within(cmd, None, limit, what)
}

/// Starts `cmd` with stdout and stderr piped (and `input` on stdin, else stdin closed).
pub fn spawn_piped(mut cmd: Command, input: Option<&str>) -> Child {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn authledger");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    child
}

/// Waits for a child started by [`spawn_piped`], at most `limit` (counted from now); kills it
/// and fails the test if the bound is hit.
pub fn wait_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    let stdout = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let stderr = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}: it hung");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn run_within(cmd: Command, input: Option<&str>, limit: Duration, what: &str) -> Output {
    wait_within(spawn_piped(cmd, input), limit, what)
}

/// Rows of `sql` on the database at `url` (through `psql`), each split into its cells.
pub fn rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    super::pg::psql(url, sql)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// One number from `sql` on the database at `url`.
pub fn number(url: &str, sql: &str) -> i64 {
    let text = super::pg::psql(url, sql);
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {text:?} is not a number: {e}"))
}

/// The most leases active at once, replayed from the audit trail in `seq` order (acquire
/// begins one; release, expire and revoke end one), and how many are still active at the end.
pub fn replay_peak(url: &str) -> (i64, i64) {
    let (mut active, mut peak) = (0i64, 0i64);
    for row in rows(url, "SELECT action, lease_id FROM audit ORDER BY seq") {
        match row[0].as_str() {
            "acquire" => active += 1,
            "release" | "expire" | "revoke" => active -= 1,
            _ => continue,
        }
        assert!(
            active >= 0,
            "lease {:?} ended more often than it began",
            row[1]
        );
        peak = peak.max(active);
    }
    (peak, active)
}
