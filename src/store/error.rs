//! Everything that can go wrong below the business logic.
//!
//! The variants name what went wrong for the ledger (busy, corrupt, read-only, newer schema,
//! a broken constraint, …), never which database engine said so: the layers above match on
//! them, and a second store returns the same ones. The engine's own error, where there is
//! one, stays reachable through [`std::error::Error::source`].

use std::path::PathBuf;

/// An engine's error, kept whole as the source of a neutral variant.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage failure. Each variant says which file and what to do; none carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open ledger {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What the database engine or the OS said.
        reason: String,
    },
    /// The database exists but is not an authledger database, or is damaged.
    #[error("ledger {path} is corrupt or not an authledger database: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the database engine said.
        reason: String,
    },
    /// The database, its directory or its lock file cannot be written.
    #[error("ledger {path} is read-only: check the permissions of the file and its directory")]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// The database was made by a newer authledger.
    #[error(
        "ledger {path} has schema version {found}, newer than this authledger supports ({supported}); upgrade authledger"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Applying a migration failed; the transaction was rolled back.
    #[error("cannot migrate ledger {path}: {reason}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// What refinery said.
        reason: String,
    },
    /// The cross-process write lock file could not be opened or locked.
    #[error("cannot lock ledger {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Setting up a private file or directory failed.
    #[error("cannot secure {path}: {source}")]
    Permissions {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another program held the database past the waiting deadline (busy or timed out).
    #[error("ledger is busy: another program kept it locked for {waited_ms} ms")]
    Busy {
        /// How long we waited.
        waited_ms: u64,
    },
    /// A stored value does not parse back: the file was edited by hand or is damaged.
    #[error("ledger holds an invalid {what}: {value}")]
    BadRow {
        /// Which field.
        what: &'static str,
        /// The offending value, shortened.
        value: String,
    },
    /// A write broke a CHECK or UNIQUE constraint: a bug or a hand-edited database.
    #[error("ledger refused a write ({reason})")]
    Constraint {
        /// The database engine's message.
        reason: String,
    },
    /// No connection could be had from the pool.
    #[error("cannot get a ledger connection: {0}")]
    Pool(#[source] BackendError),
    /// Any other failure of the database engine.
    #[error("ledger error: {0}")]
    Backend(#[source] BackendError),
    /// The audit trail is keyed and this process cannot get its key.
    #[error("the audit trail is keyed and needs this ledger's master key: {0}")]
    AuditKey(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::ConstraintViolation) => StoreError::Constraint {
                reason: e.to_string(),
            },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Busy { waited_ms: 0 }
            }
            _ => StoreError::Backend(Box::new(e)),
        }
    }
}

/// What a server statement that must change a row says when it would not (the text of a cast
/// that fails): the store reads it back as a [`StoreError::Constraint`].
pub(super) const CONSTRAINT_FAILED: &str = "authledger constraint: ";

/// A failure at a server, naming it (never its password): the engine's error stays the
/// source.
#[derive(Debug)]
pub struct AtServer {
    /// The server and database as shown to people.
    pub server: String,
    /// What failed there.
    pub source: BackendError,
}

impl std::fmt::Display for AtServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgreSQL at {}: {}", self.server, self.source)
    }
}

impl std::error::Error for AtServer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// `e` naming the server `shown` if it is a failure of the server or the way to it (a
/// connection, the pool), once: the one line a person reads must tell them where to look, and
/// a host may use more than one ledger.
pub(super) fn at_server(shown: &str, e: StoreError) -> StoreError {
    let at = |source: BackendError| -> BackendError {
        if source.is::<AtServer>() {
            return source;
        }
        Box::new(AtServer {
            server: shown.to_string(),
            source,
        })
    };
    match e {
        StoreError::Backend(b) => StoreError::Backend(at(b)),
        StoreError::Pool(b) => StoreError::Pool(at(b)),
        other => other,
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        match e.code() {
            // Class 23: integrity constraint violations (CHECK, UNIQUE, foreign keys, and the
            // audit trail's append-only trigger).
            Some(code) if code.code().starts_with("23") => StoreError::Constraint {
                reason: e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string()),
            },
            // A write that must change a row and would not (`CONSTRAINT_FAILED`, see
            // `Tx::reserve_in_window`): refused like a CHECK.
            Some(code)
                if *code == SqlState::INVALID_TEXT_REPRESENTATION
                    && e.as_db_error()
                        .is_some_and(|d| d.message().contains(CONSTRAINT_FAILED)) =>
            {
                let message = e.as_db_error().map_or("", |d| d.message());
                StoreError::Constraint {
                    reason: message
                        .split_once(CONSTRAINT_FAILED)
                        .map_or(message, |(_, why)| why)
                        .trim_end_matches('"')
                        .to_string(),
                }
            }
            Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => {
                StoreError::Busy { waited_ms: 0 }
            }
            // The driver shows a server error as a bare "db error"; say what the server said
            // (e.g. "FATAL: terminating connection due to administrator command").
            _ => match e.as_db_error() {
                Some(db) => {
                    StoreError::Backend(format!("{}: {}", db.severity(), db.message()).into())
                }
                None => StoreError::Backend(Box::new(e)),
            },
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Pool(Box::new(e))
    }
}

/// Classifies an error met while opening `path`, so the user hears "corrupt" or "read-only"
/// rather than a raw SQLite code.
pub(crate) fn classify_open_error(path: &std::path::Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path,
            reason: e.to_string(),
        },
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly { path },
        Some(ErrorCode::CannotOpen) if is_read_only(&path) => StoreError::ReadOnly { path },
        _ => StoreError::Open {
            path,
            reason: e.to_string(),
        },
    }
}

/// Whether the file (or, if it does not exist, its directory) is not writable by us.
fn is_read_only(path: &std::path::Path) -> bool {
    let target = if path.exists() {
        path.to_path_buf()
    } else {
        match path.parent() {
            Some(p) => p.to_path_buf(),
            None => return false,
        }
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(&target)
        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn an_engine_error_becomes_a_neutral_variant_that_keeps_it_as_source() {
        let engine = rusqlite::Error::InvalidColumnName("nope".into());
        let message = engine.to_string();
        let err = StoreError::from(engine);
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        assert_eq!(err.to_string(), format!("ledger error: {message}"));
        let source = err.source().expect("the engine error stays reachable");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some());
    }
}
