//! `authledger lease acquire|renew|release|list`

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::json::{AcquiredJson, LeaseJson, ReleasedJson};
use super::output::{Grid, when};
use super::{Ctx, args};
use crate::clock::Clock;
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

    /// Acquires, retrying while refused until `--wait` has run its whole course (with a
    /// spinner in a terminal); only the last refusal is audited. A request no account could
    /// ever grant (more tokens than a budget window's whole limit) is refused at once.
    pub fn acquire(&self, ledger: &Ledger, clock: &dyn Clock) -> Result<(Lease, Decision), Error> {
        self.request(true).validate()?;
        let choice = self.choice()?;
        let start = clock.now_ms();
        let wait = match self.wait {
            Some(w) if !self.never_fits(ledger)? => Some(w),
            _ => None,
        };
        let deadline = wait.map(|w| start + i64::try_from(w.as_millis()).unwrap_or(i64::MAX / 4));
        let spinner = (deadline.is_some() && std::io::stderr().is_terminal())
            .then(|| Spinner::start(&self.waiting_for(), start));
        let mut pause = Duration::from_millis(100);
        let result = loop {
            let now = clock.now_ms();
            let last = deadline.is_none_or(|d| now >= d);
            match ledger.acquire_selected(&self.request(last), &choice) {
                Err(e @ (Error::Quota(QuotaError::Denied(_)) | Error::Select(_))) if !last => {
                    if let Some(s) = &spinner {
                        s.refused(&e);
                    }
                    // Never past the deadline: the last try is at it, not before.
                    let left = deadline.map_or(0, |d| d - now);
                    let nap = pause.min(Duration::from_millis(u64::try_from(left).unwrap_or(0)));
                    clock.sleep(nap);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => break other,
            }
        };
        drop(spinner);
        result
    }

    /// What the spinner says it waits for: `20000 tokens on claude`, `a fair share on any
    /// provider`.
    fn waiting_for(&self) -> String {
        let what = self
            .tokens
            .map_or("a fair share".to_string(), |n| format!("{n} tokens"));
        let on = match (self.provider.0, &self.account) {
            (Some(p), Some(a)) => format!("{p}/{a}"),
            (Some(p), None) => p.to_string(),
            (None, _) => "any provider".into(),
        };
        format!("{what} on {on}")
    }

    /// Whether the tokens asked for exceed a budget window's whole limit on every account
    /// the choice allows, so no wait could help.
    fn never_fits(&self, ledger: &Ledger) -> Result<bool, Error> {
        let Some(asked) = self.tokens else {
            return Ok(false);
        };
        let accounts = ledger.quota(self.provider.0)?;
        let candidates: Vec<_> = accounts
            .iter()
            .filter(|q| self.account.as_ref().is_none_or(|a| *a == q.account))
            .collect();
        Ok(!candidates.is_empty()
            && candidates.iter().all(|q| {
                q.windows.iter().any(|w| {
                    w.kind != crate::types::WindowKind::Minute
                        && w.limit.is_some_and(|limit| asked > limit)
                })
            }))
    }
}

/// The terminal spinner while `--wait` retries: what it waits for, since when, the latest
/// refusal; cleared when the wait ends or on Ctrl-C (which then exits 130).
struct Spinner {
    bar: indicatif::ProgressBar,
    what: String,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Spinner {
    fn start(what: &str, since: i64) -> Spinner {
        let bar = indicatif::ProgressBar::new_spinner();
        let what = format!(
            "waiting for {what} since {} ({{elapsed}})",
            super::output::local(since, "%H:%M:%S")
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!("{{spinner}} {what}")) {
            bar.set_style(style);
        }
        let (done, stop) = tokio::sync::oneshot::channel();
        let (ready, listening) = std::sync::mpsc::channel();
        let on_interrupt = bar.clone();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut interrupt) = signal(SignalKind::interrupt()) else {
                    return;
                };
                let _ = ready.send(());
                tokio::select! {
                    _ = interrupt.recv() => {
                        on_interrupt.finish_and_clear();
                        eprintln!("authledger: interrupted while waiting; nothing acquired");
                        std::process::exit(crate::exit::INTERRUPTED);
                    },
                    _ = stop => {}
                }
            });
        });
        // Ctrl-C is caught before anything is drawn, so it never leaves a spinner behind.
        let _ = listening.recv_timeout(Duration::from_secs(2));
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner {
            bar,
            what,
            done: Some(done),
        }
    }

    /// Shows the latest refusal beside what it waits for.
    fn refused(&self, why: &Error) {
        let why = why.to_string();
        let short = crate::types::truncate_for_message(&why);
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {}\n  {{msg}}",
            self.what
        )) {
            self.bar.set_style(style);
        }
        self.bar.set_message(short);
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        self.bar.finish_and_clear();
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
        let (lease, decision) = self.args.acquire(&ledger, ctx.clock())?;
        if ctx.out.json {
            ctx.out.json(&AcquiredJson::new(&lease, &decision))?;
        } else {
            // The id alone before the tab (`cut -f1`); why this account, below, within the width.
            ctx.out.line(&format!(
                "{}\t{} tokens on {}/{} for {}",
                lease.id, lease.allocated, lease.provider, lease.account, lease.agent,
            ))?;
            let why = format!(
                "  expires {}; {}",
                when(lease.expires_at, ctx.clock().now_ms()),
                super::output::times_for_people(&decision.reason, ctx.clock().now_ms())
            );
            for line in super::output::wrap(&why, ctx.out.screen().width) {
                ctx.out.line(&line)?;
            }
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
                        "{} renewed, expires {}",
                        lease.id,
                        when(lease.expires_at, ctx.clock().now_ms())
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
                let screen = ctx.out.screen();
                let now = ctx.clock().now_ms();
                let mut t = Grid::new(&[
                    ("lease", 0),
                    ("agent", 0),
                    ("provider", 2),
                    ("allocated", 0),
                    ("used", 0),
                    ("state", 1),
                    ("expires", 1),
                ]);
                for l in leases {
                    t.row([
                        l.id.to_string(),
                        l.agent.to_string(),
                        format!("{}/{}", l.provider, l.account),
                        l.allocated.to_string(),
                        l.used.to_string(),
                        l.state.to_string(),
                        when(l.expires_at, now),
                    ]);
                }
                ctx.out.line(&t.render(&screen))?;
                Ok(0)
            }
        }
    }
}
