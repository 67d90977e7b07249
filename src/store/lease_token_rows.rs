//! Lease tokens, by the hash of the token only: the store never sees a token itself.

use super::sql::args;

use super::tx::parse_col;
use super::{StoreError, Tx};
use crate::types::{LeaseId, Millis};

impl Tx<'_> {
    /// Notes that the token whose hash is `token_hash` stands for `lease`.
    pub fn insert_lease_token(
        &self,
        token_hash: &str,
        lease: &LeaseId,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO lease_tokens (token_hash, lease_id, created_at) VALUES (?1, ?2, ?3)",
            args![token_hash, lease.as_str(), now],
        )?;
        Ok(())
    }

    /// The lease a token hash stands for, if any (whatever the lease's state).
    pub fn lease_of_token(&self, token_hash: &str) -> Result<Option<LeaseId>, StoreError> {
        let raw: Option<String> = self.one(
            "SELECT lease_id FROM lease_tokens WHERE token_hash = ?1",
            args![token_hash],
            |r| r.get("lease_id"),
        )?;
        raw.map(|id| parse_col("lease id", id)).transpose()
    }
}
