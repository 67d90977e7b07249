//! The cross-process writer queue.
//!
//! SQLite's own busy handler polls with sleeps; under contention a process can lose every race
//! for seconds. Writers therefore first take an exclusive `flock` on a lock file beside the
//! database: the kernel blocks waiters without polling and wakes one as soon as the holder lets
//! go, so the lock passes hand to hand. SQLite's busy timeout stays underneath as a backstop for
//! writers that do not use this queue (the `sqlite3` shell, a backup tool).
//!
//! The wait is bounded: an uncontended lock is taken on the spot; a contended one is waited
//! for by a helper thread in the kernel's queue, and a caller that runs out of patience
//! (a stopped or hung holder) gets [`StoreError::Busy`] instead of hanging. If the helper wins
//! the lock after its caller gave up, it lets go at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::StoreError;

/// A held write lock; dropping it (closing the file) lets the next writer in.
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Blocks until this process is the ledger's only writer, or `deadline` has passed.
    pub fn acquire(path: &Path, deadline: Duration) -> Result<WriteLock, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| lock_error(path.to_path_buf(), source))?;
        match file.try_lock() {
            Ok(()) => return Ok(WriteLock { _file: file }),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(source)) => return Err(lock_error(path.to_path_buf(), source)),
        }
        let started = Instant::now();
        let (tx, rx) = mpsc::sync_channel::<std::io::Result<File>>(1);
        std::thread::spawn(move || {
            let result = file.lock().map(|()| file);
            // If the caller gave up, `send` fails and the file (and its lock) is dropped here.
            let _ = tx.send(result);
        });
        match rx.recv_timeout(deadline) {
            Ok(Ok(file)) => Ok(WriteLock { _file: file }),
            Ok(Err(source)) => Err(lock_error(path.to_path_buf(), source)),
            Err(_) => Err(StoreError::Busy {
                waited_ms: started.elapsed().as_millis() as u64,
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_makes_others_wait_then_gives_busy_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let held = WriteLock::acquire(&path, Duration::from_secs(1)).unwrap();
        let err = WriteLock::acquire(&path, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, StoreError::Busy { .. }), "{err}");
        drop(held);
        // The abandoned waiter let go: the lock is free again.
        WriteLock::acquire(&path, Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn a_waiter_gets_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let held = WriteLock::acquire(&path, Duration::from_secs(1)).unwrap();
        let p = path.clone();
        let waiter =
            std::thread::spawn(move || WriteLock::acquire(&p, Duration::from_secs(10)).is_ok());
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        assert!(waiter.join().unwrap());
    }
}
