//! `authledger lease acquire|renew|release|list`

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::json::{AcquiredJson, LeaseJson, ReleasedJson};
use super::output::table;
use super::{Ctx, args};
use crate::clock::format_ms;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::quota::{AcquireRequest, QuotaError};
use crate::records::Lease;
use crate::select::{Choice, Decision};
use crate::types::{Account, AgentId, InvalidInput, LeaseId, Provider};

/// Lease commands.
#[derive(Debug, Subcommand)]
pub enum LeaseCmd {
    /// Reserve tokens and a concurrency slot for an agent.
    Acquire(Acquire),
    /// Heartbeat: extend a lease by its TTL.
    Renew {
        /// The lease id printed by acquire.
        lease_id: LeaseId,
        /// Refuse unless this is the lease's fencing number (printed by acquire --json).
        #[arg(long, value_name = "N")]
        fence: Option<i64>,
    },
    /// End a lease and return its unused tokens.
    Release {
        /// The lease id printed by acquire.
        lease_id: LeaseId,
        /// Refuse unless this is the lease's fencing number (printed by acquire --json).
        #[arg(long, value_name = "N")]
        fence: Option<i64>,
    },
    /// List active leases (or every lease with --all).
    List {
        /// Include ended leases.
        #[arg(long)]
        all: bool,
    },
}

/// A provider, or `auto` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderChoice(pub Option<Provider>);

/// Parses `claude`, `openai` or `auto`.
pub fn provider_choice(s: &str) -> Result<ProviderChoice, String> {
    match s {
        "auto" => Ok(ProviderChoice(None)),
        other => other
            .parse::<Provider>()
            .map(|p| ProviderChoice(Some(p)))
            .map_err(|e| e.to_string()),
    }
}

/// The acquisition arguments `lease acquire` and `run` share.
#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// Who the lease is for.
    #[arg(long)]
    pub agent: AgentId,
    /// claude, openai or auto (preferred provider, then Claude, then OpenAI, with fallback).
    #[arg(long, value_parser = provider_choice, default_value = "auto")]
    pub provider: ProviderChoice,
    /// Which account of the provider (default: the best one, subscriptions before API keys).
    #[arg(long)]
    pub account: Option<Account>,
    /// Exactly this many tokens (granted whole or refused); default: a fair share.
    #[arg(long, value_name = "N", value_parser = args::tokens, allow_negative_numbers = true)]
    pub tokens: Option<i64>,
    /// Time to live without a renew.
    #[arg(long, value_name = "DUR", value_parser = args::duration, default_value = "2h")]
    pub ttl: Duration,
    /// Keep retrying this long while refused.
    #[arg(long, value_name = "DUR", value_parser = args::duration)]
    pub wait: Option<Duration>,
}

impl AcquireArgs {
    fn choice(&self) -> Result<Choice, Error> {
        match (self.provider.0, &self.account) {
            (Some(p), a) => Ok(Choice::Explicit(p, a.clone())),
            (None, None) => Ok(Choice::Auto),
            (None, Some(_)) => {
                Err(InvalidInput("--account needs --provider claude|openai".into()).into())
            }
        }
    }

    fn request(&self, audit_denial: bool) -> AcquireRequest {
        let mut r = AcquireRequest::new(
            self.agent.clone(),
            self.provider.0.unwrap_or(Provider::Claude),
        )
        .ttl(self.ttl);
        r.tokens = self.tokens;
        r.audit_denial = audit_denial;
        r
    }

    /// Acquires, retrying while refused until `--wait` runs out (with a spinner in a terminal);
    /// only the last refusal is audited.
    pub fn acquire(&self, ledger: &Ledger) -> Result<(Lease, Decision), Error> {
        self.request(true).validate()?;
        let choice = self.choice()?;
        let deadline = self.wait.map(|w| Instant::now() + w);
        let spinner = (deadline.is_some() && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message("waiting for a slot or budget…");
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let mut pause = Duration::from_millis(100);
        let result = loop {
            let last = deadline.is_none_or(|d| Instant::now() + pause >= d);
            match ledger.acquire_selected(&self.request(last), &choice) {
                Err(Error::Quota(QuotaError::Denied(_)) | Error::Select(_)) if !last => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => break other,
            }
        };
        if let Some(s) = spinner {
            s.finish_and_clear();
        }
        result
    }
}

/// `lease acquire`
#[derive(Debug, Args)]
pub struct Acquire {
    #[command(flatten)]
    args: AcquireArgs,
}

impl Acquire {
    fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        self.args.request(true).validate()?;
        let ledger = ctx.open()?;
        let (lease, decision) = self.args.acquire(&ledger)?;
        if ctx.out.json {
            ctx.out.json(&AcquiredJson::new(&lease, &decision))?;
        } else {
            ctx.out.line(&format!(
                "{}\t{} tokens on {}/{} for {}, expires {} ({})",
                lease.id,
                lease.allocated,
                lease.provider,
                lease.account,
                lease.agent,
                format_ms(lease.expires_at),
                decision.reason
            ))?;
        }
        Ok(0)
    }
}

impl LeaseCmd {
    /// Runs the subcommand.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        match self {
            LeaseCmd::Acquire(a) => a.run(ctx),
            LeaseCmd::Renew { lease_id, fence } => {
                let ledger = ctx.open()?;
                if let Some(f) = fence {
                    ledger.check_fence(lease_id, *f)?;
                }
                let lease = ledger.renew(lease_id)?;
                if ctx.out.json {
                    ctx.out.json(&LeaseJson::from(&lease))?;
                } else {
                    ctx.out.line(&format!(
                        "{} renewed until {}",
                        lease.id,
                        format_ms(lease.expires_at)
                    ))?;
                }
                Ok(0)
            }
            LeaseCmd::Release { lease_id, fence } => {
                let ledger = ctx.open()?;
                if let Some(f) = fence {
                    ledger.check_fence(lease_id, *f)?;
                }
                let r = ledger.release(lease_id)?;
                if ctx.out.json {
                    ctx.out.json(&ReleasedJson {
                        lease: LeaseJson::from(&r.lease),
                        returned_tokens: r.returned,
                    })?;
                } else {
                    ctx.out.line(&format!(
                        "{} released: used {} of {}, returned {}",
                        r.lease.id, r.lease.used, r.lease.allocated, r.returned
                    ))?;
                }
                Ok(0)
            }
            LeaseCmd::List { all } => {
                let leases = ctx.open()?.leases(*all)?;
                if ctx.out.json {
                    let leases: Vec<_> = leases.iter().map(LeaseJson::from).collect();
                    return ctx.out.json(&leases).map(|_| 0);
                }
                let mut t = table(&[
                    "lease",
                    "agent",
                    "provider",
                    "allocated",
                    "used",
                    "state",
                    "expires",
                ]);
                for l in leases {
                    t.add_row(vec![
                        l.id.to_string(),
                        l.agent.to_string(),
                        format!("{}/{}", l.provider, l.account),
                        l.allocated.to_string(),
                        l.used.to_string(),
                        l.state.to_string(),
                        format_ms(l.expires_at),
                    ]);
                }
                ctx.out.line(&t.to_string())?;
                Ok(0)
            }
        }
    }
}
