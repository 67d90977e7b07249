//! Reading and changing a provider account's limits.

use serde_json::json;

use crate::audit::{self, AuditEvent, action};
use crate::records::Limits;
use crate::store::{StoreError, Tx};
use crate::types::{Account, InvalidInput, Millis, Provider, check_tokens};

/// The most concurrent leases one account may allow; a guard against typos, not a policy.
pub const MAX_CONCURRENT: i64 = 100_000;

/// A change to some of an account's limits; fields left `None` keep their value. For the
/// optional limits, `Some(None)` removes the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    /// Tokens per day.
    pub daily_tokens: Option<i64>,
    /// Concurrent leases.
    pub concurrent: Option<i64>,
    /// Requests per minute.
    pub rpm: Option<Option<i64>>,
    /// Tokens per minute.
    pub tpm: Option<Option<i64>>,
    /// Tokens per 5-hour window.
    pub window_5h_tokens: Option<Option<i64>>,
    /// Tokens per 7-day window.
    pub weekly_tokens: Option<Option<i64>>,
    /// The most one fair-share lease may take.
    pub lease_cap: Option<Option<i64>>,
    /// Minutes after midnight UTC at which the day resets.
    pub reset_offset_min: Option<i64>,
}

impl LimitsUpdate {
    /// Checks every figure before anything is written.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let figures = [
            ("--daily-tokens", self.daily_tokens),
            ("--rpm", self.rpm.flatten()),
            ("--tpm", self.tpm.flatten()),
            ("--window-5h", self.window_5h_tokens.flatten()),
            ("--weekly", self.weekly_tokens.flatten()),
            ("--lease-cap", self.lease_cap.flatten()),
        ];
        for (what, n) in figures {
            if let Some(n) = n {
                check_tokens(what, n)?;
            }
        }
        if self.lease_cap == Some(Some(0)) {
            return Err(InvalidInput(
                "--lease-cap must be at least 1 (or off)".into(),
            ));
        }
        if let Some(c) = self.concurrent
            && !(0..=MAX_CONCURRENT).contains(&c)
        {
            return Err(InvalidInput(format!(
                "--concurrent must be between 0 and {MAX_CONCURRENT} (got {c})"
            )));
        }
        if let Some(m) = self.reset_offset_min
            && !(0..1440).contains(&m)
        {
            return Err(InvalidInput(format!(
                "the daily reset must be a time of day, 00:00 to 23:59 (got minute {m})"
            )));
        }
        if *self == LimitsUpdate::default() {
            return Err(InvalidInput("no limit given to set".into()));
        }
        Ok(())
    }

    fn apply(&self, mut l: Limits, now: Millis) -> Limits {
        if let Some(v) = self.daily_tokens {
            l.daily_tokens = v;
        }
        if let Some(v) = self.concurrent {
            l.concurrent = v;
        }
        if let Some(v) = self.rpm {
            l.rpm = v;
        }
        if let Some(v) = self.tpm {
            l.tpm = v;
        }
        if let Some(v) = self.window_5h_tokens {
            l.window_5h_tokens = v;
        }
        if let Some(v) = self.weekly_tokens {
            l.weekly_tokens = v;
        }
        if let Some(v) = self.lease_cap {
            l.lease_cap = v;
        }
        if let Some(v) = self.reset_offset_min {
            l.reset_offset_min = v;
        }
        l.updated_at = now;
        l
    }
}

/// The limits in force for an account: the stored ones, else the README's defaults ("Limits").
pub fn effective_limits(
    tx: &Tx<'_>,
    provider: Provider,
    account: &Account,
    now: Millis,
) -> Result<Limits, StoreError> {
    Ok(tx
        .limits(provider, account)?
        .unwrap_or_else(|| Limits::defaults(provider, account.clone(), now)))
}

/// Makes sure the account has a stored limits row (the defaults on first use), so every
/// process reads the same limits from the database.
pub(crate) fn ensure_limits(
    tx: &Tx<'_>,
    provider: Provider,
    account: &Account,
    now: Millis,
) -> Result<Limits, StoreError> {
    if let Some(l) = tx.limits(provider, account)? {
        return Ok(l);
    }
    let l = Limits::defaults(provider, account.clone(), now);
    tx.put_limits(&l)?;
    audit::append(
        tx,
        now,
        AuditEvent::new(
            action::LIMITS,
            json!({ "source": "defaults", "limits": &l }),
        )
        .on(provider, account),
    )?;
    Ok(l)
}

/// Applies a validated update and records it in the audit trail.
pub fn set_limits(
    tx: &Tx<'_>,
    now: Millis,
    provider: Provider,
    account: &Account,
    update: &LimitsUpdate,
) -> Result<Limits, StoreError> {
    let before = effective_limits(tx, provider, account, now)?;
    let after = update.apply(before.clone(), now);
    tx.put_limits(&after)?;
    audit::append(
        tx,
        now,
        AuditEvent::new(
            action::LIMITS,
            json!({ "before": &before, "after": &after }),
        )
        .on(provider, account),
    )?;
    Ok(after)
}
