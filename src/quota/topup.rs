//! Topping up a live lease: more tokens for the same holder, from what its account has left.
//! Granted whole or refused like a named acquire: every budget window must hold the extra
//! tokens, and an account's explicit lease cap bounds the lease's whole allocation.

use serde_json::json;

use super::error::{Denial, DenyReason, QuotaError};
use super::leases::live_lease;
use super::limits::effective_limits;
use super::windows::current_window;
use crate::audit::{self, AuditEvent, action};
use crate::records::{Lease, Window};
use crate::store::Tx;
use crate::types::{InvalidInput, LeaseId, Millis, WindowKind, check_tokens};

/// Grows an active lease's allocation by `tokens`, in the caller's write transaction. A
/// refusal (budget, lease cap) writes only its `deny` row and is returned as `Ok(Err(..))`
/// so that row commits; so is a lease found ended (reclaimed here if it had expired).
pub fn top_up(
    tx: &mut Tx<'_>,
    now: Millis,
    id: &LeaseId,
    tokens: i64,
) -> Result<Result<Lease, QuotaError>, QuotaError> {
    check_tokens("--tokens", tokens)?;
    if tokens == 0 {
        return Err(InvalidInput("--tokens must be at least 1".into()).into());
    }
    let mut lease = match live_lease(tx, now, id)? {
        Ok(l) => l,
        Err(lost) => return Ok(Err(lost)),
    };
    let limits = effective_limits(tx, lease.provider, &lease.account, now)?;
    let grown = lease.allocated.saturating_add(tokens);
    if let Some(cap) = limits.lease_cap
        && grown > cap
    {
        let refusal = QuotaError::OverLeaseCap {
            id: id.clone(),
            allocated: lease.allocated,
            asked: tokens,
            cap,
        };
        deny(
            tx,
            now,
            &lease,
            tokens,
            json!({ "reason": "lease_cap", "cap": cap }),
        )?;
        return Ok(Err(refusal));
    }

    let mut denial = None;
    tx.undo_unless(|tx| -> Result<bool, QuotaError> {
        let mut windows: Vec<(Window, i64)> = Vec::with_capacity(3);
        for kind in [WindowKind::Day, WindowKind::FiveHour, WindowKind::Week] {
            if let Some(limit) = limits.budget_for(kind) {
                let w = current_window(
                    tx,
                    lease.provider,
                    &lease.account,
                    kind,
                    now,
                    limits.reset_offset_min,
                )?;
                windows.push((w, limit));
            }
        }
        for (w, limit) in &windows {
            let remaining = (limit - w.used - w.reserved).max(0);
            if tokens > remaining {
                denial = Some(Denial {
                    reason: DenyReason::Budget(w.kind),
                    provider: lease.provider,
                    account: lease.account.clone(),
                    asked: Some(tokens),
                    available: remaining,
                    limit: *limit,
                    resets_at: Some(w.end_ms),
                });
                return Ok(false);
            }
        }
        for (w, limit) in &windows {
            if !tx.reserve_in_window(w.id, tokens, *limit)? {
                // Checked on the same snapshot just above: fail closed if it ever differs.
                return Err(crate::store::StoreError::Constraint {
                    reason: format!("top-up in the {} window would exceed its limit", w.kind),
                }
                .into());
            }
            tx.add_to_lease_window(id, w.id, tokens)?;
        }
        tx.grow_lease_allocation(id, tokens)?;
        Ok(true)
    })?;
    if let Some(denial) = denial {
        deny(tx, now, &lease, tokens, json!({ "denial": &denial }))?;
        return Ok(Err(QuotaError::Denied(Box::new(denial))));
    }
    lease.allocated = grown;
    audit::append(
        tx,
        now,
        AuditEvent::new(
            action::TOPUP,
            json!({ "tokens": tokens, "allocated": lease.allocated, "fence": lease.fence }),
        )
        .on(lease.provider, &lease.account)
        .by(&lease.agent)
        .lease(id),
    )?;
    Ok(Ok(lease))
}

/// The `deny` row of a refused top-up: the lease, what was asked and why not.
fn deny(
    tx: &Tx<'_>,
    now: Millis,
    lease: &Lease,
    tokens: i64,
    mut detail: serde_json::Value,
) -> Result<(), QuotaError> {
    detail["topup"] = json!(tokens);
    detail["allocated"] = json!(lease.allocated);
    audit::append(
        tx,
        now,
        AuditEvent::new(action::DENY, detail)
            .on(lease.provider, &lease.account)
            .by(&lease.agent)
            .lease(&lease.id),
    )?;
    Ok(())
}
