//! `authledger cleanup`

use std::time::Duration;

use clap::Args;

use super::json::CleanupJson;
use super::{Ctx, args};
use crate::error::Error;
use crate::quota::CleanupReport;

/// Reclaim expired and idle leases.
#[derive(Debug, Args)]
pub struct CleanupCmd {
    /// Leases with no heartbeat for this long are reclaimed too.
    #[arg(long, value_name = "DUR", value_parser = args::duration, default_value = "30m")]
    idle: Duration,
}

/// The one-line summary of a cleanup pass, shared with the daemon.
pub fn summary(r: &CleanupReport) -> String {
    format!(
        "reclaimed {} leases ({} expired, {} idle), returned {} tokens",
        r.expired + r.idle,
        r.expired,
        r.idle,
        r.tokens_returned
    )
}

impl CleanupCmd {
    /// Runs one cleanup pass.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let report = ctx.open()?.cleanup_idle(self.idle)?;
        if ctx.out.json {
            ctx.out.json(&CleanupJson::from(&report))?;
        } else {
            ctx.out.line(&summary(&report))?;
        }
        Ok(0)
    }
}
