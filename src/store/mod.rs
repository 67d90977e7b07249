//! SQLite storage: the pool, pragmas, migrations, the writer queue and the transaction helper.
//!
//! Nothing above this module sees a rusqlite type. Callers run closures against a [`Tx`] whose
//! methods speak in ledger records, so a PostgreSQL store can later offer the same methods.
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
//! transactions on a WAL snapshot and never block the writer. PostgreSQL (later): the same
//! exclusion per ledger, by a transaction-scoped advisory lock (`pg_advisory_xact_lock` on a
//! key for the ledger) taken as a write's first statement, or by `SERIALIZABLE` with a bounded
//! retry of the whole closure on a serialization failure or deadlock, never surfaced to a
//! caller. A retry re-runs the closure, so such a store needs closures that may run twice
//! (today [`Store::write`] takes `FnOnce`) and that leave nothing outside the transaction a
//! rerun would repeat: the chain key is published only after commit, and lease ids and usage
//! keys are drawn by callers before it. Reads need one snapshot per call (`REPEATABLE READ`
//! on a server): `audit verify` walks the whole trail in one.
//!
//! SQLite-only spots a second store must translate: `INDEXED BY`, `INSERT OR REPLACE`,
//! `strftime` in [`Tx::usage_summary`], the new window's id from `last_insert_rowid`
//! (`RETURNING id` elsewhere), and [`Tx::audit_scan`]'s physical `rowid` order.
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
mod credential_rows;
mod error;
pub mod files;
mod health_rows;
mod lease_rows;
mod lease_token_rows;
mod lock;
mod migrate;
mod settings_rows;
mod tx;
mod usage_rows;
mod utilization_rows;
mod window_rows;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use check::{StoreCheck, StoreFact};
pub use error::{BackendError, StoreError};
pub use lease_rows::LeaseFilter;
pub use tx::{Staged, Tx};

use crate::paths::{sidecar, store_lock as lock_path_for};
use lock::{LockFiles, WriteLock};

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
    /// Commit durability.
    pub durability: Durability,
    /// How long one statement waits for a lock held by a program outside the writer queue.
    pub busy_timeout: Duration,
    /// How long a write waits in all before giving up with [`StoreError::Busy`].
    pub write_deadline: Duration,
    /// Open an existing ledger for reading only (a viewer such as `top`): nothing is created,
    /// migrated or written, and every write is refused as read-only.
    pub read_only: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            write_deadline: Duration::from_secs(60),
            read_only: false,
        }
    }
}

/// An open, migrated ledger database shared by any number of processes.
#[derive(Debug, Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
    path: PathBuf,
    lock_path: PathBuf,
    locks: Arc<LockFiles>,
    options: StoreOptions,
    extension: Option<Arc<dyn TxExtension>>,
    /// Opened read-only: this process may read the ledger but not write it.
    read_only: bool,
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
    /// Opens (creating if needed) the database at `path`, migrates it to the current schema, and
    /// refuses a corrupt, read-only or newer-schema file with a clear error.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if options.read_only {
            // Live: a viewer must see other processes' commits, so never `immutable` while
            // someone may write the file.
            return Self::open_read_only(path, lock_path_for(path), options, true);
        }
        if let Some(dir) = path.parent() {
            files::ensure_private_dir(dir)?;
        }
        let lock_path = lock_path_for(path);
        let fresh = !path.exists();
        if fresh {
            // Creating the file and its first migration happen under the writer lock, so two
            // processes opening a new ledger at once do not both create tables.
            let _guard = WriteLock::acquire(&lock_path, options.write_deadline)?;
            files::ensure_private_file(path)?;
            Self::prepare(path, &options)?;
        } else {
            match Self::prepare_existing(path, &lock_path, &options) {
                Ok(()) => {}
                // A ledger we may read but not write still answers reads (status, audit,
                // doctor); every write is refused as read-only.
                Err(StoreError::ReadOnly { .. }) if readable(path) => {
                    return Self::open_read_only(path, lock_path, options, false);
                }
                Err(e) => return Err(e),
            }
        }
        if fresh {
            // Ours from birth: make sure no umask or race left them readable by others. An
            // existing ledger's modes are its owner's choice; `doctor` reports loose ones.
            files::tighten(&[
                path,
                &lock_path,
                &sidecar(path, "-wal"),
                &sidecar(path, "-shm"),
            ]);
        }

        let init_options = options.clone();
        let manager = SqliteConnectionManager::file(path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |c| apply_pragmas(c, &init_options));
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build_unchecked(manager);
        Ok(Store {
            pool,
            path: path.to_path_buf(),
            locks: LockFiles::new(lock_path.clone()),
            lock_path,
            options,
            extension: None,
            read_only: false,
        })
    }

    /// A pool of read-only connections to a ledger this process may not write: the file as
    /// it is (immutable when no `-wal` holds newer pages, since no `-shm` can be created
    /// beside it). Its schema must be current: nothing can migrate it. `live`: the caller asked
    /// for read-only on a ledger others may be writing, so it is immutable only when no one
    /// here could write it either.
    fn open_read_only(
        path: &Path,
        lock_path: PathBuf,
        options: StoreOptions,
        live: bool,
    ) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                reason: "no ledger here (run `authledger init`)".into(),
            });
        }
        let wal = sidecar(path, "-wal");
        let immutable = (!live || !writable(path))
            && (!wal.exists() || fs::metadata(&wal).is_ok_and(|m| m.len() == 0));
        let uri = format!(
            "file:{}?mode=ro{}",
            path.display(),
            if immutable { "&immutable=1" } else { "" }
        );
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let busy = options.busy_timeout;
        let conn = Connection::open_with_flags(&uri, flags)
            .map_err(|e| error::classify_open_error(path, e))?;
        if migrate::check(&conn, path)? {
            return Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
            });
        }
        drop(conn);
        let manager = SqliteConnectionManager::file(&uri)
            .with_flags(flags)
            .with_init(move |c| {
                c.busy_timeout(busy)?;
                c.execute_batch("PRAGMA foreign_keys = ON; PRAGMA trusted_schema = OFF;")
            });
        let pool = r2d2::Pool::builder()
            .max_size(4)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build_unchecked(manager);
        Ok(Store {
            pool,
            path: path.to_path_buf(),
            locks: LockFiles::new(lock_path.clone()),
            lock_path,
            options,
            extension: None,
            read_only: true,
        })
    }

    /// This store with an upper layer's [`TxExtension`], carried by every transaction it runs
    /// (the ledger's audit chain key slot, so its transactions can key the rows they append).
    pub fn with_extension(mut self, extension: Arc<dyn TxExtension>) -> Store {
        self.extension = Some(extension);
        self
    }

    fn prepare_existing(
        path: &Path,
        lock_path: &Path,
        options: &StoreOptions,
    ) -> Result<(), StoreError> {
        let conn = open_connection(path, options)?;
        if migrate::check(&conn, path)? {
            drop(conn);
            let _guard = WriteLock::acquire(lock_path, options.write_deadline)?;
            Self::prepare(path, options)?;
        }
        Ok(())
    }

    /// Opens one connection, checks the schema and applies pending migrations.
    fn prepare(path: &Path, options: &StoreOptions) -> Result<(), StoreError> {
        let mut conn = open_connection(path, options)?;
        if migrate::check(&conn, path)? {
            migrate::run(&mut conn, path)?;
        }
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The newest schema version this build knows, and the one in the file.
    pub fn schema_versions(&self) -> Result<(i64, i64), StoreError> {
        let conn = self.pool.get()?;
        let found = migrate::current_version(&conn)?;
        Ok((migrate::latest_version(), found))
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committing when it returns `Ok`.
    ///
    /// Writers queue on the cross-process lock first, so `BEGIN IMMEDIATE` almost never meets a
    /// busy database; when it does (a program outside the queue holds it), the begin is retried
    /// until the write deadline. No caller ever sees `SQLITE_BUSY` before that deadline.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        if self.read_only || crate::fault::fails("store:read-only") {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            }
            .into());
        }
        let _queue = self.locks.acquire(self.options.write_deadline)?;
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        let started = Instant::now();
        let txn = loop {
            match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
                Ok(t) => break t,
                Err(e) if is_busy(&e) && started.elapsed() < self.options.write_deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) if is_busy(&e) => {
                    return Err(StoreError::Busy {
                        waited_ms: started.elapsed().as_millis() as u64,
                    }
                    .into());
                }
                Err(e) => return Err(write_error(&self.path, e).into()),
            }
        };
        let mut tx = Tx::new(txn, self.extension.clone());
        let value = f(&mut tx)?;
        tx.commit().map_err(|e| write_error(&self.path, e))?;
        Ok(value)
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
        let mut conn = self.pool.try_get()?;
        Some(Self::read_on(&mut conn, self.extension.clone(), f))
    }

    /// Runs `f` in a read transaction: a consistent snapshot that never blocks writers.
    pub fn read<T, E>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        Self::read_on(&mut conn, self.extension.clone(), f)
    }

    fn read_on<T, E>(
        conn: &mut Connection,
        extension: Option<Arc<dyn TxExtension>>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let txn = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let mut tx = Tx::new(txn, extension);
        f(&mut tx)
    }

    /// The store's health for `doctor`: schema versions, SQLite's `integrity_check`, the
    /// journal mode in force (`wal` expected) and the files to check the permissions of.
    pub fn check(&self) -> Result<StoreCheck, StoreError> {
        let (supported_version, schema_version) = self.schema_versions()?;
        let conn = self.pool.get()?;
        let verdict: String =
            conn.query_row("PRAGMA integrity_check", [], |r| r.get("integrity_check"))?;
        let journal: String =
            conn.query_row("PRAGMA journal_mode", [], |r| r.get("journal_mode"))?;
        Ok(StoreCheck {
            schema_version,
            supported_version,
            integrity: (verdict != "ok").then_some(verdict),
            facts: vec![if self.read_only || !writable(&self.path) {
                // Opened as it is on disk: its journal mode cannot be asked.
                StoreFact {
                    check: "writable".into(),
                    ok: false,
                    detail: "read-only: reads work, every write is refused (check the \
                             permissions of the file and its directory)"
                        .into(),
                }
            } else {
                StoreFact {
                    check: "journal".into(),
                    ok: journal == "wal",
                    detail: journal,
                }
            }],
            files: self.files(),
        })
    }

    /// The files that make up the ledger on disk, for permission checks.
    fn files(&self) -> Vec<PathBuf> {
        vec![
            self.path.clone(),
            sidecar(&self.path, "-wal"),
            sidecar(&self.path, "-shm"),
            self.lock_path.clone(),
        ]
    }
}

/// Whether this process may write `path` (opening it for writing changes nothing).
fn writable(path: &Path) -> bool {
    fs::OpenOptions::new().write(true).open(path).is_ok()
}

/// Whether this process may read `path`.
fn readable(path: &Path) -> bool {
    fs::File::open(path).is_ok()
}

fn open_connection(path: &Path, options: &StoreOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| error::classify_open_error(path, e))?;
    apply_pragmas(&conn, options).map_err(|e| error::classify_open_error(path, e))?;
    Ok(conn)
}

fn apply_pragmas(conn: &Connection, options: &StoreOptions) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(options.busy_timeout)?;
    // The ledger runs a few dozen distinct statements; the default cache of 16 would evict and
    // re-parse them on every transaction.
    conn.set_prepared_statement_cache_capacity(128);
    let mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get("journal_mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some(format!("cannot switch to WAL mode (still {mode})")),
        ));
    }
    let sync = match options.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    // Checkpoints every 4,000 WAL pages rather than SQLite's 1,000: the pages a grant touches
    // are the same few each time, so a longer interval copies each back once for many
    // commits, and fsyncs the database file a quarter as often.
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync}; PRAGMA trusted_schema = OFF; PRAGMA wal_autocheckpoint = 4000;"
    ))?;
    Ok(())
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn write_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ReadOnly) => StoreError::ReadOnly {
            path: path.to_path_buf(),
        },
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        }
        _ => StoreError::from(e),
    }
}

#[cfg(test)]
mod tests {
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
