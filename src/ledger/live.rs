//! One consistent read of everything a live view (`authledger top`) shows, so its figures
//! never mix two moments of the ledger.

use std::collections::BTreeMap;

use super::Ledger;
use crate::audit::action;
use crate::error::Error;
use crate::prices::{Cost, PriceTable};
use crate::quota::{self, QuotaStatus};
use crate::records::{AuditEntry, AuditQuery, HealthRecord, Lease, UsageGroup};
use crate::store::{LeaseFilter, StoreError};
use crate::types::Millis;

/// What one read of the ledger holds for a live view.
#[derive(Debug, Clone)]
pub struct LiveSnapshot {
    /// The ledger's time of the read.
    pub now: Millis,
    /// Every account's quota and windows.
    pub quotas: Vec<QuotaStatus>,
    /// Each account's reported health, in the order of `quotas`.
    pub health: Vec<Option<HealthRecord>>,
    /// The active leases.
    pub leases: Vec<Lease>,
    /// Per active lease id: requests recorded and their cost.
    pub lease_usage: BTreeMap<String, (i64, Cost)>,
    /// Per `provider/account`: tokens recorded since `burn_since`.
    pub recent_tokens: BTreeMap<String, i64>,
    /// The start of the burn-rate span.
    pub burn_since: Millis,
    /// The latest denials, fallbacks and top-ups, newest first.
    pub events: Vec<AuditEntry>,
}

impl Ledger {
    /// Everything `top` shows, read in one transaction: usage since `burn_since` per account,
    /// the active leases' own usage priced with `prices`, and the newest `events` audit rows
    /// among denials, fallbacks and top-ups.
    pub fn live_snapshot(
        &self,
        burn_since: Millis,
        events: u32,
        prices: &PriceTable,
    ) -> Result<LiveSnapshot, Error> {
        let now = self.now();
        let idle_before = quota::idle_cutoff(now, self.config.idle_timeout);
        Ok(self.store.read(|tx| -> Result<_, StoreError> {
            let quotas = quota::quota_status(tx, now, idle_before, None)?;
            let health = quotas
                .iter()
                .map(|q| tx.health(q.provider, &q.account))
                .collect::<Result<Vec<_>, _>>()?;
            let leases = tx.leases(LeaseFilter::Active)?;
            let mut lease_usage: BTreeMap<String, (i64, Cost)> = BTreeMap::new();
            if let Some(first) = leases.iter().map(|l| l.created_at).min() {
                tx.usage_each(first, UsageGroup::Session, &mut |key, u| {
                    if leases.iter().any(|l| l.id.as_str() == key) {
                        let e = lease_usage.entry(key.to_string()).or_default();
                        e.0 += u.requests;
                        e.1.add(prices, u);
                    }
                })?;
            }
            let mut recent_tokens: BTreeMap<String, i64> = BTreeMap::new();
            tx.usage_each(burn_since, UsageGroup::Provider, &mut |key, u| {
                *recent_tokens.entry(key.to_string()).or_default() +=
                    u.input + u.output + u.cache_read + u.cache_write;
            })?;
            let mut rows = Vec::new();
            for a in [action::DENY, action::FALLBACK, action::TOPUP] {
                rows.extend(tx.audit_query(&AuditQuery {
                    action: Some(a.to_string()),
                    limit: Some(events),
                    ..AuditQuery::default()
                })?);
            }
            rows.sort_by_key(|r| std::cmp::Reverse(r.seq));
            rows.truncate(events as usize);
            Ok(LiveSnapshot {
                now,
                quotas,
                health,
                leases,
                lease_usage,
                recent_tokens,
                burn_since,
                events: rows,
            })
        })?)
    }
}
