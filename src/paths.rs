//! Where the ledger's files are: its home, the database, the key file, the per-lease
//! directories, the daemon's socket and lock, and `config.toml`. A leaf: it imports nothing
//! from the crate, and every other module asks it rather than joining names of its own.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The directory holding the ledger's own files: `AUTHLEDGER_HOME` if set, else `None` (the
/// XDG directories apply).
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("AUTHLEDGER_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The XDG directories of `authledger`, used when no home is set.
fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "authledger")
}

/// The database path: `--db`, else `AUTHLEDGER_DB`, else `AUTHLEDGER_HOME/ledger.db`, else the
/// XDG data directory.
pub fn resolve_db_path(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("AUTHLEDGER_DB").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(home) = home_dir() {
        return Some(home.join("ledger.db"));
    }
    project_dirs().map(|d| d.data_dir().join("ledger.db"))
}

/// The default key file: `$AUTHLEDGER_HOME/keys/master.key`, else the XDG config directory's
/// `master.key`. Kept apart from the database so a copy of the data directory does not carry
/// the key with it.
pub fn default_key_path() -> Option<PathBuf> {
    if let Some(home) = home_dir() {
        return Some(home.join("keys").join("master.key"));
    }
    project_dirs().map(|d| d.config_dir().join("master.key"))
}

/// The key file a rotation gives a ledger: beside the configured one, named after the key
/// id (`master-<id>.key`).
pub fn key_for_id(configured: &Path, id: &str) -> PathBuf {
    let stem = configured.file_stem().map_or_else(
        || "master".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    configured.with_file_name(format!("{stem}-{id}.key"))
}

/// The configuration file's location: `$AUTHLEDGER_HOME/config.toml`, else the XDG config dir.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(home) = home_dir() {
        return Some(home.join("config.toml"));
    }
    project_dirs().map(|d| d.config_dir().join("config.toml"))
}

/// The directory holding every lease's private directory: `agents/` beside the database.
pub fn lease_root(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new(".")).join("agents")
}

/// One lease's private directory, `agents/<lease>/` beside the database.
pub fn lease_dir(db: &Path, lease: &str) -> PathBuf {
    lease_root(db).join(lease)
}

/// A file beside the database named after it: the database's name with `suffix` appended
/// (`-wal`, `-shm`, `.lock`, …).
pub fn sidecar(db: &Path, suffix: impl AsRef<OsStr>) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The file the store locks to let one writer in at a time.
pub fn store_lock(db: &Path) -> PathBuf {
    sidecar(db, ".lock")
}

/// The file a serving daemon holds locked, so there is never more than one per ledger.
pub fn daemon_lock(db: &Path) -> PathBuf {
    sidecar(db, ".daemon")
}

/// Where a running gateway writes its URL (`ledger.db.gateway`), for `authledger env`.
pub fn gateway_url_file(db: &Path) -> PathBuf {
    sidecar(db, ".gateway")
}

/// The price table `prices update` put in force for this ledger (`ledger.db.prices.json`);
/// without it the snapshot built into the binary applies.
pub fn prices_file(db: &Path) -> PathBuf {
    sidecar(db, ".prices.json")
}

/// Unix socket addresses hold 108 bytes on Linux, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

/// The daemon's socket beside the database, or `None` when its path is too long to bind.
pub fn daemon_socket(db: &Path) -> Option<PathBuf> {
    let s = sidecar(db, ".sock");
    // The server binds under a staging name a few bytes longer (".<pid>").
    (s.as_os_str().len() + 8 <= MAX_SOCKET_PATH).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_beside_the_database_are_named_after_it() {
        let db = Path::new("/x/ledger.db");
        assert_eq!(lease_dir(db, "l1"), Path::new("/x/agents/l1"));
        assert_eq!(store_lock(db), Path::new("/x/ledger.db.lock"));
        assert_eq!(daemon_lock(db), Path::new("/x/ledger.db.daemon"));
        assert_eq!(daemon_socket(db).unwrap(), Path::new("/x/ledger.db.sock"));
        let long = PathBuf::from(format!("/{}/ledger.db", "d".repeat(100)));
        assert_eq!(daemon_socket(&long), None);
        let key = Path::new("/k/keys/master.key");
        assert_eq!(
            key_for_id(key, "ab12"),
            Path::new("/k/keys/master-ab12.key")
        );
    }
}
