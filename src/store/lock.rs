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
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::StoreError;

/// Open handles to one lock file, kept between writes: opening and closing the file cost about
/// as much as a small transaction's statements. Each handle is its own open file description,
/// so threads of one process exclude each other exactly as processes do.
#[derive(Debug)]
pub struct LockFiles {
    path: PathBuf,
    idle: Mutex<Vec<File>>,
}

/// How many idle handles a process keeps: one per concurrently writing thread is plenty.
const KEEP_IDLE: usize = 4;

impl LockFiles {
    /// Handles to the lock file at `path` (created on first use).
    pub fn new(path: PathBuf) -> Arc<LockFiles> {
        Arc::new(LockFiles {
            path,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Blocks until this process is the ledger's only writer, or `deadline` has passed.
    pub fn acquire(self: &Arc<Self>, deadline: Duration) -> Result<WriteLock, StoreError> {
        let file = self.handle()?;
        match file.try_lock() {
            Ok(()) => return Ok(self.held(file)),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(source)) => return Err(lock_error(self.path.clone(), source)),
        }
        let started = Instant::now();
        let (tx, rx) = mpsc::sync_channel::<std::io::Result<File>>(1);
        std::thread::spawn(move || {
            let result = file.lock().map(|()| file);
            // If the caller gave up, `send` fails and the file (and its lock) is dropped here.
            let _ = tx.send(result);
        });
        match rx.recv_timeout(deadline) {
            Ok(Ok(file)) => Ok(self.held(file)),
            Ok(Err(source)) => Err(lock_error(self.path.clone(), source)),
            Err(_) => Err(StoreError::Busy {
                waited_ms: started.elapsed().as_millis() as u64,
            }),
        }
    }

    /// A kept handle, if it is still to the file at the path (someone may have deleted and
    /// recreated it: locking the old one would exclude nobody), else a new one.
    fn handle(&self) -> Result<File, StoreError> {
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(file) = kept
            && let (Ok(open), Ok(named)) = (file.metadata(), std::fs::metadata(&self.path))
            && (open.dev(), open.ino()) == (named.dev(), named.ino())
        {
            return Ok(file);
        }
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)
            .map_err(|source| lock_error(self.path.clone(), source))
    }

    fn held(self: &Arc<Self>, file: File) -> WriteLock {
        WriteLock {
            file: Some(file),
            home: self.clone(),
        }
    }
}

/// A held write lock; dropping it lets the next writer in.
#[derive(Debug)]
pub struct WriteLock {
    file: Option<File>,
    home: Arc<LockFiles>,
}

impl WriteLock {
    /// [`LockFiles::acquire`] on a lock file used once (opening and migrating the ledger).
    pub fn acquire(path: &Path, deadline: Duration) -> Result<WriteLock, StoreError> {
        LockFiles::new(path.to_path_buf()).acquire(deadline)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let Some(file) = self.file.take() else { return };
        // Unlocked, the handle is kept for the next write; if unlocking fails, closing it (the
        // drop) releases the lock all the same.
        if file.unlock().is_ok()
            && let Ok(mut idle) = self.home.idle.lock()
            && idle.len() < KEEP_IDLE
        {
            idle.push(file);
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
    fn kept_handles_exclude_threads_and_follow_a_recreated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let locks = LockFiles::new(path.clone());
        drop(locks.acquire(Duration::from_secs(1)).unwrap());
        // The kept handle and a second one from the same pool exclude each other.
        let held = locks.acquire(Duration::from_secs(1)).unwrap();
        let err = locks.acquire(Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, StoreError::Busy { .. }), "{err}");
        drop(held);
        // Someone deletes the lock file and another process creates it afresh: a kept handle
        // to the old file would exclude nobody, so the pool opens the new one.
        std::fs::remove_file(&path).unwrap();
        let other = WriteLock::acquire(&path, Duration::from_secs(1)).unwrap();
        let err = locks.acquire(Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, StoreError::Busy { .. }), "{err}");
        drop(other);
        locks.acquire(Duration::from_secs(1)).unwrap();
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
