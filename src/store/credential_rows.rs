//! Credentials: clear metadata rows and their sealed secret fields.

use super::sql::{Dialect, Row, args};

use super::tx::parse_col;
use super::{StoreError, Tx};
use crate::records::{CredentialRecord, SealedField};
use crate::types::{Account, Millis, Provider};

const COLS: &str = "provider, account, kind, tier, expires_at, scopes, account_id, source, status, generation, created_at, updated_at, last_used_at, refreshed_at, refresh_token_url, refresh_client_id";

type Raw = (
    [String; 3],
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    [String; 2],
    [i64; 3],
    Option<i64>,
    Option<i64>,
    [Option<String>; 2],
);

fn from_row(r: &Row<'_>) -> Result<Raw, StoreError> {
    Ok((
        [r.get("provider")?, r.get("account")?, r.get("kind")?],
        r.get("tier")?,
        r.get("expires_at")?,
        r.get("scopes")?,
        r.get("account_id")?,
        [r.get("source")?, r.get("status")?],
        [
            r.get("generation")?,
            r.get("created_at")?,
            r.get("updated_at")?,
        ],
        r.get("last_used_at")?,
        r.get("refreshed_at")?,
        [r.get("refresh_token_url")?, r.get("refresh_client_id")?],
    ))
}

fn build(raw: Raw) -> Result<CredentialRecord, StoreError> {
    let (
        [provider, account, kind],
        tier,
        expires_at,
        scopes,
        account_id,
        [source, status],
        [generation, created_at, updated_at],
        last_used_at,
        refreshed_at,
        [refresh_token_url, refresh_client_id],
    ) = raw;
    Ok(CredentialRecord {
        provider: parse_col("provider", provider)?,
        account: parse_col("account", account)?,
        kind,
        tier: tier.unwrap_or_default(),
        expires_at,
        scopes: scopes.unwrap_or_default(),
        account_id,
        source,
        status,
        generation,
        created_at,
        updated_at,
        last_used_at,
        refreshed_at,
        refresh_token_url,
        refresh_client_id,
    })
}

/// Every credential's metadata, ordered by provider and account.
pub(super) fn all_credentials_sql(dialect: Dialect) -> String {
    let order = dialect.order_text(&["provider", "account"]);
    format!("SELECT {COLS} FROM credentials ORDER BY {order}")
}

impl Tx<'_> {
    /// One credential's metadata.
    pub fn credential_record(
        &self,
        provider: Provider,
        account: &Account,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        if self.reads_cost_round_trips() {
            // One provider account's row out of the whole (small) table, which selection has
            // usually read already in this transaction; only that row is parsed, as below.
            let raws = self.all(&all_credentials_sql(self.dialect()), &[], from_row)?;
            return raws
                .into_iter()
                .find(|r| r.0[0] == provider.as_str() && r.0[1] == account.as_str())
                .map(build)
                .transpose();
        }
        let raw = self.one(
            &format!("SELECT {COLS} FROM credentials WHERE provider = ?1 AND account = ?2"),
            args![provider.as_str(), account.as_str()],
            from_row,
        )?;
        raw.map(build).transpose()
    }

    /// Every credential's metadata, ordered by provider and account.
    pub fn credential_records(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        let raws = self.all(&all_credentials_sql(self.dialect()), &[], from_row)?;
        raws.into_iter().map(build).collect()
    }

    /// Inserts or replaces a credential's metadata.
    pub fn put_credential_record(&self, c: &CredentialRecord) -> Result<(), StoreError> {
        self.exec(
            &format!(
                "INSERT INTO credentials ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (provider, account) DO UPDATE SET
                   kind = excluded.kind, tier = excluded.tier, expires_at = excluded.expires_at,
                   scopes = excluded.scopes, account_id = excluded.account_id, source = excluded.source,
                   status = excluded.status, generation = excluded.generation,
                   updated_at = excluded.updated_at, last_used_at = excluded.last_used_at,
                   refreshed_at = excluded.refreshed_at,
                   refresh_token_url = excluded.refresh_token_url,
                   refresh_client_id = excluded.refresh_client_id"
            ),
            args![
                c.provider.as_str(),
                c.account.as_str(),
                c.kind,
                c.tier,
                c.expires_at,
                c.scopes,
                c.account_id,
                c.source,
                c.status,
                c.generation,
                c.created_at,
                c.updated_at,
                c.last_used_at,
                c.refreshed_at,
                c.refresh_token_url,
                c.refresh_client_id
            ],
        )?;
        Ok(())
    }

    /// The highest generation this provider account's credential ever had, across logouts
    /// (0 if it never had one): a new credential starts above it, so generations never repeat.
    pub fn credential_generation_high_water(
        &self,
        provider: Provider,
        account: &Account,
    ) -> Result<i64, StoreError> {
        let last: Option<i64> = self.one(
            "SELECT last FROM credential_generations WHERE provider = ?1 AND account = ?2",
            args![provider.as_str(), account.as_str()],
            |r| r.get("last"),
        )?;
        Ok(last.unwrap_or(0))
    }

    /// Removes a credential and (by cascade) its secrets; returns whether one existed.
    pub fn delete_credential(
        &self,
        provider: Provider,
        account: &Account,
    ) -> Result<bool, StoreError> {
        self.exec(
            "DELETE FROM credential_secrets WHERE provider = ?1 AND account = ?2",
            args![provider.as_str(), account.as_str()],
        )?;
        let n = self.exec(
            "DELETE FROM credentials WHERE provider = ?1 AND account = ?2",
            args![provider.as_str(), account.as_str()],
        )?;
        Ok(n == 1)
    }

    /// Marks a credential `ok` or `needs_login`, only if it is still at `generation` (a newer
    /// login must not be marked by an old refresh's failure). Returns whether it was marked.
    pub fn set_credential_status(
        &self,
        provider: Provider,
        account: &Account,
        status: &str,
        generation: i64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let n = self.exec(
            "UPDATE credentials SET status = ?3, generation = generation + 1, updated_at = ?5
             WHERE provider = ?1 AND account = ?2 AND generation = ?4",
            args![provider.as_str(), account.as_str(), status, generation, now],
        )?;
        Ok(n == 1)
    }

    /// Takes the refresh claim for a credential unless another holder has a live one or the
    /// credential is no longer at `generation`. The claim expires at `until`, so a holder that
    /// died does not block the others for long.
    pub fn try_claim_refresh(
        &self,
        provider: Provider,
        account: &Account,
        holder: &str,
        generation: i64,
        now: Millis,
        until: Millis,
    ) -> Result<bool, StoreError> {
        // A claim is only for the credential as the caller read it: if another process has
        // refreshed it since (its generation moved on), the caller must read the new token
        // instead of refreshing again with a refresh token that may already be rotated.
        let current: Option<i64> = self.one(
            "SELECT generation FROM credentials WHERE provider = ?1 AND account = ?2",
            args![provider.as_str(), account.as_str()],
            |r| r.get("generation"),
        )?;
        if current != Some(generation) {
            return Ok(false);
        }
        let n = self.exec(
            "INSERT INTO refresh_claims (provider, account, holder, generation, claimed_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (provider, account) DO UPDATE SET
               holder = excluded.holder, generation = excluded.generation,
               claimed_at = excluded.claimed_at, expires_at = excluded.expires_at
             WHERE refresh_claims.expires_at <= excluded.claimed_at",
            args![provider.as_str(), account.as_str(), holder, generation, now, until],
        )?;
        Ok(n == 1)
    }

    /// Gives up a refresh claim (only the holder's own).
    pub fn release_refresh_claim(
        &self,
        provider: Provider,
        account: &Account,
        holder: &str,
    ) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM refresh_claims WHERE provider = ?1 AND account = ?2 AND holder = ?3",
            args![provider.as_str(), account.as_str(), holder],
        )?;
        Ok(())
    }

    /// Notes that an agent was handed the credential.
    pub fn touch_credential(
        &self,
        provider: Provider,
        account: &Account,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE credentials SET last_used_at = ?3 WHERE provider = ?1 AND account = ?2",
            args![provider.as_str(), account.as_str(), now],
        )?;
        Ok(())
    }

    /// A credential's sealed fields.
    pub fn sealed_fields(
        &self,
        provider: Provider,
        account: &Account,
    ) -> Result<Vec<SealedField>, StoreError> {
        self.all(
            "SELECT field, nonce, ciphertext FROM credential_secrets
             WHERE provider = ?1 AND account = ?2 ORDER BY field",
            args![provider.as_str(), account.as_str()],
            |r| {
                Ok(SealedField {
                    field: r.get("field")?,
                    nonce: r.get("nonce")?,
                    ciphertext: r.get("ciphertext")?,
                })
            },
        )
    }

    /// Replaces all of a credential's sealed fields.
    pub fn replace_sealed_fields(
        &self,
        provider: Provider,
        account: &Account,
        fields: &[SealedField],
    ) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM credential_secrets WHERE provider = ?1 AND account = ?2",
            args![provider.as_str(), account.as_str()],
        )?;
        for f in fields {
            self.exec(
                "INSERT INTO credential_secrets (provider, account, field, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4, ?5)",
                args![provider.as_str(), account.as_str(), f.field, f.nonce, f.ciphertext],
            )?;
        }
        Ok(())
    }
}
