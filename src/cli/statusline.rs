//! `authledger statusline`: one line for Claude Code's `statusLine` setting
//! (`{"statusLine": {"type": "command", "command": "authledger statusline"}}`).
//!
//! Claude Code runs the command on every update with a JSON object on stdin (`session_id`,
//! `model.display_name`, `workspace.current_dir`, `cost.total_cost_usd`, …) and shows the
//! first line printed. The line: `Opus 4.1 │ lease 12.3k left │ claude/default day 42% │ 5h 61%
//! │ $1.23`, cut to 80 columns.
//!
//! **Which lease.** `AUTHLEDGER_LEASE_ID` from the environment (Claude Code started by
//! `authledger run`, or with `authledger env`, passes it on to the command); else the one
//! active Claude lease if there is exactly one. Leases do not record Claude Code's session id,
//! so with several active leases and no `AUTHLEDGER_LEASE_ID` none is guessed: the line says
//! how many there are. **Which account**: the lease's, else `claude/default`, else the first
//! Claude account. The cost is the lease's usage records priced by the table in force; the
//! provider's `5h` figure is its last reported utilization, when it reported one.
//!
//! It never fails noisily: the ledger is opened read-only (no daemon, no network, nothing
//! written), and a missing ledger or unreadable stdin prints a short line and exits 0, since a
//! failing command blanks Claude Code's status line.

use std::io::{IsTerminal, Read};

use clap::Args;
use serde_json::Value;

use super::Ctx;
use crate::error::Error;
use crate::health::{self, ProviderUtilization};
use crate::ledger::Ledger;
use crate::records::{Lease, UsageGroup};
use crate::types::{LeaseId, LeaseState, Provider, WindowKind};

/// The environment variable naming the session's lease.
const LEASE_VAR: &str = "AUTHLEDGER_LEASE_ID";

/// The most of stdin read: Claude Code's object is a few hundred bytes.
const MAX_INPUT: u64 = 256 * 1024;

/// The widest line printed.
const WIDTH: usize = 80;

/// Between the line's parts.
const SEP: &str = " │ ";

/// Print one status line for Claude Code from the JSON it passes on stdin.
#[derive(Debug, Args)]
pub struct StatuslineCmd {}

impl StatuslineCmd {
    /// Prints the line; always exits 0.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let session = read_session();
        let lease_id = std::env::var(LEASE_VAR).ok().filter(|v| !v.is_empty());
        let line = match &session {
            None => "authledger: no session data on stdin".to_string(),
            Some(session) => match ledger_parts(ctx, lease_id.as_deref()) {
                Ok(parts) => compose(session, &parts),
                Err(why) => format!("{}authledger: {why}", model_prefix(session)),
            },
        };
        // A closed stdout is not worth an error either.
        let _ = ctx.out.line(&cut(&line, WIDTH));
        Ok(0)
    }
}

/// Claude Code's object, if stdin holds one (a terminal is not waited on).
fn read_session() -> Option<Value> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return None;
    }
    let mut text = String::new();
    stdin
        .lock()
        .take(MAX_INPUT)
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str::<Value>(&text)
        .ok()
        .filter(Value::is_object)
}

/// `Opus 4.1 │ ` (nothing when Claude Code named no model).
fn model_prefix(session: &Value) -> String {
    session
        .pointer("/model/display_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|m| format!("{}{SEP}", one_line(m)))
        .unwrap_or_default()
}

/// The line from Claude Code's object and the ledger's parts.
fn compose(session: &Value, parts: &[String]) -> String {
    format!("{}{}", model_prefix(session), parts.join(SEP))
}

/// What the ledger says, part by part; `Err` is the short reason shown instead.
fn ledger_parts(ctx: &Ctx, lease_id: Option<&str>) -> Result<Vec<String>, String> {
    let path = ctx
        .db_path()
        .map_err(|_| "no ledger location".to_string())?;
    if !path.exists() {
        return Err("no ledger (authledger init)".into());
    }
    let ledger = ctx
        .open_read_only()
        .map_err(|_| "ledger unreadable".to_string())?;
    let mut parts = Vec::new();
    let lease = match lease_id {
        Some(id) => {
            let lease = LeaseId::parse(id)
                .ok()
                .and_then(|id| ledger.lease(&id).ok());
            parts.push(match &lease {
                Some(l) => lease_part(l),
                None => "lease unknown".into(),
            });
            lease
        }
        None => {
            let active: Vec<Lease> = ledger
                .leases(false)
                .map_err(|_| "ledger unreadable".to_string())?
                .into_iter()
                .filter(|l| l.provider == Provider::Claude)
                .collect();
            match active.len() {
                0 => parts.push("no lease".into()),
                1 => parts.push(lease_part(&active[0])),
                n => parts.push(format!("{n} leases")),
            }
            (active.len() == 1).then(|| active[0].clone())
        }
    };
    parts.extend(account_parts(&ledger, lease.as_ref()));
    if let Some(l) = &lease
        && let Some(cost) = lease_cost(ctx, &ledger, l)
    {
        parts.push(cost);
    }
    Ok(parts)
}

/// `lease 12.3k left`, or `lease ended` once it has.
fn lease_part(l: &Lease) -> String {
    if l.state != LeaseState::Active {
        return "lease ended".into();
    }
    format!("lease {} left", compact((l.allocated - l.used).max(0)))
}

/// `claude/default day 42%` and the provider's `5h 61%`, for the lease's account (else
/// Claude's default, else its first).
fn account_parts(ledger: &Ledger, lease: Option<&Lease>) -> Vec<String> {
    let Ok(quotas) = ledger.quota(Some(lease.map_or(Provider::Claude, |l| l.provider))) else {
        return Vec::new();
    };
    let q = match lease {
        Some(l) => quotas.iter().find(|q| q.account == l.account),
        None => quotas
            .iter()
            .find(|q| q.account.as_str() == "default")
            .or(quotas.first()),
    };
    let Some(q) = q else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    let day = q
        .windows
        .iter()
        .find(|w| w.kind == WindowKind::Day)
        .and_then(|w| w.percent);
    if let Some(p) = day {
        parts.push(format!("{}/{} day {p:.0}%", q.provider, q.account));
    }
    let said: Vec<ProviderUtilization> = ledger
        .health(q.provider, &q.account)
        .ok()
        .flatten()
        .map(|h| health::provider_utilization(&h))
        .unwrap_or_default();
    if let Some(u) = said
        .iter()
        .find(|u| u.window == "5h" || u.window_minutes == Some(300))
    {
        let stale = u.resets_at.is_some_and(|t| t <= ledger.now());
        parts.push(if stale {
            "5h reset".to_string()
        } else {
            format!("5h {:.0}%", u.used_percent)
        });
    }
    parts
}

/// What the lease's usage records cost at the prices in force (`?` when none is priced,
/// `≥ $x` when some are not); `None` when the prices cannot be read.
fn lease_cost(ctx: &Ctx, ledger: &Ledger, lease: &Lease) -> Option<String> {
    let prices = super::prices::in_force(ctx).ok()?;
    let costs = ledger
        .usage_cost(lease.created_at, UsageGroup::Session, &prices.table)
        .ok()?;
    Some(
        costs
            .get(lease.id.as_str())
            .copied()
            .unwrap_or_default()
            .cell(),
    )
}

/// `980`, `12.3k`, `1.2M`: a status line has no room for every digit.
fn compact(n: i64) -> String {
    match n {
        n if n < 10_000 => n.to_string(),
        n if n < 1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        n => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Control characters (a newline in a model name) would break the one line.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(30).collect()
}

/// At most `width` characters, the last an ellipsis when cut.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_are_compact() {
        assert_eq!(compact(980), "980");
        assert_eq!(compact(12_345), "12.3k");
        assert_eq!(compact(1_250_000), "1.2M");
    }

    #[test]
    fn long_lines_are_cut_to_the_width() {
        let long = "x".repeat(100);
        assert_eq!(cut(&long, 80).chars().count(), 80);
        assert!(cut(&long, 80).ends_with('…'));
        assert_eq!(cut("short", 80), "short");
    }
}
