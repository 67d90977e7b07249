//! The agents half of the façade: choosing a provider, taking a lease on it, provider health
//! and the preferred provider.

use serde_json::json;

use super::Ledger;
use crate::audit::{self, AuditEvent, action};
use crate::daemon::Call;
use crate::daemon::protocol::{Outcome, Request};
use crate::error::Error;
use crate::health;
use crate::quota::{self, AcquireRequest, Denial, QuotaError};
use crate::random;
use crate::records::{HealthRecord, Lease};
use crate::select::{self, Choice, Decision, PREFERRED_KEY};
use crate::store::Tx;
use crate::types::{Account, LeaseId, Millis, Provider};

/// Selection and grant in `tx`, both paths (direct and through the daemon) alike. A fallback is
/// audited beside the grant.
pub(super) fn acquire_selected_in(
    tx: &mut Tx<'_>,
    now: Millis,
    req: &AcquireRequest,
    choice: &Choice,
    id: LeaseId,
) -> Result<(Result<Lease, Denial>, Decision), Error> {
    let decision = select::select(tx, now, choice, req.tokens)?;
    let mut req = req.clone();
    req.provider = decision.provider;
    req.account = decision.account.clone();
    super::credentials::require_usable(tx, req.provider, &req.account, now)?;
    let granted = quota::acquire(tx, now, &req, id)?;
    if let (Ok(lease), Some((from_p, from_a, why))) = (&granted, &decision.fallback_from) {
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
    Ok((granted, decision))
}

impl Ledger {
    /// Which provider account a new agent would get now, and why. No network, one read.
    pub fn select(&self, choice: &Choice) -> Result<Decision, Error> {
        let now = self.now();
        Ok(self
            .store
            .read(|tx| select::select(tx, now, choice, None))?)
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
        let call = self.through_daemon(|| Request::AcquireSelected {
            id: id.clone(),
            request: req.clone(),
            choice: choice.clone(),
        });
        let resume = match call {
            Call::Replied(reply) => {
                return match (*reply)? {
                    Outcome::Selected { lease, decision } => Ok((lease, decision)),
                    other => Err(super::unexpected(&other)),
                };
            }
            Call::Lost => true,
            Call::NoDaemon => false,
        };
        let now = self.now();
        let outcome = self.store.write(|tx| -> Result<_, Error> {
            // The daemon may have granted it before going away: the lease id tells.
            // Selecting again would be wrong: this very lease may hold the last slot.
            if resume && let Some(lease) = tx.lease(&id)? {
                let decision = Decision {
                    provider: lease.provider,
                    account: lease.account.clone(),
                    reason: "granted by the daemon before its reply was lost".into(),
                    fallback_from: None,
                    considered: Vec::new(),
                };
                return Ok((Ok(lease), decision));
            }
            acquire_selected_in(tx, now, req, choice, id)
        })?;
        match outcome {
            (Ok(lease), decision) => Ok((lease, decision)),
            (Err(denial), _) => Err(Error::Quota(QuotaError::Denied(Box::new(denial)))),
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

    /// The environment for an agent holding `lease` (see [`crate::agent`]); refreshes an OAuth
    /// token first if it is close to expiry, and notes the credential's last use.
    pub fn agent_env(&self, lease: &Lease) -> Result<crate::agent::AgentEnv, Error> {
        // Refresh first, then read: the agent must get the credential as it is after the
        // refresh, never a refresh token that was just spent.
        let token = self.access_token(lease.provider, &lease.account)?;
        let credential = self.credential(lease.provider, &lease.account)?;
        let limits = self.limits(lease.provider, &lease.account)?;
        let now = self.now();
        let env = crate::agent::agent_env(crate::agent::EnvInputs {
            lease,
            credential: &credential,
            token: &token,
            rpm: limits.rpm,
            base_url: self.config.file.base_url(lease.provider),
            db_path: self.db_path(),
            now,
        })?;
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
