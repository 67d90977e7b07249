//! What only a server store must take care of: PostgreSQL aborts a transaction at its first
//! failed statement (SQLite does not), so a write that swallowed a failure must not be
//! reported committed.

use authledger::paths::LedgerLocation;
use authledger::store::{Store, StoreError, StoreOptions};

use crate::common::pg;

fn server_store() -> Store {
    let url = pg::server().fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let anchor = dir.path().join("ledger");
    let location = LedgerLocation::Server {
        url: url.clone().into(),
        anchor: anchor.clone(),
    };
    let options = StoreOptions {
        server: Some(url.into()),
        ..StoreOptions::default()
    };
    let store = Store::open(location.local_path(), options).unwrap();
    // The anchor's directory may go with the tempdir: the store only needs the server.
    drop(dir);
    store
}

#[test]
fn a_write_that_swallowed_a_failed_statement_is_not_reported_committed() {
    let store = server_store();
    store.write(|tx| tx.set_setting("kept", "before")).unwrap();
    let result = store.write(|tx| -> Result<(), StoreError> {
        tx.set_setting("kept", "during")?;
        // A statement that fails (a CHECK refuses it), its error dropped.
        let failed = tx.insert_utilization_sample(&authledger::records::UtilizationSample {
            provider: authledger::Provider::Claude,
            account: authledger::Account::default(),
            window: "5h".into(),
            at_ms: 1,
            used_bp: -1,
            resets_at: 2,
            window_ms: 1,
        });
        assert!(failed.is_err(), "a CHECK refuses a negative share");
        Ok(())
    });
    assert!(result.is_err(), "reported committed: {result:?}");
    let kept = store.read(|tx| tx.setting("kept")).unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("before"),
        "nothing of it was committed"
    );
    // The connection it ran on is usable again.
    store.write(|tx| tx.set_setting("kept", "after")).unwrap();
    assert_eq!(
        store.read(|tx| tx.setting("kept")).unwrap().as_deref(),
        Some("after")
    );
}

#[test]
fn the_audit_trail_refuses_update_delete_and_truncate_on_the_server() {
    let url = pg::server().fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let ledger = authledger::Ledger::open(
        authledger::LedgerConfig::at(LedgerLocation::Server {
            url: url.clone().into(),
            anchor: dir.path().join("ledger"),
        })
        .with_key(authledger::KeySource::File(dir.path().join("master.key"))),
    )
    .unwrap();
    ledger.init().unwrap();
    let rows = || pg::psql(&url, "SELECT count(*) FROM audit");
    let before = rows();
    assert_ne!(before, "0", "init writes audit rows");
    for sql in [
        "UPDATE audit SET detail = '{}'",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ] {
        let refused = pg::try_psql(&url, sql).expect_err(sql);
        assert!(refused.contains("append-only"), "{sql}: {refused}");
    }
    assert_eq!(rows(), before);
}

#[test]
fn a_server_url_that_leads_nowhere_or_an_empty_location_changes_nothing() {
    let home = crate::common::Home::empty();
    // A port nothing listens on: refused at once.
    let out = home.run(&["--db", "postgres://postgres@127.0.0.1:1/ledger", "status"]);
    assert_eq!(
        crate::common::code(&out),
        5,
        "{}",
        crate::common::stderr(&out)
    );
    let out = home.run(&["migrate", "--to", ""]);
    assert_eq!(
        crate::common::code(&out),
        2,
        "{}",
        crate::common::stderr(&out)
    );
    let left: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
