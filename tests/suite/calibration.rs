//! Calibrated subscription limits: requests metered into the ledger while the provider reports
//! its 5h utilization (as the gateway's recorder does: usage, then the response's headers into
//! health) let `limits show` estimate the window's real size and `limits set --window-5h auto`
//! set it; presets for Claude plans; bad input changes nothing.

use std::sync::Arc;
use std::time::Duration;

use authledger::{
    Account, AcquireRequest, AgentId, KeySource, Ledger, LedgerConfig, ManualClock, Provider,
    UsageRecord,
};

use crate::common::{Home, T0, assert_refused, code, json_at, query_rows, stderr, stdout};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
/// The window's real size, which only the provider knows.
const LIMIT: i64 = 880_000;

/// The CLI home's ledger through the library, on a clock the test moves.
fn ledger_on(home: &Home, clock: &ManualClock) -> Ledger {
    Ledger::open(
        LedgerConfig::new(home.db())
            .with_clock(Arc::new(clock.clone()))
            .with_key(KeySource::File(home.path().join("keys").join("master.key"))),
    )
    .expect("open the home's ledger")
}

/// A Claude subscription home whose budget lets one lease meter most of the 5h window.
fn roomy_home() -> Home {
    let home = Home::new();
    let out = home.run(&[
        "limits",
        "set",
        "claude",
        "--daily-tokens",
        "100000000",
        "--lease-cap",
        "off",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    home
}

/// Twelve requests of 60,000 tokens, five minutes apart from T0, each followed by the
/// provider's 5h utilization for a window of [`LIMIT`] tokens that started at T0, as the
/// header gives it (a fraction with two decimals, so whole percents). Returns the time of the
/// last report.
fn meter_a_window(home: &Home) -> i64 {
    let clock = ManualClock::new(T0);
    let ledger = ledger_on(home, &clock);
    let lease = ledger
        .acquire(
            &AcquireRequest::new(AgentId::new("calib").unwrap(), Provider::Claude)
                .tokens(1_000_000)
                .ttl(Duration::from_secs(2 * 3600)),
        )
        .expect("acquire");
    let resets = (T0 + 5 * HOUR) / 1000;
    let mut metered = 0i64;
    let mut now = T0;
    for i in 1..=12 {
        now = T0 + i * 5 * MINUTE;
        clock.set_ms(now);
        let record = UsageRecord::new(20_000, 30_000)
            .cache(10_000, 0)
            .key(format!("req-{i}"));
        ledger.record_usage(&lease.id, &record).expect("usage");
        metered += 60_000;
        let fraction = (metered as f64 / LIMIT as f64 * 100.0).round() / 100.0;
        ledger
            .report_response(
                Provider::Claude,
                &lease.account,
                200,
                &[
                    (
                        "anthropic-ratelimit-unified-5h-utilization".into(),
                        format!("{fraction:.2}"),
                    ),
                    (
                        "anthropic-ratelimit-unified-5h-reset".into(),
                        resets.to_string(),
                    ),
                    (
                        "anthropic-ratelimit-unified-5h-status".into(),
                        "allowed".into(),
                    ),
                ],
            )
            .expect("report");
    }
    now
}

/// The `limits show --json` object of Claude's default account.
fn claude_limits(home: &Home, now: i64) -> serde_json::Value {
    json_at(home, now, &["limits", "show", "claude"])
        .as_array()
        .expect("array")
        .iter()
        .find(|l| l["provider"] == "claude" && l["account"] == "default")
        .expect("claude/default")
        .clone()
}

#[test]
fn calibration_recovers_a_known_window_limit_and_auto_sets_it() {
    let home = roomy_home();
    let now = meter_a_window(&home) + MINUTE;

    let shown = claude_limits(&home, now);
    let est = &shown["estimated"]["window_5h"];
    let limit = est["limit"].as_i64().unwrap_or_else(|| panic!("{shown}"));
    let off = (limit - LIMIT).abs() as f64 / LIMIT as f64 * 100.0;
    assert!(
        off < 2.0,
        "estimated {limit}, {off:.2} % off {LIMIT}: {est}"
    );
    assert_eq!(est["samples"], 12, "{est}");
    assert_ne!(est["confidence"], "none", "{est}");
    let margin = est["margin_percent"].as_f64().expect("margin");
    assert!(margin > 0.0 && margin < 10.0, "{est}");
    assert_eq!(
        shown["estimated"]["weekly"]["limit"],
        serde_json::Value::Null
    );
    assert_eq!(shown["window_5h_tokens"], serde_json::Value::Null);

    // People see it too, with its margin and sample count.
    let out = home.run_at(now, &["limits", "show", "claude"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("estimated 5h: ≈ {limit} tokens")) && text.contains("12 samples"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");

    let out = home.run_at(now, &["limits", "set", "claude", "--window-5h", "auto"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("calibrated estimate"),
        "{}",
        stdout(&out)
    );
    assert_eq!(claude_limits(&home, now)["window_5h_tokens"], limit);
}

#[test]
fn a_figure_reported_again_is_sampled_once() {
    let home = roomy_home();
    let clock = ManualClock::new(T0);
    let ledger = ledger_on(&home, &clock);
    let resets = ((T0 + 4 * HOUR) / 1000).to_string();
    for (at, fraction) in [(1, "0.10"), (2, "0.10"), (3, "0.11")] {
        clock.set_ms(T0 + at * MINUTE);
        ledger
            .report_response(
                Provider::Claude,
                &Account::default(),
                200,
                &[
                    (
                        "anthropic-ratelimit-unified-5h-utilization".into(),
                        fraction.into(),
                    ),
                    (
                        "anthropic-ratelimit-unified-5h-reset".into(),
                        resets.clone(),
                    ),
                ],
            )
            .expect("report");
    }
    let rows = query_rows(
        &home.db(),
        "SELECT window_name, at_ms, used_bp FROM utilization_samples ORDER BY at_ms",
    );
    let first = (T0 + MINUTE).to_string();
    let third = (T0 + 3 * MINUTE).to_string();
    assert_eq!(
        rows,
        [
            vec!["5h".to_string(), first, "1000".into()],
            vec!["5h".to_string(), third, "1100".into()]
        ]
    );
}

#[test]
fn auto_without_enough_reports_is_refused_and_changes_nothing() {
    let home = roomy_home();
    let before = home.snapshot();
    let out = home.run(&[
        "limits",
        "set",
        "claude",
        "--daily-tokens",
        "5000",
        "--window-5h",
        "auto",
    ]);
    assert_refused(&out, 2, &["no estimate", "claude/default", "5h"], "auto");
    let out = home.run(&["limits", "set", "claude", "--weekly", "auto"]);
    assert_refused(&out, 2, &["no estimate", "weekly"], "weekly auto");
    assert_eq!(home.snapshot(), before, "a refused `auto` wrote something");
    let shown = claude_limits(&home, T0);
    assert_eq!(shown["estimated"]["window_5h"]["confidence"], "none");
    assert_eq!(shown["estimated"]["window_5h"]["samples"], 0);
}

#[test]
fn plan_presets_set_the_5h_window_and_are_labelled_estimates() {
    let home = roomy_home();
    let out = home.run(&["limits", "set", "claude", "--plan", "max5"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("community estimate") && text.contains("approximate"),
        "{text}"
    );
    assert_eq!(claude_limits(&home, T0)["window_5h_tokens"], 88_000);
    let out = home.run(&["limits", "set", "claude", "--plan", "MAX20"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(claude_limits(&home, T0)["window_5h_tokens"], 220_000);
}

#[test]
fn an_unknown_or_misplaced_plan_is_refused_and_changes_nothing() {
    let home = roomy_home();
    let before = home.snapshot();
    let out = home.run(&[
        "limits",
        "set",
        "claude",
        "--plan",
        "max7",
        "--concurrent",
        "3",
    ]);
    assert_refused(&out, 2, &["max7", "pro, max5, max20"], "unknown plan");
    let out = home.run(&["limits", "set", "openai", "--plan", "max5"]);
    assert_refused(&out, 2, &["claude plans"], "plan for openai");
    let out = home.run(&[
        "limits",
        "set",
        "claude",
        "--plan",
        "max5",
        "--window-5h",
        "1000",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(home.snapshot(), before, "a refused --plan wrote something");
}
