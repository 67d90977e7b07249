//! Schema versions: migrate an older ledger in place, refuse a newer one.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// The schema version recorded in the file (0 for a fresh file).
pub fn current_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    let has_history: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history') AS present",
        [],
        |r| r.get("present"),
    )?;
    if !has_history {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) AS version FROM refinery_schema_history",
        [],
        |r| r.get("version"),
    )
}

/// Whether the file needs migrating; errors for a file from a newer authledger.
pub fn check(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    let found = current_version(conn).map_err(|e| super::error::classify_open_error(path, e))?;
    let supported = latest_version();
    if found > supported {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    Ok(found < supported)
}

/// Applies every pending migration, all in one transaction.
pub fn run(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    embedded::migrations::runner()
        .set_grouped(true)
        .run(conn)
        .map(|_| ())
        .map_err(|e| StoreError::Migrate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}
