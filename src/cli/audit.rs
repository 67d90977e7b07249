//! `authledger audit`, `authledger audit verify [--anchor HEAD]` and `authledger audit anchor`

use clap::{Args, Subcommand};

use super::Ctx;
use super::args::{self, When};
use super::json::{AnchorJson, AuditRowJson, VerifyJson};
use super::output::table;
use crate::audit::Anchor;
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
    /// Walk the keyed chain; exit 5 naming the first bad row if anything was changed.
    Verify {
        /// Also prove the trail still extends this head, as `audit anchor` printed it.
        #[arg(long, value_name = "HEAD")]
        anchor: Option<Anchor>,
    },
    /// Print the trail's head (SEQ:MAC) to keep elsewhere, for `verify --anchor`.
    Anchor,
}

impl AuditCmd {
    /// Runs the command.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        if let Some(AuditAction::Anchor) = self.action {
            let anchor = ledger.audit_anchor()?;
            if ctx.out.json {
                return ctx.out.json(&AnchorJson::from(&anchor)).map(|_| 0);
            }
            return ctx.out.line(&anchor.to_string()).map(|_| 0);
        }
        if let Some(AuditAction::Verify { anchor }) = &self.action {
            let report = match anchor {
                Some(a) => ledger.verify_audit_against(a)?,
                None => ledger.verify_audit()?,
            };
            if ctx.out.json {
                ctx.out.json(&VerifyJson::from(&report))?;
            }
            return match (report.ok, report.first_bad_seq, report.problem) {
                (true, _, _) => {
                    if !ctx.out.json {
                        let extends = match anchor {
                            Some(a) => format!(", extends anchor row {}", a.seq),
                            None => String::new(),
                        };
                        ctx.out.line(&format!(
                            "audit trail intact: {} rows{extends}",
                            report.rows
                        ))?;
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
            let rows: Vec<_> = rows.iter().map(AuditRowJson::from).collect();
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
