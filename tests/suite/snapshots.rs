//! Every command's output, human and `--json`, as committed snapshots on a pinned clock: a
//! change of output is a visible diff in `tests/suite/snapshots/`. Only what is random (lease
//! ids, key ids, MACs, temporary paths) is redacted; times are pinned and shown as printed.
//!
//! Regenerate after an intended change with `INSTA_UPDATE=always cargo test --test suite
//! snapshots` and review the diff; with `CI=true` a missing or different snapshot fails.

use std::process::Output;

use crate::common::daemon::Daemon;
use crate::common::{Home, T0, code, fixture, stderr, stdout};

const MINUTE: i64 = 60_000;

/// Escapes a literal for a regex filter.
fn literal(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let meta = "\\.+*?()|[]{}^$#&-~".contains(c);
            meta.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// Exit code, stdout and stderr of one run, as one snapshot text.
fn render(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        code(out),
        stdout(out),
        stderr(out)
    )
}

/// A ledger home with the filters that make its outputs stable across runs.
struct Snap {
    home: Home,
    settings: insta::Settings,
}

impl Snap {
    fn new(home: Home) -> Snap {
        let mut settings = insta::Settings::clone_current();
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        let path = home.path().to_str().expect("utf-8 temp path").to_string();
        for (pattern, replacement) in [
            (literal(&path), "[HOME]"),
            (r"lease-[0-9a-f]{20}".to_string(), "lease-[ID]"),
            (r"\b[0-9a-f]{64}\b".to_string(), "[MAC]"),
            (r"master-[0-9a-f]{16}".to_string(), "master-[KEY_ID]"),
            (
                r#""key_id": "[0-9a-f]{16}""#.to_string(),
                r#""key_id": "[KEY_ID]""#,
            ),
            (r"under key [0-9a-f]{16}".to_string(), "under key [KEY_ID]"),
            (
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".to_string(),
                "[UUID]",
            ),
            // Fixture secrets are fake, but a snapshot holding token-shaped strings would
            // teach readers to ignore secret scanners.
            (r"sk-ant-[A-Za-z0-9_-]{12,}".to_string(), "[SECRET]"),
            (r"sk-[A-Za-z0-9_-]{20,}".to_string(), "[SECRET]"),
            (
                r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*".to_string(),
                "[JWT]",
            ),
        ] {
            settings.add_filter(&pattern, replacement);
        }
        Snap { home, settings }
    }

    /// One more filter, for what only some outputs hold (a wall-clock time, a temp name).
    fn redact(mut self, pattern: &str, replacement: &str) -> Snap {
        self.settings.add_filter(pattern, replacement);
        self
    }

    /// Runs `args` at `now` and snapshots exit code, stdout and stderr under `name`.
    fn at(&self, now: i64, name: &str, args: &[&str]) -> Output {
        let out = self.home.run_at(now, args);
        self.record(name, &out);
        out
    }

    fn record(&self, name: &str, out: &Output) {
        assert_fits(name, &stdout(out));
        let text = render(out);
        self.settings
            .bind(|| insta::assert_snapshot!(name.to_string(), text));
    }

    /// The same command human (`name`) and with `--json` (`name_json`), at `now`; for
    /// commands that may run twice with the same effect.
    fn both(&self, now: i64, name: &str, args: &[&str]) {
        self.at(now, name, args);
        let mut json = vec!["--json"];
        json.extend_from_slice(args);
        self.at(now, &format!("{name}_json"), &json);
    }
}

/// Every line of human output fits 80 columns (pipes and tests get 80 columns).
fn assert_fits(name: &str, text: &str) {
    // JSON, `env`'s shell lines and a bare token are for machines, not people.
    if text.trim_start().starts_with(['{', '[']) || name.starts_with("env_") || name == "token" {
        return;
    }
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "{name}: a line of {} columns:\n{line}",
            line.chars().count()
        );
    }
}

fn json(out: &Output) -> serde_json::Value {
    assert_eq!(code(out), 0, "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("json stdout")
}

/// One ledger taken through every command: credentials imported from `fixtures/`, limits,
/// leases, usage, a denial, a bad input, a fallback, a cleanup, a key rotation.
#[test]
fn every_command_output_is_pinned() {
    let s = Snap::new(Home::empty());
    s.both(T0, "init", &["init"]);
    s.at(
        T0,
        "login_claude_code",
        &[
            "login",
            "claude",
            "--from",
            "claude-code",
            "--path",
            &fixture("claude-code-credentials.json"),
        ],
    );
    s.at(
        T0,
        "login_codex_json",
        &[
            "--json",
            "login",
            "openai",
            "--from",
            "codex",
            "--path",
            &fixture("codex-auth.chatgpt.json"),
        ],
    );
    s.both(
        T0,
        "limits_set",
        &[
            "limits",
            "set",
            "claude",
            "--daily-tokens",
            "100000",
            "--concurrent",
            "3",
            "--window-5h",
            "50000",
        ],
    );
    s.at(
        T0,
        "limits_set_openai_json",
        &[
            "--json",
            "limits",
            "set",
            "openai",
            "--daily-tokens",
            "80000",
            "--concurrent",
            "2",
            "--rpm",
            "60",
        ],
    );

    let out = s.at(
        T0,
        "lease_acquire",
        &[
            "lease",
            "acquire",
            "--agent",
            "alpha",
            "--provider",
            "claude",
            "--tokens",
            "20000",
        ],
    );
    let alpha = stdout(&out).split('\t').next().unwrap().to_string();
    let beta = json(&s.at(
        T0,
        "lease_acquire_json",
        &[
            "--json",
            "lease",
            "acquire",
            "--agent",
            "beta",
            "--provider",
            "openai",
            "--tokens",
            "10000",
            "--ttl",
            "10m",
        ],
    ))["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.both(T0 + MINUTE, "lease_renew", &["lease", "renew", &alpha]);
    s.at(
        T0 + MINUTE,
        "usage_record",
        &[
            "usage",
            "record",
            &alpha,
            "--input",
            "3000",
            "--output",
            "1000",
            "--key",
            "k1",
            "--model",
            "claude-sonnet-4-5",
        ],
    );
    s.at(
        T0 + MINUTE,
        "usage_record_json",
        &[
            "--json", "usage", "record", &beta, "--input", "500", "--output", "250", "--key", "k2",
        ],
    );

    // A denial and a bad input, each human and as the --json error object on stderr.
    s.both(
        T0 + MINUTE,
        "error_denied",
        &[
            "lease",
            "acquire",
            "--agent",
            "greedy",
            "--provider",
            "claude",
            "--tokens",
            "999999",
        ],
    );
    s.both(
        T0 + MINUTE,
        "error_bad_input",
        &["lease", "acquire", "--agent", "x", "--tokens", "-5"],
    );
    s.both(
        T0 + MINUTE,
        "error_unknown_lease",
        &["lease", "renew", "lease-00000000000000000000"],
    );

    // Claude rate-limited: `auto` falls back to OpenAI.
    s.both(
        T0 + MINUTE,
        "report",
        &[
            "report",
            "claude",
            "--status",
            "429",
            "--header",
            "retry-after: 600",
            "--header",
            "anthropic-ratelimit-unified-5h-utilization: 1.0",
            "--header",
            "anthropic-ratelimit-unified-5h-status: rejected",
            "--header",
            "anthropic-ratelimit-unified-5h-reset: 1795428660",
            "--header",
            "anthropic-ratelimit-unified-7d-utilization: 0.18",
            "--header",
            "anthropic-ratelimit-unified-7d-reset: 1795773600",
        ],
    );
    let gamma = json(&s.at(
        T0 + 2 * MINUTE,
        "lease_acquire_fallback_json",
        &[
            "--json", "lease", "acquire", "--agent", "gamma", "--tokens", "5000",
        ],
    ))["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.at(T0 + 2 * MINUTE, "switch", &["switch", "openai"]);
    s.at(
        T0 + 2 * MINUTE,
        "switch_json",
        &["--json", "switch", "auto"],
    );

    // Codex's own windows, as a ChatGPT-backend response reports them.
    let out = s.home.run_at(
        T0 + 2 * MINUTE,
        &[
            "report",
            "openai",
            "--status",
            "200",
            "--header",
            "x-codex-primary-used-percent: 12",
            "--header",
            "x-codex-primary-window-minutes: 300",
            "--header",
            "x-codex-primary-reset-at: 1795440000",
            "--header",
            "x-codex-secondary-used-percent: 31",
            "--header",
            "x-codex-secondary-window-minutes: 10080",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let now = T0 + 3 * MINUTE;
    s.both(now, "status", &["status"]);
    s.both(now, "providers", &["providers"]);
    s.both(now, "quota", &["quota"]);
    s.both(now, "lease_list", &["lease", "list"]);
    s.both(now, "limits_show", &["limits", "show"]);
    for by in ["agent", "provider", "day", "model"] {
        s.both(now, &format!("usage_by_{by}"), &["usage", "--by", by]);
    }
    for by in ["model", "session"] {
        s.both(
            now,
            &format!("usage_by_{by}_cost"),
            &["usage", "--by", by, "--cost"],
        );
    }
    s.both(
        now,
        "prices_show_model",
        &["prices", "show", "--model", "claude-sonnet-4-5-20250929"],
    );
    for format in ["shell", "json", "dotenv"] {
        s.at(
            now,
            &format!("env_{format}"),
            &["env", &alpha, "--format", format],
        );
    }
    s.both(now, "token", &["token", "claude"]);
    let codex = |dir: &str| s.home.path().join(dir).to_str().unwrap().to_string();
    s.at(
        now,
        "export_codex",
        &["export", "codex", "--codex-home", &codex("codex-a")],
    );
    s.at(
        now,
        "export_codex_json",
        &[
            "--json",
            "export",
            "codex",
            "--codex-home",
            &codex("codex-b"),
        ],
    );
    s.at(now, "lease_release", &["lease", "release", &alpha]);
    s.at(
        now,
        "lease_release_json",
        &["--json", "lease", "release", &gamma],
    );
    // `run` says on stderr which lease its agent runs under.
    s.at(
        now,
        "run_json",
        &[
            "--json",
            "run",
            "--agent",
            "runner",
            "--provider",
            "openai",
            "--tokens",
            "100",
            "--",
            "true",
        ],
    );

    // beta (TTL 10 min, never renewed) has expired by now.
    s.at(T0 + 20 * MINUTE, "cleanup_json", &["--json", "cleanup"]);
    s.at(T0 + 20 * MINUTE, "cleanup", &["cleanup"]);
    let later = T0 + 21 * MINUTE;
    s.both(later, "lease_list_all", &["lease", "list", "--all"]);
    s.both(later, "audit", &["audit"]);
    s.both(later, "audit_verify", &["audit", "verify"]);
    s.both(later, "audit_anchor", &["audit", "anchor"]);
    s.at(later, "key_rotate", &["key", "rotate"]);
    s.at(later, "key_rotate_json", &["--json", "key", "rotate"]);
    // Its table is padded to the home's path, whose length depends on the temporary directory.
    let s = s.redact(r"(\S) {2,}", "$1  ");
    s.both(later, "doctor", &["doctor"]);
}

/// Each way of storing a credential confirms what it stored (redacted), and logout says what
/// it revoked.
#[test]
fn login_confirmations_are_pinned() {
    let s = Snap::new(Home::empty());
    s.at(
        T0,
        "login_opencode",
        &[
            "login",
            "claude",
            "--from",
            "opencode",
            "--path",
            &fixture("opencode-auth.json"),
        ],
    );
    s.at(
        T0,
        "login_opencode_json",
        &[
            "--json",
            "login",
            "openai",
            "--from",
            "opencode",
            "--path",
            &fixture("opencode-auth.json"),
        ],
    );
    let key = "sk-ant-api03-snapshotsnapshotsnapshotsnapshot";
    let out = s.home.run_stdin(
        &["login", "claude", "--account", "key", "--api-key-stdin"],
        key,
    );
    s.record("login_api_key_stdin", &out);
    let token = "sk-ant-oat01-snapshotsnapshotsnapshotsnapshot";
    let out = s.home.run_stdin(
        &[
            "--json",
            "login",
            "claude",
            "--account",
            "setup",
            "--setup-token",
        ],
        token,
    );
    s.record("login_setup_token_json", &out);
    let out = s
        .home
        .cmd_at(T0)
        .env("OPENAI_API_KEY", "sk-proj-snapshotsnapshotsnapshotsnapshot")
        .args(["login", "openai", "--account", "env", "--from", "env"])
        .output()
        .expect("run authledger");
    s.record("login_env", &out);
    let acquired = s.home.run(&[
        "lease",
        "acquire",
        "--agent",
        "a",
        "--provider",
        "claude",
        "--account",
        "key",
    ]);
    assert_eq!(code(&acquired), 0, "{}", stderr(&acquired));
    s.at(T0, "logout", &["logout", "claude", "--account", "key"]);
    s.at(
        T0,
        "logout_json",
        &["--json", "logout", "claude", "--account", "setup"],
    );
}

/// The demo's tour, on the pinned clock (it starts at 09:00 of the pinned day); only its
/// temporary directory, lease ids and the random tail of its fake keys are redacted.
#[test]
fn demo_output_is_pinned() {
    let s = Snap::new(Home::empty())
        .redact(
            r"authledger-demo-[A-Za-z0-9]{6}",
            "authledger-demo-[RANDOM]",
        )
        .redact(r"…[0-9a-f]{4}\b", "…[TAIL]")
        .redact(r"alt-[A-Za-z0-9_-]{4}…", "alt-[TOKEN]…");
    let out = s
        .home
        .cmd_at(T0)
        .env("TMPDIR", s.home.path())
        .arg("demo")
        .output()
        .expect("run authledger");
    s.record("demo", &out);
}

/// The daemon's human lines: where it serves, its first cleanup pass, and what it served when
/// SIGTERM stops it. It runs on the wall clock, so its times are redacted.
#[test]
fn daemon_output_is_pinned() {
    let s =
        Snap::new(Home::new()).redact(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z", "[TIME]");
    let mut daemon = Daemon::start(&s.home, &[]);
    // The first pass runs at start; waiting for it keeps the lines in one order.
    let cleanup = daemon.wait_for("cleanup");
    let acquired = s
        .home
        .cmd_wall()
        .args(["lease", "acquire", "--agent", "a", "--provider", "claude"])
        .output()
        .expect("run authledger");
    assert_eq!(code(&acquired), 0, "{}", stderr(&acquired));
    let lease = stdout(&acquired).split('\t').next().unwrap().to_string();
    let released = s
        .home
        .cmd_wall()
        .args(["lease", "release", &lease])
        .output()
        .expect("run authledger");
    assert_eq!(code(&released), 0, "{}", stderr(&released));
    let started = daemon.started.clone();
    let stopped = daemon.stop_line();
    let text = format!("{started}\n{cleanup}\n{stopped}\n");
    s.settings.bind(|| insta::assert_snapshot!("daemon", text));
}

/// A refusal the quota itself makes after selection chose the account (the minute's request
/// budget is spent, which selection does not weigh): `--json` carries the `denial` object.
#[test]
fn quota_denial_error_is_pinned() {
    let s = Snap::new(Home::new());
    let out = s
        .home
        .run(&["limits", "set", "claude", "--rpm", "1", "--concurrent", "3"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = s.home.run(&[
        "lease",
        "acquire",
        "--agent",
        "a",
        "--provider",
        "claude",
        "--tokens",
        "100",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lease = stdout(&out).split('\t').next().unwrap().to_string();
    let out = s
        .home
        .run(&["usage", "record", &lease, "--input", "10", "--output", "5"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    s.both(
        T0,
        "error_denied_quota",
        &[
            "lease",
            "acquire",
            "--agent",
            "b",
            "--provider",
            "claude",
            "--tokens",
            "50",
        ],
    );
    let out = s.home.run(&[
        "--json",
        "lease",
        "acquire",
        "--agent",
        "b",
        "--provider",
        "claude",
    ]);
    let error: serde_json::Value = serde_json::from_str(stderr(&out).trim()).expect("json error");
    assert_eq!(
        error["denial"]["reason"]["limit"], "requests_per_minute",
        "{error}"
    );
}
