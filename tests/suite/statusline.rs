//! `authledger statusline`: the one line Claude Code's `statusLine` shows, from the JSON it
//! passes on stdin and the ledger read read-only; never a failure Claude Code would blank.

use std::process::Output;

use crate::common::{self, Home, T0, code, fixture, stderr, stdout};
use crate::prices::{TABLE, put_in_force, record};

const MINUTE: i64 = 60_000;

/// Runs `statusline` at `now` with `env` and `input` on stdin.
fn statusline(home: &Home, now: i64, env: &[(&str, &str)], input: &str) -> Output {
    common::with_stdin(
        home.cmd_at(now).envs(env.iter().copied()).arg("statusline"),
        input,
    )
}

/// Claude Code's sample object.
fn sample() -> String {
    std::fs::read_to_string(fixture("claude-code-statusline.json")).expect("sample")
}

/// A Claude lease of `tokens` for `agent`.
fn acquire(home: &Home, agent: &str, tokens: &str) -> String {
    let v = home.json(&[
        "lease",
        "acquire",
        "--agent",
        agent,
        "--provider",
        "claude",
        "--tokens",
        tokens,
    ]);
    v["lease_id"].as_str().expect("lease id").to_string()
}

/// A ledger with the hand-made price table, one lease of 100 000 tokens that used 36 000
/// (20 000 in, 4 000 out, 10 000 cache read, 2 000 cache write: $0.06 + $0.06 + $0.003 +
/// $0.0075 = $0.1305) and the provider's 5h window at 42 %.
fn ledger_with_usage() -> (Home, String) {
    let home = Home::new();
    put_in_force(&home, TABLE);
    let lease = acquire(&home, "coder", "100000");
    record(
        &home,
        &lease,
        "claude-test-1",
        ["20000", "4000", "10000", "2000"],
    );
    let reset = (T0 + 2 * 60 * MINUTE) / 1000;
    let out = home.run(&[
        "report",
        "claude",
        "--status",
        "200",
        "--header",
        "anthropic-ratelimit-unified-5h-utilization: 0.42",
        "--header",
        &format!("anthropic-ratelimit-unified-5h-reset: {reset}"),
    ]);
    assert_eq!(code(&out), 0, "report: {}", stderr(&out));
    (home, lease)
}

#[test]
fn statusline_shows_lease_left_window_provider_and_cost_from_a_claude_code_sample() {
    let (home, lease) = ledger_with_usage();
    let before = home.snapshot();
    let out = statusline(
        &home,
        T0 + 5 * MINUTE,
        &[("AUTHLEDGER_LEASE_ID", &lease)],
        &sample(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let line = stdout(&out);
    assert_eq!(line.lines().count(), 1, "{line:?}");
    assert!(line.trim_end().chars().count() <= 80, "{line:?}");
    // Hand-computed: 100 000 - 36 000 left; $0.1305 shown in cents.
    assert!(line.starts_with("Opus 4.1 │ lease 64.0k left │ "), "{line}");
    assert!(line.contains("│ 5h 42% │"), "{line}");
    assert!(line.trim_end().ends_with("│ $0.13"), "{line}");
    insta::with_settings!({prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_snapshot!("statusline", line);
    });
    // Read-only: nothing in the ledger changed.
    assert_eq!(home.snapshot(), before);
}

#[test]
fn statusline_without_a_lease_id_uses_the_only_active_claude_lease_and_never_guesses() {
    let (home, _) = ledger_with_usage();
    let one = stdout(&statusline(&home, T0, &[], &sample()));
    assert!(one.contains("lease 64.0k left"), "{one}");
    assert!(one.trim_end().ends_with("$0.13"), "{one}");
    acquire(&home, "reviewer", "1000");
    let two = stdout(&statusline(&home, T0, &[], &sample()));
    assert!(
        two.starts_with("Opus 4.1 │ 2 leases │ claude/default day "),
        "{two}"
    );
    assert!(!two.contains('$'), "no lease, no session cost: {two}");
}

#[test]
fn statusline_falls_back_to_a_short_line_and_exit_0() {
    // No ledger: said, and none is created.
    let empty = Home::empty();
    let out = statusline(&empty, T0, &[], &sample());
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        "Opus 4.1 │ authledger: no ledger (authledger init)\n"
    );
    assert_eq!(stderr(&out), "");
    assert!(!empty.db().exists(), "statusline created a ledger");

    let (home, lease) = ledger_with_usage();
    for input in ["", "not json", "[1, 2]", "{\"model\": "] {
        let out = statusline(&home, T0, &[("AUTHLEDGER_LEASE_ID", &lease)], input);
        assert_eq!(code(&out), 0, "{input:?}");
        assert_eq!(
            stdout(&out),
            "authledger: no session data on stdin\n",
            "{input:?}"
        );
        assert_eq!(stderr(&out), "", "{input:?}");
    }
    // A lease id that is not one, or names no lease: said in the line, still exit 0.
    for id in ["bogus", "lease-00000000000000000000"] {
        let out = statusline(&home, T0, &[("AUTHLEDGER_LEASE_ID", id)], &sample());
        assert_eq!(code(&out), 0);
        assert!(
            stdout(&out).starts_with("Opus 4.1 │ lease unknown │ claude/default day "),
            "{}",
            stdout(&out)
        );
    }
    // A database that is not one.
    let broken = Home::empty();
    std::fs::write(broken.db(), "not a database").unwrap();
    let out = statusline(&broken, T0, &[], "{}");
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "authledger: ledger unreadable\n");
    assert_eq!(stderr(&out), "");
}
