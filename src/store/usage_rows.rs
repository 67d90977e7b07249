//! Usage events (unique by idempotency key) and their summaries.

use rusqlite::{OptionalExtension, params};

use super::tx::parse_col;
use super::{StoreError, Tx};
use crate::records::{UsageEvent, UsageGroup, UsageSummary};
use crate::types::Millis;

impl Tx<'_> {
    /// The usage event stored under an idempotency key, if any.
    pub fn usage_by_key(&self, key: &str) -> Result<Option<UsageEvent>, StoreError> {
        let raw = self
            .one(
                "SELECT idem_key, lease_id, agent, provider, account, input, output, requests, at_ms
                 FROM usage_events WHERE idem_key = ?1",
                [key],
                |r| {
                    Ok((
                        [r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?],
                        [r.get::<_, i64>(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                    ))
                },
            )
            .optional()?;
        let Some((
            [idem_key, lease_id, agent, provider, account],
            [input, output, requests, at_ms],
        )) = raw
        else {
            return Ok(None);
        };
        Ok(Some(UsageEvent {
            idem_key,
            lease_id: parse_col("lease id", lease_id)?,
            agent: parse_col("agent id", agent)?,
            provider: parse_col("provider", provider)?,
            account: parse_col("account", account)?,
            input,
            output,
            requests,
            at_ms,
        }))
    }

    /// Stores a usage event; the UNIQUE idempotency key makes a duplicate impossible.
    pub fn insert_usage(&self, e: &UsageEvent) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO usage_events (idem_key, lease_id, agent, provider, account, input, output, requests, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                e.idem_key,
                e.lease_id.as_str(),
                e.agent.as_str(),
                e.provider.as_str(),
                e.account.as_str(),
                e.input,
                e.output,
                e.requests,
                e.at_ms
            ],
        )?;
        Ok(())
    }

    /// Sums usage since a time, grouped by agent, provider account or UTC day.
    pub fn usage_summary(
        &self,
        since: Millis,
        group: UsageGroup,
    ) -> Result<Vec<UsageSummary>, StoreError> {
        let key = match group {
            UsageGroup::Agent => "agent",
            UsageGroup::Provider => "provider || '/' || account",
            UsageGroup::Day => "strftime('%Y-%m-%d', at_ms / 1000, 'unixepoch')",
        };
        let mut stmt = self.txn.prepare_cached(&format!(
            "SELECT {key} AS k, SUM(input), SUM(output), SUM(requests), COUNT(*)
             FROM usage_events WHERE at_ms >= ?1 GROUP BY k ORDER BY k"
        ))?;
        let rows = stmt
            .query_map([since], |r| {
                let input: i64 = r.get(1)?;
                let output: i64 = r.get(2)?;
                Ok(UsageSummary {
                    key: r.get(0)?,
                    input,
                    output,
                    total: input + output,
                    requests: r.get(3)?,
                    records: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
