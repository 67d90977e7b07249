//! A ledger's side of the daemon's socket: a few kept-open connections, used when the socket
//! answers.

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::protocol::{Envelope, Reply, Request, VERSION, WireError, read_frame, write_frame};
use super::socket_path_for;

/// How a call through the daemon went.
#[derive(Debug)]
pub(crate) enum Call {
    /// No daemon serves this ledger (or it does not take this ledger's calls): work directly.
    NoDaemon,
    /// The daemon answered.
    Replied(Box<Reply>),
    /// The daemon took the request and went away (or stopped answering) before replying: it
    /// may or may not have committed. The caller settles this from the ledger itself.
    Lost,
}

/// How long a ledger that found no daemon works directly before looking again. Looking costs
/// three system calls, a tenth of a small transaction, so it is not done on every write; a
/// daemon started meanwhile is picked up within this time.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The way to a daemon, if one serves the ledger.
#[derive(Debug)]
pub(crate) struct DaemonLink {
    socket: Option<PathBuf>,
    timeout: Duration,
    idle: Mutex<Vec<BufReader<UnixStream>>>,
    /// Until when to work directly, after finding no daemon.
    direct_until: Mutex<Option<Instant>>,
}

impl DaemonLink {
    /// A link to the daemon of the database at `db`; `enabled: false` never uses one.
    pub(crate) fn new(db: &std::path::Path, enabled: bool, timeout: Duration) -> Self {
        DaemonLink {
            socket: if enabled { socket_path_for(db) } else { None },
            timeout,
            idle: Mutex::new(Vec::new()),
            direct_until: Mutex::new(None),
        }
    }

    /// Whether this ledger hands writes to a daemon when one serves.
    pub(crate) fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends one request and waits for its reply.
    pub(crate) fn call(&self, request: Request) -> Call {
        let Some(socket) = &self.socket else {
            return Call::NoDaemon;
        };
        self.send(
            socket,
            &Envelope {
                v: VERSION,
                request,
            },
        )
    }

    fn send(&self, socket: &std::path::Path, envelope: &Envelope) -> Call {
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let (mut conn, fresh) = match kept {
            Some(conn) => (conn, false),
            None => {
                if self.recently_absent() {
                    return Call::NoDaemon;
                }
                match UnixStream::connect(socket) {
                    Ok(s) => {
                        // A daemon stopped with SIGSTOP must not hang its clients forever.
                        let _ = s.set_read_timeout(Some(self.timeout));
                        let _ = s.set_write_timeout(Some(self.timeout));
                        (BufReader::new(s), true)
                    }
                    Err(_) => {
                        self.note_absent();
                        return Call::NoDaemon;
                    }
                }
            }
        };
        match exchange(&mut conn, envelope) {
            // A daemon of another version did nothing: work directly until it is replaced.
            Ok(Err(WireError::Version { .. })) => {
                self.note_absent();
                Call::NoDaemon
            }
            Ok(reply) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(conn);
                }
                Call::Replied(Box::new(reply))
            }
            // A kept connection may be to a daemon that has since stopped; a fresh one
            // tells us whether one serves now.
            Err(Failure::NotSent) if !fresh => self.send(socket, envelope),
            Err(Failure::NotSent) => {
                self.note_absent();
                Call::NoDaemon
            }
            // Whatever happened to the daemon, work directly for a while.
            Err(Failure::NoReply) => {
                self.note_absent();
                Call::Lost
            }
        }
    }
}

impl DaemonLink {
    fn recently_absent(&self) -> bool {
        self.direct_until
            .lock()
            .ok()
            .and_then(|until| *until)
            .is_some_and(|until| Instant::now() < until)
    }

    fn note_absent(&self) {
        if let Ok(mut until) = self.direct_until.lock() {
            *until = Some(Instant::now() + PROBE_EVERY);
        }
    }
}

enum Failure {
    /// Nothing reached the daemon.
    NotSent,
    /// The request was sent; no reply came back.
    NoReply,
}

fn exchange(conn: &mut BufReader<UnixStream>, envelope: &Envelope) -> Result<Reply, Failure> {
    write_frame(conn.get_mut(), envelope).map_err(|_| Failure::NotSent)?;
    match read_frame::<Reply>(conn) {
        Ok(Some(reply)) => Ok(reply),
        _ => Err(Failure::NoReply),
    }
}
