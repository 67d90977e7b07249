//! Per-lease private directories (`<ledger dir>/agents/<lease id>/`, mode 0700), removed when
//! the lease ends.

use std::path::{Path, PathBuf};

use crate::types::LeaseId;

/// The lease's private directory beside the database.
pub fn lease_dir(db_path: &Path, id: &LeaseId) -> PathBuf {
    db_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("agents")
        .join(id.as_str())
}

/// Removes a lease's private directory, if any. Best effort: a directory that cannot be
/// removed holds only that lease's copies of a credential, 0600 in a 0700 directory.
pub fn remove_lease_dir(db_path: &Path, id: &LeaseId) {
    let dir = lease_dir(db_path, id);
    if dir.exists() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes the private directories of every lease not in `active`.
pub fn sweep_lease_dirs(db_path: &Path, active: &[LeaseId]) {
    let root = db_path.parent().unwrap_or(Path::new(".")).join("agents");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let keep = name
            .to_str()
            .and_then(|n| LeaseId::parse(n).ok())
            .is_some_and(|id| active.contains(&id));
        if !keep && LeaseId::parse(&name.to_string_lossy()).is_ok() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
