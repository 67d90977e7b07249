//! Utilization samples: what providers said of their subscription windows, kept for
//! calibration (`crate::calibrate`), and the metered tokens each is compared with.

use super::sql::args;

use super::tx::parse_col;
use super::{StoreError, Tx};
use crate::records::UtilizationSample;
use crate::types::{Account, Millis, Provider};

impl Tx<'_> {
    /// Stores a sample unless the same figure was already stored for the same window
    /// instance: the first time a figure is seen is when the window reached it, the moment
    /// the metered tokens say most about.
    pub fn insert_utilization_sample(&self, s: &UtilizationSample) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO utilization_samples
               (provider, account, window_name, at_ms, used_bp, resets_at, window_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT DO NOTHING",
            args![
                s.provider.as_str(),
                s.account.as_str(),
                s.window,
                s.at_ms,
                s.used_bp,
                s.resets_at,
                s.window_ms
            ],
        )?;
        Ok(())
    }

    /// Drops an account's samples taken before `before`.
    pub fn prune_utilization_samples(
        &self,
        provider: Provider,
        account: &Account,
        before: Millis,
    ) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM utilization_samples
             WHERE provider = ?1 AND account = ?2 AND at_ms < ?3",
            args![provider.as_str(), account.as_str(), before],
        )?;
        Ok(())
    }

    /// An account's newest samples (at most `limit`) of the named windows, newest first.
    pub fn utilization_samples(
        &self,
        provider: Provider,
        account: &Account,
        windows: &[&str; 2],
        limit: i64,
    ) -> Result<Vec<UtilizationSample>, StoreError> {
        let raw = self.all(
            "SELECT provider, account, window_name, at_ms, used_bp, resets_at, window_ms
             FROM utilization_samples
             WHERE provider = ?1 AND account = ?2 AND window_name IN (?3, ?4)
             ORDER BY at_ms DESC, used_bp DESC LIMIT ?5",
            args![
                provider.as_str(),
                account.as_str(),
                windows[0],
                windows[1],
                limit
            ],
            |r| {
                Ok((
                    [
                        r.get::<String>("provider")?,
                        r.get("account")?,
                        r.get("window_name")?,
                    ],
                    [
                        r.get::<i64>("at_ms")?,
                        r.get("used_bp")?,
                        r.get("resets_at")?,
                        r.get("window_ms")?,
                    ],
                ))
            },
        )?;
        raw.into_iter()
            .map(|([p, a, window], [at_ms, used_bp, resets_at, window_ms])| {
                Ok(UtilizationSample {
                    provider: parse_col("provider", p)?,
                    account: parse_col("account", a)?,
                    window,
                    at_ms,
                    used_bp,
                    resets_at,
                    window_ms,
                })
            })
            .collect()
    }

    /// Tokens (input, output and both cache figures, as the windows count them) an account
    /// used from `from` to `to`, both included.
    pub fn tokens_between(
        &self,
        provider: Provider,
        account: &Account,
        from: Millis,
        to: Millis,
    ) -> Result<i64, StoreError> {
        self.single(
            "SELECT CAST(COALESCE(SUM(input + output + cache_read + cache_write), 0) AS BIGINT) AS total
             FROM usage_events
             WHERE provider = ?1 AND account = ?2 AND at_ms >= ?3 AND at_ms <= ?4",
            args![provider.as_str(), account.as_str(), from, to],
            |r| r.get("total"),
        )
    }
}
