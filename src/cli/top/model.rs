//! What `top` shows, as plain data: gathered from one [`LiveSnapshot`] with no terminal, so it
//! can be compared (redraw only on change) and tested.

use crate::health::{self, ProviderUtilization};
use crate::ledger::LiveSnapshot;
use crate::quota::WindowStatus;
use crate::types::{Millis, WindowKind};

/// The span the burn rate is measured over: the last 15 minutes of usage records.
pub const BURN_SPAN_MS: Millis = 15 * 60_000;

/// How many denials, fallbacks and top-ups are shown.
pub const EVENTS: u32 = 8;

/// Everything one frame of `top` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct TopModel {
    /// The time of the read, to the second (ages move once a second, not at every poll).
    pub now: Millis,
    /// One entry per account.
    pub accounts: Vec<AccountView>,
    /// The active leases, oldest first.
    pub leases: Vec<LeaseView>,
    /// The latest denials, fallbacks and top-ups, newest first.
    pub events: Vec<EventView>,
}

/// One account: its windows and how fast it uses tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    /// `claude/default`.
    pub label: String,
    /// Tokens per minute over the last [`BURN_SPAN_MS`].
    pub burn_per_min: f64,
    /// Each window the ledger keeps for it, day first.
    pub windows: Vec<WindowView>,
}

/// One window: the ledger's figures beside the provider's.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowView {
    /// `day`, `5h`, `week`, `minute`.
    pub name: &'static str,
    /// Tokens recorded.
    pub used: i64,
    /// Tokens held by leases.
    pub reserved: i64,
    /// The token limit, if any.
    pub limit: Option<i64>,
    /// The ledger's `(used + reserved) / limit`.
    pub percent: Option<f64>,
    /// What the provider last reported for the same window, if it is still current.
    pub provider_percent: Option<f64>,
    /// When the window resets.
    pub resets_at: Option<Millis>,
    /// When `used` reaches the limit at the burn rate.
    pub runs_out: RunOut,
}

/// The predicted end of a window at the current burn rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOut {
    /// No limit, or nothing burnt lately: no prediction.
    Never,
    /// Already at or past its limit.
    Now,
    /// The window resets before the rate would use it up.
    ResetsFirst,
    /// It runs out at this time.
    At(Millis),
}

/// One active lease.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseView {
    /// Who holds it.
    pub agent: String,
    /// `claude/default`.
    pub account: String,
    /// Since it was granted.
    pub age_ms: Millis,
    /// Tokens recorded against it.
    pub used: i64,
    /// Tokens allocated to it.
    pub allocated: i64,
    /// Requests recorded against it.
    pub requests: i64,
    /// Its cost so far (`$0.42`, `?` for a model without a price).
    pub cost: String,
}

/// One audit row worth a glance.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    /// When.
    pub at: Millis,
    /// `deny`, `fallback` or `topup`.
    pub action: String,
    /// `claude/default`, or empty.
    pub account: String,
    /// The agent, or empty.
    pub agent: String,
    /// The detail as a sentence.
    pub text: String,
}

/// Tokens per minute for `tokens` used over `span_ms`.
pub fn burn_rate(tokens: i64, span_ms: Millis) -> f64 {
    if span_ms <= 0 {
        return 0.0;
    }
    tokens as f64 * 60_000.0 / span_ms as f64
}

/// When a window with `used` of `limit` runs out at `per_min` tokens a minute from `now`.
pub fn runs_out(
    used: i64,
    limit: Option<i64>,
    per_min: f64,
    now: Millis,
    resets_at: Option<Millis>,
) -> RunOut {
    let Some(limit) = limit else {
        return RunOut::Never;
    };
    let left = limit - used;
    if left <= 0 {
        return RunOut::Now;
    }
    if per_min <= 0.0 {
        return RunOut::Never;
    }
    let at = now.saturating_add((left as f64 / per_min * 60_000.0).ceil() as Millis);
    match resets_at {
        Some(r) if r <= at => RunOut::ResetsFirst,
        _ => RunOut::At(at),
    }
}

/// The provider's report for a ledger window, when the provider names the same span.
fn provider_for(kind: WindowKind, said: &[ProviderUtilization]) -> Option<&ProviderUtilization> {
    said.iter().find(|u| match kind {
        WindowKind::FiveHour => u.window == "5h" || u.window_minutes == Some(300),
        WindowKind::Week => u.window == "7d" || u.window_minutes == Some(7 * 24 * 60),
        WindowKind::Minute => u.window == "tokens/min",
        WindowKind::Day => u.window_minutes == Some(24 * 60),
    })
}

impl TopModel {
    /// The model of one snapshot.
    pub fn from_snapshot(s: &LiveSnapshot) -> TopModel {
        let now = s.now - s.now.rem_euclid(1_000);
        let span = s.now - s.burn_since;
        let accounts = s
            .quotas
            .iter()
            .zip(&s.health)
            .map(|(q, h)| {
                let label = format!("{}/{}", q.provider, q.account);
                let tokens = s.recent_tokens.get(&label).copied().unwrap_or(0);
                let per_min = burn_rate(tokens, span);
                let said = h
                    .as_ref()
                    .map(health::provider_utilization)
                    .unwrap_or_default();
                let windows = q
                    .windows
                    .iter()
                    .map(|w| window(w, per_min, s.now, &said))
                    .collect();
                AccountView {
                    label,
                    burn_per_min: per_min,
                    windows,
                }
            })
            .collect();
        let mut leases: Vec<LeaseView> = s
            .leases
            .iter()
            .map(|l| {
                let (requests, cost) = s
                    .lease_usage
                    .get(l.id.as_str())
                    .copied()
                    .unwrap_or_default();
                LeaseView {
                    agent: l.agent.to_string(),
                    account: format!("{}/{}", l.provider, l.account),
                    age_ms: (s.now - l.created_at).max(0),
                    used: l.used,
                    allocated: l.allocated,
                    requests,
                    cost: cost.cell(),
                }
            })
            .collect();
        leases.sort_by(|a, b| b.age_ms.cmp(&a.age_ms).then(a.agent.cmp(&b.agent)));
        let events = s
            .events
            .iter()
            .map(|e| {
                let detail = serde_json::from_str(&e.detail)
                    .unwrap_or(serde_json::Value::String(e.detail.clone()));
                EventView {
                    at: e.at_ms,
                    action: e.action.clone(),
                    account: match (&e.provider, &e.account) {
                        (Some(p), Some(a)) => format!("{p}/{a}"),
                        (Some(p), None) => p.clone(),
                        _ => String::new(),
                    },
                    agent: e.agent.clone().unwrap_or_default(),
                    text: crate::cli::audit_text::describe(&e.action, &detail, s.now),
                }
            })
            .collect();
        TopModel {
            now,
            accounts,
            leases,
            events,
        }
    }
}

fn window(w: &WindowStatus, per_min: f64, now: Millis, said: &[ProviderUtilization]) -> WindowView {
    WindowView {
        name: w.kind.as_str(),
        used: w.used,
        reserved: w.reserved,
        limit: w.limit,
        percent: w.percent,
        provider_percent: provider_for(w.kind, said)
            .filter(|u| u.resets_at.is_none_or(|r| r > now))
            .map(|u| u.used_percent),
        resets_at: w.resets_at,
        runs_out: runs_out(w.used, w.limit, per_min, now, w.resets_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_428_000_000;

    #[test]
    fn burn_rate_is_tokens_per_minute_over_the_span() {
        // 30 000 tokens in 15 minutes: 2 000 a minute.
        assert_eq!(burn_rate(30_000, BURN_SPAN_MS), 2_000.0);
        assert_eq!(burn_rate(1_500, BURN_SPAN_MS), 100.0);
        assert_eq!(burn_rate(0, BURN_SPAN_MS), 0.0);
    }

    #[test]
    fn a_window_runs_out_when_its_rest_is_burnt_at_the_rate() {
        // 100 000 limit, 40 000 used, 2 000/min: 60 000 left lasts 30 minutes.
        let reset = NOW + 5 * 3_600_000;
        assert_eq!(
            runs_out(40_000, Some(100_000), 2_000.0, NOW, Some(reset)),
            RunOut::At(NOW + 30 * 60_000)
        );
        // 900 left at 100/min: 9 minutes.
        assert_eq!(
            runs_out(99_100, Some(100_000), 100.0, NOW, None),
            RunOut::At(NOW + 9 * 60_000)
        );
        // The reset comes first: 60 000 left at 100/min is 10 hours, the reset in 5.
        assert_eq!(
            runs_out(40_000, Some(100_000), 100.0, NOW, Some(reset)),
            RunOut::ResetsFirst
        );
        assert_eq!(
            runs_out(100_000, Some(100_000), 0.0, NOW, None),
            RunOut::Now
        );
        assert_eq!(runs_out(10, Some(100), 0.0, NOW, None), RunOut::Never);
        assert_eq!(runs_out(10, None, 50.0, NOW, None), RunOut::Never);
    }
}
