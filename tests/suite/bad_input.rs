//! Bad input through the CLI: negative, huge and non-numeric figures, unknown providers, odd
//! agent ids, unknown lease ids, releasing twice, idempotency conflicts, and ledgers that are
//! corrupt, read-only or from a newer schema. Each must fail with a clear one-line error and the
//! documented exit code, and change nothing.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Home, assert_refused, code, stderr, stdout};

const USAGE: i32 = 2;
const DENIED: i32 = 3;
const STORAGE: i32 = 5;

/// A ledger with state worth protecting: default limits, a limits change, an active lease with
/// some usage on it. Returns the home and the lease id.
fn seeded() -> (Home, String) {
    let home = Home::new();
    home.json(&["init"]);
    home.json(&[
        "limits",
        "set",
        "claude",
        "--daily-tokens",
        "200000",
        "--concurrent",
        "4",
    ]);
    let lease = home.json(&[
        "lease",
        "acquire",
        "--agent",
        "seed-agent",
        "--provider",
        "claude",
        "--tokens",
        "5000",
    ]);
    let id = lease["lease_id"].as_str().expect("lease_id").to_string();
    home.json(&[
        "usage", "record", &id, "--input", "120", "--output", "30", "--key", "seed-1",
    ]);
    (home, id)
}

/// Asserts a refusal in `--json` mode: nothing on stdout, and stderr is one JSON object with
/// an `error` message (mentioning `needle`) and the `exit_code` the process exited with.
fn assert_json_refused(out: &Output, exit: i32, needle: &str, what: &str) {
    let err = stderr(out);
    assert_eq!(code(out), exit, "{what}: exit code (stderr: {err:?})");
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout must be empty, got {:?}",
        stdout(out)
    );
    assert!(
        err.ends_with('\n') && err.matches('\n').count() == 1,
        "{what}: stderr must be one line of JSON, got {err:?}"
    );
    let v: serde_json::Value = serde_json::from_str(err.trim_end())
        .unwrap_or_else(|e| panic!("{what}: stderr is not JSON ({e}): {err:?}"));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"));
    let message = obj
        .get("error")
        .and_then(|m| m.as_str())
        .unwrap_or_else(|| panic!("{what}: no string `error`: {v}"));
    assert!(!message.trim().is_empty(), "{what}: empty error: {v}");
    assert!(
        message.to_lowercase().contains(&needle.to_lowercase()),
        "{what}: the error should mention {needle:?}: {v}"
    );
    assert_eq!(
        obj.get("exit_code").and_then(|c| c.as_i64()),
        Some(i64::from(exit)),
        "{what}: exit_code field: {v}"
    );
}

/// Runs `args` against a ledger and asserts the refusal and that no row changed.
fn refused_unchanged(home: &Home, args: &[&str], exit: i32, needles: &[&str]) -> Output {
    let before = home.snapshot();
    let out = home.run(args);
    assert_refused(&out, exit, needles, &format!("{args:?}"));
    assert_eq!(
        before,
        home.snapshot(),
        "{args:?} changed the ledger although it was refused"
    );
    out
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The names in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0
}

#[test]
fn token_figures_that_are_negative_huge_non_numeric_or_zero_are_refused() {
    let (home, _) = seeded();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--tokens", "-5"], &["negative"]),
        (&["--tokens", "99999999999999999999"], &["too large"]),
        (&["--tokens", "ten"], &["whole number"]),
        (&["--tokens", "1.5"], &["whole number"]),
        (&["--tokens", ""], &["whole number"]),
        (&["--tokens", "0"], &["at least 1"]),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["lease", "acquire", "--agent", "a", "--provider", "claude"];
        args.extend_from_slice(extra);
        refused_unchanged(&home, &args, USAGE, needles);
    }
}

#[test]
fn usage_figures_that_are_negative_huge_or_non_numeric_are_refused() {
    let (home, id) = seeded();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--input", "-1", "--output", "0"], &["negative"]),
        (
            &["--input", "1", "--output", "99999999999999999999"],
            &["too large"],
        ),
        (&["--input", "ten", "--output", "1"], &["whole number"]),
        (
            &["--input", "1", "--output", "1", "--requests", "-3"],
            &["negative"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["usage", "record", id.as_str()];
        args.extend_from_slice(extra);
        refused_unchanged(&home, &args, USAGE, needles);
    }
}

#[test]
fn bad_limits_are_refused() {
    let (home, _) = seeded();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["limits", "set", "claude", "--daily-tokens", "-1"],
            &["negative"],
        ),
        (
            &["limits", "set", "claude", "--concurrent", "1e9"],
            &["whole number"],
        ),
        (
            &["limits", "set", "claude", "--concurrent", "100001"],
            &["between"],
        ),
        (
            &["limits", "set", "claude", "--rpm", "99999999999999999999"],
            &["too large"],
        ),
        (
            &["limits", "set", "gemini", "--rpm", "5"],
            &["unknown provider", "gemini"],
        ),
        (&["limits", "set", "claude"], &["no limit"]),
    ];
    for (args, needles) in cases {
        refused_unchanged(&home, args, USAGE, needles);
    }
}

#[test]
fn unknown_provider_is_refused() {
    let (home, _) = seeded();
    refused_unchanged(
        &home,
        &["lease", "acquire", "--agent", "a", "--provider", "gemini"],
        USAGE,
        &["gemini", "provider"],
    );
    refused_unchanged(
        &home,
        &["quota", "--provider", "gemini"],
        USAGE,
        &["unknown provider", "gemini"],
    );
}

#[test]
fn empty_sql_looking_and_multi_line_agent_ids_are_refused() {
    let (home, _) = seeded();
    let cases: &[(&str, &[&str])] = &[
        ("", &["empty"]),
        (
            "x'; DROP TABLE leases; --",
            &["agent id", "letters, digits"],
        ),
        ("a\nb", &["agent id", "letters, digits"]),
        ("-leading-dash", &["agent id", "start with"]),
    ];
    for (agent, needles) in cases {
        let joined = format!("--agent={agent}");
        refused_unchanged(
            &home,
            &["lease", "acquire", &joined, "--provider", "claude"],
            USAGE,
            needles,
        );
        // (`--agent -x` would read `-x` as a flag; the `=` form above covers that case.)
        if !agent.starts_with('-') {
            refused_unchanged(
                &home,
                &["lease", "acquire", "--agent", agent, "--provider", "claude"],
                USAGE,
                needles,
            );
        }
    }
    // The table the SQL-looking id named is still there, with the seeded lease in it.
    let conn = common::read_only(&home);
    let leases: i64 = conn
        .query_row("SELECT COUNT(*) FROM leases", [], |r| r.get(0))
        .unwrap();
    assert_eq!(leases, 1);
}

#[test]
fn ten_kilobyte_arguments_are_refused_with_a_short_message() {
    let (home, _) = seeded();
    let long_agent = "a".repeat(10_000);
    let long_figure = "9".repeat(10_000);
    let long_word = "x".repeat(10_000);
    let long_lease = format!("lease-{}", "0".repeat(10_000));
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec![
                "lease",
                "acquire",
                "--agent",
                &long_agent,
                "--provider",
                "claude",
            ],
            &["agent id", "128"],
        ),
        (
            vec!["lease", "acquire", "--agent", "a", "--tokens", &long_figure],
            &["too large"],
        ),
        (
            vec!["lease", "acquire", "--agent", "a", "--ttl", &long_word],
            &["not a duration"],
        ),
        (vec!["lease", "release", &long_lease], &["not a lease id"]),
    ];
    let mut too_long = Vec::new();
    for (args, needles) in &cases {
        let out = refused_unchanged(&home, args, USAGE, needles);
        let err = stderr(&out);
        if err.len() >= 300 {
            let shown: String = err.chars().take(100).collect();
            too_long.push(format!("{} bytes: {shown}…", err.len()));
        }
    }
    assert!(
        too_long.is_empty(),
        "a 10 KB argument must not be echoed in full; error lines:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn unknown_and_malformed_lease_ids_are_refused() {
    let (home, _) = seeded();
    refused_unchanged(
        &home,
        &["lease", "renew", "lease-00000000000000000000"],
        USAGE,
        &["no lease", "lease-00000000000000000000"],
    );
    refused_unchanged(
        &home,
        &["lease", "release", "lease-00000000000000000000"],
        USAGE,
        &["no lease"],
    );
    refused_unchanged(
        &home,
        &[
            "usage",
            "record",
            "lease-00000000000000000000",
            "--input",
            "1",
            "--output",
            "1",
        ],
        USAGE,
        &["no lease"],
    );
    refused_unchanged(
        &home,
        &["lease", "release", "not-a-lease-id"],
        USAGE,
        &["not a lease id"],
    );
    refused_unchanged(
        &home,
        &["lease", "renew", "lease-1; DELETE FROM leases"],
        USAGE,
        &["not a lease id"],
    );
}

#[test]
fn releasing_twice_is_refused_and_changes_nothing() {
    let (home, id) = seeded();
    let first = home.run(&["lease", "release", &id]);
    assert_eq!(code(&first), 0, "first release: {}", stderr(&first));
    let after_first = home.snapshot();
    let second = home.run(&["lease", "release", &id]);
    assert_refused(&second, DENIED, &["released", &id], "second release");
    assert_eq!(
        after_first,
        home.snapshot(),
        "the second release changed the ledger"
    );
    // Renewing a released lease is refused the same way.
    refused_unchanged(&home, &["lease", "renew", &id], DENIED, &["released"]);
}

#[test]
fn an_idempotency_key_reused_for_other_figures_is_refused_and_a_retry_is_a_no_op() {
    let (home, id) = seeded();
    let record = |input: &str, output: &str| {
        home.run(&[
            "usage", "record", &id, "--input", input, "--output", output, "--key", "k",
        ])
    };
    let first = record("1", "1");
    assert_eq!(code(&first), 0, "first record: {}", stderr(&first));
    let before = home.snapshot();

    let conflict = record("2", "1");
    assert_refused(&conflict, USAGE, &["idempotency", "\"k\""], "key reuse");
    assert_eq!(
        before,
        home.snapshot(),
        "a refused record changed the ledger"
    );

    let retry = record("1", "1");
    assert_eq!(code(&retry), 0, "retry: {}", stderr(&retry));
    assert!(stderr(&retry).is_empty(), "retry: {}", stderr(&retry));
    assert!(
        stdout(&retry).contains("already recorded"),
        "retry: {}",
        stdout(&retry)
    );
    assert_eq!(
        before,
        home.snapshot(),
        "a duplicate record changed the ledger"
    );

    // A key given to another lease's usage is a conflict too.
    let other = home.json(&[
        "lease",
        "acquire",
        "--agent",
        "other",
        "--provider",
        "claude",
        "--tokens",
        "100",
    ]);
    let other_id = other["lease_id"].as_str().unwrap().to_string();
    refused_unchanged(
        &home,
        &[
            "usage", "record", &other_id, "--input", "1", "--output", "1", "--key", "k",
        ],
        USAGE,
        &["idempotency"],
    );
}

#[test]
fn bad_durations_and_a_bad_clock_are_refused() {
    let (home, id) = seeded();
    refused_unchanged(
        &home,
        &[
            "lease",
            "acquire",
            "--agent",
            "a",
            "--provider",
            "claude",
            "--ttl",
            "banana",
        ],
        USAGE,
        &["not a duration"],
    );
    refused_unchanged(
        &home,
        &[
            "lease",
            "acquire",
            "--agent",
            "a",
            "--provider",
            "claude",
            "--ttl",
            "0s",
        ],
        USAGE,
        &["--ttl"],
    );

    let before = home.snapshot();
    for args in [
        vec!["lease", "acquire", "--agent", "a", "--provider", "claude"],
        vec!["lease", "release", id.as_str()],
        vec!["quota"],
    ] {
        let out = home
            .cmd()
            .env("AUTHLEDGER_NOW", "yesterday")
            .args(&args)
            .output()
            .unwrap();
        assert_refused(
            &out,
            USAGE,
            &["AUTHLEDGER_NOW", "not a time"],
            &format!("AUTHLEDGER_NOW=yesterday {args:?}"),
        );
    }
    assert_eq!(before, home.snapshot(), "a bad clock changed the ledger");
}

#[test]
fn json_mode_reports_errors_as_one_json_object() {
    let (home, id) = seeded();
    let before = home.snapshot();

    let out = home.run(&[
        "--json", "lease", "acquire", "--agent", "a", "--tokens", "-5",
    ]);
    assert_json_refused(&out, USAGE, "negative", "--json --tokens -5");

    let out = home.run(&["lease", "acquire", "--agent", "", "--json"]);
    assert_json_refused(&out, USAGE, "empty", "--json --agent ''");

    let out = home.run(&["--json", "limits", "set", "claude"]);
    assert_json_refused(&out, USAGE, "no limit", "--json limits set claude");

    let out = home.run(&["--json", "lease", "renew", "lease-00000000000000000000"]);
    assert_json_refused(&out, USAGE, "no lease", "--json renew unknown");
    assert_eq!(before, home.snapshot());

    let first = home.run(&["lease", "release", &id]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let after_first = home.snapshot();
    let out = home.run(&["--json", "lease", "release", &id]);
    assert_json_refused(&out, DENIED, "released", "--json second release");
    assert_eq!(after_first, home.snapshot());
}

/// 64 KB of deterministic junk (xorshift), nothing like a SQLite header.
fn junk() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..65_536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn a_corrupt_database_is_refused_and_left_alone() {
    let (home, _) = seeded();
    let db = home.db();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sidecar(&db, suffix));
    }
    std::fs::write(&db, junk()).unwrap();
    let bytes = std::fs::read(&db).unwrap();
    let files = listing(home.path());

    for args in [
        vec!["quota"],
        vec!["lease", "acquire", "--agent", "a", "--provider", "claude"],
        vec!["init"],
    ] {
        let out = home.run(&args);
        assert_refused(&out, STORAGE, &["corrupt"], &format!("corrupt {args:?}"));
        assert!(
            stderr(&out).contains(&db.display().to_string()),
            "the message should name the file: {}",
            stderr(&out)
        );
        assert_eq!(
            bytes,
            std::fs::read(&db).unwrap(),
            "{args:?} wrote to the corrupt file"
        );
        assert_eq!(files, listing(home.path()), "{args:?} left files behind");
    }

    let out = home.run(&["--json", "quota"]);
    assert_json_refused(&out, STORAGE, "corrupt", "--json quota on a corrupt file");
    assert_eq!(bytes, std::fs::read(&db).unwrap());
}

/// Records schema version 999 in the ledger's migration history, filling every column.
fn mark_newer_schema(db: &Path) {
    let conn = common::raw(db);
    let columns: Vec<(String, bool)> = conn
        .prepare("PRAGMA table_info(refinery_schema_history)")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, i64>(3)? != 0))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        columns.iter().any(|(c, _)| c == "version"),
        "refinery_schema_history has no version column: {columns:?}"
    );
    let names: Vec<String> = columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let values: Vec<String> = columns
        .iter()
        .map(|(c, not_null)| match c.as_str() {
            "version" => "999".to_string(),
            "name" => "'from_the_future'".to_string(),
            "applied_on" => "'2099-01-01T00:00:00Z'".to_string(),
            "checksum" => "'0'".to_string(),
            _ if *not_null => "''".to_string(),
            _ => "NULL".to_string(),
        })
        .collect();
    conn.execute(
        &format!(
            "INSERT INTO refinery_schema_history ({}) VALUES ({})",
            names.join(", "),
            values.join(", ")
        ),
        [],
    )
    .unwrap();
}

#[test]
fn a_database_from_a_newer_schema_is_refused_and_left_alone() {
    let (home, id) = seeded();
    mark_newer_schema(&home.db());
    let before = home.snapshot();
    assert!(
        before.contains("== refinery_schema_history\n") && before.contains("Integer(999)|"),
        "the marker row is missing"
    );

    for args in [
        vec!["quota"],
        vec!["lease", "acquire", "--agent", "a", "--provider", "claude"],
        vec!["lease", "release", id.as_str()],
        vec!["init"],
    ] {
        let out = home.run(&args);
        assert_refused(
            &out,
            STORAGE,
            &["newer", "upgrade", "999"],
            &format!("newer schema {args:?}"),
        );
        assert_eq!(
            before,
            home.snapshot(),
            "{args:?} changed a newer-schema ledger"
        );
    }

    let out = home.run(&["--json", "quota"]);
    assert_json_refused(&out, STORAGE, "newer", "--json quota on a newer schema");
    assert_eq!(before, home.snapshot());
}

/// Whether every directory above `path` lets other users through.
fn reachable_by_others(path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 != 0))
}

/// Each entry of a directory with its permission bits and owner, sorted.
fn modes(dir: &Path) -> Vec<(String, u32, u32)> {
    listing(dir)
        .into_iter()
        .map(|name| {
            let m = std::fs::metadata(dir.join(&name)).unwrap();
            (name, m.mode() & 0o7777, m.uid())
        })
        .collect()
}

/// Gives the home directory and its files back their owner's write bits (when not root they
/// were taken away), so the snapshot can open the WAL-mode file and the temporary directory
/// can be removed.
struct RestoreModes(PathBuf);

impl Drop for RestoreModes {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        for name in listing(&self.0) {
            let _ =
                std::fs::set_permissions(self.0.join(name), std::fs::Permissions::from_mode(0o600));
        }
    }
}

/// The user the read-only checks run the CLI as when the tests run as root (who ignores modes).
const NOBODY: u32 = 65_534;

/// Seeds a ledger, makes it read-only, runs writes against it and checks each is refused with
/// a one-line "read-only" error (exit 5) and leaves bytes, files, modes and rows alone.
///
/// `owned_by_runner`: the files belong to the user running the CLI, who took away their own
/// write bits (0444 in a 0555 directory); otherwise (root only) they belong to root with
/// 0644/0755 and the CLI runs as nobody. `sidecars`: a reader has left the WAL's `-wal` and
/// `-shm` files beside the database, as any earlier process may; otherwise the last writer
/// checkpointed and removed them.
fn read_only_case(owned_by_runner: bool, sidecars: bool) {
    let root = is_root();
    // A home under a fresh /tmp directory, so another user can reach it when we are root.
    let home = Home {
        dir: tempfile::Builder::new()
            .prefix("authledger-ro-")
            .tempdir_in("/tmp")
            .unwrap(),
    };
    home.json(&["init"]);
    home.login_fixtures();
    home.json(&["limits", "set", "claude", "--daily-tokens", "200000"]);
    let lease = home.json(&[
        "lease",
        "acquire",
        "--agent",
        "seed",
        "--provider",
        "claude",
        "--tokens",
        "5000",
    ]);
    let id = lease["lease_id"].as_str().unwrap().to_string();
    home.json(&["usage", "record", &id, "--input", "10", "--output", "5"]);
    // A read-only reader (the snapshot) leaves the -wal and -shm files behind.
    let before = home.snapshot();
    let db = home.db();
    if !sidecars {
        // The last read-write connection to close checkpoints the WAL and removes both files.
        let conn = common::raw(&db);
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        drop(conn);
    }
    for suffix in ["-wal", "-shm"] {
        assert_eq!(
            sidecar(&db, suffix).exists(),
            sidecars,
            "setup: ledger.db{suffix}: {:?}",
            listing(home.path())
        );
    }

    let (dir_mode, file_mode) = if owned_by_runner || !root {
        (0o555, 0o444)
    } else {
        (0o755, 0o644)
    };
    for name in listing(home.path()) {
        let path = home.path().join(name);
        if root && owned_by_runner {
            std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file_mode)).unwrap();
    }
    if root && owned_by_runner {
        std::os::unix::fs::chown(home.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    // The runner may read the master key (it is theirs, or root's made world-readable), so
    // what fails below fails for the ledger's modes alone.
    let keys = home.path().join("keys");
    for name in listing(&keys) {
        let key = keys.join(name);
        if root && owned_by_runner {
            std::os::unix::fs::chown(&key, Some(NOBODY), Some(NOBODY)).unwrap();
        } else if root {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    // A directory the runner may enter but not write, like the home.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(dir_mode)).unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(dir_mode)).unwrap();
    let restore = RestoreModes(home.path().to_path_buf());

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_authledger"));
    let bin = if root && !reachable_by_others(&bin) {
        // Only root gets here, and root may write the directory whatever its mode.
        let copy = home.path().join("authledger-bin");
        std::fs::copy(&bin, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    } else {
        bin
    };
    // The helpers' environment (home, pinned clock), with this binary and maybe another user.
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(&bin);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AUTHLEDGER_HOME", home.path())
            .env("AUTHLEDGER_NOW", common::T0.to_string());
        if root {
            c.uid(NOBODY).gid(NOBODY);
        }
        c.args(args).output().expect("run authledger")
    };

    let files = modes(home.path());
    let bytes = std::fs::read(&db).unwrap();
    let what = format!(
        "{}, {}",
        if owned_by_runner {
            "own read-only ledger"
        } else {
            "root's ledger"
        },
        if sidecars {
            "with -wal/-shm"
        } else {
            "without -wal/-shm"
        }
    );
    for args in [
        vec!["lease", "acquire", "--agent", "a", "--provider", "claude"],
        vec!["lease", "release", id.as_str()],
        vec!["limits", "set", "claude", "--concurrent", "3"],
        vec![
            "--json",
            "lease",
            "acquire",
            "--agent",
            "a",
            "--provider",
            "claude",
        ],
    ] {
        let out = run(&args);
        let label = format!("{what}: {args:?}");
        if args[0] == "--json" {
            assert_json_refused(&out, STORAGE, "read-only", &label);
        } else {
            assert_refused(&out, STORAGE, &["read-only"], &label);
        }
        assert_eq!(
            files,
            modes(home.path()),
            "{label} changed the files or their modes"
        );
        assert_eq!(bytes, std::fs::read(&db).unwrap(), "{label} wrote the file");
    }

    // Reading needs no write: every read-only command answers from the file as it is.
    for args in [
        vec!["status"],
        vec!["quota"],
        vec!["usage"],
        vec!["audit"],
        vec!["lease", "list", "--all"],
        vec!["providers"],
        vec!["limits", "show"],
        vec!["--json", "quota"],
    ] {
        let out = run(&args);
        let label = format!("{what}: {args:?}");
        assert_eq!(code(&out), 0, "{label}: {}", stderr(&out));
        assert!(!stdout(&out).trim().is_empty(), "{label}: no output");
        assert_eq!(files, modes(home.path()), "{label} changed the files");
        assert_eq!(bytes, std::fs::read(&db).unwrap(), "{label} wrote the file");
    }
    let audit = stdout(&run(&["audit"]));
    assert!(
        audit.contains("acquire") && audit.contains("seed"),
        "{what}: {audit}"
    );

    // doctor still runs and says what is wrong, in its table.
    let out = run(&["doctor"]);
    assert_eq!(code(&out), STORAGE, "{what}: doctor: {}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table.contains("FAIL") && table.contains("read-only"),
        "{what}: doctor: {table}"
    );
    assert_eq!(
        bytes,
        std::fs::read(&db).unwrap(),
        "{what}: doctor wrote the file"
    );

    drop(restore);
    assert_eq!(before, home.snapshot(), "{what}: the ledger changed");
}

#[test]
fn a_read_only_database_is_refused_and_left_alone() {
    read_only_case(false, false);
    read_only_case(false, true);
}

#[test]
fn a_ledger_its_owner_made_read_only_is_refused_and_left_alone() {
    read_only_case(true, false);
}

#[test]
fn a_ledger_its_owner_made_read_only_stays_read_only_beside_wal_files() {
    read_only_case(true, true);
}

#[test]
fn a_database_directory_that_cannot_be_created_is_refused() {
    let (home, _) = seeded();
    let before = home.snapshot();
    for args in [
        vec!["--db", "/proc/nope/ledger.db", "quota"],
        vec![
            "--db",
            "/proc/nope/ledger.db",
            "lease",
            "acquire",
            "--agent",
            "a",
            "--provider",
            "claude",
        ],
        vec!["--db", "/proc/nope/ledger.db", "init"],
    ] {
        let out = home.run(&args);
        assert_refused(&out, STORAGE, &["/proc/nope"], &format!("{args:?}"));
    }
    assert!(!Path::new("/proc/nope").exists());
    assert_eq!(before, home.snapshot(), "the home ledger changed");
}

#[test]
fn regression_review_findings_are_refused_cleanly() {
    let (home, id) = seeded();
    // A lease cap of 0 would refuse every fair share with a misleading reason.
    refused_unchanged(
        &home,
        &["limits", "set", "claude", "--lease-cap", "0"],
        USAGE,
        &["lease-cap"],
    );
    // A clock beyond the year 9999 used to overflow window arithmetic and panic.
    let before = home.snapshot();
    let out = home
        .cmd()
        .env("AUTHLEDGER_NOW", "9223372036854775807")
        .args(["lease", "acquire", "--agent", "a", "--provider", "claude"])
        .output()
        .unwrap();
    assert_refused(&out, USAGE, &["authledger_now"], "huge clock");
    assert_eq!(before, home.snapshot());
    // A fence that is not the lease's is refused before anything happens.
    refused_unchanged(
        &home,
        &["lease", "renew", &id, "--fence", "999"],
        DENIED,
        &["fence"],
    );
    // Usage on a lost lease is recorded, and --json reports the exit code it really exits with.
    home.json(&["lease", "release", &id]);
    let out = home.run(&[
        "--json", "usage", "record", &id, "--input", "1", "--output", "1",
    ]);
    assert_eq!(code(&out), DENIED);
    let err: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(err["exit_code"], DENIED);
}

#[test]
fn usage_that_would_overflow_a_total_is_refused_and_the_window_stays_writable() {
    let (home, id) = seeded();
    // One record may be as large as the largest figure, but no total may pass it: the sums the
    // ledger computes from its totals must never overflow.
    let max = "1000000000000000";
    let big = "999999999999000";
    home.json(&["usage", "record", &id, "--input", big, "--output", "0"]);
    for (input, requests) in [(max, "1"), ("1", max), (max, max)] {
        refused_unchanged(
            &home,
            &[
                "usage",
                "record",
                &id,
                "--input",
                input,
                "--output",
                "0",
                "--requests",
                requests,
            ],
            USAGE,
            &["would exceed", "nothing recorded"],
        );
    }
    let ok = home.json(&["usage", "record", &id, "--input", "10", "--output", "0"]);
    assert_eq!(ok["duplicate"], false, "{ok}");
    let used = common::query_rows(
        &home.db(),
        "SELECT used FROM windows WHERE kind = 'day' ORDER BY start_ms DESC LIMIT 1",
    );
    assert_eq!(used, [["999999999999160"]], "150 seeded + big + 10");
}

#[test]
fn the_daemon_refuses_an_oversize_idempotency_key_as_the_direct_path_does() {
    use authledger::LeaseId;
    use authledger::daemon::protocol::{
        Envelope, Reply, Request, VERSION, WireError, WireUsage, read_frame, write_frame,
    };
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    // A ledger on the wall clock (the only kind a daemon serves) with a lease to record on.
    let home = Home::new();
    let acquired = home
        .cmd_wall()
        .args([
            "--json",
            "lease",
            "acquire",
            "--agent",
            "a",
            "--provider",
            "claude",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&acquired), 0, "{}", stderr(&acquired));
    let lease: serde_json::Value = serde_json::from_slice(&acquired.stdout).unwrap();
    let id = LeaseId::parse(lease["lease_id"].as_str().unwrap()).unwrap();

    let mut daemon = home
        .cmd_wall()
        .args(["daemon", "--interval", "1h"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(daemon.stderr.take().unwrap()).lines();
    let serving = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("serving writes at"));
    assert!(serving.is_some(), "the daemon never served");

    let before = home.snapshot();
    let socket = authledger::daemon::socket_path_for(&home.db()).unwrap();
    let huge = "k".repeat(500_000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let record = |key| WireUsage {
        input: 1,
        output: 1,
        requests: 1,
        key,
        model: None,
        cache_read: 0,
        cache_write: 0,
        status: None,
    };
    let frames = [
        // The key a client chose, and the fallback key a client sends for a record without one.
        (record(Some(huge.clone())), "unused".to_string()),
        (record(None), huge.clone()),
    ];
    for (record, fallback_key) in frames {
        let mut conn = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let envelope = Envelope {
            v: VERSION,
            deadline_ms: now + 60_000,
            request: Request::RecordUsage {
                id: id.clone(),
                record,
                fallback_key,
            },
        };
        write_frame(&mut conn, &envelope).unwrap();
        let reply: Reply = read_frame(&mut conn).unwrap().expect("a reply");
        match reply {
            Err(WireError::Other { exit_code, message }) => {
                assert_eq!(exit_code, USAGE, "{message}");
                assert!(message.contains("idempotency key"), "{message}");
                assert!(
                    message.len() < 300,
                    "a short message: {} bytes",
                    message.len()
                );
            }
            other => {
                let text = format!("{other:?}");
                panic!(
                    "the daemon should refuse the key: {}",
                    &text[..text.len().min(300)]
                );
            }
        }
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(before, home.snapshot(), "nothing stored");
}
