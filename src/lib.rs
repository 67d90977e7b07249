//! authledger: one ledger for coding agents' credentials and quotas.
//!
//! Several agents (and several processes of each) share token budgets and concurrency limits
//! through one SQLite file. An agent takes a *lease* (a reservation of tokens and a concurrency
//! slot), records what it used, and releases it; a crashed agent's lease expires and cleanup
//! returns its tokens. Every change is written with a keyed, chained audit row in the same
//! transaction.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use authledger::{
//!     Account, AcquireRequest, AgentId, Credential, KeySource, Ledger, LedgerConfig, MasterKey,
//!     Provider, Secret, UsageRecord,
//! };
//!
//! let dir = tempfile::tempdir()?;
//! let config = LedgerConfig::new(dir.path().join("ledger.db"))
//!     .with_key(KeySource::File(dir.path().join("keys/master.key")));
//! let ledger = Ledger::open(config)?;
//!
//! // Credentials are encrypted at rest; agents can only lease a provider that has one.
//! let key = Secret::new("sk-ant-api03-example-key-0000".to_string());
//! ledger.store_credential(&Credential::api_key(Provider::Claude, Account::default(), key, "stdin"))?;
//!
//! // A fair share of Claude's daily budget for the "reviewer" agent.
//! let lease = ledger.acquire(&AcquireRequest::new(AgentId::new("reviewer")?, Provider::Claude))?;
//! ledger.record_usage(&lease.id, &UsageRecord::new(900, 100).key("call-1"))?;
//! ledger.release(&lease.id)?;
//!
//! let claude = &ledger.quota(Some(Provider::Claude))?[0];
//! assert_eq!((claude.used, claude.reserved), (1_000, 0));
//! assert!(ledger.verify_audit()?.ok);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod audit;
pub mod calibrate;
pub mod cli;
pub mod clock;
pub mod config_file;
pub mod daemon;
pub mod error;
pub mod exit;
pub mod fault;
pub mod gateway;
pub mod hardening;
pub mod health;
pub mod ledger;
pub mod metrics;
pub mod oauth;
pub mod paths;
pub mod prices;
pub mod quota;
pub mod random;
pub mod records;
pub mod select;
pub mod store;
pub mod types;
pub mod vault;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use ledger::{
    CodexExport, KeyRotation, Ledger, LedgerConfig, LogoutReport, RefreshPolicy, Released,
};
pub use quota::{
    AcquireRequest, CleanupReport, Denial, DenyReason, LimitsUpdate, QuotaError, QuotaStatus,
    UsageOutcome, UsageRecord,
};
pub use records::{AuditEntry, AuditQuery, Lease, Limits, UsageGroup, UsageSummary};
pub use store::Durability;
pub use types::{
    Account, AgentId, InvalidInput, LeaseId, LeaseState, Millis, Provider, WindowKind,
};
pub use vault::{Credential, CredentialKind, KeySource, MasterKey, RefreshVia, Secret, Tier};
