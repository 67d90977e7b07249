//! The vault half of the façade: storing, reading, removing and exporting credentials, and
//! rotating the master key. Every change is one transaction with its audit row.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use super::Ledger;
use crate::audit::{self, AuditEvent, action};
use crate::error::Error;
use crate::quota::{self, LimitsUpdate};
use crate::store::Tx;
use crate::types::{Account, LeaseId, Provider};
use crate::vault::{
    self, Cipher, Credential, CredentialKind, CredentialSummary, MasterKey, Usability, VaultError,
};

/// What `logout` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogoutReport {
    /// The provider logged out of.
    pub provider: Provider,
    /// The account.
    pub account: Account,
    /// Active leases revoked because their credential is gone.
    pub revoked: Vec<LeaseId>,
}

/// Refuses (exit 4) unless the provider account has a credential an agent can use.
pub(super) fn require_usable(
    tx: &Tx<'_>,
    provider: Provider,
    account: &Account,
    now: i64,
) -> Result<(), Error> {
    let why = match vault::usability(tx, provider, account, now)? {
        Usability::Usable { .. } => return Ok(()),
        Usability::Missing => {
            return Err(VaultError::NoCredential {
                provider,
                account: account.clone(),
            }
            .into());
        }
        Usability::Expired { at } => format!(
            "it expired at {} and has no refresh token; log in again",
            crate::clock::format_ms(at)
        ),
        Usability::NeedsLogin => "its refresh was refused; log in again".to_string(),
    };
    Err(VaultError::NotUsable {
        provider,
        account: account.clone(),
        why,
    }
    .into())
}

/// The limits DESIGN.md gives an account used through an API key: rate limits on top of the
/// provider's daily budget.
fn api_key_defaults() -> LimitsUpdate {
    LimitsUpdate {
        rpm: Some(Some(60)),
        tpm: Some(Some(100_000)),
        concurrent: Some(8),
        ..LimitsUpdate::default()
    }
}

impl Ledger {
    fn unlock(&self, tx: &Tx<'_>, create: bool) -> Result<Option<Cipher>, VaultError> {
        vault::unlock(tx, &self.config.key.resolve()?, create)
    }

    /// Stores (or replaces) a credential, encrypting its secrets; audited as `login`, or as
    /// `import` when it came from another tool's file or the environment. An API-key account
    /// whose limits are still the provider's defaults (none stored, or the ones `init` stored)
    /// gets API-mode rate limits (60 requests/min, 100,000 tokens/min, 8 concurrent), so the
    /// limits never depend on whether `init` ran first.
    pub fn store_credential(&self, c: &Credential) -> Result<CredentialSummary, Error> {
        let now = self.now();
        let act = match c.source.as_str() {
            "stdin" | "prompt" | "oauth" | "setup-token" => action::LOGIN,
            _ => action::IMPORT,
        };
        self.store.write(|tx| -> Result<_, Error> {
            let cipher = self
                .unlock(tx, true)?
                .ok_or_else(|| VaultError::NoKey("no key available".into()))?;
            if c.kind == CredentialKind::ApiKey
                && tx
                    .limits(c.provider, &c.account)?
                    .is_none_or(|l| l.is_default(c.provider))
            {
                quota::set_limits(tx, now, c.provider, &c.account, &api_key_defaults())?;
            }
            let generation = vault::put(tx, &cipher, now, c)?;
            audit::append(
                tx,
                now,
                AuditEvent::new(
                    act,
                    json!({
                        "kind": c.kind,
                        "tier": c.tier,
                        "source": c.source,
                        "generation": generation,
                    }),
                )
                .on(c.provider, &c.account),
            )?;
            Ok(())
        })?;
        self.credential_summary(c.provider, &c.account)
    }

    /// The decrypted credential of a provider account.
    pub fn credential(&self, provider: Provider, account: &Account) -> Result<Credential, Error> {
        self.store.read(|tx| -> Result<_, Error> {
            let missing = || VaultError::NoCredential {
                provider,
                account: account.clone(),
            };
            if tx.credential_record(provider, account)?.is_none() {
                return Err(missing().into());
            }
            let cipher = self.unlock(tx, false)?.ok_or_else(missing)?;
            Ok(vault::get(tx, &cipher, provider, account)?.ok_or_else(missing)?)
        })
    }

    /// Every stored credential, secrets redacted.
    pub fn credentials(&self) -> Result<Vec<CredentialSummary>, Error> {
        self.store.read(|tx| -> Result<_, Error> {
            if tx.credential_records()?.is_empty() {
                return Ok(Vec::new());
            }
            let cipher = self
                .unlock(tx, false)?
                .ok_or_else(|| VaultError::NoKey("no key available".into()))?;
            Ok(vault::summaries(tx, &cipher)?)
        })
    }

    fn credential_summary(
        &self,
        provider: Provider,
        account: &Account,
    ) -> Result<CredentialSummary, Error> {
        self.credentials()?
            .into_iter()
            .find(|s| s.provider == provider && &s.account == account)
            .ok_or_else(|| {
                VaultError::NoCredential {
                    provider,
                    account: account.clone(),
                }
                .into()
            })
    }

    /// Whether a provider account has a usable credential, from clear metadata only.
    pub fn usability(&self, provider: Provider, account: &Account) -> Result<Usability, Error> {
        let now = self.now();
        Ok(self
            .store
            .read(|tx| vault::usability(tx, provider, account, now))?)
    }

    /// Removes a credential and revokes the leases that used it; audited as `logout` (and one
    /// `revoke` per lease).
    pub fn logout(&self, provider: Provider, account: &Account) -> Result<LogoutReport, Error> {
        let now = self.now();
        self.store
            .write(|tx| -> Result<_, Error> {
                if !vault::delete(tx, provider, account)? {
                    return Err(VaultError::NoCredential {
                        provider,
                        account: account.clone(),
                    }
                    .into());
                }
                let mut revoked = Vec::new();
                for lease in tx.leases(crate::store::LeaseFilter::Active)? {
                    if lease.provider == provider && &lease.account == account {
                        quota::revoke(tx, now, &lease.id, "logout")??;
                        revoked.push(lease.id);
                    }
                }
                audit::append(
                    tx,
                    now,
                    AuditEvent::new(action::LOGOUT, json!({ "revoked": revoked.len() }))
                        .on(provider, account),
                )?;
                Ok(LogoutReport {
                    provider,
                    account: account.clone(),
                    revoked,
                })
            })
            .inspect(|r| {
                for id in &r.revoked {
                    crate::agent::remove_lease_dir(self.db_path(), id);
                }
            })
    }

    /// Writes `dir/auth.json` (0600) in the form the Codex CLI reads, for the stored OpenAI
    /// credential of `account`; audited as `export`.
    pub fn export_codex(&self, dir: &Path, account: &Account) -> Result<PathBuf, Error> {
        let credential = self.credential(Provider::Openai, account)?;
        let now = self.now();
        let json = vault::export::codex_auth_json(&credential, now)?;
        let path = vault::export::write_private_json(dir, "auth.json", &json)?;
        self.store.write(|tx| {
            audit::append(
                tx,
                now,
                AuditEvent::new(
                    action::EXPORT,
                    json!({ "format": "codex", "path": path, "kind": credential.kind }),
                )
                .on(Provider::Openai, account),
            )
        })?;
        Ok(path)
    }

    /// Re-encrypts every credential under a fresh key in one transaction and replaces the key
    /// file; audited as `key_rotate`. Returns how many credentials were re-encrypted. With
    /// `AUTHLEDGER_MASTER_KEY`, use [`rotate_key_to`](Self::rotate_key_to) instead.
    pub fn rotate_key(&self) -> Result<usize, Error> {
        let resolved = self.config.key.resolve()?;
        // A wrong key is reported as such before anything else.
        self.store.read(|tx| self.unlock(tx, false).map(|_| ()))?;
        let (Some(path), Some(pending)) = (
            resolved.path().map(Path::to_path_buf),
            resolved.pending_path(),
        ) else {
            return Err(VaultError::Conflict(
                "the master key comes from AUTHLEDGER_MASTER_KEY: set AUTHLEDGER_NEW_MASTER_KEY to the new key and run `key rotate` again".into(),
            )
            .into());
        };
        let new = MasterKey::generate()?;
        // The new key reaches the disk before the database switches to it; a crash in between
        // leaves `master.key.new`, which the next unlock recognises and promotes.
        vault::write_key_file(&pending, &new, false)?;
        let n = self.rotate_key_to(&new)?;
        std::fs::rename(&pending, &path).map_err(|source| VaultError::KeyFile { path, source })?;
        Ok(n)
    }

    /// Re-encrypts every credential under `new` in one transaction (the caller keeps the key).
    pub fn rotate_key_to(&self, new: &MasterKey) -> Result<usize, Error> {
        let now = self.now();
        let new_cipher = Cipher::new(new)?;
        self.store.write(|tx| -> Result<_, Error> {
            let Some(old) = self.unlock(tx, false)? else {
                return Err(VaultError::NoKey(
                    "nothing to rotate: no key and no credentials yet".into(),
                )
                .into());
            };
            let n = vault::rotate(tx, &old, &new_cipher)?;
            audit::append(
                tx,
                now,
                AuditEvent::new(action::KEY_ROTATE, json!({ "credentials": n })),
            )?;
            Ok(n)
        })
    }
}
