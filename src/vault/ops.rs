//! Vault operations inside the caller's transaction: unlock, store, read, delete, rotate.

use std::path::PathBuf;

use super::VaultError;
use super::cipher::{Cipher, MasterKey, Sealed, field_ad};
use super::credential::{Credential, CredentialKind, CredentialSummary, RefreshVia, Tier};
use super::keys::{Resolved, read_key_file};
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

/// The settings key holding the id of the key the ledger is sealed under
/// ([`MasterKey::key_id`]): after a rotation it names the ledger's own key file.
const KEY_ID: &str = "vault_key_id";

/// The settings key set by the first rotation: from then on the ledger has a key file of its own.
const KEY_ROTATED: &str = "vault_key_rotated";

/// The ledger's own key file (named after its key id), which only a rotation makes: a ledger
/// never rotated is sealed under the configured key and has none.
fn own_key_file(tx: &Tx<'_>, source: &Resolved) -> Result<Option<PathBuf>, VaultError> {
    if tx.setting(KEY_ROTATED)?.is_none() {
        return Ok(None);
    }
    Ok(tx.setting(KEY_ID)?.and_then(|id| source.file_for_id(&id)))
}

/// Loads the master key and checks it against the ledger. With `create`, a ledger with
/// nothing sealed yet gets the configured key (its file created if missing) and records its
/// key check and key id (the caller is writing anyway). Returns `None` when there is no key
/// and nothing is encrypted yet.
pub(crate) fn unlock(
    tx: &Tx<'_>,
    source: &Resolved,
    create: bool,
) -> Result<Option<Cipher>, VaultError> {
    let Some(text) = tx.setting(KEY_CHECK)? else {
        if !tx.credential_records()?.is_empty() {
            // Every ledger that sealed a credential recorded its key check with it: its absence
            // means the file was edited (e.g. to pass a forged audit trail off as unkeyed).
            return Err(VaultError::KeyCheckMissing);
        }
        let key = if create {
            Some(source.load_or_create()?)
        } else {
            source.load()?
        };
        let Some(key) = key else { return Ok(None) };
        let cipher = Cipher::new(&key)?;
        if create {
            tx.set_setting(KEY_CHECK, &encode_check(&cipher.key_check()?))?;
            tx.set_setting(KEY_ID, &key.key_id())?;
        }
        return Ok(Some(cipher));
    };
    let check = decode_check(&text).ok_or(VaultError::WrongKey)?;
    sealing_key(tx, source, &check).map(Some)
}

/// Whether the ledger's key check attests a keyed audit trail ([`Cipher::attests_keyed_audit`]).
pub(crate) fn audit_keyed_attested(tx: &Tx<'_>, cipher: &Cipher) -> Result<bool, VaultError> {
    Ok(tx
        .setting(KEY_CHECK)?
        .and_then(|t| decode_check(&t))
        .is_some_and(|check| cipher.attests_keyed_audit(&check)))
}

/// Records, under the master key, that the ledger's audit trail is keyed from now on.
pub(crate) fn attest_keyed_audit(tx: &Tx<'_>, cipher: &Cipher) -> Result<(), VaultError> {
    tx.set_setting(KEY_CHECK, &encode_check(&cipher.key_check_keyed_audit()?))?;
    Ok(())
}

/// The key files this ledger depends on, for `doctor`: the configured one and, after a
/// rotation, its own. None when the key comes from `AUTHLEDGER_MASTER_KEY`.
pub(crate) fn key_files(tx: &Tx<'_>, source: &Resolved) -> Result<Vec<PathBuf>, VaultError> {
    let mut files: Vec<PathBuf> = source.path().map(|p| p.to_path_buf()).into_iter().collect();
    if let Some(own) = own_key_file(tx, source)? {
        files.push(own);
    }
    Ok(files)
}

/// Finds the key the ledger is sealed under: its own key file (named after the key id it
/// records, written by a rotation), else the configured key, else the pending key file of a
/// rotation by an older release that stopped before renaming it. Nothing is renamed or
/// rewritten: which key is right follows from the committed ledger alone.
fn sealing_key(tx: &Tx<'_>, source: &Resolved, check: &Sealed) -> Result<Cipher, VaultError> {
    let own = own_key_file(tx, source)?;
    let mut found = false;
    let mut own_missing = false;
    let mut tries: Vec<Option<PathBuf>> = Vec::new();
    tries.extend(own.clone().map(Some));
    tries.push(None);
    tries.extend(source.legacy_pending_path().map(Some));
    for t in tries {
        let key = match &t {
            Some(path) => read_key_file(path)?,
            None => source.load()?,
        };
        let Some(key) = key else {
            own_missing |= t.is_some() && t == own;
            continue;
        };
        found = true;
        let cipher = Cipher::new(&key)?;
        if cipher.matches(check) {
            return Ok(cipher);
        }
    }
    // The ledger names its own key file: its absence is the problem, whatever else is there.
    let missing = if own_missing {
        own.as_deref()
    } else {
        source.path()
    };
    match missing {
        Some(p) if own_missing || !found => Err(VaultError::NoKey(format!(
            "the key file {} is missing, and this ledger holds encrypted credentials",
            p.display()
        ))),
        _ if found => Err(VaultError::WrongKey),
        _ => Err(VaultError::NoKey("no key given".into())),
    }
}

/// The settings key marking a credential handed over to another tool (`export codex
/// --with-refresh-token`): that tool refreshes it now, the ledger never does.
fn handover_key(provider: Provider, account: &Account) -> String {
    format!("handed_over:{provider}/{account}")
}

/// Hands a credential over to `to`: the ledger's copy keeps its access token but drops its
/// refresh token (so nothing here can refresh it and race the tool that now does), and is
/// marked handed over until the next login replaces it. Returns the new generation.
pub(crate) fn hand_over(
    tx: &Tx<'_>,
    cipher: &Cipher,
    now: Millis,
    c: &Credential,
    to: &str,
) -> Result<i64, VaultError> {
    let mut kept = c.clone();
    kept.refresh_token = None;
    let generation = put(tx, cipher, now, &kept)?;
    tx.set_setting(&handover_key(c.provider, &c.account), to)?;
    Ok(generation)
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
    // A new login or import is the ledger's again.
    tx.delete_setting(&handover_key(c.provider, &c.account))?;
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
        let handed_over_to = tx.setting(&handover_key(rec.provider, &rec.account))?;
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
            status: if handed_over_to.is_some() {
                "handed_over".into()
            } else {
                rec.status.clone()
            },
            handed_over_to,
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
    tx.delete_setting(&handover_key(provider, account))?;
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
        // Only a credential the ledger itself may refresh is usable past its expiry: one that
        // records where it was issued, or a login of its own from before it recorded that.
        let refreshable = (refresh_via(&rec).is_some() || rec.source == "oauth")
            && tx
                .sealed_fields(provider, account)?
                .iter()
                .any(|f| f.field == "refresh_token");
        if !refreshable {
            return Ok(Usability::Expired {
                at,
                remedy: super::credential::expired_remedy(provider, account, &rec.source),
            });
        }
    }
    Ok(Usability::Usable { kind, tier })
}

/// Re-encrypts every secret under `new_key` and records its key check and key id; returns how
/// many credentials were re-encrypted. Runs inside the caller's transaction: all or nothing.
/// The ledger's rotation also re-seals the audit chain's secret in the same transaction.
pub(crate) fn rotate(tx: &Tx<'_>, old: &Cipher, new_key: &MasterKey) -> Result<usize, VaultError> {
    let new = &Cipher::new(new_key)?;
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
    let keyed_audit = audit_keyed_attested(tx, old)?;
    let check = if keyed_audit {
        new.key_check_keyed_audit()?
    } else {
        new.key_check()?
    };
    tx.set_setting(KEY_CHECK, &encode_check(&check))?;
    tx.set_setting(KEY_ID, &new_key.key_id())?;
    tx.set_setting(KEY_ROTATED, "1")?;
    Ok(records.len())
}
