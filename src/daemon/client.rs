//! A ledger's side of the daemon's socket: a few kept-open connections, used when the socket
//! answers. [`Client`] is a [`Committer`]: the host hands it to the ledger at open
//! ([`LedgerConfig::with_committer`](crate::LedgerConfig::with_committer)), and the ledger
//! commits its hot-path ops through it, settling on its own store whatever the daemon did not
//! answer.

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::socket::{UnixCredentials, getsockopt, sockopt::PeerCredentials};

use super::convert;
use super::protocol::{Envelope, Reply, Request, VERSION, WireError, read_frame, write_frame};
use super::socket_path_for;
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::ledger::{Committer, Handoff, Op};

/// How a call through the daemon went.
#[derive(Debug)]
enum Call {
    /// No daemon serves this ledger, or it did not do the request: work directly.
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

/// A request the daemon has not started within this time is not started at all (its deadline
/// travels with it), so the client may do it itself.
const REQUEST_BUDGET: Duration = Duration::from_secs(10);

/// How much longer than the budget a client waits for the reply: room for the batch that
/// started the request in time to commit. Only a commit slower than this could still land
/// after the client has moved on.
const REPLY_GRACE: Duration = Duration::from_secs(5);

/// How long a ledger works directly after its daemon failed to answer in time.
const AFTER_SILENCE: Duration = Duration::from_secs(30);

/// Replaces the 15 s a client waits for its reply (budget and grace together, in
/// milliseconds), so a test of a hung daemon need not wait that long. The budget keeps its
/// two thirds of the whole.
const TIMEOUT_VAR: &str = "AUTHLEDGER_DAEMON_TIMEOUT_MS";

/// How long a request may wait to be started, and how long the client waits for its reply.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    budget: Duration,
    reply: Duration,
}

impl Timeouts {
    fn from_env() -> Self {
        let set = std::env::var(TIMEOUT_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0);
        match set {
            Some(ms) => Timeouts {
                budget: Duration::from_millis(ms.saturating_mul(2) / 3),
                reply: Duration::from_millis(ms),
            },
            None => Timeouts {
                budget: REQUEST_BUDGET,
                reply: REQUEST_BUDGET + REPLY_GRACE,
            },
        }
    }
}

/// The way to the daemon serving a ledger's database, if one serves: the committer that sends
/// a ledger's hot-path ops there (group commit). With no daemon, one of another version, or one
/// too busy to start an op in time, it declines and the ledger commits the op itself; a daemon
/// that took an op and went away leaves the ledger to settle it.
#[derive(Debug)]
pub struct Client {
    socket: Option<PathBuf>,
    idle: Mutex<Vec<BufReader<UnixStream>>>,
    /// Until when to work directly, after finding no daemon.
    direct_until: Mutex<Option<Instant>>,
    timeouts: Timeouts,
}

impl Client {
    /// The client of the daemon serving the database at `db`. Only a ledger on the wall clock
    /// should use it: the daemon's transactions run on the wall clock.
    pub fn new(db: &Path) -> Self {
        Client {
            socket: socket_path_for(db),
            idle: Mutex::new(Vec::new()),
            direct_until: Mutex::new(None),
            timeouts: Timeouts::from_env(),
        }
    }

    /// Sends one request and waits for its reply.
    fn call(&self, request: Request) -> Call {
        let Some(socket) = &self.socket else {
            return Call::NoDaemon;
        };
        let budget = i64::try_from(self.timeouts.budget.as_millis()).unwrap_or(i64::MAX / 2);
        let envelope = Envelope {
            v: VERSION,
            deadline_ms: SystemClock.now_ms().saturating_add(budget),
            request,
        };
        self.send(socket, &envelope)
    }

    fn send(&self, socket: &Path, envelope: &Envelope) -> Call {
        let kept = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let (mut conn, fresh) = match kept {
            Some(conn) => (conn, false),
            None => {
                if self.recently_absent() {
                    return Call::NoDaemon;
                }
                match connect(socket, self.timeouts.reply) {
                    Some(conn) => (conn, true),
                    None => {
                        self.work_directly_for(PROBE_EVERY);
                        return Call::NoDaemon;
                    }
                }
            }
        };
        match exchange(&mut conn, envelope) {
            // A daemon of another version did nothing: work directly until it is replaced.
            Ok(Err(WireError::Version { .. })) => {
                self.work_directly_for(PROBE_EVERY);
                Call::NoDaemon
            }
            // Too busy to start it in time: it did nothing, and will not.
            Ok(Err(WireError::Expired)) => {
                self.work_directly_for(AFTER_SILENCE);
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
                self.work_directly_for(PROBE_EVERY);
                Call::NoDaemon
            }
            // Whatever happened to the daemon, work directly for a while.
            Err(Failure::NoReply) => {
                self.work_directly_for(AFTER_SILENCE);
                Call::Lost
            }
        }
    }

    fn recently_absent(&self) -> bool {
        self.direct_until
            .lock()
            .ok()
            .and_then(|until| *until)
            .is_some_and(|until| Instant::now() < until)
    }

    fn work_directly_for(&self, pause: Duration) {
        if let Ok(mut until) = self.direct_until.lock() {
            *until = Some(Instant::now() + pause);
        }
    }
}

impl Committer for Client {
    fn commit(&self, op: &Op) -> Handoff {
        let reply = match self.call(convert::request(op)) {
            Call::NoDaemon => return Handoff::Declined,
            Call::Lost => return Handoff::Unknown,
            Call::Replied(reply) => *reply,
        };
        Handoff::Done(Box::new(match reply {
            Ok(outcome) if convert::fits(op, &outcome) => Ok(convert::outcome_from_wire(outcome)),
            // A reply of the wrong kind: a daemon of another version, most likely.
            Ok(other) => Err(Error::Daemon {
                exit_code: crate::error::exit::OTHER,
                message: format!(
                    "the daemon answered with an unexpected reply ({other:?}); restart it"
                ),
            }),
            Err(e) => Err(convert::error_from_wire(e)),
        }))
    }
}

/// A connection to the socket, if something listens there and it runs as this user: in a
/// directory others can write to, a socket planted by someone else must not see our requests
/// or answer them.
fn connect(socket: &Path, wait: Duration) -> Option<BufReader<UnixStream>> {
    let stream = UnixStream::connect(socket).ok()?;
    let peer = getsockopt(&stream, PeerCredentials).ok()?;
    if peer.uid() != UnixCredentials::new().uid() {
        return None;
    }
    // A daemon stopped with SIGSTOP must not hang its clients.
    let wait = Some(wait);
    stream.set_read_timeout(wait).ok()?;
    stream.set_write_timeout(wait).ok()?;
    Some(BufReader::new(stream))
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
