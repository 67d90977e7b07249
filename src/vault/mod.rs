//! The credential vault: Claude and OpenAI credentials encrypted in the ledger, imported from
//! the files other tools keep, exported in the form Codex reads.
//!
//! Non-secret metadata lives in clear columns; every secret field is sealed with AES-256-GCM
//! under the master key, bound to its (provider, account, field).

mod cipher;
mod credential;
pub mod export;
pub mod import;
pub mod jwt;
mod keys;
mod ops;
mod secret;
pub mod verify;
pub mod wipe;

use std::path::PathBuf;

pub use cipher::{Cipher, MasterKey, Sealed, field_ad};
pub use credential::{
    Credential, CredentialKind, CredentialSummary, RefreshVia, Tier, expired_remedy, login_command,
};
pub use keys::KeySource;
pub(crate) use keys::write_key_file;
pub(crate) use ops::rotate;
pub use ops::{Usability, usability};
pub(crate) use ops::{
    attest_keyed_audit, audit_keyed_attested, delete, get, hand_over, key_files, put,
    put_refreshed, summaries, unlock,
};
pub use secret::Secret;

use crate::store::StoreError;
use crate::types::{Account, Provider};

/// Why a vault operation failed. No variant ever carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// A storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS random source failed.
    #[error(transparent)]
    Random(#[from] crate::random::RandomError),
    /// The master key given is not base64 of 32 bytes.
    #[error(
        "the master key is not base64 of 32 bytes (check AUTHLEDGER_MASTER_KEY or the key file)"
    )]
    BadKeyFormat,
    /// The master key does not decrypt this ledger's credentials.
    #[error(
        "wrong master key: it does not match this ledger (check AUTHLEDGER_MASTER_KEY or the key file); nothing was changed"
    )]
    WrongKey,
    /// Credentials are sealed but the ledger's key check is gone: the file was edited.
    #[error(
        "the ledger's key check is missing although it holds encrypted credentials: the file was edited outside authledger; restore it from a backup"
    )]
    KeyCheckMissing,
    /// No master key is available though credentials are stored.
    #[error("no master key: {0}")]
    NoKey(String),
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Encryption itself failed.
    #[error("encryption failed")]
    Crypto,
    /// A stored secret does not decrypt: damaged, or moved from another row.
    #[error(
        "a stored secret of {provider}/{account} does not decrypt (damaged or moved from another row)"
    )]
    Decrypt {
        /// Whose.
        provider: Provider,
        /// Which account.
        account: Account,
    },
    /// No credential is stored for the provider account.
    #[error("no credential for {provider}/{account}: run `{}`", credential::login_command(*provider, account))]
    NoCredential {
        /// Which provider.
        provider: Provider,
        /// Which account.
        account: Account,
    },
    /// A credential is stored but cannot be used.
    #[error("the {provider}/{account} credential cannot be used: {why}")]
    NotUsable {
        /// Which provider.
        provider: Provider,
        /// Which account.
        account: Account,
        /// Why.
        why: String,
    },
    /// What the user pointed at is not there.
    #[error("{0}")]
    NotFound(String),
    /// A file or value could not be understood.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// Which file or value.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A format we recognise but do not support.
    #[error("{0}")]
    Unsupported(String),
    /// The inputs contradict each other.
    #[error("{0}")]
    Conflict(String),
    /// An API key does not have the provider's shape.
    #[error("that does not look like a {provider} API key (it should start with {expected})")]
    BadApiKey {
        /// Which provider.
        provider: Provider,
        /// The expected prefix.
        expected: &'static str,
    },
    /// The provider refused the credential.
    #[error("cannot verify the key at {url}: {status} ({provider} refused it)")]
    Rejected {
        /// Which provider.
        provider: Provider,
        /// The URL asked.
        url: String,
        /// The HTTP status and its reason (`401 Unauthorized`).
        status: String,
    },
    /// The provider could not be asked, or answered neither yes nor no.
    #[error("cannot verify the key at {url}: {reason}")]
    Http {
        /// Which provider.
        provider: Provider,
        /// The URL asked.
        url: String,
        /// What went wrong (`connection refused`).
        reason: String,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}
