// The master key on disk: rotations that race, rotations killed at every step, key files that
// are never left half-written, and several ledgers sharing one home's key file.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Home, code, stderr, stdout};
use serde_json::Value;

/// `status --json`, asserting it succeeds: every credential decrypts.
fn readable_status(home: &Home, db: Option<&Path>, what: &str) -> Value {
    let mut cmd = home.cmd();
    if let Some(db) = db {
        cmd.arg("--db").arg(db);
    }
    let out = cmd.args(["--json", "status"]).output().unwrap();
    assert_eq!(code(&out), 0, "{what}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every file in the key directory, with its contents.
fn key_files(home: &Home) -> Vec<(PathBuf, String)> {
    let mut files: Vec<_> = std::fs::read_dir(home.path().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// No key file is empty or partial, and none (temporary ones included) is readable by others.
fn assert_key_files_whole(home: &Home, what: &str) {
    for (path, text) in key_files(home) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{what}: {name}");
        if name.contains(".key.tmp-") {
            // A key a killed process never linked into place: private, and used by nothing.
            continue;
        }
        assert!(name.ends_with(".key"), "{what}: stray file {name}");
        assert!(
            authledger::MasterKey::from_base64(&text).is_ok(),
            "{what}: {name} is not a whole key: {text:?}"
        );
    }
}

#[test]
fn two_concurrent_key_rotations_keep_every_credential_readable() {
    let home = Home::new();
    let before = readable_status(&home, None, "before");
    for round in 0..10 {
        let children: Vec<_> = (0..2)
            .map(|_| {
                home.cmd()
                    .args(["key", "rotate"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert_eq!(code(&out), 0, "round {round}: {}", stderr(&out));
        }
        assert_eq!(
            readable_status(&home, None, &format!("round {round}")),
            before,
            "round {round}: the same credentials"
        );
    }
    assert_key_files_whole(&home, "after the rounds");
    let rows = home.json(&["audit", "--action", "key_rotate"]);
    assert_eq!(rows.as_array().unwrap().len(), 20, "every rotation audited");
}

#[test]
fn a_rotation_killed_at_any_step_leaves_the_credentials_readable() {
    for point in [
        "key:temp-written",
        "rotate:key-written",
        "rotate:before-commit",
    ] {
        let home = Home::new();
        let before = readable_status(&home, None, point);
        let snapshot = home.snapshot();
        home.kill_at_fault_point(point, &["key", "rotate"]);
        assert_eq!(
            home.snapshot(),
            snapshot,
            "{point}: the rotation rolled back"
        );
        assert_eq!(readable_status(&home, None, point), before, "{point}");
        assert_key_files_whole(&home, point);
        // The next rotation completes.
        let out = home.run(&["key", "rotate"]);
        assert_eq!(code(&out), 0, "{point}: {}", stderr(&out));
        assert_eq!(readable_status(&home, None, point), before, "{point}");
    }
}

#[test]
fn a_process_killed_while_creating_the_key_file_never_leaves_an_empty_one() {
    let home = Home::empty();
    home.kill_at_fault_point(
        "key:temp-written",
        &[
            "login",
            "claude",
            "--from",
            "claude-code",
            "--path",
            &common::fixture("claude-code-credentials.json"),
        ],
    );
    assert!(
        !home.path().join("keys/master.key").exists(),
        "no master.key until it is whole"
    );
    assert_key_files_whole(&home, "after the kill");
    home.login_fixtures();
    readable_status(&home, None, "after a new login");
    assert_key_files_whole(&home, "after the login");
}

#[test]
fn key_rotate_on_one_ledger_leaves_another_under_the_same_home_readable() {
    let home = Home::new();
    let other = home.path().join("other.db");
    let other_db = other.to_str().unwrap();
    let out = home.run_stdin(
        &["--db", other_db, "login", "openai", "--api-key-stdin"],
        "sk-proj-other-ledger-0000000000\n",
    );
    assert_eq!(code(&out), 0, "login on other.db: {}", stderr(&out));
    let main_before = readable_status(&home, None, "main before");
    let other_before = readable_status(&home, Some(&other), "other before");

    let out = home.run(&["key", "rotate"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(readable_status(&home, None, "main after"), main_before);
    assert_eq!(
        readable_status(&home, Some(&other), "other after main's rotation"),
        other_before
    );

    let out = home
        .cmd()
        .arg("--db")
        .arg(&other)
        .args(["key", "rotate"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(readable_status(&home, None, "main at the end"), main_before);
    assert_eq!(
        readable_status(&home, Some(&other), "other at the end"),
        other_before
    );
}

#[test]
fn rotation_gives_the_ledger_its_own_key_file_and_the_old_key_no_longer_opens_it() {
    let home = Home::new();
    let shared = home.path().join("keys/master.key");
    let old_key = std::fs::read_to_string(&shared).unwrap();
    let before = readable_status(&home, None, "before");
    let rotation = home.json(&["key", "rotate"]);
    assert_eq!(rotation["credentials"], 2, "{rotation}");
    let id = rotation["key_id"].as_str().unwrap();
    let own = home.path().join(format!("keys/master-{id}.key"));
    assert_eq!(rotation["key_file"], own.to_str().unwrap(), "{rotation}");
    assert_eq!(
        std::fs::read_to_string(&shared).unwrap(),
        old_key,
        "the shared key file is never rewritten"
    );
    assert_key_files_whole(&home, "after the rotation");
    assert_eq!(readable_status(&home, None, "after"), before);
    let rows = home.json(&["audit", "--action", "key_rotate"]);
    assert_eq!(rows[0]["detail"]["key_id"], id, "{rows}");

    // The old key alone no longer opens the vault; the new one does.
    let with_key = |key: &str| {
        home.cmd()
            .env("AUTHLEDGER_MASTER_KEY", key.trim())
            .args(["status"])
            .output()
            .unwrap()
    };
    let out = with_key(&old_key);
    assert_eq!(code(&out), 5, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("wrong master key"),
        "{}",
        stderr(&out)
    );
    let out = with_key(&std::fs::read_to_string(&own).unwrap());
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // Without its own key file the ledger says which file is missing.
    std::fs::remove_file(&own).unwrap();
    let out = home.run(&["status"]);
    assert_eq!(code(&out), 5);
    assert!(
        stderr(&out).contains(own.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
}

#[test]
fn demo_keep_names_everything_needed_to_reopen_its_ledger() {
    // The user's own home has a ledger and a key of its own: the hint must not depend on it.
    let home = Home::new();
    let out = home.cmd_wall().args(["demo", "--keep"]).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let hint = text
        .lines()
        .find_map(|l| l.trim().strip_suffix(" authledger quota"))
        .unwrap_or_else(|| panic!("no command to reopen the ledger in {text}"));
    let kept = hint
        .strip_prefix("AUTHLEDGER_HOME=")
        .unwrap_or_else(|| panic!("the hint sets no home: {hint}"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_authledger"))
        .env_clear()
        .env("AUTHLEDGER_HOME", kept)
        .args(["--json", "status"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(kept).unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status.to_string().contains("claude"),
        "the demo's credential is there: {status}"
    );
}

/// A ledger never rotated is sealed under the configured key file: when that file holds another
/// key, the error says the key is wrong, not that a key file of the ledger's own is missing.
#[test]
fn another_key_in_the_key_file_is_called_the_wrong_key() {
    let home = Home::new();
    readable_status(&home, None, "before");
    let other = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    std::fs::write(home.path().join("keys/master.key"), other).unwrap();
    let before = common::snapshot(&home.db());
    let out = home.run(&["status"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("wrong master key"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("missing"), "{}", stderr(&out));
    assert_eq!(common::snapshot(&home.db()), before);
}
