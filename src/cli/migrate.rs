//! `authledger migrate --from sqlite:PATH --to postgres://…`

use std::ffi::OsString;

use clap::Args;
use serde::Serialize;

use super::Ctx;
use crate::error::Error;
use crate::ledger::{LedgerConfig, move_ledger};
use crate::paths::{LedgerLocation, parse_location};
use crate::store::StoreError;
use crate::types::InvalidInput;

/// Copy a whole ledger into a new, empty one (SQLite to PostgreSQL for a fleet, or back).
#[derive(Debug, Args)]
pub struct MigrateCmd {
    /// The ledger to copy: a path, sqlite:PATH or postgres://… (default: the one --db or
    /// AUTHLEDGER_DB names).
    #[arg(long, value_name = "PATH|URL")]
    from: Option<OsString>,
    /// The new ledger: postgres://USER@HOST:PORT/DATABASE (an empty database) or
    /// sqlite:PATH (a file that does not exist yet).
    #[arg(long, value_name = "PATH|URL")]
    to: OsString,
}

#[derive(Serialize)]
struct MigrateJson {
    from: String,
    to: String,
    tables: serde_json::Map<String, serde_json::Value>,
    audit_rows: i64,
}

/// A location as people may see it: a path, or a server URL without its password.
fn shown(location: &LedgerLocation) -> String {
    match location {
        LedgerLocation::File(p) => format!("sqlite:{}", p.display()),
        LedgerLocation::Server { url, .. } => url.shown(),
    }
}

fn location(value: &std::ffi::OsStr) -> Result<LedgerLocation, Error> {
    parse_location(value).map_err(|e| Error::Invalid(InvalidInput(e)))
}

impl MigrateCmd {
    /// Copies the ledger and verifies the audit chain on both sides.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let from = match &self.from {
            Some(v) => location(v)?,
            None => ctx.location()?,
        };
        let to = location(&self.to)?;
        if from == to {
            return Err(Error::Invalid(InvalidInput(
                "--from and --to name the same ledger".into(),
            )));
        }
        if let LedgerLocation::File(p) = &from
            && !p.exists()
        {
            return Err(StoreError::Open {
                path: p.clone(),
                reason: "no ledger here to copy".into(),
            }
            .into());
        }
        if let LedgerLocation::File(p) = &to
            && p.exists()
        {
            return Err(Error::Invalid(InvalidInput(format!(
                "{} exists: migrate only into a new ledger",
                p.display()
            ))));
        }
        let config = |loc: &LedgerLocation| {
            Ok::<_, Error>(
                LedgerConfig::at(loc.clone())
                    .with_clock(ctx.clock.clone())
                    .with_file_config(ctx.file_config()?),
            )
        };
        let report = move_ledger(config(&from)?, config(&to)?)?;
        if ctx.out.json {
            ctx.out.json(&MigrateJson {
                from: shown(&from),
                to: shown(&to),
                tables: report
                    .tables
                    .iter()
                    .map(|(t, n)| (t.to_string(), serde_json::Value::from(*n)))
                    .collect(),
                audit_rows: report.target_audit.rows,
            })?;
            return Ok(0);
        }
        let total: u64 = report.tables.iter().map(|(_, n)| n).sum();
        ctx.out.line(&format!(
            "copied {total} rows from {} to {}",
            shown(&from),
            shown(&to)
        ))?;
        let busy: Vec<String> = report
            .tables
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        for line in super::output::wrap(&format!("  {}", busy.join(", ")), 80) {
            ctx.out.line(&line)?;
        }
        ctx.out.line(&format!(
            "audit trail intact on both sides: {} rows",
            report.target_audit.rows
        ))?;
        ctx.out.line(
            "every host of the new ledger needs this master key (its key file or \
             AUTHLEDGER_MASTER_KEY)",
        )?;
        Ok(0)
    }
}
