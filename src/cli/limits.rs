//! `authledger limits set`

use clap::{Args, Subcommand};

use super::json::{LimitsJson, LimitsShowJson};
use super::{Ctx, args};
use crate::Limits;
use crate::calibrate::{self, Estimate, NotYet};
use crate::error::Error;
use crate::ledger::Calibration;
use crate::quota::LimitsUpdate;
use crate::types::{Account, InvalidInput, Provider, truncate_for_message};

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
    /// Tokens per 5-hour window from first use, `off`, or `auto` (the calibrated estimate).
    #[arg(long = "window-5h", value_name = "N|off|auto", value_parser = window_limit, allow_negative_numbers = true)]
    window_5h: Option<WindowLimit>,
    /// Tokens per 7-day window from first use, `off`, or `auto` (the calibrated estimate).
    #[arg(long, value_name = "N|off|auto", value_parser = window_limit, allow_negative_numbers = true)]
    weekly: Option<WindowLimit>,
    /// A Claude plan's 5-hour window from community estimates: pro, max5 or max20.
    #[arg(long, value_name = "PLAN", conflicts_with = "window_5h")]
    plan: Option<String>,
    /// The most one fair-share lease may take, or `off` (daily ÷ concurrent).
    #[arg(long, value_name = "N|off", value_parser = args::optional_limit, allow_negative_numbers = true)]
    lease_cap: Option<args::OptionalLimit>,
    /// UTC time of day when the daily budget resets (HH:MM).
    #[arg(long, value_name = "HH:MM", value_parser = args::time_of_day)]
    reset_at: Option<i64>,
}

/// A window's limit as given: a figure or `off`, or `auto` for the calibrated estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowLimit {
    /// A figure, or `off` (`None`).
    Given(Option<i64>),
    /// The estimate from the provider's utilization beside the metered tokens.
    Auto,
}

/// Parses a [`WindowLimit`].
fn window_limit(s: &str) -> Result<WindowLimit, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(WindowLimit::Auto);
    }
    args::optional_limit(s).map(|o| WindowLimit::Given(o.0))
}

impl LimitsCmd {
    /// Runs the subcommand.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let s = match self {
            LimitsCmd::Set(s) => s,
            LimitsCmd::Show { provider } => return show(ctx, *provider),
        };
        let plan = s
            .plan
            .as_deref()
            .map(|name| preset(s.provider, name))
            .transpose()?;
        let given = |w: Option<WindowLimit>| match w {
            Some(WindowLimit::Given(v)) => Some(v),
            _ => None,
        };
        let mut update = LimitsUpdate {
            daily_tokens: s.daily_tokens,
            concurrent: s.concurrent,
            rpm: s.rpm.map(|o| o.0),
            tpm: s.tpm.map(|o| o.0),
            window_5h_tokens: given(s.window_5h),
            weekly_tokens: given(s.weekly),
            lease_cap: s.lease_cap.map(|o| o.0),
            reset_offset_min: s.reset_at,
        };
        if let Some(p) = plan {
            update.window_5h_tokens = Some(Some(p.window_5h_tokens));
        }
        let wants_auto = [s.window_5h, s.weekly].contains(&Some(WindowLimit::Auto));
        // Checked before anything is read, with a stand-in for an `auto` figure.
        let mut checked = update.clone();
        if s.window_5h == Some(WindowLimit::Auto) {
            checked.window_5h_tokens = Some(Some(1));
        }
        if s.weekly == Some(WindowLimit::Auto) {
            checked.weekly_tokens = Some(Some(1));
        }
        checked.validate()?;
        let ledger = ctx.open()?;
        let mut notes = Vec::new();
        if let Some(p) = plan {
            notes.push(format!(
                "5h from the community estimate for {} (~{} tokens; approximate, not \
                 published by Anthropic)",
                p.title, p.window_5h_tokens
            ));
        }
        if wants_auto {
            let c = ledger.calibration(s.provider, &s.account)?;
            let who = format!("{}/{}", s.provider, s.account);
            if s.window_5h == Some(WindowLimit::Auto) {
                let e = estimated(&who, "5h", c.window_5h)?;
                update.window_5h_tokens = Some(Some(e.limit));
                notes.push(format!(
                    "5h from the calibrated estimate: {}",
                    estimate_text(&e)
                ));
            }
            if s.weekly == Some(WindowLimit::Auto) {
                let e = estimated(&who, "weekly", c.weekly)?;
                update.weekly_tokens = Some(Some(e.limit));
                notes.push(format!(
                    "weekly from the calibrated estimate: {}",
                    estimate_text(&e)
                ));
            }
            update.validate()?;
        }
        let l = ledger.set_limits(s.provider, &s.account, &update)?;
        if ctx.out.json {
            ctx.out.json(&LimitsJson::from(&l))?;
        } else {
            let mut text = summary(&l);
            for note in notes {
                text.push_str("\n  ");
                text.push_str(&note);
            }
            print_summary(ctx, &text)?;
        }
        Ok(0)
    }
}

/// The preset for `--plan`: a Claude plan the community has estimated, else a usage error
/// naming the valid ones.
fn preset(provider: Provider, name: &str) -> Result<&'static calibrate::Plan, Error> {
    let names = calibrate::PLANS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ");
    let plan = calibrate::plan(name).ok_or_else(|| {
        InvalidInput(format!(
            "unknown plan {:?} (expected one of: {names})",
            truncate_for_message(name)
        ))
    })?;
    if provider != Provider::Claude {
        return Err(InvalidInput(format!(
            "--plan presets are Claude plans ({names}); give {provider} windows with \
             --window-5h N|auto"
        ))
        .into());
    }
    Ok(plan)
}

/// The estimate `auto` sets, or a usage error (exit 2) saying why there is none yet.
fn estimated(who: &str, window: &str, e: Result<Estimate, NotYet>) -> Result<Estimate, Error> {
    e.map_err(|n| {
        InvalidInput(format!(
            "no estimate of {who}'s {window} window yet ({} of {} reports with {} %+ used; \
             meter requests through the gateway first)",
            n.usable,
            n.needed,
            calibrate::MIN_PERCENT
        ))
        .into()
    })
}

/// `≈ 880000 tokens (±4 %, 12 samples, high confidence)`.
fn estimate_text(e: &Estimate) -> String {
    format!(
        "≈ {} tokens (±{} %, {} samples, {} confidence)",
        e.limit,
        e.margin_percent,
        e.samples,
        e.confidence.as_str()
    )
}

/// One window's estimate for `limits show`, or how far it is from having one.
fn calibration_text(window: &str, e: &Result<Estimate, NotYet>) -> String {
    match e {
        Ok(e) => format!("  estimated {window}: {}", estimate_text(e)),
        Err(n) => format!(
            "  estimated {window}: none yet ({} of {} reports)",
            n.usable, n.needed
        ),
    }
}

/// The lines `limits show` adds under an account's limits.
fn calibration_lines(c: &Calibration) -> String {
    format!(
        "{}\n{}",
        calibration_text("5h", &c.window_5h),
        calibration_text("weekly", &c.weekly)
    )
}

/// `limits show [<provider>]`: every account the ledger knows, in `quota`'s order.
fn show(ctx: &Ctx, provider: Option<Provider>) -> Result<i32, Error> {
    let ledger = ctx.open()?;
    let limits = ledger
        .quota(provider)?
        .iter()
        .map(|q| {
            Ok((
                ledger.limits(q.provider, &q.account)?,
                ledger.calibration(q.provider, &q.account)?,
            ))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if ctx.out.json {
        let all: Vec<_> = limits
            .iter()
            .map(|(l, c)| LimitsShowJson::new(l, c))
            .collect();
        return ctx.out.json(&all).map(|_| 0);
    }
    for (l, c) in &limits {
        print_summary(ctx, &format!("{}\n{}", summary(l), calibration_lines(c)))?;
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
