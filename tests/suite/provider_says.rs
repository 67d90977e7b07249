//! The provider's own utilization beside the ledger's figure: the rate-limit headers a
//! response reported (through `report`, as the gateway does for every response) show in
//! `status` and `quota`, human and `--json`, with absolute resets and the time they were said.

use crate::common::{Home, T0, code, stderr, stdout};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// Reports a 200 from `provider` with `headers` at `now`.
fn report(home: &Home, now: i64, provider: &str, headers: &[&str]) {
    let mut args = vec!["report", provider, "--status", "200"];
    for h in headers {
        args.extend(["--header", h]);
    }
    let out = home.run_at(now, &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// Parsed `--json` stdout of `args` at `now`.
fn json_at(home: &Home, now: i64, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = home.run_at(now, &all);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json stdout")
}

/// The `provider_utilization` array of `provider`'s default account in a `quota --json` list.
fn said<'a>(quotas: &'a serde_json::Value, provider: &str) -> &'a Vec<serde_json::Value> {
    quotas
        .as_array()
        .expect("array")
        .iter()
        .find(|q| q["provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} in {quotas}"))["provider_utilization"]
        .as_array()
        .expect("provider_utilization array")
}

#[test]
fn claude_subscription_utilization_shows_in_quota_and_status_json() {
    let home = Home::new();
    // 5h window resets at T0 + 2h13m, the week at T0 + 4 days (epoch seconds, as sent).
    let five_reset = (T0 + 2 * HOUR + 13 * MINUTE) / 1000;
    let week_reset = (T0 + 4 * 24 * HOUR) / 1000;
    report(
        &home,
        T0,
        "claude",
        &[
            "anthropic-ratelimit-unified-5h-utilization: 0.42",
            &format!("anthropic-ratelimit-unified-5h-reset: {five_reset}"),
            "anthropic-ratelimit-unified-5h-status: allowed",
            "anthropic-ratelimit-unified-7d-utilization: 0.18",
            &format!("anthropic-ratelimit-unified-7d-reset: {week_reset}"),
            "anthropic-ratelimit-unified-7d-status: allowed",
        ],
    );
    let later = T0 + 5 * MINUTE;
    let quota = json_at(&home, later, &["quota"]);
    let claude = said(&quota, "claude");
    assert_eq!(claude.len(), 2, "{quota}");
    assert_eq!(claude[0]["window"], "5h");
    assert_eq!(claude[0]["used_percent"], 42.0);
    assert_eq!(claude[0]["status"], "allowed");
    assert_eq!(claude[0]["resets_at_ms"], five_reset * 1000);
    assert_eq!(claude[0]["resets_at"], "2026-11-23T12:13:00.000Z");
    // As of when the provider said it, not when `quota` ran.
    assert_eq!(claude[0]["as_of_ms"], T0);
    assert_eq!(claude[0]["as_of"], "2026-11-23T10:00:00.000Z");
    assert_eq!(claude[1]["window"], "7d");
    assert_eq!(claude[1]["used_percent"], 18.0);
    assert_eq!(claude[1]["resets_at"], "2026-11-27T10:00:00.000Z");
    assert!(said(&quota, "openai").is_empty(), "{quota}");

    let status = json_at(&home, later, &["status"]);
    let claude = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["provider"] == "claude")
        .unwrap();
    let items = claude["quota"]["provider_utilization"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{status}");
    assert_eq!(items[0]["used_percent"], 42.0);
    assert_eq!(items[0]["resets_at_ms"], five_reset * 1000);
}

#[test]
fn the_provider_line_shows_in_human_status_and_quota_only_when_it_said_something() {
    let home = Home::new();
    for args in [&["status"][..], &["quota"][..]] {
        let out = home.run_at(T0, args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(!stdout(&out).contains("provider says"), "{}", stdout(&out));
    }
    let five_reset = (T0 + 2 * HOUR + 13 * MINUTE) / 1000;
    report(
        &home,
        T0,
        "claude",
        &[
            "anthropic-ratelimit-unified-5h-utilization: 0.42",
            &format!("anthropic-ratelimit-unified-5h-reset: {five_reset}"),
            "anthropic-ratelimit-unified-7d-utilization: 0.18",
        ],
    );
    for args in [&["status"][..], &["quota"][..]] {
        let out = home.run_at(T0, args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.lines()
                .any(|l| l == "claude/default provider says: 5h 42% (resets in 2h13m), 7d 18%"),
            "{args:?}: {text}"
        );
        assert!(!text.contains("openai/default provider says"), "{text}");
    }
    // An hour on, the line says how old it is and counts down from the same reset.
    let out = home.run_at(T0 + HOUR, &["quota"]);
    assert!(
        stdout(&out).contains("claude/default provider says (1h ago): 5h 42% (resets in 1h13m)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn openai_reset_durations_count_from_the_report_not_from_the_query() {
    let home = Home::new();
    report(
        &home,
        T0,
        "openai",
        &[
            "x-ratelimit-limit-requests: 500",
            "x-ratelimit-remaining-requests: 499",
            "x-ratelimit-reset-requests: 120ms",
            "x-ratelimit-limit-tokens: 30000",
            "x-ratelimit-remaining-tokens: 7500",
            "x-ratelimit-reset-tokens: 6m0s",
            // Malformed: dropped, the rest still shown.
            "x-codex-primary-used-percent: lots",
        ],
    );
    // A later response without rate-limit headers keeps the facts and their time.
    report(&home, T0 + 2 * MINUTE, "openai", &[]);
    let quota = json_at(&home, T0 + 10 * MINUTE, &["quota", "--provider", "openai"]);
    let items = said(&quota, "openai");
    assert_eq!(items.len(), 2, "{quota}");
    assert_eq!(items[0]["window"], "requests/min");
    assert_eq!(items[0]["used_percent"], 0.2);
    assert_eq!(items[0]["resets_at_ms"], T0 + 120);
    assert_eq!(items[1]["window"], "tokens/min");
    assert_eq!(items[1]["used_percent"], 75.0);
    assert_eq!(items[1]["resets_at_ms"], T0 + 6 * MINUTE);
    assert_eq!(items[1]["resets_at"], "2026-11-23T10:06:00.000Z");
    assert_eq!(items[1]["as_of_ms"], T0);
}

#[test]
fn codex_windows_show_their_length_and_a_later_report_replaces_them() {
    let home = Home::new();
    let reset = (T0 + 3 * HOUR) / 1000;
    report(
        &home,
        T0,
        "openai",
        &[
            "x-codex-primary-used-percent: 7",
            "x-codex-primary-window-minutes: 300",
            &format!("x-codex-primary-reset-at: {reset}"),
            "x-codex-secondary-used-percent: 61.5",
            "x-codex-secondary-window-minutes: 10080",
        ],
    );
    let quota = json_at(&home, T0, &["quota"]);
    let items = said(&quota, "openai");
    assert_eq!(items.len(), 2, "{quota}");
    assert_eq!(items[0]["window"], "primary");
    assert_eq!(items[0]["window_minutes"], 300);
    assert_eq!(items[0]["used_percent"], 7.0);
    assert_eq!(items[0]["resets_at_ms"], reset * 1000);
    assert_eq!(items[1]["window"], "secondary");
    assert_eq!(items[1]["used_percent"], 61.5);
    assert!(items[1]["resets_at"].is_null(), "{quota}");
    let out = home.run_at(T0, &["quota"]);
    assert!(
        stdout(&out).contains(
            "openai/default provider says: primary 5h 7% (resets in 3h), secondary 7d 62%"
        ),
        "{}",
        stdout(&out)
    );

    report(
        &home,
        T0 + MINUTE,
        "openai",
        &["x-codex-primary-used-percent: 9"],
    );
    let quota = json_at(&home, T0 + MINUTE, &["quota"]);
    let items = said(&quota, "openai");
    assert_eq!(items.len(), 1, "{quota}");
    assert_eq!(items[0]["used_percent"], 9.0);
    assert_eq!(items[0]["as_of_ms"], T0 + MINUTE);
}
