//! What a metering gateway asks of the ledger on each request: may this lease spend now (with
//! a top-up from the pool when it has used its allocation), can usage be written at all, and
//! the usage of many requests written together.

use super::op::{Op, Outcome, Queued};
use super::{Ledger, settle, unexpected};

/// A batched record the batch did not start: impossible, since none has a deadline.
fn unexpected_skip() -> Error {
    Error::Daemon {
        exit_code: crate::error::exit::OTHER,
        message: "a usage record in a batch was not started".into(),
    }
}
use crate::error::Error;
use crate::quota::{self, QuotaError, UsageOutcome, UsageRecord};
use crate::records::Lease;
use crate::store::StoreError;
use crate::types::{LeaseId, Millis};

/// The smallest top-up a lease gets when it runs out: enough for a few more requests, so a
/// busy agent does not take the writer lock on every one.
const MIN_TOP_UP: i64 = 8_192;

/// Whether a lease may spend on one more request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// Within its allocation.
    Go,
    /// It had used its allocation and was topped up by this many tokens (audited `topup`).
    ToppedUp(i64),
    /// Nothing is left for it (audited `deny`): the budget, a window or the lease cap.
    Refused {
        /// When the exhausted window resets, if a window is what ran out.
        resets_at: Option<Millis>,
        /// Why, in one line.
        reason: String,
    },
    /// The lease ended (released, expired, revoked).
    Lost,
}

impl Ledger {
    /// Decides whether `lease` (as just read, e.g. by [`Ledger::lease_for_token`]) may spend
    /// on one more request; `pending` is what it spent in records the caller has queued but
    /// maybe not written yet (idempotency key, tokens), counted as used unless written. Within its allocation it may, with nothing read or written; past
    /// it, the lease is topped up from what its account has left (a quarter of its allocation,
    /// at least 8,192 tokens, or less when that is all there is) in one transaction, or refused
    /// when nothing is left.
    pub fn admit_spend(&self, lease: &Lease, pending: &[(String, i64)]) -> Result<Spend, Error> {
        // Counted whole here, even records committed since the lease was read: at worst this
        // sends the request to the exact count below.
        let queued = pending
            .iter()
            .map(|(_, t)| *t)
            .fold(0i64, i64::saturating_add);
        if lease.used.saturating_add(queued) < lease.allocated {
            return Ok(Spend::Go);
        }
        let want = (lease.allocated / 4).max(MIN_TOP_UP);
        let now = self.now();
        let before = lease.allocated;
        let outcome = settle(self.store.write(|tx| -> Result<_, QuotaError> {
            // Exactly what is not in the ledger yet, read in the top-up's transaction.
            let mut unwritten = 0i64;
            for (key, tokens) in pending {
                if tx.usage_by_key(key)?.is_none() {
                    unwritten = unwritten.saturating_add(*tokens);
                }
            }
            quota::top_up_to_spend(tx, now, &lease.id, want, unwritten)
        }));
        match outcome {
            Ok(after) if after.allocated > before => Ok(Spend::ToppedUp(after.allocated - before)),
            // Another request topped it up first, or its usage was counted differently.
            Ok(_) => Ok(Spend::Go),
            Err(Error::Quota(QuotaError::LeaseLost { .. })) => Ok(Spend::Lost),
            Err(Error::Quota(QuotaError::Denied(denial))) => Ok(Spend::Refused {
                resets_at: denial.resets_at,
                reason: denial.to_string(),
            }),
            Err(Error::Quota(e @ QuotaError::OverLeaseCap { .. })) => Ok(Spend::Refused {
                resets_at: None,
                reason: e.to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Checks that the ledger takes writes now (an empty write transaction): a gateway
    /// forwards nothing it could not record.
    pub fn probe_writable(&self) -> Result<(), Error> {
        Ok(self.store.write(|_| Ok::<(), StoreError>(()))?)
    }

    /// Records the usage of many requests, each idempotent by its key. Without a committer
    /// they are written in one transaction with one commit (each in its own savepoint, so a
    /// refused record fails alone); with one (the daemon), each goes to it, which batches
    /// them with every other process's writes. `Err` means none of them was written.
    pub fn record_usage_batch(
        &self,
        records: &[(LeaseId, UsageRecord)],
    ) -> Result<Vec<Result<UsageOutcome, Error>>, Error> {
        if self.config.committer.is_some() {
            return Ok(records
                .iter()
                .map(|(id, record)| self.record_usage(id, record))
                .collect());
        }
        let mut ops = Vec::with_capacity(records.len());
        for (id, record) in records {
            record.validate()?;
            ops.push(Op::RecordUsage {
                id: id.clone(),
                record: record.clone(),
                fallback_key: super::fallback_usage_key()?,
            });
        }
        let queued: Vec<Queued<'_>> = ops
            .iter()
            .map(|op| Queued {
                op,
                start_by: Millis::MAX,
            })
            .collect();
        let results = self.commit_together(&queued)?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Some(Ok(Outcome::Usage(outcome))) => Ok(outcome),
                Some(Ok(other)) => Err(unexpected(&other)),
                Some(Err(e)) => Err(e),
                // Never: nothing has a deadline.
                None => Err(unexpected_skip()),
            })
            .collect())
    }
}
