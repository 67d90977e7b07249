// Processes that hold secrets for long (`run`, `daemon`) cannot be dumped: their core limit is
// 0 and they are not dumpable, which /proc shows: the files of an undumpable process belong to
// root whatever its own uid.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, Command, Stdio};

use common::{Home, code, stderr};

/// The uid the processes under test run as. /proc files of a root process are root's either
/// way, so a test running as root runs them as `nobody`, in a home `nobody` owns.
fn test_uid(home: &Home) -> Option<u32> {
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        return None;
    }
    std::os::unix::fs::chown(home.path(), Some(65_534), Some(65_534)).unwrap();
    Some(65_534)
}

/// `cmd` as `uid` (if any), with the soft core limit raised to the hard one first, so a
/// limit of 0 afterwards is the process's own doing.
fn hardened_candidate(mut cmd: Command, uid: Option<u32>) -> Command {
    let program = env!("CARGO_BIN_EXE_authledger");
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c")
        .arg("ulimit -c \"$(ulimit -H -c)\"; exec \"$0\" \"$@\"")
        .arg(program)
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    if let Some(uid) = uid {
        sh.uid(uid).gid(uid);
    }
    // Keep `cmd` from being used by mistake.
    cmd.env_clear();
    sh
}

/// Asserts what /proc says about `pid`: not dumpable, core limit 0.
fn assert_undumpable(pid: u32, what: &str) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap();
    assert_ne!(
        uid, 0,
        "{what}: the check needs a process that is not root's"
    );
    let owner = std::fs::metadata(format!("/proc/{pid}/status"))
        .unwrap()
        .uid();
    assert_eq!(
        owner, 0,
        "{what}: /proc/{pid} is its own (uid {uid}): dumpable"
    );
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core: Vec<&str> = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max core file size"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(core[..2], ["0", "0"], "{what}: core limit {core:?}");
}

/// Reads `child`'s stderr until a line contains `needle`; returns the rest, to be read to
/// its end (a closed pipe would fail the child's next message).
fn wait_for_line(child: &mut Child, needle: &str) -> std::io::Lines<BufReader<ChildStderr>> {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("stderr ended before {needle:?}"))
            .unwrap();
        if line.contains(needle) {
            return lines;
        }
    }
}

fn login(home: &Home, uid: Option<u32>) {
    let mut cmd = hardened_candidate(home.cmd(), uid);
    let mut child = cmd
        .args(["login", "claude", "--api-key-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"sk-ant-api03-hardening-000000\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "login: {}", stderr(&out));
}

#[test]
fn run_is_undumpable_with_no_core_limit() {
    let home = Home::empty();
    let uid = test_uid(&home);
    login(&home, uid);
    // The agent waits for its stdin to close; `run` has forbidden dumps before it starts.
    let mut cmd = hardened_candidate(home.cmd(), uid);
    let mut run = cmd
        .args([
            "--json",
            "run",
            "--agent",
            "a",
            "--provider",
            "claude",
            "--",
        ])
        .args(["/bin/sh", "-c", "read line || true"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rest = wait_for_line(&mut run, "lease_id");
    assert_undumpable(run.id(), "run");
    drop(run.stdin.take());
    rest.for_each(drop);
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(0), "run exits with its agent");
}

#[test]
fn the_daemon_is_undumpable_with_no_core_limit() {
    let home = Home::empty();
    let uid = test_uid(&home);
    login(&home, uid);
    let mut cmd = hardened_candidate(home.cmd_wall(), uid);
    let mut daemon = cmd
        .args(["daemon", "--interval", "1h"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its first cleanup pass comes after it serves and listens for SIGTERM.
    let rest = wait_for_line(&mut daemon, "cleanup");
    assert_undumpable(daemon.id(), "daemon");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    rest.for_each(drop);
    let status = daemon.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the daemon stops on SIGTERM");
}
