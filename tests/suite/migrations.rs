//! A ledger made by an earlier authledger opens and migrates in place, keeping its data.
//! `fixtures/ledger-v1.db` was written by schema version 1 (leases, usage, audit rows); every
//! later migration must carry it forward, and its unkeyed audit rows stay verifiable after
//! the trail is keyed.

use crate::common;

use std::path::Path;

use common::forge::{self, Forge};
use common::{Home, code, stderr};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ledger-v1.db");

/// Every usage event, as text, straight from the file.
fn usage_events(db: &Path) -> Vec<String> {
    let c = common::raw(db);
    let mut stmt = c
        .prepare(
            "SELECT id, idem_key, lease_id, agent, provider, account, input, output, requests,
                    at_ms FROM usage_events ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((0..10)
            .map(|i| {
                r.get_ref(i).map(|v| match v {
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => format!("{other:?}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?
            .join("|"))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The schema version recorded in the file.
fn schema_version(db: &Path) -> i64 {
    let c = common::raw(db);
    c.query_row(
        "SELECT MAX(version) FROM refinery_schema_history",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// The newest SQLite migration shipped in `migrations/sqlite/` (`V<n>__name.sql`).
fn newest_migration() -> i64 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix('V')?.split_once("__")?.0.parse().ok()
        })
        .max()
        .unwrap()
}

/// A home holding a private copy of the fixture.
fn home_with_fixture() -> Home {
    let home = Home::empty();
    std::fs::copy(FIXTURE, home.db()).unwrap();
    // As the ledger that wrote it left it: private.
    std::fs::set_permissions(
        home.db(),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    home
}

#[test]
fn a_version_1_ledger_migrates_in_place_and_keeps_its_history() {
    let home = home_with_fixture();
    // Read directly before anything opens it.
    assert_eq!(schema_version(&home.db()), 1);
    let audit_before = forge::rows(&home.db());
    let usage_before = usage_events(&home.db());
    assert_eq!(audit_before.len(), 6);
    assert_eq!(usage_before.len(), 1);

    let doctor = home.run(&["doctor"]);
    assert_eq!(code(&doctor), 0, "{}", common::stdout(&doctor));
    assert_eq!(schema_version(&home.db()), newest_migration());
    assert_eq!(
        forge::rows(&home.db()),
        audit_before,
        "every audit row, as it was"
    );
    assert_eq!(usage_events(&home.db()), usage_before, "every usage event");

    let quota = home.json(&["quota", "--provider", "claude"]);
    assert_eq!(quota[0]["limit"], 50_000);
    assert_eq!(quota[0]["used"], 120);
    assert_eq!(quota[0]["reserved"], 880 + 500);
    assert_eq!(quota[0]["active_leases"], 2);
    assert_eq!(code(&home.run(&["audit", "verify"])), 0);

    // And it keeps working: the holder's lease (10 min TTL from 10:00) is reclaimed on time.
    let report = home.json(&["cleanup"]);
    assert_eq!(report["expired"], 0);
    let out = home
        .cmd_at(common::T0 + 10 * 60_000)
        .args(["--json", "cleanup"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["expired"], 1);
    let after = forge::rows(&home.db());
    assert_eq!(
        after[..6],
        audit_before[..],
        "history untouched by new rows"
    );
}

#[test]
fn a_migrated_ledger_keys_its_trail_after_the_legacy_rows() {
    let home = home_with_fixture();
    let legacy = forge::rows(&home.db());
    // The first open with a master key: the trail is keyed from here.
    let key = authledger::MasterKey::generate().unwrap().to_base64();
    let with_key = |now: i64, args: &[&str]| {
        home.cmd_at(now)
            .env("AUTHLEDGER_MASTER_KEY", key.as_str())
            .args(args)
            .output()
            .unwrap()
    };
    let out = with_key(common::T0, &["--json", "audit", "verify"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["rows"], 7);
    assert_eq!(report["keyed_from"], 7);

    let rows = forge::rows(&home.db());
    assert_eq!(rows[..6], legacy[..], "legacy rows stay as they are");
    let rekey = &rows[6];
    assert_eq!(rekey.action, "rekey");
    assert_eq!(
        rekey.prev_hash, legacy[5].hash,
        "rekey chains to the legacy tail"
    );
    let detail: serde_json::Value = serde_json::from_str(&rekey.detail).unwrap();
    assert_eq!(detail["legacy_rows"], 6);
    assert_ne!(forge::sha256(rekey), rekey.hash, "the rekey row is keyed");

    // Later rows are keyed: the expiry the cleanup writes.
    let out = with_key(common::T0 + 10 * 60_000, &["--json", "cleanup"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let rows = forge::rows(&home.db());
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[7].action, "expire");
    assert_ne!(forge::sha256(&rows[7]), rows[7].hash);
    let out = with_key(common::T0, &["--json", "audit", "verify"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // A forger without the key can neither pass a keyed row off as unkeyed...
    let pristine = std::fs::read(home.db()).unwrap();
    forge::rewrite(&home.db(), Forge::Sha256, |rows| {
        rows[7].agent = Some("mallory".into());
    });
    let out = with_key(common::T0, &["--json", "audit", "verify"]);
    assert_eq!(code(&out), 5);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["first_bad_seq"], 8, "{report}");
    // ...nor rewrite the legacy rows the rekey row sealed.
    std::fs::write(home.db(), &pristine).unwrap();
    forge::rewrite(&home.db(), Forge::Sha256, |rows| {
        rows[4].agent = Some("mallory".into());
        rows.truncate(6);
    });
    let out = with_key(common::T0, &["--json", "audit", "verify"]);
    assert_eq!(code(&out), 5);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["first_bad_seq"], 7, "{report}");
}
