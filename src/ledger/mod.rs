//! The façade: one [`Ledger`] per process, opened on a database file that any number of
//! processes share. Each method is one transaction; nothing is cached between calls.
//!
//! The hot-path writes are [`Op`]s committed through one seam, [`Committer`] (see [`op`]):
//! by the ledger itself unless the host handed it another committer at open (the CLI hands it
//! the daemon's client). The daemon sits above the ledger and calls
//! [`Ledger::commit_together`]; nothing here imports it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{self, Anchor, ChainSlot, VerifyReport};
use crate::clock::Clock;
use crate::error::Error;
use crate::prices::{Cost, PriceTable};
use crate::quota::{
    self, AcquireRequest, CleanupReport, LimitsUpdate, QuotaError, QuotaStatus, UsageOutcome,
    UsageRecord,
};
use crate::random;
use crate::records::{AuditEntry, AuditQuery, Lease, Limits, UsageGroup, UsageSummary};
use crate::store::{LeaseFilter, Store, StoreCheck};
use crate::types::{Account, LeaseId, LeaseState, Millis, Provider};

pub use crate::quota::Released;

mod agents;
mod batch;
mod calibration;
mod credentials;
mod lease_tokens;
mod live;
mod metering;
mod migrate;
pub mod op;
pub mod options;
mod run;
mod tokens;
pub use crate::oauth::RefreshPolicy;
pub use calibration::{Calibration, FIVE_HOUR_WINDOWS, WEEKLY_WINDOWS};
pub use credentials::{CodexExport, KeyRotation, LogoutReport};
pub use lease_tokens::{LEASE_TOKEN_PREFIX, TokenLease};
pub use live::LiveSnapshot;
pub use metering::Spend;
pub use migrate::{MoveReport, move_ledger};
pub use op::{Committer, Handoff, Op, Outcome, Queued};
pub use options::LedgerConfig;

/// The ledger: credentials (later), limits, leases, usage and the audit trail in one file.
#[derive(Debug, Clone)]
pub struct Ledger {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Also where hot-path ops are committed when not here (`committer`; `None`: always here).
    config: LedgerConfig,
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
            .with_extension(Arc::new(chain_slot(&config)));
        let read_only = config.read_only;
        if !read_only {
            audit::prepare(&store, config.clock.now_ms());
        }
        let ledger = Ledger {
            store,
            clock: config.clock.clone(),
            config,
        };
        if read_only {
            return Ok(ledger);
        }
        // Leases ended by a process that could not remove their private directories (killed,
        // or a daemon's inline reclaim) leave none behind past the next open.
        ledger.sweep_lease_dirs();
        Ok(ledger)
    }

    /// The same ledger committing every op itself, never through the committer it was opened
    /// with: what a committer's own ledger (the daemon's) runs on.
    pub fn direct(&self) -> Ledger {
        let mut config = self.config.clone();
        config.committer = None;
        Ledger {
            config,
            ..self.clone()
        }
    }

    /// Commits an op: through the committer the ledger was opened with, else (or when it
    /// declines) here. A committer that took the op and went silent is settled here from the
    /// ledger itself, the one place a lost reply is settled.
    pub(crate) fn commit(&self, op: Op) -> Result<Outcome, Error> {
        let handoff = match &self.config.committer {
            Some(committer) => committer.commit(&op),
            None => Handoff::Declined,
        };
        match handoff {
            Handoff::Done(result) => *result,
            Handoff::Declined => self.commit_here(&op, false),
            Handoff::Unknown => self.commit_here(&op, true),
        }
    }

    /// The current time on the ledger's clock.
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Where the ledger is, as people may see it: its file, or its server's URL without the
    /// password.
    pub fn location_shown(&self) -> String {
        match &self.config.server {
            Some(url) => url.shown(),
            None => self.db_path().display().to_string(),
        }
    }

    /// What an agent's `AUTHLEDGER_DB` says, so an `authledger` it runs reaches this ledger:
    /// the file, or the server's URL without its password (an agent holds its lease token,
    /// never a credential of the ledger's own; it needs its own way in to the server).
    pub fn location_for_agents(&self) -> String {
        match &self.config.server {
            Some(url) => crate::store::server_url_without_password(url.as_str()),
            None => self.db_path().display().to_string(),
        }
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
        let outcome = self.commit(Op::Acquire {
            id,
            request: req.clone(),
        });
        // Leases reclaimed inline (here or by a committer) leave no private directory behind.
        self.sweep_lease_dirs();
        match outcome? {
            Outcome::Lease(lease) => Ok(lease),
            other => Err(unexpected(&other)),
        }
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

    /// Extends a lease by its TTL (a heartbeat). A lease that already ended is reported lost.
    pub fn renew(&self, id: &LeaseId) -> Result<Lease, Error> {
        match self.commit(Op::Renew { id: id.clone() })? {
            Outcome::Lease(lease) => Ok(lease),
            other => Err(unexpected(&other)),
        }
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
        let released = match self.commit(Op::Release {
            id: id.clone(),
            detail,
        })? {
            Outcome::Released(released) => released,
            other => return Err(unexpected(&other)),
        };
        crate::agent::remove_lease_dir(self.db_path(), id);
        Ok(released)
    }

    /// Grows an active lease's allocation by `tokens` from its account's remaining budget,
    /// whole or refused like a named acquire (audited as `topup`, or `deny` with the lease).
    /// An ended or expired lease is [`QuotaError::LeaseLost`]. One transaction; not an op
    /// for a committer (a gateway calls it directly, like `revoke`).
    pub fn top_up(&self, id: &LeaseId, tokens: i64) -> Result<Lease, Error> {
        let now = self.now();
        settle(self.store.write(|tx| quota::top_up(tx, now, id, tokens)))
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
        // Drawn here, so a lost reply retried directly counts once under the same key.
        let fallback_key = fallback_usage_key()?;
        match self.commit(Op::RecordUsage {
            id: id.clone(),
            record: record.clone(),
            fallback_key,
        })? {
            Outcome::Usage(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
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

    /// Usage since a time, grouped by agent, provider account, day or model.
    pub fn usage_report(
        &self,
        since: Millis,
        group: UsageGroup,
    ) -> Result<Vec<UsageSummary>, Error> {
        Ok(self.store.read(|tx| tx.usage_summary(since, group))?)
    }

    /// What usage since a time cost, per group key (the keys of [`Ledger::usage_report`]),
    /// each record priced on its own by `prices` (its tier is its own request's).
    pub fn usage_cost(
        &self,
        since: Millis,
        group: UsageGroup,
        prices: &PriceTable,
    ) -> Result<BTreeMap<String, Cost>, Error> {
        let mut costs: BTreeMap<String, Cost> = BTreeMap::new();
        self.store.read(|tx| {
            tx.usage_each(since, group, &mut |key, usage| match costs.get_mut(key) {
                Some(c) => c.add(prices, usage),
                None => costs.entry(key.to_string()).or_default().add(prices, usage),
            })
        })?;
        Ok(costs)
    }

    /// Audit rows matching a query, oldest first.
    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, Error> {
        Ok(self.store.read(|tx| tx.audit_query(query))?)
    }

    /// How many audit rows each action has, per provider (`None`: rows of no provider).
    pub fn audit_counts(&self) -> Result<Vec<(String, Option<String>, i64)>, Error> {
        Ok(self.store.read(|tx| tx.audit_counts())?)
    }

    /// Requests of the usage records that carry an outcome (the gateway's), per provider
    /// and outcome (`completed`, `failed`, …).
    pub fn usage_outcomes(&self) -> Result<Vec<(String, String, i64)>, Error> {
        Ok(self.store.read(|tx| tx.usage_outcomes())?)
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

    /// The store's health (schema, integrity, engine facts, files), for `doctor`: asked of
    /// the store in its own terms, so the CLI never sees which engine is underneath.
    pub fn store_check(&self) -> Result<StoreCheck, Error> {
        Ok(self.store.check()?)
    }

    /// The schema version recorded in the database, for `init`.
    pub fn schema_version(&self) -> Result<i64, Error> {
        Ok(self.store.schema_versions()?.1)
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

/// The idempotency key a usage record without one of its own is stored under.
fn fallback_usage_key() -> Result<String, Error> {
    Ok(format!(
        "auto-{}",
        hex::encode(random::bytes::<12>().map_err(QuotaError::from)?)
    ))
}

/// An outcome of the wrong kind for its op: a committer's bug (the daemon's client checks
/// the kind of every reply, so a daemon of another version never gets here).
fn unexpected(outcome: &Outcome) -> Error {
    Error::Daemon {
        exit_code: crate::error::exit::OTHER,
        message: format!("the committer answered with an unexpected outcome ({outcome:?})"),
    }
}
