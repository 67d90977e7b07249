//! `authledger daemon`: periodic cleanup until told to stop.

use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::cleanup::summary;
use super::{Ctx, args};
use crate::clock::format_ms;
use crate::error::Error;

/// Run cleanup now and then every interval, until SIGTERM or SIGINT.
#[derive(Debug, Args)]
pub struct DaemonCmd {
    /// Time between cleanup passes.
    #[arg(long, value_name = "DUR", value_parser = args::duration, default_value = "1h")]
    interval: Duration,
    /// Leases with no heartbeat for this long are reclaimed too.
    #[arg(long, value_name = "DUR", value_parser = args::duration, default_value = "30m")]
    idle: Duration,
}

impl DaemonCmd {
    /// Runs until a signal arrives; exits 0 on SIGTERM/SIGINT.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
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
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let l = ledger.clone();
                        let idle = self.idle;
                        let pass = tokio::task::spawn_blocking(move || l.cleanup_idle(idle)).await;
                        let line = match pass {
                            Ok(Ok(r)) if ctx.out.json => json!({ "at": format_ms(ctx.clock().now_ms()), "cleanup": r }).to_string(),
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
            eprintln!("daemon stopping");
            Ok(0)
        })
    }
}
