//! `authledger gateway`: the metering gateway for agents started by other means than `run`
//! (`eval "$(authledger env LEASE)"`), until SIGTERM or SIGINT. `daemon --gateway` hosts the
//! same beside group commit.

use std::net::SocketAddr;

use clap::Args;
use serde::Serialize;

use super::Ctx;
use crate::error::Error;
use crate::gateway::{HostedGateway, run::into_error};
use crate::ledger::Ledger;
use crate::types::InvalidInput;

/// Serve the metering gateway on a loopback address until SIGTERM or SIGINT.
#[derive(Debug, Args)]
pub struct GatewayCmd {
    /// The loopback address to listen on (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

#[derive(Serialize)]
struct ListeningJson<'a> {
    gateway: &'a str,
}

/// Starts a gateway on `listen` for `ledger` and publishes its URL beside the database.
pub fn start_published(ledger: &Ledger, listen: SocketAddr) -> Result<HostedGateway, Error> {
    if !listen.ip().is_loopback() {
        return Err(InvalidInput(format!(
            "--listen {listen}: the gateway listens only on a loopback address (127.0.0.1 or ::1)"
        ))
        .into());
    }
    // Its records are written in batches of its own, not one by one through a daemon.
    let mut gateway = HostedGateway::start(ledger.direct(), listen, 2).map_err(into_error)?;
    gateway.publish(ledger.db_path()).map_err(into_error)?;
    Ok(gateway)
}

/// Waits for SIGTERM or SIGINT.
pub fn until_signalled() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "cannot start the runtime".into(),
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
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    })
}

impl GatewayCmd {
    /// Serves until a signal; writes every record before it exits 0.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        // Before any credential is in memory.
        crate::hardening::forbid_dumps()?;
        let ledger = ctx.open()?;
        let gateway = start_published(&ledger, self.listen)?;
        let url = gateway.url();
        if ctx.out.json {
            ctx.out.line(
                &serde_json::to_string(&ListeningJson { gateway: &url }).unwrap_or_default(),
            )?;
        } else {
            ctx.out.line(&format!("gateway listening on {url}"))?;
        }
        until_signalled()?;
        gateway.stop().map_err(into_error)?;
        eprintln!("gateway stopped: every request's usage is recorded");
        Ok(0)
    }
}
