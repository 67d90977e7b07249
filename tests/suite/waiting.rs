//! `--wait`: it waits the whole time asked (the last try is at the deadline), refuses at once
//! what no wait could grant, and in a terminal shows a spinner that says what it waits for and
//! since when, and is cleared on Ctrl-C. Timing is read off the pinned clock, which a wait's
//! pauses move by exactly their length: the assertions are on audited times, not on sleeps.

use std::io::{Read, Write};

use crate::common::{Home, T0, audit_rows, code, stderr};

/// A ledger whose Claude account has one slot, taken by `holder`.
fn busy_home(now: Option<i64>) -> Home {
    let home = Home::new();
    let run = |args: &[&str]| {
        let mut c = match now {
            Some(t) => home.cmd_at(t),
            None => home.cmd_wall(),
        };
        let out = c.args(args).output().unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    };
    run(&[
        "limits",
        "set",
        "claude",
        "--concurrent",
        "1",
        "--daily-tokens",
        "100000",
    ]);
    run(&[
        "lease",
        "acquire",
        "--agent",
        "holder",
        "--provider",
        "claude",
        "--tokens",
        "10",
    ]);
    home
}

const WAITER: [&str; 8] = [
    "lease",
    "acquire",
    "--agent",
    "waiter",
    "--provider",
    "claude",
    "--tokens",
    "100",
];

#[test]
fn wait_tries_until_the_whole_time_asked_has_passed() {
    let home = busy_home(Some(T0));
    let mut args = WAITER.to_vec();
    args.extend(["--wait", "2s"]);
    let out = home.run_at(T0, &args);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // Only the last refusal is audited, and it is at the deadline (the pinned clock moves by
    // each pause), not 1.5 s in as when a try was skipped if the next pause would overrun.
    let denials = audit_rows(&home, T0, "deny");
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(denials[0]["at_ms"], T0 + 2_000, "{denials:?}");
}

#[test]
fn wait_refuses_at_once_what_can_never_be_granted() {
    let home = busy_home(Some(T0));
    // More than the whole day's budget: no wait can help.
    let out = home.run_at(
        T0,
        &[
            "lease",
            "acquire",
            "--agent",
            "greedy",
            "--provider",
            "claude",
            "--tokens",
            "200000",
            "--wait",
            "1h",
        ],
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let denials = audit_rows(&home, T0, "deny");
    assert_eq!(denials.len(), 1, "{denials:?}");
    assert_eq!(
        denials[0]["at_ms"], T0,
        "waited for the impossible: {denials:?}"
    );
}

#[test]
fn the_spinner_says_what_it_waits_for_and_clears_when_done() {
    let home = busy_home(None);
    let mut args = WAITER.to_vec();
    args.extend(["--wait", "1s"]);
    let out = home
        .terminal(None, &[], &args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(code(&out), 3, "{text}");
    let at = text
        .rfind("waiting for 100 tokens on claude since ")
        .expect(&text);
    assert!(
        text[at..].contains("\u{1b}[2K"),
        "spinner not cleared: {text:?}"
    );
}

#[test]
fn ctrl_c_while_waiting_clears_the_spinner_and_exits_130() {
    let home = busy_home(None);
    let mut args = WAITER.to_vec();
    args.extend(["--wait", "10m"]);
    let mut child = home
        .terminal(None, &[], &args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the spinner shows (bounded by the bytes it writes, not by time).
    while !String::from_utf8_lossy(&text).contains("waiting for") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "ended before waiting: {}",
            String::from_utf8_lossy(&text)
        );
        text.extend_from_slice(&buf[..n]);
    }
    child.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    stdout.read_to_end(&mut text).unwrap();
    let status = child.wait().unwrap();
    let text = String::from_utf8_lossy(&text).to_string();
    assert_eq!(status.code(), Some(130), "{text:?}");
    let at = text.rfind("waiting for").unwrap();
    assert!(
        text[at..].contains("\u{1b}[2K"),
        "spinner left on screen: {text:?}"
    );
    assert!(text.contains("interrupted"), "{text:?}");
    // Nothing acquired.
    let leases = home.json(&["lease", "list"]);
    assert_eq!(leases.as_array().unwrap().len(), 1, "{leases}");
}

#[test]
fn run_of_a_missing_command_exits_127_and_releases_its_lease() {
    let home = Home::new();
    for extra in [&["--no-meter"][..], &[][..]] {
        let mut args = vec![
            "run",
            "--agent",
            "typo",
            "--provider",
            "claude",
            "--tokens",
            "100",
        ];
        args.extend_from_slice(extra);
        args.extend(["--", "/nonexistent/claude-codex"]);
        let out = home.run(&args);
        assert_eq!(code(&out), 127, "{extra:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("command not found"),
            "{}",
            stderr(&out)
        );
        let leases = home.json(&["lease", "list"]);
        assert_eq!(leases.as_array().unwrap().len(), 0, "{extra:?}: {leases}");
    }
}
