//! Lease and usage semantics through the library API (README, "Concepts" and "How it stays correct").

use crate::common::{self, limits, req};

use std::time::Duration;

use authledger::{
    Account, AcquireRequest, AgentId, DenyReason, Error, LeaseState, Ledger, LedgerConfig,
    LimitsUpdate, Provider, QuotaError, UsageRecord,
};

const T0: i64 = 1_795_399_200_000;
const MIN: i64 = 60_000;

type Fixture = common::LibraryLedger;

fn fixture(update: LimitsUpdate) -> Fixture {
    common::library_ledger(T0, update)
}

fn claude(f: &Fixture) -> authledger::QuotaStatus {
    f.ledger.quota(Some(Provider::Claude)).unwrap().remove(0)
}

#[test]
fn fair_share_divides_the_remainder_by_free_slots_and_respects_the_cap() {
    let f = fixture(limits(1_000, 4));
    let a = f.ledger.acquire(&req("a")).unwrap();
    assert_eq!(a.allocated, 250, "1000 over 4 free slots");
    f.ledger
        .set_limits(
            Provider::Claude,
            &Account::default(),
            &LimitsUpdate {
                lease_cap: Some(Some(100)),
                ..Default::default()
            },
        )
        .unwrap();
    let b = f.ledger.acquire(&req("b")).unwrap();
    assert_eq!(b.allocated, 100, "capped so one agent cannot take the day");
    f.ledger
        .set_limits(
            Provider::Claude,
            &Account::default(),
            &LimitsUpdate {
                lease_cap: Some(None),
                ..Default::default()
            },
        )
        .unwrap();
    let c = f.ledger.acquire(&req("c")).unwrap();
    // 650 left, 2 free slots, default cap 1000/4 = 250.
    assert_eq!(c.allocated, 250);
    let d = f.ledger.acquire(&req("d")).unwrap();
    assert_eq!(d.allocated, 250, "400 left over 1 slot, capped at 250");
    assert_eq!(claude(&f).reserved, 850);
}

#[test]
fn a_named_figure_is_granted_whole_or_refused_with_the_numbers() {
    let f = fixture(limits(1_000, 10));
    f.ledger.acquire(&req("a").tokens(600)).unwrap();
    match f.ledger.acquire(&req("b").tokens(500)) {
        Err(Error::Quota(QuotaError::Denied(d))) => {
            assert_eq!(d.reason, DenyReason::Budget(authledger::WindowKind::Day));
            assert_eq!((d.asked, d.available, d.limit), (Some(500), 400, 1_000));
            assert!(d.resets_at.is_some());
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(
        f.ledger.acquire(&req("b").tokens(400)).unwrap().allocated,
        400
    );
}

#[test]
fn release_returns_the_unused_part_exactly_once() {
    let f = fixture(limits(1_000, 10));
    let lease = f.ledger.acquire(&req("a").tokens(400)).unwrap();
    f.ledger
        .record_usage(&lease.id, &UsageRecord::new(100, 50))
        .unwrap();
    let r = f.ledger.release(&lease.id).unwrap();
    assert_eq!(r.returned, 250);
    let q = claude(&f);
    assert_eq!((q.used, q.reserved, q.remaining), (150, 0, 850));
    match f.ledger.release(&lease.id) {
        Err(Error::Quota(QuotaError::LeaseLost { state, .. })) => {
            assert_eq!(state, LeaseState::Released)
        }
        other => panic!("second release must be refused, got {other:?}"),
    }
    let q = claude(&f);
    assert_eq!((q.used, q.reserved), (150, 0), "nothing returned twice");
}

#[test]
fn usage_past_the_allocation_is_recorded_and_blocks_new_grants() {
    let f = fixture(limits(1_000, 10));
    let lease = f.ledger.acquire(&req("a").tokens(900)).unwrap();
    let o = f
        .ledger
        .record_usage(&lease.id, &UsageRecord::new(1_100, 100))
        .unwrap();
    assert!(o.exhausted);
    assert_eq!(o.lease_used, 1_200);
    let q = claude(&f);
    assert_eq!((q.used, q.reserved, q.remaining), (1_200, 0, 0));
    assert!(matches!(
        f.ledger.acquire(&req("b")),
        Err(Error::Quota(QuotaError::Denied(_)))
    ));
    assert_eq!(f.ledger.release(&lease.id).unwrap().returned, 0);
}

#[test]
fn usage_is_idempotent_by_key_and_a_reused_key_with_other_figures_is_refused() {
    let f = fixture(limits(1_000, 10));
    let lease = f.ledger.acquire(&req("a").tokens(500)).unwrap();
    let rec = UsageRecord::new(10, 20).key("call-1");
    let first = f.ledger.record_usage(&lease.id, &rec).unwrap();
    let again = f.ledger.record_usage(&lease.id, &rec).unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(claude(&f).used, 30);
    let clash = f
        .ledger
        .record_usage(&lease.id, &UsageRecord::new(11, 20).key("call-1"));
    assert!(matches!(
        clash,
        Err(Error::Quota(QuotaError::IdempotencyConflict { .. }))
    ));
    assert_eq!(claude(&f).used, 30);
    // Without a key every call is a new record.
    f.ledger
        .record_usage(&lease.id, &UsageRecord::new(1, 0))
        .unwrap();
    f.ledger
        .record_usage(&lease.id, &UsageRecord::new(1, 0))
        .unwrap();
    assert_eq!(claude(&f).used, 32);
}

#[test]
fn an_expired_holder_is_told_it_lost_the_lease_but_its_usage_still_counts() {
    let f = fixture(limits(1_000, 10));
    let lease = f
        .ledger
        .acquire(&req("a").tokens(300).ttl(Duration::from_secs(600)))
        .unwrap();
    f.clock.advance_ms(10 * MIN);
    assert!(matches!(
        f.ledger.renew(&lease.id),
        Err(Error::Quota(QuotaError::LeaseLost {
            state: LeaseState::Expired,
            ..
        }))
    ));
    assert_eq!(claude(&f).reserved, 0, "reclaimed on the spot");
    let o = f
        .ledger
        .record_usage(&lease.id, &UsageRecord::new(40, 2).key("late"))
        .unwrap();
    assert_eq!(o.lease_state, LeaseState::Expired);
    let q = claude(&f);
    assert_eq!((q.used, q.reserved), (42, 0));
    assert!(matches!(
        f.ledger.release(&lease.id),
        Err(Error::Quota(QuotaError::LeaseLost { .. }))
    ));
}

#[test]
fn renew_extends_by_the_ttl_and_fences_only_grow() {
    let f = fixture(limits(1_000, 10));
    let a = f
        .ledger
        .acquire(&req("a").tokens(1).ttl(Duration::from_secs(600)))
        .unwrap();
    f.clock.advance_ms(9 * MIN);
    let renewed = f.ledger.renew(&a.id).unwrap();
    assert_eq!(renewed.expires_at, T0 + 19 * MIN);
    f.clock.advance_ms(9 * MIN);
    assert!(
        f.ledger.renew(&a.id).is_ok(),
        "still alive thanks to the renew"
    );
    let b = f.ledger.acquire(&req("b").tokens(1)).unwrap();
    assert!(b.fence > a.fence);
}

#[test]
fn acquire_reclaims_expired_leases_of_its_account_without_the_daemon() {
    let f = fixture(limits(1_000, 1));
    let old = f
        .ledger
        .acquire(&req("crashed").tokens(700).ttl(Duration::from_secs(60)))
        .unwrap();
    f.clock.advance_ms(MIN);
    let fresh = f.ledger.acquire(&req("next").tokens(900)).unwrap();
    assert_eq!(fresh.allocated, 900);
    assert_eq!(f.ledger.lease(&old.id).unwrap().state, LeaseState::Expired);
    let expire_rows = f
        .ledger
        .audit(&authledger::AuditQuery {
            action: Some("expire".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(expire_rows.len(), 1);
    assert_eq!(expire_rows[0].lease_id.as_deref(), Some(old.id.as_str()));
}

#[test]
fn cleanup_reclaims_idle_leases_before_their_ttl_but_not_live_ones() {
    let f = fixture(limits(1_000, 10));
    let idle = f.ledger.acquire(&req("idle").tokens(100)).unwrap();
    let live = f.ledger.acquire(&req("live").tokens(100)).unwrap();
    f.clock.advance_ms(20 * MIN);
    f.ledger.renew(&live.id).unwrap();
    f.clock.advance_ms(10 * MIN - 1);
    assert_eq!(f.ledger.cleanup().unwrap().idle, 0);
    f.clock.advance_ms(1);
    let report = f.ledger.cleanup().unwrap();
    assert_eq!((report.idle, report.expired), (1, 0));
    assert_eq!(report.leases, vec![idle.id.clone()]);
    assert_eq!(f.ledger.lease(&live.id).unwrap().state, LeaseState::Active);
    assert_eq!(claude(&f).reserved, 100);
}

#[test]
fn a_storage_failure_grants_nothing() {
    let f = fixture(limits(1_000, 10));
    // Break the schema underneath the open ledger: the grant cannot be written.
    let raw = common::raw(&f.dir.path().join("ledger.db"));
    raw.execute_batch("DROP TABLE lease_windows;").unwrap();
    drop(raw);
    let err = f.ledger.acquire(&req("a").tokens(10)).unwrap_err();
    assert_eq!(err.exit_code(), authledger::exit::STORAGE, "{err}");
    assert!(f.ledger.leases(true).unwrap().is_empty());
    assert_eq!(claude(&f).reserved, 0);
}

#[test]
fn limits_live_in_the_database_so_every_process_agrees() {
    let f = fixture(limits(1_234, 3));
    let other = Ledger::open(LedgerConfig::new(f.dir.path().join("ledger.db"))).unwrap();
    let l = other.limits(Provider::Claude, &Account::default()).unwrap();
    assert_eq!((l.daily_tokens, l.concurrent), (1_234, 3));
    let openai = other.limits(Provider::Openai, &Account::default()).unwrap();
    assert_eq!((openai.daily_tokens, openai.concurrent), (500_000, 8));
}

#[test]
fn a_lease_needs_a_usable_credential() {
    let f = fixture(limits(1_000, 10));
    let auth = |r: Result<authledger::Lease, Error>| match r {
        Err(e) => {
            assert_eq!(e.exit_code(), authledger::exit::AUTH, "{e}");
            e.to_string()
        }
        Ok(l) => panic!("granted {l:?} without a usable credential"),
    };
    let work = Account::new("work").unwrap();
    let msg = auth(f.ledger.acquire(&req("a").account(work.clone())));
    assert!(msg.contains("no credential for claude/work"), "{msg}");
    let msg = auth(f.ledger.acquire(&AcquireRequest::new(
        AgentId::new("a").unwrap(),
        Provider::Openai,
    )));
    assert!(msg.contains("openai"), "{msg}");

    // An OAuth token past its expiry with no refresh token is not usable, nor with one only the
    // tool that issued it may use (an import); with one the ledger may use, it is.
    let mut oauth = authledger::Credential::api_key(
        Provider::Claude,
        work.clone(),
        authledger::Secret::new("unused".into()),
        "claude-code",
    );
    oauth.kind = authledger::CredentialKind::Oauth;
    oauth.tier = authledger::Tier::Max;
    oauth.api_key = None;
    oauth.access_token = Some(authledger::Secret::new("sk-ant-oat01-expired".into()));
    oauth.expires_at = Some(T0 + MIN);
    f.ledger.store_credential(&oauth).unwrap();
    f.ledger
        .acquire(&req("a").account(work.clone()).tokens(1))
        .unwrap();
    f.clock.advance_ms(MIN);
    let msg = auth(f.ledger.acquire(&req("b").account(work.clone()).tokens(1)));
    assert!(msg.contains("expired"), "{msg}");
    oauth.refresh_token = Some(authledger::Secret::new("sk-ant-ort01-refresh".into()));
    f.ledger.store_credential(&oauth).unwrap();
    let msg = auth(f.ledger.acquire(&req("b").account(work.clone()).tokens(1)));
    assert!(msg.contains("refresh it in Claude Code"), "{msg}");
    oauth.source = "oauth".into();
    oauth.refresh_via = Some(authledger::RefreshVia {
        token_url: "https://gateway.example/token".into(),
        client_id: "client".into(),
    });
    f.ledger.store_credential(&oauth).unwrap();
    f.ledger.acquire(&req("b").account(work).tokens(1)).unwrap();
    assert!(f.ledger.verify_audit().unwrap().ok);
}

#[test]
fn regression_a_token_near_expiry_without_a_token_endpoint_is_used_while_it_lasts() {
    // A Claude Code token (refreshable only by Claude Code) two minutes from expiry: there is
    // no [providers.claude.oauth] to refresh it with, so it serves as it is, and no refresh
    // claim is left behind.
    let f = fixture(limits(1_000, 10));
    let mut c = authledger::Credential::api_key(
        Provider::Claude,
        Account::new("cc").unwrap(),
        authledger::Secret::new("unused".into()),
        "claude-code",
    );
    c.kind = authledger::CredentialKind::Oauth;
    c.tier = authledger::Tier::Max;
    c.api_key = None;
    c.access_token = Some(authledger::Secret::new("sk-ant-oat01-still-good".into()));
    c.refresh_token = Some(authledger::Secret::new("sk-ant-ort01-refresh".into()));
    c.expires_at = Some(T0 + 2 * MIN);
    f.ledger.store_credential(&c).unwrap();
    let token = f
        .ledger
        .access_token(Provider::Claude, &Account::new("cc").unwrap())
        .unwrap();
    assert_eq!(token.expose_secret(), "sk-ant-oat01-still-good");
    let raw = common::raw(&f.dir.path().join("ledger.db"));
    let claims: i64 = raw
        .query_row("SELECT COUNT(*) FROM refresh_claims", [], |r| r.get(0))
        .unwrap();
    assert_eq!(claims, 0);
    f.clock.advance_ms(2 * MIN);
    let err = f
        .ledger
        .access_token(Provider::Claude, &Account::new("cc").unwrap())
        .unwrap_err();
    assert_eq!(err.exit_code(), authledger::exit::AUTH, "{err}");
}

// ---------------------------------------------------------------------------------------------
// The documented defaults, whatever the order of commands
// ---------------------------------------------------------------------------------------------

/// A credential of `kind` ("key" or "subscription") for `provider`.
fn credential(provider: Provider, kind: &str) -> authledger::Credential {
    use authledger::{Credential, CredentialKind, Secret, Tier};
    let mut c = Credential::api_key(
        provider,
        Account::default(),
        Secret::new("sk-test-defaults-0000000000".into()),
        "stdin",
    );
    if kind == "subscription" {
        c.kind = CredentialKind::Oauth;
        c.tier = if provider == Provider::Claude {
            Tier::Max
        } else {
            Tier::Chatgpt
        };
        c.api_key = None;
        c.access_token = Some(Secret::new("oauth-access-token-000000".into()));
        c.refresh_token = Some(Secret::new("oauth-refresh-token-00000".into()));
        c.expires_at = Some(T0 + 365 * 86_400_000);
        c.source = "oauth".into();
    }
    c
}

/// The limits an account has after a login of `kind`, with or without `init` first, and after
/// a first lease (which stores the defaults if nothing did): (daily, concurrent, rpm, tpm).
fn limits_after_login(
    provider: Provider,
    kind: &str,
    init_first: bool,
) -> (i64, i64, Option<i64>, Option<i64>) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(
        LedgerConfig::new(dir.path().join("ledger.db"))
            .with_clock(std::sync::Arc::new(authledger::ManualClock::new(T0)))
            .with_key(authledger::KeySource::File(dir.path().join("master.key"))),
    )
    .unwrap();
    if init_first {
        ledger.init().unwrap();
    }
    ledger
        .store_credential(&credential(provider, kind))
        .unwrap();
    let lease = ledger
        .acquire(&AcquireRequest::new(AgentId::new("a").unwrap(), provider).tokens(1))
        .unwrap();
    ledger.release(&lease.id).unwrap();
    let l = ledger.limits(provider, &Account::default()).unwrap();
    (l.daily_tokens, l.concurrent, l.rpm, l.tpm)
}

#[test]
fn the_documented_defaults_do_not_depend_on_whether_init_ran_first() {
    let cases = [
        (
            Provider::Claude,
            "subscription",
            (1_000_000, 10, None, None),
        ),
        (Provider::Openai, "subscription", (500_000, 8, None, None)),
        (
            Provider::Claude,
            "key",
            (1_000_000, 8, Some(60), Some(100_000)),
        ),
        (
            Provider::Openai,
            "key",
            (500_000, 8, Some(60), Some(100_000)),
        ),
    ];
    for (provider, kind, documented) in cases {
        for init_first in [false, true] {
            assert_eq!(
                limits_after_login(provider, kind, init_first),
                documented,
                "{provider} {kind}, init first: {init_first}"
            );
        }
    }
}

#[test]
fn limits_set_before_an_api_key_login_are_kept() {
    let f = fixture(limits(5_000, 3));
    // The fixture set limits, then stored an API key: the user's figures stand.
    let l = f
        .ledger
        .limits(Provider::Claude, &Account::default())
        .unwrap();
    assert_eq!((l.daily_tokens, l.concurrent, l.rpm), (5_000, 3, None));
}

// ---------------------------------------------------------------------------------------------
// Fences on release and usage (the CLI's --fence)
// ---------------------------------------------------------------------------------------------

#[test]
fn release_and_usage_refuse_a_wrong_fence_and_accept_the_right_one() {
    let home = common::Home::new();
    let lease = home.json(&[
        "lease",
        "acquire",
        "--agent",
        "a",
        "--provider",
        "claude",
        "--tokens",
        "100",
    ]);
    let id = lease["lease_id"].as_str().unwrap().to_string();
    let fence = lease["fence"].as_i64().unwrap();
    let wrong = (fence + 1).to_string();
    let right = fence.to_string();
    let before = home.snapshot();
    for args in [
        vec![
            "usage", "record", &id, "--input", "5", "--output", "5", "--fence", &wrong,
        ],
        vec!["lease", "release", &id, "--fence", &wrong],
    ] {
        let out = home.run(&args);
        common::assert_refused(&out, 3, &["fence", "not"], &format!("{args:?}"));
        assert_eq!(before, home.snapshot(), "{args:?} changed the ledger");
    }
    let used = home.json(&[
        "usage", "record", &id, "--input", "5", "--output", "5", "--fence", &right,
    ]);
    assert_eq!(used["used_tokens"], 10, "{used}");
    let released = home.json(&["lease", "release", &id, "--fence", &right]);
    assert_eq!(released["returned_tokens"], 90, "{released}");
}
