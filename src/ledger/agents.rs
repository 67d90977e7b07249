//! The agents half of the façade: choosing a provider, taking a lease on it, provider health
//! and the preferred provider.

use serde_json::json;

use super::Ledger;
use super::op::{Op, Outcome};
use crate::agent::{self, AgentEnv, EnvInputs, Inherited, Metering};
use crate::audit::{self, AuditEvent, action};
use crate::error::Error;
use crate::health;
use crate::quota::{self, AcquireRequest, QuotaError};
use crate::random;
use crate::records::{HealthRecord, Lease};
use crate::select::{self, Choice, Decision, PREFERRED_KEY, SelectError};
use crate::store::Tx;
use crate::types::{Account, InvalidInput, LeaseId, Millis, Provider};

/// Selection and grant in `tx`, whoever commits the op. A fallback is
/// audited beside the grant. `Ok(Err(refusal))` is a refusal whose `deny` row (unless the
/// request turned auditing off) is written in `tx` and must commit with it.
pub(super) fn acquire_selected_in(
    tx: &mut Tx<'_>,
    now: Millis,
    idle_before: Millis,
    req: &AcquireRequest,
    choice: &Choice,
    id: LeaseId,
) -> Result<Result<(Lease, Decision), Error>, Error> {
    // A holder gone past its TTL or idle time gives back its slot and its tokens before the
    // candidates are judged: correctness never waits for cleanup.
    for (p, a) in select::candidate_accounts(tx, choice)? {
        quota::reclaim_stale(tx, now, idle_before, p, &a)?;
    }
    let decision = match select::select(tx, now, idle_before, choice, req.tokens) {
        Ok(d) => d,
        Err(SelectError::NoneUsable(considered, asked)) => {
            let (provider, account) = match choice {
                Choice::Explicit(p, a) => (Some(*p), a.clone()),
                Choice::Auto => (None, None),
            };
            let detail = json!({ "selection": &considered, "asked": asked });
            deny(tx, now, req, provider, account.as_ref(), detail)?;
            return Ok(Err(SelectError::NoneUsable(considered, asked).into()));
        }
        Err(e) => return Err(e.into()),
    };
    let mut req = req.clone();
    req.provider = decision.provider;
    req.account = decision.account.clone();
    if let Err(e) = super::credentials::require_usable(tx, req.provider, &req.account, now) {
        // A refusal is about the credential; a storage failure met while looking is not
        // (on a server it has aborted the transaction: nothing more may be written in it).
        if !matches!(&e, Error::Vault(v) if !matches!(v, crate::vault::VaultError::Store(_))) {
            return Err(e);
        }
        let detail = json!({ "credential": e.to_string() });
        deny(
            tx,
            now,
            &req,
            Some(req.provider),
            Some(&req.account),
            detail,
        )?;
        return Ok(Err(e));
    }
    let lease = match quota::acquire(tx, now, idle_before, &req, id)? {
        Ok(lease) => lease,
        // quota::acquire wrote its own `deny` row.
        Err(denial) => return Ok(Err(QuotaError::Denied(Box::new(denial)).into())),
    };
    if let Some((from_p, from_a, why)) = &decision.fallback_from {
        audit::append(
            tx,
            now,
            AuditEvent::new(
                action::FALLBACK,
                json!({
                    "from": format!("{from_p}/{from_a}"),
                    "to": format!("{}/{}", lease.provider, lease.account),
                    "reason": why,
                }),
            )
            .on(lease.provider, &lease.account)
            .by(&lease.agent)
            .lease(&lease.id),
        )?;
    }
    Ok(Ok((lease, decision)))
}

/// Writes the `deny` row of a refused acquire, unless the request turned auditing off (the
/// attempts of `--wait` but its last).
pub(super) fn deny(
    tx: &Tx<'_>,
    now: Millis,
    req: &AcquireRequest,
    provider: Option<Provider>,
    account: Option<&Account>,
    detail: serde_json::Value,
) -> Result<(), Error> {
    if !req.audit_denial {
        return Ok(());
    }
    let default = Account::default();
    let mut event = AuditEvent::new(action::DENY, detail).by(&req.agent);
    if let Some(p) = provider {
        event = event.on(p, account.unwrap_or(&default));
    }
    audit::append(tx, now, event)?;
    Ok(())
}

impl Ledger {
    /// Which provider account a new agent would get now, and why. No network, one read.
    pub fn select(&self, choice: &Choice) -> Result<Decision, Error> {
        let now = self.now();
        let idle_before = quota::idle_cutoff(now, self.config.idle_timeout);
        Ok(self
            .store
            .read(|tx| select::select(tx, now, idle_before, choice, None))?)
    }

    /// Chooses a provider account and takes a lease on it, in one transaction. The request's
    /// provider and account are replaced by the choice. A fallback is audited as `fallback`
    /// (from, to, reason) beside the `acquire` row.
    pub fn acquire_selected(
        &self,
        req: &AcquireRequest,
        choice: &Choice,
    ) -> Result<(Lease, Decision), Error> {
        req.validate()?;
        let id = LeaseId::from_random(random::bytes().map_err(QuotaError::from)?);
        let outcome = self.commit(Op::AcquireSelected {
            id,
            request: req.clone(),
            choice: choice.clone(),
        });
        // Leases reclaimed inline (here or by a committer) leave no private directory behind.
        self.sweep_lease_dirs();
        match outcome? {
            Outcome::Selected { lease, decision } => Ok((lease, decision)),
            other => Err(super::unexpected(&other)),
        }
    }

    /// Sets the preferred provider for `auto` (or clears it with `None`); audited as `switch`.
    pub fn switch(&self, provider: Option<Provider>) -> Result<(), Error> {
        let now = self.now();
        self.store.write(|tx| -> Result<_, Error> {
            let before = select::preferred(tx)?;
            tx.set_setting(PREFERRED_KEY, provider.map_or("auto", |p| p.as_str()))?;
            audit::append(
                tx,
                now,
                AuditEvent::new(
                    action::SWITCH,
                    json!({
                        "from": before.map_or("auto", |p| p.as_str()),
                        "to": provider.map_or("auto", |p| p.as_str()),
                    }),
                ),
            )?;
            Ok(())
        })
    }

    /// The preferred provider, if one is set.
    pub fn preferred(&self) -> Result<Option<Provider>, Error> {
        Ok(self.store.read(|tx| select::preferred(tx))?)
    }

    /// Feeds a provider's response into its health: a 429 or repeated 5xx make the account
    /// unavailable until the reset the headers give; rate-limit headers are kept.
    pub fn report_response(
        &self,
        provider: Provider,
        account: &Account,
        status: u16,
        headers: &[(String, String)],
    ) -> Result<HealthRecord, Error> {
        let now = self.now();
        Ok(self
            .store
            .write(|tx| health::report(tx, now, provider, account, status, headers))?)
    }

    /// The environment for an agent holding `lease` (see [`crate::agent`]), built on this
    /// process's environment; refreshes an OAuth token first if it is close to expiry, and
    /// notes the credential's last use. The agent holds the real credential: see
    /// [`Ledger::agent_env_metered`] for one that does not.
    pub fn agent_env(&self, lease: &Lease) -> Result<AgentEnv, Error> {
        self.agent_env_for(lease, None, &Inherited::from_process())
    }

    /// The environment for a metered agent holding `lease`: a new lease token
    /// ([`Ledger::issue_lease_token`]) in every place the credential would go, and the
    /// gateway at `gateway_url` (`http://127.0.0.1:PORT`, no path) as every base URL. The
    /// caller hosts that gateway; the agent's requests reach the provider only through it.
    /// The real credential is neither refreshed nor given out: only its metadata is read.
    pub fn agent_env_metered(&self, lease: &Lease, gateway_url: &str) -> Result<AgentEnv, Error> {
        self.agent_env_for(lease, Some(gateway_url), &Inherited::from_process())
    }

    /// [`Ledger::agent_env`] (`gateway_url` `None`) or [`Ledger::agent_env_metered`] for an
    /// agent that inherits `inherited` rather than this process's environment (a daemon
    /// building the environment of another process, a test).
    pub fn agent_env_for(
        &self,
        lease: &Lease,
        gateway_url: Option<&str>,
        inherited: &Inherited,
    ) -> Result<AgentEnv, Error> {
        let limits = self.limits(lease.provider, &lease.account)?;
        let ledger_db = self.location_for_agents();
        let inputs = |credential, token, gateway, now| EnvInputs {
            lease,
            credential,
            token,
            rpm: limits.rpm,
            base_url: self.config.file.base_url(lease.provider),
            gateway,
            inherited,
            db_path: self.db_path(),
            ledger_db: &ledger_db,
            now,
        };
        let now = self.now();
        let env = match gateway_url {
            None => {
                // Refresh first, then read: the agent must get the credential as it is
                // after the refresh, never a refresh token that was just spent.
                let token = self.access_token(lease.provider, &lease.account)?;
                let credential = self.credential(lease.provider, &lease.account)?;
                agent::agent_env(inputs(&credential, Some(&token), None, now))?
            }
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(InvalidInput(format!(
                        "the gateway URL must start with http:// or https://, not {url:?}"
                    ))
                    .into());
                }
                let credential = self.credential(lease.provider, &lease.account)?.metadata();
                // Issued last before the files are written: an ended lease gets nothing.
                let token = self.issue_lease_token(&lease.id)?;
                let gateway = Metering { url, token: &token };
                agent::agent_env(inputs(&credential, None, Some(gateway), now))?
            }
        };
        self.store
            .write(|tx| tx.touch_credential(lease.provider, &lease.account, now))?;
        Ok(env)
    }

    /// What was last reported of an account's health.
    pub fn health(
        &self,
        provider: Provider,
        account: &Account,
    ) -> Result<Option<HealthRecord>, Error> {
        Ok(self.store.read(|tx| tx.health(provider, account))?)
    }
}
