//! The selection table: every rule and every reason, with the manual clock.

use std::sync::Arc;

use authledger::select::{Choice, Decision};
use authledger::{
    Account, AcquireRequest, AgentId, Credential, CredentialKind, KeySource, Ledger, LedgerConfig,
    LimitsUpdate, ManualClock, Provider, Secret, Tier, UsageRecord,
};

const T0: i64 = 1_795_428_000_000;

struct Fixture {
    dir: tempfile::TempDir,
    clock: ManualClock,
    ledger: Ledger,
}

fn acct(name: &str) -> Account {
    Account::new(name).unwrap()
}

fn oauth(provider: Provider, account: &str, token: &str) -> Credential {
    let mut c = Credential::api_key(
        provider,
        acct(account),
        Secret::new("x".into()),
        "claude-code",
    );
    c.kind = CredentialKind::Oauth;
    c.tier = if provider == Provider::Claude {
        Tier::Max
    } else {
        Tier::Chatgpt
    };
    c.api_key = None;
    c.access_token = Some(Secret::new(token.into()));
    c.refresh_token = Some(Secret::new(format!("{token}-refresh")));
    c.expires_at = Some(T0 + 365 * 86_400_000);
    c
}

/// Claude: a Max subscription (`sub`) and an API key (`key`); OpenAI: an API key.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let ledger = Ledger::open(
        LedgerConfig::new(dir.path().join("ledger.db"))
            .with_clock(Arc::new(clock.clone()))
            .with_key(KeySource::File(dir.path().join("master.key"))),
    )
    .unwrap();
    for (p, a, daily, concurrent) in [
        (Provider::Claude, "sub", 1_000, 10),
        (Provider::Claude, "key", 1_000, 10),
        (Provider::Openai, "default", 1_000, 10),
    ] {
        ledger
            .set_limits(
                p,
                &acct(a),
                &LimitsUpdate {
                    daily_tokens: Some(daily),
                    concurrent: Some(concurrent),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    ledger
        .store_credential(&oauth(Provider::Claude, "sub", "sk-ant-oat01-sub-token"))
        .unwrap();
    for (p, a, key) in [
        (Provider::Claude, "key", "sk-ant-api03-key-000000000"),
        (Provider::Openai, "default", "sk-proj-openai-0000000000"),
    ] {
        ledger
            .store_credential(&Credential::api_key(
                p,
                acct(a),
                Secret::new(key.into()),
                "stdin",
            ))
            .unwrap();
    }
    Fixture { dir, clock, ledger }
}

fn auto(f: &Fixture) -> Decision {
    f.ledger.select(&Choice::Auto).unwrap()
}

fn chosen(d: &Decision) -> String {
    format!("{}/{}", d.provider, d.account)
}

fn use_tokens(f: &Fixture, provider: Provider, account: &str, tokens: i64) {
    let (lease, _) = f
        .ledger
        .acquire_selected(
            &AcquireRequest::new(AgentId::new("filler").unwrap(), provider).tokens(tokens),
            &Choice::Explicit(provider, Some(acct(account))),
        )
        .unwrap();
    f.ledger
        .record_usage(&lease.id, &UsageRecord::new(tokens, 0))
        .unwrap();
    f.ledger.release(&lease.id).unwrap();
}

#[test]
fn a_subscription_comes_before_an_api_key_and_claude_before_openai() {
    let f = fixture();
    let d = auto(&f);
    assert_eq!(chosen(&d), "claude/sub");
    assert_eq!(d.reason, "first usable provider");
    assert!(d.fallback_from.is_none());
    let order: Vec<String> = d
        .considered
        .iter()
        .map(|v| format!("{}/{}", v.provider, v.account))
        .collect();
    assert_eq!(order, ["claude/sub", "claude/key", "openai/default"]);
}

#[test]
fn an_explicit_provider_is_kept_and_never_replaced_by_another() {
    let f = fixture();
    let d = f
        .ledger
        .select(&Choice::Explicit(Provider::Openai, None))
        .unwrap();
    assert_eq!(
        (chosen(&d), d.reason.as_str()),
        ("openai/default".into(), "asked for")
    );
    // An explicit account that has no credential is refused, not replaced.
    let err = f
        .ledger
        .select(&Choice::Explicit(Provider::Claude, Some(acct("nope"))))
        .unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("no credential"), "{err}");
}

#[test]
fn the_preferred_provider_goes_first_until_switched_back() {
    let f = fixture();
    f.ledger.switch(Some(Provider::Openai)).unwrap();
    let d = auto(&f);
    assert_eq!(
        (chosen(&d), d.reason.as_str()),
        ("openai/default".into(), "preferred provider")
    );
    f.ledger.switch(None).unwrap();
    assert_eq!(chosen(&auto(&f)), "claude/sub");
}

#[test]
fn a_credential_needing_login_is_skipped_with_its_reason() {
    let f = fixture();
    let raw = common::raw(&f.dir.path().join("ledger.db"));
    raw.execute(
        "UPDATE credentials SET status = 'needs_login' WHERE account = 'sub'",
        [],
    )
    .unwrap();
    let d = auto(&f);
    assert_eq!(chosen(&d), "claude/key");
    assert!(d.reason.contains("claude/sub needs login"), "{}", d.reason);
}

#[test]
fn an_expired_credential_without_refresh_is_skipped() {
    let f = fixture();
    let mut c = oauth(Provider::Claude, "sub", "sk-ant-oat01-sub-token");
    c.refresh_token = None;
    c.expires_at = Some(T0 + 1_000);
    f.ledger.store_credential(&c).unwrap();
    assert_eq!(chosen(&auto(&f)), "claude/sub");
    f.clock.advance_ms(1_000);
    let d = auto(&f);
    assert_eq!(chosen(&d), "claude/key");
    assert!(d.reason.contains("credential expired"), "{}", d.reason);
}

#[test]
fn over_80_percent_of_a_window_falls_back_and_the_next_day_comes_back() {
    let f = fixture();
    use_tokens(&f, Provider::Claude, "sub", 790);
    assert_eq!(chosen(&auto(&f)), "claude/sub", "79 % is still fine");
    use_tokens(&f, Provider::Claude, "sub", 10);
    let d = auto(&f);
    assert_eq!(chosen(&d), "claude/key");
    assert!(
        d.reason.contains("at 80 % of its day window"),
        "{}",
        d.reason
    );
    f.clock.set_ms((T0 / 86_400_000 + 1) * 86_400_000);
    assert_eq!(chosen(&auto(&f)), "claude/sub", "a new day");
}

#[test]
fn no_free_slot_falls_back() {
    let f = fixture();
    f.ledger
        .set_limits(
            Provider::Claude,
            &acct("sub"),
            &LimitsUpdate {
                concurrent: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    let (held, _) = f
        .ledger
        .acquire_selected(
            &AcquireRequest::new(AgentId::new("a").unwrap(), Provider::Claude).tokens(10),
            &Choice::Auto,
        )
        .unwrap();
    assert_eq!(held.account.as_str(), "sub");
    let d = auto(&f);
    assert_eq!(chosen(&d), "claude/key");
    assert!(
        d.reason
            .contains("no free slot (1/1 leases; a slot frees by 2026-11-23T12:00:00Z"),
        "{}",
        d.reason
    );
}

#[test]
fn an_unhealthy_provider_is_skipped_until_its_reset() {
    let f = fixture();
    for a in ["sub", "key"] {
        f.ledger
            .report_response(
                Provider::Claude,
                &acct(a),
                429,
                &[("retry-after".into(), "60".into())],
            )
            .unwrap();
    }
    let d = auto(&f);
    assert_eq!(chosen(&d), "openai/default");
    assert!(
        d.reason.contains("unhealthy until") && d.reason.contains("429"),
        "{}",
        d.reason
    );
    f.clock.advance_ms(59_999);
    assert_eq!(chosen(&auto(&f)), "openai/default");
    f.clock.advance_ms(1);
    assert_eq!(
        chosen(&auto(&f)),
        "claude/sub",
        "recovers by itself at the reset"
    );
}

#[test]
fn repeated_server_errors_make_a_provider_unhealthy_and_a_success_clears_it() {
    let f = fixture();
    for _ in 0..2 {
        f.ledger
            .report_response(Provider::Claude, &acct("sub"), 503, &[])
            .unwrap();
    }
    assert_eq!(
        chosen(&auto(&f)),
        "claude/sub",
        "two 5xx are not yet a pattern"
    );
    f.ledger
        .report_response(Provider::Claude, &acct("sub"), 500, &[])
        .unwrap();
    let d = auto(&f);
    assert_eq!(chosen(&d), "claude/key");
    assert!(d.reason.contains("server errors"), "{}", d.reason);
    f.ledger
        .report_response(Provider::Claude, &acct("sub"), 200, &[])
        .unwrap();
    assert_eq!(chosen(&auto(&f)), "claude/sub");
}

#[test]
fn when_everything_is_busy_any_account_with_a_free_slot_serves() {
    let f = fixture();
    use_tokens(&f, Provider::Claude, "sub", 900);
    use_tokens(&f, Provider::Claude, "key", 900);
    use_tokens(&f, Provider::Openai, "default", 900);
    let d = auto(&f);
    assert_eq!(chosen(&d), "claude/sub");
    assert!(
        d.reason.contains("the only candidate") || d.reason.contains("free slot"),
        "{}",
        d.reason
    );
    // And nothing at all is an error that says why for each candidate.
    for (p, a) in [
        (Provider::Claude, "sub"),
        (Provider::Claude, "key"),
        (Provider::Openai, "default"),
    ] {
        use_tokens(&f, p, a, 100);
    }
    let err = f.ledger.select(&Choice::Auto).unwrap_err();
    assert_eq!(err.exit_code(), 3, "{err}");
    assert!(err.to_string().contains("budget spent"), "{err}");
}

#[test]
fn a_fallback_grant_writes_a_fallback_audit_row() {
    let f = fixture();
    f.ledger
        .report_response(
            Provider::Claude,
            &acct("sub"),
            429,
            &[("retry-after".into(), "60".into())],
        )
        .unwrap();
    let (lease, d) = f
        .ledger
        .acquire_selected(
            &AcquireRequest::new(AgentId::new("a").unwrap(), Provider::Claude),
            &Choice::Auto,
        )
        .unwrap();
    assert_eq!(lease.account.as_str(), "key");
    assert!(d.fallback_from.is_some());
    let rows = f
        .ledger
        .audit(&authledger::AuditQuery {
            action: Some("fallback".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 1);
    let detail: serde_json::Value = serde_json::from_str(&rows[0].detail).unwrap();
    assert_eq!(detail["from"], "claude/sub");
    assert_eq!(detail["to"], "claude/key");
    assert!(detail["reason"].as_str().unwrap().contains("429"));
}

#[test]
fn a_named_figure_that_does_not_fit_falls_back_to_an_account_where_it_does() {
    let f = fixture();
    use_tokens(&f, Provider::Claude, "sub", 500);
    use_tokens(&f, Provider::Claude, "key", 500);
    // 500 left on each Claude account, 1000 on OpenAI: 700 fits only there.
    let (lease, d) = f
        .ledger
        .acquire_selected(
            &AcquireRequest::new(AgentId::new("big").unwrap(), Provider::Claude).tokens(700),
            &Choice::Auto,
        )
        .unwrap();
    assert_eq!(
        format!("{}/{}", lease.provider, lease.account),
        "openai/default"
    );
    assert!(
        d.reason.contains("only 500 tokens left (asked 700)"),
        "{}",
        d.reason
    );
}

// ---------------------------------------------------------------------------------------------
// A crashed holder's slot, its private directory, and what selection refusals leave in the
// audit trail (CLI processes on the pinned clock).
// ---------------------------------------------------------------------------------------------

use crate::common;

use common::{Home, code, query_rows, stderr};

/// Runs the CLI at `now` and asserts it succeeded; returns its `--json` output.
fn cli_json(home: &Home, now: i64, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = home.run_at(now, &all);
    assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// A home whose OpenAI account (a ChatGPT login, so `run` gives its agent a private
/// CODEX_HOME) allows one lease at a time, held by a `run --ttl 2s` killed with SIGKILL at T0.
fn openai_held_by_a_killed_run() -> (Home, String) {
    let home = Home::new();
    cli_json(&home, T0, &["limits", "set", "openai", "--concurrent", "1"]);
    let id = common::killed_run(
        &home,
        T0,
        &["--agent", "doomed", "--provider", "openai", "--ttl", "2s"],
    );
    (home, id)
}

fn lease_state(home: &Home, id: &str) -> Vec<String> {
    query_rows(
        &home.db(),
        &format!("SELECT state, COALESCE(end_reason, '') FROM leases WHERE id = '{id}'"),
    )
    .pop()
    .expect("the lease row")
}

#[test]
fn a_killed_holders_slot_is_granted_right_after_its_ttl() {
    let (home, id) = openai_held_by_a_killed_run();
    let acquire = [
        "lease",
        "acquire",
        "--agent",
        "next",
        "--provider",
        "openai",
    ];
    let early = home.run_at(T0 + 1_999, &acquire);
    assert_eq!(
        code(&early),
        3,
        "the slot is held until the TTL: {}",
        stderr(&early)
    );
    assert_eq!(lease_state(&home, &id), ["active", ""]);

    let granted = cli_json(&home, T0 + 2_000, &acquire);
    assert_eq!(granted["provider"], "openai", "{granted}");
    assert_eq!(
        lease_state(&home, &id),
        ["expired", "ttl"],
        "reclaimed inline"
    );
}

#[test]
fn an_inline_reclaim_removes_the_killed_leases_directory() {
    let (home, id) = openai_held_by_a_killed_run();
    let dir = home.path().join("agents").join(&id);
    assert!(
        dir.join("codex").exists(),
        "run made the lease a CODEX_HOME"
    );
    let granted = cli_json(
        &home,
        T0 + 3_000,
        &[
            "lease",
            "acquire",
            "--agent",
            "next",
            "--provider",
            "openai",
        ],
    );
    assert_eq!(lease_state(&home, &id), ["expired", "ttl"]);
    assert!(!dir.exists(), "the reclaimed lease's CODEX_HOME is gone");
    assert_eq!(granted["provider"], "openai", "{granted}");
}

#[test]
fn a_directory_of_a_lease_ended_elsewhere_is_swept_on_the_next_open() {
    let (home, id) = openai_held_by_a_killed_run();
    let dir = home.path().join("agents").join(&id);
    assert!(dir.exists());
    // Another process ends the lease in the database only (as a daemon or a killed process
    // might), leaving the directory behind; the next command that opens the ledger sweeps it.
    let conn = common::raw(&home.db());
    conn.execute(
        "UPDATE leases SET state = 'revoked', ended_at = ?2, end_reason = 'test' WHERE id = ?1",
        rusqlite::params![id, T0 + 1],
    )
    .unwrap();
    drop(conn);
    assert!(dir.exists());
    cli_json(&home, T0 + 2, &["lease", "list"]);
    assert!(!dir.exists(), "swept on open");
}

#[test]
fn an_idle_lease_frees_its_slot_for_selection_and_acquire_reclaims_it() {
    let f = fixture();
    f.ledger
        .set_limits(
            Provider::Openai,
            &acct("default"),
            &LimitsUpdate {
                concurrent: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    let openai = Choice::Explicit(Provider::Openai, None);
    let req = |a: &str| {
        AcquireRequest::new(AgentId::new(a).unwrap(), Provider::Openai)
            .tokens(10)
            .ttl(std::time::Duration::from_secs(86_400))
    };
    let (held, _) = f.ledger.acquire_selected(&req("quiet"), &openai).unwrap();
    f.clock.advance_ms(30 * 60_000 - 1);
    assert!(f.ledger.acquire_selected(&req("next"), &openai).is_err());
    f.clock.advance_ms(1);
    assert!(
        f.ledger.select(&openai).is_ok(),
        "an idle holder holds no slot"
    );
    f.ledger.acquire_selected(&req("next"), &openai).unwrap();
    let ended = f.ledger.lease(&held.id).unwrap();
    assert_eq!(ended.end_reason.as_deref(), Some("idle"));
}

/// The `deny` rows so far, at `now`.
fn denials(home: &Home, now: i64) -> Vec<serde_json::Value> {
    common::audit_rows(home, now, "deny")
}

#[test]
fn an_acquire_refused_by_selection_appends_its_deny_row() {
    let home = Home::new();
    // Unhealthy: Claude out of service for a week.
    cli_json(
        &home,
        T0,
        &[
            "report",
            "claude",
            "--status",
            "429",
            "--header",
            "retry-after: 604800",
        ],
    );
    let out = home.run(&["lease", "acquire", "--agent", "a", "--provider", "claude"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let rows = denials(&home, T0);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["agent"], "a");
    assert!(
        rows[0]["detail"].to_string().contains("unhealthy"),
        "{}",
        rows[0]
    );

    // No credential: OpenAI logged out.
    cli_json(&home, T0, &["logout", "openai"]);
    let out = home.run(&["lease", "acquire", "--agent", "b", "--provider", "openai"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let rows = denials(&home, T0);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1]["agent"], "b");
    assert!(
        rows[1]["detail"].to_string().contains("no credential"),
        "{}",
        rows[1]
    );
}

#[test]
fn a_waiting_acquire_appends_only_its_last_attempts_deny_row() {
    let home = Home::new();
    cli_json(
        &home,
        T0,
        &[
            "report",
            "claude",
            "--status",
            "429",
            "--header",
            "retry-after: 3600",
        ],
    );
    let out = home.run(&[
        "lease",
        "acquire",
        "--agent",
        "w",
        "--provider",
        "claude",
        "--wait",
        "700ms",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let rows = denials(&home, T0);
    assert_eq!(rows.len(), 1, "several attempts, one row: {rows:?}");
    assert_eq!(rows[0]["agent"], "w");
}

#[test]
fn a_report_that_moves_an_account_out_of_service_or_back_is_audited_once() {
    let home = Home::new();
    let health = |now| common::audit_rows(&home, now, "health");
    let report = |now, extra: &[&str]| {
        let mut args = vec!["report", "claude", "--status"];
        args.extend_from_slice(extra);
        cli_json(&home, now, &args);
    };
    report(T0, &["200"]);
    assert!(health(T0).is_empty(), "no change, no row");
    report(T0, &["429"]);
    let rows = health(T0);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let d = &rows[0]["detail"];
    assert_eq!(d["available"], false, "{d}");
    assert_eq!(d["status"], 429, "{d}");
    assert_eq!(d["until"], T0 + 60_000, "{d}");
    assert!(d["reason"].as_str().unwrap().contains("429"), "{d}");
    assert_eq!(rows[0]["provider"], "claude");
    // Out of service already, then kept out for a week: the longer outage has its own row.
    let week = ["429", "--header", "retry-after: 604800"];
    report(T0 + 1, &week);
    let rows = health(T0 + 1);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1]["detail"]["until"], T0 + 1 + 604_800_000);
    // The same word again changes nothing, and writes nothing.
    report(T0 + 1, &week);
    assert_eq!(health(T0 + 1).len(), 2);
    report(T0 + 2, &["200"]);
    let rows = health(T0 + 2);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[2]["detail"]["available"], true);
    assert_eq!(rows[2]["detail"]["status"], 200);
}

// ---------------------------------------------------------------------------------------------
// Health: the 5xx back-off, the reset headers, and what `status` shows
// ---------------------------------------------------------------------------------------------

/// Until when claude/sub is out of service, if it is.
fn out_until(f: &Fixture) -> Option<i64> {
    let h = f.ledger.health(Provider::Claude, &acct("sub")).unwrap()?;
    h.unavailable_until.filter(|t| *t > f.ledger.now())
}

#[test]
fn server_errors_keep_an_account_out_a_minute_doubling_to_at_most_fifteen() {
    let f = fixture();
    let error = |f: &Fixture| {
        f.ledger
            .report_response(Provider::Claude, &acct("sub"), 502, &[])
            .unwrap();
    };
    error(&f);
    error(&f);
    assert_eq!(out_until(&f), None, "two 5xx are not yet a pattern");
    // The third, and every one after it while the streak lasts: 1, 2, 4, 8, then 15 minutes.
    for minutes in [1, 2, 4, 8, 15, 15] {
        let at = f.ledger.now();
        error(&f);
        let back = at + minutes * 60_000;
        assert_eq!(out_until(&f), Some(back), "{minutes} min");
        f.clock.set_ms(back - 1);
        assert_eq!(chosen(&auto(&f)), "claude/key", "out until {minutes} min");
        f.clock.set_ms(back);
        assert_eq!(chosen(&auto(&f)), "claude/sub", "back after {minutes} min");
    }
}

#[test]
fn the_latest_of_several_reset_headers_sets_the_reset() {
    let f = fixture();
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };
    let anthropic = [
        ("anthropic-ratelimit-requests-reset", iso(T0 + 120_000)),
        ("anthropic-ratelimit-tokens-reset", iso(T0 + 300_000)),
        ("anthropic-ratelimit-input-tokens-reset", iso(T0 + 60_000)),
    ];
    let openai = [
        ("x-ratelimit-reset-requests", "30s".to_string()),
        ("x-ratelimit-reset-tokens", "6m0s".to_string()),
    ];
    for (headers, reset) in [(&anthropic[..], T0 + 300_000), (&openai[..], T0 + 360_000)] {
        f.clock.set_ms(T0);
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        f.ledger
            .report_response(Provider::Claude, &acct("sub"), 429, &headers)
            .unwrap();
        assert_eq!(out_until(&f), Some(reset), "{headers:?}");
        f.ledger
            .report_response(Provider::Claude, &acct("sub"), 200, &[])
            .unwrap();
    }
}

#[test]
fn status_shows_kept_rate_limit_headers_and_warns_of_per_token_billing() {
    let home = Home::new();
    // A Claude API key beside the Claude Code subscription.
    let mut login = home
        .cmd()
        .args(["login", "claude", "--account", "key", "--api-key-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut login.stdin.take().unwrap(),
        b"sk-ant-api03-status-test-key-000000",
    )
    .unwrap();
    assert!(login.wait_with_output().unwrap().status.success());
    let status = |now| common::stdout(&home.run_at(now, &["status"]));
    assert!(
        !status(T0).contains("billed per token"),
        "the subscription serves: {}",
        status(T0)
    );
    cli_json(
        &home,
        T0,
        &[
            "report",
            "claude",
            "--status",
            "429",
            "--header",
            "retry-after: 600",
            "--header",
            "anthropic-ratelimit-tokens-remaining: 0",
        ],
    );
    let shown = status(T0 + 1);
    assert!(
        shown.contains("warning: new agents are billed per token on claude/key (API key)"),
        "{shown}"
    );
    assert!(
        shown.contains("anthropic-ratelimit-tokens-remaining"),
        "{shown}"
    );
}
