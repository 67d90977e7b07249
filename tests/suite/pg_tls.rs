//! A ledger on a server that only takes TLS: reached over rustls with the CA the URL names
//! (libpq's `sslmode=require&sslrootcert=PATH`), refused in clear and with an unknown CA.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::pg::PgServer;
use crate::common::{Home, code, stderr};

/// Makes `path` the server's: PostgreSQL refuses a key file that is not its own and private.
fn hand_to_server(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        let status = std::process::Command::new("chown")
            .arg("postgres:")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

#[test]
fn a_server_that_requires_tls_is_reached_over_rustls_and_refused_in_clear_or_unverified() {
    let server = PgServer::start_private();
    let data = server.dir().expect("a private cluster").join("data");
    let issued =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_pem = issued.cert.pem();
    std::fs::write(data.join("server.crt"), &cert_pem).unwrap();
    std::fs::write(data.join("server.key"), issued.signing_key.serialize_pem()).unwrap();
    hand_to_server(&data.join("server.crt"), 0o644);
    hand_to_server(&data.join("server.key"), 0o600);
    let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    conf.push_str("\nssl = on\n");
    std::fs::write(data.join("postgresql.conf"), conf).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 trust\n\
         hostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    server.restart();
    let db = server.fresh_db();

    let home = Home::empty();
    let ca = home.path().join("ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    let over_tls = format!("{db}?sslmode=require&sslrootcert={}", ca.display());

    let out = home.run(&["--db", &over_tls, "init"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = home.run(&["--db", &over_tls, "status"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // In clear: the server's rules refuse it, and the user hears why, in one line.
    let out = home.run(&["--db", &db, "status"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("no encryption"), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));

    // Over TLS but trusting only the web's roots: the certificate is not taken on faith.
    let out = home.run(&["--db", &format!("{db}?sslmode=require"), "status"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));
}
