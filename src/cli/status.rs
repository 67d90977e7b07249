//! `authledger status` and `authledger providers`

use clap::Args;
use serde_json::json;

use super::Ctx;
use super::output::table;
use crate::clock::format_ms;
use crate::error::Error;
use crate::types::Provider;
use crate::vault::Usability;

/// Credentials (redacted), tier, expiry, last use, and quota per provider account.
#[derive(Debug, Args)]
pub struct StatusCmd {
    /// Only this provider.
    #[arg(long)]
    provider: Option<Provider>,
}

impl StatusCmd {
    /// Prints one row per provider account.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        let creds = ledger.credentials()?;
        let quotas = ledger.quota(self.provider)?;
        let rows: Vec<_> = quotas
            .iter()
            .map(|q| {
                let c = creds
                    .iter()
                    .find(|c| c.provider == q.provider && c.account == q.account);
                (q, c)
            })
            .collect();
        if ctx.out.json {
            let out: Vec<_> = rows
                .iter()
                .map(|(q, c)| json!({ "provider": q.provider, "account": q.account, "credential": c, "quota": q }))
                .collect();
            return ctx.out.json(&out).map(|_| 0);
        }
        let mut t = table(&[
            "provider",
            "credential",
            "tier",
            "secret",
            "expires",
            "last used",
            "today",
            "leases",
        ]);
        for (q, c) in rows {
            let (kind, tier, secret, expires, refreshed, used) = match c {
                Some(c) => (
                    if c.status == "ok" {
                        c.kind.as_str().to_string()
                    } else {
                        format!("{} ({})", c.kind.as_str(), c.status)
                    },
                    c.tier.to_string(),
                    c.redacted.clone(),
                    c.expires_at.map_or("-".into(), format_ms),
                    c.refreshed_at.map_or("-".into(), format_ms),
                    c.last_used_at.map_or("never".into(), format_ms),
                ),
                None => (
                    "none".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ),
            };
            t.add_row(vec![
                format!("{}/{}", q.provider, q.account),
                kind,
                tier,
                secret,
                expires,
                refreshed,
                used,
                format!("{} of {} ({}%)", q.used + q.reserved, q.limit, q.percent),
                format!("{}/{}", q.active_leases, q.concurrent_limit),
            ]);
        }
        ctx.out.line(&t.to_string())?;
        Ok(0)
    }
}

/// Whether each provider account can take a lease now, and why not.
#[derive(Debug, Args)]
pub struct ProvidersCmd {}

impl ProvidersCmd {
    /// Prints one row per provider account.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        let mut out = Vec::new();
        for q in ledger.quota(None)? {
            let (usable, why) = match ledger.usability(q.provider, &q.account)? {
                Usability::Usable { kind, tier } => {
                    if q.remaining == 0 {
                        (
                            false,
                            format!("today's budget is spent; resets {}", format_ms(q.resets_at)),
                        )
                    } else if q.active_leases >= q.concurrent_limit {
                        (
                            false,
                            format!("all {} concurrent leases in use", q.concurrent_limit),
                        )
                    } else {
                        (
                            true,
                            format!(
                                "{} ({tier}), {} tokens left today",
                                kind.as_str(),
                                q.remaining
                            ),
                        )
                    }
                }
                Usability::Missing => (
                    false,
                    format!("no credential: run `authledger login {}`", q.provider),
                ),
                Usability::Expired { at } => {
                    (false, format!("credential expired {}", format_ms(at)))
                }
                Usability::NeedsLogin => (false, "refresh refused: log in again".into()),
            };
            out.push(json!({
                "provider": q.provider,
                "account": q.account,
                "usable": usable,
                "reason": why,
            }));
        }
        if ctx.out.json {
            return ctx.out.json(&out).map(|_| 0);
        }
        let mut t = table(&["provider", "usable", "why"]);
        for r in &out {
            t.add_row(vec![
                format!(
                    "{}/{}",
                    r["provider"].as_str().unwrap_or(""),
                    r["account"].as_str().unwrap_or("")
                ),
                if r["usable"] == true { "yes" } else { "no" }.to_string(),
                r["reason"].as_str().unwrap_or("").to_string(),
            ]);
        }
        ctx.out.line(&t.to_string())?;
        Ok(0)
    }
}
