//! `authledger audit`, `authledger audit verify [--anchor HEAD]` and `authledger audit anchor`

use clap::{Args, Subcommand};

use super::Ctx;
use super::args::{self, When};
use super::audit_text::describe;
use super::json::{AnchorJson, AuditRowJson, VerifyJson};
use super::output::{Grid, clock_time, coloured};
use crate::audit::Anchor;
use crate::error::Error;
use crate::records::AuditQuery;
use crate::types::{AgentId, Provider};
use comfy_table::{Cell, Color};

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
                    ctx.out.error(&err, ctx.clock().now_ms());
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
        let screen = ctx.out.screen();
        let now = ctx.clock().now_ms();
        let mut t = Grid::new(&[
            ("seq", 3),
            ("at", 0),
            ("action", 0),
            ("agent", 1),
            ("provider", 2),
            ("lease", 4),
            ("detail", 0),
        ]);
        for e in rows {
            let detail = serde_json::from_str(&e.detail)
                .map(|d| describe(&e.action, &d, now))
                .unwrap_or(e.detail);
            let action = match e.action.as_str() {
                "deny" | "expire" | "revoke" => coloured(&e.action, Color::Red),
                "fallback" => coloured(&e.action, Color::Yellow),
                _ => Cell::new(&e.action),
            };
            t.row([
                Cell::new(e.seq),
                Cell::new(clock_time(e.at_ms, now)),
                action,
                Cell::new(e.agent.unwrap_or_default()),
                Cell::new(e.provider.unwrap_or_default()),
                Cell::new(e.lease_id.unwrap_or_default()),
                Cell::new(detail),
            ]);
        }
        ctx.out.paged(&t.render(&screen))?;
        Ok(0)
    }
}
