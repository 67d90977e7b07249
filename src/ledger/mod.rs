//! The façade: one [`Ledger`] per process, opened on a database file that any number of
//! processes share. Each method is one transaction; nothing is cached between calls.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{self, Anchor, ChainSlot, VerifyReport};
use crate::clock::Clock;
use crate::daemon::protocol::{Outcome, Request};
use crate::daemon::{Call, DaemonLink};
use crate::error::Error;
use crate::options::LedgerConfig;
use crate::quota::{
    self, AcquireRequest, CleanupReport, LimitsUpdate, QuotaError, QuotaStatus, UsageOutcome,
    UsageRecord,
};
use crate::random;
use crate::records::{AuditEntry, AuditQuery, Lease, Limits, UsageGroup, UsageSummary};
use crate::store::{LeaseFilter, Store};
use crate::types::{Account, LeaseId, LeaseState, Millis, Provider};

pub use crate::quota::Released;

mod agents;
mod batch;
mod credentials;
mod run;
mod tokens;
pub use crate::oauth::RefreshPolicy;
pub use credentials::{CodexExport, KeyRotation, LogoutReport};

/// The ledger: credentials (later), limits, leases, usage and the audit trail in one file.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Store,
    clock: Arc<dyn Clock>,
    config: LedgerConfig,
    daemon: Arc<DaemonLink>,
}

/// Runs a write whose closure may want to commit and still report an error (a lease found
/// expired is reclaimed, then reported lost).
fn settle<T>(r: Result<Result<T, QuotaError>, QuotaError>) -> Result<T, Error> {
    Ok(r??)
}

impl Ledger {
    /// Opens (creating and migrating if needed) the ledger described by `config`.
    pub fn open(config: LedgerConfig) -> Result<Ledger, Error> {
        let store = Store::open(&config.db_path, config.store_options())?
            .with_chain(Arc::new(chain_slot(&config)));
        audit::prepare(&store, config.clock.now_ms());
        let daemon = DaemonLink::new(
            &config.db_path,
            config.use_daemon && config.clock.is_wall_clock(),
        );
        let ledger = Ledger {
            store,
            clock: config.clock.clone(),
            config,
            daemon: Arc::new(daemon),
        };
        // Leases ended by a process that could not remove their private directories (killed,
        // or a daemon's inline reclaim) leave none behind past the next open.
        ledger.sweep_lease_dirs();
        Ok(ledger)
    }

    /// The same ledger working on the database directly, never through a daemon: what the
    /// daemon itself runs on.
    pub fn without_daemon(&self) -> Ledger {
        Ledger {
            daemon: Arc::new(DaemonLink::new(self.db_path(), false)),
            ..self.clone()
        }
    }

    /// The current time on the ledger's clock.
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        self.store.path()
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// Stores the default limits for every provider that has none, so a fresh ledger shows
    /// what it enforces. Safe to run again.
    pub fn init(&self) -> Result<Vec<Limits>, Error> {
        let now = self.now();
        Ok(self.store.write(|tx| {
            Provider::ALL
                .iter()
                .map(|p| quota::ensure_limits(tx, *p, &Account::default(), now))
                .collect::<Result<Vec<_>, _>>()
        })?)
    }

    /// The limits in force for an account.
    pub fn limits(&self, provider: Provider, account: &Account) -> Result<Limits, Error> {
        let now = self.now();
        Ok(self
            .store
            .read(|tx| quota::effective_limits(tx, provider, account, now))?)
    }

    /// Changes some of an account's limits (audited as `limits`).
    pub fn set_limits(
        &self,
        provider: Provider,
        account: &Account,
        update: &LimitsUpdate,
    ) -> Result<Limits, Error> {
        update.validate()?;
        let now = self.now();
        Ok(self
            .store
            .write(|tx| quota::set_limits(tx, now, provider, account, update))?)
    }

    /// Grants a lease or refuses it with [`QuotaError::Denied`] (audited as `acquire`/`deny`).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use authledger::{Account, AcquireRequest, AgentId, Credential, KeySource, Ledger, LedgerConfig, Provider, Secret, UsageRecord};
    /// let dir = tempfile::tempdir()?;
    /// let ledger = Ledger::open(LedgerConfig::new(dir.path().join("ledger.db"))
    ///     .with_key(KeySource::File(dir.path().join("master.key"))))?;
    /// let key = Secret::new("sk-ant-api03-example-key-0000".into());
    /// ledger.store_credential(&Credential::api_key(Provider::Claude, Account::default(), key, "stdin"))?;
    ///
    /// let lease = ledger.acquire(&AcquireRequest::new(AgentId::new("reviewer")?, Provider::Claude).tokens(5_000))?;
    /// ledger.record_usage(&lease.id, &UsageRecord::new(1_200, 300).key("req-1"))?;
    /// let released = ledger.release(&lease.id)?;
    /// assert_eq!(released.returned, 3_500);
    /// # Ok(()) }
    /// ```
    pub fn acquire(&self, req: &AcquireRequest) -> Result<Lease, Error> {
        req.validate()?;
        let id = LeaseId::from_random(random::bytes().map_err(QuotaError::from)?);
        let call = self.through_daemon(|| Request::Acquire {
            id: id.clone(),
            request: req.clone(),
        });
        match call {
            Call::Replied(reply) => {
                self.sweep_lease_dirs();
                match (*reply)? {
                    Outcome::Lease(lease) => Ok(lease),
                    other => Err(unexpected(&other)),
                }
            }
            // The daemon may have granted it before going away: the lease id tells.
            Call::Lost => self.acquire_direct(req, id, true),
            Call::NoDaemon => self.acquire_direct(req, id, false),
        }
    }

    fn acquire_direct(
        &self,
        req: &AcquireRequest,
        id: LeaseId,
        resume: bool,
    ) -> Result<Lease, Error> {
        let now = self.now();
        let idle_before = quota::idle_cutoff(now, self.config.idle_timeout);
        let outcome = self.store.write(|tx| -> Result<_, Error> {
            if resume && let Some(granted) = tx.lease(&id)? {
                return Ok(Ok(granted));
            }
            batch::acquire_in(tx, now, idle_before, req, id)
        })?;
        self.sweep_lease_dirs();
        outcome
    }

    /// Removes the private directories of leases that ended, here or in any other process
    /// (an inline reclaim, a daemon, another CLI). Best effort, never an error: a directory
    /// left behind is removed by the next sweep.
    pub(crate) fn sweep_lease_dirs(&self) {
        let dirs = crate::agent::lease_dirs(self.db_path());
        if dirs.is_empty() {
            return;
        }
        let ended: Vec<LeaseId> = self
            .store
            .read(|tx| -> Result<Vec<LeaseId>, crate::store::StoreError> {
                let mut ended = Vec::new();
                for id in dirs {
                    if tx
                        .lease(&id)?
                        .is_some_and(|l| l.state != LeaseState::Active)
                    {
                        ended.push(id);
                    }
                }
                Ok(ended)
            })
            .unwrap_or_default();
        for id in &ended {
            crate::agent::remove_lease_dir(self.db_path(), id);
        }
    }

    /// Hands a request to the daemon when this ledger uses one; `request` is built only then.
    fn through_daemon(&self, request: impl FnOnce() -> Request) -> Call {
        if self.daemon.enabled() {
            self.daemon.call(request())
        } else {
            Call::NoDaemon
        }
    }

    /// Extends a lease by its TTL (a heartbeat). A lease that already ended is reported lost.
    pub fn renew(&self, id: &LeaseId) -> Result<Lease, Error> {
        // A renew is safe to repeat, so a lost reply is simply retried here.
        if let Call::Replied(reply) = self.through_daemon(|| Request::Renew { id: id.clone() }) {
            return match (*reply)? {
                Outcome::Lease(lease) => Ok(lease),
                other => Err(unexpected(&other)),
            };
        }
        let now = self.now();
        settle(self.store.write(|tx| quota::renew(tx, now, id)))
    }

    /// Ends a lease and returns its unused tokens, exactly once.
    pub fn release(&self, id: &LeaseId) -> Result<Released, Error> {
        self.release_with(id, None)
    }

    /// [`release`](Self::release) with facts from the holder for the audit row (e.g. the exit
    /// code of the agent process).
    pub fn release_with(
        &self,
        id: &LeaseId,
        detail: Option<serde_json::Value>,
    ) -> Result<Released, Error> {
        let call = self.through_daemon(|| Request::Release {
            id: id.clone(),
            detail: detail.clone(),
        });
        let released = match call {
            Call::Replied(reply) => match (*reply)? {
                Outcome::Released(released) => released,
                other => return Err(unexpected(&other)),
            },
            Call::NoDaemon => self.release_direct(id, detail)?,
            Call::Lost => match self.release_direct(id, detail) {
                // The daemon released it before going away: its `release` row says what it
                // gave back.
                Err(Error::Quota(QuotaError::LeaseLost {
                    state: LeaseState::Released,
                    ..
                })) => {
                    let (lease, detail) = self.store.read(|tx| -> Result<_, Error> {
                        Ok((tx.lease(id)?, tx.lease_audit_detail(id, "release")?))
                    })?;
                    let lease = lease.ok_or_else(|| QuotaError::UnknownLease(id.clone()))?;
                    let returned = detail
                        .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                        .and_then(|d| d["returned"].as_i64())
                        .unwrap_or(0);
                    Released { lease, returned }
                }
                other => other?,
            },
        };
        crate::agent::remove_lease_dir(self.db_path(), id);
        Ok(released)
    }

    fn release_direct(
        &self,
        id: &LeaseId,
        detail: Option<serde_json::Value>,
    ) -> Result<Released, Error> {
        let now = self.now();
        settle(self.store.write(|tx| quota::release(tx, now, id, detail)))
    }

    /// Takes a lease away from its holder; returns the tokens given back.
    pub fn revoke(&self, id: &LeaseId, reason: &str) -> Result<i64, Error> {
        let now = self.now();
        let returned = settle(self.store.write(|tx| quota::revoke(tx, now, id, reason)))?;
        crate::agent::remove_lease_dir(self.db_path(), id);
        Ok(returned)
    }

    /// Records usage on a lease, idempotently by key. Recorded even if the lease ended; the
    /// outcome says whether the lease is exhausted or lost.
    pub fn record_usage(&self, id: &LeaseId, record: &UsageRecord) -> Result<UsageOutcome, Error> {
        record.validate()?;
        let fallback = format!(
            "auto-{}",
            hex::encode(random::bytes::<12>().map_err(QuotaError::from)?)
        );
        let call = self.through_daemon(|| Request::RecordUsage {
            id: id.clone(),
            record: record.clone(),
            fallback_key: fallback.clone(),
        });
        // A lost reply is retried directly: the same key makes it count once.
        if let Call::Replied(reply) = call {
            return match (*reply)? {
                Outcome::Usage(outcome) => Ok(outcome),
                other => Err(unexpected(&other)),
            };
        }
        let now = self.now();
        Ok(self
            .store
            .write(|tx| quota::record_usage(tx, now, id, record, fallback))?)
    }

    /// Reclaims expired leases and leases idle longer than the configured idle timeout.
    pub fn cleanup(&self) -> Result<CleanupReport, Error> {
        self.cleanup_idle(self.config.idle_timeout)
    }

    /// Reclaims expired leases and leases idle longer than `idle`.
    pub fn cleanup_idle(&self, idle: Duration) -> Result<CleanupReport, Error> {
        let now = self.now();
        let report = self.store.write(|tx| quota::cleanup(tx, now, idle))?;
        // Private agent directories of leases that ended (here or anywhere else) go too.
        self.sweep_lease_dirs();
        Ok(report)
    }

    /// The quota of every account, or of one provider's.
    pub fn quota(&self, provider: Option<Provider>) -> Result<Vec<QuotaStatus>, Error> {
        let now = self.now();
        Ok(self.store.read(|tx| {
            let idle_before = quota::idle_cutoff(now, self.config.idle_timeout);
            quota::quota_status(tx, now, idle_before, provider)
        })?)
    }

    /// One lease.
    pub fn lease(&self, id: &LeaseId) -> Result<Lease, Error> {
        self.store
            .read(|tx| tx.lease(id))?
            .ok_or_else(|| Error::Quota(QuotaError::UnknownLease(id.clone())))
    }

    /// Checks that `fence` is the lease's fencing number, so a holder that kept a lease id
    /// from elsewhere cannot act on it. (Lease ids are never reused, so renew, release and
    /// record_usage already refuse a holder whose lease ended; the fence is for callers that
    /// pass leases between processes and for resources guarded by it.)
    pub fn check_fence(&self, id: &LeaseId, fence: i64) -> Result<(), Error> {
        let lease = self.lease(id)?;
        if lease.fence == fence {
            Ok(())
        } else {
            Err(QuotaError::StaleFence {
                id: id.clone(),
                given: fence,
                actual: lease.fence,
            }
            .into())
        }
    }

    /// Active leases, or every lease with `all`.
    pub fn leases(&self, all: bool) -> Result<Vec<Lease>, Error> {
        let filter = if all {
            LeaseFilter::All
        } else {
            LeaseFilter::Active
        };
        Ok(self.store.read(|tx| tx.leases(filter))?)
    }

    /// Usage since a time, grouped by agent, provider account or day.
    pub fn usage_report(
        &self,
        since: Millis,
        group: UsageGroup,
    ) -> Result<Vec<UsageSummary>, Error> {
        Ok(self.store.read(|tx| tx.usage_summary(since, group))?)
    }

    /// Audit rows matching a query, oldest first.
    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, Error> {
        Ok(self.store.read(|tx| tx.audit_query(query))?)
    }

    /// Walks the whole audit chain; the report names the first bad row if any. A keyed trail
    /// needs the master key (exit 5 without it).
    pub fn verify_audit(&self) -> Result<VerifyReport, Error> {
        Ok(self.store.read(|tx| audit::verify(tx))?)
    }

    /// [`verify_audit`](Self::verify_audit), and also that the trail still extends `anchor`
    /// (a head kept elsewhere): a cut or rewrite before it is named.
    pub fn verify_audit_against(&self, anchor: &Anchor) -> Result<VerifyReport, Error> {
        Ok(self
            .store
            .read(|tx| audit::verify_against(tx, Some(anchor)))?)
    }

    /// The trail's current head, to keep outside the ledger; refused (exit 5) when the trail
    /// does not verify, so a tampered head is never handed out as an anchor.
    pub fn audit_anchor(&self) -> Result<Anchor, Error> {
        self.store.read(|tx| -> Result<_, Error> {
            let report = audit::verify(tx)?;
            if !report.ok {
                return Err(Error::AuditBroken {
                    seq: report.first_bad_seq.unwrap_or(0),
                    problem: report.problem.unwrap_or_default(),
                });
            }
            Ok(audit::anchor(tx)?)
        })
    }

    /// The storage underneath, for `doctor`.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// How this ledger's transactions unlock the master key to reach the audit chain key.
fn chain_slot(config: &LedgerConfig) -> ChainSlot {
    let resolved = config.key.resolve().map_err(|e| e.to_string());
    ChainSlot::new(move |tx| match &resolved {
        Ok(source) => crate::vault::unlock(tx, source, false),
        Err(why) => Err(crate::vault::VaultError::NoKey(why.clone())),
    })
}

/// A reply of the wrong kind: a daemon of another version, most likely.
fn unexpected(outcome: &Outcome) -> Error {
    Error::Daemon {
        exit_code: crate::error::exit::OTHER,
        message: format!("the daemon answered with an unexpected reply ({outcome:?}); restart it"),
    }
}
