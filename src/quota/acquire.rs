//! Granting leases: concurrency, rate and budget checks, then a conditional reservation.

use std::time::Duration;

use serde_json::json;

use super::error::{Denial, DenyReason, QuotaError};
use super::leases::reclaim_stale;
use super::limits::ensure_limits;
use super::windows::current_window;
use crate::audit::{self, AuditEvent, action};
use crate::records::{Lease, Limits, Window};
use crate::store::Tx;
use crate::types::{
    Account, AgentId, InvalidInput, LeaseId, LeaseState, Millis, Provider, WindowKind, check_tokens,
};

/// The shortest and longest TTL a lease may have.
pub const TTL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(30 * 86_400));

/// The default lease TTL (README, "Leases"): two hours, extended by each renew.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2 * 3600);

/// What an agent asks for.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    /// Who asks.
    pub agent: AgentId,
    /// Which provider.
    pub provider: Provider,
    /// Which account of it.
    pub account: Account,
    /// A named figure (granted whole or refused), or `None` for a fair share.
    pub tokens: Option<i64>,
    /// How long the lease lives without a renew.
    pub ttl: Duration,
    /// Whether a refusal is written to the audit trail. A caller that retries (`--wait`) turns
    /// it off for all but its last attempt, so waiting does not flood the trail.
    pub audit_denial: bool,
}

impl AcquireRequest {
    /// A fair-share request on the default account with the default TTL.
    pub fn new(agent: AgentId, provider: Provider) -> Self {
        AcquireRequest {
            agent,
            provider,
            account: Account::default(),
            tokens: None,
            ttl: DEFAULT_TTL,
            audit_denial: true,
        }
    }

    /// Asks for exactly `n` tokens.
    pub fn tokens(mut self, n: i64) -> Self {
        self.tokens = Some(n);
        self
    }

    /// Sets the TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Uses a named account.
    pub fn account(mut self, account: Account) -> Self {
        self.account = account;
        self
    }

    /// Checks the figures before the database is touched.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if let Some(n) = self.tokens {
            check_tokens("--tokens", n)?;
            if n == 0 {
                return Err(InvalidInput("--tokens must be at least 1".into()));
            }
        }
        if self.ttl < TTL_RANGE.0 || self.ttl > TTL_RANGE.1 {
            return Err(InvalidInput(format!(
                "--ttl must be between {} and {}",
                humantime::format_duration(TTL_RANGE.0),
                humantime::format_duration(TTL_RANGE.1)
            )));
        }
        Ok(())
    }
}

/// Grants a lease or refuses it, in the caller's write transaction. A refusal leaves no trace
/// of the decision (no window opened by it) but its audit row, and is returned as
/// `Ok(Err(denial))` so the transaction still commits that row.
///
/// `idle_before` is the idle cutoff ([`idle_cutoff`](super::idle_cutoff)): a lease not heard
/// from since then is reclaimed like one past its TTL.
pub fn acquire(
    tx: &mut Tx<'_>,
    now: Millis,
    idle_before: Millis,
    req: &AcquireRequest,
    lease_id: LeaseId,
) -> Result<Result<Lease, Denial>, QuotaError> {
    req.validate()?;
    // Correctness never waits for cleanup: this account's expired and idle leases go back
    // first.
    reclaim_stale(tx, now, idle_before, req.provider, &req.account)?;
    let limits = ensure_limits(tx, req.provider, &req.account, now)?;
    // Deciding may open a window; a refusal undoes that. The grant's writes need no savepoint:
    // if one fails, the whole transaction rolls back.
    let mut decision = None;
    tx.undo_unless(|tx| -> Result<bool, QuotaError> {
        let decided = decide(tx, now, idle_before, req, &limits)?;
        let keep = decided.is_ok();
        decision = Some(decided);
        Ok(keep)
    })?;
    match decision {
        Some(Ok((amount, windows))) => Ok(Ok(grant(
            tx, now, req, lease_id, &limits, amount, &windows,
        )?)),
        Some(Err(denial)) => {
            if req.audit_denial {
                audit::append(
                    tx,
                    now,
                    AuditEvent::new(action::DENY, json!({ "denial": &denial }))
                        .on(req.provider, &req.account)
                        .by(&req.agent),
                )?;
            }
            Ok(Err(denial))
        }
        None => Err(crate::store::StoreError::Constraint {
            reason: "acquire reached no decision".into(),
        }
        .into()),
    }
}

/// Writes a decided grant: the conditional reservations, the lease, its audit row.
fn grant(
    tx: &Tx<'_>,
    now: Millis,
    req: &AcquireRequest,
    lease_id: LeaseId,
    limits: &Limits,
    amount: i64,
    windows: &[Window],
) -> Result<Lease, QuotaError> {
    // Read before anything is written: on a server the transaction read it with `BEGIN`.
    let fence = tx.next_fence()?;
    for w in windows {
        let limit = limits.budget_for(w.kind).unwrap_or(i64::MAX);
        if !tx.reserve_in_window(w.id, amount, limit)? {
            // The checks read the same snapshot, so this cannot happen; if it ever does, fail
            // closed and let the transaction roll back.
            return Err(crate::store::StoreError::Constraint {
                reason: format!(
                    "reservation in the {} window would exceed its limit",
                    w.kind
                ),
            }
            .into());
        }
    }
    let ttl_ms = i64::try_from(req.ttl.as_millis()).unwrap_or(i64::MAX);
    let lease = Lease {
        id: lease_id,
        fence,
        agent: req.agent.clone(),
        provider: req.provider,
        account: req.account.clone(),
        allocated: amount,
        used: 0,
        ttl_ms,
        created_at: now,
        expires_at: now.saturating_add(ttl_ms),
        heartbeat_at: now,
        state: LeaseState::Active,
        ended_at: None,
        end_reason: None,
    };
    tx.insert_lease(&lease)?;
    for w in windows {
        tx.insert_lease_window(&lease.id, w.id, amount)?;
    }
    crate::fault::point("acquire:before-audit");
    audit::append(
        tx,
        now,
        AuditEvent::new(
            action::ACQUIRE,
            json!({
                "tokens": amount,
                "asked": req.tokens,
                "fence": lease.fence,
                "ttl_ms": ttl_ms,
                "expires_at": lease.expires_at,
            }),
        )
        .on(req.provider, &req.account)
        .by(&req.agent)
        .lease(&lease.id),
    )?;
    Ok(lease)
}

type Grant = (i64, Vec<Window>);

/// Runs the checks in order (concurrency, rate, budget) and sizes the grant.
fn decide(
    tx: &Tx<'_>,
    now: Millis,
    idle_before: Millis,
    req: &AcquireRequest,
    limits: &Limits,
) -> Result<Result<Grant, Denial>, QuotaError> {
    let deny = |reason, available, limit, resets_at| Denial {
        reason,
        provider: req.provider,
        account: req.account.clone(),
        asked: req.tokens,
        available,
        limit,
        resets_at,
    };

    let (active, first_expiry) =
        tx.active_lease_count(req.provider, &req.account, now, idle_before)?;
    if active >= limits.concurrent {
        return Ok(Err(deny(
            DenyReason::Concurrency,
            0,
            limits.concurrent,
            first_expiry,
        )));
    }

    if limits.rpm.is_some() || limits.tpm.is_some() {
        let minute = current_window(tx, req.provider, &req.account, WindowKind::Minute, now, 0)?;
        if let Some(rpm) = limits.rpm
            && minute.requests >= rpm
        {
            return Ok(Err(deny(
                DenyReason::RequestsPerMinute,
                0,
                rpm,
                Some(minute.end_ms),
            )));
        }
        if let Some(tpm) = limits.tpm
            && minute.used >= tpm
        {
            return Ok(Err(deny(
                DenyReason::TokensPerMinute,
                0,
                tpm,
                Some(minute.end_ms),
            )));
        }
    }

    let mut windows = Vec::with_capacity(3);
    let mut tightest: Option<(i64, i64, &Window)> = None;
    for kind in [WindowKind::Day, WindowKind::FiveHour, WindowKind::Week] {
        let Some(limit) = limits.budget_for(kind) else {
            continue;
        };
        let w = current_window(
            tx,
            req.provider,
            &req.account,
            kind,
            now,
            limits.reset_offset_min,
        )?;
        windows.push((w, limit));
    }
    for (w, limit) in &windows {
        let remaining = (limit - w.used - w.reserved).max(0);
        if tightest.is_none_or(|(r, _, _)| remaining < r) {
            tightest = Some((remaining, *limit, w));
        }
    }
    let Some((remaining, limit, binding)) = tightest else {
        return Ok(Err(deny(DenyReason::Budget(WindowKind::Day), 0, 0, None)));
    };
    let binding_kind = binding.kind;
    let binding_end = binding.end_ms;

    let amount = match req.tokens {
        Some(n) => n,
        None => {
            let free_slots = limits.concurrent - active;
            let share = if remaining == 0 {
                0
            } else {
                (remaining + free_slots - 1) / free_slots
            };
            share.min(limits.effective_lease_cap())
        }
    };
    if amount == 0 || amount > remaining {
        return Ok(Err(deny(
            DenyReason::Budget(binding_kind),
            remaining,
            limit,
            Some(binding_end),
        )));
    }
    Ok(Ok((amount, windows.into_iter().map(|(w, _)| w).collect())))
}
