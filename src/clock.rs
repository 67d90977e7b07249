//! Where the ledger gets "now" from.
//!
//! Windows, TTLs and idle timeouts all depend on time, and tests must move time without
//! sleeping. Every time the ledger reads goes through a [`Clock`]; production uses
//! [`SystemClock`], tests and the demo use [`ManualClock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::types::Millis;

/// A source of the current UTC time in milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> Millis;

    /// Whether this is the machine's own clock, the one every process shares. Only such a
    /// ledger hands writes to the daemon, whose transactions run on the wall clock.
    fn is_wall_clock(&self) -> bool {
        false
    }

    /// Lets `d` pass (a `--wait` pause): a real sleep; a pinned clock also moves on by `d`.
    fn sleep(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn is_wall_clock(&self) -> bool {
        true
    }

    fn now_ms(&self) -> Millis {
        // A clock before 1970 is a broken machine; reading it as the epoch keeps the ledger
        // consistent instead of panicking.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: Millis) -> Self {
        ManualClock(Arc::new(AtomicI64::new(now_ms)))
    }

    /// Moves the clock forward (or back, with a negative figure).
    pub fn advance_ms(&self, delta: Millis) {
        self.0.fetch_add(delta, Ordering::SeqCst);
    }

    /// Sets the clock to an absolute time.
    pub fn set_ms(&self, now_ms: Millis) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }

    /// Other processes act in real time (a waiter's rivals release their leases), so the
    /// pause is real; this clock then moves on by exactly `d`, so what happens after it is at
    /// a time a test can state.
    fn sleep(&self, d: std::time::Duration) {
        std::thread::sleep(d);
        self.advance_ms(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
    }
}

/// Formats milliseconds as RFC 3339 UTC (`2026-11-23T10:00:00Z`), the form every output uses.
pub fn format_ms(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// The latest time the ledger accepts (9999-12-31T23:59:59.999Z): window arithmetic on it
/// still fits in an `i64`.
pub const MAX_TIME_MS: Millis = 253_402_300_799_999;

/// Parses a point in time given by a user: RFC 3339, a date (`2026-11-23`, midnight UTC), or
/// epoch milliseconds, from the epoch to the year 9999.
pub fn parse_time(s: &str) -> Option<Millis> {
    parse_time_unbounded(s).filter(|ms| (0..=MAX_TIME_MS).contains(ms))
}

fn parse_time_unbounded(s: &str) -> Option<Millis> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis());
    }
    s.parse::<i64>().ok().filter(|ms| *ms >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_clones_share_time() {
        let a = ManualClock::new(1_000);
        let b = a.clone();
        a.advance_ms(500);
        assert_eq!(b.now_ms(), 1_500);
    }

    #[test]
    fn times_parse_in_three_forms() {
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Some(1_000));
        assert_eq!(parse_time("42"), Some(42));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("9223372036854775807"), None);
        assert_eq!(parse_time("-5"), None);
        assert_eq!(format_ms(86_400_000), "1970-01-02T00:00:00Z");
    }
}
