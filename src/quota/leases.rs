//! A lease's life after the grant: renew, release, revoke, and reclaiming expired or idle ones.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::error::QuotaError;
use crate::audit::{self, AuditEvent, action};
use crate::records::Lease;
use crate::store::{StoreError, Tx};
use crate::types::{Account, InvalidInput, LeaseId, LeaseState, Millis, Provider};

/// Gives back what a lease still holds in each window; returns the tokens returned. Each
/// lease-window row is zeroed as it is returned, so the same tokens can never go back twice.
fn return_reservation(tx: &Tx<'_>, id: &LeaseId) -> Result<i64, StoreError> {
    tx.return_lease_reservations(id)
}

/// Ends an active lease as expired or revoked, returns its reservation, and audits it.
pub(crate) fn reclaim(
    tx: &Tx<'_>,
    now: Millis,
    lease: &Lease,
    state: LeaseState,
    reason: &str,
) -> Result<i64, StoreError> {
    if !tx.end_lease(&lease.id, state, now, reason)? {
        return Ok(0);
    }
    let returned = return_reservation(tx, &lease.id)?;
    let act = if state == LeaseState::Revoked {
        action::REVOKE
    } else {
        action::EXPIRE
    };
    audit::append(
        tx,
        now,
        AuditEvent::new(
            act,
            json!({
                "reason": reason,
                "returned": returned,
                "allocated": lease.allocated,
                "used": lease.used,
                "expires_at": lease.expires_at,
                "heartbeat_at": lease.heartbeat_at,
            }),
        )
        .on(lease.provider, &lease.account)
        .by(&lease.agent)
        .lease(&lease.id),
    )?;
    Ok(returned)
}

/// Reclaims one account's leases that are past their TTL at `now` or idle since
/// `idle_before` (what an acquire does before it counts slots, so a crashed holder's slot
/// frees at its TTL without waiting for cleanup). Returns the leases reclaimed.
pub(crate) fn reclaim_stale(
    tx: &Tx<'_>,
    now: Millis,
    idle_before: Millis,
    provider: Provider,
    account: &Account,
) -> Result<Vec<LeaseId>, StoreError> {
    let mut ended = Vec::new();
    for lease in tx.stale_leases_of(provider, account, now, idle_before)? {
        let reason = if lease.expires_at <= now {
            "ttl"
        } else {
            "idle"
        };
        reclaim(tx, now, &lease, LeaseState::Expired, reason)?;
        ended.push(lease.id);
    }
    Ok(ended)
}

/// The last heartbeat time at or before which a lease counts as idle, for an idle timeout.
pub fn idle_cutoff(now: Millis, idle: Duration) -> Millis {
    now.saturating_sub(i64::try_from(idle.as_millis()).unwrap_or(i64::MAX))
}

/// Loads an active, unexpired lease. A lease whose TTL ran out but that nobody reclaimed yet
/// is reclaimed here (in the caller's transaction) and reported lost.
pub(crate) fn live_lease(
    tx: &Tx<'_>,
    now: Millis,
    id: &LeaseId,
) -> Result<Result<Lease, QuotaError>, QuotaError> {
    let lease = tx
        .lease(id)?
        .ok_or_else(|| QuotaError::UnknownLease(id.clone()))?;
    if lease.state != LeaseState::Active {
        return Ok(Err(lost(&lease, lease.ended_at.unwrap_or(now))));
    }
    if lease.expires_at <= now {
        reclaim(tx, now, &lease, LeaseState::Expired, "ttl")?;
        let mut ended = lease.clone();
        ended.state = LeaseState::Expired;
        return Ok(Err(lost(&ended, now)));
    }
    Ok(Ok(lease))
}

fn lost(lease: &Lease, ended_at: Millis) -> QuotaError {
    QuotaError::LeaseLost {
        id: lease.id.clone(),
        state: lease.state,
        ended_at,
    }
}

/// Extends a live lease by its TTL from now (a heartbeat).
pub fn renew(
    tx: &Tx<'_>,
    now: Millis,
    id: &LeaseId,
) -> Result<Result<Lease, QuotaError>, QuotaError> {
    let mut lease = match live_lease(tx, now, id)? {
        Ok(l) => l,
        Err(e) => return Ok(Err(e)),
    };
    lease.heartbeat_at = now;
    lease.expires_at = now + lease.ttl_ms;
    tx.touch_lease(id, now, lease.expires_at)?;
    audit::append(
        tx,
        now,
        AuditEvent::new(
            action::RENEW,
            json!({ "expires_at": lease.expires_at, "fence": lease.fence }),
        )
        .on(lease.provider, &lease.account)
        .by(&lease.agent)
        .lease(id),
    )?;
    Ok(Ok(lease))
}

/// What a release gave back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Released {
    /// The lease as it ended.
    pub lease: Lease,
    /// Unused tokens returned to the windows.
    pub returned: i64,
}

/// Ends a live lease at its holder's request and returns its unused tokens, exactly once.
/// `detail` adds facts to the audit row (e.g. the exit code of `run`'s child).
pub fn release(
    tx: &Tx<'_>,
    now: Millis,
    id: &LeaseId,
    detail: Option<serde_json::Value>,
) -> Result<Result<Released, QuotaError>, QuotaError> {
    check_release_detail(detail.as_ref())?;
    let mut lease = match live_lease(tx, now, id)? {
        Ok(l) => l,
        Err(e) => return Ok(Err(e)),
    };
    // Read what it holds before anything is written (on a server, both were read with
    // `BEGIN` and the writes go with `COMMIT`).
    let returned = return_reservation(tx, id)?;
    tx.end_active_lease(id, LeaseState::Released, now, "released")?;
    crate::fault::point("release:after-end");
    lease.state = LeaseState::Released;
    lease.ended_at = Some(now);
    lease.end_reason = Some("released".into());
    let facts = ReleaseFacts {
        allocated: lease.allocated,
        used: lease.used,
        returned,
        holder: detail,
    };
    audit::append(
        tx,
        now,
        AuditEvent::new(action::RELEASE, facts.to_json())
            .on(lease.provider, &lease.account)
            .by(&lease.agent)
            .lease(id),
    )?;
    Ok(Ok(Released { lease, returned }))
}

/// What a `release` audit row says: written by [`release`], and read back by whoever must
/// learn after the fact what a release gave back (a caller whose reply was lost), since the
/// lease's reservations are gone once it ends.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseFacts {
    /// The lease's allocation.
    pub allocated: i64,
    /// What it had used.
    pub used: i64,
    /// Unused tokens returned to the windows.
    pub returned: i64,
    /// The holder's own facts (e.g. `run`'s exit code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<serde_json::Value>,
}

impl ReleaseFacts {
    /// The row's detail: the fields above, `holder` only when there is one.
    fn to_json(&self) -> serde_json::Value {
        let mut facts = json!({
            "allocated": self.allocated,
            "used": self.used,
            "returned": self.returned,
        });
        if let (Some(holder), Some(map)) = (&self.holder, facts.as_object_mut()) {
            map.insert("holder".into(), holder.clone());
        }
        facts
    }

    /// Reads a `release` row's detail.
    pub fn from_detail(detail: &str) -> Option<ReleaseFacts> {
        serde_json::from_str(detail).ok()
    }
}

/// The most a holder's release facts may take in the audit row.
const MAX_DETAIL_BYTES: usize = 4096;

/// The holder's facts for a release row: a small JSON object, whichever path sent it (the
/// daemon's frames carry whatever a client wrote).
fn check_release_detail(detail: Option<&serde_json::Value>) -> Result<(), InvalidInput> {
    let Some(d) = detail else {
        return Ok(());
    };
    if !d.is_object() || d.to_string().len() > MAX_DETAIL_BYTES {
        return Err(InvalidInput(format!(
            "release details must be a JSON object of at most {MAX_DETAIL_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Takes a lease away from its holder (operator decision, credential logged out).
pub fn revoke(
    tx: &Tx<'_>,
    now: Millis,
    id: &LeaseId,
    reason: &str,
) -> Result<Result<i64, QuotaError>, QuotaError> {
    let lease = tx
        .lease(id)?
        .ok_or_else(|| QuotaError::UnknownLease(id.clone()))?;
    if lease.state != LeaseState::Active {
        return Ok(Err(lost(&lease, lease.ended_at.unwrap_or(now))));
    }
    Ok(Ok(reclaim(tx, now, &lease, LeaseState::Revoked, reason)?))
}

/// What a cleanup pass reclaimed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Leases whose TTL had run out.
    pub expired: u64,
    /// Leases with no heartbeat for the idle time.
    pub idle: u64,
    /// Tokens returned to the windows.
    pub tokens_returned: i64,
    /// The leases reclaimed.
    pub leases: Vec<LeaseId>,
}

/// Reclaims every expired lease and every lease idle for longer than `idle`.
pub fn cleanup(tx: &Tx<'_>, now: Millis, idle: Duration) -> Result<CleanupReport, StoreError> {
    let idle_before = idle_cutoff(now, idle);
    let mut report = CleanupReport::default();
    for lease in tx.stale_leases(now, idle_before)? {
        let reason = if lease.expires_at <= now {
            report.expired += 1;
            "ttl"
        } else {
            report.idle += 1;
            "idle"
        };
        report.tokens_returned += reclaim(tx, now, &lease, LeaseState::Expired, reason)?;
        report.leases.push(lease.id);
    }
    Ok(report)
}
