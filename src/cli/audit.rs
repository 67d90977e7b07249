//! `authledger audit` and `authledger audit verify`

use clap::{Args, Subcommand};
use serde_json::json;

use super::Ctx;
use super::args::{self, When};
use super::output::table;
use crate::clock::format_ms;
use crate::error::Error;
use crate::records::AuditQuery;
use crate::types::{AgentId, Provider, truncate_for_message};

/// Query the audit trail, or verify it.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditCmd {
    #[command(subcommand)]
    action: Option<AuditAction>,
    /// Rows at or after this time.
    #[arg(long, value_parser = args::when)]
    since: Option<When>,
    /// Rows before this time.
    #[arg(long, value_parser = args::when)]
    until: Option<When>,
    /// Rows about this agent.
    #[arg(long)]
    agent: Option<AgentId>,
    /// Rows about this provider.
    #[arg(long)]
    provider: Option<Provider>,
    /// Rows with this action (acquire, renew, release, expire, revoke, deny, usage, limits, …).
    #[arg(long = "action", value_name = "ACTION")]
    action_name: Option<String>,
    /// The most recent N rows.
    #[arg(long, value_name = "N", default_value = "100")]
    limit: u32,
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Walk the hash chain; exit 5 naming the first bad row if anything was changed.
    Verify,
}

impl AuditCmd {
    /// Runs the command.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        if let Some(AuditAction::Verify) = self.action {
            let report = ledger.verify_audit()?;
            if ctx.out.json {
                ctx.out.json(&report)?;
            }
            return match (report.ok, report.first_bad_seq, report.problem) {
                (true, _, _) => {
                    if !ctx.out.json {
                        ctx.out
                            .line(&format!("audit trail intact: {} rows", report.rows))?;
                    }
                    Ok(0)
                }
                (false, seq, problem) => {
                    let err = Error::AuditBroken {
                        seq: seq.unwrap_or(0),
                        problem: problem.unwrap_or_default(),
                    };
                    ctx.out.error(&err);
                    Ok(err.exit_code())
                }
            };
        }
        let q = AuditQuery {
            since: self.since.map(|w| w.resolve(ctx.clock())),
            until: self.until.map(|w| w.resolve(ctx.clock())),
            agent: self.agent.as_ref().map(|a| a.to_string()),
            provider: self.provider,
            action: self.action_name.clone(),
            limit: Some(self.limit),
        };
        let rows = ledger.audit(&q)?;
        if ctx.out.json {
            let rows: Vec<_> = rows
                .iter()
                .map(|e| {
                    json!({
                        "seq": e.seq,
                        "at": format_ms(e.at_ms),
                        "at_ms": e.at_ms,
                        "action": e.action,
                        "agent": e.agent,
                        "provider": e.provider,
                        "account": e.account,
                        "lease_id": e.lease_id,
                        "detail": serde_json::from_str::<serde_json::Value>(&e.detail).unwrap_or(json!(e.detail)),
                        "hash": e.hash,
                    })
                })
                .collect();
            return ctx.out.json(&rows).map(|_| 0);
        }
        let mut t = table(&[
            "seq", "at", "action", "agent", "provider", "lease", "detail",
        ]);
        for e in rows {
            t.add_row(vec![
                e.seq.to_string(),
                format_ms(e.at_ms),
                e.action,
                e.agent.unwrap_or_default(),
                e.provider.unwrap_or_default(),
                e.lease_id.unwrap_or_default(),
                truncate_for_message(&e.detail),
            ]);
        }
        ctx.out.line(&t.to_string())?;
        Ok(0)
    }
}
