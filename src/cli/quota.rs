//! `authledger quota`

use clap::Args;

use super::Ctx;
use super::json::QuotaJson;
use super::output::{Grid, bar, percent_cell, when};
use super::prices::{cost_of, costs_today, today_line};
use crate::error::Error;
use crate::types::Provider;
use comfy_table::Cell;

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
        let screen = ctx.out.screen();
        let now = ledger.now();
        // The bar is the first thing to go on a narrow screen, and is never in a pipe.
        let mut columns = vec![
            ("provider", 0),
            ("window", 0),
            ("limit", 0),
            ("used", 0),
            ("reserved", 1),
            ("remaining", 2),
            ("%", 0),
            ("leases", 3),
            ("resets", 1),
        ];
        if screen.terminal {
            columns.insert(7, ("", 4));
        }
        let mut t = Grid::new(&columns);
        for q in &status {
            for w in &q.windows {
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
                let mut row = vec![
                    Cell::new(label),
                    Cell::new(window),
                    Cell::new(limit),
                    Cell::new(w.used),
                    Cell::new(w.reserved),
                    Cell::new(remaining),
                    w.percent.map_or_else(|| Cell::new("-"), percent_cell),
                    Cell::new(leases),
                    Cell::new(w.resets_at.map_or("-".to_string(), |t| when(t, now))),
                ];
                if screen.terminal {
                    row.insert(
                        7,
                        Cell::new(w.percent.map_or(String::new(), |p| bar(p, 20))),
                    );
                }
                t.row(row);
            }
        }
        ctx.out.line(&t.render(&screen))?;
        if let Some(l) = today_line(status.iter().map(|q| (q.provider, &q.account)), &costs) {
            for line in super::output::wrap(&l, screen.width) {
                ctx.out.line(&line)?;
            }
        }
        for (q, items) in status.iter().zip(&said) {
            let label = format!("{}/{}", q.provider, q.account);
            if let Some(l) = super::provider_says::line(&label, items, now) {
                for line in super::output::wrap(&l, screen.width) {
                    ctx.out.line(&line)?;
                }
            }
        }
        if let Some(r) = super::status::recommendation(&ledger, now) {
            for line in super::output::wrap(&r, screen.width) {
                ctx.out.line(&line)?;
            }
        }
        Ok(0)
    }
}
