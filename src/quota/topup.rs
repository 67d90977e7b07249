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
    grow(tx, now, id, tokens, 0)
}

/// Reserves `tokens` more for the lease and grows its allocation by `tokens + absorbed`:
/// `absorbed` is usage already recorded past the allocation, which the windows counted as used
/// when it was recorded, so it grows the allocation without a second reservation.
fn grow(
    tx: &mut Tx<'_>,
    now: Millis,
    id: &LeaseId,
    tokens: i64,
    absorbed: i64,
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
    let grown = lease
        .allocated
        .saturating_add(tokens)
        .saturating_add(absorbed);
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
        tx.grow_lease_allocation(id, tokens.saturating_add(absorbed))?;
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
            if absorbed > 0 {
                json!({
                    "tokens": tokens,
                    "absorbed": absorbed,
                    "allocated": lease.allocated,
                    "fence": lease.fence,
                })
            } else {
                json!({ "tokens": tokens, "allocated": lease.allocated, "fence": lease.fence })
            },
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

/// Lets an active lease that has used its allocation spend again (the gateway, before it
/// forwards a request). `pending` is what the lease has spent that is not recorded yet (the
/// gateway's queued records). Past its allocation, the lease gets `want` more tokens plus what
/// its pending spending will take beyond what it still holds, or what every budget window and
/// the lease cap allow when that is less; usage already recorded past the allocation (counted
/// by the windows when it was recorded) is absorbed into the allocation, not reserved again.
/// Refused (with its `deny` row, and the reset in the refusal) when nothing is left beyond the
/// pending spending. A lease still within its allocation, or on an account without a token
/// budget or lease cap, is returned unchanged, with nothing written.
pub fn top_up_to_spend(
    tx: &mut Tx<'_>,
    now: Millis,
    id: &LeaseId,
    want: i64,
    pending: i64,
) -> Result<Result<Lease, QuotaError>, QuotaError> {
    let lease = match live_lease(tx, now, id)? {
        Ok(l) => l,
        Err(lost) => return Ok(Err(lost)),
    };
    let pending = pending.max(0);
    if lease.used.saturating_add(pending) < lease.allocated {
        return Ok(Ok(lease));
    }
    let absorbed = (lease.used - lease.allocated).max(0);
    // What the pending records will take beyond what the lease still holds.
    let held = (lease.allocated - lease.used).max(0);
    let unheld = (pending - held).max(0);
    let limits = effective_limits(tx, lease.provider, &lease.account, now)?;
    let mut room = i64::MAX;
    if let Some(cap) = limits.lease_cap {
        room = room.min(cap.saturating_sub(lease.used.saturating_add(pending)));
    }
    let mut budgeted = limits.lease_cap.is_some();
    for kind in [WindowKind::Day, WindowKind::FiveHour, WindowKind::Week] {
        if let Some(limit) = limits.budget_for(kind) {
            budgeted = true;
            let w = current_window(
                tx,
                lease.provider,
                &lease.account,
                kind,
                now,
                limits.reset_offset_min,
            )?;
            room = room.min(limit - w.used - w.reserved - unheld);
        }
    }
    if !budgeted {
        return Ok(Ok(lease));
    }
    let want = want.max(1);
    if room > 0 {
        return grow(tx, now, id, unheld.saturating_add(want.min(room)), absorbed);
    }
    // Nothing left: asking for one token more than the pending spending is refused, and says
    // by which limit (the lease cap, or the window that has nothing, with its reset).
    grow(tx, now, id, unheld.saturating_add(1), absorbed)
}
