//! What only a server store must take care of: PostgreSQL aborts a transaction at its first
//! failed statement (SQLite does not), so a write that swallowed a failure must not be
//! reported committed.

use authledger::paths::LedgerLocation;
use authledger::store::{Store, StoreError, StoreOptions};

use crate::common::pg;

fn server_store() -> Store {
    server_store_and_url().0
}

/// A store on a fresh database, and the database's URL for a connection of a test's own.
fn server_store_and_url() -> (Store, String) {
    let url = pg::server().fresh_db();
    let dir = tempfile::tempdir().unwrap();
    let anchor = dir.path().join("ledger");
    let location = LedgerLocation::Server {
        url: url.clone().into(),
        anchor: anchor.clone(),
    };
    let options = StoreOptions {
        server: Some(url.clone().into()),
        ..StoreOptions::default()
    };
    let store = Store::open(location.local_path(), options).unwrap();
    // The anchor's directory may go with the tempdir: the store only needs the server.
    drop(dir);
    (store, url)
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

/// A write transaction answers a read again from what it read, until it writes the table
/// read: a write to another table leaves it known, a write to the same table has it read
/// again. Shown with a change no ledger writer could make (a connection of the test's own,
/// without the ledger's lock) between the reads: seen only once the transaction's own write
/// forgot the first answer.
#[test]
fn a_transaction_reads_again_only_what_its_own_writes_changed() {
    let (store, url) = server_store_and_url();
    store
        .write(|tx| tx.set_setting("watched", "before"))
        .unwrap();
    let sample = authledger::records::UtilizationSample {
        provider: authledger::Provider::Claude,
        account: authledger::Account::default(),
        window: "5h".into(),
        at_ms: 1,
        used_bp: 10,
        resets_at: 2,
        window_ms: 1,
    };
    let seen = store
        .write(|tx| -> Result<_, StoreError> {
            let first = tx.setting("watched")?;
            pg::psql(
                &url,
                "UPDATE settings SET value = 'behind' WHERE key = 'watched'",
            );
            tx.insert_utilization_sample(&sample)?;
            let after_other_table = tx.setting("watched")?;
            tx.set_setting("another", "x")?;
            let after_same_table = tx.setting("watched")?;
            Ok([first, after_other_table, after_same_table])
        })
        .unwrap();
    assert_eq!(
        seen.map(Option::unwrap_or_default),
        ["before", "before", "behind"]
    );
}

/// A connection lost in the middle of a transaction (the server ended it) is an error that
/// names the server, not a bare "connection closed", and the engine's error stays its source.
#[test]
fn a_connection_lost_inside_a_transaction_names_the_server() {
    let (store, url) = server_store_and_url();
    let err = store
        .write(|tx| -> Result<(), StoreError> {
            tx.setting("before")?;
            pg::psql(
                &url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            );
            tx.setting("after")?;
            Ok(())
        })
        .unwrap_err();
    let line = err.to_string();
    let port = url::Url::parse(&url).unwrap().port().unwrap();
    assert!(
        line.contains("PostgreSQL at postgres://") && line.contains(&format!(":{port}/")),
        "{line}"
    );
    let source = std::error::Error::source(&err).and_then(std::error::Error::source);
    assert!(source.is_some(), "the engine's error is gone: {err:?}");
}
