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
    let raw = rusqlite::Connection::open(f.dir.path().join("ledger.db")).unwrap();
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
