//! `authledger status` and `authledger providers`

use clap::Args;

use super::Ctx;
use super::json::{CredentialJson, ProviderJson, QuotaJson, StatusJson};
use super::output::{Grid, clock_time, coloured, percent_cell, times_for_people, when};
use super::prices::{cost_of, costs_today, today_line};
use crate::error::Error;
use crate::select::{Choice, SelectError};
use crate::types::Provider;
use crate::vault::CredentialKind;
use comfy_table::{Cell, Color};

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
        let said = super::provider_says::of_accounts(&ledger, &quotas)?;
        let costs = costs_today(ctx, &ledger)?;
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
                .zip(&said)
                .map(|((q, c), said)| StatusJson {
                    provider: q.provider,
                    account: q.account.clone(),
                    credential: c.map(CredentialJson::from),
                    quota: QuotaJson::new(q, said, &cost_of(&costs, q.provider, &q.account)),
                })
                .collect();
            return ctx.out.json(&out).map(|_| 0);
        }
        let screen = ctx.out.screen();
        let now = ledger.now();
        let rel = |t: Option<i64>, none: &str| t.map_or(none.to_string(), |t| when(t, now));
        let mut t = Grid::new(&[
            ("provider", 0),
            ("credential", 2),
            ("tier", 5),
            ("secret", 6),
            ("expires", 3),
            ("refreshed", 7),
            ("last used", 4),
            ("used", 1),
            ("reserved", 1),
            ("limit", 1),
            ("%", 2),
            ("leases", 2),
        ]);
        for (q, c) in rows {
            let (kind, tier, secret, expires, refreshed, used) = match c {
                Some(c) => (
                    if c.status == "ok" {
                        Cell::new(c.kind.as_str())
                    } else if c.handed_over_to.is_some() {
                        coloured(format!("{} (handed over)", c.kind.as_str()), Color::Yellow)
                    } else {
                        coloured(format!("{} ({})", c.kind.as_str(), c.status), Color::Red)
                    },
                    c.tier.to_string(),
                    c.redacted.clone(),
                    rel(c.expires_at, "-"),
                    rel(c.refreshed_at, "-"),
                    rel(c.last_used_at, "never"),
                ),
                None => (
                    Cell::new("none"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ),
            };
            t.row([
                Cell::new(format!("{}/{}", q.provider, q.account)),
                kind,
                Cell::new(tier),
                Cell::new(secret),
                Cell::new(expires),
                Cell::new(refreshed),
                Cell::new(used),
                Cell::new(q.used),
                Cell::new(q.reserved),
                Cell::new(q.limit),
                percent_cell(q.percent),
                Cell::new(format!("{}/{}", q.active_leases, q.concurrent_limit)),
            ]);
        }
        ctx.out.line(&t.render(&screen))?;
        if let Some(l) = today_line(quotas.iter().map(|q| (q.provider, &q.account)), &costs) {
            for line in super::output::wrap(&l, screen.width) {
                ctx.out.line(&line)?;
            }
        }
        for c in &creds {
            if let Some(to) = &c.handed_over_to {
                let to = if to == "codex" { "Codex" } else { to.as_str() };
                ctx.out.line(&format!(
                    "{}/{}: handed over to {to}; refresh it there",
                    c.provider, c.account
                ))?;
            }
        }
        if let Some(w) = metered_warning(&ledger, &creds) {
            ctx.out.line(&w)?;
        }
        for line in health_lines(&ledger, &quotas, &said)? {
            for line in super::output::wrap(&line, screen.width) {
                ctx.out.line(&line)?;
            }
        }
        Ok(0)
    }
}

/// Up to two items per account with reported health worth knowing: its state (unavailable,
/// or the last status) and what the provider said of its use, one line of each (wrapped to the
/// terminal width when printed). The raw rate-limit headers are shown only when none of them
/// could be read as utilization (a bare `retry-after`, a provider's new header).
fn health_lines(
    ledger: &crate::ledger::Ledger,
    quotas: &[crate::quota::QuotaStatus],
    said: &[Vec<crate::health::ProviderUtilization>],
) -> Result<Vec<String>, Error> {
    let now = ledger.now();
    let mut out = Vec::new();
    for (q, items) in quotas.iter().zip(said) {
        let Some(h) = ledger.health(q.provider, &q.account)? else {
            continue;
        };
        let label = format!("{}/{}", q.provider, q.account);
        let state = match h.unavailable_until {
            Some(t) if t > now => format!(
                "unavailable until {} ({})",
                clock_time(t, now),
                h.reason.as_deref().unwrap_or("")
            ),
            _ => format!("last status {}", h.last_status.unwrap_or(0)),
        };
        let facts = if items.is_empty() {
            raw_facts(&h.facts)
        } else {
            String::new()
        };
        out.push(format!("health {label}: {state}{facts}"));
        out.extend(super::provider_says::line(&label, items, now));
    }
    Ok(out)
}

/// `; {headers}` as reported, less the facts' own timestamp; empty when there are none.
fn raw_facts(facts: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(facts) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.remove(crate::health::FACTS_AT);
            if m.is_empty() {
                String::new()
            } else {
                format!("; {}", serde_json::Value::Object(m))
            }
        }
        _ => format!("; {facts}"),
    }
}

/// Whether each provider account can take a lease now, and why not.
#[derive(Debug, Args)]
pub struct ProvidersCmd {}

impl ProvidersCmd {
    /// Prints one row per account with a credential, in selection order, marking where the
    /// next `auto` agent goes.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        let (verdicts, next) = match ledger.select(&Choice::Auto) {
            Ok(d) => (d.considered.clone(), Some((d.provider, d.account.clone()))),
            Err(Error::Select(SelectError::NoneUsable(v, _))) => (v, None),
            Err(e) => return Err(e),
        };
        let rows: Vec<_> = verdicts
            .iter()
            .map(|v| {
                let is_next = next
                    .as_ref()
                    .is_some_and(|(p, a)| *p == v.provider && *a == v.account);
                ProviderJson::new(v, is_next)
            })
            .collect();
        if ctx.out.json {
            return ctx.out.json(&rows).map(|_| 0);
        }
        if rows.is_empty() {
            ctx.out.line(
                "no credentials: run `authledger login claude` or `authledger login openai`",
            )?;
            return Ok(0);
        }
        let now = ctx.clock().now_ms();
        let mut t = Grid::new(&[("provider", 0), ("usable", 0), ("why", 0), ("", 1)]);
        for r in &rows {
            t.row([
                Cell::new(format!("{}/{}", r.provider, r.account)),
                if r.usable {
                    coloured("yes", Color::Green)
                } else {
                    coloured("no", Color::Red)
                },
                Cell::new(times_for_people(&r.reason, now)),
                Cell::new(if r.next { "<- next agent" } else { "" }),
            ]);
        }
        ctx.out.line(&t.render(&ctx.out.screen()))?;
        Ok(0)
    }
}

/// A one-line recommendation when `auto` is passing over its first choice, e.g.
/// "claude/default at 86 % of its day window; new agents will go to openai/default", its
/// times for people at `now`.
pub fn recommendation(ledger: &crate::ledger::Ledger, now: crate::types::Millis) -> Option<String> {
    let d = ledger.select(&Choice::Auto).ok()?;
    let (p, a, why) = d.fallback_from?;
    Some(format!(
        "{p}/{a} {}; new agents will go to {}/{}",
        times_for_people(&why, now),
        d.provider,
        d.account
    ))
}

/// A warning when new agents are billed per token although a subscription exists.
pub fn metered_warning(
    ledger: &crate::ledger::Ledger,
    creds: &[crate::vault::CredentialSummary],
) -> Option<String> {
    let d = ledger.select(&Choice::Auto).ok()?;
    let chosen = creds
        .iter()
        .find(|c| c.provider == d.provider && c.account == d.account)?;
    let has_subscription = creds.iter().any(|c| c.kind == CredentialKind::Oauth);
    (chosen.kind == CredentialKind::ApiKey && has_subscription).then(|| {
        format!(
            "warning: new agents are billed per token on {}/{} (API key): {}",
            d.provider, d.account, d.reason
        )
    })
}
