//! What the provider itself says of an account's use, read from the rate-limit headers that
//! [`super::report`] keeps as facts: shown beside the ledger's own figure, so a user sees when
//! the two disagree (another machine on the same subscription, usage outside authledger).
//!
//! Pure and forgiving: a header that is missing or malformed drops its window, never the
//! others, and is never an error (a provider changing its headers must not break `status`).
//!
//! Header families, as the providers send them:
//! - Claude subscriptions: `anthropic-ratelimit-unified-{5h,7d}-utilization` is a fraction
//!   (`0.42`); a value above 1 is read as a percent already (`42`), so either form shows 42 %.
//!   `-reset` is epoch seconds, `-status` is `allowed`, `allowed_warning` or `rejected`.
//! - Anthropic API: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,
//!   remaining,reset}`, per minute; used = 1 − remaining/limit; reset is RFC 3339.
//! - OpenAI API: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, per minute; reset is
//!   a Go duration (`6m0s`, `1.5s`, `20ms`) from when the response was reported.
//! - Codex subscriptions: `x-codex-{primary,secondary}-used-percent` (a percent),
//!   `-window-minutes` and `-reset-at` (epoch seconds).

use serde_json::{Map, Value};

use crate::records::HealthRecord;
use crate::types::Millis;

/// One provider rate-limit window as the provider reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderUtilization {
    /// `5h`, `7d` (Claude subscription), `requests/min`, `tokens/min`, `input-tokens/min`,
    /// `output-tokens/min` (APIs), `primary` or `secondary` (Codex).
    pub window: String,
    /// The window's length in minutes, where the provider says it (Codex).
    pub window_minutes: Option<i64>,
    /// How much of the window is used, in percent (0 to 100, more when over), to two decimals.
    pub used_percent: f64,
    /// When the window resets, absolute, if the provider said.
    pub resets_at: Option<Millis>,
    /// The provider's own verdict (`allowed`, `allowed_warning`, `rejected`), where sent.
    pub status: Option<String>,
    /// When the provider said it: the health record's last report.
    pub as_of: Millis,
}

/// The provider's windows for one account, from its last reported headers, as of when they
/// were reported (their [`super::FACTS_AT`] entry; else the record's last report); empty when
/// none were reported or none could be read.
pub fn provider_utilization(h: &HealthRecord) -> Vec<ProviderUtilization> {
    match serde_json::from_str::<Value>(&h.facts) {
        Ok(Value::Object(facts)) => {
            let as_of = facts
                .get(super::FACTS_AT)
                .and_then(Value::as_i64)
                .unwrap_or(h.updated_at);
            from_facts(&facts, as_of)
        }
        _ => Vec::new(),
    }
}

/// The windows in `facts` (lower-case header name → value), reported at `as_of`.
pub fn from_facts(facts: &Map<String, Value>, as_of: Millis) -> Vec<ProviderUtilization> {
    let get = |name: &str| facts.get(name).and_then(Value::as_str).map(str::trim);
    let mut out = Vec::new();
    for window in ["5h", "7d"] {
        let key = |part: &str| format!("anthropic-ratelimit-unified-{window}-{part}");
        let Some(used) = get(&key("utilization")).and_then(fraction_or_percent) else {
            continue;
        };
        out.push(ProviderUtilization {
            window: window.into(),
            window_minutes: None,
            used_percent: used,
            resets_at: get(&key("reset")).and_then(|v| absolute_time(v, as_of)),
            status: get(&key("status"))
                .filter(|s| is_word(s))
                .map(str::to_string),
            as_of,
        });
    }
    for kind in ["requests", "tokens", "input-tokens", "output-tokens"] {
        let key = |part: &str| format!("anthropic-ratelimit-{kind}-{part}");
        let Some(used) = used_of(get(&key("limit")), get(&key("remaining"))) else {
            continue;
        };
        out.push(ProviderUtilization {
            window: format!("{kind}/min"),
            window_minutes: None,
            used_percent: used,
            resets_at: get(&key("reset")).and_then(|v| absolute_time(v, as_of)),
            status: None,
            as_of,
        });
    }
    for kind in ["requests", "tokens"] {
        let key = |part: &str| format!("x-ratelimit-{part}-{kind}");
        let Some(used) = used_of(get(&key("limit")), get(&key("remaining"))) else {
            continue;
        };
        out.push(ProviderUtilization {
            window: format!("{kind}/min"),
            window_minutes: None,
            used_percent: used,
            resets_at: get(&key("reset")).and_then(|v| {
                go_duration_ms(v)
                    .map(|d| as_of.saturating_add(d))
                    .or_else(|| absolute_time(v, as_of))
            }),
            status: None,
            as_of,
        });
    }
    for window in ["primary", "secondary"] {
        let key = |part: &str| format!("x-codex-{window}-{part}");
        let Some(used) = get(&key("used-percent"))
            .and_then(number)
            .filter(|p| *p >= 0.0)
        else {
            continue;
        };
        out.push(ProviderUtilization {
            window: window.into(),
            window_minutes: get(&key("window-minutes"))
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|m| (1..=366 * 24 * 60).contains(m)),
            used_percent: used,
            resets_at: get(&key("reset-at")).and_then(|v| absolute_time(v, as_of)),
            status: None,
            as_of,
        });
    }
    for u in &mut out {
        // Two decimals: `0.42` is 42 %, not 42.00000000000001 %.
        u.used_percent = (u.used_percent * 100.0).round() / 100.0;
    }
    out
}

/// A finite number.
fn number(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A utilization as a percent: a fraction up to 1 (what the API sends), else a percent.
fn fraction_or_percent(v: &str) -> Option<f64> {
    let n = number(v).filter(|n| *n >= 0.0)?;
    Some(if n <= 1.0 { n * 100.0 } else { n })
}

/// Used percent from a limit and what remains of it (`None` unless 0 ≤ remaining ≤ limit).
fn used_of(limit: Option<&str>, remaining: Option<&str>) -> Option<f64> {
    let limit = limit?.parse::<u64>().ok().filter(|l| *l > 0)?;
    let remaining = remaining?.parse::<u64>().ok().filter(|r| *r <= limit)?;
    Some((1.0 - remaining as f64 / limit as f64) * 100.0)
}

/// A short status word (no free text from a header reaches the terminal).
fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A reset given as RFC 3339, epoch seconds, or a delay in seconds from `as_of`.
fn absolute_time(v: &str, as_of: Millis) -> Option<Millis> {
    super::parse_reset_unbounded(v, as_of)
}

/// A Go duration (`6m0s`, `1.5s`, `20ms`, `1h2m3.5s`) in milliseconds.
fn go_duration_ms(v: &str) -> Option<Millis> {
    let mut rest = v;
    let mut total = 0.0_f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let ms_per = match &rest[..unit_len] {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1_000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * ms_per;
    }
    (total.is_finite() && total < 1e15).then_some(total.round() as Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23T10:00:00Z.
    const AS_OF: Millis = 1_795_428_000_000;

    fn facts(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    fn window<'a>(items: &'a [ProviderUtilization], name: &str) -> &'a ProviderUtilization {
        items
            .iter()
            .find(|u| u.window == name)
            .unwrap_or_else(|| panic!("no {name} in {items:?}"))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn claude_subscription_unified_windows_read_as_fraction_or_percent() {
        let items = from_facts(
            &facts(&[
                ("anthropic-ratelimit-unified-5h-utilization", "0.42"),
                ("anthropic-ratelimit-unified-5h-reset", "1795436000"),
                ("anthropic-ratelimit-unified-5h-status", "allowed_warning"),
                // A percent already: read as 18 %, not 1800 %.
                ("anthropic-ratelimit-unified-7d-utilization", "18"),
                ("anthropic-ratelimit-unified-7d-reset", "1795860000"),
                ("anthropic-ratelimit-unified-7d-status", "allowed"),
                (
                    "anthropic-ratelimit-unified-representative-claim",
                    "five_hour",
                ),
            ]),
            AS_OF,
        );
        assert_eq!(items.len(), 2, "{items:?}");
        let five = window(&items, "5h");
        assert_eq!(five.used_percent, 42.0, "{five:?}");
        assert_eq!(five.resets_at, Some(1_795_436_000_000));
        assert_eq!(five.status.as_deref(), Some("allowed_warning"));
        assert_eq!(five.as_of, AS_OF);
        let week = window(&items, "7d");
        assert!(close(week.used_percent, 18.0), "{week:?}");
        assert_eq!(week.resets_at, Some(1_795_860_000_000));
    }

    #[test]
    fn a_malformed_unified_value_drops_only_its_own_window() {
        let items = from_facts(
            &facts(&[
                ("anthropic-ratelimit-unified-5h-utilization", "lots"),
                ("anthropic-ratelimit-unified-5h-reset", "1795436000"),
                ("anthropic-ratelimit-unified-7d-utilization", "0.5"),
                ("anthropic-ratelimit-unified-7d-reset", "next tuesday"),
                (
                    "anthropic-ratelimit-unified-7d-status",
                    "rejected <b>now</b>",
                ),
            ]),
            AS_OF,
        );
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].window, "7d");
        assert!(close(items[0].used_percent, 50.0));
        assert_eq!(items[0].resets_at, None);
        assert_eq!(items[0].status, None);
        let negative = from_facts(
            &facts(&[("anthropic-ratelimit-unified-5h-utilization", "-0.1")]),
            AS_OF,
        );
        assert!(negative.is_empty(), "{negative:?}");
    }

    #[test]
    fn anthropic_api_windows_are_one_minus_remaining_over_limit() {
        let items = from_facts(
            &facts(&[
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "49"),
                ("anthropic-ratelimit-requests-reset", "2026-11-23T10:00:01Z"),
                ("anthropic-ratelimit-tokens-limit", "90000"),
                ("anthropic-ratelimit-tokens-remaining", "72000"),
                ("anthropic-ratelimit-tokens-reset", "2026-11-23T10:00:12Z"),
                ("anthropic-ratelimit-input-tokens-limit", "80000"),
                ("anthropic-ratelimit-input-tokens-remaining", "80000"),
                (
                    "anthropic-ratelimit-input-tokens-reset",
                    "2026-11-23T10:00:00Z",
                ),
                // Remaining above the limit: malformed, dropped.
                ("anthropic-ratelimit-output-tokens-limit", "16000"),
                ("anthropic-ratelimit-output-tokens-remaining", "17000"),
                ("retry-after", "12"),
            ]),
            AS_OF,
        );
        let names: Vec<&str> = items.iter().map(|u| u.window.as_str()).collect();
        assert_eq!(
            names,
            ["requests/min", "tokens/min", "input-tokens/min"],
            "{items:?}"
        );
        assert_eq!(items[0].used_percent, 2.0);
        assert_eq!(items[0].resets_at, Some(AS_OF + 1_000));
        assert!(close(items[1].used_percent, 20.0));
        assert_eq!(items[1].resets_at, Some(AS_OF + 12_000));
        assert!(close(items[2].used_percent, 0.0));
    }

    #[test]
    fn openai_resets_are_durations_from_when_the_facts_were_recorded() {
        let items = from_facts(
            &facts(&[
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-remaining-requests", "499"),
                ("x-ratelimit-reset-requests", "120ms"),
                ("x-ratelimit-limit-tokens", "30000"),
                ("x-ratelimit-remaining-tokens", "7500"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ]),
            AS_OF,
        );
        assert_eq!(items.len(), 2, "{items:?}");
        let req = window(&items, "requests/min");
        assert!(close(req.used_percent, 0.2), "{req:?}");
        assert_eq!(req.resets_at, Some(AS_OF + 120));
        let tok = window(&items, "tokens/min");
        assert!(close(tok.used_percent, 75.0), "{tok:?}");
        assert_eq!(tok.resets_at, Some(AS_OF + 360_000));
        assert_eq!(go_duration_ms("1m30.5s"), Some(90_500));
        assert_eq!(go_duration_ms("1.5h"), Some(5_400_000));
        assert_eq!(go_duration_ms("6x"), None);
        assert_eq!(go_duration_ms(""), None);

        let malformed = from_facts(
            &facts(&[
                ("x-ratelimit-limit-tokens", "0"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-remaining-requests", "12.5"),
            ]),
            AS_OF,
        );
        assert!(malformed.is_empty(), "{malformed:?}");
    }

    #[test]
    fn codex_windows_carry_percent_length_and_reset() {
        let items = from_facts(
            &facts(&[
                ("x-codex-primary-used-percent", "42.5"),
                ("x-codex-primary-window-minutes", "300"),
                ("x-codex-primary-reset-at", "1795436000"),
                ("x-codex-secondary-used-percent", "NaN"),
                ("x-codex-secondary-window-minutes", "10080"),
            ]),
            AS_OF,
        );
        assert_eq!(items.len(), 1, "{items:?}");
        let p = &items[0];
        assert_eq!(p.window, "primary");
        assert_eq!(p.window_minutes, Some(300));
        assert!(close(p.used_percent, 42.5));
        assert_eq!(p.resets_at, Some(1_795_436_000_000));
        assert_eq!(p.as_of, AS_OF);
    }

    #[test]
    fn facts_that_are_not_an_object_give_nothing() {
        let mut h = HealthRecord {
            provider: crate::types::Provider::Claude,
            account: crate::types::Account::default(),
            unavailable_until: None,
            reason: None,
            consecutive_errors: 0,
            last_status: Some(200),
            facts: "not json".into(),
            updated_at: AS_OF,
        };
        assert!(provider_utilization(&h).is_empty());
        h.facts = r#"{"x-codex-primary-used-percent":"7"}"#.into();
        assert_eq!(provider_utilization(&h)[0].used_percent, 7.0);
        assert_eq!(provider_utilization(&h)[0].as_of, AS_OF);
        h.facts = format!(
            r#"{{"x-codex-primary-used-percent":"7","reported_at_ms":{}}}"#,
            AS_OF - 60_000
        );
        assert_eq!(provider_utilization(&h)[0].as_of, AS_OF - 60_000);
    }
}
