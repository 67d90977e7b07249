//! `authledger lease acquire|renew|release|list`

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::table;
use super::{Ctx, args};
use crate::clock::format_ms;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::quota::{AcquireRequest, QuotaError};
use crate::records::Lease;
use crate::types::{Account, AgentId, LeaseId, Provider};

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

/// Which provider to lease on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderChoice {
    /// Claude.
    Claude,
    /// OpenAI.
    Openai,
    /// The first provider, in order, that grants.
    Auto,
}

fn provider_choice(s: &str) -> Result<ProviderChoice, String> {
    match s {
        "auto" => Ok(ProviderChoice::Auto),
        other => match other.parse::<Provider>().map_err(|e| e.to_string())? {
            Provider::Claude => Ok(ProviderChoice::Claude),
            Provider::Openai => Ok(ProviderChoice::Openai),
        },
    }
}

/// `lease acquire`
#[derive(Debug, Args)]
pub struct Acquire {
    /// Who the lease is for.
    #[arg(long)]
    agent: AgentId,
    /// claude, openai or auto.
    #[arg(long, value_parser = provider_choice, default_value = "auto")]
    provider: ProviderChoice,
    /// Which account of the provider.
    #[arg(long, default_value = "default")]
    account: Account,
    /// Exactly this many tokens (granted whole or refused); default: a fair share.
    #[arg(long, value_name = "N", value_parser = args::tokens, allow_negative_numbers = true)]
    tokens: Option<i64>,
    /// Time to live without a renew.
    #[arg(long, value_name = "DUR", value_parser = args::duration, default_value = "2h")]
    ttl: Duration,
    /// Keep retrying this long while refused.
    #[arg(long, value_name = "DUR", value_parser = args::duration)]
    wait: Option<Duration>,
}

impl Acquire {
    fn requests(&self, audit_denial: bool) -> Vec<AcquireRequest> {
        let providers: &[Provider] = match self.provider {
            ProviderChoice::Claude => &[Provider::Claude],
            ProviderChoice::Openai => &[Provider::Openai],
            ProviderChoice::Auto => &Provider::ALL,
        };
        providers
            .iter()
            .map(|p| {
                let mut r = AcquireRequest::new(self.agent.clone(), *p)
                    .ttl(self.ttl)
                    .account(self.account.clone());
                r.tokens = self.tokens;
                r.audit_denial = audit_denial;
                r
            })
            .collect()
    }

    /// One pass over the candidate providers: the first grant, or the first refusal.
    fn try_once(&self, ledger: &Ledger, audit_denial: bool) -> Result<Lease, Error> {
        let mut first_denial = None;
        for req in self.requests(audit_denial) {
            match ledger.acquire(&req) {
                Ok(lease) => return Ok(lease),
                Err(e @ Error::Quota(QuotaError::Denied(_))) => {
                    first_denial.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(
            first_denial.unwrap_or(Error::Invalid(crate::types::InvalidInput(
                "no provider to lease on".into(),
            ))),
        )
    }

    fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        for req in self.requests(true) {
            req.validate()?;
        }
        let ledger = ctx.open()?;
        let deadline = self.wait.map(|w| Instant::now() + w);
        let mut pause = Duration::from_millis(100);
        let lease = loop {
            // Only the last attempt's refusal goes to the audit trail: waiting is not news.
            let last = deadline.is_none_or(|d| Instant::now() + pause >= d);
            match self.try_once(&ledger, last) {
                Err(Error::Quota(QuotaError::Denied(_))) if !last => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => break other?,
            }
        };
        if ctx.out.json {
            ctx.out.json(&json!({
                "lease_id": lease.id,
                "provider": lease.provider,
                "account": lease.account,
                "agent": lease.agent,
                "allocated_tokens": lease.allocated,
                "expires_at": format_ms(lease.expires_at),
                "expires_at_ms": lease.expires_at,
                "fence": lease.fence,
                "ttl_ms": lease.ttl_ms,
            }))?;
        } else {
            ctx.out.line(&format!(
                "{}\t{} tokens on {}/{} for {}, expires {}",
                lease.id,
                lease.allocated,
                lease.provider,
                lease.account,
                lease.agent,
                format_ms(lease.expires_at)
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
                    ctx.out.json(&json!({
                        "lease_id": lease.id,
                        "expires_at": format_ms(lease.expires_at),
                        "expires_at_ms": lease.expires_at,
                        "fence": lease.fence,
                    }))?;
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
                    ctx.out.json(&json!({
                        "lease_id": r.lease.id,
                        "allocated_tokens": r.lease.allocated,
                        "used_tokens": r.lease.used,
                        "returned_tokens": r.returned,
                    }))?;
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
