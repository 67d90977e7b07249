//! Provider health from reported responses: a 429, or 5xx answers in a row, make an account
//! unavailable until its reset; the rate-limit headers are kept for `status`.
//!
//! Callers (agents, the `run` supervisor, a proxy) report what the provider answered; nothing
//! here calls the network, so selection stays fast.

mod utilization;

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::audit::{self, AuditEvent, action};

use crate::records::{HealthRecord, UtilizationSample};
use crate::store::{StoreError, Tx};
use crate::types::{Account, Millis, Provider};

pub use utilization::{ProviderUtilization, from_facts, provider_utilization};

/// 5xx answers in a row that make an account unavailable.
const ERROR_STREAK: i64 = 3;
/// How long a 429 without any reset header keeps an account out.
const DEFAULT_BACKOFF_MS: Millis = 60_000;
/// The longest a 5xx streak keeps an account out.
const MAX_BACKOFF_MS: Millis = 15 * 60_000;

/// The facts' own entry for when they were reported (epoch ms): never a header name, since
/// only [`is_rate_header`] names are kept.
pub const FACTS_AT: &str = "reported_at_ms";

/// Whether a header (lower case) is one of the rate-limit facts worth keeping.
pub fn is_rate_header(name: &str) -> bool {
    name == "retry-after"
        || name.starts_with("anthropic-ratelimit-")
        || name.starts_with("x-ratelimit-")
        || name.starts_with("x-codex-")
}

/// The longest any report keeps an account out: a week. A header claiming more is a bug on
/// the other side, and an account locked out for ever would never report the 2xx that clears it.
const MAX_UNAVAILABLE_MS: Millis = 7 * 86_400_000;

/// Parses a reset time (RFC 3339, epoch seconds, or a Go-style duration such as `6m0s` from
/// now), bounded to at most a week from now.
fn parse_reset(value: &str, now: Millis) -> Option<Millis> {
    parse_reset_unbounded(value, now).map(|t| t.clamp(now, now + MAX_UNAVAILABLE_MS))
}

fn parse_reset_unbounded(value: &str, now: Millis) -> Option<Millis> {
    let v = value.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp_millis());
    }
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || !(0.0..=1e12).contains(&secs) {
            return None;
        }
        // Epoch seconds are big; a small number is a delay in seconds.
        return Some(if secs > 1e9 {
            (secs * 1000.0) as Millis
        } else {
            now.saturating_add((secs * 1000.0) as Millis)
        });
    }
    if let Ok(d) = humantime::parse_duration(v) {
        return Some(now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    }
    chrono::DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// When a refused account may be tried again, from `retry-after` and the `*-reset` headers.
fn reset_time(headers: &[(String, String)], now: Millis) -> Option<Millis> {
    if let Some((_, v)) = headers.iter().find(|(k, _)| k == "retry-after") {
        return parse_reset(v, now);
    }
    headers
        .iter()
        .filter(|(k, _)| is_rate_header(k) && k.contains("reset"))
        .filter_map(|(_, v)| parse_reset(v, now))
        .filter(|t| *t > now)
        .max()
}

/// Records one response in the account's health and returns the new state.
pub fn report(
    tx: &Tx<'_>,
    now: Millis,
    provider: Provider,
    account: &Account,
    status: u16,
    headers: &[(String, String)],
) -> Result<HealthRecord, StoreError> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let before = tx.health(provider, account)?;
    let mut h = before.clone().unwrap_or(HealthRecord {
        provider,
        account: account.clone(),
        unavailable_until: None,
        reason: None,
        consecutive_errors: 0,
        last_status: None,
        facts: "{}".into(),
        updated_at: now,
    });
    let mut facts: Map<String, Value> = headers
        .iter()
        .filter(|(k, _)| is_rate_header(k))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if !facts.is_empty() {
        sample_utilization(tx, now, provider, account, &facts)?;
        // A later report without headers keeps these facts but moves `updated_at`: their own
        // time is kept beside them, so utilization stays "as of" when the provider said it.
        facts.insert(FACTS_AT.into(), Value::from(now));
        h.facts = Value::Object(facts).to_string();
    }
    h.last_status = Some(i64::from(status));
    h.updated_at = now;
    match status {
        429 => {
            h.consecutive_errors = 0;
            h.unavailable_until = Some(
                reset_time(&headers, now)
                    .unwrap_or(now + DEFAULT_BACKOFF_MS)
                    .max(now + 1),
            );
            h.reason = Some("rate limited (429)".into());
        }
        500..=599 => {
            h.consecutive_errors += 1;
            if h.consecutive_errors >= ERROR_STREAK {
                let doubling = (h.consecutive_errors - ERROR_STREAK).min(10) as u32;
                let backoff = (DEFAULT_BACKOFF_MS << doubling).min(MAX_BACKOFF_MS);
                h.unavailable_until = Some(now + backoff);
                h.reason = Some(format!(
                    "{} server errors in a row (last {status})",
                    h.consecutive_errors
                ));
            }
        }
        _ => {
            h.consecutive_errors = 0;
            if status < 400 {
                h.unavailable_until = None;
                h.reason = None;
            }
        }
    }
    tx.put_health(&h)?;
    // A change of availability, or of how long an account stays out, is a state change
    // selection acts on: audited, so a week out of service always has a row saying who reported
    // what. Other reports are not.
    let was_out = unavailable(before.as_ref(), now).map(|(until, _)| until);
    let is_out = unavailable(Some(&h), now).map(|(until, _)| until);
    if was_out != is_out {
        let is_out = is_out.is_some();
        audit::append(
            tx,
            now,
            AuditEvent::new(
                action::HEALTH,
                json!({
                    "available": !is_out,
                    "status": status,
                    "until": h.unavailable_until.filter(|_| is_out),
                    "reason": h.reason.as_deref().filter(|_| is_out),
                }),
            )
            .on(provider, account),
        )?;
    }
    Ok(h)
}

/// Samples older than this are dropped: the longest window (7 days) and a day.
const SAMPLES_KEPT_MS: Millis = 8 * 86_400_000;

/// Keeps what the provider said of each subscription window in this response, for
/// calibration (`crate::calibrate`): its figure, its instance (reset time) and its length.
/// Per-minute API windows are not kept (their limits are published), nor a window whose reset
/// or length is unknown, or whose reset is past (a stale header).
fn sample_utilization(
    tx: &Tx<'_>,
    now: Millis,
    provider: Provider,
    account: &Account,
    facts: &Map<String, Value>,
) -> Result<(), StoreError> {
    let mut any = false;
    for u in from_facts(facts, now) {
        let window_ms = match u.window.as_str() {
            "5h" => Some(5 * 3_600_000),
            "7d" => Some(7 * 86_400_000),
            "primary" | "secondary" => u.window_minutes.map(|m| m * 60_000),
            _ => None,
        };
        let (Some(window_ms), Some(resets_at)) = (window_ms, u.resets_at) else {
            continue;
        };
        if resets_at < now || resets_at - window_ms > now {
            continue;
        }
        tx.insert_utilization_sample(&UtilizationSample {
            provider,
            account: account.clone(),
            window: u.window,
            at_ms: now,
            used_bp: (u.used_percent * 100.0).round() as i64,
            resets_at,
            window_ms,
        })?;
        any = true;
    }
    if any {
        tx.prune_utilization_samples(provider, account, now - SAMPLES_KEPT_MS)?;
    }
    Ok(())
}

/// Whether the account is unavailable at `now`, and until when and why.
pub fn unavailable(h: Option<&HealthRecord>, now: Millis) -> Option<(Millis, String)> {
    let h = h?;
    let until = h.unavailable_until.filter(|t| *t > now)?;
    Some((
        until,
        h.reason.clone().unwrap_or_else(|| "unavailable".into()),
    ))
}

/// Parses `name: value` header arguments.
pub fn parse_header(arg: &str) -> Result<(String, String), crate::types::InvalidInput> {
    let (name, value) = arg.split_once(':').ok_or_else(|| {
        crate::types::InvalidInput(format!(
            "{:?} is not a header (expected 'name: value')",
            crate::types::truncate_for_message(arg)
        ))
    })?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(crate::types::InvalidInput(format!(
            "{:?} is not a header name",
            crate::types::truncate_for_message(name)
        )));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// A delay for humans: `Duration` between now and then.
pub fn until(now: Millis, then: Millis) -> Duration {
    Duration::from_millis(u64::try_from(then - now).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_headers_in_their_three_forms() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_reset("30", now), Some(now + 30_000));
        assert_eq!(parse_reset("6m0s", now), Some(now + 360_000));
        assert_eq!(
            parse_reset("2001-09-09T01:46:50Z", now),
            Some(1_000_000_010_000)
        );
        assert_eq!(parse_reset("1000000020", now), Some(1_000_000_020_000));
        assert_eq!(parse_reset("inf", now), None);
        assert_eq!(
            parse_reset("9223371000000000s", now),
            Some(now + MAX_UNAVAILABLE_MS)
        );
        assert!(parse_header("retry-after: 30").is_ok());
        assert!(parse_header("no colon").is_err());
    }
}
