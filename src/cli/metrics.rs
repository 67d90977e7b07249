//! `authledger metrics`: the text the gateway serves at `/metrics`, on stdout.

use clap::Args;

use super::Ctx;
use crate::error::Error;

/// Print the ledger's figures as OpenMetrics text.
#[derive(Debug, Args)]
pub struct MetricsCmd {}

impl MetricsCmd {
    /// Reads the ledger read-only and prints the text, `# EOF` last.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open_read_only()?;
        let prices = super::prices::in_force(ctx)?;
        let text = crate::metrics::render(&ledger, Some(&prices.table), "")?;
        ctx.out.line(text.trim_end())?;
        Ok(0)
    }
}
