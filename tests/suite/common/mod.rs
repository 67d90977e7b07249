//! Shared helpers for the integration tests: a private ledger home, the CLI binary, a logical
//! snapshot of the database for "nothing changed" checks.
#![allow(dead_code)]

pub mod daemon;
pub mod fleet;
pub mod forge;
pub mod oauth_server;
pub mod pg;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fixed instant all CLI processes of a test can agree on (2026-11-23T10:00:00Z).
pub const T0: i64 = 1_795_428_000_000;

/// A temporary ledger home; the database lives at `home/ledger.db`.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    /// A home whose ledger holds a Claude and an OpenAI credential (imported from the fake
    /// Claude Code and Codex files in `fixtures/`), so leases can be granted on both.
    pub fn new() -> Home {
        let home = Home::empty();
        home.login_fixtures();
        home
    }

    /// Imports the fake Claude Code and Codex credentials from `fixtures/`.
    pub fn login_fixtures(&self) {
        let home = self;
        for (provider, from, file) in [
            ("claude", "claude-code", "claude-code-credentials.json"),
            ("openai", "codex", "codex-auth.chatgpt.json"),
        ] {
            let out = home.run(&["login", provider, "--from", from, "--path", &fixture(file)]);
            assert!(out.status.success(), "login {provider}: {}", stderr(&out));
        }
    }

    /// A fresh home with no ledger yet, private (0700) as the ledger's own directories are.
    pub fn empty() -> Home {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod home");
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    /// The CLI with this home and the clock pinned at `now_ms`.
    pub fn cmd_at(&self, now_ms: i64) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_authledger"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AUTHLEDGER_HOME", self.path())
            .env("AUTHLEDGER_NOW", now_ms.to_string())
            // Human output shows local times: the same everywhere.
            .env("TZ", "UTC");
        c
    }

    /// The CLI on the wall clock (no pinned time): the only kind of command that talks to a
    /// serving daemon.
    pub fn cmd_wall(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_authledger"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AUTHLEDGER_HOME", self.path())
            .env("TZ", "UTC");
        c
    }

    /// The CLI at [`T0`].
    pub fn cmd(&self) -> Command {
        self.cmd_at(T0)
    }

    /// Runs the CLI at [`T0`] with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run authledger")
    }

    /// Runs the CLI at `now_ms` with `args`.
    pub fn run_at(&self, now_ms: i64, args: &[&str]) -> Output {
        self.cmd_at(now_ms)
            .args(args)
            .output()
            .expect("run authledger")
    }

    /// Runs with `--json` and parses stdout, asserting success.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "authledger {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json stdout")
    }

    /// Runs the CLI at [`T0`] with `args` and `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        with_stdin(self.cmd().args(args), input)
    }

    /// Starts `args` with a crash point armed, waits until the process says it stopped there
    /// (inside its write transaction), and kills it with SIGKILL.
    pub fn kill_at_fault_point(&self, point: &str, args: &[&str]) {
        use std::io::BufRead;
        let mut child = self
            .cmd()
            .env("AUTHLEDGER_FAULT", point)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("fault point"), "{point}: {line}");
        child.kill().unwrap();
        assert!(child.wait().unwrap().code().is_none(), "killed by a signal");
    }

    /// Runs the CLI at `now_ms` with `args` inside a pseudo-terminal (util-linux `script`),
    /// with `env` added: what a person at a terminal sees (stdout and stderr together, `\r`
    /// removed) and the exit code.
    pub fn run_in_terminal(
        &self,
        now_ms: i64,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> (String, i32) {
        let out = self
            .terminal(Some(now_ms), env, args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run script(1)");
        (
            String::from_utf8_lossy(&out.stdout).replace('\r', ""),
            code(&out),
        )
    }

    /// `script(1)` running the CLI with `args` in a pseudo-terminal, on the pinned clock at
    /// `now_ms` or (`None`) the wall clock; what is written to its stdin is typed at the
    /// terminal (`\x03` is Ctrl-C).
    pub fn terminal(&self, now_ms: Option<i64>, env: &[(&str, &str)], args: &[&str]) -> Command {
        self.terminal_with("", now_ms, env, args)
    }

    /// [`Home::terminal`] on a terminal of `cols` × `rows` (a bare pseudo-terminal has no
    /// size, which a full-screen view needs).
    pub fn terminal_sized(
        &self,
        cols: u16,
        rows: u16,
        now_ms: Option<i64>,
        args: &[&str],
    ) -> Command {
        self.terminal_with(
            &format!("stty cols {cols} rows {rows}; "),
            now_ms,
            &[],
            args,
        )
    }

    /// [`Home::terminal`] with a shell `prefix` run first in the same shell (`stty …; `, a
    /// `trap`).
    pub fn terminal_with(
        &self,
        prefix: &str,
        now_ms: Option<i64>,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Command {
        let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
        let line: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_authledger"))
            .chain(args.iter().copied())
            .map(quote)
            .collect();
        let mut c = Command::new("script");
        c.args(["-qefc", &format!("{prefix}{}", line.join(" ")), "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AUTHLEDGER_HOME", self.path())
            .env("TZ", "UTC")
            .env("TERM", "xterm")
            .envs(env.iter().copied());
        if let Some(now) = now_ms {
            c.env("AUTHLEDGER_NOW", now.to_string());
        }
        c
    }

    /// Every row of every table, as text: equal snapshots mean nothing changed logically.
    pub fn snapshot(&self) -> String {
        snapshot(&self.db())
    }
}

/// A raw read-write connection to a ledger file, as another program (or an attacker) would
/// open it: no authledger checks, no triggers bypassed unless the caller drops them.
/// Runs `cmd` with `input` on its stdin (closed after), and its output.
pub fn with_stdin(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run authledger");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("run authledger")
}

/// Claude limits of `daily` tokens a day and `concurrent` leases at once.
pub fn limits(daily: i64, concurrent: i64) -> authledger::LimitsUpdate {
    authledger::LimitsUpdate {
        daily_tokens: Some(daily),
        concurrent: Some(concurrent),
        ..Default::default()
    }
}

/// A fair-share Claude request by `agent`.
pub fn req(agent: &str) -> authledger::AcquireRequest {
    authledger::AcquireRequest::new(
        authledger::AgentId::new(agent).expect("agent id"),
        authledger::Provider::Claude,
    )
}

pub fn raw(db: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(db).expect("open the database directly")
}

/// `doctor --json`: its exit code and its checks, each `{check, ok, detail}`.
pub fn doctor(home: &Home) -> (i32, Vec<serde_json::Value>) {
    let out = home.run(&["--json", "doctor"]);
    let checks = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    (code(&out), checks)
}

/// The path of a file in `fixtures/`.
pub fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The process's exit code (panics if it was killed by a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Dumps every table of a SQLite file in a stable order.
pub fn snapshot(db: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open snapshot");
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("== {t}\n"));
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1"))
            .unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect();
            out.push_str(&cells.join("|"));
            out.push('\n');
        }
    }
    out
}

/// Asserts a refusal: the exit code, nothing on stdout, and exactly one non-empty line on
/// stderr that starts with `authledger: ` and mentions every needle (case-insensitively).
pub fn assert_refused(out: &std::process::Output, exit: i32, needles: &[&str], what: &str) {
    let err = stderr(out);
    assert_eq!(
        code(out),
        exit,
        "{what}: exit code (stderr: {err:?}, stdout: {:?})",
        stdout(out)
    );
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout must be empty, got {:?}",
        stdout(out)
    );
    assert!(
        err.ends_with('\n') && err.matches('\n').count() == 1,
        "{what}: stderr must be exactly one line, got {err:?}"
    );
    let line = err.trim_end_matches('\n');
    let message = line
        .strip_prefix("authledger: ")
        .unwrap_or_else(|| panic!("{what}: stderr must start with 'authledger: ', got {line:?}"));
    assert!(
        !message.trim().is_empty(),
        "{what}: the message is empty: {line:?}"
    );
    let lower = message.to_lowercase();
    for needle in needles {
        assert!(
            lower.contains(&needle.to_lowercase()),
            "{what}: the message should mention {needle:?}: {line:?}"
        );
    }
}

/// A library ledger on a temporary file with a manual clock at `start`, Claude limits set by
/// `update`, and a Claude API key stored (leases need a usable credential).
/// The library ledger on a CLI home (its key file, its database), on a manual clock at
/// `now_ms`: for tests that set up through the CLI and look through the library.
pub fn home_ledger(home: &Home, now_ms: i64) -> authledger::Ledger {
    home_ledger_with(home, now_ms, authledger::config_file::ConfigFile::default())
}

/// [`home_ledger`] with provider settings, as a `config.toml` would give.
pub fn home_ledger_with(
    home: &Home,
    now_ms: i64,
    file: authledger::config_file::ConfigFile,
) -> authledger::Ledger {
    use authledger::{KeySource, Ledger, LedgerConfig, ManualClock};
    Ledger::open(
        LedgerConfig::new(home.db())
            .with_clock(std::sync::Arc::new(ManualClock::new(now_ms)))
            .with_key(KeySource::File(home.path().join("keys").join("master.key")))
            .with_file_config(file),
    )
    .expect("open the ledger as the CLI does")
}

pub struct LibraryLedger {
    pub dir: tempfile::TempDir,
    pub clock: authledger::ManualClock,
    pub ledger: authledger::Ledger,
}

pub fn library_ledger(start: i64, update: authledger::LimitsUpdate) -> LibraryLedger {
    use authledger::{
        Account, Credential, KeySource, Ledger, LedgerConfig, ManualClock, Provider, Secret,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(start);
    let ledger = Ledger::open(
        LedgerConfig::new(dir.path().join("ledger.db"))
            .with_clock(std::sync::Arc::new(clock.clone()))
            .with_key(KeySource::File(dir.path().join("master.key"))),
    )
    .expect("open ledger");
    ledger
        .set_limits(Provider::Claude, &Account::default(), &update)
        .expect("limits");
    ledger
        .store_credential(&Credential::api_key(
            Provider::Claude,
            Account::default(),
            Secret::new("sk-ant-api03-test-key-000000".into()),
            "stdin",
        ))
        .expect("credential");
    LibraryLedger { dir, clock, ledger }
}

/// Rows of a read-only SQL query on a ledger file, each cell as text (`NULL` for null): for
/// tests that check what the database holds rather than what a report says.
pub fn query_rows(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open for a query");
    let mut stmt = conn.prepare(sql).expect("prepare the query");
    let n = stmt.column_count();
    let mut rows = stmt.query([]).expect("run the query");
    let mut out = Vec::new();
    while let Some(r) = rows.next().expect("next row") {
        out.push(
            (0..n)
                .map(|i| match r.get_ref(i).expect("cell") {
                    rusqlite::types::ValueRef::Null => "NULL".to_string(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
                })
                .collect(),
        );
    }
    out
}

/// The audit rows with `action`, oldest first (`audit --json --action`), at `now_ms`.
pub fn audit_rows(home: &Home, now_ms: i64, action: &str) -> Vec<serde_json::Value> {
    let out = home.run_at(
        now_ms,
        &["--json", "audit", "--action", action, "--limit", "1000"],
    );
    assert!(out.status.success(), "audit: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("audit json");
    v.as_array().cloned().unwrap_or_default()
}

/// Starts `authledger run <args>` at `now_ms` with an agent that writes its lease id and pid
/// and then sleeps, waits (bounded, on that file, not on time) for the agent to start, and
/// kills `run` and the agent with SIGKILL: a crashed holder. Returns the lease id.
pub fn killed_run(home: &Home, now_ms: i64, args: &[&str]) -> String {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let scratch = tempfile::tempdir().expect("scratch");
    let script = "echo \"$AUTHLEDGER_LEASE_ID $$\" > \"$SCRATCH/id.tmp\"; \
                  mv \"$SCRATCH/id.tmp\" \"$SCRATCH/id\"; exec sleep 60";
    let mut child = home
        .cmd_at(now_ms)
        .arg("run")
        .args(args)
        .args(["--", "sh", "-c", script])
        .env("SCRATCH", scratch.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn run");
    let file = scratch.path().join("id");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !file.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().expect("run output");
            panic!(
                "run ended ({status}) before its agent started: {}",
                stderr(&out)
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&file).expect("id file");
    let (id, pid) = text.trim().split_once(' ').expect("id and pid");
    let pid: i32 = pid.parse().expect("agent pid");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill run");
    let status = child.wait().expect("reap run");
    assert!(status.code().is_none(), "run was killed, it did not exit");
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    id.to_string()
}

/// Asserts exit 0 and that nothing on stderr speaks of a busy or locked database (no caller
/// may ever see one); returns the output.
pub fn must(out: Output, what: &str) -> Output {
    let err = stderr(&out).to_lowercase();
    assert!(
        !err.contains("busy") && !err.contains("locked"),
        "{what}: stderr mentions busy/locked: {err}"
    );
    assert_eq!(code(&out), 0, "{what} failed: {err}");
    out
}

/// Parses a command's stdout as JSON.
pub fn parse_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

/// `--json` output of a successful command at `now`.
pub fn json_at(home: &Home, now: i64, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    parse_json(&must(home.run_at(now, &all), &format!("{args:?}")))
}

/// Audit rows with this action at [`T0`], oldest first.
pub fn audit(home: &Home, action: &str) -> Vec<serde_json::Value> {
    let mut rows = audit_rows(home, T0, action);
    rows.sort_by_key(|r| r["seq"].as_i64());
    rows
}

/// A file's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The ledger opened read-only, for tests that read rows as they are.
pub fn read_only(home: &Home) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(home.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open ledger read-only")
}
