//! Schema versions: migrate an older ledger in place, refuse a newer one.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The highest `V<n>__` among the files in `migrations/`, read from disk rather than
    /// from what the build embedded.
    fn newest_migration_file() -> i64 {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join("sqlite");
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                let rest = name.strip_prefix('V')?;
                let (n, _) = rest.split_once("__")?;
                n.parse::<i64>().ok()
            })
            .max()
            .expect("migrations/ holds V<n>__*.sql files")
    }

    #[test]
    fn all_migrations_bring_a_fresh_database_to_the_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db");
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(current_version(&conn).unwrap(), 0);
        assert!(check(&conn, &path).unwrap(), "a fresh file needs migrating");
        run(&mut conn, &path).unwrap();
        let newest = newest_migration_file();
        assert_eq!(current_version(&conn).unwrap(), newest);
        assert_eq!(latest_version(), newest);
        assert!(!check(&conn, &path).unwrap(), "nothing left to apply");
    }
}
