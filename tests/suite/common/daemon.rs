//! A running `authledger daemon` for the tests that talk to it: started on the wall clock,
//! its stderr read line by line, stopped with SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Home;

/// A running daemon and its stderr, line by line.
pub struct Daemon {
    pub child: Child,
    /// Its first line, "serving writes at <socket>".
    pub started: String,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts `authledger daemon` on the wall clock in `home`, with `env` added, and waits
    /// for its start line.
    pub fn start(home: &Home, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with(home, env, &[])
    }

    /// [`Daemon::start`] with more arguments for the daemon (`--gateway ADDR`).
    pub fn start_with(home: &Home, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let mut cmd = home.cmd_wall();
        cmd.args(["daemon", "--interval", "1h"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn daemon");
        let (tx, lines) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Daemon {
            child,
            started: String::new(),
            lines,
        };
        daemon.started = daemon.wait_for("serving writes at");
        daemon
    }

    /// Waits (up to 30 s) for a stderr line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no {needle:?} from the daemon within 30 s; stderr: {seen:?}");
                }
            }
        }
    }

    /// SIGTERM, then the "served N requests in M transactions" figures from its last line.
    pub fn stop(self) -> (u64, u64) {
        let line = self.stop_line();
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(numbers.len(), 2, "{line}");
        (numbers[0], numbers[1])
    }

    /// SIGTERM, then its last line, once it has exited 0.
    pub fn stop_line(mut self) -> String {
        let term = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(term.success());
        let line = self.wait_for("daemon stopping");
        let status = self.child.wait().expect("reap daemon");
        assert_eq!(status.code(), Some(0), "daemon exit: {status:?}");
        line
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ledger home with a Claude API key and the given concurrency, on the wall clock.
pub fn wall_home(concurrent: &str) -> Home {
    let home = Home::empty();
    let mut login = home
        .cmd_wall()
        .args(["login", "claude", "--api-key-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn login");
    login
        .stdin
        .take()
        .unwrap()
        .write_all(b"sk-ant-api03-daemon-test-key-0000000000")
        .unwrap();
    let out = login.wait_with_output().unwrap();
    assert_eq!(super::code(&out), 0, "login: {}", super::stderr(&out));
    let out = wall(
        &home,
        &[
            "limits",
            "set",
            "claude",
            "--concurrent",
            concurrent,
            "--daily-tokens",
            "1000000",
            "--rpm",
            "off",
            "--tpm",
            "off",
        ],
    );
    assert_eq!(super::code(&out), 0, "limits: {}", super::stderr(&out));
    home
}

/// Runs authledger on the wall clock (so it talks to a running daemon).
pub fn wall(home: &Home, args: &[&str]) -> Output {
    home.cmd_wall().args(args).output().expect("run authledger")
}
