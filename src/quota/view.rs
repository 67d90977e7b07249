//! The quota picture users and scripts read: per account, each window's limit, use and reset.

use serde::Serialize;

use super::limits::effective_limits;
use super::windows::{aligned_bounds, pending_carry};
use crate::records::Limits;
use crate::store::{StoreError, Tx};
use crate::types::{Account, Millis, Provider, WindowKind};

/// One window of one account, as of now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowStatus {
    /// Which window.
    pub kind: WindowKind,
    /// Its token limit (for the minute window: tokens/min, if set).
    pub limit: Option<i64>,
    /// Tokens recorded.
    pub used: i64,
    /// Tokens held by leases.
    pub reserved: i64,
    /// What a new lease could still get (0 when over).
    pub remaining: Option<i64>,
    /// `(used + reserved) / limit`, in percent.
    pub percent: Option<f64>,
    /// Requests recorded (the minute window's figure is what requests/min counts).
    pub requests: i64,
    /// When the window ends (`None` for an anchored window not yet started).
    pub resets_at: Option<Millis>,
}

/// One provider account's quota. The top-level figures are the daily window's, as the CLI
/// contract promises (`limit`, `used`, `reserved`, `remaining`, …).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaStatus {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// Daily token limit.
    pub limit: i64,
    /// Tokens used today.
    pub used: i64,
    /// Tokens reserved today.
    pub reserved: i64,
    /// Tokens left today.
    pub remaining: i64,
    /// Today's use in percent of the limit.
    pub percent: f64,
    /// Leases active now.
    pub active_leases: i64,
    /// Concurrent leases allowed.
    pub concurrent_limit: i64,
    /// When today's window resets.
    pub resets_at: Millis,
    /// Requests/min limit, if any.
    pub rpm: Option<i64>,
    /// Every window, day first.
    pub windows: Vec<WindowStatus>,
}

fn percent(used: i64, reserved: i64, limit: i64) -> f64 {
    if limit == 0 {
        if used + reserved > 0 { 100.0 } else { 0.0 }
    } else {
        ((used + reserved) as f64 * 1000.0 / limit as f64).round() / 10.0
    }
}

fn window_status(
    tx: &Tx<'_>,
    l: &Limits,
    kind: WindowKind,
    now: Millis,
) -> Result<WindowStatus, StoreError> {
    let limit = l.budget_for(kind);
    let row = tx.window_at(l.provider, &l.account, kind, now)?;
    let (used, reserved, requests, end) = match &row {
        Some(w) => (w.used, w.reserved, w.requests, Some(w.end_ms)),
        None => (
            0,
            pending_carry(tx, l.provider, &l.account, kind, now)?,
            0,
            aligned_bounds(kind, now, l.reset_offset_min).map(|(_, e)| e),
        ),
    };
    Ok(WindowStatus {
        kind,
        limit,
        used,
        reserved,
        remaining: limit.map(|lim| (lim - used - reserved).max(0)),
        percent: limit.map(|lim| percent(used, reserved, lim)),
        requests,
        resets_at: end,
    })
}

/// The quota of every known account (the two providers' defaults included), or of one provider.
/// Leases past their TTL or idle since `idle_before` do not count as active: their slots are
/// free for the next acquire, which reclaims them.
pub fn quota_status(
    tx: &Tx<'_>,
    now: Millis,
    idle_before: Millis,
    only: Option<Provider>,
) -> Result<Vec<QuotaStatus>, StoreError> {
    let mut keys = tx.known_accounts()?;
    for p in Provider::ALL {
        if !keys.iter().any(|(kp, _)| *kp == p) {
            keys.push((p, Account::default()));
        }
    }
    keys.retain(|(p, _)| only.is_none_or(|o| o == *p));
    keys.sort();
    let mut accounts = Vec::with_capacity(keys.len());
    for (p, a) in &keys {
        accounts.push(effective_limits(tx, *p, a, now)?);
    }
    let mut out = Vec::new();
    for l in accounts {
        let mut windows = Vec::new();
        for kind in [WindowKind::Day, WindowKind::FiveHour, WindowKind::Week] {
            if l.budget_for(kind).is_some() {
                windows.push(window_status(tx, &l, kind, now)?);
            }
        }
        if l.rpm.is_some() || l.tpm.is_some() {
            windows.push(window_status(tx, &l, WindowKind::Minute, now)?);
        }
        let day = windows[0].clone();
        let (active, _) = tx.active_lease_count(l.provider, &l.account, now, idle_before)?;
        out.push(QuotaStatus {
            provider: l.provider,
            account: l.account.clone(),
            limit: l.daily_tokens,
            used: day.used,
            reserved: day.reserved,
            remaining: day.remaining.unwrap_or(0),
            percent: day.percent.unwrap_or(0.0),
            active_leases: active,
            concurrent_limit: l.concurrent,
            resets_at: day.resets_at.unwrap_or(now),
            rpm: l.rpm,
            windows,
        });
    }
    Ok(out)
}
