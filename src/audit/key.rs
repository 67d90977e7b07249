//! The audit chain's key: only a holder of the master key can extend the trail.
//!
//! A ledger's chain is keyed by a random 32-byte audit secret, stored in the settings sealed
//! (AES-256-GCM) under the master key. The HMAC-SHA256 key of the chain is derived from that
//! secret with HKDF-SHA256 (info [`INFO`]). Rotating the master key re-seals the secret
//! ([`reseal_audit_key`]), so the chain key never changes and `audit verify` checks the whole
//! trail with the current master key alone.
//!
//! The sealed record also names the first keyed row (`keyed_from`, bound into the AEAD's
//! associated data): rows before it are the legacy SHA-256 chain of a ledger made before the
//! trail was keyed, and the row at it is a `rekey` row that chains to the legacy tail. A fresh
//! ledger is keyed from row 1 and has no `rekey` row.

use std::sync::{Arc, RwLock};

use ring::{hkdf, hmac};
use serde_json::json;
use zeroize::Zeroizing;

use super::{AuditEvent, action};
use crate::store::{Staged, StoreError, Tx, TxExtension};
use crate::types::Millis;
use crate::vault::{Cipher, Sealed, VaultError};

/// The HKDF info (label) of the chain key: a new scheme gets a new label.
pub const INFO: &[u8] = b"authledger audit chain v1";

/// The HKDF salt: fixed, public, only separating this use of the secret from any other.
const SALT: &[u8] = b"authledger/v1 audit";

/// The settings key of the sealed audit secret: `keyed_from:nonce:ciphertext` (hex).
const SECRET_SETTING: &str = "audit_key";

/// The HMAC key of the chain. Never printed.
pub struct ChainKey(hmac::Key);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey([redacted])")
    }
}

impl ChainKey {
    fn derive(secret: &[u8]) -> Result<ChainKey, VaultError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret);
        let okm = prk
            .expand(&[INFO], hmac::HMAC_SHA256)
            .map_err(|_| VaultError::Crypto)?;
        Ok(ChainKey(hmac::Key::from(okm)))
    }

    /// HMAC-SHA256 of `bytes`, hex.
    pub fn mac(&self, bytes: &[u8]) -> String {
        hex::encode(hmac::sign(&self.0, bytes).as_ref())
    }

    /// The tag of the recorded head, so cutting rows from the end and moving the head back
    /// needs the key too.
    pub fn head_tag(&self, seq: i64, mac: &str) -> String {
        self.mac(format!("authledger audit head\0{seq}\0{mac}").as_bytes())
    }
}

/// How one ledger's transactions reach the chain key: the key once known, and how to unlock
/// the master key to unseal it when it is not known yet (a daemon started before the first
/// login learns it this way).
pub struct ChainSlot {
    key: RwLock<Option<Arc<ChainKey>>>,
    unlock: Unlock,
}

/// Unlocks the master key inside a transaction (`None`: there is none).
type Unlock = Box<dyn Fn(&Tx<'_>) -> Result<Option<Cipher>, VaultError> + Send + Sync>;

impl std::fmt::Debug for ChainSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainSlot([redacted])")
    }
}

/// The slot rides on the store's transactions; a chain key first made in one is published
/// only once it commits, so a rolled-back secret never keys a later row.
impl TxExtension for ChainSlot {
    fn committed(&self, staged: Staged) {
        if let Ok(key) = staged.downcast::<ChainKey>() {
            self.publish(key);
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The chain key slot of the ledger `tx` belongs to.
fn slot<'t>(tx: &'t Tx<'_>) -> Option<&'t ChainSlot> {
    tx.extension::<ChainSlot>()
}

/// The chain key made in this transaction, if any.
fn fresh_key(tx: &Tx<'_>) -> Option<Arc<ChainKey>> {
    tx.staged::<ChainKey>()
}

impl ChainSlot {
    /// A slot that unlocks the master key with `unlock` when the key is first needed.
    pub fn new(
        unlock: impl Fn(&Tx<'_>) -> Result<Option<Cipher>, VaultError> + Send + Sync + 'static,
    ) -> ChainSlot {
        ChainSlot {
            key: RwLock::new(None),
            unlock: Box::new(unlock),
        }
    }

    /// Makes a committed chain key available to every later transaction.
    pub fn publish(&self, key: Arc<ChainKey>) {
        if let Ok(mut k) = self.key.write() {
            *k = Some(key);
        }
    }

    fn current(&self) -> Option<Arc<ChainKey>> {
        self.key.read().ok().and_then(|k| k.clone())
    }
}

/// The sealed audit secret as stored.
struct SealedSecret {
    keyed_from: i64,
    sealed: Sealed,
}

impl SealedSecret {
    fn parse(text: &str) -> Result<SealedSecret, StoreError> {
        let bad = || StoreError::BadRow {
            what: "sealed audit key",
            value: crate::types::truncate_for_message(text),
        };
        let mut parts = text.splitn(3, ':');
        let (Some(from), Some(nonce), Some(ct)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        Ok(SealedSecret {
            keyed_from: from.parse().ok().filter(|s| *s >= 1).ok_or_else(bad)?,
            sealed: Sealed {
                nonce: hex::decode(nonce).map_err(|_| bad())?,
                ciphertext: hex::decode(ct).map_err(|_| bad())?,
            },
        })
    }

    fn encode(&self) -> String {
        format!(
            "{}:{}:{}",
            self.keyed_from,
            hex::encode(&self.sealed.nonce),
            hex::encode(&self.sealed.ciphertext)
        )
    }

    /// Binds the secret to where keyed rows begin: moving that boundary breaks the seal.
    fn ad(keyed_from: i64) -> Vec<u8> {
        format!("authledger/v1\0audit-key\0{keyed_from}").into_bytes()
    }

    fn open(&self, cipher: &Cipher) -> Result<ChainKey, VaultError> {
        let secret = cipher
            .open(&self.sealed, &Self::ad(self.keyed_from))
            .map_err(|_| {
                VaultError::Store(StoreError::AuditKey(
                    "the sealed audit key does not open under this master key \
                     (the wrong key, or the record was altered)"
                        .into(),
                ))
            })?;
        let bytes = Zeroizing::new(hex::decode(secret.expose_secret()).map_err(|_| {
            VaultError::Store(StoreError::AuditKey(
                "the sealed audit key is malformed".into(),
            ))
        })?);
        ChainKey::derive(&bytes)
    }

    fn seal(keyed_from: i64, secret_hex: &str, cipher: &Cipher) -> Result<Self, VaultError> {
        Ok(SealedSecret {
            keyed_from,
            sealed: cipher.seal(secret_hex, &Self::ad(keyed_from))?,
        })
    }
}

fn stored(tx: &Tx<'_>) -> Result<Option<SealedSecret>, StoreError> {
    tx.setting(SECRET_SETTING)?
        .map(|t| SealedSecret::parse(&t))
        .transpose()
}

/// The first keyed row's sequence number; `None` for a ledger not keyed yet.
pub fn keyed_from(tx: &Tx<'_>) -> Result<Option<i64>, StoreError> {
    Ok(stored(tx)?.map(|s| s.keyed_from))
}

/// The key to MAC rows with: `None` while the ledger is not keyed; an error when it is keyed
/// and the master key is not available here (nobody without it may extend the trail).
pub fn chain_key(tx: &Tx<'_>) -> Result<Option<Arc<ChainKey>>, StoreError> {
    if let Some(k) = fresh_key(tx) {
        return Ok(Some(k));
    }
    let slot = slot(tx);
    if let Some(k) = slot.and_then(|s| s.current()) {
        return Ok(Some(k));
    }
    let Some(sealed) = stored(tx)? else {
        return Ok(None);
    };
    let Some(slot) = slot else {
        return Err(StoreError::AuditKey("no master key was given".into()));
    };
    let unavailable = |e: VaultError| match e {
        VaultError::Store(StoreError::AuditKey(why)) => StoreError::AuditKey(why),
        e => StoreError::AuditKey(e.to_string()),
    };
    let cipher = (slot.unlock)(tx)
        .map_err(unavailable)?
        .ok_or_else(|| StoreError::AuditKey("there is no master key".into()))?;
    let key = Arc::new(sealed.open(&cipher).map_err(unavailable)?);
    // The secret was read from the database, so it is committed (a secret made in this
    // transaction is found as the fresh key above).
    slot.publish(key.clone());
    Ok(Some(key))
}

/// What `audit verify` checks the trail with.
pub(crate) enum VerifyKey {
    /// The trail is not keyed (a ledger with no key yet, or one from before keyed trails
    /// whose key check says so): every row is checked as the legacy SHA-256 chain.
    Unkeyed,
    /// Rows from `keyed_from` on are MACed under `key`.
    Keyed {
        /// The first keyed row.
        keyed_from: i64,
        /// The chain key.
        key: ChainKey,
    },
    /// The ledger's key check attests a keyed trail but the sealed audit key is gone: someone
    /// removed it, to pass rows they forged off as an unkeyed trail.
    Removed,
}

/// Where keyed rows begin and the key to check them with, read afresh from the sealed record
/// (never from a key cached by this process), so a moved boundary is noticed. Needs the
/// master key whenever the ledger has one: only with it can an unkeyed-looking trail be told
/// from one whose key was removed.
pub(crate) fn for_verify(tx: &Tx<'_>) -> Result<VerifyKey, StoreError> {
    let unavailable = |e: VaultError| match e {
        VaultError::Store(StoreError::AuditKey(why)) => StoreError::AuditKey(why),
        e => StoreError::AuditKey(e.to_string()),
    };
    let cipher = match slot(tx) {
        Some(slot) => (slot.unlock)(tx).map_err(unavailable)?,
        None => None,
    };
    let Some(sealed) = stored(tx)? else {
        return Ok(match cipher {
            Some(c) if crate::vault::audit_keyed_attested(tx, &c).map_err(unavailable)? => {
                VerifyKey::Removed
            }
            _ => VerifyKey::Unkeyed,
        });
    };
    let cipher = cipher.ok_or_else(|| StoreError::AuditKey("there is no master key".into()))?;
    let key = sealed.open(&cipher).map_err(unavailable)?;
    Ok(VerifyKey::Keyed {
        keyed_from: sealed.keyed_from,
        key,
    })
}

/// Keys the chain if it is not keyed yet: makes the audit secret, seals it under `cipher`
/// and, when older unkeyed rows exist, appends the `rekey` row that chains to their tail.
/// Returns the chain key either way.
pub(crate) fn ensure_keyed(
    tx: &Tx<'_>,
    cipher: &Cipher,
    now: Millis,
) -> Result<Arc<ChainKey>, VaultError> {
    if let Some(sealed) = stored(tx)? {
        return Ok(match fresh_key(tx) {
            Some(k) => k,
            None => Arc::new(sealed.open(cipher)?),
        });
    }
    if crate::vault::audit_keyed_attested(tx, cipher)? {
        // Keying again would cover whatever rows are there now with a genuine `rekey` row.
        return Err(VaultError::Store(StoreError::AuditKey(
            "the audit trail's sealed key was removed from this ledger; `audit verify` shows where the trail stands".into(),
        )));
    }
    let (legacy_rows, legacy_tail) = tx.audit_tail()?.unwrap_or((0, super::GENESIS.to_string()));
    let secret: Zeroizing<[u8; 32]> = Zeroizing::new(crate::random::bytes()?);
    let secret_hex = Zeroizing::new(hex::encode(*secret));
    let keyed_from = legacy_rows + 1;
    let sealed = SealedSecret::seal(keyed_from, &secret_hex, cipher)?;
    tx.set_setting(SECRET_SETTING, &sealed.encode())?;
    crate::vault::attest_keyed_audit(tx, cipher)?;
    let key = Arc::new(ChainKey::derive(&*secret)?);
    tx.stage(key.clone());
    if legacy_rows > 0 {
        super::append(
            tx,
            now,
            AuditEvent::new(
                action::REKEY,
                json!({ "legacy_rows": legacy_rows, "legacy_tail": legacy_tail }),
            ),
        )?;
    }
    Ok(key)
}

/// Re-seals the audit secret from the `old` master key to the `new` one, inside the
/// rotation's transaction. The chain key itself does not change, so every row stays
/// verifiable. Does nothing for a ledger whose trail is not keyed yet.
pub fn reseal_audit_key(tx: &Tx<'_>, old: &Cipher, new: &Cipher) -> Result<(), VaultError> {
    let Some(sealed) = stored(tx)? else {
        return Ok(());
    };
    let secret = old
        .open(&sealed.sealed, &SealedSecret::ad(sealed.keyed_from))
        .map_err(|_| {
            VaultError::Store(StoreError::AuditKey(
                "the sealed audit key does not open under the current master key".into(),
            ))
        })?;
    let resealed = SealedSecret::seal(sealed.keyed_from, secret.expose_secret(), new)?;
    tx.set_setting(SECRET_SETTING, &resealed.encode())?;
    Ok(())
}

/// On opening a ledger: learns the chain key, and keys a ledger not keyed yet when the
/// master key is here. Best effort: without the key (or with a read-only file) the ledger
/// still opens, and appends then say why they cannot extend a keyed trail.
pub(crate) fn prepare(store: &crate::store::Store, now: Millis) {
    // Not keyed yet, and the master key is here: then (and only then) write.
    let needs_keying = store.read(|tx| -> Result<bool, StoreError> {
        if !matches!(chain_key(tx), Ok(None)) {
            return Ok(false);
        }
        let slot = slot(tx);
        Ok(slot.is_some_and(|s| matches!((s.unlock)(tx), Ok(Some(_)))))
    });
    if !matches!(needs_keying, Ok(true)) {
        return;
    }
    let _ = store.write(|tx| -> Result<(), VaultError> {
        let Some(slot) = slot(tx) else {
            return Ok(());
        };
        if let Some(cipher) = (slot.unlock)(tx)? {
            ensure_keyed(tx, &cipher, now)?;
        }
        Ok(())
    });
}
