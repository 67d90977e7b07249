//! `authledger top`: the model gathered from a ledger with leases, usage, a denial, a top-up
//! and a provider report, drawn on ratatui's test backend at 80 and 120 columns, the burn rate
//! and run-out against hand-computed figures, and `top --once` through the CLI.

use authledger::cli::top::{self, TopModel, model::RunOut, render};
use authledger::prices::PriceTable;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use crate::common::{Home, T0, code, home_ledger, stderr, stdout};

const MIN: i64 = 60_000;

fn ok(home: &Home, at: i64, args: &[&str]) -> String {
    let out = home.run_at(at, args);
    assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn lease(home: &Home, at: i64, agent: &str, provider: &str, tokens: &str) -> String {
    let out = home.run_at(
        at,
        &[
            "--json",
            "lease",
            "acquire",
            "--agent",
            agent,
            "--provider",
            provider,
            "--tokens",
            tokens,
        ],
    );
    assert_eq!(code(&out), 0, "acquire: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    v["lease_id"].as_str().expect("lease_id").to_string()
}

/// A ledger seen at T0: Claude (200 000 a day, 50 000 per 5 h) with a reviewer's lease that
/// used 1 000 tokens 20 minutes ago (before the burn span) and 7 500 ten minutes ago
/// (inside it), then a top-up; a coder on OpenAI with 3 000; a denial of an impossible ask;
/// the provider saying the Claude 5-hour window is 42 % used.
fn busy_home() -> Home {
    let home = Home::new();
    ok(
        &home,
        T0 - 30 * MIN,
        &[
            "limits",
            "set",
            "claude",
            "--daily-tokens",
            "200000",
            "--window-5h",
            "50000",
            "--concurrent",
            "4",
        ],
    );
    let rev = lease(&home, T0 - 20 * MIN, "reviewer", "claude", "20000");
    ok(
        &home,
        T0 - 20 * MIN,
        &[
            "usage", "record", &rev, "--input", "800", "--output", "200", "--key", "r1",
        ],
    );
    ok(
        &home,
        T0 - 10 * MIN,
        &[
            "usage",
            "record",
            &rev,
            "--input",
            "6000",
            "--output",
            "1500",
            "--model",
            "claude-sonnet-4-5",
            "--key",
            "r2",
        ],
    );
    let coder = lease(&home, T0 - 5 * MIN, "coder", "openai", "10000");
    ok(
        &home,
        T0 - 4 * MIN,
        &[
            "usage", "record", &coder, "--input", "2500", "--output", "500", "--key", "c1",
        ],
    );
    let denied = home.run_at(
        T0 - 2 * MIN,
        &[
            "lease",
            "acquire",
            "--agent",
            "greedy",
            "--provider",
            "claude",
            "--tokens",
            "900000",
        ],
    );
    assert_eq!(code(&denied), 3, "the ask is denied: {}", stderr(&denied));
    let ledger = home_ledger(&home, T0 - MIN);
    ledger
        .top_up(&authledger::LeaseId::parse(&rev).expect("id"), 5000)
        .expect("top up");
    ok(
        &home,
        T0 - MIN,
        &[
            "report",
            "claude",
            "--status",
            "200",
            "--header",
            "anthropic-ratelimit-unified-5h-utilization: 0.42",
            "--header",
            "anthropic-ratelimit-unified-5h-reset: 1795440000",
        ],
    );
    home
}

fn model_of(home: &Home) -> TopModel {
    let ledger = home_ledger(home, T0);
    let prices = PriceTable::builtin().expect("built-in prices");
    top::gather(&ledger, &prices).expect("gather")
}

fn drawn(model: &TopModel, width: u16) -> String {
    let mut terminal =
        Terminal::new(TestBackend::new(width, render::height(model))).expect("test terminal");
    terminal
        .draw(|f| render::render(model, f, false))
        .expect("draw");
    render::lines(terminal.backend().buffer())
}

fn snap(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

#[test]
fn top_draws_windows_leases_burn_and_events_at_80_and_120_columns() {
    let home = busy_home();
    let model = model_of(&home);
    let narrow = drawn(&model, 80);
    let wide = drawn(&model, 120);
    for line in narrow.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
    // What the narrow view drops, the wide one shows.
    assert!(!narrow.contains("resets") && wide.contains("resets"));
    snap("top_80", &narrow);
    snap("top_120", &wide);
}

#[test]
fn burn_rate_and_run_out_match_hand_computed_figures() {
    let model = model_of(&busy_home());
    let claude = &model.accounts[0];
    assert_eq!(claude.label, "claude/default");
    // 7 500 tokens in the last 15 minutes (the 1 000 of 20 minutes ago are older): 500/min.
    assert_eq!(claude.burn_per_min, 500.0);
    let day = &claude.windows[0];
    assert_eq!(
        (day.name, day.used, day.limit),
        ("day", 8_500, Some(200_000))
    );
    // 191 500 left at 500/min: 383 minutes.
    assert_eq!(day.runs_out, RunOut::At(T0 + 383 * MIN));
    let five = claude
        .windows
        .iter()
        .find(|w| w.name == "5h")
        .expect("5h window");
    // 41 500 left at 500/min: 83 minutes; the provider's 42 % beside it.
    assert_eq!(five.runs_out, RunOut::At(T0 + 83 * MIN));
    assert_eq!(five.provider_percent, Some(42.0));
    let openai = &model.accounts[1];
    // 3 000 tokens in 15 minutes: 200/min.
    assert_eq!(openai.burn_per_min, 200.0);
    let reviewer = model
        .leases
        .iter()
        .find(|l| l.agent == "reviewer")
        .expect("reviewer lease");
    assert_eq!(
        (reviewer.used, reviewer.allocated, reviewer.requests),
        (8_500, 25_000, 2)
    );
    let actions: Vec<&str> = model.events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["topup", "deny"]);
}

#[test]
fn top_once_prints_one_plain_frame_and_exits() {
    let home = busy_home();
    let before = home.snapshot();
    let out = home
        .cmd_at(T0)
        .env("COLUMNS", "80")
        .args(["top", "--once"])
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text, drawn(&model_of(&home), 80));
    assert!(text.contains("reviewer") && text.contains("deny"), "{text}");
    // Read-only: nothing written, no escape codes on a pipe.
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert_eq!(home.snapshot(), before, "top --once wrote to the ledger");
}

#[test]
fn top_refuses_json_and_a_missing_terminal_and_a_missing_ledger() {
    let home = busy_home();
    let out = home.run_at(T0, &["--json", "top", "--once"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = home.run_at(T0, &["top"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("top --once"), "{}", stderr(&out));
    let empty = Home::empty();
    let out = empty.run_at(T0, &["top", "--once"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(!empty.db().exists(), "top created a ledger");
}

/// Runs the live view in a pseudo-terminal, types `keys` at it once it has drawn its first
/// frame (raw mode is on by then), and returns what the terminal received and the exit code.
fn live_view(home: &Home, keys: &[u8]) -> (String, i32) {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = home
        .terminal_sized(100, 30, Some(T0), &["top"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start script(1)");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Vec::new();
    // The first frame's title, the sign the view is up: waited for as an event, not a time
    // (the deadline only stops a broken view from hanging the suite).
    while !String::from_utf8_lossy(&screen).contains("(q quits)") {
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(chunk) => screen.extend(chunk),
            Err(_) => {
                let _ = child.kill();
                panic!("no frame drawn: {:?}", String::from_utf8_lossy(&screen));
            }
        }
    }
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(keys).expect("type");
    stdin.flush().expect("flush");
    let status = child.wait().expect("wait");
    drop(stdin);
    reader.join().expect("reader");
    screen.extend(rx.try_iter().flatten());
    (
        String::from_utf8_lossy(&screen).into_owned(),
        status.code().unwrap_or(-1),
    )
}
#[test]
fn the_live_view_draws_quits_on_q_esc_or_ctrl_c_and_restores_the_terminal() {
    let home = busy_home();
    let before = home.snapshot();
    for (keys, what) in [(&b"q"[..], "q"), (b"\x1b", "Esc"), (b"\x03", "Ctrl-C")] {
        let (screen, exit) = live_view(&home, keys);
        assert_eq!(exit, 0, "{what}: {screen:?}");
        assert!(
            screen.contains("reviewer"),
            "{what}: drew the leases: {screen:?}"
        );
        // The alternate screen is entered, then left again before the process ends.
        let entered = screen
            .find("\u{1b}[?1049h")
            .expect("alternate screen entered");
        let left = screen
            .rfind("\u{1b}[?1049l")
            .expect("alternate screen left");
        assert!(left > entered, "{what}: {screen:?}");
    }
    assert_eq!(home.snapshot(), before, "top wrote to the ledger");
}
