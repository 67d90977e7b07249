//! Secrets stay secret: never in the database files, command output or logs; files are
//! private; ciphertexts are bound to their row; rotation and wrong keys behave.

use crate::common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use authledger::{
    Account, Credential, KeySource, Ledger, LedgerConfig, MasterKey, Provider, Secret,
};
use common::oauth_server::OAuthServer;
use common::{Home, code, fixture, stderr, stdout};

fn random_hex(n: usize) -> String {
    let mut out = String::new();
    while out.len() < n {
        out.push_str(&format!("{:016x}", rand_u64()));
    }
    out.truncate(n);
    out
}

fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

/// Runs `login` with `input` on stdin.
fn login_stdin(home: &Home, args: &[&str], input: &str) -> std::process::Output {
    let mut child = home
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Copies a fixture with every fake token replaced by a unique random one; returns the path
/// and the secrets it now holds.
fn unique_fixture(dir: &Path, name: &str, tokens: &[&str]) -> (String, Vec<String>) {
    let mut text = std::fs::read_to_string(fixture(name)).unwrap();
    let mut secrets = Vec::new();
    for t in tokens {
        let fresh = format!("{t}{}", random_hex(32));
        text = text.replace(&format!("\"{t}\""), &format!("\"{fresh}\""));
        secrets.push(fresh);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    (path.to_string_lossy().into_owned(), secrets)
}

/// A running `authledger daemon` (wall clock, refreshing every second) and its stderr.
struct DaemonLog {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl DaemonLog {
    /// Waits (up to a minute) for a line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!("no {needle:?} from the daemon: {:?}", self.seen),
            }
        }
    }
}

/// Runs the daemon while `meanwhile` runs, stops it with SIGTERM and returns its whole log.
fn daemon_log_while(home: &Home, meanwhile: impl FnOnce(&mut DaemonLog)) -> String {
    use std::io::BufRead;
    let mut child = home
        .cmd_wall()
        .args(["daemon", "--interval", "1h", "--refresh-every", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut daemon = DaemonLog {
        child,
        lines,
        seen: Vec::new(),
    };
    meanwhile(&mut daemon);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status();
    daemon.wait_for("daemon stopping");
    assert!(daemon.child.wait().unwrap().success());
    daemon.seen.join("\n")
}

#[test]
fn no_secret_reaches_the_database_files_outputs_or_logs() {
    let home = Home::empty();
    let src = tempfile::tempdir().unwrap();
    assert_eq!(code(&home.run(&["init"])), 0);
    // Keep a connection open so the WAL and SHM stay on disk for inspection.
    let keep = common::raw(&home.db());
    let _: i64 = keep
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();

    let mut secrets = Vec::new();
    let mut outputs = Vec::new();
    let claude_key = format!("sk-ant-api03-{}", random_hex(40));
    let out = login_stdin(&home, &["login", "claude", "--api-key-stdin"], &claude_key);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    secrets.push(claude_key);
    outputs.push(out);

    let env_key = format!("sk-proj-{}", random_hex(40));
    let out = home
        .cmd()
        .env("OPENAI_API_KEY", &env_key)
        .args(["login", "openai", "--account", "env", "--from", "env"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    secrets.push(env_key);
    outputs.push(out);

    let imports: [(&str, &str, &str, &[&str]); 4] = [
        (
            "claude",
            "claude-code",
            "claude-code-credentials.json",
            &["sk-ant-oat01-FAKE", "sk-ant-ort01-FAKE"],
        ),
        (
            "openai",
            "codex",
            "codex-auth.apikey.json",
            &["sk-proj-FAKEFAKEFAKE1234567890"],
        ),
        (
            "openai",
            "opencode",
            "opencode-auth.json",
            &["rt_FAKE", "eyJ.FAKE.sig"],
        ),
        (
            "claude",
            "opencode",
            "opencode-auth.json",
            &["sk-ant-oat01-FAKE", "sk-ant-ort01-FAKE"],
        ),
    ];
    for (i, (provider, from, file, tokens)) in imports.iter().enumerate() {
        let dir = src.path().join(i.to_string());
        std::fs::create_dir(&dir).unwrap();
        let (path, fresh) = unique_fixture(&dir, file, tokens);
        // The needles are right: the source file does hold them.
        let source = std::fs::read(&path).unwrap();
        assert!(fresh.iter().all(|s| contains(&source, s)));
        let account = format!("{from}-{i}");
        let out = home.run(&[
            "login",
            provider,
            "--account",
            &account,
            "--from",
            from,
            "--path",
            &path,
        ]);
        assert_eq!(code(&out), 0, "{from}: {}", stderr(&out));
        secrets.extend(fresh);
        outputs.push(out);
    }

    // Everything a user might run afterwards, in both output modes.
    let acquire_args = [
        "lease",
        "acquire",
        "--agent",
        "a",
        "--provider",
        "claude",
        "--tokens",
        "10",
    ];
    let out = home.run(&acquire_args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    outputs.push(out);
    let out = home.run(&[&["--json"][..], &acquire_args[..]].concat());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let acquire: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    outputs.push(out);
    let id = acquire["lease_id"].as_str().unwrap().to_string();
    for args in [
        vec!["status"],
        vec!["--json", "status"],
        vec!["providers"],
        vec!["--json", "providers"],
        vec!["quota"],
        vec!["--json", "audit"],
        vec!["audit"],
        vec!["lease", "list", "--all"],
        vec!["doctor"],
        vec!["usage", "record", &id, "--input", "1", "--output", "1"],
        vec!["key", "rotate"],
        vec!["--json", "status"],
        vec!["logout", "openai", "--account", "env"],
    ] {
        let out = home.run(&args);
        assert!(code(&out) == 0, "{args:?}: {}", stderr(&out));
        outputs.push(out);
    }
    // The daemon's log, while it serves clients and refreshes a token: an OpenAI login
    // through a fake OAuth server whose tokens expire within the daemon's horizon.
    let server = OAuthServer::start();
    server.set(|m| m.expires_in = Some(120));
    std::fs::write(
        home.path().join("config.toml"),
        server.config_toml("openai"),
    )
    .unwrap();
    let out = home
        .cmd_wall()
        .args(["login", "openai", "--account", "oauth", "--device"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    outputs.push(out);
    let log = daemon_log_while(&home, |daemon| {
        daemon.wait_for("serving writes at");
        daemon.wait_for("refreshed openai/oauth");
        // Clients on the wall clock write through it.
        let out = home
            .cmd_wall()
            .args([
                "--json",
                "lease",
                "acquire",
                "--agent",
                "d",
                "--provider",
                "claude",
                "--account",
                "default",
                "--tokens",
                "10",
            ])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let lease: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let lease = lease["lease_id"].as_str().unwrap().to_string();
        outputs.push(out);
        for args in [
            vec!["usage", "record", &lease, "--input", "1", "--output", "1"],
            vec!["lease", "release", &lease],
        ] {
            let out = home.cmd_wall().args(&args).output().unwrap();
            assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
            outputs.push(out);
        }
    });
    assert!(log.contains("served 3 requests"), "{log}");
    assert_eq!(server.problems(), Vec::<String>::new());
    let issued: Vec<String> = [server.access_tokens(), server.refresh_tokens()].concat();
    assert!(issued.len() >= 4, "the daemon refreshed: {issued:?}");
    secrets.extend(issued);
    for s in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "a secret reached the daemon's log"
        );
    }

    let mut files = vec![home.db()];
    for suffix in ["-wal", "-shm"] {
        let p = Path::new(&format!("{}{suffix}", home.db().display())).to_path_buf();
        assert!(
            p.exists(),
            "{} should exist while a connection is open",
            p.display()
        );
        files.push(p);
    }
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for s in &secrets {
            assert!(
                !contains(&bytes, s),
                "a secret is in {} in plaintext",
                f.display()
            );
        }
    }
    for out in &outputs {
        for s in &secrets {
            assert!(
                !contains(&out.stdout, s),
                "a secret reached stdout: {}",
                stdout(out)
            );
            assert!(
                !contains(&out.stderr, s),
                "a secret reached stderr: {}",
                stderr(out)
            );
        }
    }
    drop(keep);
}

#[test]
fn files_the_ledger_creates_are_private() {
    // Under the most permissive umask, so only the ledger's own care keeps files private. The
    // umask is set by a shell in each child, not in this process: the suite's other tests run
    // on threads of this process and must keep theirs.
    let outer = tempfile::tempdir().unwrap();
    let home_dir = outer.path().join("new/home");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                "umask 000 && exec \"$0\" \"$@\"",
                env!("CARGO_BIN_EXE_authledger"),
            ])
            .env_clear()
            .env("AUTHLEDGER_HOME", &home_dir)
            .env("AUTHLEDGER_NOW", common::T0.to_string())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        out
    };
    cli(&[
        "login",
        "claude",
        "--from",
        "claude-code",
        "--path",
        &fixture("claude-code-credentials.json"),
    ]);
    cli(&[
        "login",
        "openai",
        "--from",
        "codex",
        "--path",
        &fixture("codex-auth.apikey.json"),
    ]);
    // An OpenAI lease's environment makes its private Codex home under `agents/`.
    let out = cli(&[
        "--json",
        "lease",
        "acquire",
        "--agent",
        "a",
        "--provider",
        "openai",
    ]);
    let lease: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = lease["lease_id"].as_str().unwrap();
    cli(&["env", id]);
    // A connection held open keeps the WAL and SHM on disk while a write goes through.
    let keep = common::raw(&home_dir.join("ledger.db"));
    let _: i64 = keep
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    cli(&["lease", "renew", id]);

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let lease_dir = home_dir.join("agents").join(id);
    for dir in [
        outer.path().join("new"),
        home_dir.clone(),
        home_dir.join("keys"),
        home_dir.join("agents"),
        lease_dir.clone(),
        lease_dir.join("codex"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for file in [
        "ledger.db",
        "ledger.db-wal",
        "ledger.db-shm",
        "ledger.db.lock",
        "keys/master.key",
    ] {
        assert_eq!(mode(&home_dir.join(file)), 0o600, "{file}");
    }
    let mut inside = Vec::new();
    for entry in std::fs::read_dir(lease_dir.join("codex")).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        inside.push(path);
    }
    assert!(
        inside.iter().any(|p| p.ends_with("auth.json")),
        "{inside:?}"
    );
    drop(keep);
}

fn library_ledger(dir: &Path) -> Ledger {
    Ledger::open(
        LedgerConfig::new(dir.join("ledger.db"))
            .with_key(KeySource::File(dir.join("keys/master.key"))),
    )
    .unwrap()
}

#[test]
fn a_ciphertext_moved_to_another_row_or_field_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = library_ledger(dir.path());
    let work = Account::new("work").unwrap();
    for (account, key) in [
        (Account::default(), "sk-ant-api03-default-0000000"),
        (work.clone(), "sk-ant-api03-work-11111111111"),
    ] {
        ledger
            .store_credential(&Credential::api_key(
                Provider::Claude,
                account,
                Secret::new(key.into()),
                "stdin",
            ))
            .unwrap();
    }
    let raw = common::raw(&dir.path().join("ledger.db"));
    raw.execute_batch(
        "UPDATE credential_secrets SET
            nonce = (SELECT nonce FROM credential_secrets WHERE account = 'default'),
            ciphertext = (SELECT ciphertext FROM credential_secrets WHERE account = 'default')
         WHERE account = 'work';",
    )
    .unwrap();
    let err = ledger.credential(Provider::Claude, &work).unwrap_err();
    assert_eq!(err.exit_code(), 5, "{err}");
    assert!(err.to_string().contains("does not decrypt"), "{err}");
    // The original row still opens.
    let ok = ledger
        .credential(Provider::Claude, &Account::default())
        .unwrap();
    assert_eq!(
        ok.api_key.unwrap().expose_secret(),
        "sk-ant-api03-default-0000000"
    );

    // Moving a field within one credential fails too.
    raw.execute_batch(
        "UPDATE credential_secrets SET field = 'access_token' WHERE account = 'default';",
    )
    .unwrap();
    assert!(
        ledger
            .credential(Provider::Claude, &Account::default())
            .is_err()
    );
}

#[test]
fn a_ciphertext_moved_to_another_providers_row_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = library_ledger(dir.path());
    for (provider, key) in [
        (Provider::Claude, "sk-ant-api03-claude-secret-000"),
        (Provider::Openai, "sk-proj-openai-secret-11111111"),
    ] {
        ledger
            .store_credential(&Credential::api_key(
                provider,
                Account::default(),
                Secret::new(key.into()),
                "stdin",
            ))
            .unwrap();
    }
    // Same account name, same field: only the provider differs.
    common::raw(&dir.path().join("ledger.db"))
        .execute_batch(
            "UPDATE credential_secrets SET
                nonce = (SELECT nonce FROM credential_secrets WHERE provider = 'claude'),
                ciphertext = (SELECT ciphertext FROM credential_secrets
                               WHERE provider = 'claude')
             WHERE provider = 'openai';",
        )
        .unwrap();
    let err = ledger
        .credential(Provider::Openai, &Account::default())
        .unwrap_err();
    assert_eq!(err.exit_code(), 5, "{err}");
    assert!(err.to_string().contains("openai/default"), "{err}");
    assert!(err.to_string().contains("does not decrypt"), "{err}");
    let claude = ledger
        .credential(Provider::Claude, &Account::default())
        .unwrap();
    assert_eq!(
        claude.api_key.unwrap().expose_secret(),
        "sk-ant-api03-claude-secret-000"
    );
}

#[test]
fn a_ledger_left_by_an_older_releases_interrupted_rotation_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = library_ledger(dir.path());
    ledger
        .store_credential(&Credential::api_key(
            Provider::Openai,
            Account::default(),
            Secret::new("sk-proj-interrupted-000000".into()),
            "stdin",
        ))
        .unwrap();
    // An older release died after committing the re-encryption, before renaming its pending
    // key file over master.key: the ledger is sealed under `master.key.new`.
    let new = MasterKey::generate().unwrap();
    std::fs::write(
        dir.path().join("keys/master.key.new"),
        new.to_base64().as_bytes(),
    )
    .unwrap();
    ledger.rotate_key_to(&new).unwrap();

    let c = ledger
        .credential(Provider::Openai, &Account::default())
        .unwrap();
    assert_eq!(
        c.api_key.unwrap().expose_secret(),
        "sk-proj-interrupted-000000"
    );
    // Nothing is renamed over the shared key file: other ledgers may be sealed under it.
    let text = std::fs::read_to_string(dir.path().join("keys/master.key")).unwrap();
    assert_ne!(text.trim(), new.to_base64().as_str());
}

#[test]
fn a_wrong_key_is_refused_and_leaves_the_database_byte_identical() {
    let home = Home::new();
    let wal = format!("{}-wal", home.db().display());
    assert!(!Path::new(&wal).exists(), "no WAL left between commands");
    let before = std::fs::read(home.db()).unwrap();
    let wrong = MasterKey::generate().unwrap().to_base64();
    for args in [
        vec!["status"],
        vec!["export", "codex", "--codex-home", "/nonexistent/never"],
        vec!["key", "rotate"],
        vec![
            "login",
            "claude",
            "--account",
            "x",
            "--from",
            "claude-code",
            "--path",
            &fixture("claude-code-credentials.json"),
        ],
    ] {
        let out = home
            .cmd()
            .env("AUTHLEDGER_MASTER_KEY", wrong.as_str())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(code(&out), 5, "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("wrong master key"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        std::fs::read(home.db()).unwrap(),
        before,
        "the database file changed"
    );
    assert!(!Path::new("/nonexistent/never").exists());
    let out = home
        .cmd()
        .env("AUTHLEDGER_MASTER_KEY", "not-base64!")
        .args(["status"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 5);
    assert!(stderr(&out).contains("base64"), "{}", stderr(&out));
}

#[test]
fn a_credential_never_prints_its_secrets_in_debug_output() {
    let c = Credential::api_key(
        Provider::Claude,
        Account::default(),
        Secret::new("sk-ant-api03-debug-secret-value".into()),
        "stdin",
    );
    let shown = format!("{c:?} {c:#?}");
    assert!(!shown.contains("debug-secret-value"), "{shown}");
    assert!(shown.contains("[redacted]"));
}
