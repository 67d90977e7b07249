//! The PostgreSQL test harness itself (`common::pg`): the suites that run the ledger on
//! PostgreSQL trust it to hand out isolated, empty databases on a real local server, and to
//! restart a server without losing what was committed.

use crate::common::pg::{PgServer, TEST_PG_ENV, psql, server, try_psql};

/// The database name at the end of a URL.
fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or_default()
}

/// The tables a database holds outside PostgreSQL's own schemas.
fn user_tables(url: &str) -> String {
    psql(
        url,
        "SELECT count(*) FROM pg_tables
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
}

#[test]
fn a_fresh_database_is_reachable_and_empty() {
    let url = server().fresh_db();
    assert_eq!(psql(&url, "SELECT current_database()"), db_name(&url));
    assert_eq!(user_tables(&url), "0");
    if std::env::var_os(TEST_PG_ENV).is_none() {
        let port = server().port();
        assert!(
            url.starts_with(&format!("postgres://postgres@127.0.0.1:{port}/")),
            "{url}"
        );
        // Our own cluster: reachable over TCP on loopback only.
        assert_eq!(psql(&url, "SHOW listen_addresses"), "127.0.0.1");
    }
}

#[test]
fn two_fresh_databases_are_distinct() {
    let a = server().fresh_db();
    let b = server().fresh_db();
    assert_ne!(db_name(&a), db_name(&b));
    psql(
        &a,
        "CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (1)",
    );
    assert_eq!(user_tables(&a), "1");
    assert_eq!(user_tables(&b), "0", "a table made in {a} shows in {b}");
}

#[test]
fn a_private_server_restarts_and_accepts_again() {
    let pg = PgServer::start_private();
    let url = pg.fresh_db();
    let started = psql(&url, "SELECT pg_postmaster_start_time()");
    pg.restart();
    let restarted = psql(&url, "SELECT pg_postmaster_start_time()");
    assert_ne!(started, restarted, "the server did not restart");
    assert!(url.contains(&format!(":{}/", pg.port())), "{url}");
}

#[test]
fn data_committed_before_a_restart_is_still_there() {
    let pg = PgServer::start_private();
    let url = pg.fresh_db();
    psql(
        &url,
        "CREATE TABLE kept (n int); INSERT INTO kept SELECT generate_series(1, 100)",
    );
    pg.restart();
    assert_eq!(psql(&url, "SELECT count(*), sum(n) FROM kept"), "100|5050");
}

#[test]
fn a_stopped_private_server_refuses_at_once_and_starts_again() {
    let pg = PgServer::start_private();
    let url = pg.fresh_db();
    psql(
        &url,
        "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)",
    );
    pg.stop();
    let refused = try_psql(&url, "SELECT 1").expect_err("a stopped server answered");
    assert!(refused.contains("onnection refused"), "{refused}");
    pg.start();
    assert_eq!(psql(&url, "SELECT n FROM kept"), "7");
}

#[test]
fn a_dropped_private_server_leaves_no_directory_and_no_listener() {
    let pg = PgServer::start_private();
    let dir = pg
        .dir()
        .expect("a private server has a directory")
        .to_path_buf();
    let url = pg.fresh_db();
    assert!(dir.join("data").is_dir());
    drop(pg);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(try_psql(&url, "SELECT 1").is_err(), "{url} still answers");
}
