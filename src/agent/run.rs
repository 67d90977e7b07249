//! The `run` supervisor as a library call: start an agent under a lease with its environment,
//! heartbeat, forward signals, release with its exit status.
//!
//! Renews every TTL/3, forwards SIGTERM and SIGHUP (and SIGINT when stdin is not a terminal:
//! in a terminal Ctrl-C already reaches the agent, and a second one would count twice), and
//! releases the lease when the agent ends, with its exit status in the audit row. If the lease
//! is reclaimed while the agent runs, the agent is asked to stop. If the supervisor itself
//! dies, the lease expires at its TTL and cleanup reclaims it.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use super::AgentEnv;
use crate::error::Error;
use crate::exit;
use crate::quota::QuotaError;
use crate::records::Lease;
use crate::types::LeaseId;

/// What the supervisor needs of the ledger that granted the lease. The ledger implements it;
/// the supervisor does not know the ledger, so it sits below it.
pub trait LeaseKeeper: Clone + Send + 'static {
    /// The environment the agent gets for the lease's credential.
    fn agent_env(&self, lease: &Lease) -> Result<AgentEnv, Error>;
    /// Renews the lease (the heartbeat); `LeaseLost` when it was reclaimed.
    fn renew(&self, id: &LeaseId) -> Result<(), Error>;
    /// Releases the lease with facts for its audit row.
    fn release_with(&self, id: &LeaseId, detail: Option<serde_json::Value>) -> Result<(), Error>;
    /// The database file, beside which lease directories live.
    fn db_path(&self) -> &std::path::Path;
}

/// The exit code a shell would report for a child's status.
fn code_of(status: std::process::ExitStatus) -> (i32, Option<i32>) {
    match (status.code(), status.signal()) {
        (Some(c), _) => (c, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        (None, None) => (exit::OTHER, None),
    }
}

fn forward(pid: Option<u32>, signal: Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Runs `command` as the agent holding `lease` and returns the exit code a shell would report
/// (128 + signal if it was killed). The lease is released when the agent ends.
pub fn run_agent<K: LeaseKeeper>(
    keeper: &K,
    lease: &Lease,
    command: &[OsString],
) -> Result<i32, Error> {
    let env = match keeper.agent_env(lease) {
        Ok(env) => env,
        Err(e) => {
            let _ = keeper.release_with(&lease.id, Some(json!({ "error": "no environment" })));
            return Err(e);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "cannot start the supervisor".into(),
            source,
        })?;
    let outcome = runtime.block_on(supervise_agent(keeper, lease, &env, command));
    let (code, detail) = match outcome {
        Ok(Supervised { status, lost }) => {
            let (code, signal) = code_of(status);
            if lost {
                // The lease was reclaimed while the agent ran: nothing left to release,
                // but its private directory goes.
                super::remove_lease_dir(keeper.db_path(), &lease.id);
                return Ok(code);
            }
            (code, json!({ "exit_code": code, "signal": signal }))
        }
        Err(e) => {
            let _ = keeper.release_with(&lease.id, Some(json!({ "error": e.to_string() })));
            return Err(e);
        }
    };
    keeper.release_with(&lease.id, Some(detail))?;
    Ok(code)
}

async fn supervise_agent<K: LeaseKeeper>(
    keeper: &K,
    lease: &Lease,
    env: &AgentEnv,
    command: &[OsString],
) -> Result<Supervised, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let program = command
        .first()
        .ok_or_else(|| crate::types::InvalidInput("no command to run".into()))?;
    // Handlers first: a signal that arrives while the child starts is forwarded.
    let io = |source| Error::Io {
        what: "cannot listen for signals".into(),
        source,
    };
    let mut sigint = signal(SignalKind::interrupt()).map_err(io)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(io)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io)?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&command[1..]);
    for k in &env.remove {
        cmd.env_remove(k);
    }
    for (k, v) in &env.set {
        cmd.env(k, v.expose());
    }
    let mut child = cmd.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::CommandNotFound {
                command: crate::types::truncate_for_message(&program.to_string_lossy()),
            }
        } else {
            Error::Io {
                what: format!("cannot start {}", program.to_string_lossy()),
                source,
            }
        }
    })?;
    let pid = child.id();
    // In a terminal, Ctrl-C already reaches the child (same process group): forwarding it
    // again would count as a second press.
    let forward_int = !std::io::stdin().is_terminal();
    let every = Duration::from_millis(u64::try_from(lease.ttl_ms / 3).unwrap_or(1_000).max(1_000));
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut lost = false;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|source| Error::Io { what: "cannot wait for the agent".into(), source })?;
                return Ok(Supervised { status, lost });
            }
            _ = heartbeat.tick(), if !lost => {
                let l = keeper.clone();
                let id = lease.id.clone();
                match tokio::task::spawn_blocking(move || l.renew(&id)).await {
                    Ok(Err(Error::Quota(e @ QuotaError::LeaseLost { .. }))) => {
                        eprintln!("authledger: {e}; stopping the agent");
                        lost = true;
                        forward(pid, Signal::SIGTERM);
                    }
                    Ok(Err(e)) => eprintln!("authledger: heartbeat failed: {e}"),
                    _ => {}
                }
            }
            _ = sigint.recv() => if forward_int { forward(pid, Signal::SIGINT) },
            _ = sigterm.recv() => forward(pid, Signal::SIGTERM),
            _ = sighup.recv() => forward(pid, Signal::SIGHUP),
        }
    }
}

struct Supervised {
    status: std::process::ExitStatus,
    lost: bool,
}
