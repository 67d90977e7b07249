//! A ledger made by an earlier authledger opens and migrates in place, keeping its data.
//! `fixtures/ledger-v1.db` was written by schema version 1 (leases, usage, audit rows); every
//! later migration must carry it forward.

mod common;

use common::{Home, code};

#[test]
fn a_version_1_ledger_migrates_in_place_and_keeps_its_history() {
    let home = Home::new();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ledger-v1.db"),
        home.db(),
    )
    .unwrap();
    // As the ledger that wrote it left it: private.
    std::fs::set_permissions(
        home.db(),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let doctor = home.run(&["doctor"]);
    assert_eq!(code(&doctor), 0, "{}", common::stdout(&doctor));

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
}
