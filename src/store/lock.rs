//! The cross-process writer queue: first come, first served.
//!
//! SQLite's own busy handler polls with sleeps; under contention a process can lose every race
//! for seconds. A plain `flock` is better (the kernel blocks waiters without polling) but still
//! unfair: it wakes every waiter at once and whoever runs first wins, so a writer that comes
//! straight back can win again and again while another waits for hundreds of milliseconds.
//!
//! So writers queue by ticket, in the lock file beside the database. Bytes 0..8 hold the next
//! ticket number; taking one is a few microseconds under a lock on those bytes. Ticket `t`
//! then locks its own byte (`BATON + t`) and waits for the byte of ticket `t - 1`: each writer
//! waits for exactly its predecessor, who lets go of its byte when its transaction ends, and
//! the kernel releases the byte of a writer that dies. The locks are open-file-description
//! locks (`F_OFD_SETLK`), so threads of one process queue like processes do. SQLite's own
//! write lock stays underneath: the queue decides the order, SQLite still guarantees there is
//! one writer, and its busy timeout covers writers that do not queue (the `sqlite3` shell).
//!
//! The wait is bounded: a free queue is passed on the spot; otherwise a helper thread waits in
//! the kernel for the predecessor, and a caller that runs out of patience (a stopped or hung
//! holder ahead) gets [`StoreError::Busy`] instead of hanging. Its helper still waits its turn
//! and then passes the baton on at once, so nobody behind it is stuck.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, fcntl};

use super::StoreError;

/// Bytes 0..8 of the lock file: the next ticket, little-endian. Locked while a ticket is taken.
const COUNTER: (i64, i64) = (0, 8);

/// Ticket `t`'s byte is `BATON + t`.
const BATON: i64 = 64;

/// Open handles to one lock file, kept between writes: opening and closing the file cost about
/// as much as a small transaction's statements.
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

    /// Blocks until every writer that queued earlier is done and this one may write, or
    /// `deadline` has passed.
    pub fn acquire(self: &Arc<Self>, deadline: Duration) -> Result<WriteLock, StoreError> {
        let started = Instant::now();
        let file = self.handle()?;
        let ticket = self.take_ticket(&file, started, deadline)?;
        let held = |file| WriteLock {
            file: Some(file),
            ticket,
            home: self.clone(),
        };
        // The first ticket, or a predecessor already done (or dead): go at once.
        if ticket == 0 || self.wait_for(&file, ticket - 1, false)? {
            return Ok(held(file));
        }
        let (tx, rx) = mpsc::sync_channel::<Result<File, StoreError>>(1);
        let home = self.clone();
        std::thread::spawn(move || {
            let result = home.wait_for(&file, ticket - 1, true).map(|_| file);
            // If the caller gave up, `send` fails and the file is dropped here, which releases
            // this ticket's byte: whoever is behind goes on.
            let _ = tx.send(result);
        });
        match rx.recv_timeout(deadline.saturating_sub(started.elapsed())) {
            Ok(Ok(file)) => Ok(held(file)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Busy {
                waited_ms: started.elapsed().as_millis() as u64,
            }),
        }
    }

    /// Takes the next ticket and locks its byte, under the counter's lock.
    fn take_ticket(
        &self,
        file: &File,
        started: Instant,
        deadline: Duration,
    ) -> Result<i64, StoreError> {
        // Held for a few microseconds by anyone: poll rather than block, so a writer stopped
        // right here cannot hang the others past their deadline.
        while !self.range(file, COUNTER, Lock::Write, false)? {
            if started.elapsed() >= deadline {
                return Err(StoreError::Busy {
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        let taken = (|| {
            let mut buf = [0u8; 8];
            let n = file
                .read_at(&mut buf, 0)
                .map_err(|e| lock_error(self.path.clone(), e))?;
            let mut ticket = if n == 8 {
                i64::from_le_bytes(buf).clamp(0, i64::MAX / 2)
            } else {
                0
            };
            // Nobody else has this ticket, so its byte is free, unless the counter was reset
            // under live writers (the file truncated or recreated): then skip to a free one.
            while !self.range(file, (BATON + ticket, 1), Lock::Write, false)? {
                ticket += 1;
            }
            file.write_all_at(&(ticket + 1).to_le_bytes(), 0)
                .map_err(|e| lock_error(self.path.clone(), e))?;
            Ok(ticket)
        })();
        self.range(file, COUNTER, Lock::Unlock, false)?;
        taken
    }

    /// Waits until `ticket`'s holder is done (its byte is free) and takes the byte, to be freed
    /// with this writer's own when it is done. `Ok(false)`: not yet, and `block` was false.
    fn wait_for(&self, file: &File, ticket: i64, block: bool) -> Result<bool, StoreError> {
        self.range(file, (BATON + ticket, 1), Lock::Write, block)
    }

    /// Locks, or unlocks, a byte range with an open-file-description lock. `Ok(false)`: held
    /// by someone else and `block` was false.
    fn range(
        &self,
        file: &File,
        (start, len): (i64, i64),
        how: Lock,
        block: bool,
    ) -> Result<bool, StoreError> {
        let l_type = match how {
            Lock::Write => nix::libc::F_WRLCK,
            Lock::Unlock => nix::libc::F_UNLCK,
        };
        let spec = nix::libc::flock {
            l_type: l_type as nix::libc::c_short,
            l_whence: nix::libc::SEEK_SET as nix::libc::c_short,
            l_start: start,
            l_len: len,
            l_pid: 0,
        };
        loop {
            let arg = if block {
                FcntlArg::F_OFD_SETLKW(&spec)
            } else {
                FcntlArg::F_OFD_SETLK(&spec)
            };
            match fcntl(file, arg) {
                Ok(_) => return Ok(true),
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) if !block => {
                    return Ok(false);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(lock_error(self.path.clone(), std::io::Error::from(e))),
            }
        }
    }

    /// A kept handle, if it is still to the file at the path (someone may have deleted and
    /// recreated it: queueing in the old one would order nobody), else a new one.
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
}

#[derive(Clone, Copy)]
enum Lock {
    Write,
    Unlock,
}

/// A held place at the head of the queue; dropping it lets the next writer in.
#[derive(Debug)]
pub struct WriteLock {
    file: Option<File>,
    ticket: i64,
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
        // Freeing this ticket's byte (and the predecessor's, taken while waiting) lets the next
        // writer in. The handle is kept for the next write; if unlocking fails, closing it (the
        // drop) releases the bytes all the same.
        let first = (self.ticket - 1).max(0);
        let freed = self.home.range(
            &file,
            (BATON + first, self.ticket - first + 1),
            Lock::Unlock,
            false,
        );
        if matches!(freed, Ok(true))
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
    fn writers_get_the_lock_in_the_order_they_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let locks = LockFiles::new(path.clone());
        let held = locks.acquire(Duration::from_secs(1)).unwrap();
        let next_ticket = || {
            let mut buf = [0u8; 8];
            File::open(&path).unwrap().read_at(&mut buf, 0).unwrap();
            i64::from_le_bytes(buf)
        };
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 1..=4 {
            let (locks, order) = (locks.clone(), order.clone());
            waiters.push(std::thread::spawn(move || {
                let turn = locks.acquire(Duration::from_secs(30)).unwrap();
                order.lock().unwrap().push(i);
                drop(turn);
            }));
            // The next waiter queues only once this one holds its ticket.
            while next_ticket() <= i {
                std::thread::yield_now();
            }
        }
        drop(held);
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [1, 2, 3, 4]);
    }

    #[test]
    fn a_waiter_gets_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let held = WriteLock::acquire(&path, Duration::from_secs(1)).unwrap();
        let p = path.clone();
        let (got, lock_taken) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let ok = WriteLock::acquire(&p, Duration::from_secs(60)).is_ok();
            let _ = got.send(ok);
        });
        // The waiter has queued (its ticket is taken) ...
        while next_ticket(&path) < 2 {
            std::thread::yield_now();
        }
        // ... and while the lock is held it does not get it: a waiter let through would say
        // so within this bound; a blocked one cannot.
        assert_eq!(
            lock_taken.recv_timeout(Duration::from_millis(300)),
            Err(mpsc::RecvTimeoutError::Timeout),
            "the waiter got the lock while it was held"
        );
        drop(held);
        assert_eq!(lock_taken.recv(), Ok(true));
        waiter.join().unwrap();
    }

    /// The next ticket the lock file would hand out.
    fn next_ticket(path: &Path) -> i64 {
        let mut buf = [0u8; 8];
        File::open(path).unwrap().read_at(&mut buf, 0).unwrap();
        i64::from_le_bytes(buf)
    }
}
