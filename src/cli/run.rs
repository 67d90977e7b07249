//! `authledger run -- CMD…`: acquire a lease on the selected provider, then run the agent
//! under it (see [`Ledger::run_agent`](crate::ledger::Ledger::run_agent)).

use std::ffi::OsString;

use clap::Args;

use super::Ctx;
use super::json::AcquiredJson;
use super::lease::AcquireArgs;
use crate::error::Error;

/// Run an agent under a lease.
#[derive(Debug, Args)]
pub struct RunCmd {
    #[command(flatten)]
    acquire: AcquireArgs,
    /// Hand the agent the real credential instead of metering its requests through a gateway
    /// (its usage is then whatever it reports itself).
    #[arg(long)]
    no_meter: bool,
    /// The agent command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

impl RunCmd {
    /// Acquires, runs, releases; returns the agent's exit code.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        // Before any token is in memory.
        crate::hardening::forbid_dumps()?;
        let ledger = ctx.open()?;
        let (lease, decision) = self.acquire.acquire(&ledger, ctx.clock())?;
        if ctx.out.json {
            let line =
                serde_json::to_string(&AcquiredJson::new(&lease, &decision)).unwrap_or_default();
            eprintln!("{line}");
        } else {
            eprintln!(
                "authledger: {} on {}/{} for {}: {} tokens ({})",
                lease.id,
                lease.provider,
                lease.account,
                lease.agent,
                lease.allocated,
                super::output::times_for_people(&decision.reason, ctx.clock().now_ms())
            );
        }
        if self.no_meter {
            ledger.run_agent(&lease, &self.command)
        } else {
            crate::gateway::run_metered(&ledger, &lease, &self.command)
        }
    }
}
