//! Usage events (unique by idempotency key) and their summaries.

use super::sql::{Dialect, args};

use super::tx::parse_col;
use super::{StoreError, Tx};
use crate::prices::Usage;
use crate::records::{UsageEvent, UsageGroup, UsageSummary};
use crate::types::Millis;

impl Tx<'_> {
    /// The usage event stored under an idempotency key, if any.
    pub fn usage_by_key(&self, key: &str) -> Result<Option<UsageEvent>, StoreError> {
        let raw = self.one(
            "SELECT idem_key, lease_id, agent, provider, account, input, output, requests,
                        model, cache_read, cache_write, status, at_ms
                 FROM usage_events WHERE idem_key = ?1",
            args![key],
            |r| {
                Ok((
                    [
                        r.get::<String>("idem_key")?,
                        r.get("lease_id")?,
                        r.get("agent")?,
                        r.get("provider")?,
                        r.get("account")?,
                    ],
                    [
                        r.get::<i64>("input")?,
                        r.get("output")?,
                        r.get("requests")?,
                        r.get("cache_read")?,
                        r.get("cache_write")?,
                        r.get("at_ms")?,
                    ],
                    [r.get::<Option<String>>("model")?, r.get("status")?],
                ))
            },
        )?;
        let Some((
            [idem_key, lease_id, agent, provider, account],
            [input, output, requests, cache_read, cache_write, at_ms],
            [model, status],
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
            model,
            cache_read,
            cache_write,
            status,
            at_ms,
        }))
    }

    /// Stores a usage event; the UNIQUE idempotency key makes a duplicate impossible.
    pub fn insert_usage(&self, e: &UsageEvent) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO usage_events (idem_key, lease_id, agent, provider, account, input, output,
                                       requests, model, cache_read, cache_write, status, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            args![
                e.idem_key,
                e.lease_id.as_str(),
                e.agent.as_str(),
                e.provider.as_str(),
                e.account.as_str(),
                e.input,
                e.output,
                e.requests,
                e.model,
                e.cache_read,
                e.cache_write,
                e.status,
                e.at_ms
            ],
        )?;
        Ok(())
    }

    /// Sums usage since a time, grouped by agent, provider account, UTC day, model or lease.
    pub fn usage_summary(
        &self,
        since: Millis,
        group: UsageGroup,
    ) -> Result<Vec<UsageSummary>, StoreError> {
        let key = group_key(self.dialect(), group);
        // Sessions in the order they began using tokens (their ids are random); the rest
        // by key.
        // The key's expression, not its alias: PostgreSQL takes an alias only bare.
        let by_key = self.dialect().order_text(&[&format!("({key})")]);
        let order = match group {
            UsageGroup::Session => format!("MIN(id), {by_key}"),
            _ => by_key,
        };
        self.all(
            &format!(
                "SELECT {key} AS k, CAST(SUM(input) AS BIGINT) AS input_total,
                        CAST(SUM(output) AS BIGINT) AS output_total,
                        CAST(SUM(cache_read) AS BIGINT) AS cache_read_total,
                        CAST(SUM(cache_write) AS BIGINT) AS cache_write_total,
                        CAST(SUM(requests) AS BIGINT) AS request_total, COUNT(*) AS record_count
                 FROM usage_events WHERE at_ms >= ?1 GROUP BY k ORDER BY {order}"
            ),
            args![since],
            |r| {
                let input: i64 = r.get("input_total")?;
                let output: i64 = r.get("output_total")?;
                let cache_read: i64 = r.get("cache_read_total")?;
                let cache_write: i64 = r.get("cache_write_total")?;
                Ok(UsageSummary {
                    key: r.get("k")?,
                    input,
                    output,
                    cache_read,
                    cache_write,
                    total: input + output + cache_read + cache_write,
                    requests: r.get("request_total")?,
                    records: r.get("record_count")?,
                })
            },
        )
    }

    /// Hands every usage record since a time to `each`, with the key of its group: what a
    /// cost needs, since a request's price tier depends on that request alone, not on a sum.
    pub fn usage_each(
        &self,
        since: Millis,
        group: UsageGroup,
        each: &mut dyn FnMut(&str, &Usage<'_>),
    ) -> Result<(), StoreError> {
        let key = group_key(self.dialect(), group);
        self.scan(
            &format!(
                "SELECT {key} AS k, model, input, output, cache_read, cache_write, requests
                 FROM usage_events WHERE at_ms >= ?1"
            ),
            args![since],
            |r| {
                let key: String = r.get("k")?;
                let model: Option<String> = r.get("model")?;
                each(
                    &key,
                    &Usage {
                        model: model.as_deref(),
                        input: r.get("input")?,
                        output: r.get("output")?,
                        cache_read: r.get("cache_read")?,
                        cache_write: r.get("cache_write")?,
                        requests: r.get("requests")?,
                    },
                );
                Ok(true)
            },
        )
    }
}

/// The SQL expression a usage group is keyed by.
fn group_key(dialect: Dialect, group: UsageGroup) -> String {
    match group {
        UsageGroup::Agent => "agent".into(),
        UsageGroup::Provider => "provider || '/' || account".into(),
        UsageGroup::Day => dialect.utc_day("at_ms"),
        UsageGroup::Model => "COALESCE(model, '-')".into(),
        UsageGroup::Session => "lease_id".into(),
    }
}

impl Tx<'_> {
    /// Requests of the usage records that carry an outcome (the gateway's), per provider and
    /// outcome: the gateway request counters `metrics` exports.
    pub fn usage_outcomes(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let order = self.dialect().order_text(&["provider", "status"]);
        self.all(
            &format!(
                "SELECT provider, status, CAST(SUM(requests) AS BIGINT) AS n FROM usage_events
                 WHERE status IS NOT NULL GROUP BY provider, status ORDER BY {order}"
            ),
            &[],
            |r| Ok((r.get("provider")?, r.get("status")?, r.get("n")?)),
        )
    }
}
