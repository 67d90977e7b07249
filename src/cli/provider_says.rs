//! The provider's own utilization beside the ledger's figure (`status`, `quota`): one compact
//! line per account, e.g. `claude/default provider says: 5h 42% (resets in 2h13m), 7d 18%`.

use crate::error::Error;
use crate::health::{self, ProviderUtilization};
use crate::ledger::Ledger;
use crate::quota::QuotaStatus;
use crate::types::Millis;

/// Each account's provider windows, in the order of `quotas` (empty: nothing reported).
pub fn of_accounts(
    ledger: &Ledger,
    quotas: &[QuotaStatus],
) -> Result<Vec<Vec<ProviderUtilization>>, Error> {
    quotas
        .iter()
        .map(|q| {
            Ok(ledger
                .health(q.provider, &q.account)?
                .map(|h| health::provider_utilization(&h))
                .unwrap_or_default())
        })
        .collect()
}

/// The human line for one account, `None` when the provider said nothing readable.
pub fn line(label: &str, items: &[ProviderUtilization], now: Millis) -> Option<String> {
    let first = items.first()?;
    let age = now - first.as_of;
    let when = if age >= 60_000 {
        format!(" ({} ago)", span(age))
    } else {
        String::new()
    };
    let windows: Vec<String> = items.iter().map(|u| window(u, now)).collect();
    Some(format!(
        "{label} provider says{when}: {}",
        windows.join(", ")
    ))
}

/// `5h 42% (resets in 2h13m)`, `primary 5h 7%`, `7d 100% rejected (reset since)`.
fn window(u: &ProviderUtilization, now: Millis) -> String {
    let mut s = u.window.clone();
    if let Some(m) = u.window_minutes {
        s.push(' ');
        s.push_str(&span(m * 60_000));
    }
    s.push(' ');
    s.push_str(&percent(u.used_percent));
    if let Some(status) = u.status.as_deref().filter(|s| *s != "allowed") {
        s.push(' ');
        s.push_str(status);
    }
    match u.resets_at {
        Some(t) if t > now => s.push_str(&format!(" (resets in {})", span(t - now))),
        // The window has turned over since the provider spoke: its figure is stale.
        Some(_) => s.push_str(" (reset since)"),
        None => {}
    }
    s
}

/// Whole percents; a small non-zero use is `<1%`, not a reassuring `0%`.
fn percent(p: f64) -> String {
    if p > 0.0 && p < 0.5 {
        "<1%".into()
    } else {
        format!("{p:.0}%")
    }
}

/// A compact span: `45s`, `13m`, `2h13m`, `4d2h` (rounded up, so `resets in` is never early).
pub fn span(ms: Millis) -> String {
    let d = health::until(0, ms);
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if secs < 60 {
        return format!("{secs}s");
    }
    let mins = secs.div_ceil(60);
    let (days, hours, mins) = (mins / 1440, mins / 60 % 24, mins % 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_428_000_000;

    fn item(window: &str, used: f64, resets_at: Option<Millis>) -> ProviderUtilization {
        ProviderUtilization {
            window: window.into(),
            window_minutes: None,
            used_percent: used,
            resets_at,
            status: None,
            as_of: NOW,
        }
    }

    #[test]
    fn spans_are_compact_and_round_up() {
        assert_eq!(span(120), "1s");
        assert_eq!(span(45_000), "45s");
        assert_eq!(span(13 * 60_000), "13m");
        assert_eq!(span((2 * 60 + 13) * 60_000 - 500), "2h13m");
        assert_eq!(span(5 * 3_600_000), "5h");
        assert_eq!(span(7 * 86_400_000), "7d");
        assert_eq!(span(4 * 86_400_000 + 2 * 3_600_000), "4d2h");
    }

    #[test]
    fn the_line_names_each_window_with_its_reset() {
        let items = [
            item("5h", 42.0, Some(NOW + (2 * 60 + 13) * 60_000)),
            item("7d", 18.2, None),
        ];
        assert_eq!(
            line("claude/default", &items, NOW).as_deref(),
            Some("claude/default provider says: 5h 42% (resets in 2h13m), 7d 18%")
        );
        let later = NOW + 3 * 3_600_000;
        assert_eq!(
            line("claude/default", &items[..1], later).as_deref(),
            Some("claude/default provider says (3h ago): 5h 42% (reset since)")
        );
        assert_eq!(line("claude/default", &[], NOW), None);
        let mut codex = item("primary", 0.2, None);
        codex.window_minutes = Some(300);
        codex.status = Some("rejected".into());
        assert_eq!(
            line("openai/default", &[codex], NOW).as_deref(),
            Some("openai/default provider says: primary 5h <1% rejected")
        );
    }
}
