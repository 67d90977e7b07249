//! Vault operations inside the caller's transaction: unlock, store, read, delete, rotate.

use super::VaultError;
use super::cipher::{Cipher, Sealed, field_ad};
use super::credential::{Credential, CredentialKind, CredentialSummary, RefreshVia, Tier};
use super::keys::Resolved;
use super::secret::Secret;
use crate::records::{CredentialRecord, SealedField};
use crate::store::Tx;
use crate::types::{Account, Millis, Provider};

/// The settings key holding the sealed key-check value.
const KEY_CHECK: &str = "vault_key_check";

fn encode_check(s: &Sealed) -> String {
    format!("{}:{}", hex::encode(&s.nonce), hex::encode(&s.ciphertext))
}

fn decode_check(text: &str) -> Option<Sealed> {
    let (n, c) = text.split_once(':')?;
    Some(Sealed {
        nonce: hex::decode(n).ok()?,
        ciphertext: hex::decode(c).ok()?,
    })
}

/// Loads the master key and checks it against the ledger. With `create`, a missing key file
/// is created and a fresh ledger records its key check (the caller is writing anyway).
/// Returns `None` when there is no key and nothing is encrypted yet.
pub(crate) fn unlock(
    tx: &Tx<'_>,
    source: &Resolved,
    create: bool,
) -> Result<Option<Cipher>, VaultError> {
    let stored = tx.setting(KEY_CHECK)?;
    let stored = match stored {
        Some(text) => Some(decode_check(&text).ok_or(VaultError::WrongKey)?),
        None => None,
    };
    let key = if create {
        Some(source.load_or_create()?)
    } else {
        source.load()?
    };
    let Some(key) = key else {
        return match (&stored, source.path()) {
            (None, _) => Ok(None),
            (Some(_), Some(p)) => Err(VaultError::NoKey(format!(
                "the key file {} is missing, and this ledger holds encrypted credentials",
                p.display()
            ))),
            (Some(_), None) => Err(VaultError::NoKey("no key given".into())),
        };
    };
    let cipher = Cipher::new(&key)?;
    match stored {
        Some(check) if cipher.matches(&check) => Ok(Some(cipher)),
        Some(check) => finish_pending_rotation(source, &check),
        None if create => {
            tx.set_setting(KEY_CHECK, &encode_check(&cipher.key_check()?))?;
            Ok(Some(cipher))
        }
        None => Ok(Some(cipher)),
    }
}

/// A rotation writes the new key beside the old one (`master.key.new`), commits the
/// re-encryption, then renames. If the process died between commit and rename, the pending
/// key is the right one: finish the rename now.
fn finish_pending_rotation(
    source: &Resolved,
    check: &Sealed,
) -> Result<Option<Cipher>, VaultError> {
    let (Some(pending), Some(path)) = (source.pending_path(), source.path()) else {
        return Err(VaultError::WrongKey);
    };
    let Ok(text) = std::fs::read_to_string(&pending) else {
        return Err(VaultError::WrongKey);
    };
    let key = super::MasterKey::from_base64(&zeroize::Zeroizing::new(text))?;
    let cipher = Cipher::new(&key)?;
    if !cipher.matches(check) {
        return Err(VaultError::WrongKey);
    }
    std::fs::rename(&pending, path).map_err(|source| VaultError::KeyFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some(cipher))
}

/// Stores (or replaces) a credential, sealing each secret field; returns the new generation.
pub(crate) fn put(
    tx: &Tx<'_>,
    cipher: &Cipher,
    now: Millis,
    c: &Credential,
) -> Result<i64, VaultError> {
    write(tx, cipher, now, c, None).map(|g| g.unwrap_or(0))
}

/// Replaces a credential with refreshed tokens only if it is still at `generation`: a refresh
/// that lost a race, or raced a new login, never overwrites a newer credential. Returns the new
/// generation, or `None` if the credential had moved on.
pub(crate) fn put_refreshed(
    tx: &Tx<'_>,
    cipher: &Cipher,
    now: Millis,
    c: &Credential,
    generation: i64,
) -> Result<Option<i64>, VaultError> {
    write(tx, cipher, now, c, Some(generation))
}

fn write(
    tx: &Tx<'_>,
    cipher: &Cipher,
    now: Millis,
    c: &Credential,
    expected: Option<i64>,
) -> Result<Option<i64>, VaultError> {
    let prior = tx.credential_record(c.provider, &c.account)?;
    if let Some(expected) = expected
        && prior.as_ref().map(|p| p.generation) != Some(expected)
    {
        return Ok(None);
    }
    let refreshed_at = if expected.is_some() { Some(now) } else { None };
    // Above every generation this account ever had, even before a logout: a refresh or a
    // `needs_login` mark that read an older credential can never match a newer one.
    let high_water = tx.credential_generation_high_water(c.provider, &c.account)?;
    let generation = prior.as_ref().map_or(0, |p| p.generation).max(high_water) + 1;
    tx.put_credential_record(&CredentialRecord {
        provider: c.provider,
        account: c.account.clone(),
        kind: c.kind.as_str().to_string(),
        tier: c.tier.as_str().to_string(),
        expires_at: c.expires_at,
        scopes: c.scopes.join(" "),
        account_id: c.account_id.clone(),
        source: c.source.clone(),
        status: "ok".to_string(),
        generation,
        created_at: prior.as_ref().map_or(now, |p| p.created_at),
        updated_at: now,
        last_used_at: prior.as_ref().and_then(|p| p.last_used_at),
        refreshed_at,
        refresh_token_url: c.refresh_via.as_ref().map(|v| v.token_url.clone()),
        refresh_client_id: c.refresh_via.as_ref().map(|v| v.client_id.clone()),
    })?;
    let mut fields = Vec::new();
    for (name, secret) in c.secret_fields() {
        let sealed = cipher.seal(
            secret.expose_secret(),
            &field_ad(c.provider.as_str(), c.account.as_str(), name),
        )?;
        fields.push(SealedField {
            field: name.to_string(),
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
        });
    }
    tx.replace_sealed_fields(c.provider, &c.account, &fields)?;
    Ok(Some(generation))
}

fn open_fields(
    tx: &Tx<'_>,
    cipher: &Cipher,
    rec: &CredentialRecord,
) -> Result<Vec<(String, Secret)>, VaultError> {
    let mut out = Vec::new();
    for f in tx.sealed_fields(rec.provider, &rec.account)? {
        let ad = field_ad(rec.provider.as_str(), rec.account.as_str(), &f.field);
        let secret = cipher
            .open(
                &Sealed {
                    nonce: f.nonce,
                    ciphertext: f.ciphertext,
                },
                &ad,
            )
            .map_err(|_| VaultError::Decrypt {
                provider: rec.provider,
                account: rec.account.clone(),
            })?;
        out.push((f.field, secret));
    }
    Ok(out)
}

fn bad_row(what: &'static str, value: &str) -> VaultError {
    VaultError::Store(crate::store::StoreError::BadRow {
        what,
        value: value.to_string(),
    })
}

fn refresh_via(rec: &CredentialRecord) -> Option<RefreshVia> {
    match (&rec.refresh_token_url, &rec.refresh_client_id) {
        (Some(token_url), Some(client_id)) => Some(RefreshVia {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
        }),
        _ => None,
    }
}

fn assemble(
    rec: &CredentialRecord,
    fields: Vec<(String, Secret)>,
) -> Result<Credential, VaultError> {
    let mut c = Credential {
        provider: rec.provider,
        account: rec.account.clone(),
        kind: rec
            .kind
            .parse()
            .map_err(|_| bad_row("credential kind", &rec.kind))?,
        tier: rec.tier.parse().map_err(|_| bad_row("tier", &rec.tier))?,
        api_key: None,
        access_token: None,
        refresh_token: None,
        id_token: None,
        expires_at: rec.expires_at,
        scopes: rec.scopes.split_whitespace().map(str::to_string).collect(),
        account_id: rec.account_id.clone(),
        source: rec.source.clone(),
        refresh_via: refresh_via(rec),
    };
    for (name, secret) in fields {
        match name.as_str() {
            "api_key" => c.api_key = Some(secret),
            "access_token" => c.access_token = Some(secret),
            "refresh_token" => c.refresh_token = Some(secret),
            "id_token" => c.id_token = Some(secret),
            other => return Err(bad_row("secret field", other)),
        }
    }
    Ok(c)
}

/// Reads and decrypts one credential.
pub(crate) fn get(
    tx: &Tx<'_>,
    cipher: &Cipher,
    provider: Provider,
    account: &Account,
) -> Result<Option<Credential>, VaultError> {
    let Some(rec) = tx.credential_record(provider, account)? else {
        return Ok(None);
    };
    let fields = open_fields(tx, cipher, &rec)?;
    assemble(&rec, fields).map(Some)
}

/// Every credential, with only a redacted form of its secret.
pub(crate) fn summaries(
    tx: &Tx<'_>,
    cipher: &Cipher,
) -> Result<Vec<CredentialSummary>, VaultError> {
    let mut out = Vec::new();
    for rec in tx.credential_records()? {
        let fields = open_fields(tx, cipher, &rec)?;
        let c = assemble(&rec, fields)?;
        out.push(CredentialSummary {
            provider: c.provider,
            account: c.account.clone(),
            kind: c.kind,
            tier: c.tier,
            redacted: c
                .primary_secret()
                .map_or_else(|| "-".into(), Secret::redacted),
            refreshable: c.refresh_token.is_some(),
            ledger_refreshes: c.refresh_token.is_some() && c.refresh_via.is_some(),
            expires_at: c.expires_at,
            scopes: c.scopes.clone(),
            account_id: c.account_id.clone(),
            source: c.source.clone(),
            status: rec.status.clone(),
            created_at: rec.created_at,
            updated_at: rec.updated_at,
            last_used_at: rec.last_used_at,
            refreshed_at: rec.refreshed_at,
        });
    }
    Ok(out)
}

/// Removes a credential; returns whether there was one.
pub(crate) fn delete(
    tx: &Tx<'_>,
    provider: Provider,
    account: &Account,
) -> Result<bool, VaultError> {
    Ok(tx.delete_credential(provider, account)?)
}

/// Whether a provider account has a credential an agent can use right now, judged from clear
/// metadata alone (no key needed, no network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usability {
    /// Valid, or refreshable.
    Usable {
        /// API key or OAuth.
        kind: CredentialKind,
        /// The plan.
        tier: Tier,
    },
    /// Nothing stored.
    Missing,
    /// Expired, and the ledger may not refresh it (no refresh token, or one only the tool
    /// that issued it may use).
    Expired {
        /// When it expired.
        at: Millis,
        /// What the user can do about it.
        remedy: String,
    },
    /// A refresh was refused: a new login is needed.
    NeedsLogin,
}

/// Judges a provider account's credential.
pub fn usability(
    tx: &Tx<'_>,
    provider: Provider,
    account: &Account,
    now: Millis,
) -> Result<Usability, VaultError> {
    let Some(rec) = tx.credential_record(provider, account)? else {
        return Ok(Usability::Missing);
    };
    if rec.status == "needs_login" {
        return Ok(Usability::NeedsLogin);
    }
    let kind: CredentialKind = rec
        .kind
        .parse()
        .map_err(|_| bad_row("credential kind", &rec.kind))?;
    let tier: Tier = rec.tier.parse().map_err(|_| bad_row("tier", &rec.tier))?;
    if let Some(at) = rec.expires_at
        && at <= now
    {
        // Only a credential the ledger itself may refresh is usable past its expiry.
        let refreshable = refresh_via(&rec).is_some()
            && tx
                .sealed_fields(provider, account)?
                .iter()
                .any(|f| f.field == "refresh_token");
        if !refreshable {
            return Ok(Usability::Expired {
                at,
                remedy: super::credential::expired_remedy(provider, &rec.source),
            });
        }
    }
    Ok(Usability::Usable { kind, tier })
}

/// Re-encrypts every secret under `new` and records its key check; returns how many
/// credentials were re-encrypted. Runs inside one transaction: all or nothing.
pub fn rotate(tx: &Tx<'_>, old: &Cipher, new: &Cipher) -> Result<usize, VaultError> {
    let records = tx.credential_records()?;
    for rec in &records {
        let fields = open_fields(tx, old, rec)?;
        let mut sealed = Vec::new();
        for (name, secret) in fields {
            let s = new.seal(
                secret.expose_secret(),
                &field_ad(rec.provider.as_str(), rec.account.as_str(), &name),
            )?;
            sealed.push(SealedField {
                field: name,
                nonce: s.nonce,
                ciphertext: s.ciphertext,
            });
        }
        tx.replace_sealed_fields(rec.provider, &rec.account, &sealed)?;
    }
    tx.set_setting(KEY_CHECK, &encode_check(&new.key_check()?))?;
    Ok(records.len())
}
