//! Lease tokens: what an agent holds instead of the provider's credential. A gateway maps the
//! token back to its lease on every request. The ledger stores only the token's SHA-256, so
//! the database (or a copy of it) never holds a usable token; a token is worth something only
//! while its lease is active and unexpired.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Ledger, settle};
use crate::error::Error;
use crate::quota::{self, QuotaError};
use crate::random;
use crate::records::{CredentialRecord, Lease};
use crate::types::{LeaseId, LeaseState};
use crate::vault::Secret;

/// A token's live lease and the metadata of its account's credential (`None`: it has none).
pub type TokenLease = (Lease, Option<CredentialRecord>);

/// The prefix of every lease token: recognisable in logs, never mistaken for a provider key.
pub const LEASE_TOKEN_PREFIX: &str = "alt-";

/// The stored form of a token: the hex SHA-256 of its text.
fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

impl Ledger {
    /// Issues a new token for an active lease: `alt-` and 32 random bytes in base64url.
    ///
    /// Each call issues another token and every one stays valid while the lease lives (a
    /// gateway restarted for the same lease does not cut off an agent holding the first).
    /// Only the token's hash is stored. An ended or expired lease is [`QuotaError::LeaseLost`].
    pub fn issue_lease_token(&self, id: &LeaseId) -> Result<Secret, Error> {
        let bytes = random::bytes::<32>().map_err(QuotaError::from)?;
        let token = Secret::new(format!(
            "{LEASE_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes)
        ));
        let hash = token_hash(token.expose_secret());
        let now = self.now();
        settle(self.store.write(|tx| -> Result<_, QuotaError> {
            match quota::live_lease(tx, now, id)? {
                Ok(lease) => {
                    tx.insert_lease_token(&hash, &lease.id, now)?;
                    Ok(Ok(()))
                }
                // An expired lease was reclaimed just now: committed, then reported lost.
                Err(lost) => Ok(Err(lost)),
            }
        }))?;
        Ok(token)
    }

    /// The lease a token stands for, only if that lease is active and not past its expiry
    /// at the ledger's clock; `None` for an unknown token or one whose lease ended. A read.
    pub fn lease_for_token(&self, token: &str) -> Result<Option<Lease>, Error> {
        let hash = token_hash(token);
        let now = self.now();
        Ok(self
            .store
            .read(|tx| -> Result<_, crate::store::StoreError> {
                let Some(id) = tx.lease_of_token(&hash)? else {
                    return Ok(None);
                };
                Ok(tx
                    .lease(&id)?
                    .filter(|l| l.state == LeaseState::Active && l.expires_at > now))
            })?)
    }

    /// [`lease_for_token`](Self::lease_for_token) and the metadata of the lease's credential
    /// (no secret: its generation, status and expiry), in one read: what a gateway needs on
    /// every request to tell whether the upstream credential it holds is still the stored one.
    /// The credential is `None` when its account has none.
    pub fn lease_and_credential_for_token(&self, token: &str) -> Result<Option<TokenLease>, Error> {
        let hash = token_hash(token);
        let now = self.now();
        Ok(self.store.read(|tx| lease_and_credential(tx, &hash, now))?)
    }

    /// [`lease_and_credential_for_token`](Self::lease_and_credential_for_token) without
    /// waiting for a database connection: `None` when none is idle now.
    pub fn try_lease_and_credential_for_token(
        &self,
        token: &str,
    ) -> Option<Result<Option<TokenLease>, Error>> {
        let hash = token_hash(token);
        let now = self.now();
        let read = self
            .store
            .try_read(|tx| lease_and_credential(tx, &hash, now))?;
        Some(read.map_err(Error::from))
    }
}

/// The live lease of a token hash and its credential's metadata, in the caller's read.
fn lease_and_credential(
    tx: &mut crate::store::Tx<'_>,
    hash: &str,
    now: crate::types::Millis,
) -> Result<Option<TokenLease>, crate::store::StoreError> {
    let Some(id) = tx.lease_of_token(hash)? else {
        return Ok(None);
    };
    let Some(lease) = tx
        .lease(&id)?
        .filter(|l| l.state == LeaseState::Active && l.expires_at > now)
    else {
        return Ok(None);
    };
    let credential = tx.credential_record(lease.provider, &lease.account)?;
    Ok(Some((lease, credential)))
}
