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
use crate::vault::wipe::WipedJson;
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

/// What `export codex` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodexExport {
    /// The `auth.json` written.
    pub path: PathBuf,
    /// Whether the refresh token went with it (Codex refreshes the credential from now on).
    pub handed_over: bool,
    /// Whether the ledger still refreshes the credential.
    pub refreshable_here: bool,
    /// When the exported access token expires, if it does.
    pub expires_at: Option<crate::types::Millis>,
}

/// What a key rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRotation {
    /// How many credentials were re-encrypted.
    pub credentials: usize,
    /// The id of the new key, recorded in the ledger.
    pub key_id: String,
    /// The ledger's new key file (`None` when the caller holds the key).
    pub key_file: Option<PathBuf>,
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
        Usability::Expired { at, remedy } => {
            format!("it expired at {}; {remedy}", crate::clock::format_ms(at))
        }
        Usability::NeedsLogin => "its refresh was refused; log in again".to_string(),
    };
    Err(VaultError::NotUsable {
        provider,
        account: account.clone(),
        why,
    }
    .into())
}

/// The limits the README ("Concepts") gives an account used through an API key: rate limits on top of the
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
            // The first key of a ledger keys its audit trail too, from this row on.
            audit::ensure_keyed(tx, &cipher, now)?;
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
    ///
    /// Without `hand_over` the file has no refresh token: a Codex that refreshed on its own
    /// would rotate the token and leave the ledger's copy refused (`invalid_grant`). With it,
    /// the refresh token goes to Codex and the ledger gives it up (it keeps the access token
    /// and says `handed over` in `status`) in the same transaction, so only one of them ever
    /// refreshes. The file is written whole under a temporary name before the transaction
    /// commits (if that fails, nothing is handed over) and renamed into place only after the
    /// commit, so Codex never holds a refresh token the ledger still uses.
    pub fn export_codex(
        &self,
        dir: &Path,
        account: &Account,
        hand_over: bool,
    ) -> Result<CodexExport, Error> {
        let now = self.now();
        let path = dir.join("auth.json");
        let (export, staged) = self.store.write(|tx| -> Result<_, Error> {
            let missing = || VaultError::NoCredential {
                provider: Provider::Openai,
                account: account.clone(),
            };
            if tx.credential_record(Provider::Openai, account)?.is_none() {
                return Err(missing().into());
            }
            let cipher = self.unlock(tx, false)?.ok_or_else(missing)?;
            let credential =
                vault::get(tx, &cipher, Provider::Openai, account)?.ok_or_else(missing)?;
            let handed_over = hand_over && credential.refresh_token.is_some();
            let mut for_codex = credential.clone();
            if !handed_over {
                for_codex.refresh_token = None;
            }
            let json = WipedJson(vault::export::codex_auth_json(&for_codex, now)?);
            if handed_over {
                vault::hand_over(tx, &cipher, now, &credential, "codex")?;
            }
            audit::append(
                tx,
                now,
                AuditEvent::new(
                    action::EXPORT,
                    json!({
                        "format": "codex",
                        "path": path,
                        "kind": credential.kind,
                        "handed_over": handed_over,
                    }),
                )
                .on(Provider::Openai, account),
            )?;
            let staged = vault::export::stage_private_json(dir, "auth.json", &json)?;
            crate::fault::point("export:before-commit");
            let export = CodexExport {
                path: path.clone(),
                handed_over,
                refreshable_here: credential.refresh_token.is_some() && !handed_over,
                expires_at: credential.expires_at,
            };
            Ok((export, staged))
        })?;
        staged.put_in_place()?;
        Ok(export)
    }

    /// Re-encrypts every credential under a fresh key, written to a key file of this ledger's
    /// own (`master-<id>.key` beside the configured key file), in one transaction; audited as
    /// `key_rotate`. With `AUTHLEDGER_MASTER_KEY`, use [`rotate_key_to`](Self::rotate_key_to)
    /// instead.
    ///
    /// The whole rotation holds the writer lock, so two rotations run one after the other. The
    /// new key file is complete on disk under a name no other rotation uses before the
    /// transaction that records its id commits: a crash before the commit leaves the ledger
    /// under its old key (and an unused key file), a crash after it leaves the ledger naming a
    /// key file that exists. The configured key file is never rewritten, so other ledgers
    /// sealed under it stay readable.
    pub fn rotate_key(&self) -> Result<KeyRotation, Error> {
        let resolved = self.config.key.resolve()?;
        // A wrong key is reported as such before anything else.
        self.store.read(|tx| self.unlock(tx, false).map(|_| ()))?;
        if resolved.path().is_none() {
            return Err(VaultError::Conflict(
                "the master key comes from AUTHLEDGER_MASTER_KEY: set AUTHLEDGER_NEW_MASTER_KEY to the new key and run `key rotate` again".into(),
            )
            .into());
        }
        let now = self.now();
        self.store.write(|tx| -> Result<_, Error> {
            let old = self.unlock_existing(tx)?;
            let new = MasterKey::generate()?;
            let key_id = new.key_id();
            let key_file = resolved
                .file_for_id(&key_id)
                .ok_or_else(|| VaultError::NoKey("no key file configured".into()))?;
            if !vault::write_key_file(&key_file, &new)? {
                return Err(VaultError::Conflict(format!(
                    "{} already exists; nothing was changed",
                    key_file.display()
                ))
                .into());
            }
            crate::fault::point("rotate:key-written");
            let credentials = rotate_sealed(tx, &old, &new)?;
            audit::append(
                tx,
                now,
                AuditEvent::new(
                    action::KEY_ROTATE,
                    json!({ "credentials": credentials, "key_id": key_id }),
                ),
            )?;
            crate::fault::point("rotate:before-commit");
            Ok(KeyRotation {
                credentials,
                key_id,
                key_file: Some(key_file),
            })
        })
    }

    /// The key files this ledger depends on (the configured one and, after a rotation, its
    /// own), so `doctor` can check that nobody else can read them.
    pub fn key_files(&self) -> Result<Vec<PathBuf>, Error> {
        let source = self.config.key.resolve()?;
        Ok(self.store.read(|tx| vault::key_files(tx, &source))?)
    }

    fn unlock_existing(&self, tx: &Tx<'_>) -> Result<Cipher, Error> {
        self.unlock(tx, false)?.ok_or_else(|| {
            VaultError::NoKey("nothing to rotate: no key and no credentials yet".into()).into()
        })
    }

    /// Re-encrypts every credential under `new` in one transaction (the caller keeps the key).
    pub fn rotate_key_to(&self, new: &MasterKey) -> Result<KeyRotation, Error> {
        let now = self.now();
        let key_id = new.key_id();
        self.store.write(|tx| -> Result<_, Error> {
            let old = self.unlock_existing(tx)?;
            let credentials = rotate_sealed(tx, &old, new)?;
            audit::append(
                tx,
                now,
                AuditEvent::new(
                    action::KEY_ROTATE,
                    json!({ "credentials": credentials, "key_id": key_id }),
                ),
            )?;
            Ok(KeyRotation {
                credentials,
                key_id: key_id.clone(),
                key_file: None,
            })
        })
    }
}

/// Re-seals everything the master key seals, in the rotation's transaction: every credential
/// and the key check (the vault's), and the audit chain's secret (the audit's), so the chain
/// key survives the rotation. Leaving out the last would make every later write and `audit
/// verify` fail.
fn rotate_sealed(
    tx: &crate::store::Tx<'_>,
    old: &vault::Cipher,
    new_key: &vault::MasterKey,
) -> Result<usize, Error> {
    let credentials = vault::rotate(tx, old, new_key)?;
    audit::reseal_audit_key(tx, old, &vault::Cipher::new(new_key)?)?;
    Ok(credentials)
}
