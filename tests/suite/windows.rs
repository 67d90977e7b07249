//! Every metering window refuses at its edge and grants again when the window moves, with the
//! manual clock standing in for time.

use crate::common;

use std::time::Duration;

use authledger::{
    AcquireRequest, AgentId, DenyReason, Error, LimitsUpdate, Provider, QuotaError, UsageRecord,
    WindowKind,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-11-23T00:00:00Z.
const MIDNIGHT: i64 = 1_795_392_000_000;

type Fixture = common::LibraryLedger;

fn fixture(start: i64, update: LimitsUpdate) -> Fixture {
    common::library_ledger(start, update)
}

fn ask(f: &Fixture, tokens: i64) -> Result<authledger::Lease, Error> {
    f.ledger.acquire(
        &AcquireRequest::new(AgentId::new("agent").unwrap(), Provider::Claude)
            .tokens(tokens)
            .ttl(Duration::from_secs(60)),
    )
}

/// Takes `tokens` and uses them all, so the window's `used` grows and nothing stays reserved.
fn spend(f: &Fixture, tokens: i64) {
    let lease = ask(f, tokens).unwrap();
    f.ledger
        .record_usage(&lease.id, &UsageRecord::new(tokens, 0))
        .unwrap();
    f.ledger.release(&lease.id).unwrap();
}

fn denial(r: Result<authledger::Lease, Error>) -> authledger::Denial {
    match r {
        Err(Error::Quota(QuotaError::Denied(d))) => *d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn daily_budget_resets_at_the_configured_utc_time() {
    // Reset at 06:00 UTC; start at 05:00 on the 23rd, an hour before the reset.
    let f = fixture(
        MIDNIGHT + 5 * HOUR,
        LimitsUpdate {
            daily_tokens: Some(1_000),
            reset_offset_min: Some(6 * 60),
            ..Default::default()
        },
    );
    spend(&f, 1_000);
    let d = denial(ask(&f, 1));
    assert_eq!(d.reason, DenyReason::Budget(WindowKind::Day));
    assert_eq!((d.asked, d.available, d.limit), (Some(1), 0, 1_000));
    assert_eq!(d.resets_at, Some(MIDNIGHT + 6 * HOUR));

    f.clock.set_ms(MIDNIGHT + 6 * HOUR - 1);
    denial(ask(&f, 1));
    f.clock.set_ms(MIDNIGHT + 6 * HOUR);
    let lease = ask(&f, 1_000).expect("a new day at 06:00 has the whole budget");
    assert_eq!(lease.allocated, 1_000);
}

#[test]
fn five_hour_window_starts_at_first_use_and_rolls_on() {
    let start = MIDNIGHT + 9 * HOUR + 17 * 60_000;
    let f = fixture(
        start,
        LimitsUpdate {
            window_5h_tokens: Some(Some(500)),
            ..Default::default()
        },
    );
    spend(&f, 300);
    f.clock.advance_ms(2 * HOUR);
    spend(&f, 200);
    let d = denial(ask(&f, 1));
    assert_eq!(d.reason, DenyReason::Budget(WindowKind::FiveHour));
    assert_eq!(
        d.resets_at,
        Some(start + 5 * HOUR),
        "anchored at first use, not at the hour"
    );

    f.clock.set_ms(start + 5 * HOUR - 1);
    denial(ask(&f, 1));
    f.clock.set_ms(start + 5 * HOUR);
    spend(&f, 500);
    // The new window began at this first use, so it ends five hours later.
    let d = denial(ask(&f, 1));
    assert_eq!(d.resets_at, Some(start + 10 * HOUR));
}

#[test]
fn weekly_window_outlasts_daily_resets() {
    let start = MIDNIGHT;
    let f = fixture(
        start,
        LimitsUpdate {
            daily_tokens: Some(1_000),
            weekly_tokens: Some(Some(2_500)),
            ..Default::default()
        },
    );
    for day in 0..2 {
        f.clock.set_ms(start + day * DAY);
        spend(&f, 1_000);
    }
    f.clock.set_ms(start + 2 * DAY);
    spend(&f, 500);
    // Day 3 still has 500 of its daily budget, but the week has none.
    let d = denial(ask(&f, 1));
    assert_eq!(d.reason, DenyReason::Budget(WindowKind::Week));
    assert_eq!(d.resets_at, Some(start + 7 * DAY));
    f.clock.set_ms(start + 7 * DAY - 1);
    denial(ask(&f, 1));
    f.clock.set_ms(start + 7 * DAY);
    spend(&f, 1_000);
}

#[test]
fn requests_per_minute_refuse_until_the_next_minute() {
    let start = MIDNIGHT + 30_000;
    let f = fixture(
        start,
        LimitsUpdate {
            rpm: Some(Some(3)),
            ..Default::default()
        },
    );
    let lease = ask(&f, 100).unwrap();
    for i in 0..3 {
        f.ledger
            .record_usage(&lease.id, &UsageRecord::new(1, 1).key(format!("r{i}")))
            .unwrap();
    }
    let d = denial(ask(&f, 1));
    assert_eq!(d.reason, DenyReason::RequestsPerMinute);
    assert_eq!(d.resets_at, Some(MIDNIGHT + 60_000));
    f.clock.set_ms(MIDNIGHT + 60_000 - 1);
    denial(ask(&f, 1));
    f.clock.set_ms(MIDNIGHT + 60_000);
    ask(&f, 1).expect("a new minute");
}

#[test]
fn tokens_per_minute_refuse_until_the_next_minute() {
    let f = fixture(
        MIDNIGHT,
        LimitsUpdate {
            tpm: Some(Some(1_000)),
            ..Default::default()
        },
    );
    spend(&f, 999);
    ask(&f, 1).expect("999 of 1000 used: still under");
    spend(&f, 1);
    let d = denial(ask(&f, 1));
    assert_eq!(d.reason, DenyReason::TokensPerMinute);
    f.clock.advance_ms(60_000);
    ask(&f, 1).expect("a new minute");
}

#[test]
fn concurrency_refuses_at_the_limit_and_frees_on_release() {
    let f = fixture(
        MIDNIGHT,
        LimitsUpdate {
            concurrent: Some(2),
            ..Default::default()
        },
    );
    let a = ask(&f, 10).unwrap();
    let _b = ask(&f, 10).unwrap();
    let d = denial(ask(&f, 10));
    assert_eq!(d.reason, DenyReason::Concurrency);
    assert_eq!(
        d.resets_at,
        Some(a.expires_at),
        "the earliest expiry frees a slot"
    );
    f.ledger.release(&a.id).unwrap();
    ask(&f, 10).expect("a slot freed");
}

#[test]
fn a_new_window_is_a_new_row_and_old_days_keep_their_figures() {
    let f = fixture(
        MIDNIGHT,
        LimitsUpdate {
            daily_tokens: Some(1_000),
            ..Default::default()
        },
    );
    spend(&f, 700);
    f.clock.advance_ms(DAY);
    spend(&f, 100);
    // What the database holds, not what a report derives from it: a reset that rewrote the
    // old row would leave one row, or the old day's figures changed.
    let rows = common::query_rows(
        &f.dir.path().join("ledger.db"),
        "SELECT kind, start_ms, end_ms, used, reserved, requests FROM windows
         WHERE provider = 'claude' ORDER BY start_ms",
    );
    let row = |start: i64, used: i64| {
        [
            "day".to_string(),
            start.to_string(),
            (start + DAY).to_string(),
            used.to_string(),
            "0".to_string(),
            "1".to_string(),
        ]
    };
    assert_eq!(rows, [row(MIDNIGHT, 700), row(MIDNIGHT + DAY, 100)]);
}

#[test]
fn a_lease_that_outlives_its_day_keeps_holding_its_tokens_in_the_next() {
    // 23:50 on the 23rd: a lease takes the whole day's budget and lives past midnight.
    let f = fixture(
        MIDNIGHT + DAY - 10 * 60_000,
        LimitsUpdate {
            daily_tokens: Some(1_000),
            concurrent: Some(5),
            ..Default::default()
        },
    );
    let long = f
        .ledger
        .acquire(
            &AcquireRequest::new(AgentId::new("night-owl").unwrap(), Provider::Claude)
                .tokens(1_000)
                .ttl(Duration::from_secs(3600)),
        )
        .unwrap();
    // 00:10: the new day must not hand out the tokens the old lease still holds.
    f.clock.set_ms(MIDNIGHT + DAY + 10 * 60_000);
    let d = denial(ask(&f, 1_000));
    assert_eq!((d.available, d.limit), (0, 1_000));
    let q = &f.ledger.quota(Some(Provider::Claude)).unwrap()[0];
    assert_eq!(
        (q.used, q.reserved),
        (0, 1_000),
        "the reservation moved to today"
    );
    // 00:20: its usage counts today, out of what it holds.
    f.clock.set_ms(MIDNIGHT + DAY + 20 * 60_000);
    f.ledger
        .record_usage(&long.id, &UsageRecord::new(600, 0))
        .unwrap();
    let q = &f.ledger.quota(Some(Provider::Claude)).unwrap()[0];
    assert_eq!((q.used, q.reserved, q.remaining), (600, 400, 0));
    assert_eq!(f.ledger.release(&long.id).unwrap().returned, 400);
    let q = &f.ledger.quota(Some(Provider::Claude)).unwrap()[0];
    assert_eq!((q.used, q.reserved, q.remaining), (600, 0, 400));
}

#[test]
fn a_refused_request_opens_no_window() {
    let start = MIDNIGHT + HOUR;
    let f = fixture(
        start,
        LimitsUpdate {
            daily_tokens: Some(100),
            window_5h_tokens: Some(Some(1_000)),
            ..Default::default()
        },
    );
    denial(ask(&f, 500));
    // Had the refusal opened the 5-hour window, it would end at start + 5 h.
    f.clock.set_ms(start + 2 * HOUR);
    spend(&f, 50);
    let q = &f.ledger.quota(Some(Provider::Claude)).unwrap()[0];
    let five = q
        .windows
        .iter()
        .find(|w| w.kind == WindowKind::FiveHour)
        .unwrap();
    assert_eq!(
        five.resets_at,
        Some(start + 7 * HOUR),
        "opened by the first grant"
    );
}

/// Moves the clock to `to` in 20-minute steps, renewing `lease` at each, as a live holder does
/// (a lease silent for the idle time would be reclaimed).
fn advance_renewing(f: &Fixture, lease: &authledger::Lease, to: i64) {
    while f.ledger.now() + 20 * 60_000 < to {
        f.clock.advance_ms(20 * 60_000);
        f.ledger.renew(&lease.id).unwrap();
    }
    f.clock.set_ms(to);
}

/// The status of one window kind of the Claude account now.
fn window(f: &Fixture, kind: WindowKind) -> authledger::quota::WindowStatus {
    f.ledger.quota(Some(Provider::Claude)).unwrap()[0]
        .windows
        .iter()
        .find(|w| w.kind == kind)
        .cloned()
        .unwrap()
}

/// A lease taking a whole `kind` window's budget at `start` outlives that window (which ends
/// at `end`): the next window must not hand out what it still holds, its usage counts there,
/// and its release returns the rest there.
fn a_lease_outliving_its_window_holds_its_tokens_in_the_next(
    kind: WindowKind,
    start: i64,
    end: i64,
    update: LimitsUpdate,
) {
    let f = fixture(start, update);
    let long = f
        .ledger
        .acquire(
            &AcquireRequest::new(AgentId::new("night-owl").unwrap(), Provider::Claude)
                .tokens(1_000)
                .ttl(Duration::from_secs(30 * 86_400)),
        )
        .unwrap();
    advance_renewing(&f, &long, end + 10 * 60_000);
    let d = denial(ask(&f, 1_000));
    assert_eq!(d.reason, DenyReason::Budget(kind), "{d:?}");
    assert_eq!((d.available, d.limit), (0, 1_000));
    let w = window(&f, kind);
    assert_eq!((w.used, w.reserved), (0, 1_000), "the reservation moved");
    f.ledger
        .record_usage(&long.id, &UsageRecord::new(600, 0))
        .unwrap();
    let w = window(&f, kind);
    assert!(w.resets_at.unwrap() > end, "a new {kind} window: {w:?}");
    assert_eq!((w.used, w.reserved, w.remaining), (600, 400, Some(0)));
    assert_eq!(f.ledger.release(&long.id).unwrap().returned, 400);
    let w = window(&f, kind);
    assert_eq!((w.used, w.reserved, w.remaining), (600, 0, Some(400)));
}

#[test]
fn a_lease_that_outlives_its_five_hour_window_keeps_holding_its_tokens_in_the_next() {
    let start = MIDNIGHT + 9 * HOUR;
    a_lease_outliving_its_window_holds_its_tokens_in_the_next(
        WindowKind::FiveHour,
        start,
        start + 5 * HOUR,
        LimitsUpdate {
            window_5h_tokens: Some(Some(1_000)),
            concurrent: Some(5),
            ..Default::default()
        },
    );
}

#[test]
fn a_lease_that_outlives_its_week_keeps_holding_its_tokens_in_the_next() {
    a_lease_outliving_its_window_holds_its_tokens_in_the_next(
        WindowKind::Week,
        MIDNIGHT,
        MIDNIGHT + 7 * DAY,
        LimitsUpdate {
            weekly_tokens: Some(Some(1_000)),
            concurrent: Some(5),
            ..Default::default()
        },
    );
}
