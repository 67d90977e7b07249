//! The daemon's side: group commit for every process on the machine.
//!
//! Each client connection gets a thread that reads one request at a time and hands it to the
//! batcher. The batcher takes whatever requests are waiting, runs them in one write transaction
//! (each inside its own savepoint, so one failure undoes only itself) and commits them with one
//! fsync. While a batch commits, the next one gathers, so the more processes write at once the
//! more each fsync carries, and a request waits for the batch in flight and its own (a batch takes
//! up to 256 requests).

use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use nix::sys::socket::{UnixCredentials, getsockopt, sockopt::PeerCredentials};

use super::convert;
use super::protocol::{
    Envelope, Reply, VERSION, VersionOnly, WireError, read_frame_bytes, write_frame,
};
use super::{DaemonError, lock_path_for, socket_path_for};
use crate::error::Error;
use crate::ledger::{Ledger, Op, Outcome, Queued};
use crate::types::Millis;

/// The most requests one transaction carries: enough to share an fsync among every client of a
/// busy machine, few enough that one batch never holds the writer lock for long.
const MAX_BATCH: usize = 256;

/// The most client connections served at once (a thread each); more are closed on accept, and
/// their clients work on the database directly.
const MAX_CLIENTS: usize = 1024;

/// How long a client connection may stay idle before the server closes it (the client opens a
/// new one when it next writes).
const IDLE_CLIENT: std::time::Duration = std::time::Duration::from_secs(300);

/// One op waiting for the batcher, with the way back to its connection.
struct Job {
    op: Op,
    /// The request's deadline: not started after it.
    start_by: Millis,
    reply: SyncSender<Reply>,
}

/// A running group-commit server. Dropping it stops accepting and removes the socket; the
/// batcher finishes the requests already taken, and open connections close at their next
/// request (whose client then works on the database directly).
#[derive(Debug)]
pub struct Server {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    stats: Arc<Counters>,
    _single: File,
}

/// What the server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServedStats {
    /// Requests answered.
    pub requests: u64,
    /// Transactions (and so fsyncs) they took.
    pub transactions: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    transactions: AtomicU64,
    /// Requests handed to the batcher so far.
    queued: AtomicU64,
}

impl Server {
    /// Serves the ledger's hot-path writes to other processes on a Unix socket beside the
    /// database (`ledger.db.sock`), until dropped. One server per ledger: a second is refused.
    pub fn start(ledger: &Ledger) -> Result<Server, DaemonError> {
        let ledger = ledger.direct();
        let db = ledger.db_path().to_path_buf();
        let socket =
            socket_path_for(&db).ok_or_else(|| DaemonError::PathTooLong { path: db.clone() })?;
        let single = take_single_lock(&db)?;
        // No other server holds the lock, so a socket file left behind is a dead one's.
        let _ = std::fs::remove_file(&socket);
        let listener = bind_private(&socket)?;
        let owner = UnixCredentials::new().uid();

        let (jobs, queue) = mpsc::channel::<Job>();
        let stats = Arc::new(Counters::default());
        let counters = stats.clone();
        let queued = stats.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let withdraw = Withdraw {
            stop: stop.clone(),
            socket: socket.clone(),
        };
        std::thread::Builder::new()
            .name("authledger-batcher".into())
            .spawn(move || {
                let _withdraw = withdraw;
                batcher(&ledger, &queue, &counters);
            })
            .map_err(|source| DaemonError::Io {
                what: "cannot start the batcher".into(),
                source,
            })?;
        let stopping = stop.clone();
        let accept = std::thread::Builder::new()
            .name("authledger-accept".into())
            .spawn(move || accept_loop(&listener, &jobs, &stopping, owner, &queued))
            .map_err(|source| DaemonError::Io {
                what: "cannot start the listener".into(),
                source,
            })?;
        Ok(Server {
            socket,
            stop,
            accept: Some(accept),
            stats,
            _single: single,
        })
    }

    /// Requests answered and the transactions they took so far: their ratio is how many
    /// requests share each fsync.
    pub fn stats(&self) -> ServedStats {
        ServedStats {
            requests: self.stats.requests.load(Ordering::Relaxed),
            transactions: self.stats.transactions.load(Ordering::Relaxed),
        }
    }

    /// The socket clients connect to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the stop flag. Open connections keep their threads
        // (and the batcher) until their clients hang up.
        let woke = UnixStream::connect(&self.socket).is_ok();
        // Clients that look for the socket from now on work on the database directly.
        let _ = std::fs::remove_file(&self.socket);
        if let Some(accept) = self.accept.take()
            && woke
        {
            let _ = accept.join();
        }
    }
}

/// Held by the batcher: if it ever ends while the server is meant to run (a bug made it panic),
/// the server stops taking requests and removes its socket, so clients work directly instead
/// of handing requests to no one.
struct Withdraw {
    stop: Arc<AtomicBool>,
    socket: PathBuf,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            let _ = UnixStream::connect(&self.socket);
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

fn take_single_lock(db: &Path) -> Result<File, DaemonError> {
    let path = lock_path_for(db);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| DaemonError::Io {
            what: format!("cannot open {}", path.display()),
            source,
        })?;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DaemonError::AlreadyServed { db: db.into() }),
        Err(std::fs::TryLockError::Error(source)) => Err(DaemonError::Io {
            what: format!("cannot lock {}", path.display()),
            source,
        }),
    }
}

/// Binds under a temporary name, makes the socket owner-only, then moves it into place, so no
/// client ever sees a socket others could connect to.
fn bind_private(socket: &Path) -> Result<UnixListener, DaemonError> {
    let mut staging = socket.as_os_str().to_owned();
    staging.push(format!(".{}", std::process::id()));
    let staging = PathBuf::from(staging);
    let io = |what: &str, source| DaemonError::Io {
        what: format!("{what} {}", socket.display()),
        source,
    };
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging).map_err(|e| io("cannot bind", e))?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("cannot restrict", e))?;
    std::fs::rename(&staging, socket).map_err(|e| io("cannot publish", e))?;
    Ok(listener)
}

fn accept_loop(
    listener: &UnixListener,
    jobs: &Sender<Job>,
    stop: &Arc<AtomicBool>,
    owner: u32,
    counters: &Arc<Counters>,
) {
    let clients = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // Out of file descriptors, most likely: do not spin.
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_read_timeout(Some(IDLE_CLIENT));
        // Only processes of the ledger's own user may write through it.
        let peer = getsockopt(&stream, PeerCredentials).map(|c| c.uid());
        if peer != Ok(owner) {
            continue;
        }
        if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let jobs = jobs.clone();
        let count = clients.clone();
        let stop = stop.clone();
        let counters = counters.clone();
        let spawned = std::thread::Builder::new()
            .name("authledger-client".into())
            .spawn(move || {
                serve_client(stream, &jobs, &stop, &counters);
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            clients.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// One client: a request, its reply, and so on until it hangs up or the server stops. A
/// request read after the stop is not run: the client sees the connection close and settles it
/// on the database itself.
fn serve_client(stream: UnixStream, jobs: &Sender<Job>, stop: &AtomicBool, counters: &Counters) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let frame = read_frame_bytes(&mut reader).and_then(|body| body.map(parse).transpose());
        let reply = match frame {
            Ok(Some(Err(refusal))) => Err(refusal),
            Ok(Some(_)) if stop.load(Ordering::SeqCst) => return,
            Ok(Some(Ok(envelope))) => {
                // The job holds the only sender: if the batcher dies with it, `recv` fails at
                // once and the client learns the reply is lost without waiting out its timeout.
                let (reply_to, replies) = mpsc::sync_channel(1);
                let job = Job {
                    start_by: envelope.deadline_ms,
                    op: convert::op(envelope.request),
                    reply: reply_to,
                };
                if jobs.send(job).is_err() {
                    return;
                }
                counters.queued.fetch_add(1, Ordering::SeqCst);
                match replies.recv() {
                    Ok(reply) => reply,
                    Err(_) => return,
                }
            }
            Ok(None) => return,
            // A frame that is not a request: say so and hang up, the stream is out of step.
            Err(e) => {
                let refusal: Reply = Err(WireError::Other {
                    exit_code: crate::error::exit::USAGE,
                    message: format!("malformed request to the daemon: {e}"),
                });
                let _ = write_frame(&mut writer, &refusal);
                return;
            }
        };
        if write_frame(&mut writer, &reply).is_err() {
            return;
        }
    }
}

/// A frame's request, or the refusal to send back: another version first, then the shape.
fn parse(body: Vec<u8>) -> std::io::Result<Result<Envelope, WireError>> {
    let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let version: VersionOnly = serde_json::from_slice(&body).map_err(invalid)?;
    if version.v != VERSION {
        return Ok(Err(WireError::Version { served: VERSION }));
    }
    serde_json::from_slice(&body).map(Ok).map_err(invalid)
}

fn batcher(ledger: &Ledger, queue: &Receiver<Job>, counters: &Counters) {
    // A test's stand-in for a slow first commit: requests wait until `n` have queued, as they
    // would behind a batch that took that long, and the batch below takes what waits.
    if let Some(n) = crate::fault::count("daemon:hold-until-queued") {
        while counters.queued.load(Ordering::SeqCst) < n {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    while let Ok(first) = queue.recv() {
        crate::fault::panic_point("daemon:batcher-panic");
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let queued: Vec<Queued<'_>> = batch
            .iter()
            .map(|j| Queued {
                op: &j.op,
                start_by: j.start_by,
            })
            .collect();
        let replies = replies(ledger.commit_together(&queued), batch.len());
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        counters
            .requests
            .fetch_add(replies.len() as u64, Ordering::Relaxed);
        // Committed, not yet answered: the moment a client cannot tell what happened.
        crate::fault::point("daemon:before-reply");
        for (job, reply) in batch.into_iter().zip(replies) {
            let _ = job.reply.send(reply);
        }
    }
}

/// The replies to a batch of `n` ops: each op's own, or the failed commit's for all of them.
fn replies(done: Result<Vec<Option<Result<Outcome, Error>>>, Error>, n: usize) -> Vec<Reply> {
    match done {
        Ok(results) => results
            .into_iter()
            .map(|result| match result {
                None => Err(WireError::Expired),
                Some(Ok(outcome)) => Ok(convert::outcome_to_wire(outcome)),
                Some(Err(e)) => Err(convert::error_to_wire(&e)),
            })
            .collect(),
        Err(e) => {
            let failure = convert::error_to_wire(&e);
            (0..n).map(|_| Err(failure.clone())).collect()
        }
    }
}
