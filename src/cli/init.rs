//! `authledger init`

use clap::Args;

use super::Ctx;
use super::json::{InitJson, LimitsJson};
use crate::error::Error;

/// Create the ledger and store default limits.
#[derive(Debug, Args)]
pub struct InitCmd {}

impl InitCmd {
    /// Opens (creating and migrating) the ledger and stores default limits.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        let limits = ledger.init()?;
        let version = ledger.schema_version()?;
        if ctx.out.json {
            ctx.out.json(&InitJson {
                db: ledger.db_path().to_path_buf(),
                schema_version: version,
                limits: limits.iter().map(LimitsJson::from).collect(),
            })?;
        } else {
            ctx.out.line(&format!(
                "ledger ready at {} (schema v{version})",
                ledger.db_path().display()
            ))?;
            for l in limits {
                ctx.out.line(&format!(
                    "  {}/{}: {} tokens/day, {} concurrent",
                    l.provider, l.account, l.daily_tokens, l.concurrent
                ))?;
            }
        }
        Ok(0)
    }
}
