//! `authledger daemon`: group commit for every process's writes, periodic cleanup and refresh
//! ahead of expiry, until told to stop.

use std::time::Duration;

use clap::Args;

use super::cleanup::summary;
use super::json::{CleanupJson, DaemonCleanupJson, time};
use super::{Ctx, args};
use crate::clock::format_ms;
use crate::daemon::{DaemonError, Server};
use crate::error::Error;

/// Serve group commit on `ledger.db.sock` (on the wall clock), run cleanup now and then every
/// interval, and refresh OAuth tokens ahead of expiry, until SIGTERM or SIGINT.
#[derive(Debug, Args)]
pub struct DaemonCmd {
    /// Time between cleanup passes.
    #[arg(long, value_name = "DUR", value_parser = args::duration, default_value = "1h")]
    interval: Duration,
    /// Leases with no heartbeat for this long are reclaimed too.
    #[arg(long, value_name = "DUR", value_parser = args::duration, default_value = "30m")]
    idle: Duration,
    /// How often to look for OAuth tokens close to expiry and refresh them ahead of time.
    #[arg(long, value_name = "DUR", value_parser = args::duration, default_value = "5m")]
    refresh_every: Duration,
    /// Also serve the metering gateway on this loopback address (`authledger env` then hands
    /// agents its URL and a lease token).
    #[arg(long, value_name = "ADDR")]
    gateway: Option<std::net::SocketAddr>,
}

/// Refreshes every OAuth credential that would expire before the next pass (plus the usual
/// margin), so agents rarely wait for a refresh. Returns one log line per credential touched.
fn refresh_pass(ledger: &crate::ledger::Ledger, every: Duration) -> Vec<String> {
    let now = ledger.now();
    let margin = every * 2 + ledger.config().refresh.margin;
    let horizon = now + i64::try_from(margin.as_millis()).unwrap_or(i64::MAX / 2);
    let credentials = match ledger.credentials() {
        Ok(c) => c,
        Err(e) => return vec![format!("refresh pass failed: {e}")],
    };
    credentials
        .into_iter()
        .filter(|c| c.refreshable && c.status == "ok" && c.expires_at.is_some_and(|t| t <= horizon))
        .map(
            |c| match ledger.access_token_within(c.provider, &c.account, margin) {
                Ok(_) => format!("refreshed {}/{}", c.provider, c.account),
                Err(e) => format!("refresh of {}/{} failed: {e}", c.provider, c.account),
            },
        )
        .collect()
}

impl DaemonCmd {
    /// Runs until a signal arrives; exits 0 on SIGTERM/SIGINT.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        // Before any token is in memory: the daemon refreshes tokens for hours.
        crate::hardening::forbid_dumps()?;
        let ledger = ctx.open()?;
        // Group commit for the other processes' writes. A daemon on a pinned clock (tests, the
        // demo) does not serve: its transactions would run on a time the others do not share.
        let server = if ctx.clock().is_wall_clock() {
            match Server::start(&ledger) {
                Ok(server) => {
                    eprintln!("serving writes at {}", server.socket_path().display());
                    Some(server)
                }
                Err(e @ DaemonError::PathTooLong { .. }) => {
                    eprintln!("warning: {e}; clients work on the database directly");
                    None
                }
                Err(e) => {
                    return Err(Error::Daemon {
                        exit_code: crate::exit::OTHER,
                        message: e.to_string(),
                    });
                }
            }
        } else {
            None
        };
        let gateway = match self.gateway {
            Some(listen) => {
                let gateway = super::gateway::start_published(&ledger, listen)?;
                eprintln!("metering gateway on {}", gateway.url());
                Some(gateway)
            }
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                what: "cannot start the daemon's runtime".into(),
                source,
            })?;
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let io = |source| Error::Io {
                what: "cannot listen for signals".into(),
                source,
            };
            let mut term = signal(SignalKind::terminate()).map_err(io)?;
            let mut int = signal(SignalKind::interrupt()).map_err(io)?;
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut refresh_tick = tokio::time::interval(self.refresh_every);
            refresh_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = refresh_tick.tick() => {
                        let l = ledger.clone();
                        let every = self.refresh_every;
                        if let Ok(lines) = tokio::task::spawn_blocking(move || refresh_pass(&l, every)).await {
                            for line in lines {
                                eprintln!("{} {line}", format_ms(ctx.clock().now_ms()));
                            }
                        }
                    }
                    _ = tick.tick() => {
                        let l = ledger.clone();
                        let idle = self.idle;
                        let pass = tokio::task::spawn_blocking(move || l.cleanup_idle(idle)).await;
                        let line = match pass {
                            Ok(Ok(r)) if ctx.out.json => {
                                let at = ctx.clock().now_ms();
                                serde_json::to_string(&DaemonCleanupJson {
                                    at: time(at),
                                    at_ms: at,
                                    cleanup: CleanupJson::from(&r),
                                })
                                .unwrap_or_default()
                            }
                            Ok(Ok(r)) => format!("{} cleanup: {}", format_ms(ctx.clock().now_ms()), summary(&r)),
                            // A failed pass is reported and retried at the next tick; the
                            // daemon is a convenience, correctness never depends on it.
                            Ok(Err(e)) => format!("cleanup failed: {e}"),
                            Err(e) => format!("cleanup failed: {e}"),
                        };
                        eprintln!("{line}");
                    }
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                }
            }
            if let Some(gateway) = gateway
                && let Err(e) = gateway.stop()
            {
                eprintln!("gateway: {e}");
            }
            match server {
                Some(server) => {
                    let s = server.stats();
                    eprintln!("daemon stopping: served {} requests in {} transactions", s.requests, s.transactions);
                }
                None => eprintln!("daemon stopping"),
            }
            Ok(0)
        })
    }
}
