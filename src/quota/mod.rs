//! Budgets, windows, leases, usage and cleanup: the rules that keep agents inside their quota.
//!
//! Every operation here runs inside one write transaction handed down by the [`Ledger`]
//! façade; no quota state is kept in memory between calls, so any number of processes can
//! share one database.
//!
//! [`Ledger`]: crate::Ledger

mod acquire;
mod error;
mod leases;
mod limits;
mod topup;
mod usage;
mod view;
mod windows;

pub use acquire::{AcquireRequest, acquire};
pub use error::{Denial, DenyReason, QuotaError};
pub use leases::{
    CleanupReport, ReleaseFacts, Released, cleanup, idle_cutoff, release, renew, revoke,
};
pub(crate) use leases::{live_lease, reclaim_stale};
pub(crate) use limits::ensure_limits;
pub use limits::{LimitsUpdate, effective_limits, set_limits};
pub use topup::{top_up, top_up_to_spend};
pub use usage::{UsageOutcome, UsageRecord, record_usage};
pub use view::{QuotaStatus, WindowStatus, quota_status};
