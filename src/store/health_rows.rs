//! Provider health rows.

use super::sql::{Dialect, Row, args};

use super::tx::parse_col;
use super::{StoreError, Tx};
use crate::records::HealthRecord;
use crate::types::{Account, Provider};

const HEALTH_COLS: &str = "provider, account, unavailable_until, reason, consecutive_errors, \
                           last_status, facts, updated_at";

/// Every provider account's health.
pub(super) fn all_health_sql(dialect: Dialect) -> String {
    let order = dialect.order_text(&["provider", "account"]);
    format!("SELECT {HEALTH_COLS} FROM provider_health ORDER BY {order}")
}

fn health_from_row(r: &Row<'_>) -> Result<HealthRecord, StoreError> {
    Ok(HealthRecord {
        provider: parse_col("provider", r.get("provider")?)?,
        account: parse_col("account", r.get("account")?)?,
        unavailable_until: r.get("unavailable_until")?,
        reason: r.get("reason")?,
        consecutive_errors: r.get("consecutive_errors")?,
        last_status: r.get("last_status")?,
        facts: r.get("facts")?,
        updated_at: r.get("updated_at")?,
    })
}

impl Tx<'_> {
    /// A provider account's health, if anything was reported.
    pub fn health(
        &self,
        provider: Provider,
        account: &Account,
    ) -> Result<Option<HealthRecord>, StoreError> {
        if self.reads_cost_round_trips() {
            // Out of the whole (small) table, read once per transaction (with `BEGIN`, when
            // the transaction is a grant).
            // Only that row is parsed, as below.
            let rows = self.all(&all_health_sql(self.dialect()), &[], |r| {
                let key: (String, String) = (r.get("provider")?, r.get("account")?);
                let mine = key.0 == provider.as_str() && key.1 == account.as_str();
                mine.then(|| health_from_row(r)).transpose()
            })?;
            return Ok(rows.into_iter().flatten().next());
        }
        self.one(
            &format!(
                "SELECT {HEALTH_COLS} FROM provider_health WHERE provider = ?1 AND account = ?2"
            ),
            args![provider.as_str(), account.as_str()],
            health_from_row,
        )
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
