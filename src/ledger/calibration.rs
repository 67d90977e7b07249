//! A subscription window's estimated token limit: the provider's utilization samples beside
//! the tokens the ledger metered in the same window instance (`crate::calibrate`).

use super::Ledger;
use crate::calibrate::{self, Estimate, NotYet, Sample};
use crate::error::Error;
use crate::store::{StoreError, Tx};
use crate::types::{Account, Provider};

/// The newest samples an estimate reads: plenty for a median, bounded for a ledger that has
/// watched a busy subscription all week.
const SAMPLES_READ: i64 = 256;

/// The provider's names for the window `--window-5h` limits: Claude's `5h`, Codex's `primary`.
pub const FIVE_HOUR_WINDOWS: [&str; 2] = ["5h", "primary"];
/// The provider's names for the window `--weekly` limits: Claude's `7d`, Codex's `secondary`.
pub const WEEKLY_WINDOWS: [&str; 2] = ["7d", "secondary"];

/// An account's estimated subscription limits, or why there is none yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Tokens per 5-hour window.
    pub window_5h: Result<Estimate, NotYet>,
    /// Tokens per 7-day window.
    pub weekly: Result<Estimate, NotYet>,
}

impl Ledger {
    /// Estimates the account's 5-hour and weekly limits from what the provider reported of
    /// them (kept by the health reports the gateway makes) and what the ledger metered.
    pub fn calibration(&self, provider: Provider, account: &Account) -> Result<Calibration, Error> {
        Ok(self.store.read(|tx| -> Result<_, StoreError> {
            Ok(Calibration {
                window_5h: calibrate::estimate(&samples(
                    tx,
                    provider,
                    account,
                    &FIVE_HOUR_WINDOWS,
                )?),
                weekly: calibrate::estimate(&samples(tx, provider, account, &WEEKLY_WINDOWS)?),
            })
        })?)
    }
}

/// Each stored sample of the windows paired with the tokens metered from its window's start
/// up to it.
fn samples(
    tx: &Tx<'_>,
    provider: Provider,
    account: &Account,
    windows: &[&str; 2],
) -> Result<Vec<Sample>, StoreError> {
    tx.utilization_samples(provider, account, windows, SAMPLES_READ)?
        .into_iter()
        .map(|s| {
            Ok(Sample {
                tokens: tx.tokens_between(provider, account, s.resets_at - s.window_ms, s.at_ms)?,
                used_percent: s.used_bp as f64 / 100.0,
            })
        })
        .collect()
}
