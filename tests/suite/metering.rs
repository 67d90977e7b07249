//! The ledger side of the metering gateway (issue 13): lease tokens stored only hashed, usage
//! records with model, cache and status, and top-ups of a live lease.

use crate::common::{self, req};

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use authledger::{
    Error, KeySource, LeaseId, Ledger, LedgerConfig, LimitsUpdate, ManualClock, Provider,
    QuotaError,
};

const T0: i64 = 1_795_399_200_000;

fn fixture(daily: i64, concurrent: i64) -> common::LibraryLedger {
    common::library_ledger(
        T0,
        LimitsUpdate {
            daily_tokens: Some(daily),
            concurrent: Some(concurrent),
            ..Default::default()
        },
    )
}

/// Every byte of the ledger's files (database, WAL, shared memory) that exist.
fn ledger_bytes(db: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        if let Ok(bytes) = std::fs::read(Path::new(&name)) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_lease_token_is_stored_only_as_its_hash_and_maps_to_its_lease() {
    let f = fixture(1_000, 4);
    let lease = f.ledger.acquire(&req("a").tokens(100)).unwrap();
    let token = f.ledger.issue_lease_token(&lease.id).unwrap();
    let text = token.expose_secret().to_string();
    let body = text.strip_prefix("alt-").expect("alt- prefix");
    assert_eq!(body.len(), 43, "32 bytes in unpadded base64url: {text}");
    assert!(
        body.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{text}"
    );
    assert_eq!(
        f.ledger.lease_for_token(&text).unwrap(),
        Some(lease.clone())
    );
    // Two tokens for one lease: both valid, both distinct.
    let second = f.ledger.issue_lease_token(&lease.id).unwrap();
    assert_ne!(second.expose_secret(), text);
    assert_eq!(
        f.ledger.lease_for_token(second.expose_secret()).unwrap(),
        Some(lease.clone())
    );

    let db = f.ledger.db_path().to_path_buf();
    let bytes = ledger_bytes(&db);
    for t in [text.as_str(), second.expose_secret()] {
        assert!(!contains(&bytes, t.as_bytes()), "token in the files");
        let body = &t[4..];
        assert!(
            !contains(&bytes, body.as_bytes()),
            "token body in the files"
        );
    }
    let rows = common::query_rows(&db, "SELECT token_hash, lease_id FROM lease_tokens");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let expected = hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()));
    assert!(
        rows.iter()
            .any(|r| r[0] == expected && r[1] == lease.id.as_str())
    );
    // Debug output of the token does not show it either.
    assert!(!format!("{token:?}").contains(body));
}

#[test]
fn unknown_ended_and_expired_lease_tokens_are_worthless() {
    let f = fixture(1_000, 4);
    assert_eq!(f.ledger.lease_for_token("alt-nothing").unwrap(), None);
    assert_eq!(f.ledger.lease_for_token("").unwrap(), None);

    let released = f.ledger.acquire(&req("a").tokens(100)).unwrap();
    let token = f.ledger.issue_lease_token(&released.id).unwrap();
    f.ledger.release(&released.id).unwrap();
    assert_eq!(
        f.ledger.lease_for_token(token.expose_secret()).unwrap(),
        None
    );
    match f.ledger.issue_lease_token(&released.id) {
        Err(Error::Quota(QuotaError::LeaseLost { .. })) => {}
        other => panic!("a token for an ended lease: {other:?}"),
    }

    let ttl = std::time::Duration::from_secs(60);
    let expiring = f.ledger.acquire(&req("b").tokens(100).ttl(ttl)).unwrap();
    let token = f.ledger.issue_lease_token(&expiring.id).unwrap();
    f.clock.advance_ms(60_000 - 1);
    assert!(
        f.ledger
            .lease_for_token(token.expose_secret())
            .unwrap()
            .is_some()
    );
    // Past its expiry, before any cleanup ran: the lease row is still `active`.
    f.clock.advance_ms(1);
    assert_eq!(
        f.ledger.lease_for_token(token.expose_secret()).unwrap(),
        None
    );
    let before = common::query_rows(f.ledger.db_path(), "SELECT state FROM leases");
    assert!(
        before.iter().any(|r| r[0] == "active"),
        "a read wrote: {before:?}"
    );
    match f.ledger.issue_lease_token(&expiring.id) {
        Err(Error::Quota(QuotaError::LeaseLost { .. })) => {}
        other => panic!("a token for an expired lease: {other:?}"),
    }
    let unknown = LeaseId::from_random([7; 10]);
    assert!(f.ledger.issue_lease_token(&unknown).is_err());
}

const CHILD_DIR: &str = "AUTHLEDGER_TEST_METERING_DIR";
const CHILD_LEASE: &str = "AUTHLEDGER_TEST_METERING_LEASE";
const TOKENS_PER_CHILD: usize = 25;

fn open_at(dir: &Path) -> Ledger {
    Ledger::open(
        LedgerConfig::new(dir.join("ledger.db"))
            .with_clock(Arc::new(ManualClock::new(T0)))
            .with_key(KeySource::File(dir.join("master.key"))),
    )
    .unwrap()
}

/// The child half of the concurrency test below: does nothing unless started by it.
#[test]
fn child_issues_lease_tokens_when_started_by_the_concurrency_test() {
    let (Ok(dir), Ok(lease)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_LEASE)) else {
        return;
    };
    let ledger = open_at(Path::new(&dir));
    let id: LeaseId = lease.parse().unwrap();
    for _ in 0..TOKENS_PER_CHILD {
        let token = ledger.issue_lease_token(&id).unwrap();
        println!("TOKEN {}", token.expose_secret());
    }
}

#[test]
fn two_processes_issue_lease_tokens_for_different_leases_at_once() {
    let f = fixture(1_000, 4);
    let a = f.ledger.acquire(&req("a").tokens(100)).unwrap();
    let b = f.ledger.acquire(&req("b").tokens(100)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = [&a, &b]
        .iter()
        .map(|lease| {
            let child = Command::new(&exe)
                .args([
                    "--exact",
                    "metering::child_issues_lease_tokens_when_started_by_the_concurrency_test",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_DIR, f.dir.path())
                .env(CHILD_LEASE, lease.id.as_str())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (lease.id.clone(), child)
        })
        .collect();
    let mut all = std::collections::HashSet::new();
    for (id, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tokens: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            // The harness may print its own words before the first line.
            .filter_map(|l| l.split("TOKEN ").nth(1).map(str::to_string))
            .collect();
        assert_eq!(tokens.len(), TOKENS_PER_CHILD, "the child ran its part");
        for t in tokens {
            let lease = f.ledger.lease_for_token(&t).unwrap().expect("valid token");
            assert_eq!(lease.id, id, "a token maps to the lease it was issued for");
            assert!(all.insert(t), "every token is new");
        }
    }
    let rows = common::query_rows(f.ledger.db_path(), "SELECT COUNT(*) FROM lease_tokens");
    assert_eq!(rows[0][0], (2 * TOKENS_PER_CHILD).to_string());
}

fn audit_count(ledger: &Ledger, action: &str) -> usize {
    let query = authledger::AuditQuery {
        action: Some(action.into()),
        ..Default::default()
    };
    ledger.audit(&query).unwrap().len()
}

fn claude(f: &common::LibraryLedger) -> authledger::QuotaStatus {
    f.ledger.quota(Some(Provider::Claude)).unwrap().remove(0)
}

/// Every table's rows but the audit trail's, as text: what a refusal must leave unchanged.
fn state_but_audit(db: &Path) -> Vec<Vec<Vec<String>>> {
    [
        "SELECT * FROM leases ORDER BY id",
        "SELECT * FROM windows ORDER BY id",
        "SELECT * FROM lease_windows ORDER BY lease_id, window_id",
        "SELECT * FROM usage_events ORDER BY id",
    ]
    .iter()
    .map(|sql| common::query_rows(db, sql))
    .collect()
}

#[test]
fn a_top_up_within_budget_grows_the_lease_and_every_windows_reservation() {
    let mut update = LimitsUpdate {
        daily_tokens: Some(1_000),
        concurrent: Some(4),
        ..Default::default()
    };
    update.weekly_tokens = Some(Some(5_000));
    let f = common::library_ledger(T0, update);
    let lease = f.ledger.acquire(&req("a").tokens(300)).unwrap();
    f.ledger
        .record_usage(&lease.id, &authledger::UsageRecord::new(100, 0))
        .unwrap();
    let grown = f.ledger.top_up(&lease.id, 400).unwrap();
    assert_eq!(grown.allocated, 700);
    assert_eq!(f.ledger.lease(&lease.id).unwrap().allocated, 700);
    let q = claude(&f);
    assert_eq!((q.used, q.reserved), (100, 600), "{q:?}");
    let reserved: Vec<_> = common::query_rows(
        f.ledger.db_path(),
        "SELECT w.kind, w.reserved, lw.reserved FROM windows w
         JOIN lease_windows lw ON lw.window_id = w.id ORDER BY w.kind",
    );
    assert_eq!(reserved.len(), 2, "day and week: {reserved:?}");
    for r in &reserved {
        assert_eq!((r[1].as_str(), r[2].as_str()), ("600", "600"), "{r:?}");
    }
    assert_eq!(audit_count(&f.ledger, "topup"), 1);
    assert!(f.ledger.verify_audit().unwrap().ok);
    // What was topped up is used and given back like the rest.
    let released = f.ledger.release(&lease.id).unwrap();
    assert_eq!(released.returned, 600);
    assert_eq!(claude(&f).reserved, 0);
}

#[test]
fn a_top_up_past_the_budget_is_refused_with_a_deny_row_and_changes_nothing_else() {
    let f = fixture(1_000, 4);
    let lease = f.ledger.acquire(&req("a").tokens(600)).unwrap();
    f.ledger.acquire(&req("b").tokens(300)).unwrap();
    let before = state_but_audit(f.ledger.db_path());
    let denies = audit_count(&f.ledger, "deny");
    match f.ledger.top_up(&lease.id, 101) {
        Err(e @ Error::Quota(QuotaError::Denied(_))) => {
            let Error::Quota(QuotaError::Denied(d)) = &e else {
                unreachable!()
            };
            assert_eq!((d.asked, d.available, d.limit), (Some(101), 100, 1_000));
            assert_eq!(e.exit_code(), 3);
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(state_but_audit(f.ledger.db_path()), before);
    assert_eq!(audit_count(&f.ledger, "deny"), denies + 1);
    assert_eq!(audit_count(&f.ledger, "topup"), 0);
    // The last 100 fit exactly.
    assert_eq!(f.ledger.top_up(&lease.id, 100).unwrap().allocated, 700);
    assert_eq!(claude(&f).reserved, 1_000);
}

#[test]
fn a_top_up_respects_an_explicit_lease_cap() {
    let f = fixture(1_000, 4);
    f.ledger
        .set_limits(
            Provider::Claude,
            &authledger::Account::default(),
            &LimitsUpdate {
                lease_cap: Some(Some(250)),
                ..Default::default()
            },
        )
        .unwrap();
    let lease = f.ledger.acquire(&req("a").tokens(200)).unwrap();
    let before = state_but_audit(f.ledger.db_path());
    match f.ledger.top_up(&lease.id, 51) {
        Err(Error::Quota(QuotaError::OverLeaseCap { cap: 250, .. })) => {}
        other => panic!("expected the lease cap, got {other:?}"),
    }
    assert_eq!(state_but_audit(f.ledger.db_path()), before);
    assert_eq!(audit_count(&f.ledger, "deny"), 1);
    assert_eq!(f.ledger.top_up(&lease.id, 50).unwrap().allocated, 250);
}

#[test]
fn a_top_up_on_an_ended_or_expired_lease_is_lease_lost() {
    let f = fixture(1_000, 4);
    let ended = f.ledger.acquire(&req("a").tokens(100)).unwrap();
    f.ledger.release(&ended.id).unwrap();
    let ttl = std::time::Duration::from_secs(60);
    let expiring = f.ledger.acquire(&req("b").tokens(100).ttl(ttl)).unwrap();
    f.clock.advance_ms(60_000);
    for id in [&ended.id, &expiring.id] {
        match f.ledger.top_up(id, 10) {
            Err(Error::Quota(QuotaError::LeaseLost { .. })) => {}
            other => panic!("expected LeaseLost, got {other:?}"),
        }
    }
    assert_eq!(audit_count(&f.ledger, "topup"), 0);
    assert_eq!(
        claude(&f).reserved,
        0,
        "the expired lease was reclaimed, not grown"
    );
    assert!(matches!(
        f.ledger.top_up(&expiring.id, 0),
        Err(Error::Quota(QuotaError::Invalid(_)))
    ));
}

#[test]
fn usage_keeps_model_cache_and_status_and_cache_tokens_count_against_the_budget() {
    use authledger::{UsageGroup, UsageRecord};
    let f = fixture(10_000, 4);
    let lease = f.ledger.acquire(&req("a").tokens(5_000)).unwrap();
    let rich = UsageRecord::new(100, 50)
        .model("claude-sonnet-4-5")
        .cache(1_000, 200)
        .status("ok")
        .key("msg_1");
    let o = f.ledger.record_usage(&lease.id, &rich).unwrap();
    assert_eq!(o.lease_used, 1_350, "input, output, cache read and write");
    f.ledger
        .record_usage(&lease.id, &UsageRecord::new(10, 5).model("gpt-5").key("r2"))
        .unwrap();
    f.ledger
        .record_usage(&lease.id, &UsageRecord::new(1, 1))
        .unwrap();
    let q = claude(&f);
    assert_eq!((q.used, q.reserved), (1_367, 5_000 - 1_367), "{q:?}");

    let rows = common::query_rows(
        f.ledger.db_path(),
        "SELECT model, cache_read, cache_write, status FROM usage_events WHERE idem_key = 'msg_1'",
    );
    assert_eq!(rows, [["claude-sonnet-4-5", "1000", "200", "ok"]]);

    let by_model = f.ledger.usage_report(0, UsageGroup::Model).unwrap();
    let got: Vec<_> = by_model
        .iter()
        .map(|r| {
            (
                r.key.as_str(),
                r.input,
                r.output,
                r.cache_read,
                r.cache_write,
                r.total,
                r.requests,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("-", 1, 1, 0, 0, 2, 1),
            ("claude-sonnet-4-5", 100, 50, 1_000, 200, 1_350, 1),
            ("gpt-5", 10, 5, 0, 0, 15, 1),
        ]
    );

    // A retry under the same key counts once; the same key with other cache figures, model or
    // status is another record and refused.
    assert!(f.ledger.record_usage(&lease.id, &rich).unwrap().duplicate);
    for other in [
        rich.clone().cache(999, 200),
        rich.clone().cache(1_000, 199),
        rich.clone().model("claude-opus-4"),
        rich.clone().status("error"),
    ] {
        match f.ledger.record_usage(&lease.id, &other) {
            Err(Error::Quota(QuotaError::IdempotencyConflict { .. })) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(claude(&f).used, 1_367);
}

#[test]
fn bad_usage_details_are_refused_and_record_nothing() {
    use authledger::UsageRecord;
    let f = fixture(10_000, 4);
    let lease = f.ledger.acquire(&req("a").tokens(5_000)).unwrap();
    let before = state_but_audit(f.ledger.db_path());
    for bad in [
        UsageRecord::new(1, 1).cache(-1, 0),
        UsageRecord::new(1, 1).cache(0, -1),
        UsageRecord::new(1, 1).model(""),
        UsageRecord::new(1, 1).model("a\nb"),
        UsageRecord::new(1, 1).status("x".repeat(201)),
    ] {
        match f.ledger.record_usage(&lease.id, &bad) {
            Err(e @ Error::Invalid(_)) => assert_eq!(e.exit_code(), 2),
            other => panic!("{bad:?} should be refused, got {other:?}"),
        }
    }
    assert_eq!(state_but_audit(f.ledger.db_path()), before);
}

#[test]
fn usage_details_cross_the_daemon_and_show_in_usage_by_model() {
    use common::daemon::{Daemon, wall, wall_home};
    let home = wall_home("4");
    let daemon = Daemon::start(&home, &[]);
    let out = wall(
        &home,
        &[
            "--json",
            "lease",
            "acquire",
            "--agent",
            "a",
            "--provider",
            "claude",
            "--tokens",
            "5000",
        ],
    );
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let lease = common::parse_json(&out)["lease_id"]
        .as_str()
        .expect("lease id")
        .to_string();
    let out = wall(
        &home,
        &[
            "usage",
            "record",
            &lease,
            "--input",
            "100",
            "--output",
            "50",
            "--cache-read",
            "1000",
            "--cache-write",
            "200",
            "--model",
            "claude-sonnet-4-5",
            "--status",
            "ok",
            "--key",
            "msg_1",
        ],
    );
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let (served, _) = daemon.stop();
    assert!(served >= 2, "the daemon committed them: {served}");
    let rows = common::query_rows(
        &home.db(),
        "SELECT model, cache_read, cache_write, status FROM usage_events",
    );
    assert_eq!(rows, [["claude-sonnet-4-5", "1000", "200", "ok"]]);
    let out = wall(&home, &["--json", "usage", "--by", "model"]);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let v = common::parse_json(&out);
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    let row = &v[0];
    assert_eq!(row["key"], "claude-sonnet-4-5");
    let figures: Vec<_> = [
        "input",
        "output",
        "cache_read",
        "cache_write",
        "total",
        "requests",
    ]
    .iter()
    .map(|k| row[*k].as_i64().unwrap_or(-1))
    .collect();
    assert_eq!(figures, [100, 50, 1_000, 200, 1_350, 1], "{row}");
}
