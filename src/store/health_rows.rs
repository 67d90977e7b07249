//! Provider health rows.

use super::sql::args;

use super::tx::parse_col;
use super::{StoreError, Tx};
use crate::records::HealthRecord;
use crate::types::{Account, Provider};

impl Tx<'_> {
    /// A provider account's health, if anything was reported.
    pub fn health(
        &self,
        provider: Provider,
        account: &Account,
    ) -> Result<Option<HealthRecord>, StoreError> {
        let raw = self
            .one(
                "SELECT provider, account, unavailable_until, reason, consecutive_errors, last_status, facts, updated_at
                 FROM provider_health WHERE provider = ?1 AND account = ?2",
                args![provider.as_str(), account.as_str()],
                |r| {
                    Ok((
                        r.get::<String>("provider")?,
                        r.get::<String>("account")?,
                        r.get::<Option<i64>>("unavailable_until")?,
                        r.get::<Option<String>>("reason")?,
                        r.get::<i64>("consecutive_errors")?,
                        r.get::<Option<i64>>("last_status")?,
                        r.get::<String>("facts")?,
                        r.get::<i64>("updated_at")?,
                    ))
                },
            )
            ?;
        let Some((
            p,
            a,
            unavailable_until,
            reason,
            consecutive_errors,
            last_status,
            facts,
            updated_at,
        )) = raw
        else {
            return Ok(None);
        };
        Ok(Some(HealthRecord {
            provider: parse_col("provider", p)?,
            account: parse_col("account", a)?,
            unavailable_until,
            reason,
            consecutive_errors,
            last_status,
            facts,
            updated_at,
        }))
    }

    /// Stores a provider account's health.
    pub fn put_health(&self, h: &HealthRecord) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO provider_health
               (provider, account, unavailable_until, reason, consecutive_errors, last_status, facts, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (provider, account) DO UPDATE SET
               unavailable_until = excluded.unavailable_until, reason = excluded.reason,
               consecutive_errors = excluded.consecutive_errors,
               last_status = excluded.last_status, facts = excluded.facts,
               updated_at = excluded.updated_at",
            args![
                h.provider.as_str(),
                h.account.as_str(),
                h.unavailable_until,
                h.reason,
                h.consecutive_errors,
                h.last_status,
                h.facts,
                h.updated_at
            ],
        )?;
        Ok(())
    }
}
