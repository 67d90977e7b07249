//! The crate's top-level error and the exit codes the CLI contract promises.

use crate::quota::QuotaError;
use crate::settings::ConfigError;
use crate::store::StoreError;
use crate::types::InvalidInput;
use crate::vault::VaultError;

/// Exit codes (README, "CLI"), kept in one place.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Any other failure.
    pub const OTHER: i32 = 1;
    /// Bad usage or input.
    pub const USAGE: i32 = 2;
    /// Refused by a quota, concurrency or rate limit, or a lease that was lost.
    pub const DENIED: i32 = 3;
    /// No, invalid or expired credential.
    pub const AUTH: i32 = 4;
    /// The ledger cannot be opened or trusted: corrupt, read-only, wrong key, newer schema.
    pub const STORAGE: i32 = 5;
}

/// Anything the library reports to its caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A quota decision or lease problem.
    #[error(transparent)]
    Quota(#[from] QuotaError),
    /// An argument was refused before anything was touched.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A credential problem.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// No provider account can take an agent.
    #[error(transparent)]
    Select(#[from] crate::select::SelectError),
    /// An OAuth step failed.
    #[error(transparent)]
    OAuth(#[from] crate::oauth::OAuthError),
    /// `config.toml` cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The audit chain is broken.
    #[error("audit trail is broken at row {seq}: {problem}")]
    AuditBroken {
        /// The first bad row.
        seq: i64,
        /// What is wrong with it.
        problem: String,
    },
    /// The daemon could not start serving.
    #[error(transparent)]
    Serve(#[from] crate::daemon::DaemonError),
    /// The daemon refused a request for a reason that has no variant of its own here; the
    /// message and exit code are the ones the daemon's ledger gave.
    #[error("{message}")]
    Daemon {
        /// The documented exit code.
        exit_code: i32,
        /// The one-line message.
        message: String,
    },
    /// No place for the database could be found.
    #[error("no ledger location: pass --db, or set AUTHLEDGER_DB or AUTHLEDGER_HOME")]
    NoLocation,
    /// A file operation outside the database failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Store(_) | Error::AuditBroken { .. } => exit::STORAGE,
            Error::Quota(q) => match q {
                QuotaError::Store(_) => exit::STORAGE,
                QuotaError::Denied(_)
                | QuotaError::LeaseLost { .. }
                | QuotaError::StaleFence { .. } => exit::DENIED,
                QuotaError::UnknownLease(_)
                | QuotaError::IdempotencyConflict { .. }
                | QuotaError::Invalid(_) => exit::USAGE,
                _ => exit::OTHER,
            },
            Error::Vault(v) => v.exit_code(),
            Error::OAuth(o) => o.exit_code(),
            Error::Select(s) => s.exit_code(),
            Error::Config(_) | Error::Invalid(_) | Error::NoLocation => exit::USAGE,
            Error::Io { .. } | Error::Serve(_) => exit::OTHER,
            Error::Daemon { exit_code, .. } => *exit_code,
        }
    }
}
