//! `authledger quota`

use clap::Args;

use super::Ctx;
use super::json::QuotaJson;
use super::output::{bar, table};
use super::prices::{cost_of, costs_today, today_line};
use crate::clock::format_ms;
use crate::error::Error;
use crate::types::Provider;

/// Show quota per provider account.
#[derive(Debug, Args)]
pub struct QuotaCmd {
    /// Only this provider.
    #[arg(long)]
    provider: Option<Provider>,
}

impl QuotaCmd {
    /// Prints each account's windows; bars in a terminal, numbers with `--json`.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        let status = ledger.quota(self.provider)?;
        let said = super::provider_says::of_accounts(&ledger, &status)?;
        let costs = costs_today(ctx, &ledger)?;
        if ctx.out.json {
            let status: Vec<_> = status
                .iter()
                .zip(&said)
                .map(|(q, said)| QuotaJson::new(q, said, &cost_of(&costs, q.provider, &q.account)))
                .collect();
            return ctx.out.json(&status).map(|_| 0);
        }
        let bars = ctx.out.is_terminal();
        let mut t = table(&[
            "provider",
            "window",
            "limit",
            "used",
            "reserved",
            "remaining",
            "%",
            "leases",
            "resets",
        ]);
        for q in &status {
            for w in &q.windows {
                let pct = w
                    .percent
                    .map(|p| {
                        if bars {
                            format!("{} {p:.1}", bar(p, 20))
                        } else {
                            format!("{p:.1}")
                        }
                    })
                    .unwrap_or_else(|| "-".into());
                let limit = w.limit.map_or("-".to_string(), |n| n.to_string());
                let remaining = w.remaining.map_or("-".to_string(), |n| n.to_string());
                let (label, leases) = if w.kind == crate::types::WindowKind::Day {
                    (
                        format!("{}/{}", q.provider, q.account),
                        format!("{}/{}", q.active_leases, q.concurrent_limit),
                    )
                } else {
                    (String::new(), String::new())
                };
                let window = if w.kind == crate::types::WindowKind::Minute {
                    format!("minute ({} req)", w.requests)
                } else {
                    w.kind.to_string()
                };
                t.add_row(vec![
                    label,
                    window,
                    limit,
                    w.used.to_string(),
                    w.reserved.to_string(),
                    remaining,
                    pct,
                    leases,
                    w.resets_at.map_or("-".to_string(), format_ms),
                ]);
            }
        }
        ctx.out.line(&t.to_string())?;
        if let Some(l) = today_line(status.iter().map(|q| (q.provider, &q.account)), &costs) {
            for line in super::output::wrap(&l, super::output::WIDTH) {
                ctx.out.line(&line)?;
            }
        }
        let now = ledger.now();
        for (q, items) in status.iter().zip(&said) {
            let label = format!("{}/{}", q.provider, q.account);
            if let Some(l) = super::provider_says::line(&label, items, now) {
                for line in super::output::wrap(&l, super::output::WIDTH) {
                    ctx.out.line(&line)?;
                }
            }
        }
        if let Some(r) = super::status::recommendation(&ledger) {
            ctx.out.line(&r)?;
        }
        Ok(0)
    }
}
