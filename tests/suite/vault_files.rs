//! The credential files other tools keep, through the CLI: every import format (and malformed
//! ones) leaves its source untouched; `export codex` round-trips through the Codex importer;
//! `login --verify` talks to a fake provider API on 127.0.0.1 with the right headers; an
//! unknown `config.toml` key is refused; `logout` removes the credential and revokes its leases.

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{Home, T0, assert_refused, code, fixture, mode, stderr, stdout};
use serde_json::Value;

const USAGE: i32 = 2;
const DENIED: i32 = 3;
const AUTH: i32 = 4;

/// Expiry of every fake token in the fixtures (2030-01-01T00:00:00Z), in ms.
const FIXTURE_EXPIRY: i64 = 1_893_456_000_000;

/// The fake ChatGPT tokens in `fixtures/codex-auth.chatgpt.json`.
const CHATGPT_ID_TOKEN: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJlbWFpbCI6ImRldkBleGFtcGxlLmNvbSIsImV4cCI6MTg5MzQ1NjAwMCwiaHR0cHM6Ly9hcGkub3BlbmFpLmNvbS9hdXRoIjp7ImNoYXRncHRfcGxhbl90eXBlIjoicHJvIiwiY2hhdGdwdF91c2VyX2lkIjoidXNlci1GQUtFIiwiY2hhdGdwdF9hY2NvdW50X2lkIjoiYWNjdC1GQUtFIn19.sig";
const CHATGPT_ACCESS_TOKEN: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjE4OTM0NTYwMDAsImh0dHBzOi8vYXBpLm9wZW5haS5jb20vYXV0aCI6eyJjaGF0Z3B0X2FjY291bnRfaWQiOiJhY2N0LUZBS0UifX0.sig";
const CHATGPT_REFRESH_TOKEN: &str = "rt_FAKE";
const CODEX_API_KEY: &str = "sk-proj-FAKEFAKEFAKE1234567890";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A copy of a fixture in a private temporary directory, with an old, known mtime, so that any
/// write by the CLI (content, mode or timestamp) is noticed.
struct Source {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
    mtime: SystemTime,
    mode: u32,
}

impl Source {
    fn new(name: &str) -> Source {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::copy(fixture(name), &path).expect("copy fixture");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        Source {
            bytes: std::fs::read(&path).unwrap(),
            mtime: meta.modified().unwrap(),
            mode: meta.permissions().mode(),
            path,
            _dir: dir,
        }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// The file has the same bytes, mtime and mode as before, and nothing appeared beside it
    /// (no lock file, no temporary file, no backup).
    fn assert_untouched(&self, what: &str) {
        let meta = std::fs::metadata(&self.path)
            .unwrap_or_else(|e| panic!("{what}: source file gone: {e}"));
        assert_eq!(
            std::fs::read(&self.path).unwrap(),
            self.bytes,
            "{what}: source file content changed"
        );
        assert_eq!(
            meta.modified().unwrap(),
            self.mtime,
            "{what}: source file mtime changed"
        );
        assert_eq!(
            meta.permissions().mode(),
            self.mode,
            "{what}: source file mode changed"
        );
        let siblings: Vec<_> = std::fs::read_dir(self.path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            siblings.len(),
            1,
            "{what}: files appeared beside the source: {siblings:?}"
        );
    }
}

/// Runs the CLI at T0 with `args`, extra environment variables and `input` on stdin (stdin is
/// always a closed pipe, never the test's terminal).
fn run_with(home: &Home, args: &[&str], env: &[(&str, &str)], input: &str) -> Output {
    let mut cmd = home.cmd();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn authledger");
    {
        let mut stdin = child.stdin.take().unwrap();
        // The CLI may exit before reading stdin; a broken pipe is fine.
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("wait authledger")
}

/// Asserts success and returns the output.
fn ok(out: Output, what: &str) -> Output {
    assert_eq!(
        code(&out),
        0,
        "{what}: stderr {:?}, stdout {:?}",
        stderr(&out),
        stdout(&out)
    );
    out
}

/// `status --json` as parsed JSON and as raw text.
fn status(home: &Home) -> (Value, String) {
    let out = ok(home.run(&["--json", "status"]), "status --json");
    let text = stdout(&out);
    (serde_json::from_str(&text).expect("status json"), text)
}

/// The `credential` object `status --json` shows for a provider account (`None` if there is
/// no row or the row has no credential).
fn status_credential(home: &Home, provider: &str, account: &str) -> Option<Value> {
    let (v, _) = status(home);
    v.as_array()
        .expect("status is an array")
        .iter()
        .find(|r| r["provider"] == provider && r["account"] == account)
        .map(|r| r["credential"].clone())
        .filter(|c| !c.is_null())
}

/// What a stored credential is expected to look like in `status --json`.
struct Expect<'a> {
    kind: &'a str,
    tier: &'a str,
    expires_at: Option<i64>,
    redacted: &'a str,
    account_id: Option<&'a str>,
    source: &'a str,
    /// Every secret value the source held: none may show anywhere in `status`.
    secrets: &'a [&'a str],
}

fn assert_stored(home: &Home, provider: &str, account: &str, e: &Expect<'_>, what: &str) {
    let c = status_credential(home, provider, account)
        .unwrap_or_else(|| panic!("{what}: no {provider}/{account} credential in status"));
    assert_eq!(c["kind"], e.kind, "{what}: kind in {c}");
    assert_eq!(c["tier"], e.tier, "{what}: tier in {c}");
    assert_eq!(
        c["expires_at_ms"].as_i64(),
        e.expires_at,
        "{what}: expires_at in {c}"
    );
    assert_eq!(c["redacted"], e.redacted, "{what}: redacted in {c}");
    assert_eq!(
        c["account_id"].as_str(),
        e.account_id,
        "{what}: account_id in {c}"
    );
    assert_eq!(c["source"], e.source, "{what}: source in {c}");
    assert_eq!(c["status"], "ok", "{what}: status in {c}");
    let redacted = c["redacted"].as_str().unwrap();
    let (_, text) = status(home);
    let human = stdout(&ok(home.run(&["status"]), "status"));
    for s in e.secrets {
        assert_ne!(
            redacted, *s,
            "{what}: the redacted form is the secret itself"
        );
        assert!(
            !redacted.contains(s),
            "{what}: the redacted form holds the secret"
        );
        assert!(
            !text.contains(s),
            "{what}: status --json shows a secret: {s}"
        );
        assert!(!human.contains(s), "{what}: status shows a secret: {s}");
    }
}

/// Imports through the CLI and checks the command's own output holds no secret.
fn import(home: &Home, args: &[&str], env: &[(&str, &str)], secrets: &[&str], what: &str) {
    let out = ok(run_with(home, args, env, ""), what);
    for s in secrets {
        assert!(!stdout(&out).contains(s), "{what}: login printed a secret");
        assert!(!stderr(&out).contains(s), "{what}: login logged a secret");
    }
}

/// The home directory holds nothing at all (no database, no key file, no config).
fn assert_home_empty(home: &Home, what: &str) {
    let entries: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        entries.is_empty(),
        "{what}: the home is no longer empty: {entries:?}"
    );
}

fn audit_rows(home: &Home, action: &str) -> (Vec<Value>, String) {
    let out = ok(
        home.run(&["--json", "audit", "--action", action]),
        "audit --action",
    );
    let text = stdout(&out);
    let v: Value = serde_json::from_str(&text).expect("audit json");
    (v.as_array().expect("audit array").clone(), text)
}

// ---------------------------------------------------------------------------------------------
// 1. Imports, one per format
// ---------------------------------------------------------------------------------------------

#[test]
fn claude_code_import_takes_the_tier_from_subscription_type_and_tier_overrides_it() {
    let home = Home::empty();
    let max = Source::new("claude-code-credentials.json");
    let pro = Source::new("claude-code-credentials.pro.json");
    let secrets = ["sk-ant-oat01-FAKE", "sk-ant-ort01-FAKE"];
    let pro_secrets = [
        "sk-ant-oat01-PROFAKE-0000000001",
        "sk-ant-ort01-PROFAKE-0000000002",
    ];

    import(
        &home,
        &[
            "login",
            "claude",
            "--from",
            "claude-code",
            "--path",
            max.path(),
        ],
        &[],
        &secrets,
        "claude-code max",
    );
    max.assert_untouched("claude-code max");
    assert_stored(
        &home,
        "claude",
        "default",
        &Expect {
            kind: "oauth",
            tier: "max",
            expires_at: Some(FIXTURE_EXPIRY),
            redacted: "sk-ant-…FAKE",
            account_id: None,
            source: "claude-code",
            secrets: &secrets,
        },
        "claude-code max",
    );
    let c = status_credential(&home, "claude", "default").unwrap();
    assert_eq!(c["refreshable"], true);
    assert_eq!(
        c["scopes"],
        serde_json::json!([
            "user:inference",
            "user:profile",
            "user:sessions:claude_code"
        ])
    );

    import(
        &home,
        &[
            "login",
            "claude",
            "--account",
            "pro",
            "--from",
            "claude-code",
            "--path",
            pro.path(),
        ],
        &[],
        &pro_secrets,
        "claude-code pro",
    );
    pro.assert_untouched("claude-code pro");
    assert_stored(
        &home,
        "claude",
        "pro",
        &Expect {
            kind: "oauth",
            tier: "pro",
            expires_at: Some(FIXTURE_EXPIRY),
            redacted: "sk-ant-…0001",
            account_id: None,
            source: "claude-code",
            secrets: &pro_secrets,
        },
        "claude-code pro",
    );

    // --tier wins over the file's subscriptionType.
    import(
        &home,
        &[
            "login",
            "claude",
            "--account",
            "override",
            "--from",
            "claude-code",
            "--path",
            max.path(),
            "--tier",
            "pro",
        ],
        &[],
        &secrets,
        "claude-code --tier pro",
    );
    max.assert_untouched("claude-code --tier pro");
    assert_stored(
        &home,
        "claude",
        "override",
        &Expect {
            kind: "oauth",
            tier: "pro",
            expires_at: Some(FIXTURE_EXPIRY),
            redacted: "sk-ant-…FAKE",
            account_id: None,
            source: "claude-code",
            secrets: &secrets,
        },
        "claude-code --tier pro",
    );

    // Each import is audited as `import`, with its source and without a secret.
    let (rows, text) = audit_rows(&home, "import");
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows.iter().all(|r| r["detail"]["source"] == "claude-code"),
        "{text}"
    );
    for s in secrets.iter().chain(&pro_secrets) {
        assert!(!text.contains(s), "an import audit row holds a secret");
    }
}

#[test]
fn codex_import_reads_the_api_key_chatgpt_and_older_forms() {
    let home = Home::empty();
    let cases: [(&str, &str, Expect<'_>); 4] = [
        (
            "codex-auth.apikey.json",
            "apikey",
            Expect {
                kind: "api_key",
                tier: "api",
                expires_at: None,
                redacted: "sk-proj-…7890",
                account_id: None,
                source: "codex",
                secrets: &[CODEX_API_KEY],
            },
        ),
        (
            "codex-auth.chatgpt.json",
            "chatgpt",
            Expect {
                kind: "oauth",
                tier: "chatgpt",
                // From the access token's `exp` claim.
                expires_at: Some(FIXTURE_EXPIRY),
                redacted: "eyJ….sig",
                account_id: Some("acct-FAKE"),
                source: "codex",
                secrets: &[
                    CHATGPT_ACCESS_TOKEN,
                    CHATGPT_ID_TOKEN,
                    CHATGPT_REFRESH_TOKEN,
                ],
            },
        ),
        (
            // No auth_mode: an API key alone means the API-key form.
            "codex-auth.legacy-apikey.json",
            "legacy-apikey",
            Expect {
                kind: "api_key",
                tier: "api",
                expires_at: None,
                redacted: "sk-proj-…4321",
                account_id: None,
                source: "codex",
                secrets: &["sk-proj-LEGACYFAKE0987654321"],
            },
        ),
        (
            // No auth_mode: tokens alone mean the ChatGPT form.
            "codex-auth.legacy-chatgpt.json",
            "legacy-chatgpt",
            Expect {
                kind: "oauth",
                tier: "chatgpt",
                expires_at: Some(FIXTURE_EXPIRY),
                redacted: "eyJ….sig",
                account_id: Some("acct-LEGACY"),
                source: "codex",
                secrets: &[CHATGPT_ACCESS_TOKEN, CHATGPT_ID_TOKEN, "rt_LEGACY_FAKE"],
            },
        ),
    ];
    for (file, account, expect) in &cases {
        let src = Source::new(file);
        import(
            &home,
            &[
                "login",
                "openai",
                "--account",
                account,
                "--from",
                "codex",
                "--path",
                src.path(),
            ],
            &[],
            expect.secrets,
            file,
        );
        src.assert_untouched(file);
        assert_stored(&home, "openai", account, expect, file);
        let c = status_credential(&home, "openai", account).unwrap();
        assert_eq!(c["refreshable"], expect.kind == "oauth", "{file}: {c}");
    }
}

#[test]
fn opencode_import_reads_oauth_and_api_entries() {
    let home = Home::empty();
    let oauth = Source::new("opencode-auth.json");
    let api = Source::new("opencode-auth.api.json");
    let cases: [(&Source, &str, &str, Expect<'_>); 4] = [
        (
            &oauth,
            "claude",
            "oauth",
            Expect {
                kind: "oauth",
                tier: "max",
                expires_at: Some(FIXTURE_EXPIRY),
                redacted: "sk-ant-…FAKE",
                account_id: None,
                source: "opencode",
                secrets: &["sk-ant-oat01-FAKE", "sk-ant-ort01-FAKE"],
            },
        ),
        (
            &oauth,
            "openai",
            "oauth",
            Expect {
                kind: "oauth",
                tier: "chatgpt",
                expires_at: Some(FIXTURE_EXPIRY),
                // Too short to show any of it.
                redacted: "…",
                account_id: Some("acct-FAKE"),
                source: "opencode",
                secrets: &["eyJ.FAKE.sig", "rt_FAKE"],
            },
        ),
        (
            &api,
            "claude",
            "api",
            Expect {
                kind: "api_key",
                tier: "api",
                expires_at: None,
                redacted: "sk-ant-…0001",
                account_id: None,
                source: "opencode",
                secrets: &["sk-ant-api03-OPENCODEFAKE-0000000001"],
            },
        ),
        (
            &api,
            "openai",
            "api",
            Expect {
                kind: "api_key",
                tier: "api",
                expires_at: None,
                redacted: "sk-proj-…0002",
                account_id: None,
                source: "opencode",
                secrets: &["sk-proj-OPENCODEFAKE-0000000002"],
            },
        ),
    ];
    for (src, provider, account, expect) in &cases {
        let what = format!("opencode {provider}/{account}");
        import(
            &home,
            &[
                "login",
                provider,
                "--account",
                account,
                "--from",
                "opencode",
                "--path",
                src.path(),
            ],
            &[],
            expect.secrets,
            &what,
        );
        src.assert_untouched(&what);
        assert_stored(&home, provider, account, expect, &what);
    }
}

#[test]
fn env_import_reads_anthropic_claude_and_openai_api_keys() {
    let home = Home::empty();
    let cases: [(&str, &str, &str, &str, &str); 3] = [
        (
            "claude",
            "anthropic",
            "ANTHROPIC_API_KEY",
            "sk-ant-api03-ENVFAKE-anthropic-0000a1b2",
            "sk-ant-…a1b2",
        ),
        (
            "claude",
            "claude",
            "CLAUDE_API_KEY",
            "sk-ant-api03-ENVFAKE-claude-00000c3d4",
            "sk-ant-…c3d4",
        ),
        (
            "openai",
            "openai",
            "OPENAI_API_KEY",
            "sk-proj-ENVFAKE-openai-000000e5f6",
            "sk-proj-…e5f6",
        ),
    ];
    for (provider, account, var, key, redacted) in cases {
        import(
            &home,
            &["login", provider, "--account", account, "--from", "env"],
            &[(var, key)],
            &[key],
            var,
        );
        assert_stored(
            &home,
            provider,
            account,
            &Expect {
                kind: "api_key",
                tier: "api",
                expires_at: None,
                redacted,
                account_id: None,
                source: "env",
                secrets: &[key],
            },
            var,
        );
    }
    let (rows, text) = audit_rows(&home, "import");
    assert_eq!(rows.len(), 3, "{text}");
    assert!(
        rows.iter().all(|r| r["detail"]["source"] == "env"),
        "{text}"
    );
}

#[test]
fn imports_read_each_tools_default_place() {
    let home = Home::empty();
    let root = tempfile::tempdir().unwrap();
    let put = |rel: &str, name: &str| {
        let p = root.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy(fixture(name), &p).unwrap();
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        (p.clone(), std::fs::read(&p).unwrap(), mtime)
    };
    let files = [
        put("codex-home/auth.json", "codex-auth.apikey.json"),
        put(
            "claude-config/.credentials.json",
            "claude-code-credentials.json",
        ),
        put("data/opencode/auth.json", "opencode-auth.api.json"),
        put("home/.codex/auth.json", "codex-auth.chatgpt.json"),
        put(
            "home/.claude/.credentials.json",
            "claude-code-credentials.pro.json",
        ),
        put("home/.local/share/opencode/auth.json", "opencode-auth.json"),
    ];
    let dir = |rel: &str| root.path().join(rel).to_str().unwrap().to_string();
    let home_dir = dir("home");
    let cases = [
        (
            "openai",
            "codex",
            "codex",
            "CODEX_HOME",
            dir("codex-home"),
            "api_key",
            "api",
        ),
        (
            "claude",
            "claude-code",
            "claude-code",
            "CLAUDE_CONFIG_DIR",
            dir("claude-config"),
            "oauth",
            "max",
        ),
        (
            "claude",
            "opencode",
            "opencode",
            "XDG_DATA_HOME",
            dir("data"),
            "api_key",
            "api",
        ),
        (
            "openai",
            "codex-home",
            "codex",
            "HOME",
            home_dir.clone(),
            "oauth",
            "chatgpt",
        ),
        (
            "claude",
            "claude-home",
            "claude-code",
            "HOME",
            home_dir.clone(),
            "oauth",
            "pro",
        ),
        (
            "openai",
            "opencode-home",
            "opencode",
            "HOME",
            home_dir.clone(),
            "oauth",
            "chatgpt",
        ),
    ];
    for (provider, account, from, var, value, kind, tier) in &cases {
        let what = format!("{from} via {var}");
        ok(
            run_with(
                &home,
                &["login", provider, "--account", account, "--from", from],
                &[(var, value.as_str())],
                "",
            ),
            &what,
        );
        let c = status_credential(&home, provider, account).expect("stored");
        assert_eq!(
            (c["kind"].as_str(), c["tier"].as_str()),
            (Some(*kind), Some(*tier)),
            "{what}"
        );
    }
    for (path, bytes, mtime) in &files {
        assert_eq!(
            &std::fs::read(path).unwrap(),
            bytes,
            "{} changed",
            path.display()
        );
        let now = std::fs::metadata(path).unwrap().modified().unwrap();
        assert_eq!(&now, mtime, "{} was touched", path.display());
    }
    // With no HOME and no tool variable there is no default place: a usage error.
    let out = run_with(&home, &["login", "openai", "--from", "codex"], &[], "");
    assert_refused(&out, USAGE, &["HOME"], "no HOME");
}

// ---------------------------------------------------------------------------------------------
// 2. Malformed inputs
// ---------------------------------------------------------------------------------------------

struct Bad<'a> {
    what: &'a str,
    /// The `login` arguments; `{}` stands for the source file's path.
    args: &'a [&'a str],
    /// A fixture to copy and pass as `{}`.
    file: Option<&'a str>,
    env: &'a [(&'a str, &'a str)],
    stdin: &'a str,
    exit: i32,
    needles: &'a [&'a str],
    /// Must not appear in any output.
    secret: Option<&'a str>,
}

#[test]
fn malformed_inputs_are_refused_with_exit_2_and_touch_nothing() {
    let missing = tempfile::tempdir().unwrap();
    let missing_path = missing.path().join("no-such-auth.json");
    let missing_path = missing_path.to_str().unwrap();
    let cases = [
        Bad {
            what: "claude-code file that is not JSON",
            args: &["login", "claude", "--from", "claude-code", "--path", "{}"],
            file: Some("claude-code-credentials.truncated.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["not valid JSON"],
            secret: None,
        },
        Bad {
            what: "codex file that is not JSON",
            args: &["login", "openai", "--from", "codex", "--path", "{}"],
            file: Some("codex-auth.truncated.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["not valid JSON"],
            secret: Some("sk-proj-FAKEFAKEFAKE12"),
        },
        Bad {
            what: "claude-code JSON array",
            args: &["login", "claude", "--from", "claude-code", "--path", "{}"],
            file: Some("claude-code-credentials.array.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["object"],
            secret: None,
        },
        Bad {
            what: "claude-code file without claudeAiOauth",
            args: &["login", "claude", "--from", "claude-code", "--path", "{}"],
            file: Some("claude-code-credentials.no-oauth.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["claudeAiOauth"],
            secret: None,
        },
        Bad {
            what: "codex tokens without id_token",
            args: &["login", "openai", "--from", "codex", "--path", "{}"],
            file: Some("codex-auth.no-id-token.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["id_token"],
            secret: Some(CHATGPT_ACCESS_TOKEN),
        },
        Bad {
            what: "codex id_token that is not a JWT",
            args: &["login", "openai", "--from", "codex", "--path", "{}"],
            file: Some("codex-auth.id-token-not-jwt.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["id_token", "JWT"],
            secret: Some(CHATGPT_ACCESS_TOKEN),
        },
        Bad {
            what: "unsupported codex auth_mode",
            args: &["login", "openai", "--from", "codex", "--path", "{}"],
            file: Some("codex-auth.chatgpt-auth-tokens.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["chatgptAuthTokens", "not supported"],
            secret: Some(CHATGPT_ACCESS_TOKEN),
        },
        Bad {
            what: "opencode wellknown entry",
            args: &["login", "claude", "--from", "opencode", "--path", "{}"],
            file: Some("opencode-auth.wellknown.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["wellknown"],
            secret: None,
        },
        Bad {
            what: "missing file",
            args: &["login", "openai", "--from", "codex", "--path", missing_path],
            file: None,
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["no-such-auth.json"],
            secret: None,
        },
        Bad {
            what: "--from codex for claude",
            args: &["login", "claude", "--from", "codex", "--path", "{}"],
            file: Some("codex-auth.chatgpt.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["codex", "claude"],
            secret: Some(CHATGPT_ACCESS_TOKEN),
        },
        Bad {
            what: "--from claude-code for openai",
            args: &["login", "openai", "--from", "claude-code", "--path", "{}"],
            file: Some("claude-code-credentials.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["claude code", "openai"],
            secret: Some("sk-ant-oat01-FAKE"),
        },
        Bad {
            what: "--from env without ANTHROPIC_API_KEY",
            args: &["login", "claude", "--from", "env"],
            file: None,
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["ANTHROPIC_API_KEY"],
            secret: None,
        },
        Bad {
            what: "--from env without OPENAI_API_KEY",
            args: &["login", "openai", "--from", "env"],
            file: None,
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["OPENAI_API_KEY"],
            secret: None,
        },
        Bad {
            what: "OpenAI key in ANTHROPIC_API_KEY",
            args: &["login", "claude", "--from", "env"],
            file: None,
            env: &[("ANTHROPIC_API_KEY", "sk-proj-WRONGPREFIX-000000000")],
            stdin: "",
            exit: USAGE,
            needles: &["sk-ant-"],
            secret: Some("sk-proj-WRONGPREFIX-000000000"),
        },
        Bad {
            what: "OpenAI key on stdin for claude",
            args: &["login", "claude", "--api-key-stdin"],
            file: None,
            env: &[],
            stdin: "sk-proj-WRONGPREFIX-111111111\n",
            exit: USAGE,
            needles: &["sk-ant-"],
            secret: Some("sk-proj-WRONGPREFIX-111111111"),
        },
        Bad {
            what: "non-sk key on stdin for openai",
            args: &["login", "openai", "--api-key-stdin"],
            file: None,
            env: &[],
            stdin: "pk-live-WRONGPREFIX-222222222\n",
            exit: USAGE,
            needles: &["sk-"],
            secret: Some("pk-live-WRONGPREFIX-222222222"),
        },
        Bad {
            what: "empty stdin",
            args: &["login", "claude", "--api-key-stdin"],
            file: None,
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["stdin"],
            secret: None,
        },
        Bad {
            what: "blank stdin",
            args: &["login", "openai", "--api-key-stdin"],
            file: None,
            env: &[],
            stdin: " \n\t\n",
            exit: USAGE,
            needles: &["stdin"],
            secret: None,
        },
        Bad {
            what: "--verify with an import",
            args: &[
                "login",
                "claude",
                "--from",
                "claude-code",
                "--path",
                "{}",
                "--verify",
            ],
            file: Some("claude-code-credentials.json"),
            env: &[],
            stdin: "",
            exit: USAGE,
            needles: &["--verify"],
            secret: Some("sk-ant-oat01-FAKE"),
        },
    ];

    let home = Home::new();
    for case in &cases {
        let what = case.what;
        let src = case.file.map(Source::new);
        let args: Vec<&str> = case
            .args
            .iter()
            .map(|a| match (&src, *a) {
                (Some(s), "{}") => s.path(),
                _ => a,
            })
            .collect();

        // On a ledger holding credentials: nothing changes.
        let before = home.snapshot();
        let out = run_with(&home, &args, case.env, case.stdin);
        assert_refused(&out, case.exit, case.needles, what);
        assert_eq!(home.snapshot(), before, "{what}: the ledger changed");
        if let Some(secret) = case.secret {
            assert!(
                !stderr(&out).contains(secret),
                "{what}: the error shows a secret"
            );
        }
        if let Some(src) = &src {
            src.assert_untouched(what);
        }

        // On no ledger at all: none is created, and no key file either.
        let empty = Home::empty();
        let out = run_with(&empty, &args, case.env, case.stdin);
        assert_refused(&out, case.exit, case.needles, what);
        assert_home_empty(&empty, what);
        if let Some(src) = &src {
            src.assert_untouched(what);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Export for Codex, and the round trip through the importer
// ---------------------------------------------------------------------------------------------

/// Exports the OpenAI credential of `account` into a fresh nested directory; checks modes and
/// that no output holds a secret; returns the directory's owner, the file and its JSON.
fn export_codex(
    home: &Home,
    account: &str,
    secrets: &[&str],
    flags: &[&str],
) -> (tempfile::TempDir, PathBuf, Value) {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("agents").join("codex-home");
    let mut args = vec![
        "--json",
        "export",
        "codex",
        "--account",
        account,
        "--codex-home",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    let out = ok(home.run(&args), "export codex");
    let file = dir.join("auth.json");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("export json");
    assert_eq!(printed["path"], file.to_str().unwrap());
    for s in secrets {
        assert!(
            !stdout(&out).contains(s) && !stderr(&out).contains(s),
            "export printed a secret"
        );
    }
    assert!(dir.is_dir());
    assert_eq!(mode(&dir), 0o700, "CODEX_HOME must be created 0700");
    assert_eq!(mode(&file), 0o600, "auth.json must be 0600");
    // Only auth.json: no temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["auth.json"], "{names:?}");
    let json: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).expect("auth.json");
    (parent, file, json)
}

/// The fields of a `status --json` credential that must survive an export and re-import.
fn comparable(c: &Value) -> Value {
    serde_json::json!({
        "kind": c["kind"],
        "tier": c["tier"],
        "expires_at_ms": c["expires_at_ms"],
        "redacted": c["redacted"],
        "account_id": c["account_id"],
        "refreshable": c["refreshable"],
        "source": c["source"],
    })
}

#[test]
fn a_chatgpt_export_has_codex_shape_and_reads_back_as_the_same_credential() {
    let home = Home::new();
    let secrets = [
        CHATGPT_ACCESS_TOKEN,
        CHATGPT_ID_TOKEN,
        CHATGPT_REFRESH_TOKEN,
    ];
    let (_keep, file, json) = export_codex(&home, "default", &secrets, &[]);

    let obj = json.as_object().expect("auth.json is an object");
    assert_eq!(json["auth_mode"], "chatgpt", "{json}");
    assert!(
        obj.contains_key("OPENAI_API_KEY") && json["OPENAI_API_KEY"].is_null(),
        "OPENAI_API_KEY must be present and null: {json}"
    );
    assert_eq!(json["tokens"]["id_token"], CHATGPT_ID_TOKEN);
    assert_eq!(json["tokens"]["access_token"], CHATGPT_ACCESS_TOKEN);
    assert_eq!(
        json["tokens"]["refresh_token"], "",
        "no refresh token unless handed over"
    );
    assert_eq!(json["tokens"]["account_id"], "acct-FAKE");
    assert_eq!(
        json["last_refresh"], "2026-11-23T10:00:00Z",
        "last_refresh is now (T0)"
    );

    let before = std::fs::read(&file).unwrap();
    ok(
        home.run(&[
            "login",
            "openai",
            "--account",
            "again",
            "--from",
            "codex",
            "--path",
            file.to_str().unwrap(),
        ]),
        "re-import",
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the re-import changed auth.json"
    );
    let original = status_credential(&home, "openai", "default").unwrap();
    let again = status_credential(&home, "openai", "again").unwrap();
    assert_eq!(original["refreshable"], true, "the ledger keeps refreshing");
    assert_eq!(original["status"], "ok", "{original}");
    assert_eq!(again["refreshable"], false, "the copy cannot be refreshed");
    let same = |c: &Value| {
        let mut c = comparable(c);
        c["refreshable"] = Value::Null;
        c
    };
    assert_eq!(same(&again), same(&original));
    assert_eq!(again["kind"], "oauth");
    assert_eq!(again["tier"], "chatgpt");
    assert_eq!(again["expires_at_ms"].as_i64(), Some(FIXTURE_EXPIRY));

    // One `export` audit row, about openai/default, without any secret.
    let (rows, text) = audit_rows(&home, "export");
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["provider"], "openai");
    assert_eq!(rows[0]["account"], "default");
    assert_eq!(rows[0]["detail"]["format"], "codex", "{text}");
    for s in secrets {
        assert!(!text.contains(s), "the export audit row holds a secret");
    }
    let (_, all) = audit_rows(&home, "import");
    for s in secrets {
        assert!(!all.contains(s), "an import audit row holds a secret");
    }
}

/// An export killed before its transaction commits hands nothing over: Codex's directory has no
/// `auth.json` with the refresh token in it, and the ledger still holds (and refreshes) its own.
#[test]
fn a_hand_over_that_never_committed_gives_codex_no_refresh_token() {
    let home = Home::new();
    let codex = home.path().join("codex-home");
    home.kill_at_fault_point(
        "export:before-commit",
        &[
            "export",
            "codex",
            "--codex-home",
            codex.to_str().unwrap(),
            "--with-refresh-token",
        ],
    );
    assert!(
        !codex.join("auth.json").exists(),
        "the file was put in place"
    );
    let c = status_credential(&home, "openai", "default").unwrap();
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!(c["refreshable"], true, "{c}");
}

#[test]
fn export_codex_with_refresh_token_hands_the_credential_over_to_codex() {
    let home = Home::new();
    let secrets = [
        CHATGPT_ACCESS_TOKEN,
        CHATGPT_ID_TOKEN,
        CHATGPT_REFRESH_TOKEN,
    ];
    let (_keep, _file, json) = export_codex(&home, "default", &secrets, &["--with-refresh-token"]);
    assert_eq!(json["tokens"]["refresh_token"], CHATGPT_REFRESH_TOKEN);
    assert_eq!(json["tokens"]["access_token"], CHATGPT_ACCESS_TOKEN);

    // The ledger gave the refresh token up: nothing here can refresh it any more.
    let c = status_credential(&home, "openai", "default").unwrap();
    assert_eq!(c["status"], "handed_over", "{c}");
    assert_eq!(c["handed_over_to"], "codex", "{c}");
    assert_eq!(c["refreshable"], false, "{c}");
    let stored: i64 = common::raw(&home.db())
        .query_row(
            "SELECT count(*) FROM credential_secrets
              WHERE provider = 'openai' AND field = 'refresh_token'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 0, "no refresh token left in the ledger");
    let text = stdout(&ok(home.run(&["status"]), "status"));
    assert!(
        text.contains("openai/default: handed over to Codex; refresh it there"),
        "{text}"
    );
    let (rows, audit) = audit_rows(&home, "export");
    assert_eq!(rows[0]["detail"]["handed_over"], true, "{audit}");
    // The access token still serves until it expires.
    let token = ok(home.run(&["token", "openai"]), "token");
    assert!(stdout(&token).contains(CHATGPT_ACCESS_TOKEN));

    // A new login takes the credential back.
    home.login_fixtures();
    let c = status_credential(&home, "openai", "default").unwrap();
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!(c["refreshable"], true, "{c}");
    let text = stdout(&ok(home.run(&["status"]), "status"));
    assert!(!text.contains("handed over"), "{text}");
}

#[test]
fn an_api_key_export_has_codex_shape_and_reads_back_as_the_same_credential() {
    let home = Home::new();
    ok(
        home.run(&[
            "login",
            "openai",
            "--account",
            "key",
            "--from",
            "codex",
            "--path",
            &fixture("codex-auth.apikey.json"),
        ]),
        "import api key",
    );
    let (_keep, file, json) = export_codex(&home, "key", &[CODEX_API_KEY], &[]);
    assert_eq!(json["auth_mode"], "apikey", "{json}");
    assert_eq!(json["OPENAI_API_KEY"], CODEX_API_KEY, "{json}");
    assert!(
        json.get("tokens").is_none_or(Value::is_null),
        "an API-key auth.json has no tokens: {json}"
    );

    ok(
        home.run(&[
            "login",
            "openai",
            "--account",
            "again",
            "--from",
            "codex",
            "--path",
            file.to_str().unwrap(),
        ]),
        "re-import",
    );
    let original = status_credential(&home, "openai", "key").unwrap();
    let again = status_credential(&home, "openai", "again").unwrap();
    assert_eq!(comparable(&again), comparable(&original));
    assert_eq!(again["kind"], "api_key");
    assert_eq!(again["tier"], "api");
    assert!(again["expires_at_ms"].is_null());
    assert_eq!(again["redacted"], "sk-proj-…7890");

    let (rows, text) = audit_rows(&home, "export");
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["account"], "key");
    assert!(
        !text.contains(CODEX_API_KEY),
        "the export audit row holds the key"
    );
}

#[test]
fn exporting_without_an_openai_credential_is_refused_with_exit_4() {
    let home = Home::empty();
    ok(
        home.run(&[
            "login",
            "claude",
            "--from",
            "claude-code",
            "--path",
            &fixture("claude-code-credentials.json"),
        ]),
        "import claude",
    );
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("codex-home");
    let before = home.snapshot();
    let out = home.run(&["export", "codex", "--codex-home", dir.to_str().unwrap()]);
    assert_refused(
        &out,
        AUTH,
        &["openai"],
        "export without an OpenAI credential",
    );
    assert!(
        !dir.exists(),
        "nothing is written when there is nothing to export"
    );
    assert_eq!(
        home.snapshot(),
        before,
        "a refused export writes no audit row"
    );

    // Same for an account that does not exist while another does.
    let home = Home::new();
    let before = home.snapshot();
    let out = home.run(&[
        "export",
        "codex",
        "--account",
        "nobody",
        "--codex-home",
        dir.to_str().unwrap(),
    ]);
    assert_refused(
        &out,
        AUTH,
        &["openai/nobody"],
        "export of an unknown account",
    );
    assert!(!dir.exists());
    assert_eq!(home.snapshot(), before);
}

// ---------------------------------------------------------------------------------------------
// 4. --verify against a fake provider API on 127.0.0.1
// ---------------------------------------------------------------------------------------------

/// One request the fake API received.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that records every request and answers each with the
/// current status. The thread lives until the test process ends.
struct FakeApi {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    status: Arc<AtomicU16>,
    /// A `Location` header to send (for redirects).
    location: Arc<Mutex<Option<String>>>,
}

impl FakeApi {
    fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let location = Arc::new(Mutex::new(None));
        let (s, st, loc) = (seen.clone(), status.clone(), location.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let location = loc.lock().unwrap().clone();
                let _ = serve(stream, &s, &st, location.as_deref());
            }
        });
        FakeApi {
            port,
            seen,
            status,
            location,
        }
    }

    fn redirect_to(&self, url: &str) {
        self.answer(302);
        *self.location.lock().unwrap() = Some(url.to_string());
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn serve(
    mut stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    status: &AtomicU16,
    location: Option<&str>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    // Recorded before answering, so the CLI's exit implies the request is in the list.
    seen.lock().unwrap().push(Seen {
        request_line,
        headers,
    });
    let code = status.load(Ordering::SeqCst);
    let (reason, body) = match code {
        200 => ("OK", r#"{"data":[{"id":"fake-model"}]}"#),
        401 => (
            "Unauthorized",
            r#"{"error":{"type":"authentication_error"}}"#,
        ),
        403 => ("Forbidden", r#"{"error":{"type":"permission_error"}}"#),
        302 => ("Found", ""),
        _ => ("Internal Server Error", r#"{"error":{"type":"api_error"}}"#),
    };
    let location = location
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "HTTP/1.1 {code} {reason}\r\n{location}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Points both providers of `home` at the fake API.
fn configure(home: &Home, api: &FakeApi) {
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[providers.claude]\nbase_url = \"{0}\"\n\n[providers.openai]\nbase_url = \"{0}\"\n",
            api.base_url()
        ),
    )
    .unwrap();
}

const CLAUDE_KEY: &str = "sk-ant-api03-VERIFYFAKE-abcdefghijklmnop-1111";
const OPENAI_KEY: &str = "sk-proj-VERIFYFAKE-abcdefghijklmnop-2222";

fn assert_one_models_request(seen: &[Seen], what: &str) -> Seen {
    assert_eq!(
        seen.len(),
        1,
        "{what}: exactly one request expected, got {seen:#?}"
    );
    let r = seen[0].clone();
    assert_eq!(r.request_line, "GET /v1/models HTTP/1.1", "{what}");
    r
}

#[test]
fn verify_sends_x_api_key_and_anthropic_version_for_claude_and_stores_on_200() {
    let api = FakeApi::start();
    let home = Home::new();
    configure(&home, &api);
    api.answer(200);
    let out = ok(
        run_with(
            &home,
            &[
                "login",
                "claude",
                "--account",
                "verified",
                "--api-key-stdin",
                "--verify",
            ],
            &[],
            &format!("{CLAUDE_KEY}\n"),
        ),
        "verify claude 200",
    );
    assert!(!stdout(&out).contains(CLAUDE_KEY) && !stderr(&out).contains(CLAUDE_KEY));
    let r = assert_one_models_request(&api.take(), "claude");
    assert_eq!(r.header("x-api-key"), Some(CLAUDE_KEY), "{r:#?}");
    assert!(
        r.header("anthropic-version").is_some_and(|v| !v.is_empty()),
        "anthropic-version is required: {r:#?}"
    );
    assert_eq!(
        r.header("authorization"),
        None,
        "no Bearer for an API key: {r:#?}"
    );
    assert_stored(
        &home,
        "claude",
        "verified",
        &Expect {
            kind: "api_key",
            tier: "api",
            expires_at: None,
            redacted: "sk-ant-…1111",
            account_id: None,
            source: "stdin",
            secrets: &[CLAUDE_KEY],
        },
        "verify claude 200",
    );
    let (rows, text) = audit_rows(&home, "login");
    assert_eq!(rows.len(), 1, "{text}");
    assert!(!text.contains(CLAUDE_KEY));
    assert!(
        api.take().is_empty(),
        "nothing but the verification reached the API"
    );
}

#[test]
fn verify_sends_a_bearer_token_for_openai_and_stores_on_200() {
    let api = FakeApi::start();
    let home = Home::new();
    configure(&home, &api);
    api.answer(200);
    ok(
        run_with(
            &home,
            &[
                "login",
                "openai",
                "--account",
                "verified",
                "--api-key-stdin",
                "--verify",
            ],
            &[],
            OPENAI_KEY,
        ),
        "verify openai 200",
    );
    let r = assert_one_models_request(&api.take(), "openai");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str()),
        "{r:#?}"
    );
    assert_eq!(r.header("x-api-key"), None, "{r:#?}");
    assert_stored(
        &home,
        "openai",
        "verified",
        &Expect {
            kind: "api_key",
            tier: "api",
            expires_at: None,
            redacted: "sk-proj-…2222",
            account_id: None,
            source: "stdin",
            secrets: &[OPENAI_KEY],
        },
        "verify openai 200",
    );
}

#[test]
fn verify_refuses_a_401_with_exit_4_and_stores_nothing() {
    let api = FakeApi::start();
    let home = Home::new();
    configure(&home, &api);
    for (provider, key, status) in [
        ("claude", CLAUDE_KEY, 401),
        ("openai", OPENAI_KEY, 401),
        ("claude", CLAUDE_KEY, 403),
    ] {
        let what = format!("{provider} {status}");
        api.answer(status);
        let before = home.snapshot();
        let out = run_with(
            &home,
            &[
                "login",
                provider,
                "--account",
                "refused",
                "--api-key-stdin",
                "--verify",
            ],
            &[],
            key,
        );
        assert_refused(&out, AUTH, &[&status.to_string()], &what);
        assert!(
            !stderr(&out).contains(key),
            "{what}: the error shows the key"
        );
        assert_eq!(home.snapshot(), before, "{what}: the ledger changed");
        assert!(status_credential(&home, provider, "refused").is_none());
        let r = assert_one_models_request(&api.take(), &what);
        match provider {
            "claude" => assert_eq!(r.header("x-api-key"), Some(key)),
            _ => assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {key}").as_str())
            ),
        }
    }

    // A server error is neither acceptance nor refusal: exit 1 (other), nothing stored.
    api.answer(500);
    let before = home.snapshot();
    let out = run_with(
        &home,
        &[
            "login",
            "openai",
            "--account",
            "refused",
            "--api-key-stdin",
            "--verify",
        ],
        &[],
        OPENAI_KEY,
    );
    assert_refused(&out, 1, &["500"], "openai 500");
    assert!(!stderr(&out).contains(OPENAI_KEY));
    assert_eq!(home.snapshot(), before);
    assert_one_models_request(&api.take(), "openai 500");

    // A key of the wrong shape never reaches the network.
    let out = run_with(
        &home,
        &["login", "claude", "--api-key-stdin", "--verify"],
        &[],
        OPENAI_KEY,
    );
    assert_refused(&out, USAGE, &["sk-ant-"], "wrong prefix with --verify");
    assert!(api.take().is_empty(), "a malformed key was sent to the API");
}

#[test]
fn verify_never_follows_a_redirect_with_the_key() {
    let api = FakeApi::start();
    let elsewhere = FakeApi::start();
    let home = Home::new();
    configure(&home, &api);
    api.redirect_to(&format!("{}/v1/models", elsewhere.base_url()));
    for (provider, key) in [("claude", CLAUDE_KEY), ("openai", OPENAI_KEY)] {
        let what = format!("{provider} redirected");
        let before = home.snapshot();
        let out = run_with(
            &home,
            &[
                "login",
                provider,
                "--account",
                "redirected",
                "--api-key-stdin",
                "--verify",
            ],
            &[],
            key,
        );
        assert_refused(&out, 1, &["302"], &what);
        assert!(
            !stderr(&out).contains(key),
            "{what}: the error shows the key"
        );
        assert_eq!(home.snapshot(), before, "{what}: the ledger changed");
        assert_one_models_request(&api.take(), &what);
        assert!(
            elsewhere.take().is_empty(),
            "{what}: the key followed the redirect"
        );
    }
}

#[test]
fn verify_errors_name_the_url_asked_and_the_cause() {
    // A port nothing listens on: bound, then closed.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let home = Home::new();
    std::fs::write(
        home.path().join("config.toml"),
        format!("[providers.claude]\nbase_url = \"http://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let before = home.snapshot();
    let out = run_with(
        &home,
        &["login", "claude", "--api-key-stdin", "--verify"],
        &[],
        CLAUDE_KEY,
    );
    let url = format!("http://127.0.0.1:{port}/v1/models");
    assert_refused(
        &out,
        1,
        &[&format!(
            "cannot verify the key at {url}: connection refused"
        )],
        "closed port",
    );
    assert_eq!(home.snapshot(), before, "closed port: the ledger changed");

    let api = FakeApi::start();
    configure(&home, &api);
    api.answer(401);
    for (provider, key) in [("claude", CLAUDE_KEY), ("openai", OPENAI_KEY)] {
        let out = run_with(
            &home,
            &["login", provider, "--api-key-stdin", "--verify"],
            &[],
            key,
        );
        let url = format!("{}/v1/models", api.base_url());
        assert_refused(
            &out,
            AUTH,
            &[&format!(
                "cannot verify the key at {url}: 401 Unauthorized ({provider} refused it)"
            )],
            provider,
        );
        assert!(!stderr(&out).contains(key), "{provider}: the key is shown");
    }
    assert_eq!(home.snapshot(), before, "401: the ledger changed");
}

#[test]
fn an_unknown_config_key_is_refused_by_every_command_naming_the_key_and_line() {
    let home = Home::new();
    std::fs::write(
        home.path().join("config.toml"),
        "# authledger\n[providers.claude]\nbase_urll = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let before = home.snapshot();
    let export_dir = tempfile::tempdir().unwrap();
    let export_dir = export_dir.path().join("x");
    let commands: Vec<(Vec<&str>, &str)> = vec![
        (vec!["status"], ""),
        (vec!["--json", "status"], ""),
        (vec!["providers"], ""),
        (vec!["quota"], ""),
        (vec!["audit"], ""),
        (vec!["init"], ""),
        (vec!["lease", "list"], ""),
        (
            vec![
                "lease",
                "acquire",
                "--agent",
                "a",
                "--provider",
                "claude",
                "--tokens",
                "10",
            ],
            "",
        ),
        (vec!["logout", "claude"], ""),
        (
            vec![
                "export",
                "codex",
                "--codex-home",
                export_dir.to_str().unwrap(),
            ],
            "",
        ),
        (vec!["login", "claude", "--api-key-stdin"], CLAUDE_KEY),
        (
            vec!["login", "claude", "--api-key-stdin", "--verify"],
            CLAUDE_KEY,
        ),
    ];
    for (args, input) in &commands {
        let what = args.join(" ");
        let out = run_with(&home, args, &[], input);
        if args[0] == "--json" {
            assert_eq!(code(&out), USAGE, "{what}: {}", stderr(&out));
            assert!(out.stdout.is_empty(), "{what}");
            let err: Value = serde_json::from_str(stderr(&out).trim()).expect("json error");
            let msg = err["error"].as_str().unwrap();
            assert!(
                msg.contains("base_urll") && msg.contains("line 3"),
                "{what}: {msg}"
            );
            assert_eq!(err["exit_code"], USAGE);
        } else {
            assert_refused(&out, USAGE, &["base_urll", "line 3", "config.toml"], &what);
        }
        assert_eq!(home.snapshot(), before, "{what}: the ledger changed");
    }
    assert!(!export_dir.exists());
}

// ---------------------------------------------------------------------------------------------
// 5. logout
// ---------------------------------------------------------------------------------------------

fn acquire(home: &Home, provider: &str) -> String {
    let v = home.json(&[
        "lease",
        "acquire",
        "--agent",
        &format!("agent-{provider}"),
        "--provider",
        provider,
        "--tokens",
        "100",
    ]);
    v["lease_id"].as_str().expect("lease_id").to_string()
}

#[test]
fn logout_removes_the_credential_and_revokes_its_leases() {
    let home = Home::new();
    let claude_lease = acquire(&home, "claude");
    let openai_lease = acquire(&home, "openai");
    assert!(status_credential(&home, "claude", "default").is_some());

    let report = home.json(&["logout", "claude"]);
    assert_eq!(report["provider"], "claude");
    assert_eq!(report["account"], "default");
    assert_eq!(
        report["revoked"],
        serde_json::json!([claude_lease]),
        "{report}"
    );

    // The credential is gone; the other provider's is not.
    assert!(status_credential(&home, "claude", "default").is_none());
    assert!(status_credential(&home, "openai", "default").is_some());

    // The revoked lease is lost for its holder; the OpenAI lease lives on.
    let out = home.run_at(T0 + 1_000, &["lease", "renew", &claude_lease]);
    assert_refused(&out, DENIED, &["lost", &claude_lease], "renew after logout");
    let out = home.run_at(T0 + 1_000, &["lease", "renew", &openai_lease]);
    assert_eq!(
        code(&out),
        0,
        "the openai lease must survive: {}",
        stderr(&out)
    );

    // No new lease without a credential.
    let out = home.run(&[
        "lease",
        "acquire",
        "--agent",
        "late",
        "--provider",
        "claude",
        "--tokens",
        "10",
    ]);
    assert_refused(&out, AUTH, &["claude"], "acquire after logout");

    // Audited: one logout row, one revoke row for the lease.
    let (rows, text) = audit_rows(&home, "logout");
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["provider"], "claude");
    assert_eq!(rows[0]["detail"]["revoked"], 1, "{text}");
    let (rows, text) = audit_rows(&home, "revoke");
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["lease_id"], claude_lease.as_str(), "{text}");
    for s in ["sk-ant-oat01-FAKE", "sk-ant-ort01-FAKE"] {
        assert!(!text.contains(s));
    }

    // Logging out twice: nothing left to remove.
    let before = home.snapshot();
    let out = home.run(&["logout", "claude"]);
    assert_refused(&out, AUTH, &["claude"], "second logout");
    assert_eq!(home.snapshot(), before, "a refused logout writes nothing");
}

#[test]
fn regression_an_oauth_token_is_not_an_api_key_and_tiers_fit_their_provider() {
    let home = Home::new();
    let before = home.snapshot();
    let out = home
        .cmd()
        .env("ANTHROPIC_API_KEY", "sk-ant-oat01-looks-like-a-setup-token")
        .args(["login", "claude", "--account", "x", "--from", "env"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("OAuth token"), "{}", stderr(&out));
    let out = home
        .cmd()
        .env("ANTHROPIC_API_KEY", "sk-ant-api03-abcdefghijklmnop")
        .args([
            "login",
            "claude",
            "--account",
            "x",
            "--from",
            "env",
            "--tier",
            "chatgpt",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("no chatgpt tier"), "{}", stderr(&out));
    assert_eq!(before, home.snapshot());
}
