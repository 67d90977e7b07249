//! Storage: SQLite (the embedded default, `sqlite.rs`) or PostgreSQL (one ledger for many
//! hosts, `pg.rs`), behind one [`Store`] and one transaction handle.
//!
//! Nothing above this module sees a database type. Callers run closures against a [`Tx`]
//! whose methods speak in ledger records; each statement is written once (`sql.rs` says how)
//! and runs on either engine.
//!
//! # The storage seam: what a second store must keep
//!
//! A store offers [`Store::write`] (one transaction that commits when the closure returns
//! `Ok`, rolls back otherwise), [`Store::read`] (one consistent snapshot), savepoints inside a
//! write ([`Tx::isolated`], [`Tx::undo_unless`]: a daemon batch is many requests in one
//! transaction, each undone alone), the `Tx` row methods, [`Store::check`] for `doctor`, and
//! migrations that refuse a newer schema. Rows are read by column name, never by position.
//!
//! ## One writer at a time
//!
//! These steps read, then write what they read; none of them is safe if two writers of one
//! ledger interleave, so every write transaction must exclude every other writer of the same
//! ledger from its first read to its commit (a constraint catches some races, as noted, but
//! only as an error, never as the right answer):
//!
//! - audit chain tail: `audit::append` reads [`Tx::audit_tail`] and writes row `seq + 1`
//!   whose MAC covers the tail's (the `seq` primary key refuses a fork); `audit::key`'s
//!   `ensure_keyed` reads the tail and the sealed-secret setting before its `rekey` row.
//! - fences: [`Tx::next_fence`] is `MAX(fence) + 1`, then [`Tx::insert_lease`] (UNIQUE).
//! - concurrency: `quota::acquire` counts [`Tx::active_lease_count`] before it inserts the
//!   lease; no constraint backs invariant 2, only the single writer.
//! - budgets: `decide` reads each window's `used` and `reserved` to size a fair share, then
//!   [`Tx::reserve_in_window`]'s conditional update (`used + reserved + n <= limit`), which
//!   alone never over-grants but fails the grant (a `Constraint` error) when the share was
//!   sized on a stale read; the rpm/tpm checks read the minute window.
//! - windows: `quota::windows::current_window` reads [`Tx::window_at`] then inserts
//!   (UNIQUE per provider, account, kind and start), then [`Tx::carry_reservations`] sums
//!   [`Tx::active_holdings`] and moves that amount between the two windows.
//! - returning reservations: `reclaim`, `release` and `record_usage` read
//!   [`Tx::lease_windows`] and subtract what they read from the window and the lease;
//!   [`Tx::end_lease`] is conditional on `state = 'active'` (a lease ends once).
//! - leases: `renew` and `release` read the lease live before they touch or end it; cleanup
//!   and acquire read [`Tx::stale_leases`] / [`Tx::stale_leases_of`], then end each one.
//! - usage: [`Tx::usage_by_key`] before [`Tx::insert_usage`] (UNIQUE idempotency key).
//! - limits: `ensure_limits` stores defaults when [`Tx::limits`] finds none; `set_limits`
//!   merges an update into what it read.
//! - credentials: storing one reads the prior record and
//!   [`Tx::credential_generation_high_water`] to pick the next generation;
//!   [`Tx::set_credential_status`] is conditional on the generation read.
//! - refresh claims: [`Tx::try_claim_refresh`] reads the credential's generation, then takes
//!   the claim only if none is live (one refresh for every process).
//! - the master key: `vault::unlock` writes the key check and key id when none is stored;
//!   key rotation (`vault::rotate`, then the audit secret's re-seal, in the ledger's
//!   rotation) re-seals every credential, the key check and the audit secret in one transaction: a credential stored meanwhile under the old key would be lost.
//! - provider health: `health::report` reads the record and writes it back with its
//!   counters moved; its utilization samples need no read ([`Tx::insert_utilization_sample`]
//!   keeps the first of equal figures by primary key, `ON CONFLICT DO NOTHING`).
//!
//! ## Isolation each needs
//!
//! SQLite: every write is `BEGIN IMMEDIATE`, taken after the cross-process writer queue
//! (`lock.rs`), so one writer holds the whole file from its first read; reads are deferred
//! transactions on a WAL snapshot and never block the writer. PostgreSQL: the same exclusion
//! per ledger (a database), by a transaction-scoped advisory lock (`pg_advisory_xact_lock`)
//! taken as a write's first statement; every row lock a write takes comes after it, so two
//! ledger writes never deadlock or fail to serialize, and no retry is needed. Reads are one
//! `REPEATABLE READ READ ONLY` snapshot per call: `audit verify` walks the whole trail in one.
//!
//! Spots written per engine: `INDEXED BY` hints (dropped for the server), the UTC day of a
//! timestamp ([`sql::Dialect::utc_day`]), [`Tx::audit_scan`]'s order (physical `rowid`
//! in SQLite, `seq` on the server), and the two writes that must change a row
//! ([`Tx::reserve_in_window`], [`Tx::end_active_lease`]: on the server a statement that fails
//! when they would not).
//!
//! ## Round trips (PostgreSQL)
//!
//! On SQLite a statement is a function call; on a server it is a round trip, and every other
//! writer waits through each one a write makes under the lock. So a PostgreSQL write:
//! - sends `BEGIN`, the lock, the audit chain's last row and the reads its caller expects to
//!   make ([`Store::write_reading`]; a grant: every credential's metadata, limits and health,
//!   small tables read whole, and its account's stale leases, live-lease count and windows) as
//!   one multi-statement round trip, values written in as literals; each statement after the
//!   lock reads what was committed before it was granted, exactly what the transaction would
//!   read itself;
//! - answers a read it already made from memory until it writes a table that read names
//!   (`read_cache`), and one account's credential, limits or health out of the whole table it
//!   read;
//! - appends audit rows without reading the tail again (it knows its own appends) and writes
//!   the chain's recorded head once, with `COMMIT`, in the same round trip;
//! - sends a savepoint only with the next write (one released or rolled back to before any
//!   write is never sent), and a release with whatever goes next;
//! - queues the writes whose outcome no one waits for (`Tx::exec_later`: a reservation, a
//!   lease, what it holds, its end, audit rows), each session's prepared statement run with
//!   its values written in, and sends them with the next round trip, `COMMIT` at the latest.
//!
//! A grant or a release is 2 round trips (they were 21 and 11): `BEGIN` with its reads, then
//! its writes with `COMMIT`. A batch of them (the daemon's) reads each request's reads ahead
//! in one round trip after the writes before it ([`Tx::read_ahead`]), so a batched request
//! costs two as well.
//!
//! ## Errors
//!
//! A store reports failures as [`StoreError`], whose variants never name the engine: `Busy`
//! (held past the write deadline: busy or timed out), `Constraint` (a CHECK or UNIQUE
//! refused a write), `Corrupt`, `ReadOnly`, `NewerSchema`, `Migrate`, `Open`, `Lock`,
//! `Permissions`, `BadRow` (a stored value that does not parse), `Pool` (no connection), and
//! `Backend` for anything else, keeping the engine's error as its
//! [`source`](std::error::Error::source); `AuditKey` is the keyed trail's, not the
//! engine's. Every one exits 5. Callers match on the variant, never on the message or the
//! source; a store converts its engine's errors into these where it meets them (here,
//! `From<rusqlite::Error>` and `error::classify_open_error`).

mod audit_rows;
mod check;
mod copy;
mod credential_rows;
mod error;
pub mod files;
mod health_rows;
mod lease_rows;
mod lease_token_rows;
mod lock;
mod migrate;
mod pg;
mod read_cache;
mod settings_rows;
pub(crate) mod sql;
mod sqlite;
mod tx;
mod usage_rows;
mod utilization_rows;
mod window_rows;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use check::{StoreCheck, StoreFact};
pub use copy::CopyReport;
pub use error::{BackendError, StoreError};
pub use lease_rows::LeaseFilter;
pub use pg::{redact as redact_server_url, without_password as server_url_without_password};
pub use tx::{AUDIT_HEAD_KEY, Staged, Tx};

/// How hard SQLite makes a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a granted lease survives power loss (the default).
    #[default]
    Full,
    /// `synchronous=NORMAL`: faster; the last commits may roll back on power loss (never
    /// corrupting the file).
    Normal,
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Commit durability (SQLite; a server keeps its own settings).
    pub durability: Durability,
    /// How long one statement waits for a lock held by a program outside the writer queue.
    pub busy_timeout: Duration,
    /// How long a write waits in all before giving up with [`StoreError::Busy`].
    pub write_deadline: Duration,
    /// Open an existing ledger for reading only (a viewer such as `top`): nothing is created,
    /// migrated or written, and every write is refused as read-only.
    pub read_only: bool,
    /// A PostgreSQL URL: the ledger lives on that server, shared by every host, and the path
    /// given to [`Store::open`] only anchors this host's own files (lease directories, the
    /// daemon's socket, the gateway's address). `None`: the path is the SQLite file.
    pub server: Option<crate::paths::ServerUrl>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            write_deadline: Duration::from_secs(60),
            read_only: false,
            server: None,
        }
    }
}

/// An open, migrated ledger database shared by any number of processes (and, on a server,
/// of hosts).
#[derive(Debug, Clone)]
pub struct Store {
    engine: Engine,
    extension: Option<Arc<dyn TxExtension>>,
}

/// The writes a server transaction sends with its next round trip (see `Tx::exec_later`), as
/// PostgreSQL takes them: each session prepares them by name once.
fn deferred_writes() -> Vec<String> {
    [
        lease_rows::insert_lease_sql(),
        lease_rows::INSERT_LEASE_WINDOW.to_string(),
        audit_rows::insert_audit_sql(),
        window_rows::RESERVE_OR_FAIL.to_string(),
        window_rows::UNRESERVE.to_string(),
        lease_rows::END_ACTIVE_LEASE.to_string(),
        lease_rows::TAKE_FROM_LEASE_WINDOW.to_string(),
        settings_rows::SET_SETTING.to_string(),
    ]
    .iter()
    .map(|sql| sql::for_postgres(sql).into_owned())
    .collect()
}

#[derive(Debug, Clone)]
enum Engine {
    Sqlite(sqlite::SqliteStore),
    Postgres(pg::PgStore),
}

/// State of a layer above the store that every transaction of a store carries (the audit
/// chain's key, for the ledger), so the store needs to know nothing of it: the layer finds it
/// with [`Tx::extension`], stages values with [`Tx::stage`], and is told of them by
/// [`TxExtension::committed`] once the transaction that staged them commits.
pub trait TxExtension: std::any::Any + Send + Sync + std::fmt::Debug {
    /// Takes what a committed transaction staged.
    fn committed(&self, staged: Staged);
    /// This extension as `Any`, to be downcast to its own type.
    fn as_any(&self) -> &dyn std::any::Any;
}

impl Store {
    /// Opens (creating if needed) the ledger, migrates it to the current schema, and refuses a
    /// corrupt, read-only or newer-schema one with a clear error. With
    /// [`StoreOptions::server`], the ledger is on that PostgreSQL server and `path` anchors
    /// this host's local files; else `path` is the SQLite file.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let engine = match options.server.clone() {
            Some(url) => {
                let store = pg::PgStore::open(url.as_str(), path, &options)?;
                // This host's directory for the server's ledger, once the server has answered:
                // a URL that leads nowhere leaves nothing behind.
                if let Some(dir) = path.parent() {
                    files::ensure_private_dir(dir)?;
                }
                Engine::Postgres(store)
            }
            None => Engine::Sqlite(sqlite::SqliteStore::open(path, options)?),
        };
        Ok(Store {
            engine,
            extension: None,
        })
    }

    /// This store with an upper layer's [`TxExtension`], carried by every transaction it runs
    /// (the ledger's audit chain key slot, so its transactions can key the rows they append).
    pub fn with_extension(mut self, extension: Arc<dyn TxExtension>) -> Store {
        self.extension = Some(extension);
        self
    }

    /// The SQLite file, or on a server this host's anchor for its local files.
    pub fn path(&self) -> &Path {
        match &self.engine {
            Engine::Sqlite(s) => s.path(),
            Engine::Postgres(p) => p.anchor(),
        }
    }

    /// Whether the ledger lives on a server shared by many hosts.
    pub fn is_server(&self) -> bool {
        matches!(self.engine, Engine::Postgres(_))
    }

    /// The newest schema version this build knows, and the one in the ledger.
    pub fn schema_versions(&self) -> Result<(i64, i64), StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => s.schema_versions(),
            Engine::Postgres(p) => p.schema_versions(),
        }
    }

    /// Runs `f` in one write transaction, committing when it returns `Ok`: one writer of the
    /// ledger at a time from its first read to its commit, on either engine. No caller sees a
    /// busy database before the write deadline.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.write_reading(|_| {}, f)
    }

    /// [`write`](Self::write), with the reads `ahead` asks for (of a transaction that only
    /// notes them) sent together with `BEGIN` on PostgreSQL: under the lock, so exactly what
    /// the transaction would read itself, without a round trip each while every other writer
    /// waits; the transaction then answers them from memory. A read `f` does not make costs
    /// only the server's work; a read with other values is simply made. SQLite reads
    /// in-process: `ahead` is not run there.
    pub fn write_reading<T, E>(
        &self,
        ahead: impl FnOnce(&Tx<'_>),
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match &self.engine {
            Engine::Sqlite(s) => s.write(self.extension.clone(), f),
            Engine::Postgres(p) => {
                let plan = Tx::plan();
                ahead(&plan);
                p.write(self.extension.clone(), plan.into_planned(), f)
            }
        }
    }

    /// [`read`](Self::read) only if a connection is idle in the pool now: `None` instead of
    /// waiting for one (or opening one), for a caller that must not block (the gateway's
    /// async path) and has somewhere else to go.
    pub fn try_read<T, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Option<Result<T, E>>
    where
        E: From<StoreError>,
    {
        match &self.engine {
            Engine::Sqlite(s) => s.try_read(self.extension.clone(), f),
            Engine::Postgres(p) => p.try_read(self.extension.clone(), f),
        }
    }

    /// Runs `f` in a read transaction: a consistent snapshot that never blocks writers.
    pub fn read<T, E>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match &self.engine {
            Engine::Sqlite(s) => s.read(self.extension.clone(), f),
            Engine::Postgres(p) => p.read(self.extension.clone(), f),
        }
    }

    /// The store's health for `doctor`: schema versions, and the engine's own checks (SQLite's
    /// integrity and journal, the files to check the permissions of; a server's version and
    /// latency).
    pub fn check(&self) -> Result<StoreCheck, StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => s.check(),
            Engine::Postgres(p) => p.check(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    #[test]
    fn migrations_apply_to_a_fresh_file_and_reopen_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let (latest, found) = store.schema_versions().unwrap();
        assert_eq!(latest, found);
        assert!(latest >= 1);
        drop(store);
        Store::open(&path, StoreOptions::default()).unwrap();
    }

    #[test]
    fn try_read_gives_way_when_no_connection_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db"), StoreOptions::default()).unwrap();
        let nothing = |_: &mut Tx<'_>| Ok::<_, StoreError>(());
        store.read(nothing).unwrap();
        assert!(matches!(store.try_read(nothing), Some(Ok(()))));
        // The one connection is busy in this read: try_read neither waits nor opens another.
        let gave_way = store
            .read(|_| Ok::<_, StoreError>(store.try_read(nothing).is_none()))
            .unwrap();
        assert!(gave_way);
    }

    #[test]
    fn an_isolated_failure_undoes_only_its_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("l.db"), StoreOptions::default()).unwrap();
        let outcomes = store
            .write(|tx| -> Result<_, StoreError> {
                let kept = tx.isolated(|tx| tx.set_setting("kept-1", "1"))?;
                let failed = tx.isolated(|tx| -> Result<(), StoreError> {
                    tx.set_setting("undone", "1")?;
                    Err(StoreError::Busy { waited_ms: 0 })
                })?;
                let after = tx.isolated(|tx| tx.set_setting("kept-2", "1"))?;
                Ok((kept.is_ok(), failed.is_err(), after.is_ok()))
            })
            .unwrap();
        assert_eq!(outcomes, (true, true, true));
        let read = |k: &str| store.read(|tx| tx.setting(k)).unwrap();
        assert_eq!(read("kept-1").as_deref(), Some("1"));
        assert_eq!(read("undone"), None);
        assert_eq!(read("kept-2").as_deref(), Some("1"));
    }

    /// Records what a committed transaction staged.
    #[derive(Debug, Default)]
    struct Recorder(std::sync::Mutex<Vec<String>>);

    impl TxExtension for Recorder {
        fn committed(&self, staged: Staged) {
            if let Ok(v) = staged.downcast::<String>() {
                self.0.lock().unwrap().push((*v).clone());
            }
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[test]
    fn only_what_a_committed_transaction_kept_staged_reaches_the_extension() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Recorder::default());
        let store = Store::open(&dir.path().join("l.db"), StoreOptions::default())
            .unwrap()
            .with_extension(recorder.clone());
        // Staged in a savepoint that is undone: undone with it.
        store
            .write(|tx| -> Result<_, StoreError> {
                tx.stage(Arc::new("kept".to_string()));
                let _ = tx.isolated(|tx| -> Result<(), StoreError> {
                    tx.stage(Arc::new("undone".to_string()));
                    Err(StoreError::Busy { waited_ms: 0 })
                })?;
                tx.undo_unless(|tx| -> Result<bool, StoreError> {
                    tx.stage(Arc::new("refused".to_string()));
                    Ok(false)
                })?;
                assert!(tx.extension::<Recorder>().is_some());
                Ok(())
            })
            .unwrap();
        // Staged in a transaction that rolls back: never handed over.
        let _ = store.write(|tx| -> Result<(), StoreError> {
            tx.stage(Arc::new("rolled back".to_string()));
            Err(StoreError::Busy { waited_ms: 0 })
        });
        assert_eq!(*recorder.0.lock().unwrap(), vec!["kept".to_string()]);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        drop(Store::open(&path, StoreOptions::default()).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (999, 'future', '', '0')",
            [],
        )
        .unwrap();
        drop(conn);
        let err = Store::open(&path, StoreOptions::default()).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 999, .. }),
            "{err}"
        );
    }

    #[test]
    fn garbage_file_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        let err = Store::open(&path, StoreOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
