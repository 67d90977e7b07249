//! How long the gateway took to answer, as an in-memory histogram served at its `/metrics`
//! only: from a request's arrival to its response's headers going back (the ledger's
//! decision, the upstream's time to its headers, the gateway's own work), per forwarded
//! request. It lives as long as the gateway process; nothing of it is stored.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (the last, `+Inf`, is implied).
const BOUNDS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The family's name.
const NAME: &str = "authledger_gateway_response_header_seconds";

/// Counts per bucket (not cumulative), the count and the sum in microseconds; lock-free.
#[derive(Debug, Default)]
pub struct Latency {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Latency {
    /// Counts one request that took `d`.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram as an OpenMetrics family (cumulative buckets, `+Inf` equal to the
    /// count as read at the same moment).
    pub fn render(&self) -> String {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE {NAME} histogram");
        let _ = writeln!(out, "# UNIT {NAME} seconds");
        let _ = writeln!(
            out,
            "# HELP {NAME} From a forwarded request's arrival to its response's headers going back."
        );
        let mut cumulative = 0;
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            let le = BOUNDS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{NAME}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{NAME}_sum {sum}");
        let _ = writeln!(out, "{NAME}_count {cumulative}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_the_count() {
        let l = Latency::default();
        l.observe(Duration::from_millis(3));
        l.observe(Duration::from_millis(70));
        l.observe(Duration::from_secs(120));
        let text = l.render();
        assert!(
            text.contains(&format!("{NAME}_bucket{{le=\"0.005\"}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{NAME}_bucket{{le=\"0.05\"}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{NAME}_bucket{{le=\"0.1\"}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{NAME}_bucket{{le=\"60\"}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{NAME}_bucket{{le=\"+Inf\"}} 3\n")),
            "{text}"
        );
        assert!(text.contains(&format!("{NAME}_sum 120.073\n")), "{text}");
        assert!(text.contains(&format!("{NAME}_count 3\n")), "{text}");
    }
}
