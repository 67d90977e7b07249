//! Private files and directories: the ledger holds quotas today and credentials next, so
//! nothing it creates is readable by other users.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::StoreError;

/// Creates `dir` (and missing parents) with mode 0700. An existing directory is left as it is:
/// it may be shared (`/tmp`), and `doctor` reports one that is too open.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Permissions {
            path: dir.to_path_buf(),
            source,
        })
}

/// Creates `path` empty with mode 0600 if it does not exist yet, so SQLite (which copies the
/// database's mode to its `-wal` and `-shm` files) never creates it world-readable.
pub fn ensure_private_file(path: &Path) -> Result<(), StoreError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(StoreError::ReadOnly {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(StoreError::Permissions {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Removes group and other permissions from files that exist, in case they were created
/// before or by another program. Only bits are taken away: a file its owner made read-only
/// stays read-only. Failures are ignored: a file we may not chmod is one `doctor` reports.
pub fn tighten(paths: &[&Path]) {
    for p in paths {
        if let Ok(meta) = fs::metadata(p) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let _ = fs::set_permissions(p, Permissions::from_mode(mode & 0o700));
            }
        }
    }
}

/// The permission bits of a file, for `doctor`.
pub fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}
