//! The crate's top-level error, and the one place deciding which exit code (the constants are
//! [`exit`]) every layer's error gets.

use crate::config_file::ConfigError;
use crate::oauth::OAuthError;
use crate::prices::PricesError;
use crate::quota::QuotaError;
use crate::select::{Problem, SelectError};
use crate::store::StoreError;
use crate::types::InvalidInput;
use crate::vault::VaultError;

/// The exit codes live in their own leaf module; this path is kept for callers that name
/// them through the error module.
pub use crate::exit;

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
    Select(#[from] SelectError),
    /// An OAuth step failed.
    #[error(transparent)]
    OAuth(OAuthError),
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
    /// The daemon could not serve, or refused a request for a reason that has no variant of
    /// its own here; the message and exit code are the ones the daemon gave. (The daemon sits
    /// above the ledger, so its own error type is not named here.)
    #[error("{message}")]
    Daemon {
        /// The documented exit code.
        exit_code: i32,
        /// The one-line message.
        message: String,
    },
    /// A price table (`prices update --from FILE`, or the one stored beside the ledger)
    /// cannot be read: the user's to fix, and nothing was changed.
    #[error("price table {file}: {source}")]
    Prices {
        /// The file read.
        file: String,
        /// What is wrong with it.
        source: PricesError,
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
    /// `run`'s agent command does not exist (exit 127, as a shell says it).
    #[error("{command}: command not found")]
    CommandNotFound {
        /// The command as given.
        command: String,
    },
}

/// A storage or credential failure met during an OAuth step is reported as itself, exactly as
/// if it had been met outside one.
impl From<OAuthError> for Error {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::Store(s) => Error::Store(s),
            OAuthError::Vault(v) => Error::Vault(v),
            other => Error::OAuth(other),
        }
    }
}

impl Error {
    /// The documented exit code for this error: the one place where every layer's error is
    /// given its code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Store(s) => store_code(s),
            Error::AuditBroken { .. } => exit::STORAGE,
            Error::Quota(q) => quota_code(q),
            Error::Vault(v) => vault_code(v),
            Error::OAuth(o) => oauth_code(o),
            Error::Select(s) => select_code(s),
            Error::Config(c) => config_code(c),
            Error::Invalid(_) | Error::NoLocation | Error::Prices { .. } => exit::USAGE,
            Error::Io { .. } => exit::OTHER,
            Error::CommandNotFound { .. } => exit::COMMAND_NOT_FOUND,
            Error::Daemon { exit_code, .. } => *exit_code,
        }
    }
}

/// Every storage failure means the ledger cannot be opened or trusted.
fn store_code(_: &StoreError) -> i32 {
    exit::STORAGE
}

/// A `config.toml` that cannot be used is the user's to fix.
fn config_code(c: &ConfigError) -> i32 {
    match c {
        ConfigError::Malformed { .. } | ConfigError::Read { .. } => exit::USAGE,
    }
}

/// A lost or refused lease is a denial; a lease or record that does not fit is bad usage.
fn quota_code(q: &QuotaError) -> i32 {
    match q {
        QuotaError::Store(s) => store_code(s),
        QuotaError::Denied(_)
        | QuotaError::OverLeaseCap { .. }
        | QuotaError::LeaseLost { .. }
        | QuotaError::StaleFence { .. } => exit::DENIED,
        QuotaError::UnknownLease(_)
        | QuotaError::IdempotencyConflict { .. }
        | QuotaError::Invalid(_) => exit::USAGE,
        QuotaError::Random(_) => exit::OTHER,
    }
}

/// A key that cannot open the ledger is a storage problem; a missing or refused credential
/// an auth one.
fn vault_code(v: &VaultError) -> i32 {
    match v {
        VaultError::Store(s) => store_code(s),
        VaultError::BadKeyFormat
        | VaultError::WrongKey
        | VaultError::KeyCheckMissing
        | VaultError::NoKey(_)
        | VaultError::KeyFile { .. }
        | VaultError::Decrypt { .. } => exit::STORAGE,
        VaultError::NoCredential { .. }
        | VaultError::NotUsable { .. }
        | VaultError::Rejected { .. } => exit::AUTH,
        VaultError::NotFound(_)
        | VaultError::Malformed { .. }
        | VaultError::Unsupported(_)
        | VaultError::Conflict(_)
        | VaultError::BadApiKey { .. } => exit::USAGE,
        VaultError::Random(_)
        | VaultError::Crypto
        | VaultError::Http { .. }
        | VaultError::Io { .. } => exit::OTHER,
    }
}

/// Missing settings are bad usage; a refused or abandoned authorization is an auth problem.
fn oauth_code(o: &OAuthError) -> i32 {
    match o {
        OAuthError::NotConfigured { .. }
        | OAuthError::BadUrl { .. }
        | OAuthError::NotAllowed(_) => exit::USAGE,
        OAuthError::Denied { .. }
        | OAuthError::StateMismatch
        | OAuthError::NoCode
        | OAuthError::Timeout(_)
        | OAuthError::TokenRefused { .. } => exit::AUTH,
        OAuthError::Network { .. } | OAuthError::Callback { .. } => exit::OTHER,
        OAuthError::Store(s) => store_code(s),
        OAuthError::Vault(v) => vault_code(v),
    }
}

/// An auth problem when every candidate lacks a usable credential, else a denial (all busy
/// or unhealthy).
fn select_code(s: &SelectError) -> i32 {
    match s {
        SelectError::Store(s) => store_code(s),
        SelectError::Vault(v) => vault_code(v),
        SelectError::NoneUsable(verdicts, _) => {
            if verdicts
                .iter()
                .all(|v| v.kind.is_some_and(Problem::is_credential))
            {
                exit::AUTH
            } else {
                exit::DENIED
            }
        }
    }
}
