//! Group commit through `authledger daemon`.
//!
//! With SQLite every commit pays its own fsync, so processes writing at once can together go no
//! faster than one process alone, and they queue for the writer lock. When a daemon runs, a
//! ledger on the wall clock sends its hot-path writes (acquire, renew, release,
//! record_usage) to it over a Unix socket beside the database; the daemon runs whatever
//! requests are waiting in one transaction with one fsync. With no daemon (or when it goes
//! away) the same calls work on the database directly: the daemon is never needed for
//! correctness, and both paths run the same code in the same kind of transaction.
//!
//! The daemon sits above the ledger: its [`Client`] is one of the ledger's committers (see
//! [`crate::ledger::op`]), handed to a ledger at open by the host (the CLI), and its
//! [`Server`] runs the ops it receives through [`Ledger::commit_together`]. The wire
//! ([`protocol`]) owns its own types; `convert` translates at the edge.
//!
//! [`Ledger::commit_together`]: crate::Ledger::commit_together

use std::path::{Path, PathBuf};

mod client;
mod convert;
pub mod protocol;
mod server;

pub use client::Client;
pub use server::{ServedStats, Server};

/// Why the daemon could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// Another daemon already serves this ledger.
    #[error("another daemon already serves {db}")]
    AlreadyServed {
        /// The database.
        db: PathBuf,
    },
    /// The socket's path would be too long for a Unix socket address.
    #[error(
        "cannot serve {path}: its socket path is longer than a Unix socket allows; use a shorter --db path"
    )]
    PathTooLong {
        /// The database.
        path: PathBuf,
    },
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The socket beside the database, or `None` when its path is too long to bind.
pub use crate::paths::daemon_socket as socket_path_for;

/// The socket of the daemon serving the database at `db`, if one answers there now.
pub fn serving(db: &Path) -> Option<PathBuf> {
    let socket = socket_path_for(db)?;
    std::os::unix::net::UnixStream::connect(&socket)
        .is_ok()
        .then_some(socket)
}

use crate::paths::daemon_lock as lock_path_for;
