//! AEAD encryption of secret fields under the master key.
//!
//! AES-256-GCM from ring, a fresh random 96-bit nonce per encryption, and associated data that
//! names the row and field (`provider`, `account`, `field`): a ciphertext copied into another
//! row or field fails to decrypt instead of handing one agent another account's token.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::VaultError;
use super::secret::Secret;
use crate::random;

/// The 32-byte master key, zeroed on drop.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, VaultError> {
        Ok(MasterKey::from_bytes(random::bytes()?))
    }

    /// Parses base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, VaultError> {
        use base64::Engine;
        let text = text.trim();
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        for engine in engines {
            if let Ok(bytes) = engine.decode(text) {
                let bytes = Zeroizing::new(bytes);
                return <[u8; 32]>::try_from(bytes.as_slice())
                    .map(MasterKey::from_bytes)
                    .map_err(|_| VaultError::BadKeyFormat);
            }
        }
        Err(VaultError::BadKeyFormat)
    }

    /// A short public name for this key: 16 hex digits of HMAC-SHA256 under the key of a
    /// fixed label (a one-way derivation, as HKDF's extract step). Recorded in the ledger
    /// sealed under the key, it names the ledger's own key file and says nothing about the key.
    pub fn key_id(&self) -> String {
        use ring::hmac;
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &self.0[..]),
            b"authledger/v1 key-id",
        );
        hex::encode(&tag.as_ref()[..8])
    }

    /// The key as standard base64, for the key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        use base64::Engine;
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(*self.0))
    }
}

/// What a sealed field looks like at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The nonce used (unique per encryption).
    pub nonce: Vec<u8>,
    /// Ciphertext with the GCM tag appended.
    pub ciphertext: Vec<u8>,
}

/// Encrypts and decrypts under one master key.
pub struct Cipher {
    key: LessSafeKey,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

/// The associated data binding a ciphertext to its place.
pub fn field_ad(provider: &str, account: &str, field: &str) -> Vec<u8> {
    format!("authledger/v1\0{provider}\0{account}\0{field}").into_bytes()
}

/// The associated data of the key-check value.
const KEY_CHECK_AD: &[u8] = b"authledger/v1\0key-check";
const KEY_CHECK_PLAINTEXT: &str = "authledger master key check";
/// The key check of a ledger whose audit trail is keyed: it attests, under the master key, that
/// the trail's sealed key exists, so removing that key (to pass forged rows off as an unkeyed
/// trail) is caught by anyone holding the master key.
const KEY_CHECK_KEYED_AUDIT: &str = "authledger master key check; audit trail keyed";

impl Cipher {
    /// A cipher under `key`.
    pub fn new(key: &MasterKey) -> Result<Self, VaultError> {
        let unbound = UnboundKey::new(&AES_256_GCM, &key.0[..]).map_err(|_| VaultError::Crypto)?;
        Ok(Cipher {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Encrypts `plaintext` bound to `ad`, with a fresh random nonce.
    pub fn seal(&self, plaintext: &str, ad: &[u8]) -> Result<Sealed, VaultError> {
        let nonce_bytes: [u8; NONCE_LEN] = random::bytes()?;
        let mut buf = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(ad),
                &mut buf,
            )
            .map_err(|_| VaultError::Crypto)?;
        Ok(Sealed {
            nonce: nonce_bytes.to_vec(),
            ciphertext: buf,
        })
    }

    /// Decrypts a sealed value; fails if the key, the associated data or a byte is wrong.
    pub fn open(&self, sealed: &Sealed, ad: &[u8]) -> Result<Secret, VaultError> {
        let nonce =
            <[u8; NONCE_LEN]>::try_from(sealed.nonce.as_slice()).map_err(|_| VaultError::Crypto)?;
        let mut buf = Zeroizing::new(sealed.ciphertext.clone());
        let plain = self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(ad), &mut buf)
            .map_err(|_| VaultError::Crypto)?;
        let text = std::str::from_utf8(plain).map_err(|_| VaultError::Crypto)?;
        Ok(Secret::new(text.to_string()))
    }

    /// A value stored once per ledger that only the right key decrypts: a wrong key is caught
    /// before anything is read or written.
    pub fn key_check(&self) -> Result<Sealed, VaultError> {
        self.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AD)
    }

    /// The key check of a ledger whose audit trail is keyed (see [`Cipher::attests_keyed_audit`]).
    pub fn key_check_keyed_audit(&self) -> Result<Sealed, VaultError> {
        self.seal(KEY_CHECK_KEYED_AUDIT, KEY_CHECK_AD)
    }

    /// Whether this cipher's key made `check`.
    pub fn matches(&self, check: &Sealed) -> bool {
        self.open(check, KEY_CHECK_AD).is_ok_and(|s| {
            s.expose_secret() == KEY_CHECK_PLAINTEXT || s.expose_secret() == KEY_CHECK_KEYED_AUDIT
        })
    }

    /// Whether `check`, made by this cipher's key, says the ledger's audit trail is keyed.
    pub fn attests_keyed_audit(&self, check: &Sealed) -> bool {
        self.open(check, KEY_CHECK_AD)
            .is_ok_and(|s| s.expose_secret() == KEY_CHECK_KEYED_AUDIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ciphertext_only_opens_in_its_own_place_and_under_its_own_key() {
        let key = MasterKey::generate().unwrap();
        let c = Cipher::new(&key).unwrap();
        let ad = field_ad("claude", "default", "api_key");
        let sealed = c.seal("sk-ant-secret", &ad).unwrap();
        assert_eq!(
            c.open(&sealed, &ad).unwrap().expose_secret(),
            "sk-ant-secret"
        );
        assert!(
            c.open(&sealed, &field_ad("claude", "work", "api_key"))
                .is_err()
        );
        assert!(
            c.open(&sealed, &field_ad("claude", "default", "refresh_token"))
                .is_err()
        );
        let other = Cipher::new(&MasterKey::generate().unwrap()).unwrap();
        assert!(other.open(&sealed, &ad).is_err());
        assert!(!other.matches(&c.key_check().unwrap()));
        let again = c.seal("sk-ant-secret", &ad).unwrap();
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce every time");
    }

    #[test]
    fn a_key_id_is_stable_per_key_and_differs_between_keys() {
        let key = MasterKey::generate().unwrap();
        let same = MasterKey::from_base64(&key.to_base64()).unwrap();
        let id = key.key_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(same.key_id(), id);
        assert_ne!(MasterKey::generate().unwrap().key_id(), id);
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_only() {
        let key = MasterKey::generate().unwrap();
        let text = key.to_base64();
        assert!(MasterKey::from_base64(&text).is_ok());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64 at all!").is_err());
    }
}
