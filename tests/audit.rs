//! The audit trail is append-only and hash-chained: any edit, deletion or reordering in the
//! file makes `audit verify` fail and name the first bad row.

mod common;

use common::{Home, code, stderr};

/// A ledger with a few dozen audit rows from real commands.
fn ledger_with_history() -> Home {
    let home = Home::new();
    assert_eq!(code(&home.run(&["init"])), 0);
    for i in 0..4 {
        let lease = home.json(&[
            "lease",
            "acquire",
            "--agent",
            &format!("a{i}"),
            "--provider",
            "claude",
            "--tokens",
            "100",
        ]);
        let id = lease["lease_id"].as_str().unwrap().to_string();
        assert_eq!(
            code(&home.run(&["usage", "record", &id, "--input", "5", "--output", "5"])),
            0
        );
        assert_eq!(code(&home.run(&["lease", "release", &id])), 0);
    }
    home
}

/// Opens the file as an attacker would: triggers dropped first.
fn tamper(home: &Home, sql: &str) {
    let c = rusqlite::Connection::open(home.db()).unwrap();
    c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    c.execute_batch(sql).unwrap();
}

fn verify(home: &Home) -> (i32, serde_json::Value, String) {
    let out = home.run(&["--json", "audit", "verify"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (code(&out), report, stderr(&out))
}

#[test]
fn an_untouched_trail_verifies() {
    let home = ledger_with_history();
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 0);
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["rows"], 16,
        "2 imports + 2 limits + 4 × (acquire, usage, release)"
    );
}

#[test]
fn the_table_refuses_update_and_delete() {
    let home = ledger_with_history();
    let c = rusqlite::Connection::open(home.db()).unwrap();
    let e = c
        .execute("UPDATE audit SET action = 'x' WHERE seq = 1", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = c
        .execute("DELETE FROM audit WHERE seq = 1", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
}

#[test]
fn an_edited_row_is_named() {
    let home = ledger_with_history();
    tamper(
        &home,
        "UPDATE audit SET detail = '{\"tokens\":1}' WHERE seq = 5",
    );
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(report["first_bad_seq"], 5);
    assert!(report["problem"].as_str().unwrap().contains("edited"));
}

#[test]
fn an_edited_timestamp_is_named() {
    let home = ledger_with_history();
    // Change a field other than detail too: at_ms.
    tamper(&home, "UPDATE audit SET at_ms = at_ms + 1 WHERE seq = 7");
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(report["first_bad_seq"], 7);
}

#[test]
fn a_deleted_row_is_named() {
    let home = ledger_with_history();
    tamper(&home, "DELETE FROM audit WHERE seq = 6");
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(
        report["first_bad_seq"], 7,
        "the row after the gap is where the chain breaks"
    );
}

#[test]
fn rows_deleted_from_the_end_are_caught() {
    let home = ledger_with_history();
    tamper(&home, "DELETE FROM audit WHERE seq >= 13");
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(report["first_bad_seq"], 13);
    assert!(
        report["problem"]
            .as_str()
            .unwrap()
            .contains("deleted from the end")
    );
}

#[test]
fn reordered_rows_are_named() {
    let home = ledger_with_history();
    tamper(
        &home,
        "UPDATE audit SET seq = -1 WHERE seq = 3;
         UPDATE audit SET seq = 3 WHERE seq = 4;
         UPDATE audit SET seq = 4 WHERE seq = -1;",
    );
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(report["first_bad_seq"], 3);
}

#[test]
fn the_human_form_names_the_row_on_one_line() {
    let home = ledger_with_history();
    tamper(&home, "UPDATE audit SET agent = 'mallory' WHERE seq = 9");
    let out = home.run(&["audit", "verify"]);
    assert_eq!(code(&out), 5);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("row 9"), "{err}");
}

#[test]
fn queries_filter_by_action_agent_provider_time_and_limit() {
    let home = ledger_with_history();
    let rows = home.json(&["audit", "--action", "acquire"]);
    assert_eq!(rows.as_array().unwrap().len(), 4);
    let rows = home.json(&["audit", "--agent", "a2"]);
    let actions: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["acquire", "usage", "release"]);
    let rows = home.json(&["audit", "--provider", "openai"]);
    assert_eq!(
        rows.as_array().unwrap().len(),
        2,
        "only openai's import and default limits rows"
    );
    let rows = home.json(&["audit", "--limit", "2"]);
    let seqs: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [15, 16], "the newest rows, oldest first");
    let rows = home.json(&["audit", "--since", "2026-11-24"]);
    assert!(rows.as_array().unwrap().is_empty());
    let rows = home.json(&["audit", "--until", "2026-11-24", "--since", "2026-11-23"]);
    assert_eq!(rows.as_array().unwrap().len(), 16);
}
