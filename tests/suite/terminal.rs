//! What a person at a terminal sees, through a pseudo-terminal: tables within the width,
//! colour unless `NO_COLOR`, bars only where they fit, a pager for a long audit trail; and
//! what a pipe gets (80 columns, no colour, no pager, unless `COLUMNS` says otherwise).

use crate::common::{Home, T0, code, stderr, stdout};

/// The text less its colour codes.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn assert_within(text: &str, width: usize, what: &str) {
    for line in plain(text).lines() {
        assert!(
            line.chars().count() <= width,
            "{what}: {} columns > {width}:\n{line}",
            line.chars().count()
        );
    }
}

/// A ledger with leases, usage and a denial, so every table has rows.
fn busy_home() -> Home {
    let home = Home::new();
    for (agent, provider) in [("alpha-agent", "claude"), ("beta-agent", "openai")] {
        let out = home.run(&[
            "lease",
            "acquire",
            "--agent",
            agent,
            "--provider",
            provider,
            "--tokens",
            "1000",
        ]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let out = home.run(&[
        "lease",
        "acquire",
        "--agent",
        "greedy",
        "--provider",
        "claude",
        "--tokens",
        "999999999",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    home
}

const TABLES: [&[&str]; 8] = [
    &["status"],
    &["providers"],
    &["quota"],
    &["lease", "list", "--all"],
    &["audit"],
    &["doctor"],
    &["usage", "--by", "agent"],
    &["limits", "show"],
];

#[test]
fn every_table_fits_80_columns_in_a_terminal_and_in_a_pipe() {
    let home = busy_home();
    for args in TABLES {
        let (text, status) = home.run_in_terminal(T0, &[("COLUMNS", "80")], args);
        assert_eq!(status, 0, "{args:?}: {text}");
        assert_within(&text, 80, &format!("{args:?} in a terminal"));
        let out = home.run(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert_within(&stdout(&out), 80, &format!("{args:?} in a pipe"));
    }
}

#[test]
fn a_wide_screen_keeps_the_columns_a_narrow_one_drops() {
    let home = busy_home();
    let narrow = stdout(&home.run(&["status"]));
    assert!(!narrow.contains("TIER"), "{narrow}");
    let wide = stdout(
        &home
            .cmd()
            .env("COLUMNS", "200")
            .arg("status")
            .output()
            .unwrap(),
    );
    assert!(
        wide.contains("TIER") && wide.contains("LAST USED"),
        "{wide}"
    );
    assert_within(&wide, 200, "status at 200");
}

#[test]
fn quota_bars_show_only_in_a_terminal_wide_enough() {
    let home = busy_home();
    let (wide, _) = home.run_in_terminal(T0, &[("COLUMNS", "140")], &["quota"]);
    assert!(wide.contains("[#") || wide.contains("[-"), "{wide}");
    let (narrow, _) = home.run_in_terminal(T0, &[("COLUMNS", "80")], &["quota"]);
    assert!(!narrow.contains("[-") && !narrow.contains("[#"), "{narrow}");
    let piped = stdout(
        &home
            .cmd()
            .env("COLUMNS", "140")
            .arg("quota")
            .output()
            .unwrap(),
    );
    assert!(!piped.contains("[-") && !piped.contains("[#"), "{piped}");
}

#[test]
fn colour_in_a_terminal_but_not_with_no_color_or_in_a_pipe() {
    let home = busy_home();
    let (coloured, _) = home.run_in_terminal(T0, &[], &["providers"]);
    assert!(
        coloured.contains("\u{1b}["),
        "no colour in a terminal: {coloured:?}"
    );
    let (plain_text, _) = home.run_in_terminal(T0, &[("NO_COLOR", "1")], &["providers"]);
    assert!(
        !plain_text.contains("\u{1b}["),
        "colour despite NO_COLOR: {plain_text:?}"
    );
    let piped = stdout(&home.run(&["providers"]));
    assert!(!piped.contains('\u{1b}'), "colour in a pipe: {piped:?}");
}

#[test]
fn a_long_audit_goes_through_the_pager_in_a_terminal_only() {
    use std::os::unix::fs::PermissionsExt;
    let home = busy_home();
    let pager = home.path().join("pager");
    let seen = home.path().join("paged.txt");
    std::fs::write(&pager, format!("#!/bin/sh\ncat > '{}'\n", seen.display())).unwrap();
    std::fs::set_permissions(&pager, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pager = pager.to_str().unwrap();

    // A short screen: the trail is taller than it.
    let (text, status) = home.run_in_terminal(T0, &[("PAGER", pager), ("LINES", "5")], &["audit"]);
    assert_eq!(status, 0, "{text}");
    let paged = std::fs::read_to_string(&seen).expect("the pager ran");
    assert!(
        paged.contains("ACTION") && paged.contains("greedy"),
        "{paged}"
    );
    assert!(
        !text.contains("ACTION"),
        "printed besides the pager: {text}"
    );
    std::fs::remove_file(&seen).unwrap();

    // A pipe, or a trail that fits the screen, is printed as it is.
    let out = home
        .cmd()
        .env("PAGER", pager)
        .env("LINES", "5")
        .arg("audit")
        .output()
        .unwrap();
    assert!(stdout(&out).contains("ACTION"));
    let (text, _) = home.run_in_terminal(T0, &[("PAGER", pager), ("LINES", "200")], &["audit"]);
    assert!(text.contains("ACTION"), "{text}");
    assert!(!seen.exists(), "paged anyway");
}

#[test]
fn times_are_relative_for_people_and_exact_in_json() {
    let home = busy_home();
    let list = stdout(&home.run(&["lease", "list"]));
    assert!(list.contains("in 2h"), "{list}");
    let json = home.json(&["lease", "list"]);
    assert_eq!(json[0]["expires_at"], "2026-11-23T12:00:00.000Z", "{json}");
    let audit = stdout(
        &home
            .cmd()
            .env("COLUMNS", "120")
            .args(["audit", "--action", "acquire"])
            .output()
            .unwrap(),
    );
    assert!(
        audit.contains("asked 1000 → granted 1000, expires 12:00"),
        "{audit}"
    );
}

/// A CLI in a pseudo-terminal that a test types into: what it printed so far is read up to a
/// needle, and a watchdog kills it (so a test fails, not hangs) if it never ends.
struct Typing {
    child: std::process::Child,
    out: std::process::ChildStdout,
    text: Vec<u8>,
    done: std::sync::mpsc::Sender<()>,
}

impl Typing {
    fn start(home: &Home, env: &[(&str, &str)], args: &[&str]) -> Typing {
        Typing::spawn(home.terminal(Some(T0), env, args))
    }

    fn spawn(mut command: std::process::Command) -> Typing {
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let pid = child.id() as i32;
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                wait.recv_timeout(std::time::Duration::from_secs(60))
            {
                // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Typing {
            child,
            out,
            text: Vec::new(),
            done,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text).replace('\r', "")
    }

    /// Reads until `needle` shows (bounded by the bytes written, not by time).
    fn read_until(&mut self, needle: &str) -> String {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while !self.text().contains(needle) {
            let n = self.out.read(&mut buf).unwrap_or(0);
            assert!(n > 0, "ended before {needle:?}: {:?}", self.text());
            self.text.extend_from_slice(&buf[..n]);
        }
        self.text()
    }

    fn type_text(&mut self, keys: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(keys.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Everything printed, and the exit code, once it ends.
    fn finish(mut self) -> (String, Option<i32>) {
        use std::io::Read;
        let _ = self.out.read_to_end(&mut self.text);
        let status = self.child.wait().unwrap();
        let _ = self.done.send(());
        (self.text(), status.code())
    }
}

/// The `credential` object of `status --json` for `provider/account`.
fn stored(home: &Home, provider: &str, account: &str) -> serde_json::Value {
    let status = home.json(&["status"]);
    status
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == provider && r["account"] == account)
        .map(|r| r["credential"].clone())
        .unwrap_or_default()
}

#[test]
fn an_api_key_typed_at_a_terminal_is_not_echoed_and_ends_at_enter() {
    const KEY: &str = "sk-ant-api03-TYPEDSECRET-abcdefghijkl-9876";
    let home = Home::new();
    let mut t = Typing::start(
        &home,
        &[],
        &["login", "claude", "--account", "typed", "--api-key-stdin"],
    );
    // The echo is off before the prompt shows: nothing typed after it is echoed.
    t.read_until("API key: ");
    // Enter (a terminal sends CR) ends the key; stdin stays open.
    t.type_text(&format!("{KEY}\r"));
    let (text, status) = t.finish();
    assert_eq!(status, Some(0), "{text:?}");
    assert!(
        !text.contains("TYPEDSECRET"),
        "the key was echoed: {text:?}"
    );
    assert!(text.contains("stored claude/typed"), "{text:?}");
    let c = stored(&home, "claude", "typed");
    assert_eq!(c["kind"], "api_key", "{c}");
    assert_eq!(c["redacted"], "sk-ant-…9876", "{c}");
}

/// Ctrl-C at a hidden prompt leaves the terminal as it found it: echo back on (the shell
/// around the command prints the terminal's settings once it was interrupted).
#[test]
fn ctrl_c_at_a_hidden_prompt_turns_the_echo_back_on() {
    let home = Home::new();
    let mut t = Typing::spawn(home.terminal_with(
        "trap 'stty -a; exit 130' INT; ",
        Some(T0),
        &[],
        &["login", "claude", "--account", "typed", "--api-key-stdin"],
    ));
    t.read_until("API key: ");
    t.type_text("sk-ant-half-typed\x03");
    let (text, status) = t.finish();
    assert_eq!(status, Some(130), "{text:?}");
    let settings: Vec<&str> = text
        .split_once("API key: ")
        .map_or("", |(_, after)| after)
        .split_whitespace()
        .collect();
    assert!(
        settings.contains(&"icanon"),
        "no settings printed: {text:?}"
    );
    assert!(settings.contains(&"echo"), "echo left off: {text:?}");
    assert!(settings.contains(&"-echonl"), "echonl left on: {text:?}");
    assert!(!text.contains("half-typed"), "echoed: {text:?}");
    assert!(
        home.json(&["status"])
            .as_array()
            .is_some_and(|rows| rows.iter().all(|r| r["account"] != "typed"))
    );
}

#[test]
fn interactive_login_offers_the_subscription_before_an_api_key() {
    let home = Home::new();
    let claude_dir = home.path().join("claude-config");
    std::fs::create_dir(&claude_dir).unwrap();
    std::fs::copy(
        crate::common::fixture("claude-code-credentials.json"),
        claude_dir.join(".credentials.json"),
    )
    .unwrap();
    let mut t = Typing::start(
        &home,
        &[("CLAUDE_CONFIG_DIR", claude_dir.to_str().unwrap())],
        &["login", "claude", "--account", "sub"],
    );
    let menu = t.read_until("Choose");
    let at = |needle: &str| {
        menu.find(needle)
            .unwrap_or_else(|| panic!("{needle} not offered: {menu}"))
    };
    assert!(
        at("--from claude-code") < at("--setup-token") && at("--setup-token") < at("API key"),
        "subscription paths first: {menu}"
    );
    assert_within(&menu, 80, "the login menu");
    t.type_text("1\r");
    let (text, status) = t.finish();
    assert_eq!(status, Some(0), "{text:?}");
    assert_eq!(stored(&home, "claude", "sub")["source"], "claude-code");

    let codex_dir = home.path().join("codex-home");
    std::fs::create_dir(&codex_dir).unwrap();
    std::fs::copy(
        crate::common::fixture("codex-auth.chatgpt.json"),
        codex_dir.join("auth.json"),
    )
    .unwrap();
    let mut t = Typing::start(
        &home,
        &[("CODEX_HOME", codex_dir.to_str().unwrap())],
        &["login", "openai", "--account", "sub"],
    );
    let menu = t.read_until("Choose");
    assert!(
        menu.find("--from codex").expect(&menu) < menu.find("API key").expect(&menu),
        "{menu}"
    );
    // Enter alone takes the first: the subscription.
    t.type_text("\r");
    let (text, status) = t.finish();
    assert_eq!(status, Some(0), "{text:?}");
    assert_eq!(stored(&home, "openai", "sub")["source"], "codex");
}

#[test]
fn a_setup_token_chosen_at_the_terminal_is_read_without_echo() {
    const TOKEN: &str = "sk-ant-oat01-SETUPSECRET-abcdefghijkl-5555";
    let home = Home::new();
    let mut t = Typing::start(&home, &[], &["login", "claude", "--account", "setup"]);
    t.read_until("Choose");
    t.type_text("2\r");
    t.read_until("setup token: ");
    t.type_text(&format!("{TOKEN}\r"));
    let (text, status) = t.finish();
    assert_eq!(status, Some(0), "{text:?}");
    assert!(!text.contains("SETUPSECRET"), "echoed: {text:?}");
    assert_eq!(stored(&home, "claude", "setup")["source"], "setup-token");
}

#[test]
fn providers_and_fallbacks_show_local_times_for_people_and_exact_ones_in_json() {
    let home = Home::new();
    for args in [
        &["limits", "set", "claude", "--daily-tokens", "1000"][..],
        &[
            "lease",
            "acquire",
            "--agent",
            "spender",
            "--provider",
            "claude",
            "--tokens",
            "1000",
        ],
    ] {
        let out = home.run(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    }
    // The day window resets at midnight UTC (the tests' local zone).
    const EXACT: &str = "2026-11-24T00:00:00Z";
    let json = home.json(&["providers"]);
    assert!(json.to_string().contains(EXACT), "{json}");

    let out = home.run(&[
        "lease",
        "acquire",
        "--agent",
        "moved",
        "--provider",
        "auto",
        "--tokens",
        "10",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let acquired = stdout(&out);
    let audit = stdout(
        &home
            .cmd()
            .env("COLUMNS", "80")
            .args(["audit", "--action", "fallback"])
            .output()
            .unwrap(),
    );
    let providers = stdout(&home.run(&["providers"]));
    let quota = stdout(&home.run(&["quota"]));
    let (in_terminal, _) = home.run_in_terminal(T0, &[("COLUMNS", "80")], &["providers"]);
    for (what, text) in [
        ("providers", &providers),
        ("providers in a terminal", &plain(&in_terminal)),
        ("quota's recommendation", &quota),
        ("lease acquire", &acquired),
        ("audit fallback", &audit),
    ] {
        assert!(!text.contains("2026-11-"), "{what}: a raw time: {text}");
        assert!(text.contains("resets at 11-24 00:00"), "{what}: {text}");
        assert_within(text, 80, what);
    }
}

#[test]
fn a_refusal_says_its_times_for_people_and_exactly_in_json() {
    let home = Home::new();
    for args in [
        &["limits", "set", "claude", "--concurrent", "1"][..],
        &["limits", "set", "openai", "--concurrent", "0"],
        &[
            "lease",
            "acquire",
            "--agent",
            "holder",
            "--provider",
            "claude",
            "--tokens",
            "10",
        ],
    ] {
        let out = home.run(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    }
    let refused = [
        "lease",
        "acquire",
        "--agent",
        "late",
        "--provider",
        "claude",
    ];
    let out = home.run(&refused);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let said = stderr(&out);
    assert!(!said.contains("2026-11-"), "a raw time for people: {said}");
    assert!(said.contains("a slot frees by "), "{said}");
    let mut json = refused.to_vec();
    json.insert(0, "--json");
    let out = home.run(&json);
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains("a slot frees by 2026-11-"),
        "{}",
        stderr(&out)
    );
}
