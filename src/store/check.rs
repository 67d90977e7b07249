//! What `doctor` and `init` learn about a store, in terms any store can answer.

use std::path::PathBuf;

/// A store's health, gathered in one call so the CLI never runs SQL or pragmas itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCheck {
    /// The schema version recorded in the database.
    pub schema_version: i64,
    /// The newest schema version this build knows; anything else is a problem.
    pub supported_version: i64,
    /// `None` when the engine finds the stored data sound, else the first problem it names.
    pub integrity: Option<String>,
    /// What only this kind of store can say about itself (SQLite: its journal mode; a
    /// server: its version and latency), one line each, in the order to show them.
    pub facts: Vec<StoreFact>,
    /// The local files that make up the store, for the permission checks (none for a store
    /// on a server).
    pub files: Vec<PathBuf>,
}

impl StoreCheck {
    /// Whether the database is at the schema this build writes.
    pub fn schema_current(&self) -> bool {
        self.schema_version == self.supported_version
    }
}

/// One store-specific line of `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFact {
    /// Its name in the `check` column.
    pub check: String,
    /// Whether it is as it should be.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}
