//! Turning raw command-line strings into validated values, before any library call.

use std::time::Duration;

use crate::clock::{Clock, parse_time};
use crate::types::{parse_tokens, truncate_for_message};

/// A token figure (`--tokens`, `--input`, …).
pub fn tokens(s: &str) -> Result<i64, String> {
    parse_tokens("value", s).map_err(|e| e.to_string())
}

/// A duration such as `90s`, `10m`, `2h`, `1h30m`.
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|_| {
        format!(
            "{:?} is not a duration (expected e.g. 90s, 10m, 2h, 1h30m)",
            truncate_for_message(s)
        )
    })?;
    if d > Duration::from_secs(10 * 365 * 86_400) {
        return Err(format!("{s} is too long a duration"));
    }
    Ok(d)
}

/// An optional limit as given on the command line: a figure, or `off` (no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalLimit(pub Option<i64>);

/// Parses an [`OptionalLimit`].
pub fn optional_limit(s: &str) -> Result<OptionalLimit, String> {
    if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
        return Ok(OptionalLimit(None));
    }
    tokens(s).map(|n| OptionalLimit(Some(n)))
}

/// A time of day `HH:MM` (UTC), as minutes after midnight.
pub fn time_of_day(s: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "{:?} is not a time of day (expected HH:MM, UTC)",
            truncate_for_message(s)
        )
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// A point in time: RFC 3339, a date, epoch milliseconds, or a duration ago (`24h`).
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// An absolute time in epoch milliseconds.
    At(i64),
    /// This long before now.
    Ago(Duration),
}

impl When {
    /// Resolves against the ledger's clock.
    pub fn resolve(self, clock: &dyn Clock) -> i64 {
        match self {
            When::At(ms) => ms,
            When::Ago(d) => clock.now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2),
        }
    }
}

/// Parses a [`When`].
pub fn when(s: &str) -> Result<When, String> {
    if let Some(ms) = parse_time(s) {
        return Ok(When::At(ms));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(When::Ago(d));
    }
    Err(format!(
        "{:?} is not a time (expected 2026-11-23, 2026-11-23T10:00:00Z, or a duration ago like 24h)",
        truncate_for_message(s)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_of_day_parse_or_say_why() {
        assert_eq!(duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(duration("soon").unwrap_err().contains("not a duration"));
        assert_eq!(time_of_day("06:30").unwrap(), 390);
        assert!(time_of_day("24:00").is_err());
        assert_eq!(optional_limit("off").unwrap(), OptionalLimit(None));
        assert_eq!(optional_limit("5").unwrap(), OptionalLimit(Some(5)));
        assert!(optional_limit("-5").is_err());
    }
}
