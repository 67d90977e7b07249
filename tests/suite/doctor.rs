// `doctor`: each problem it documents (schema, integrity, journal mode, audit chain, file
// permissions, the master key and config.toml included) is reported, with its exit code.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Home, code, doctor, raw, stderr};
use serde_json::Value;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The check named `name` (e.g. `"integrity"`, `"permissions /x/y"`).
fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name:?} check in {checks:?}"))
}

fn permissions(checks: &[Value], path: &Path) -> Value {
    check(checks, &format!("permissions {}", path.display())).clone()
}

/// The checks that failed, by name.
fn failed(checks: &[Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["ok"] != true)
        .map(|c| c["check"].as_str().unwrap().to_string())
        .collect()
}

/// A ledger with credentials and a private config.toml: every check passes.
fn healthy() -> Home {
    let home = Home::new();
    let config = home.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    chmod(&config, 0o600);
    let (rc, checks) = doctor(&home);
    assert_eq!(rc, 0, "{checks:?}");
    assert!(failed(&checks).is_empty(), "{checks:?}");
    home
}

#[test]
fn doctor_checks_the_master_key_its_directory_and_the_config_file() {
    let home = healthy();
    let (_, checks) = doctor(&home);
    for p in ["keys/master.key", "keys", "config.toml", "ledger.db"] {
        assert_eq!(
            permissions(&checks, &home.path().join(p))["ok"],
            true,
            "{p}"
        );
    }
}

#[test]
fn doctor_fails_a_master_key_others_can_read_with_exit_1() {
    let home = healthy();
    let key = home.path().join("keys/master.key");
    chmod(&key, 0o644);
    let (rc, checks) = doctor(&home);
    assert_eq!(rc, 1, "{checks:?}");
    assert_eq!(failed(&checks), [format!("permissions {}", key.display())]);
    assert!(
        permissions(&checks, &key)["detail"]
            .as_str()
            .unwrap()
            .starts_with("644"),
        "{checks:?}"
    );
    chmod(&key, 0o600);

    let dir = home.path().join("keys");
    chmod(&dir, 0o755);
    let (rc, checks) = doctor(&home);
    assert_eq!(rc, 1, "{checks:?}");
    assert_eq!(failed(&checks), [format!("permissions {}", dir.display())]);
    chmod(&dir, 0o700);

    // After a rotation the ledger's own key file is checked too.
    let rotation = home.json(&["key", "rotate"]);
    let own = Path::new(rotation["key_file"].as_str().unwrap()).to_path_buf();
    chmod(&own, 0o640);
    let (rc, checks) = doctor(&home);
    assert_eq!(rc, 1, "{checks:?}");
    assert_eq!(failed(&checks), [format!("permissions {}", own.display())]);
}

#[test]
fn doctor_fails_a_config_file_others_can_write_with_exit_1() {
    let home = healthy();
    let config = home.path().join("config.toml");
    chmod(&config, 0o644);
    assert_eq!(doctor(&home).0, 0, "readable is fine: it holds no secret");
    chmod(&config, 0o664);
    let (rc, checks) = doctor(&home);
    assert_eq!(rc, 1, "{checks:?}");
    assert_eq!(
        failed(&checks),
        [format!("permissions {}", config.display())]
    );
}

#[test]
fn doctor_fails_ledger_files_others_can_read_with_exit_1() {
    let home = healthy();
    chmod(&home.db(), 0o644);
    let (rc, checks) = doctor(&home);
    assert_eq!(rc, 1, "{checks:?}");
    // SQLite gives the WAL and shared-memory files the database's mode: they are named too.
    let db = home.db().display().to_string();
    assert_eq!(
        failed(&checks),
        [
            format!("permissions {db}"),
            format!("permissions {db}-wal"),
            format!("permissions {db}-shm"),
        ]
    );
}

#[test]
fn doctor_refuses_a_ledger_from_a_newer_release_with_exit_5() {
    let home = healthy();
    raw(&home.db())
        .execute_batch(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (999, 'future', '2030-01-01', '0')",
        )
        .unwrap();
    // doctor still runs: its table says what is wrong, and it exits 5.
    let out = home.run(&["doctor"]);
    assert_eq!(common::code(&out), 5, "{}", common::stderr(&out));
    let words = common::stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(words.contains("ledger FAIL"), "{words}");
    assert!(
        words.contains("schema version 999") && words.contains("upgrade"),
        "{words}"
    );
}

#[test]
fn doctor_reports_a_failed_integrity_check_with_exit_5() {
    let home = healthy();
    // Two indexes swap their trees: each now disagrees with its table.
    let c = raw(&home.db());
    c.execute_batch(
        "CREATE TABLE junk (x, y); CREATE INDEX junk_x ON junk (x);
         CREATE INDEX junk_y ON junk (y); INSERT INTO junk VALUES (1, 'b'), (2, 'a');",
    )
    .unwrap();
    let root = |name: &str| -> i64 {
        c.query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    };
    let (x, y) = (root("junk_x"), root("junk_y"));
    c.execute_batch(&format!(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_master SET rootpage = CASE name WHEN 'junk_x' THEN {y} ELSE {x} END
          WHERE name IN ('junk_x', 'junk_y');
         PRAGMA writable_schema = OFF;"
    ))
    .unwrap();
    drop(c);
    let (rc, checks) = doctor(&home);
    assert_eq!(rc, 5, "{checks:?}");
    assert_eq!(failed(&checks), ["integrity"], "{checks:?}");
    let detail = check(&checks, "integrity")["detail"].as_str().unwrap();
    assert!(detail.contains("missing from index junk_"), "{detail}");
}

#[test]
fn doctor_reports_wal_after_another_program_switched_the_journal_off() {
    let home = healthy();
    let mode: String = raw(&home.db())
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    let (rc, checks) = doctor(&home);
    assert_eq!(rc, 0, "{checks:?}");
    let journal = check(&checks, "journal");
    assert_eq!(journal["detail"], "wal", "{journal}");
    assert_eq!(journal["ok"], true, "{journal}");
}

#[test]
fn doctor_reports_a_broken_audit_chain_with_exit_5() {
    let home = healthy();
    let c = raw(&home.db());
    c.execute_batch(
        "DROP TRIGGER audit_no_update;
         UPDATE audit SET agent = 'forged' WHERE seq = 2;",
    )
    .unwrap();
    drop(c);
    let (rc, checks) = doctor(&home);
    assert_eq!(rc, 5, "{checks:?}");
    assert_eq!(failed(&checks), ["audit chain"], "{checks:?}");
    let detail = check(&checks, "audit chain")["detail"].as_str().unwrap();
    assert!(detail.starts_with("broken at row 2"), "{detail}");
    let out = home.run(&["audit", "verify"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
}
