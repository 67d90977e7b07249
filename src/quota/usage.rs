//! Recording what agents actually used: idempotent, never lost, never counted twice.

use serde::Serialize;
use serde_json::json;

use super::error::QuotaError;
use super::leases::reclaim;
use super::limits::effective_limits;
use super::windows::current_window;
use crate::audit::{self, AuditEvent, action};
use crate::records::UsageEvent;
use crate::store::Tx;
use crate::types::{
    InvalidInput, LeaseId, LeaseState, MAX_TOKENS, Millis, WindowKind, check_tokens,
    truncate_for_message,
};

/// One usage report from an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// Input (prompt) tokens.
    pub input: i64,
    /// Output (completion) tokens.
    pub output: i64,
    /// Requests made.
    pub requests: i64,
    /// The caller's idempotency key: a retry with the same key is recorded once. Without one,
    /// every call is a new record.
    pub key: Option<String>,
    /// The model the provider answered with, if known (`usage --by model`).
    pub model: Option<String>,
    /// Input tokens read from the provider's prompt cache, kept apart from `input`.
    pub cache_read: i64,
    /// Input tokens written to the provider's prompt cache, kept apart from `input`.
    pub cache_write: i64,
    /// The request's outcome as the gateway saw it (`ok`, `error`, `incomplete`, …).
    pub status: Option<String>,
}

impl UsageRecord {
    /// `input` and `output` tokens in one request, without an idempotency key.
    pub fn new(input: i64, output: i64) -> Self {
        UsageRecord {
            input,
            output,
            requests: 1,
            key: None,
            model: None,
            cache_read: 0,
            cache_write: 0,
            status: None,
        }
    }

    /// Sets the model the provider answered with.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets the prompt-cache tokens read and written (each apart from `input`).
    pub fn cache(mut self, read: i64, write: i64) -> Self {
        self.cache_read = read;
        self.cache_write = write;
        self
    }

    /// Sets the request's outcome.
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// The tokens this record counts against the lease and every window: input, output and
    /// both kinds of cache tokens. The budget counts tokens processed, not money: a cache read
    /// is billed at a tenth of an input token by Anthropic but is still a token of context
    /// the model processed, so it counts whole.
    pub fn tokens(&self) -> i64 {
        self.input + self.output + self.cache_read + self.cache_write
    }

    /// Sets the idempotency key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Checks the figures and the key before anything is written.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_tokens("--input", self.input)?;
        check_tokens("--output", self.output)?;
        check_tokens("--requests", self.requests)?;
        check_tokens("--cache-read", self.cache_read)?;
        check_tokens("--cache-write", self.cache_write)?;
        // Each figure is at most MAX_TOKENS, so this sum cannot overflow.
        if self.tokens() > MAX_TOKENS {
            return Err(InvalidInput(
                "--input, --output and cache tokens together are too large".into(),
            ));
        }
        if let Some(k) = &self.key {
            check_key(k)?;
        }
        if let Some(m) = &self.model {
            check_label("--model", m)?;
        }
        if let Some(s) = &self.status {
            check_label("--status", s)?;
        }
        Ok(())
    }
}

/// The one check of an idempotency key, whoever chose it (the caller's `--key`, or the
/// fallback key a client sends the daemon): 1-200 printable characters.
pub fn check_key(k: &str) -> Result<(), InvalidInput> {
    if k.is_empty() || k.len() > 200 || k.chars().any(char::is_control) {
        return Err(InvalidInput(format!(
            "idempotency key {:?} must be 1-200 printable characters",
            truncate_for_message(k)
        )));
    }
    Ok(())
}

/// A model name or status: 1-200 printable characters, so a report never carries a control
/// character or a body.
fn check_label(what: &str, v: &str) -> Result<(), InvalidInput> {
    if v.is_empty() || v.len() > 200 || v.chars().any(char::is_control) {
        return Err(InvalidInput(format!(
            "{what} {:?} must be 1-200 printable characters",
            truncate_for_message(v)
        )));
    }
    Ok(())
}

/// Refuses a record that would take a running total past [`MAX_TOKENS`]: totals stay far from
/// the i64 limit, so no sum the ledger computes from them can overflow.
fn check_total(what: &str, total: i64, add: i64) -> Result<(), InvalidInput> {
    match total.checked_add(add) {
        Some(sum) if sum <= MAX_TOKENS => Ok(()),
        _ => Err(InvalidInput(format!(
            "{what} would exceed {MAX_TOKENS:e} (now {total}); nothing recorded"
        ))),
    }
}

/// What recording did, and what the lease's holder should do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageOutcome {
    /// The lease.
    pub lease_id: LeaseId,
    /// The idempotency key the record is stored under.
    pub key: String,
    /// Whether this was a retry of a record already stored (nothing changed).
    pub duplicate: bool,
    /// Tokens recorded on the lease so far.
    pub lease_used: i64,
    /// Tokens allocated to the lease.
    pub allocated: i64,
    /// Whether the lease's allocation is used up: ask for a new lease before going on.
    pub exhausted: bool,
    /// The lease's state after recording. Anything but `active` means its holder lost it and
    /// must stop; the usage was recorded all the same.
    pub lease_state: LeaseState,
}

/// Records usage on a lease, active or not: usage that happened is never dropped.
pub fn record_usage(
    tx: &Tx<'_>,
    now: Millis,
    id: &LeaseId,
    record: &UsageRecord,
    fallback_key: String,
) -> Result<UsageOutcome, QuotaError> {
    // Validated here, at the quota boundary, so the direct path and the daemon (whose frames
    // carry whatever a client wrote) check exactly the same things.
    record.validate()?;
    let key = record.key.clone().unwrap_or(fallback_key);
    check_key(&key)?;
    if let Some(prior) = tx.usage_by_key(&key)? {
        let same = prior.lease_id == *id
            && prior.input == record.input
            && prior.output == record.output
            && prior.requests == record.requests
            && prior.cache_read == record.cache_read
            && prior.cache_write == record.cache_write
            && prior.model == record.model
            && prior.status == record.status;
        if !same {
            return Err(QuotaError::IdempotencyConflict { key });
        }
        let lease = tx
            .lease(id)?
            .ok_or_else(|| QuotaError::UnknownLease(id.clone()))?;
        return Ok(UsageOutcome {
            lease_id: id.clone(),
            key,
            duplicate: true,
            lease_used: lease.used,
            allocated: lease.allocated,
            exhausted: lease.used >= lease.allocated,
            lease_state: lease.state,
        });
    }

    let mut lease = tx
        .lease(id)?
        .ok_or_else(|| QuotaError::UnknownLease(id.clone()))?;
    if lease.state == LeaseState::Active && lease.expires_at <= now {
        reclaim(tx, now, &lease, LeaseState::Expired, "ttl")?;
        lease.state = LeaseState::Expired;
    }

    let tokens = record.tokens();
    let limits = effective_limits(tx, lease.provider, &lease.account, now)?;
    // Usage counts where it happened: in the windows current now. Opening them first carries
    // the lease's unused reservation along if it outlived the window it was granted in.
    let mut windows = Vec::with_capacity(4);
    for kind in [WindowKind::Day, WindowKind::FiveHour, WindowKind::Week] {
        if limits.budget_for(kind).is_some() {
            windows.push(current_window(
                tx,
                lease.provider,
                &lease.account,
                kind,
                now,
                limits.reset_offset_min,
            )?);
        }
    }
    if limits.rpm.is_some() || limits.tpm.is_some() {
        windows.push(current_window(
            tx,
            lease.provider,
            &lease.account,
            WindowKind::Minute,
            now,
            0,
        )?);
    }
    // Every total stays a figure the ledger can add to: refused (and the transaction undone)
    // before any total moves.
    check_total("the lease's recorded tokens", lease.used, tokens)?;
    for w in &windows {
        check_total(&format!("the {} window's tokens", w.kind), w.used, tokens)?;
        check_total(
            &format!("the {} window's requests", w.kind),
            w.requests,
            record.requests,
        )?;
    }
    for w in &windows {
        tx.add_usage_to_window(w.id, tokens, 0, record.requests)?;
    }
    // What was used comes out of what the lease held, wherever it holds it.
    for (window_id, held) in tx.lease_windows(id)? {
        let from_reserved = tokens.min(held);
        if from_reserved > 0 {
            tx.add_usage_to_window(window_id, 0, from_reserved, 0)?;
            tx.take_from_lease_window(id, window_id, from_reserved)?;
        }
    }
    crate::fault::point("usage:before-insert");
    tx.add_lease_usage(id, tokens)?;
    lease.used += tokens;
    tx.insert_usage(&UsageEvent {
        idem_key: key.clone(),
        lease_id: id.clone(),
        agent: lease.agent.clone(),
        provider: lease.provider,
        account: lease.account.clone(),
        input: record.input,
        output: record.output,
        requests: record.requests,
        model: record.model.clone(),
        cache_read: record.cache_read,
        cache_write: record.cache_write,
        status: record.status.clone(),
        at_ms: now,
    })?;
    let exhausted = lease.used >= lease.allocated;
    let mut detail = json!({
        "input": record.input,
        "output": record.output,
        "requests": record.requests,
        "key": &key,
        "lease_used": lease.used,
        "exhausted": exhausted,
        "lease_state": lease.state,
    });
    // The gateway's facts, only when there are any (rows of `usage record` stay as they were).
    if record.cache_read != 0 || record.cache_write != 0 {
        detail["cache_read"] = json!(record.cache_read);
        detail["cache_write"] = json!(record.cache_write);
    }
    if let Some(m) = &record.model {
        detail["model"] = json!(m);
    }
    if let Some(s) = &record.status {
        detail["status"] = json!(s);
    }
    audit::append(
        tx,
        now,
        AuditEvent::new(action::USAGE, detail)
            .on(lease.provider, &lease.account)
            .by(&lease.agent)
            .lease(id),
    )?;
    Ok(UsageOutcome {
        lease_id: id.clone(),
        key,
        duplicate: false,
        lease_used: lease.used,
        allocated: lease.allocated,
        exhausted,
        lease_state: lease.state,
    })
}
