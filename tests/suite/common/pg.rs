//! A real, throwaway PostgreSQL server for the tests (and the `postgres` bench): `initdb` in a
//! temporary directory, `pg_ctl start` listening only on 127.0.0.1 at a free port, stopped and
//! removed afterwards. Everything goes through the PostgreSQL command-line tools (`initdb`,
//! `pg_ctl`, `psql`), so the helper needs no Rust driver and tests exactly what a user's server
//! would run.
//!
//! - [`server`]: one cluster per test process, started on first use, stopped at exit. With
//!   `AUTHLEDGER_TEST_PG=postgres://user@host:port` set, that server is used instead.
//! - [`PgServer::fresh_db`]: a new, empty database with a unique name, as a URL.
//! - [`PgServer::start_private`]: a cluster of the caller's own, for tests that restart or stop
//!   the server under a running ledger.
//!
//! As root (CI containers), `initdb` refuses to run, so the server binaries run as the `postgres`
//! user through `runuser`, in a directory that user owns.
//!
//! This file is self-contained (std, `libc`, `tempfile`, `url`): `benches/postgres.rs` includes
//! it with `#[path]`, so keep it free of `super::` references.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming an existing server to test against instead of starting one.
pub const TEST_PG_ENV: &str = "AUTHLEDGER_TEST_PG";

/// The user the server binaries run as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// How long `pg_ctl` waits for a start, stop or restart, in seconds.
const PG_CTL_WAIT_SECS: &str = "60";

static SHARED: OnceLock<PgServer> = OnceLock::new();

/// The test process's shared server: started lazily on first use and stopped when the process
/// exits (an `atexit` hook runs `pg_ctl stop -m immediate` and removes its directory). Tests
/// isolate themselves with [`PgServer::fresh_db`], never by sharing a database.
pub fn server() -> &'static PgServer {
    SHARED.get_or_init(|| {
        if let Some(base) = std::env::var(TEST_PG_ENV)
            .ok()
            .filter(|b| !b.trim().is_empty())
        {
            return PgServer::external(&base);
        }
        let server = PgServer::launch(false);
        // SAFETY: registers a plain `extern "C" fn` with no arguments, as atexit requires; the
        // hook only reads `SHARED`, which is initialised before any exit can run it.
        let registered = unsafe { libc::atexit(stop_shared_at_exit) };
        assert_eq!(
            registered, 0,
            "atexit: could not register the PostgreSQL stop hook"
        );
        server
    })
}

extern "C" fn stop_shared_at_exit() {
    if let Some(server) = SHARED.get() {
        server.shut_down();
    }
}

/// A PostgreSQL server the tests can reach at `postgres://postgres@127.0.0.1:PORT`: one this
/// helper started (and stops), or an external one named by `AUTHLEDGER_TEST_PG`.
pub struct PgServer {
    base: String,
    port: u16,
    cluster: Option<Cluster>,
}

/// A cluster this helper started: its directory (data, log, unix socket) and who runs it.
struct Cluster {
    dir: PathBuf,
    /// `Some("postgres")` when the tests run as root and the server must not.
    run_as: Option<&'static str>,
    /// The `postgres` options it was started with (port, addresses, durability).
    options: String,
}

impl PgServer {
    /// A cluster of the caller's own (fsync off: fast, and a process crash still loses nothing
    /// committed, since the OS keeps the written pages). Dropping it stops the server and
    /// removes its directory.
    pub fn start_private() -> PgServer {
        PgServer::launch(false)
    }

    /// Like [`PgServer::start_private`] but with PostgreSQL's default durability (fsync on),
    /// for tests and benches whose figures or guarantees depend on it.
    pub fn start_private_durable() -> PgServer {
        PgServer::launch(true)
    }

    /// The server's URL without a database: `postgres://postgres@127.0.0.1:PORT`.
    pub fn url_base(&self) -> &str {
        &self.base
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data directory `data/`, log `server.log`, unix socket); `None`
    /// for an external server.
    pub fn dir(&self) -> Option<&Path> {
        self.cluster.as_ref().map(|c| c.dir.as_path())
    }

    /// The server log so far (empty for an external server): for assertion messages.
    pub fn log(&self) -> String {
        self.cluster
            .as_ref()
            .and_then(|c| std::fs::read_to_string(c.log()).ok())
            .unwrap_or_default()
    }

    /// Creates a new, empty database with a unique name and returns its URL
    /// (`postgres://postgres@127.0.0.1:PORT/NAME`).
    pub fn fresh_db(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "t_{}_{}_{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        psql(&self.db_url("postgres"), &format!("CREATE DATABASE {name}"));
        self.db_url(&name)
    }

    /// The URL of database `name` on this server.
    pub fn db_url(&self, name: &str) -> String {
        let mut url = url::Url::parse(&self.base).expect("server base URL");
        url.set_path(name);
        url.to_string()
    }

    /// Restarts the server (`pg_ctl restart -m fast`: open connections are closed, committed
    /// data stays) and returns once it accepts connections again, on the same port.
    pub fn restart(&self) {
        let cluster = self.own("restart");
        if let Err(e) = cluster.pg_ctl(&["-m", "fast", "restart"]) {
            panic!("pg_ctl restart failed: {e}\n{}", self.log());
        }
        self.assert_accepts();
    }

    /// Stops the server (`pg_ctl stop -m fast`); connections are refused until
    /// [`PgServer::start`].
    pub fn stop(&self) {
        let cluster = self.own("stop");
        if let Err(e) = cluster.pg_ctl(&["-m", "fast", "stop"]) {
            panic!("pg_ctl stop failed: {e}");
        }
    }

    /// Starts a stopped server again with the options it first ran with, on the same port.
    pub fn start(&self) {
        let cluster = self.own("start");
        if let Err(e) = cluster.pg_ctl(&["start"]) {
            panic!("pg_ctl start failed: {e}\n{}", self.log());
        }
        self.assert_accepts();
    }

    fn external(base: &str) -> PgServer {
        let base = base.trim().trim_end_matches('/').to_string();
        let url = url::Url::parse(&base)
            .unwrap_or_else(|e| panic!("{TEST_PG_ENV}={base} is not a URL: {e}"));
        PgServer {
            port: url.port().unwrap_or(5432),
            base,
            cluster: None,
        }
    }

    /// `initdb` in a fresh temporary directory, then `pg_ctl start` on a free port (a few tries:
    /// another process may take the port between our probe and the server's bind).
    fn launch(durable: bool) -> PgServer {
        let run_as = is_root().then_some(SERVER_USER);
        let dir = tempfile::Builder::new()
            .prefix("authledger-pg-")
            .tempdir()
            .expect("temporary directory for PostgreSQL")
            .keep();
        let mut cluster = Cluster {
            dir,
            run_as,
            options: String::new(),
        };
        if let Some(user) = run_as {
            let status = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&cluster.dir)
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown {user}: {} failed (does the `{user}` user exist? the `postgresql` \
                 package creates it)",
                cluster.dir.display()
            );
        }
        cluster.initdb();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            cluster.options = cluster.options_for(port, durable);
            let started = cluster.pg_ctl(&["start"]);
            if started.is_ok() {
                let server = PgServer {
                    base: format!("postgres://postgres@127.0.0.1:{port}"),
                    port,
                    cluster: Some(cluster),
                };
                server.assert_accepts();
                return server;
            }
            last = format!(
                "{}\n{}",
                started.err().unwrap_or_default(),
                read_log(&cluster)
            );
        }
        cluster.remove();
        panic!("PostgreSQL did not start on a free port after 5 tries:\n{last}");
    }

    fn own(&self, what: &str) -> &Cluster {
        self.cluster
            .as_ref()
            .unwrap_or_else(|| panic!("cannot {what} the external server named by {TEST_PG_ENV}"))
    }

    fn assert_accepts(&self) {
        let got = try_psql(&self.db_url("postgres"), "SELECT 1");
        assert_eq!(
            got.as_deref(),
            Ok("1"),
            "PostgreSQL at {} does not accept connections\n{}",
            self.base,
            self.log()
        );
    }

    /// Stops the server at once and removes its directory; never panics (runs at exit).
    fn shut_down(&self) {
        if let Some(cluster) = &self.cluster {
            let _ = cluster.pg_ctl(&["-m", "immediate", "stop"]);
            cluster.remove();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// A server binary, run as the server's user.
    fn command(&self, program: &str) -> Command {
        let program = pg_bin(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `pg_ctl -w` on the data directory; a start or restart also gets the log file and
    /// the server options (pg_ctl remembers neither). pg_ctl's own output goes to a file, not a
    /// pipe: a server that inherited a pipe would keep the reader waiting for ever.
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let out_path = self.dir.join("pg_ctl.out");
        let out = std::fs::File::create(&out_path).map_err(|e| format!("pg_ctl.out: {e}"))?;
        let err = out.try_clone().map_err(|e| format!("pg_ctl.out: {e}"))?;
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D")
            .arg(self.data())
            .args(["-w", "-t", PG_CTL_WAIT_SECS])
            .stdout(out)
            .stderr(err);
        if args.iter().any(|a| *a == "start" || *a == "restart") {
            cmd.arg("-l").arg(self.log()).arg("-o").arg(&self.options);
        }
        let status = cmd
            .args(args)
            .status()
            .map_err(|e| format!("run pg_ctl: {e}"))?;
        let said = std::fs::read_to_string(&out_path).unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(format!("pg_ctl {}: {status}: {said}", args.join(" ")))
        }
    }

    fn initdb(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
                "--no-instructions",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("run initdb");
        if !out.status.success() {
            self.remove();
            panic!("initdb failed: {}", text(&out));
        }
    }

    /// The server options: TCP on 127.0.0.1 only, the unix socket inside our directory, room
    /// for many processes' pools.
    fn options_for(&self, port: u16, durable: bool) -> String {
        let mut o = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='{}' \
             -c max_connections=300",
            self.dir.display()
        );
        if !durable {
            o.push_str(" -c fsync=off -c full_page_writes=off");
        }
        o
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_log(cluster: &Cluster) -> String {
    std::fs::read_to_string(cluster.log()).unwrap_or_default()
}

/// Runs `sql` on the database at `url` with `psql -At` and returns its output without the
/// final newline; panics with psql's message if it fails.
pub fn psql(url: &str, sql: &str) -> String {
    try_psql(url, sql).unwrap_or_else(|e| panic!("psql {url} -c {sql:?}: {e}"))
}

/// Like [`psql`] but returns psql's error message instead of panicking: for tests that expect
/// a query to fail (a stopped server, a constraint).
pub fn try_psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(pg_bin("psql"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    if out.status.success() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A PostgreSQL program (`initdb`, `pg_ctl`, `psql`, `pgbench`): on PATH, else in the newest
/// `/usr/lib/postgresql/*/bin`. Panics if there is none: the tests need a real server and must
/// not skip silently.
pub fn pg_bin(name: &str) -> PathBuf {
    find_pg_bin(name).unwrap_or_else(|| {
        panic!(
            "PostgreSQL's `{name}` was not found on PATH or in /usr/lib/postgresql/*/bin: \
             install the `postgresql` package (apt-get install postgresql), or set \
             {TEST_PG_ENV} to an existing server's URL"
        )
    })
}

fn find_pg_bin(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| runnable(p));
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin").join(name)))
        })
        .filter(|(_, p)| runnable(p))
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

/// A port nobody listens on right now (the kernel's pick for 127.0.0.1:0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
