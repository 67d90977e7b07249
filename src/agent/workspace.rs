//! Per-lease private directories (`<ledger dir>/agents/<lease id>/`, mode 0700), removed when
//! the lease ends.

use std::path::{Path, PathBuf};

use crate::paths;
use crate::types::LeaseId;

/// The lease's private directory beside the database.
pub fn lease_dir(db_path: &Path, id: &LeaseId) -> PathBuf {
    paths::lease_dir(db_path, id.as_str())
}

/// Removes a lease's private directory, if any. Best effort: a directory that cannot be
/// removed holds only that lease's copies of a credential, 0600 in a 0700 directory.
pub fn remove_lease_dir(db_path: &Path, id: &LeaseId) {
    let dir = lease_dir(db_path, id);
    if dir.exists() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The leases that have a private directory beside the database. List these first, then ask
/// the ledger which of them ended: a lease granted after the listing cannot be swept by mistake.
pub fn lease_dirs(db_path: &Path) -> Vec<LeaseId> {
    let root = paths::lease_root(db_path);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| LeaseId::parse(n).ok()))
        .collect()
}
