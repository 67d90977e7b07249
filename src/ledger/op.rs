//! The ledger's hot-path writes as values, and the one seam they are committed through.
//!
//! An agent's writes (acquire, renew, release, record_usage) are worth committing somewhere
//! other than the caller's own transaction: today `authledger daemon` runs the writes of every
//! process on the machine in one transaction with one fsync (group commit); later a metering
//! gateway or another store may take them. So each such write is built as an [`Op`] and handed
//! to the [`Committer`] the ledger was opened with ([`LedgerConfig::with_committer`]). Without
//! one the ledger commits the op itself, in one transaction on its own store, exactly as a
//! committer's own ledger would (both run [`Ledger::commit_together`]'s code).
//!
//! The ledger never names a committer: the daemon's client lives above the ledger and is
//! handed in by the host (the CLI). Whatever a committer answers is settled in one place (the
//! ledger's `commit`): a committer that declined did nothing and is passed by; one that took
//! the op and went silent may or may not have committed, and the ledger settles that from its
//! own store. Every id an op carries is drawn by the caller for exactly this: an acquire finds
//! its lease, a usage record counts once by its key, a release finds its lease released and
//! reports what that release gave back.
//!
//! [`LedgerConfig::with_committer`]: crate::ledger::LedgerConfig::with_committer
//! [`Ledger::commit_together`]: super::Ledger::commit_together

use std::fmt::Debug;

use crate::error::Error;
use crate::quota::{AcquireRequest, Released, UsageOutcome, UsageRecord};
use crate::records::Lease;
use crate::select::{Choice, Decision};
use crate::store::Tx;
use crate::types::{LeaseId, Millis, WindowKind};

/// One write of the ledger's hot path, with every id already drawn by the caller, so a reply
/// lost with its committer can be settled by looking at the ledger.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Op {
    /// [`Ledger::acquire`](crate::Ledger::acquire).
    Acquire {
        /// The id the lease gets if granted.
        id: LeaseId,
        /// What is asked.
        request: AcquireRequest,
    },
    /// [`Ledger::acquire_selected`](crate::Ledger::acquire_selected).
    AcquireSelected {
        /// The id the lease gets if granted.
        id: LeaseId,
        /// What is asked (provider and account are replaced by the choice).
        request: AcquireRequest,
        /// Which provider, or the best one.
        choice: Choice,
    },
    /// [`Ledger::renew`](crate::Ledger::renew).
    Renew {
        /// The lease.
        id: LeaseId,
    },
    /// [`Ledger::release_with`](crate::Ledger::release_with).
    Release {
        /// The lease.
        id: LeaseId,
        /// The holder's facts for the audit row.
        detail: Option<serde_json::Value>,
    },
    /// [`Ledger::record_usage`](crate::Ledger::record_usage).
    RecordUsage {
        /// The lease.
        id: LeaseId,
        /// What was used.
        record: UsageRecord,
        /// The idempotency key stored when the record has none of its own.
        fallback_key: String,
    },
}

impl Op {
    /// Asks `tx` (a plan, see [`Store::write_reading`](crate::store::Store::write_reading))
    /// for the reads this op's transaction will make, so a server ledger sends them with its
    /// `BEGIN`. A grant reads every account's credential, limits and health, the next fence
    /// and, with the time it runs at (`now`, the idle cutoff) known, its account's stale
    /// leases, live-lease count and windows; a release, the lease and what it holds. Only a
    /// guess to save round trips: a read it misses is made anyway.
    pub(crate) fn read_ahead(&self, tx: &Tx<'_>, at: Option<(Millis, Millis)>) {
        let request = match self {
            Op::Acquire { request, .. } => request,
            Op::AcquireSelected {
                request,
                choice: Choice::Explicit(..),
                ..
            } => request,
            Op::AcquireSelected { request, .. } => {
                // Which account is chosen is not known ahead: only the tables read whole.
                let _ = tx.known_accounts();
                let _ = tx.health(request.provider, &request.account);
                return;
            }
            Op::Release { id, .. } => {
                let _ = tx.lease(id);
                let _ = tx.lease_windows(id);
                return;
            }
            Op::Renew { .. } | Op::RecordUsage { .. } => return,
        };
        let (p, a) = (request.provider, &request.account);
        // The plan answers every read with nothing; what it returns means nothing.
        let _ = tx.known_accounts();
        let _ = tx.health(p, a);
        let _ = tx.next_fence();
        if let Some((now, idle_before)) = at {
            let _ = tx.stale_leases_of(p, a, now, idle_before);
            let _ = tx.active_lease_count(p, a, now, idle_before);
            // One statement reads the day's, the 5 h and the week's windows.
            let _ = tx.window_at(p, a, WindowKind::Day, now);
        }
    }
}

/// What a committed [`Op`] did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// A lease granted or renewed.
    Lease(Lease),
    /// A lease granted on the account selection chose.
    Selected {
        /// The lease.
        lease: Lease,
        /// The choice and why.
        decision: Decision,
    },
    /// A lease released.
    Released(Released),
    /// Usage recorded.
    Usage(UsageOutcome),
}

/// What a [`Committer`] did with an op.
#[derive(Debug)]
pub enum Handoff {
    /// The committer ran it: its outcome, or why it did not happen (a refusal included).
    Done(Box<Result<Outcome, Error>>),
    /// The committer did not take it and nothing happened: the ledger commits it itself.
    Declined,
    /// The committer took it and gave no answer: it may or may not have committed. The ledger
    /// settles it from its own store.
    Unknown,
}

/// Somewhere else the ledger's writes can be committed (a daemon, a gateway, another store).
///
/// A committer must commit an op exactly as the ledger's own [`Ledger::commit_together`]
/// would on the same database, answer [`Handoff::Declined`] only when nothing happened, and
/// [`Handoff::Unknown`] whenever it cannot tell.
///
/// [`Ledger::commit_together`]: super::Ledger::commit_together
pub trait Committer: Send + Sync + Debug {
    /// Commits `op`, or says why it could not.
    fn commit(&self, op: &Op) -> Handoff;
}

/// One op of a group commit, with the time after which it must not be started (by then its
/// caller may have given up on it and done it itself).
#[derive(Debug, Clone, Copy)]
pub struct Queued<'a> {
    /// The op.
    pub op: &'a Op,
    /// Not started after this time (ms on the ledger's clock).
    pub start_by: Millis,
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::clock::ManualClock;
    use crate::ledger::Ledger;
    use crate::ledger::LedgerConfig;
    use crate::quota::LimitsUpdate;
    use crate::records::AuditQuery;
    use crate::types::{Account, AgentId, LeaseState, Provider};
    use crate::vault::{Credential, KeySource, Secret};

    /// What the fake does with an op after noting it.
    #[derive(Debug)]
    enum Then {
        /// Nothing happened: the ledger commits it itself.
        Decline,
        /// Commit it on this (direct) ledger, as a daemon would, then fall silent.
        CommitAndFallSilent(Box<Ledger>),
    }

    /// A committer that notes every op it is handed.
    #[derive(Debug)]
    struct Fake {
        seen: Mutex<Vec<Op>>,
        then: Then,
    }

    impl Committer for Fake {
        fn commit(&self, op: &Op) -> Handoff {
            self.seen.lock().unwrap().push(op.clone());
            match &self.then {
                Then::Decline => Handoff::Declined,
                Then::CommitAndFallSilent(behind) => {
                    let queued = Queued {
                        op,
                        start_by: Millis::MAX,
                    };
                    let done = behind.commit_together(&[queued]).unwrap();
                    assert!(matches!(done[..], [Some(Ok(_))]), "{done:?}");
                    Handoff::Unknown
                }
            }
        }
    }

    fn config(dir: &std::path::Path, clock: &ManualClock) -> LedgerConfig {
        LedgerConfig::new(dir.join("ledger.db"))
            .with_clock(Arc::new(clock.clone()))
            .with_key(KeySource::File(dir.join("master.key")))
    }

    /// A direct ledger with a Claude key and room for two leases of 1 000 tokens a day.
    fn direct(dir: &std::path::Path, clock: &ManualClock) -> Ledger {
        let ledger = Ledger::open(config(dir, clock)).unwrap();
        let limits = LimitsUpdate {
            daily_tokens: Some(1_000),
            concurrent: Some(2),
            ..LimitsUpdate::default()
        };
        ledger
            .set_limits(Provider::Claude, &Account::default(), &limits)
            .unwrap();
        let key = Secret::new("sk-ant-api03-committer-test-0000".into());
        let credential = Credential::api_key(Provider::Claude, Account::default(), key, "stdin");
        ledger.store_credential(&credential).unwrap();
        ledger
    }

    /// The same database, committing its hot-path ops through `fake`.
    fn through(dir: &std::path::Path, clock: &ManualClock, fake: &Arc<Fake>) -> Ledger {
        Ledger::open(config(dir, clock).with_committer(fake.clone())).unwrap()
    }

    fn ask(agent: &str) -> AcquireRequest {
        AcquireRequest::new(AgentId::new(agent).unwrap(), Provider::Claude).tokens(100)
    }

    fn count(ledger: &Ledger, action: &str) -> usize {
        let query = AuditQuery {
            action: Some(action.into()),
            ..AuditQuery::default()
        };
        ledger.audit(&query).unwrap().len()
    }

    #[test]
    fn a_committer_is_handed_exactly_the_ops_the_hot_path_methods_make() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_795_428_000_000);
        let plain = direct(dir.path(), &clock);
        let fake = Arc::new(Fake {
            seen: Mutex::new(Vec::new()),
            then: Then::Decline,
        });
        let ledger = through(dir.path(), &clock, &fake);

        let lease = ledger.acquire(&ask("first")).unwrap();
        let record = UsageRecord::new(10, 5).key("u1");
        ledger.record_usage(&lease.id, &record).unwrap();
        let unkeyed = UsageRecord::new(1, 0);
        let recorded = ledger.record_usage(&lease.id, &unkeyed).unwrap();
        ledger.renew(&lease.id).unwrap();
        let detail = serde_json::json!({ "exit_code": 0 });
        ledger
            .release_with(&lease.id, Some(detail.clone()))
            .unwrap();
        let (second, _) = ledger
            .acquire_selected(&ask("second"), &Choice::Auto)
            .unwrap();
        // Writes off the hot path, reads, and a ledger told to work directly hand it nothing.
        ledger.revoke(&second.id, "test").unwrap();
        ledger.cleanup().unwrap();
        ledger.quota(None).unwrap();
        ledger.direct().acquire(&ask("third")).unwrap();
        plain.acquire(&ask("fourth")).unwrap();

        let seen = fake.seen.lock().unwrap();
        let expected = [
            Op::Acquire {
                id: lease.id.clone(),
                request: ask("first"),
            },
            Op::RecordUsage {
                id: lease.id.clone(),
                record,
                fallback_key: seen_key(&seen[1]),
            },
            Op::RecordUsage {
                id: lease.id.clone(),
                record: unkeyed,
                fallback_key: recorded.key.clone(),
            },
            Op::Renew {
                id: lease.id.clone(),
            },
            Op::Release {
                id: lease.id.clone(),
                detail: Some(detail),
            },
            Op::AcquireSelected {
                id: second.id.clone(),
                request: ask("second"),
                choice: Choice::Auto,
            },
        ];
        assert_eq!(format!("{:?}", *seen), format!("{expected:?}"));
        // The key drawn for a record without one is the key it was stored under.
        assert!(recorded.key.starts_with("auto-"), "{}", recorded.key);
    }

    fn seen_key(op: &Op) -> String {
        match op {
            Op::RecordUsage { fallback_key, .. } => fallback_key.clone(),
            other => panic!("not a usage record: {other:?}"),
        }
    }

    #[test]
    fn a_reply_lost_after_its_commit_is_settled_once_for_every_op() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_795_428_000_000);
        let behind = direct(dir.path(), &clock);
        let fake = Arc::new(Fake {
            seen: Mutex::new(Vec::new()),
            then: Then::CommitAndFallSilent(Box::new(behind.clone())),
        });
        let ledger = through(dir.path(), &clock, &fake);

        // Granted by the committer: the ledger finds the lease, it does not grant another.
        let lease = ledger.acquire(&ask("first")).unwrap();
        assert_eq!(behind.lease(&lease.id).unwrap(), lease);
        let (second, decision) = ledger
            .acquire_selected(&ask("second"), &Choice::Auto)
            .unwrap();
        assert_eq!(decision.provider, second.provider);
        assert_eq!(count(&behind, "acquire"), 2);

        // Recorded by the committer and retried here under the same key: counted once.
        let usage = ledger
            .record_usage(&lease.id, &UsageRecord::new(10, 0))
            .unwrap();
        assert!(usage.duplicate, "{usage:?}");
        assert_eq!(behind.lease(&lease.id).unwrap().used, 10);
        assert_eq!(count(&behind, "usage"), 1);

        // Renewed twice (by the committer, then here): still the one active lease.
        let renewed = ledger.renew(&lease.id).unwrap();
        assert_eq!(renewed.state, LeaseState::Active);

        // Released by the committer: reported with what that release gave back, once.
        let released = ledger.release(&lease.id).unwrap();
        assert_eq!(released.returned, 90);
        assert_eq!(released.lease.state, LeaseState::Released);
        assert_eq!(count(&behind, "release"), 1);
        assert_eq!(fake.seen.lock().unwrap().len(), 5);
        assert!(behind.verify_audit().unwrap().ok);
    }
}
