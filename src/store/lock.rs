//! The cross-process writer queue.
//!
//! SQLite's own busy handler polls with sleeps; under contention a process can lose every race
//! for seconds. Writers therefore first take an exclusive `flock` on a lock file beside the
//! database: the kernel blocks waiters without polling and wakes one as soon as the holder lets
//! go, so the lock passes hand to hand. SQLite's busy timeout stays underneath as a backstop for
//! writers that do not use this queue (the `sqlite3` shell, a backup tool).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// A held write lock; dropping it (closing the file) lets the next writer in.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Blocks until this process is the ledger's only writer.
    pub fn acquire(path: &Path) -> Result<WriteLock, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| lock_error(path.to_path_buf(), source))?;
        file.lock()
            .map_err(|source| lock_error(path.to_path_buf(), source))?;
        Ok(WriteLock { _file: file })
    }
}

fn lock_error(path: PathBuf, source: std::io::Error) -> StoreError {
    if source.kind() == std::io::ErrorKind::PermissionDenied
        || source.raw_os_error() == Some(30 /* EROFS */)
    {
        StoreError::ReadOnly { path }
    } else {
        StoreError::Lock { path, source }
    }
}
