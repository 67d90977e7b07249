//! The PostgreSQL store: one ledger shared by many hosts.
//!
//! Every write transaction takes a transaction-scoped advisory lock on the ledger's key as its
//! first statement, so writers of one ledger run one at a time from their first read to their
//! commit, exactly as SQLite's `BEGIN IMMEDIATE` behind the writer queue makes them: every
//! invariant the store contract lists (`mod.rs`) holds unchanged, no serialization failure or
//! deadlock can arise between two ledger writes, and none reaches a caller. Reads are
//! `REPEATABLE READ READ ONLY` snapshots that never wait for a writer.
//!
//! Advisory lock keys are scoped to one database, so a ledger is a database.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, SimpleQueryMessage};
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::audit_rows::AUDIT_TAIL;
use super::sql::{named_or_text, statement_name};
use super::tx::{Conn, PgTx, Planned, StatementCache};
use super::{StoreCheck, StoreError, StoreFact, StoreOptions, Tx, TxExtension};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The advisory lock every write of a ledger takes first ("authledg" in ASCII).
const LEDGER_LOCK: i64 = 0x6175_7468_6c65_6467;
/// The session lock migrating a ledger takes, so two hosts starting at once migrate once.
const MIGRATE_LOCK: i64 = 0x6175_7468_6d69_6772;

/// A pooled connection and the statements it has prepared.
pub(super) struct PgConn {
    client: Client,
    statements: StatementCache,
    /// The statements this session prepared by name (SQL `PREPARE`), which a multi-statement
    /// round trip can `EXECUTE` without planning them again.
    named: std::collections::HashSet<String>,
}

/// Connects through `r2d2_postgres`, in clear or over rustls as the URL's `sslmode` asks, and
/// gives each connection a statement cache and the ledger's lock timeout.
enum Manager {
    Plain(PostgresConnectionManager<NoTls>),
    Tls(PostgresConnectionManager<MakeRustlsConnect>),
}

pub(super) struct PgManager {
    inner: Manager,
    /// How long a write waits for the ledger's lock before giving up as busy.
    lock_timeout_ms: u128,
}

impl std::fmt::Debug for PgManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgManager")
    }
}

impl r2d2::ManageConnection for PgManager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        let mut client = match &self.inner {
            Manager::Plain(m) => m.connect()?,
            Manager::Tls(m) => m.connect()?,
        };
        // A host that dies inside a write must not hold the ledger's lock for the fleet: the
        // server ends a session idle in a transaction past the write deadline, and probes a
        // silent client's socket within a minute.
        client.batch_execute(&format!(
            "SET lock_timeout = {ms}; SET idle_in_transaction_session_timeout = {ms}; \
             SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; \
             SET tcp_keepalives_count = 3; SET application_name = 'authledger'",
            ms = self.lock_timeout_ms
        ))?;
        Ok(PgConn {
            client,
            statements: StatementCache::new(),
            named: std::collections::HashSet::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

/// An open ledger on a PostgreSQL server.
#[derive(Clone)]
pub(super) struct PgStore {
    pool: r2d2::Pool<PgManager>,
    /// This process's writers queue here before they take a connection: they would wait for
    /// the ledger's lock one at a time anyway, and parked on connections they would leave
    /// none for reads (the gateway's, the daemon's).
    writers: Arc<std::sync::Mutex<()>>,
    /// The server and database as shown to people: never the password.
    shown: String,
    /// This host's anchor for its local files (lease directories, daemon socket, gateway).
    anchor: PathBuf,
    read_only: bool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("server", &self.shown)
            .finish()
    }
}

/// `url` with any password replaced, for messages and `doctor`.
pub fn redact(url: &str) -> String {
    crate::paths::ServerUrl::from(url).shown()
}

/// `url` with any password taken out (not masked): what may be handed to an agent.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| k != "password")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                u.set_query(None);
            } else {
                u.query_pairs_mut().clear().extend_pairs(kept);
            }
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

impl PgStore {
    /// Connects to the server at `url`, migrates the database (one host at a time) and
    /// refuses a newer schema. `anchor` is where this host keeps its local files.
    pub(super) fn open(
        url: &str,
        anchor: &Path,
        options: &StoreOptions,
    ) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let open_error = |reason: String| StoreError::Open {
            path: PathBuf::from(&shown),
            reason,
        };
        let (driver_url, wish) = tls_wish(url).map_err(open_error)?;
        let mut config: postgres::Config = driver_url
            .parse()
            .map_err(|e: postgres::Error| open_error(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // A server that vanished (a host down, a cable cut) is noticed within a minute, not the
        // kernel's two hours: a caller gets a storage error instead of a hang.
        config
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(60));
        let inner = if wish.required {
            config.ssl_mode(postgres::config::SslMode::Require);
            let connector = rustls_connector(wish.root_cert.as_deref()).map_err(open_error)?;
            Manager::Tls(PostgresConnectionManager::new(config, connector))
        } else {
            Manager::Plain(PostgresConnectionManager::new(config, NoTls))
        };
        let manager = PgManager {
            inner,
            lock_timeout_ms: options.write_deadline.as_millis(),
        };
        // The first connection is made here, not through the pool: a refused password or a
        // failed TLS handshake is said at once and exactly, not after the pool's timeout.
        let mut first =
            r2d2::ManageConnection::connect(&manager).map_err(|e| open_error(describe(&e)))?;
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build_unchecked(manager);
        let store = PgStore {
            pool,
            writers: Arc::new(std::sync::Mutex::new(())),
            shown: shown.clone(),
            anchor: anchor.to_path_buf(),
            read_only: options.read_only,
        };
        {
            let client = &mut first.client;
            if options.read_only {
                if store.check_version(client)? {
                    return Err(StoreError::ReadOnly {
                        path: PathBuf::from(&shown),
                    });
                }
            } else {
                client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])?;
                let migrated = store.migrate(client);
                let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK]);
                migrated?;
                unlocked?;
            }
        }
        Ok(store)
    }

    /// Whether the database needs migrating; errors for one from a newer authledger.
    fn check_version(&self, client: &mut Client) -> Result<bool, StoreError> {
        let found = current_version(client)?;
        let supported = latest_version();
        if found > supported {
            return Err(StoreError::NewerSchema {
                path: PathBuf::from(&self.shown),
                found,
                supported,
            });
        }
        Ok(found < supported)
    }

    /// Migrates the database when it is behind, holding the ledger's own lock too, as SQLite
    /// migrates under its writer lock: a schema change never interleaves with a ledger write
    /// of another host still running the older build.
    fn migrate(&self, client: &mut Client) -> Result<(), StoreError> {
        if self.check_version(client)? {
            client.execute("SELECT pg_advisory_lock($1)", &[&LEDGER_LOCK])?;
            let migrated = embedded::migrations::runner()
                .set_grouped(true)
                .run(client)
                .map_err(|e| StoreError::Migrate {
                    path: PathBuf::from(&self.shown),
                    reason: e.to_string(),
                });
            let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LEDGER_LOCK]);
            migrated?;
            unlocked?;
        }
        Ok(())
    }

    /// This host's anchor for its local files.
    pub(super) fn anchor(&self) -> &Path {
        &self.anchor
    }

    /// The newest schema version this build knows, and the one in the database.
    pub(super) fn schema_versions(&self) -> Result<(i64, i64), StoreError> {
        let mut conn = self.pool.get()?;
        Ok((latest_version(), current_version(&mut conn.client)?))
    }

    /// A connection on which `begin` has run, and what it answered. A connection the server
    /// closed since it was last used (a restart) fails at once; it is dropped (the pool
    /// discards it) and another is tried, so a caller sees a storage error only when the
    /// server is really gone.
    fn begun(
        &self,
        pool_get: impl Fn() -> Option<Result<r2d2::PooledConnection<PgManager>, StoreError>>,
        begin: impl Fn(&mut PgConn) -> String,
    ) -> Option<Result<Begun, StoreError>> {
        let mut tries = self.pool.max_size() + 1;
        loop {
            let mut conn = match pool_get()? {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            let begin = begin(&mut conn);
            match conn.client.simple_query(&begin) {
                Ok(answer) => return Some(Ok((conn, answer))),
                Err(e) if (e.is_closed() || conn.client.is_closed()) && tries > 1 => {
                    tries -= 1;
                }
                Err(e) => {
                    // `begin` may have opened the transaction before a later statement of it
                    // failed (the lock's timeout): never hand the pool an open transaction.
                    if !conn.client.is_closed() {
                        let _ = conn.client.batch_execute("ROLLBACK");
                    }
                    return Some(Err(e.into()));
                }
            }
        }
    }

    /// Runs `f` in one transaction that holds the ledger's write lock from its first
    /// statement to its commit.
    pub(super) fn write<T, E>(
        &self,
        extension: Option<Arc<dyn TxExtension>>,
        ahead: Vec<Planned>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        if self.read_only || crate::fault::fails("store:read-only") {
            return Err(StoreError::ReadOnly {
                path: PathBuf::from(&self.shown),
            }
            .into());
        }
        let started = Instant::now();
        let _turn = self
            .writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pool_get = || Some(self.pool.get().map_err(StoreError::from));
        // The transaction, the ledger's lock, the audit chain's last row (which only the lock's
        // holder may extend) and what `ahead` names, in one round trip; each statement after
        // the lock's reads what was committed before the lock was granted.
        let begin = |conn: &mut PgConn| {
            let reads: Vec<(&str, &[String])> = std::iter::once((AUDIT_TAIL, &[][..]))
                .chain(ahead.iter().map(|p| (p.sql.as_str(), &p.literals[..])))
                .collect();
            let writes = super::deferred_writes();
            name_statements(
                conn,
                reads
                    .iter()
                    .map(|(sql, _)| *sql)
                    .chain(writes.iter().map(String::as_str)),
            );
            let mut text = format!(
                "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({LEDGER_LOCK})"
            );
            for (sql, literals) in reads {
                text.push_str("; ");
                text.push_str(&named_or_text(&conn.named, sql, literals));
            }
            text
        };
        let Some(conn) = self.begun(pool_get, begin) else {
            return Err(self
                .at_server(StoreError::Pool("no connection".into()))
                .into());
        };
        let (mut conn, answer) = conn.map_err(|e| self.at_server(lock_error(e, started)))?;
        // What each statement answered, in order: BEGIN, the lock, the tail, then `ahead`.
        let mut answers = rows_by_statement(answer).into_iter().skip(2);
        let tail = audit_tail_in(answers.next().unwrap_or_default())?;
        let PgConn {
            client,
            statements,
            named,
        } = &mut *conn;
        let mut tx = PgTx::begun(client, statements, named, &self.shown);
        for (planned, rows) in ahead.into_iter().zip(answers) {
            tx.remember(planned.key, rows);
        }
        let mut tx = Tx::new(Conn::Pg(RefCell::new(tx)), extension).with_audit_tail(tail);
        let value = f(&mut tx)?;
        tx.commit().map_err(|e| self.at_server(e))?;
        Ok(value)
    }

    /// Runs `f` on one snapshot that never waits for a writer.
    pub(super) fn read<T, E>(
        &self,
        extension: Option<Arc<dyn TxExtension>>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let pool_get = || Some(self.pool.get().map_err(StoreError::from));
        match self.begun(pool_get, |_| READ_BEGIN.to_string()) {
            Some(conn) => self.read_on(conn.map_err(|e| self.at_server(e))?.0, extension, f),
            None => Err(self
                .at_server(StoreError::Pool("no connection".into()))
                .into()),
        }
    }

    /// [`read`](Self::read) only if a connection is idle in the pool now.
    pub(super) fn try_read<T, E>(
        &self,
        extension: Option<Arc<dyn TxExtension>>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Option<Result<T, E>>
    where
        E: From<StoreError>,
    {
        // On an async runtime's thread the synchronous client cannot run at all (it drives a
        // runtime of its own, and tokio refuses one inside another): give way, as when no
        // connection is idle, so the caller reads on its blocking pool instead.
        if tokio::runtime::Handle::try_current().is_ok() {
            return None;
        }
        let pool_get = || self.pool.try_get().map(Ok);
        match self.begun(pool_get, |_| READ_BEGIN.to_string())? {
            Ok((conn, _)) => Some(self.read_on(conn, extension, f)),
            Err(e) => Some(Err(self.at_server(e).into())),
        }
    }

    /// `e` naming this server (see [`super::error::at_server`]).
    fn at_server(&self, e: StoreError) -> StoreError {
        super::error::at_server(&self.shown, e)
    }

    fn read_on<T, E>(
        &self,
        mut conn: r2d2::PooledConnection<PgManager>,
        extension: Option<Arc<dyn TxExtension>>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let PgConn {
            client,
            statements,
            named,
        } = &mut *conn;
        let tx = PgTx::begun(client, statements, named, &self.shown);
        let mut tx = Tx::new(Conn::Pg(RefCell::new(tx)), extension);
        f(&mut tx)
    }

    /// The server's health for `doctor`: where it is, its version, the round-trip latency
    /// and the schema.
    pub(super) fn check(&self) -> Result<StoreCheck, StoreError> {
        let (supported_version, schema_version) = self.schema_versions()?;
        let mut conn = self.pool.get()?;
        let client = &mut conn.client;
        let version: String = client
            .query_one("SHOW server_version", &[])?
            .try_get(0)
            .map_err(StoreError::from)?;
        let mut trips = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            client.simple_query("SELECT 1")?;
            trips.push(t.elapsed());
        }
        trips.sort();
        let latency = trips[trips.len() / 2];
        // Every host stamps the shared ledger with its own clock (leases' expiry, windows,
        // refresh claims): hosts must agree on the time, and a host that does not is named.
        let server_ms: i64 = client
            .query_one(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) AS now_ms",
                &[],
            )?
            .try_get("now_ms")?;
        let here_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let skew_ms = here_ms - server_ms;
        // What integrity a server ledger can lack: a table of the schema dropped by hand.
        let mut missing = Vec::new();
        for table in super::Store::copied_tables() {
            let present: bool = client
                .query_one("SELECT to_regclass($1) IS NOT NULL AS present", &[&table])?
                .try_get("present")?;
            if !present {
                missing.push(table);
            }
        }
        Ok(StoreCheck {
            schema_version,
            supported_version,
            integrity: (!missing.is_empty() && schema_version > 0)
                .then(|| format!("missing tables: {}", missing.join(", "))),
            facts: vec![
                StoreFact {
                    check: "server".into(),
                    ok: true,
                    detail: format!("PostgreSQL {version} at {}", self.shown),
                },
                StoreFact {
                    check: "latency".into(),
                    ok: latency < Duration::from_millis(50),
                    detail: format!("{:.2} ms per round trip", latency.as_secs_f64() * 1000.0),
                },
                StoreFact {
                    check: "clock".into(),
                    ok: skew_ms.abs() <= 1_000,
                    detail: format!(
                        "this host is {:.1} s {} the server{}",
                        skew_ms.abs() as f64 / 1000.0,
                        if skew_ms >= 0 { "ahead of" } else { "behind" },
                        if skew_ms.abs() <= 1_000 {
                            ""
                        } else {
                            " (run NTP: hosts share leases' expiry and windows)"
                        }
                    ),
                },
                StoreFact {
                    check: "writable".into(),
                    ok: !self.read_only,
                    detail: if self.read_only {
                        "opened read-only".into()
                    } else {
                        "writes take the ledger's advisory lock".into()
                    },
                },
            ],
            files: Vec::new(),
        })
    }
}

/// What the URL asks of TLS, in libpq's words.
#[derive(Debug, Default, PartialEq)]
struct TlsWish {
    /// `sslmode=require`, `verify-ca` or `verify-full`: TLS or no connection, the server's
    /// certificate checked (rustls always checks it and the name).
    required: bool,
    /// `sslrootcert=PATH`: the CA to trust instead of the web PKI roots.
    root_cert: Option<PathBuf>,
}

/// Splits libpq's TLS parameters off `url`, returning the URL the driver takes (it knows
/// `sslmode=require` only, and no `sslrootcert`) and what they asked.
fn tls_wish(url: &str) -> Result<(String, TlsWish), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), TlsWish::default()));
    };
    let mut wish = TlsWish::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => match value {
                "require" | "verify-ca" | "verify-full" => wish.required = true,
                "disable" | "allow" | "prefer" => {}
                other => return Err(format!("unknown sslmode `{other}`")),
            },
            "sslrootcert" => {
                let path = url::form_urlencoded::parse(format!("p={value}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                wish.root_cert = Some(PathBuf::from(path));
            }
            _ => kept.push(pair),
        }
    }
    let driver = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((driver, wish))
}

/// A rustls connector trusting `root_cert` (PEM), else the web PKI roots.
fn rustls_connector(root_cert: Option<&Path>) -> Result<MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
            let mut added = 0;
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert: rustls::pki_types::CertificateDer<'static> =
                    cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!(
                    "sslrootcert {} holds no certificate",
                    path.display()
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// How every read begins: one snapshot, never a write.
/// Prepares by name (SQL `PREPARE`, planned once per session instead of at every use) each of
/// `sqls` the session has not yet, in one round trip outside any transaction. Best effort: a
/// statement left unprepared is sent as text.
fn name_statements<'s>(conn: &mut PgConn, sqls: impl Iterator<Item = &'s str>) {
    let mut text = String::new();
    let mut names = Vec::new();
    for sql in sqls {
        let name = statement_name(sql);
        if !conn.named.contains(&name) && !names.contains(&name) {
            text.push_str(&format!("PREPARE {name} AS {sql}; "));
            names.push(name);
        }
    }
    if !names.is_empty() && conn.client.batch_execute(&text).is_ok() {
        conn.named.extend(names);
    }
}

/// A pooled connection inside a transaction, and what its `BEGIN` round trip answered.
type Begun = (r2d2::PooledConnection<PgManager>, Vec<SimpleQueryMessage>);

/// The rows each statement of a multi-statement round trip answered, statement by statement.
pub(super) fn rows_by_statement(
    answer: Vec<SimpleQueryMessage>,
) -> Vec<Vec<postgres::SimpleQueryRow>> {
    let mut out = Vec::new();
    let mut rows = Vec::new();
    for message in answer {
        match message {
            SimpleQueryMessage::Row(row) => rows.push(row),
            SimpleQueryMessage::CommandComplete(_) => out.push(std::mem::take(&mut rows)),
            _ => {}
        }
    }
    out
}

/// The audit chain's last row from what its statement answered (`None`: the trail is empty).
fn audit_tail_in(rows: Vec<postgres::SimpleQueryRow>) -> Result<Option<(i64, String)>, StoreError> {
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let row = super::sql::Row::PgText(row);
    Ok(Some((row.get("seq")?, row.get("hash")?)))
}

const READ_BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// A failure to take the ledger's lock: busy when it timed out.
fn lock_error(e: StoreError, started: Instant) -> StoreError {
    match e {
        StoreError::Busy { .. } => StoreError::Busy {
            waited_ms: started.elapsed().as_millis() as u64,
        },
        other => other,
    }
}

/// A driver error with its cause (the driver's own text is often only "db error").
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The newest schema version this build knows for PostgreSQL.
pub(super) fn latest_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The schema version recorded in the database (0 for an empty one).
fn current_version(client: &mut Client) -> Result<i64, StoreError> {
    let present: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL AS present",
            &[],
        )?
        .try_get("present")?;
    if !present {
        return Ok(0);
    }
    Ok(client
        .query_one(
            "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) AS version FROM refinery_schema_history",
            &[],
        )?
        .try_get("version")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_engines_know_the_same_newest_schema_version() {
        assert_eq!(latest_version(), super::super::migrate::latest_version());
    }

    #[test]
    fn libpq_tls_parameters_are_read_and_kept_from_the_driver() {
        let (driver, wish) = tls_wish(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(driver, "postgres://u@h/db?application_name=x");
        assert!(wish.required);
        assert_eq!(wish.root_cert, Some(PathBuf::from("/tmp/ca.pem")));
        let (driver, wish) = tls_wish("postgres://u@h/db").unwrap();
        assert_eq!(
            (driver.as_str(), wish),
            ("postgres://u@h/db", TlsWish::default())
        );
        assert!(
            !tls_wish("postgres://u@h/db?sslmode=prefer")
                .unwrap()
                .1
                .required
        );
        assert!(tls_wish("postgres://u@h/db?sslmode=sometimes").is_err());
    }

    #[test]
    fn an_agent_gets_the_server_without_the_password() {
        assert_eq!(
            without_password("postgres://u:hunter2@db:6000/team?sslmode=require&password=x"),
            "postgres://u@db:6000/team?sslmode=require"
        );
        assert_eq!(
            without_password("postgres://u@db/team"),
            "postgres://u@db/team"
        );
    }

    #[test]
    fn a_password_never_shows() {
        let shown = redact("postgres://u:hunter2@db.example:6000/team");
        assert_eq!(shown, "postgres://u:***@db.example:6000/team");
        let shown = redact("postgres://u@db/team?password=hunter2&sslmode=require");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
