//! `access_token`: the one way every other part gets a usable credential, refreshing OAuth
//! tokens near expiry so that, across any number of processes, one refresh runs at a time.
//!
//! A refresh is claimed in the ledger (a row with its own expiry, so a dead claimer blocks the
//! others only briefly); the others wait and read the new token. The refreshed credential is
//! written with a compare-and-swap on its generation, so a refresh that lost a race, or raced a
//! new login, never overwrites a newer credential; a rotating refresh token is therefore never
//! presented twice by us. After an ambiguous failure (a timeout: the server may have rotated
//! the token) nothing is retried blindly; the old token is used while it is still valid, and
//! the next call starts again from what the ledger holds.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{OAuthError, RefreshOutcome, TokenSet, check_endpoint, refresh};
use crate::audit::{self, AuditEvent, action};
use crate::clock::Clock;
use crate::config_file::{ConfigFile, OAuthConfig};
use crate::random;
use crate::store::{Store, StoreError};
use crate::types::{Account, Millis, Provider};
use crate::vault::{self, Credential, CredentialKind, KeySource, RefreshVia, Secret, VaultError};

/// How `access_token` refreshes.
#[derive(Debug, Clone)]
pub struct RefreshPolicy {
    /// Refresh when the access token expires within this margin (default 5 min).
    pub margin: Duration,
    /// How long a claim holds off other refreshers (default 30 s).
    pub claim_ttl: Duration,
    /// How long a caller waits for another process's refresh before giving up (default 40 s).
    pub wait: Duration,
    /// Attempts for failures that surely did not reach the server (default 3).
    pub attempts: u32,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            margin: Duration::from_secs(5 * 60),
            claim_ttl: Duration::from_secs(30),
            wait: Duration::from_secs(40),
            attempts: 3,
        }
    }
}

/// What a refresh needs of a ledger: where credentials are stored, the time, the key that
/// opens them, how to refresh, and the configured OAuth endpoints.
pub struct Refresher<'a> {
    /// The ledger's store.
    pub store: &'a Store,
    /// Where "now" comes from.
    pub clock: &'a dyn Clock,
    /// The master key's source.
    pub key: &'a KeySource,
    /// How to refresh.
    pub policy: &'a RefreshPolicy,
    /// The parsed `config.toml`.
    pub config: &'a ConfigFile,
}

pub(crate) fn ms(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn needs_refresh(c: &Credential, now: Millis, margin: Duration) -> bool {
    c.kind == CredentialKind::Oauth && c.expires_at.is_some_and(|at| at - ms(margin) <= now)
}

fn still_valid(c: &Credential, now: Millis) -> bool {
    c.expires_at.is_none_or(|at| at > now)
}

impl Refresher<'_> {
    fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// The usable secret of a provider account: the API key, or the OAuth access token,
    /// refreshed first when it expires within `margin`.
    pub fn access_token(
        &self,
        provider: Provider,
        account: &Account,
        margin: Duration,
    ) -> Result<Secret, OAuthError> {
        let policy = self.policy;
        let holder = hex::encode(random::bytes::<8>().map_err(VaultError::from)?);
        let waited_since = Instant::now();
        let mut first_generation = None;
        loop {
            let now = self.now();
            let (credential, generation, status) =
                self.credential_with_generation(provider, account)?;
            // A token someone refreshed while we waited (or that we just refreshed) is taken as
            // it is while valid, even if the server gives tokens shorter-lived than the margin:
            // one refresh per expiry, not one per caller.
            let seen_refresh = *first_generation.get_or_insert(generation) != generation;
            if status == "needs_login" {
                return Err(VaultError::NotUsable {
                    provider,
                    account: account.clone(),
                    why: "its refresh was refused; log in again".into(),
                }
                .into());
            }
            if !needs_refresh(&credential, now, margin)
                || (seen_refresh && still_valid(&credential, now))
            {
                return credential.primary_secret().cloned().ok_or_else(|| {
                    VaultError::NoCredential {
                        provider,
                        account: account.clone(),
                    }
                    .into()
                });
            }
            let Some(refresh_token) = credential.refresh_token.clone() else {
                return self.fallback(&credential, now, "it has no refresh token");
            };
            // Only the endpoint and client it was issued through may refresh it; a token
            // imported from a tool that refreshes it itself (Claude Code, Codex) is never
            // refreshed here: it is used while it lasts.
            let Some(via) = credential
                .refresh_via
                .clone()
                .or_else(|| adopted_endpoint(self.config, provider, &credential))
            else {
                return self.fallback(&credential, now, &credential.expired_remedy());
            };
            let mut credential = credential;
            // Recorded with the refreshed tokens: from then on only this endpoint may refresh it.
            credential.refresh_via = Some(via.clone());
            let cfg = match refresh_config(self.config, provider, account, &via) {
                Ok(cfg) => cfg,
                Err(why) => return self.fallback(&credential, now, &why),
            };
            let claimed = self.store.write(|tx| -> Result<_, StoreError> {
                tx.try_claim_refresh(
                    provider,
                    account,
                    &holder,
                    generation,
                    now,
                    now + ms(policy.claim_ttl),
                )
            })?;
            if !claimed {
                // Another process is refreshing (or just did): wait for its result. While the
                // old token still has time left, a short wait is enough: if the refresher died,
                // the old token serves until its claim expires and someone takes over.
                let comfortable = credential
                    .expires_at
                    .is_some_and(|at| at - now > ms(policy.claim_ttl));
                let patience = if comfortable {
                    policy.wait.min(Duration::from_secs(5))
                } else {
                    policy.wait
                };
                if waited_since.elapsed() >= patience {
                    return self.fallback(
                        &credential,
                        now,
                        "another process's refresh did not finish",
                    );
                }
                std::thread::sleep(Duration::from_millis(25));
                continue;
            }
            crate::fault::point("refresh:claimed");
            let outcome = refresh(&cfg, provider, &refresh_token, policy.attempts);
            match self.settle_refresh(&credential, generation, &holder, outcome)? {
                Settled::Again => continue,
                Settled::Failed(why) => return self.fallback(&credential, self.now(), &why),
                Settled::NeedsLogin => {
                    return Err(VaultError::NotUsable {
                        provider,
                        account: account.clone(),
                        why: "the authorization server refused its refresh token (invalid_grant); log in again".into(),
                    }
                    .into());
                }
            }
        }
    }

    /// The old token while it is still valid; otherwise the reason it cannot be had.
    fn fallback(&self, c: &Credential, now: Millis, why: &str) -> Result<Secret, OAuthError> {
        match (still_valid(c, now), c.primary_secret()) {
            (true, Some(s)) => Ok(s.clone()),
            _ => Err(VaultError::NotUsable {
                provider: c.provider,
                account: c.account.clone(),
                why: format!("it expired and cannot be refreshed here: {why}"),
            }
            .into()),
        }
    }

    fn credential_with_generation(
        &self,
        provider: Provider,
        account: &Account,
    ) -> Result<(Credential, i64, String), OAuthError> {
        self.store.read(|tx| -> Result<_, OAuthError> {
            let missing = || VaultError::NoCredential {
                provider,
                account: account.clone(),
            };
            let record = tx
                .credential_record(provider, account)?
                .ok_or_else(missing)?;
            let cipher = vault::unlock(tx, &self.key.resolve()?, false)?.ok_or_else(missing)?;
            let credential = vault::get(tx, &cipher, provider, account)?.ok_or_else(missing)?;
            Ok((credential, record.generation, record.status))
        })
    }

    /// Writes a refresh's result (compare-and-swap on the generation), releases the claim and
    /// audits the outcome, all in one transaction.
    fn settle_refresh(
        &self,
        old: &Credential,
        generation: i64,
        holder: &str,
        outcome: RefreshOutcome,
    ) -> Result<Settled, OAuthError> {
        let now = self.now();
        let (provider, account) = (old.provider, &old.account);
        self.store.write(|tx| -> Result<_, OAuthError> {
            let (settled, detail) = match outcome {
                RefreshOutcome::Refreshed(tokens) => {
                    let cipher = vault::unlock(tx, &self.key.resolve()?, false)?
                        .ok_or_else(|| VaultError::NoKey("no key available".into()))?;
                    let fresh = refreshed(old, tokens, now);
                    match vault::put_refreshed(tx, &cipher, now, &fresh, generation)? {
                        Some(g) => (Settled::Again, json!({ "outcome": "ok", "generation": g, "expires_at": fresh.expires_at })),
                        None => (Settled::Again, json!({ "outcome": "superseded" })),
                    }
                }
                RefreshOutcome::InvalidGrant(description) => {
                    // Only the credential this refresh read is marked; if it moved on (another
                    // process refreshed, or a new login), read that instead.
                    let marked =
                        tx.set_credential_status(provider, account, "needs_login", generation, now)?;
                    let settled = if marked { Settled::NeedsLogin } else { Settled::Again };
                    (settled, json!({ "outcome": "invalid_grant", "description": description, "superseded": !marked }))
                }
                RefreshOutcome::Refused { error, description } => (
                    Settled::Failed(format!("the token endpoint refused ({error})")),
                    json!({ "outcome": "refused", "error": error, "description": description }),
                ),
                RefreshOutcome::Ambiguous(reason) => (
                    Settled::Failed(format!("the refresh may not have completed ({reason})")),
                    json!({ "outcome": "ambiguous", "reason": reason }),
                ),
                RefreshOutcome::Transient(reason) => (
                    Settled::Failed(format!("the token endpoint could not be reached ({reason})")),
                    json!({ "outcome": "failed", "reason": reason }),
                ),
            };
            tx.release_refresh_claim(provider, account, holder)?;
            audit::append(tx, now, AuditEvent::new(action::REFRESH, detail).on(provider, account))?;
            Ok(settled)
        })
    }
}

/// What happened to a claimed refresh.
enum Settled {
    /// Read the ledger again (we refreshed, or someone else's credential superseded ours).
    Again,
    /// The refresh failed; use the old token if it is still valid.
    Failed(String),
    /// The refresh token was refused for good.
    NeedsLogin,
}

/// The credential after a refresh: new access token and expiry; the new refresh token if the
/// server rotated it, else the old one.
fn refreshed(old: &Credential, tokens: TokenSet, now: Millis) -> Credential {
    let mut c = old.clone();
    c.access_token = Some(tokens.access_token);
    if let Some(r) = tokens.refresh_token {
        c.refresh_token = Some(r);
    }
    c.expires_at = tokens.expires_in.map(|d| now.saturating_add(ms(d)));
    if let Some(scopes) = tokens.scopes {
        c.scopes = scopes;
    }
    if let Some(id) = tokens.id_token {
        if let Some(account) = vault::jwt::chatgpt_account_id(id.expose_secret()) {
            c.account_id = Some(account);
        }
        c.id_token = Some(id);
    }
    c
}

/// The configured endpoint, for a login the ledger itself made before it recorded where each
/// login came from (`source` `oauth`, no recorded endpoint): such a login was made through the
/// configuration of its time, so the configured endpoint is taken once and recorded with the
/// first refresh (trust on first use). Never for imported credentials: their issuer refreshes
/// them.
fn adopted_endpoint(config: &ConfigFile, provider: Provider, c: &Credential) -> Option<RefreshVia> {
    if c.source != "oauth" {
        return None;
    }
    let cfg = config.provider(provider).and_then(|p| p.oauth.clone())?;
    Some(RefreshVia {
        token_url: cfg.token_url?,
        client_id: cfg.client_id?,
    })
}

/// The refresh settings for a credential issued through `via`: only if the configured
/// endpoint and client are still the ones it was issued through, and the endpoint passes the
/// same check as at login. Otherwise why not, with what to do.
fn refresh_config(
    config: &ConfigFile,
    provider: Provider,
    account: &Account,
    via: &RefreshVia,
) -> Result<OAuthConfig, String> {
    let configured = config.provider(provider).and_then(|p| p.oauth.clone());
    let same = configured.as_ref().is_some_and(|c| {
        c.token_url.as_deref() == Some(via.token_url.as_str())
            && c.client_id.as_deref() == Some(via.client_id.as_str())
    });
    if !same {
        let now_set = configured
            .and_then(|c| c.token_url)
            .unwrap_or_else(|| "none".into());
        return Err(format!(
            "it was issued by {} but [providers.{provider}.oauth] now names {now_set} (or another client id); log in again (`{} --oauth`)",
            via.token_url,
            crate::vault::login_command(provider, account)
        ));
    }
    check_endpoint(provider, "its token endpoint", &via.token_url).map_err(|e| e.to_string())?;
    Ok(OAuthConfig {
        token_url: Some(via.token_url.clone()),
        client_id: Some(via.client_id.clone()),
        ..OAuthConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_from_another_endpoint_suggests_a_login_that_keeps_the_account() {
        let via = RefreshVia {
            token_url: "https://auth.example/token".into(),
            client_id: "client".into(),
        };
        let work: Account = "work".parse().unwrap();
        let why = refresh_config(&ConfigFile::default(), Provider::Openai, &work, &via)
            .expect_err("not configured: refused");
        assert!(
            why.contains("`authledger login openai --account work --oauth`"),
            "{why}"
        );
    }
}
