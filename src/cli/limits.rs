//! `authledger limits set`

use clap::{Args, Subcommand};

use super::json::LimitsJson;
use super::{Ctx, args};
use crate::Limits;
use crate::error::Error;
use crate::quota::LimitsUpdate;
use crate::types::{Account, Provider};

/// Limits commands.
#[derive(Debug, Subcommand)]
pub enum LimitsCmd {
    /// Set some of a provider's limits; the others keep their value.
    Set(LimitsSet),
    /// Show each account's limits (of one provider, or all).
    Show {
        /// claude or openai (default: every provider).
        provider: Option<Provider>,
    },
}

/// `limits set <provider> [...]`
#[derive(Debug, Args)]
pub struct LimitsSet {
    /// claude or openai.
    provider: Provider,
    /// Which account of the provider.
    #[arg(long, default_value = "default")]
    account: Account,
    /// Tokens per day.
    #[arg(long, value_name = "N", value_parser = args::tokens, allow_negative_numbers = true)]
    daily_tokens: Option<i64>,
    /// Concurrent leases.
    #[arg(long, value_name = "N", value_parser = args::tokens, allow_negative_numbers = true)]
    concurrent: Option<i64>,
    /// Requests per minute, or `off`.
    #[arg(long, value_name = "N|off", value_parser = args::optional_limit, allow_negative_numbers = true)]
    rpm: Option<args::OptionalLimit>,
    /// Tokens per minute, or `off`.
    #[arg(long, value_name = "N|off", value_parser = args::optional_limit, allow_negative_numbers = true)]
    tpm: Option<args::OptionalLimit>,
    /// Tokens per 5-hour window from first use, or `off`.
    #[arg(long = "window-5h", value_name = "N|off", value_parser = args::optional_limit, allow_negative_numbers = true)]
    window_5h: Option<args::OptionalLimit>,
    /// Tokens per 7-day window from first use, or `off`.
    #[arg(long, value_name = "N|off", value_parser = args::optional_limit, allow_negative_numbers = true)]
    weekly: Option<args::OptionalLimit>,
    /// The most one fair-share lease may take, or `off` (daily ÷ concurrent).
    #[arg(long, value_name = "N|off", value_parser = args::optional_limit, allow_negative_numbers = true)]
    lease_cap: Option<args::OptionalLimit>,
    /// UTC time of day when the daily budget resets (HH:MM).
    #[arg(long, value_name = "HH:MM", value_parser = args::time_of_day)]
    reset_at: Option<i64>,
}

impl LimitsCmd {
    /// Runs the subcommand.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let s = match self {
            LimitsCmd::Set(s) => s,
            LimitsCmd::Show { provider } => return show(ctx, *provider),
        };
        let update = LimitsUpdate {
            daily_tokens: s.daily_tokens,
            concurrent: s.concurrent,
            rpm: s.rpm.map(|o| o.0),
            tpm: s.tpm.map(|o| o.0),
            window_5h_tokens: s.window_5h.map(|o| o.0),
            weekly_tokens: s.weekly.map(|o| o.0),
            lease_cap: s.lease_cap.map(|o| o.0),
            reset_offset_min: s.reset_at,
        };
        update.validate()?;
        let ledger = ctx.open()?;
        let l = ledger.set_limits(s.provider, &s.account, &update)?;
        if ctx.out.json {
            ctx.out.json(&LimitsJson::from(&l))?;
        } else {
            let summary = summary(&l);
            print_summary(ctx, &summary)?;
        }
        Ok(0)
    }
}

/// `limits show [<provider>]`: every account the ledger knows, in `quota`'s order.
fn show(ctx: &Ctx, provider: Option<Provider>) -> Result<i32, Error> {
    let ledger = ctx.open()?;
    let limits = ledger
        .quota(provider)?
        .iter()
        .map(|q| ledger.limits(q.provider, &q.account))
        .collect::<Result<Vec<_>, _>>()?;
    if ctx.out.json {
        let all: Vec<_> = limits.iter().map(LimitsJson::from).collect();
        return ctx.out.json(&all).map(|_| 0);
    }
    for l in &limits {
        print_summary(ctx, &summary(l))?;
    }
    Ok(0)
}

/// One account's limits in two lines, as `limits set` confirms them.
fn summary(l: &Limits) -> String {
    let opt = |v: Option<i64>| v.map_or("off".to_string(), |n| n.to_string());
    format!(
        "{}/{}: {} tokens/day (resets {:02}:{:02} UTC), {} concurrent\n  \
         5h {}, weekly {}, rpm {}, tpm {}, lease cap {}",
        l.provider,
        l.account,
        l.daily_tokens,
        l.reset_offset_min / 60,
        l.reset_offset_min % 60,
        l.concurrent,
        opt(l.window_5h_tokens),
        opt(l.weekly_tokens),
        opt(l.rpm),
        opt(l.tpm),
        l.effective_lease_cap()
    )
}

/// Prints a summary wrapped to the screen.
fn print_summary(ctx: &Ctx, summary: &str) -> Result<(), Error> {
    let width = ctx.out.screen().width;
    for line in summary.lines() {
        for line in super::output::wrap(line, width) {
            ctx.out.line(&line)?;
        }
    }
    Ok(())
}
