//! Window arithmetic: which window "now" falls in, and finding or opening its row.

use crate::records::Window;
use crate::store::{StoreError, Tx};
use crate::types::{Account, Millis, Provider, WindowKind};

const MINUTE_MS: Millis = 60_000;
const DAY_MS: Millis = 86_400_000;

/// The bounds of the calendar window containing `now`, for the kinds aligned to the calendar
/// (day at the reset offset, minute). Anchored kinds (5 h, week) start at first use: `None`.
pub fn aligned_bounds(
    kind: WindowKind,
    now: Millis,
    reset_offset_min: i64,
) -> Option<(Millis, Millis)> {
    match kind {
        WindowKind::Day => {
            let offset = reset_offset_min * MINUTE_MS;
            let start = (now - offset).div_euclid(DAY_MS) * DAY_MS + offset;
            Some((start, start + DAY_MS))
        }
        WindowKind::Minute => {
            let start = now.div_euclid(MINUTE_MS) * MINUTE_MS;
            Some((start, start + MINUTE_MS))
        }
        WindowKind::FiveHour | WindowKind::Week => None,
    }
}

/// The window of `kind` containing `now`, opening a new row when none does. A new window is a
/// new row; an old one is never zeroed. Opening a budget window carries the unused
/// reservations of still-active leases over from the window before it.
pub fn current_window(
    tx: &Tx<'_>,
    provider: Provider,
    account: &Account,
    kind: WindowKind,
    now: Millis,
    reset_offset_min: i64,
) -> Result<Window, StoreError> {
    if let Some(w) = tx.window_at(provider, account, kind, now)? {
        return Ok(w);
    }
    let aligned = aligned_bounds(kind, now, reset_offset_min);
    if aligned.is_none()
        && let Some(latest) = tx.previous_window(provider, account, kind, Millis::MAX)?
        && latest.start_ms > now
    {
        // A window that starts after "now" was opened by a process whose clock runs ahead
        // (another host of a shared ledger): it is the current one. Opening another here would
        // overlap it, and leases counted in one would not be counted in the other.
        return Ok(latest);
    }
    let (start, end) = aligned.unwrap_or((now, now + kind.length_ms()));
    let mut window = tx.insert_window(provider, account, kind, start, end)?;
    if kind != WindowKind::Minute
        && let Some(previous) = tx.previous_window(provider, account, kind, start)?
    {
        window.reserved += tx.carry_reservations(previous.id, window.id)?;
    }
    Ok(window)
}

/// What a window not opened yet would start with: the reservations active leases would carry
/// into it. Lets read-only views show the truth without writing.
pub fn pending_carry(
    tx: &Tx<'_>,
    provider: Provider,
    account: &Account,
    kind: WindowKind,
    now: Millis,
) -> Result<i64, StoreError> {
    if kind == WindowKind::Minute {
        return Ok(0);
    }
    match tx.previous_window(provider, account, kind, now + 1)? {
        Some(previous) => tx.active_holdings(previous.id),
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_window_starts_at_the_reset_offset() {
        // 2026-11-23T05:00Z with a 06:00 reset belongs to the day that began 2026-11-22T06:00Z.
        let now = 1_795_410_000_000 - (1_795_410_000_000 % DAY_MS) + 5 * 3_600_000;
        let (start, end) = aligned_bounds(WindowKind::Day, now, 360).unwrap();
        assert_eq!(start, now - 23 * 3_600_000);
        assert_eq!(end - start, DAY_MS);
        let (start, _) = aligned_bounds(WindowKind::Day, now + 3_600_000, 360).unwrap();
        assert_eq!(start, now + 3_600_000, "06:00 opens a new day");
    }

    #[test]
    fn minute_window_is_the_utc_minute() {
        assert_eq!(
            aligned_bounds(WindowKind::Minute, 125_000, 0),
            Some((120_000, 180_000))
        );
        assert_eq!(aligned_bounds(WindowKind::FiveHour, 125_000, 0), None);
    }
}
