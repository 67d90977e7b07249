//! Committing ops: one at a time for this ledger, or many together for a committer that
//! gathers them (the daemon's group commit). Both run [`apply`] in a transaction, and a reply
//! lost with a committer is settled here too ([`already_done`]), for every op alike.

use crate::error::Error;
use crate::quota::{self, AcquireRequest, QuotaError, Released};
use crate::records::Lease;
use crate::select::Decision;
use crate::store::Tx;
use crate::types::{LeaseId, LeaseState, Millis};

use super::op::{Op, Outcome, Queued};
use super::{Ledger, credentials};
/// A grant decided in `tx`: the credential check, then the quota. Both paths (direct and
/// through the daemon) run exactly this.
///
/// `Ok(Err(refusal))` is a refusal whose `deny` row is written in `tx` and must commit.
pub(super) fn acquire_in(
    tx: &mut Tx<'_>,
    now: Millis,
    idle_before: Millis,
    req: &AcquireRequest,
    id: LeaseId,
) -> Result<Result<Lease, Error>, Error> {
    // No grant without a credential an agent can use: checked from clear metadata in the same
    // transaction, so no key and no network are needed here.
    if let Err(e) = credentials::require_usable(tx, req.provider, &req.account, now) {
        // A refusal is about the credential; a storage failure met while looking is not
        // (on a server it has aborted the transaction: nothing more may be written in it).
        if !matches!(&e, Error::Vault(v) if !matches!(v, crate::vault::VaultError::Store(_))) {
            return Err(e);
        }
        let detail = serde_json::json!({ "credential": e.to_string() });
        super::agents::deny(tx, now, req, Some(req.provider), Some(&req.account), detail)?;
        return Ok(Err(e));
    }
    Ok(quota::acquire(tx, now, idle_before, req, id)?
        .map_err(|denial| QuotaError::Denied(Box::new(denial)).into()))
}

impl Ledger {
    /// Commits ops together: one write transaction with one commit, each op in its own
    /// savepoint, so a failing op undoes only its own writes, while a refusal (which writes its
    /// audit row) commits like a grant. An op whose `start_by` has passed by the time it would
    /// start (under the lock) is not run (`None`): its caller may already have done it itself.
    /// `Err` is a failed commit: none of them happened.
    ///
    /// This is what a group-committing host (the daemon) calls; each op comes out exactly as
    /// [`Ledger::commit`](super::Ledger) would have made it alone.
    pub fn commit_together(
        &self,
        ops: &[Queued<'_>],
    ) -> Result<Vec<Option<Result<Outcome, Error>>>, Error> {
        // The batch's time, read before the lock as a lone commit reads it: its reads go
        // ahead with `BEGIN` (the first request's answered there, the statements of all of
        // them prepared by name on the connection).
        let now = self.now();
        let idle_before = quota::idle_cutoff(now, self.config.idle_timeout);
        let ahead = |tx: &Tx<'_>| {
            for queued in ops {
                queued.op.read_ahead(tx, Some((now, idle_before)));
            }
        };
        self.store.write_reading(ahead, |tx| {
            let mut results = Vec::with_capacity(ops.len());
            for queued in ops {
                // A deadline is checked on the clock as the request starts, under the lock: a
                // request whose client stopped waiting (and does it itself) is not run twice.
                if self.now() > queued.start_by {
                    results.push(None);
                    continue;
                }
                let result = match tx.isolated(|tx| {
                    // Its reads in one round trip: what the requests before it wrote is read
                    // again, what they left alone (credentials, limits) is already known.
                    tx.read_ahead(|plan| queued.op.read_ahead(plan, Some((now, idle_before))))?;
                    apply(tx, now, idle_before, queued.op)
                })? {
                    Ok(done) => done,
                    Err(e) => Err(e),
                };
                results.push(Some(result));
            }
            Ok(results)
        })
    }

    /// Commits one op in a transaction of its own. With `settle`, the op was handed to a
    /// committer that went silent: if it already happened, what it did is reported instead.
    pub(super) fn commit_here(&self, op: &Op, settle: bool) -> Result<Outcome, Error> {
        let now = self.now();
        let idle_before = quota::idle_cutoff(now, self.config.idle_timeout);
        let ahead = |tx: &Tx<'_>| op.read_ahead(tx, Some((now, idle_before)));
        self.store.write_reading(ahead, |tx| -> Result<_, Error> {
            if settle && let Some(outcome) = already_done(tx, op)? {
                return Ok(Ok(outcome));
            }
            apply(tx, now, idle_before, op)
        })?
    }
}

/// Settles an op whose committer went silent: what it did, if it already happened. The only
/// place a lost reply is settled, for every op:
/// - an acquire finds the lease under the id its caller drew (selecting or granting again
///   would be wrong: this very lease may hold the last slot);
/// - a renew and a usage record are simply run again (a renew is safe to repeat, and a usage
///   record counts once by its key);
/// - a release finds its lease released, and reports what that release gave back.
fn already_done(tx: &Tx<'_>, op: &Op) -> Result<Option<Outcome>, Error> {
    Ok(match op {
        Op::Acquire { id, .. } => tx.lease(id)?.map(Outcome::Lease),
        Op::AcquireSelected { id, .. } => tx.lease(id)?.map(|lease| Outcome::Selected {
            decision: Decision {
                provider: lease.provider,
                account: lease.account.clone(),
                reason: "granted by the daemon before its reply was lost".into(),
                fallback_from: None,
                considered: Vec::new(),
            },
            lease,
        }),
        Op::Renew { .. } | Op::RecordUsage { .. } => None,
        Op::Release { id, .. } => match tx.lease(id)? {
            Some(lease) if lease.state == LeaseState::Released => {
                let returned = released_figure(tx, id)?;
                Some(Outcome::Released(Released { lease, returned }))
            }
            _ => None,
        },
    })
}

/// What the release of `id` gave back (0 if its row says nothing readable).
fn released_figure(tx: &Tx<'_>, id: &LeaseId) -> Result<i64, Error> {
    let detail = tx.lease_audit_detail(id, crate::audit::action::RELEASE)?;
    Ok(detail
        .and_then(|d| crate::quota::ReleaseFacts::from_detail(&d))
        .map_or(0, |facts| facts.returned))
}

/// A refusal whose writes are kept, as the ledger's error.
fn kept<T>(refusal: Result<T, QuotaError>) -> Result<T, Error> {
    refusal.map_err(Error::from)
}

/// One op in `tx`. `Err` undoes the op's writes; `Ok(Err(..))` keeps them (a refusal's audit
/// row, a lease found expired and reclaimed) and reports the refusal.
fn apply(
    tx: &mut Tx<'_>,
    now: Millis,
    idle_before: Millis,
    op: &Op,
) -> Result<Result<Outcome, Error>, Error> {
    Ok(match op {
        Op::Acquire { id, request } => {
            request.validate()?;
            acquire_in(tx, now, idle_before, request, id.clone())?.map(Outcome::Lease)
        }
        Op::AcquireSelected {
            id,
            request,
            choice,
        } => {
            request.validate()?;
            super::agents::acquire_selected_in(tx, now, idle_before, request, choice, id.clone())?
                .map(|(lease, decision)| Outcome::Selected { lease, decision })
        }
        Op::Renew { id } => kept(quota::renew(tx, now, id)?).map(Outcome::Lease),
        Op::Release { id, detail } => {
            kept(quota::release(tx, now, id, detail.clone())?).map(Outcome::Released)
        }
        Op::RecordUsage {
            id,
            record,
            fallback_key,
        } => Ok(Outcome::Usage(quota::record_usage(
            tx,
            now,
            id,
            record,
            fallback_key.clone(),
        )?)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::ledger::LedgerConfig;
    use crate::quota::{LimitsUpdate, UsageRecord};
    use crate::records::AuditQuery;
    use crate::types::{Account, AgentId, LeaseState, Provider};
    use crate::vault::{Credential, KeySource, Secret};

    fn ledger(dir: &std::path::Path) -> Ledger {
        let ledger = Ledger::open(
            LedgerConfig::new(dir.join("ledger.db"))
                .with_clock(Arc::new(ManualClock::new(1_795_428_000_000)))
                .with_key(KeySource::File(dir.join("master.key"))),
        )
        .unwrap();
        ledger
            .set_limits(
                Provider::Claude,
                &Account::default(),
                &LimitsUpdate {
                    daily_tokens: Some(1_000),
                    concurrent: Some(1),
                    ..LimitsUpdate::default()
                },
            )
            .unwrap();
        ledger
            .store_credential(&Credential::api_key(
                Provider::Claude,
                Account::default(),
                Secret::new("sk-ant-api03-batch-test-000000".into()),
                "stdin",
            ))
            .unwrap();
        ledger
    }

    fn acquire(id: u8, agent: &str) -> Op {
        Op::Acquire {
            id: LeaseId::from_random([id; 10]),
            request: AcquireRequest::new(AgentId::new(agent).unwrap(), Provider::Claude)
                .tokens(100),
        }
    }

    /// Commits `ops` together, none of them past its deadline.
    fn run(ledger: &Ledger, ops: impl IntoIterator<Item = Op>) -> Vec<Result<Outcome, Error>> {
        let ops: Vec<Op> = ops.into_iter().collect();
        let queued: Vec<Queued<'_>> = ops
            .iter()
            .map(|op| Queued {
                op,
                start_by: i64::MAX,
            })
            .collect();
        let results = ledger.commit_together(&queued).unwrap();
        results.into_iter().map(Option::unwrap).collect()
    }

    fn actions(ledger: &Ledger) -> Vec<String> {
        let rows = ledger.audit(&AuditQuery::default()).unwrap();
        rows.into_iter().map(|r| r.action).collect()
    }

    #[test]
    fn one_transaction_keeps_grants_and_refusals_and_undoes_only_a_failed_request() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        let before = actions(&ledger).len();
        let a = LeaseId::from_random([1; 10]);
        let requests = [
            acquire(1, "first"),
            // Concurrency 1: refused, and the refusal's audit row stays.
            acquire(2, "second"),
            // An idempotency key already used by the first record, with other figures: the
            // request fails and its writes are undone; the others are not.
            Op::RecordUsage {
                id: a.clone(),
                record: UsageRecord::new(10, 0).key("k"),
                fallback_key: "unused".into(),
            },
            Op::RecordUsage {
                id: a.clone(),
                record: UsageRecord::new(20, 0).key("k"),
                fallback_key: "unused".into(),
            },
            Op::Release {
                id: a.clone(),
                detail: None,
            },
        ];
        let replies = run(&ledger, requests);

        assert!(matches!(&replies[0], Ok(Outcome::Lease(l)) if l.id == a));
        assert!(matches!(
            &replies[1],
            Err(Error::Quota(QuotaError::Denied(_)))
        ));
        assert!(matches!(&replies[2], Ok(Outcome::Usage(u)) if !u.duplicate));
        assert!(matches!(
            &replies[3],
            Err(Error::Quota(QuotaError::IdempotencyConflict { key })) if key == "k"
        ));
        assert!(matches!(&replies[4], Ok(Outcome::Released(r)) if r.returned == 90));

        assert_eq!(
            actions(&ledger)[before..],
            ["acquire", "deny", "usage", "release"]
        );
        let lease = ledger.lease(&a).unwrap();
        assert_eq!((lease.state, lease.used), (LeaseState::Released, 10));
        assert!(ledger.verify_audit().unwrap().ok);
    }

    #[test]
    fn requests_in_a_batch_see_each_others_writes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        let first = LeaseId::from_random([1; 10]);
        let requests = [
            acquire(1, "first"),
            Op::Release {
                id: first,
                detail: None,
            },
            // The slot the release freed is granted within the same transaction.
            acquire(2, "second"),
        ];
        let replies = run(&ledger, requests);
        assert!(replies.iter().all(Result::is_ok), "{replies:?}");
        let active = ledger.leases(false).unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].agent.as_str(), "second");
    }

    #[test]
    fn a_request_past_its_deadline_is_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger(dir.path());
        let before = actions(&ledger).len();
        let (late, on_time) = (acquire(1, "late"), acquire(2, "on-time"));
        let replies = ledger
            .commit_together(&[
                Queued {
                    op: &late,
                    start_by: ledger.now() - 1,
                },
                Queued {
                    op: &on_time,
                    start_by: ledger.now(),
                },
            ])
            .unwrap();
        assert!(replies[0].is_none(), "{replies:?}");
        assert!(
            matches!(replies[1], Some(Ok(Outcome::Lease(_)))),
            "{replies:?}"
        );
        assert_eq!(actions(&ledger)[before..], ["acquire"]);
        assert!(ledger.lease(&LeaseId::from_random([1; 10])).is_err());
    }
}
