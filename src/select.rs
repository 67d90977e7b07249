//! Provider selection: which provider account a new agent gets, and why.
//!
//! Order for `auto` (README, "Selection"): the user's preferred provider (`switch`), then Claude, then
//! OpenAI; within a provider, subscription (OAuth) accounts before API keys, so metered
//! billing is the last resort. An account is taken when its credential is usable (valid or
//! refreshable), it is healthy, every window is under 80 % and a slot is free; failing that,
//! any account with a usable credential, health, budget left and a free slot. Every candidate's
//! verdict is kept, so a decision can always say why. Nothing here touches the network.

use serde::Serialize;

use crate::health;
use crate::quota::{QuotaStatus, quota_status};
use crate::store::{StoreError, Tx};
use crate::types::{Account, Millis, Provider};
use crate::vault::{self, CredentialKind, Usability, VaultError};

/// Above this share of any window, an account is only a fallback.
pub const BUSY_PERCENT: f64 = 80.0;

/// The settings key of the preferred provider.
pub const PREFERRED_KEY: &str = "preferred_provider";

/// What the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// This provider (and, if given, this account); accounts of the provider may stand in for
    /// each other, other providers may not.
    Explicit(Provider, Option<Account>),
    /// The best provider by the rules.
    Auto,
}

/// One candidate and the verdict on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// `None` if it passes every test, else why not.
    pub problem: Option<String>,
    /// What kind of problem [`problem`](Self::problem) is, which decides the exit code when no
    /// account can take an agent.
    #[serde(skip_serializing)]
    pub kind: Option<Problem>,
    /// Whether it could still serve as a last resort (usable, healthy, budget and slot left).
    pub fallback_ok: bool,
}

/// Why a candidate account was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// No credential is stored for it.
    NoCredential,
    /// Its credential's refresh was refused: only a new login helps.
    NeedsLogin,
    /// Its credential expired and cannot be refreshed here.
    Expired,
    /// The provider reported it unhealthy (rate-limited, overloaded, refusing).
    Unhealthy,
    /// Every concurrency slot is taken.
    NoSlot,
    /// A window's budget is spent.
    BudgetSpent,
    /// Fewer tokens are left than were asked for.
    TooFewTokens,
    /// It is above [`BUSY_PERCENT`] of a window: usable, but only as a fallback.
    Busy,
}

impl Problem {
    /// Every kind, in the order [`judge`] tests them.
    const ALL: [Problem; 8] = [
        Problem::NoCredential,
        Problem::NeedsLogin,
        Problem::Expired,
        Problem::Unhealthy,
        Problem::NoSlot,
        Problem::BudgetSpent,
        Problem::TooFewTokens,
        Problem::Busy,
    ];

    /// The words a verdict's text of this kind starts with: [`judge`] writes them, and
    /// [`Problem::of_text`] reads them back.
    fn prefix(self) -> &'static str {
        match self {
            Problem::NoCredential => "no credential",
            Problem::NeedsLogin => "needs login",
            Problem::Expired => "credential expired",
            Problem::Unhealthy => "unhealthy until",
            Problem::NoSlot => "no free slot",
            Problem::BudgetSpent => "budget spent",
            Problem::TooFewTokens => "only ",
            Problem::Busy => "at ",
        }
    }

    /// Whether the problem is the credential's (missing, refused or expired): only a login
    /// helps, so a selection failing on these alone is an auth failure, not a denial.
    pub fn is_credential(self) -> bool {
        matches!(
            self,
            Problem::NoCredential | Problem::NeedsLogin | Problem::Expired
        )
    }

    /// The kind of a verdict's text as stored (audit rows) or sent (the daemon's wire, which
    /// carries the text alone). A text this build does not write counts as a refusal
    /// ([`Problem::Busy`]), never as a credential problem.
    pub fn of_text(text: &str) -> Problem {
        Problem::ALL
            .into_iter()
            .find(|kind| text.starts_with(kind.prefix()))
            .unwrap_or(Problem::Busy)
    }
}

/// The choice made, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The chosen provider.
    pub provider: Provider,
    /// The chosen account.
    pub account: Account,
    /// Why it was chosen.
    pub reason: String,
    /// The account that would have been first, if this is a fallback, and why it was passed
    /// over.
    pub fallback_from: Option<(Provider, Account, String)>,
    /// Every candidate in order with its verdict.
    pub considered: Vec<Verdict>,
}

/// No account can take an agent; each candidate says why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// A storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A vault failure.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Nothing usable; each candidate says why. The second field is what was asked, if known.
    #[error("no provider can take an agent now{}: {}", asked_text(*.1), summary(.0))]
    NoneUsable(Vec<Verdict>, Option<i64>),
}

fn asked_text(asked: Option<i64>) -> String {
    match asked {
        Some(n) => format!(" (asked {n} tokens)"),
        None => String::new(),
    }
}

fn summary(v: &[Verdict]) -> String {
    if v.is_empty() {
        return "no credentials stored (run `authledger login`)".into();
    }
    v.iter()
        .map(|c| {
            format!(
                "{}/{}: {}",
                c.provider,
                c.account,
                c.problem.as_deref().unwrap_or("ok")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The preferred provider set by `switch`, if any.
pub fn preferred(tx: &Tx<'_>) -> Result<Option<Provider>, StoreError> {
    Ok(tx.setting(PREFERRED_KEY)?.and_then(|v| v.parse().ok()))
}

/// Candidates in order: (provider, account, kind).
fn candidates(
    tx: &Tx<'_>,
    choice: &Choice,
) -> Result<Vec<(Provider, Account, CredentialKind)>, SelectError> {
    let providers: Vec<Provider> = match choice {
        Choice::Explicit(p, _) => vec![*p],
        Choice::Auto => {
            let mut order = Vec::new();
            if let Some(p) = preferred(tx)? {
                order.push(p);
            }
            for p in Provider::ALL {
                if !order.contains(&p) {
                    order.push(p);
                }
            }
            order
        }
    };
    let records = tx.credential_records()?;
    let mut out = Vec::new();
    for p in providers {
        let mut accounts: Vec<(Provider, Account, CredentialKind)> = records
            .iter()
            .filter(|r| r.provider == p)
            .filter(|r| match choice {
                Choice::Explicit(_, Some(a)) => &r.account == a,
                _ => true,
            })
            .filter_map(|r| {
                let kind = r.kind.parse().ok()?;
                Some((r.provider, r.account.clone(), kind))
            })
            .collect();
        // Subscriptions first: metered API billing is the last resort.
        accounts.sort_by_key(|(_, a, k)| (*k == CredentialKind::ApiKey, a.clone()));
        if accounts.is_empty() && *choice == Choice::Auto {
            // A provider with no credential is still a candidate, so the decision can say why
            // it was passed over.
            accounts.push((p, Account::default(), CredentialKind::ApiKey));
        }
        out.extend(accounts);
    }
    if let Choice::Explicit(p, a) = choice
        && out.is_empty()
    {
        // Name the missing credential rather than returning an empty list.
        out.push((*p, a.clone().unwrap_or_default(), CredentialKind::ApiKey));
    }
    Ok(out)
}

fn judge(
    tx: &Tx<'_>,
    now: Millis,
    idle_before: Millis,
    p: Provider,
    a: &Account,
    quota: &[QuotaStatus],
    asked: Option<i64>,
) -> Result<Verdict, SelectError> {
    let passes = Verdict {
        provider: p,
        account: a.clone(),
        problem: None,
        kind: None,
        fallback_ok: true,
    };
    // The text is the kind's prefix and then `rest`, so the kind can be read back from it.
    let refused = |kind: Problem, rest: String, fallback_ok| Verdict {
        problem: Some(format!("{}{rest}", kind.prefix())),
        kind: Some(kind),
        fallback_ok,
        ..passes.clone()
    };
    match vault::usability(tx, p, a, now)? {
        Usability::Usable { .. } => {}
        Usability::Missing => {
            return Ok(refused(
                Problem::NoCredential,
                format!(" (run `{}`)", vault::login_command(p, a)),
                false,
            ));
        }
        Usability::NeedsLogin => {
            return Ok(refused(
                Problem::NeedsLogin,
                " (refresh refused)".into(),
                false,
            ));
        }
        Usability::Expired { at, remedy } => {
            return Ok(refused(
                Problem::Expired,
                format!(" {}; {remedy}", crate::clock::format_ms(at)),
                false,
            ));
        }
    }
    if let Some((until, why)) = health::unavailable(tx.health(p, a)?.as_ref(), now) {
        return Ok(refused(
            Problem::Unhealthy,
            format!(" {}: {why}", crate::clock::format_ms(until)),
            false,
        ));
    }
    let Some(q) = quota.iter().find(|q| q.provider == p && &q.account == a) else {
        return Ok(passes);
    };
    if q.active_leases >= q.concurrent_limit {
        let frees = match tx.active_lease_count(p, a, now, idle_before)?.1 {
            Some(t) => format!(
                "; a slot frees by {} at the latest",
                crate::clock::format_ms(t)
            ),
            None => String::new(),
        };
        return Ok(refused(
            Problem::NoSlot,
            format!(
                " ({}/{} leases{frees})",
                q.active_leases, q.concurrent_limit
            ),
            false,
        ));
    }
    let budget_left = q
        .windows
        .iter()
        .filter(|w| w.kind != crate::types::WindowKind::Minute)
        .all(|w| w.remaining.is_none_or(|r| r > 0));
    if !budget_left {
        let resets = q
            .windows
            .iter()
            .filter(|w| w.kind != crate::types::WindowKind::Minute && w.remaining == Some(0))
            .filter_map(|w| w.resets_at)
            .max();
        let when = resets.map_or(String::new(), |t| {
            format!(" (resets at {})", crate::clock::format_ms(t))
        });
        return Ok(refused(Problem::BudgetSpent, when, false));
    }
    if let Some(n) = asked {
        let left = q
            .windows
            .iter()
            .filter(|w| w.kind != crate::types::WindowKind::Minute)
            .filter_map(|w| w.remaining)
            .min();
        if let Some(left) = left.filter(|left| *left < n) {
            return Ok(refused(
                Problem::TooFewTokens,
                format!("{left} tokens left (asked {n})"),
                false,
            ));
        }
    }
    if let Some(w) = q
        .windows
        .iter()
        .find(|w| w.percent.is_some_and(|pct| pct >= BUSY_PERCENT))
    {
        return Ok(refused(
            Problem::Busy,
            format!("{:.0} % of its {} window", w.percent.unwrap_or(0.0), w.kind),
            true,
        ));
    }
    Ok(passes)
}

/// The provider accounts `choice` may be served by, in no particular order: what an acquire
/// reclaims stale leases of before it selects, so a crashed holder's slot and tokens count as
/// free.
pub fn candidate_accounts(
    tx: &Tx<'_>,
    choice: &Choice,
) -> Result<Vec<(Provider, Account)>, SelectError> {
    Ok(candidates(tx, choice)?
        .into_iter()
        .map(|(p, a, _)| (p, a))
        .collect())
}

/// Chooses a provider account for a new agent; `asked` (a named token figure) rules out
/// accounts that cannot grant it whole. A lease past its TTL, or not heard from since
/// `idle_before`, holds no slot: its holder is gone, and the acquire reclaims it.
pub fn select(
    tx: &Tx<'_>,
    now: Millis,
    idle_before: Millis,
    choice: &Choice,
    asked: Option<i64>,
) -> Result<Decision, SelectError> {
    let order = candidates(tx, choice)?;
    let quota = quota_status(
        tx,
        now,
        idle_before,
        match choice {
            Choice::Explicit(p, _) => Some(*p),
            Choice::Auto => None,
        },
    )?;
    let mut considered = Vec::with_capacity(order.len());
    for (p, a, _) in &order {
        considered.push(judge(tx, now, idle_before, *p, a, &quota, asked)?);
    }
    let pick = considered
        .iter()
        .position(|v| v.problem.is_none())
        .or_else(|| considered.iter().position(|v| v.fallback_ok));
    let Some(i) = pick else {
        return Err(SelectError::NoneUsable(considered, asked));
    };
    let first = &considered[0];
    let chosen = &considered[i];
    let fallback_from = (i != 0).then(|| {
        (
            first.provider,
            first.account.clone(),
            first.problem.clone().unwrap_or_default(),
        )
    });
    let reason = match (choice, &fallback_from, &chosen.problem) {
        (_, Some((fp, fa, why)), None) => format!("{fp}/{fa} {why}"),
        (_, Some((fp, fa, why)), Some(own)) => {
            format!(
                "{fp}/{fa} {why}; {}/{} is {own} but has a free slot",
                chosen.provider, chosen.account
            )
        }
        (_, None, Some(own)) => format!("the only candidate, {own}"),
        (Choice::Explicit(..), None, None) => "asked for".into(),
        (Choice::Auto, None, None) => match preferred(tx)? {
            Some(p) if p == chosen.provider => "preferred provider".into(),
            _ => "first usable provider".into(),
        },
    };
    Ok(Decision {
        provider: chosen.provider,
        account: chosen.account.clone(),
        reason,
        fallback_from,
        considered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdicts_kind_is_read_back_from_its_text() {
        for kind in Problem::ALL {
            let text = format!("{} (detail)", kind.prefix());
            assert_eq!(Problem::of_text(&text), kind, "{text}");
        }
        assert_eq!(Problem::of_text("words from another build"), Problem::Busy);
    }

    #[test]
    fn only_credential_problems_make_a_failed_selection_an_auth_failure() {
        let verdict = |kind: Problem| Verdict {
            provider: Provider::Openai,
            account: Account::default(),
            problem: Some(kind.prefix().into()),
            kind: Some(kind),
            fallback_ok: false,
        };
        let code = |kinds: &[Problem]| {
            crate::Error::from(SelectError::NoneUsable(
                kinds.iter().copied().map(verdict).collect(),
                None,
            ))
            .exit_code()
        };
        assert_eq!(
            code(&[Problem::NoCredential, Problem::Expired]),
            crate::exit::AUTH
        );
        assert_eq!(code(&[Problem::NeedsLogin]), crate::exit::AUTH);
        assert_eq!(
            code(&[Problem::NoCredential, Problem::NoSlot]),
            crate::exit::DENIED
        );
        assert_eq!(code(&[Problem::Unhealthy]), crate::exit::DENIED);
    }
}
