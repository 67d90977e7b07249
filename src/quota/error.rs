//! Why a quota operation did not happen.

use serde::Serialize;

use crate::clock::format_ms;
use crate::store::StoreError;
use crate::types::{Account, InvalidInput, LeaseId, LeaseState, Millis, Provider, WindowKind};

/// What limit a refusal ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "limit", content = "window", rename_all = "snake_case")]
pub enum DenyReason {
    /// A budget window (day, 5 h, week) has not enough tokens left.
    Budget(WindowKind),
    /// Every concurrent slot is taken.
    Concurrency,
    /// The requests-per-minute limit is reached.
    RequestsPerMinute,
    /// The tokens-per-minute limit is reached.
    TokensPerMinute,
}

/// A refusal, with everything a caller needs to decide what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    /// Which limit refused.
    pub reason: DenyReason,
    /// Whose limit.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// What was asked (`None` for a fair-share request).
    pub asked: Option<i64>,
    /// What is available now (tokens, slots or requests, per the reason).
    pub available: i64,
    /// The limit in force.
    pub limit: i64,
    /// When the limiting window resets or the first slot frees, if known.
    pub resets_at: Option<Millis>,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = format!("{}/{}", self.provider, self.account);
        let asked = match self.asked {
            Some(n) => format!("asked {n} tokens"),
            None => "asked a fair share".to_string(),
        };
        match self.reason {
            DenyReason::Budget(kind) => write!(
                f,
                "{who} {kind} budget: {asked}, {} of {} available",
                self.available, self.limit
            )?,
            DenyReason::Concurrency => {
                write!(f, "{who} has all {} concurrent leases in use", self.limit)?
            }
            DenyReason::RequestsPerMinute => {
                write!(f, "{who} is at its limit of {} requests/min", self.limit)?
            }
            DenyReason::TokensPerMinute => {
                write!(f, "{who} is at its limit of {} tokens/min", self.limit)?
            }
        }
        match (self.reason, self.resets_at) {
            (DenyReason::Concurrency, Some(t)) => {
                write!(f, "; a slot frees by {} at the latest", format_ms(t))
            }
            (_, Some(t)) => write!(f, "; resets at {}", format_ms(t)),
            (_, None) => Ok(()),
        }
    }
}

/// A quota operation that did not happen, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    /// The ledger could not decide; nothing was granted (fail closed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A limit refused the request.
    #[error("denied: {0}")]
    Denied(Box<Denial>),
    /// No lease has this id.
    #[error("no lease {0}")]
    UnknownLease(LeaseId),
    /// The lease already ended; its holder must stop using it.
    #[error("lease {id} is {state} (ended {when}): it was lost; stop using it and acquire a new one", when = format_ms(*ended_at))]
    LeaseLost {
        /// The lease.
        id: LeaseId,
        /// How it ended.
        state: LeaseState,
        /// When it ended.
        ended_at: Millis,
    },
    /// The caller's fencing number is not the lease's: it acts on a lease it does not hold.
    #[error("lease {id} has fence {actual}, not {given}: you do not hold it; stop")]
    StaleFence {
        /// The lease.
        id: LeaseId,
        /// The fence the caller gave.
        given: i64,
        /// The lease's fence.
        actual: i64,
    },
    /// A top-up would take a lease past its account's lease cap.
    #[error(
        "denied: lease {id} holds {allocated} tokens; {asked} more would pass the lease cap of {cap}"
    )]
    OverLeaseCap {
        /// The lease.
        id: LeaseId,
        /// What it holds now.
        allocated: i64,
        /// What was asked on top.
        asked: i64,
        /// The account's lease cap.
        cap: i64,
    },
    /// An idempotency key was reused for a different usage record.
    #[error("idempotency key {key:?} was already used for a different usage record; use a new key")]
    IdempotencyConflict {
        /// The key.
        key: String,
    },
    /// An argument was out of range.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// No random id could be made.
    #[error(transparent)]
    Random(#[from] crate::random::RandomError),
}
