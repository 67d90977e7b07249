//! The daemon's side of the façade: requests from many processes in one transaction.

use crate::daemon::protocol::{Envelope, Outcome, Reply, Request, WireError};
use crate::error::Error;
use crate::quota::{self, AcquireRequest, QuotaError};
use crate::records::Lease;
use crate::store::Tx;
use crate::types::{LeaseId, Millis};

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
        if !matches!(e, Error::Vault(_)) {
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
    /// Runs the requests of many clients in one write transaction with one commit: each in its
    /// own savepoint, so a failing request undoes only its own writes, while a refusal (which
    /// writes its audit row) commits like a grant. If the commit itself fails, every request
    /// gets that error and none happened. A request whose deadline has passed by the time the
    /// transaction starts is not run: its client may already have done it itself.
    pub(crate) fn apply_batch(&self, requests: &[&Envelope]) -> Vec<Reply> {
        let written = self.store.write(|tx| -> Result<Vec<Reply>, Error> {
            // Read once the writer queue let this batch in, so commits are in time order.
            let now = self.now();
            let idle_before = quota::idle_cutoff(now, self.config.idle_timeout);
            let mut replies = Vec::with_capacity(requests.len());
            for envelope in requests {
                if now > envelope.deadline_ms {
                    replies.push(Err(WireError::Expired));
                    continue;
                }
                let request = &envelope.request;
                let reply = match tx.isolated(|tx| apply(tx, now, idle_before, request))? {
                    Ok(reply) => reply,
                    Err(e) => Err(WireError::from(&e)),
                };
                replies.push(reply);
            }
            Ok(replies)
        });
        match written {
            Ok(replies) => replies,
            Err(e) => {
                let failure = WireError::from(&e);
                requests.iter().map(|_| Err(failure.clone())).collect()
            }
        }
    }
}

/// One request. `Err` undoes the request's writes; `Ok(Err(..))` keeps them (a refusal's audit
/// row, a lease found expired and reclaimed) and reports the refusal.
fn apply(
    tx: &mut Tx<'_>,
    now: Millis,
    idle_before: Millis,
    request: &Request,
) -> Result<Reply, Error> {
    let lost = |e: quota::QuotaError| WireError::from(&Error::from(e));
    Ok(match request {
        Request::Acquire { id, request } => {
            request.validate()?;
            acquire_in(tx, now, idle_before, request, id.clone())?
                .map(Outcome::Lease)
                .map_err(|e| WireError::from(&e))
        }
        Request::AcquireSelected {
            id,
            request,
            choice,
        } => {
            request.validate()?;
            super::agents::acquire_selected_in(tx, now, idle_before, request, choice, id.clone())?
                .map(|(lease, decision)| Outcome::Selected { lease, decision })
                .map_err(|e| WireError::from(&e))
        }
        Request::Renew { id } => quota::renew(tx, now, id)?.map(Outcome::Lease).map_err(lost),
        Request::Release { id, detail } => quota::release(tx, now, id, detail.clone())?
            .map(Outcome::Released)
            .map_err(lost),
        Request::RecordUsage {
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
    use crate::options::LedgerConfig;
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

    fn acquire(id: u8, agent: &str) -> Request {
        Request::Acquire {
            id: LeaseId::from_random([id; 10]),
            request: AcquireRequest::new(AgentId::new(agent).unwrap(), Provider::Claude)
                .tokens(100),
        }
    }

    /// Runs `requests` as one batch, none of them past its deadline.
    fn run(ledger: &Ledger, requests: impl IntoIterator<Item = Request>) -> Vec<Reply> {
        let envelopes: Vec<Envelope> = requests
            .into_iter()
            .map(|request| Envelope {
                v: crate::daemon::protocol::VERSION,
                deadline_ms: i64::MAX,
                request,
            })
            .collect();
        let refs: Vec<&Envelope> = envelopes.iter().collect();
        ledger.apply_batch(&refs)
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
            Request::RecordUsage {
                id: a.clone(),
                record: UsageRecord::new(10, 0).key("k"),
                fallback_key: "unused".into(),
            },
            Request::RecordUsage {
                id: a.clone(),
                record: UsageRecord::new(20, 0).key("k"),
                fallback_key: "unused".into(),
            },
            Request::Release {
                id: a.clone(),
                detail: None,
            },
        ];
        let replies = run(&ledger, requests);

        assert!(matches!(&replies[0], Ok(Outcome::Lease(l)) if l.id == a));
        assert!(matches!(&replies[1], Err(WireError::Denied { .. })));
        assert!(matches!(&replies[2], Ok(Outcome::Usage(u)) if !u.duplicate));
        assert!(matches!(&replies[3], Err(WireError::IdempotencyConflict { key }) if key == "k"));
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
            Request::Release {
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
        let late = Envelope {
            v: crate::daemon::protocol::VERSION,
            deadline_ms: ledger.now() - 1,
            request: acquire(1, "late"),
        };
        let on_time = Envelope {
            v: crate::daemon::protocol::VERSION,
            deadline_ms: ledger.now(),
            request: acquire(2, "on-time"),
        };
        let replies = ledger.apply_batch(&[&late, &on_time]);
        assert!(matches!(replies[0], Err(WireError::Expired)), "{replies:?}");
        assert!(matches!(replies[1], Ok(Outcome::Lease(_))), "{replies:?}");
        assert_eq!(actions(&ledger)[before..], ["acquire"]);
        assert!(ledger.lease(&LeaseId::from_random([1; 10])).is_err());
    }
}
