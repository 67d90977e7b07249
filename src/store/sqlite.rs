//! The SQLite store: the embedded default, one file shared by every process of one host.
//!
//! Every write is `BEGIN IMMEDIATE`, taken after the cross-process writer queue (`lock.rs`),
//! so one writer holds the whole file from its first read; reads are deferred transactions on
//! a WAL snapshot and never block the writer.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::lock::{LockFiles, WriteLock};
use super::tx::Conn;
use super::{Durability, StoreCheck, StoreError, StoreFact, StoreOptions, Tx, TxExtension};
use super::{error, files, migrate};
use crate::paths::{sidecar, store_lock as lock_path_for};

/// An open, migrated SQLite ledger.
#[derive(Debug, Clone)]
pub(super) struct SqliteStore {
    pool: r2d2::Pool<SqliteConnectionManager>,
    path: PathBuf,
    lock_path: PathBuf,
    locks: Arc<LockFiles>,
    options: StoreOptions,
    /// Opened read-only: this process may read the ledger but not write it.
    read_only: bool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, migrates it to the current schema, and
    /// refuses a corrupt, read-only or newer-schema file with a clear error.
    pub(super) fn open(path: &Path, options: StoreOptions) -> Result<SqliteStore, StoreError> {
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
        Ok(SqliteStore {
            pool,
            path: path.to_path_buf(),
            locks: LockFiles::new(lock_path.clone()),
            lock_path,
            options,
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
    ) -> Result<SqliteStore, StoreError> {
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
        Ok(SqliteStore {
            pool,
            path: path.to_path_buf(),
            locks: LockFiles::new(lock_path.clone()),
            lock_path,
            options,
            read_only: true,
        })
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
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The newest schema version this build knows, and the one in the file.
    pub(super) fn schema_versions(&self) -> Result<(i64, i64), StoreError> {
        let conn = self.pool.get()?;
        let found = migrate::current_version(&conn)?;
        Ok((migrate::latest_version(), found))
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committing when it returns `Ok`.
    ///
    /// Writers queue on the cross-process lock first, so `BEGIN IMMEDIATE` almost never meets a
    /// busy database; when it does (a program outside the queue holds it), the begin is retried
    /// until the write deadline. No caller ever sees `SQLITE_BUSY` before that deadline.
    pub(super) fn write<T, E>(
        &self,
        extension: Option<Arc<dyn TxExtension>>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
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
        let mut tx = Tx::new(Conn::Lite(txn), extension);
        let value = f(&mut tx)?;
        tx.commit().map_err(|e| match e {
            StoreError::Backend(source) => match source.downcast::<rusqlite::Error>() {
                Ok(e) => write_error(&self.path, *e),
                Err(other) => StoreError::Backend(other),
            },
            other => other,
        })?;
        Ok(value)
    }

    /// [`read`](Self::read) only if a connection is idle in the pool now: `None` instead of
    /// waiting for one (or opening one), for a caller that must not block (the gateway's
    /// async path) and has somewhere else to go.
    pub(super) fn try_read<T, E>(
        &self,
        extension: Option<Arc<dyn TxExtension>>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Option<Result<T, E>>
    where
        E: From<StoreError>,
    {
        let mut conn = self.pool.try_get()?;
        Some(Self::read_on(&mut conn, extension, f))
    }

    /// Runs `f` in a read transaction: a consistent snapshot that never blocks writers.
    pub(super) fn read<T, E>(
        &self,
        extension: Option<Arc<dyn TxExtension>>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.pool.get().map_err(StoreError::from)?;
        Self::read_on(&mut conn, extension, f)
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
        let mut tx = Tx::new(Conn::Lite(txn), extension);
        f(&mut tx)
    }

    /// The store's health for `doctor`: schema versions, SQLite's `integrity_check`, the
    /// journal mode in force (`wal` expected) and the files to check the permissions of.
    pub(super) fn check(&self) -> Result<StoreCheck, StoreError> {
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
