//! `authledger usage record` and `authledger usage`

use clap::{Args, Subcommand, ValueEnum};

use super::Ctx;
use super::args::{self, When};
use super::json::{UsageRecordedJson, UsageRowJson};
use super::output::table;
use crate::error::{Error, exit};
use crate::quota::UsageRecord;
use crate::records::UsageGroup;
use crate::types::{LeaseId, LeaseState};

/// Record usage, or summarise it.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct UsageCmd {
    #[command(subcommand)]
    action: Option<UsageAction>,
    /// Usage from this time on (2026-11-23, RFC 3339, or a duration ago such as 24h);
    /// default: the last 24 hours.
    #[arg(long, value_parser = args::when)]
    since: Option<When>,
    /// Group by agent, provider, day or model.
    #[arg(long, value_enum, default_value = "agent")]
    by: GroupBy,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GroupBy {
    Agent,
    Provider,
    Day,
    Model,
}

#[derive(Debug, Subcommand)]
enum UsageAction {
    /// Record tokens used on a lease (idempotent with --key).
    Record {
        /// The lease the tokens were used on.
        lease_id: LeaseId,
        /// Input tokens.
        #[arg(long, value_name = "N", value_parser = args::tokens, allow_negative_numbers = true)]
        input: i64,
        /// Output tokens.
        #[arg(long, value_name = "N", value_parser = args::tokens, allow_negative_numbers = true)]
        output: i64,
        /// Requests made.
        #[arg(long, value_name = "N", value_parser = args::tokens, default_value = "1", allow_negative_numbers = true)]
        requests: i64,
        /// Idempotency key: a retry with the same key is recorded once.
        #[arg(long, value_name = "IDEMPOTENCY_KEY")]
        key: Option<String>,
        /// Refuse unless this is the lease's fencing number (printed by acquire --json).
        #[arg(long, value_name = "N")]
        fence: Option<i64>,
        /// The model the provider answered with (for `usage --by model`).
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
        /// Prompt-cache tokens read (counted against the budget like input).
        #[arg(long, value_name = "N", value_parser = args::tokens, default_value = "0", allow_negative_numbers = true)]
        cache_read: i64,
        /// Prompt-cache tokens written (counted against the budget like input).
        #[arg(long, value_name = "N", value_parser = args::tokens, default_value = "0", allow_negative_numbers = true)]
        cache_write: i64,
        /// The request's outcome (ok, error, …).
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
    },
}

impl UsageCmd {
    /// Runs the command.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        match &self.action {
            Some(UsageAction::Record {
                lease_id,
                input,
                output,
                requests,
                key,
                fence,
                model,
                cache_read,
                cache_write,
                status,
            }) => {
                let mut record = UsageRecord::new(*input, *output).cache(*cache_read, *cache_write);
                record.requests = *requests;
                record.key = key.clone();
                record.model = model.clone();
                record.status = status.clone();
                record.validate()?;
                let ledger = ctx.open()?;
                if let Some(f) = fence {
                    ledger.check_fence(lease_id, *f)?;
                }
                let o = ledger.record_usage(lease_id, &record)?;
                if ctx.out.json {
                    ctx.out.json(&UsageRecordedJson::from(&o))?;
                } else {
                    let note = if o.duplicate {
                        " (already recorded)"
                    } else {
                        ""
                    };
                    ctx.out.line(&format!(
                        "{}: {} of {} tokens used{note}{}",
                        o.lease_id,
                        o.lease_used,
                        o.allocated,
                        if o.exhausted {
                            "; lease exhausted: acquire a new one before going on"
                        } else {
                            ""
                        }
                    ))?;
                }
                if o.lease_state != LeaseState::Active {
                    let msg = format!(
                        "usage recorded, but lease {} is {}: it was lost; stop using it",
                        o.lease_id, o.lease_state
                    );
                    ctx.out.failure(&msg, exit::DENIED);
                    return Ok(exit::DENIED);
                }
                Ok(0)
            }
            None => {
                let ledger = ctx.open()?;
                let since = self
                    .since
                    .unwrap_or(When::Ago(std::time::Duration::from_secs(86_400)))
                    .resolve(ctx.clock());
                let group = match self.by {
                    GroupBy::Agent => UsageGroup::Agent,
                    GroupBy::Provider => UsageGroup::Provider,
                    GroupBy::Day => UsageGroup::Day,
                    GroupBy::Model => UsageGroup::Model,
                };
                let rows = ledger.usage_report(since, group)?;
                if ctx.out.json {
                    let rows: Vec<_> = rows.iter().map(UsageRowJson::from).collect();
                    return ctx.out.json(&rows).map(|_| 0);
                }
                let mut t = table(&[
                    "key", "input", "output", "cache rd", "cache wr", "total", "requests",
                    "records",
                ]);
                for r in rows {
                    t.add_row(vec![
                        r.key,
                        r.input.to_string(),
                        r.output.to_string(),
                        r.cache_read.to_string(),
                        r.cache_write.to_string(),
                        r.total.to_string(),
                        r.requests.to_string(),
                        r.records.to_string(),
                    ]);
                }
                ctx.out.line(&t.to_string())?;
                for q in ledger.quota(None)? {
                    let windows: Vec<String> = q
                        .windows
                        .iter()
                        .filter_map(|w| w.percent.map(|p| format!("{} {p:.1} %", w.kind)))
                        .collect();
                    ctx.out.line(&format!(
                        "{}/{}: {}",
                        q.provider,
                        q.account,
                        windows.join(", ")
                    ))?;
                }
                if let Some(r) = super::status::recommendation(&ledger) {
                    ctx.out.line(&r)?;
                }
                Ok(0)
            }
        }
    }
}
