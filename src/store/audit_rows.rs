//! The audit table: append, query, and a full ordered scan for verification.

use super::sql::{Row, args};

use super::{StoreError, Tx};
use crate::records::{AuditEntry, AuditQuery};

/// The chain's last row.
pub(super) const AUDIT_TAIL: &str = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";

const AUDIT_COLS: &str =
    "seq, at_ms, action, agent, provider, account, lease_id, detail, prev_hash, hash";

fn audit_from_row(r: &Row<'_>) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: r.get("seq")?,
        at_ms: r.get("at_ms")?,
        action: r.get("action")?,
        agent: r.get("agent")?,
        provider: r.get("provider")?,
        account: r.get("account")?,
        lease_id: r.get("lease_id")?,
        detail: r.get("detail")?,
        prev_hash: r.get("prev_hash")?,
        hash: r.get("hash")?,
    })
}

/// Appends a row.
pub(super) fn insert_audit_sql() -> String {
    format!("INSERT INTO audit ({AUDIT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")
}

impl Tx<'_> {
    /// The last row of the chain: `(seq, hash)`.
    pub fn audit_tail(&self) -> Result<Option<(i64, String)>, StoreError> {
        if let Some(tail) = &self.audit.borrow().tail {
            return Ok(tail.clone());
        }
        let tail = self.one(AUDIT_TAIL, &[], |r| Ok((r.get("seq")?, r.get("hash")?)))?;
        self.audit.borrow_mut().tail = Some(tail.clone());
        Ok(tail)
    }

    /// Records `head` as the chain's head when this transaction commits (once, however many
    /// rows it appends).
    pub fn set_audit_head(&self, head: &str) {
        self.audit.borrow_mut().head = Some(head.to_string());
    }

    /// The detail of a lease's latest row with this action, if any. Scans the trail (no index
    /// by lease): for the rare caller settling a reply the daemon lost.
    pub fn lease_audit_detail(
        &self,
        lease: &crate::types::LeaseId,
        action: &str,
    ) -> Result<Option<String>, StoreError> {
        self.one(
            "SELECT detail FROM audit WHERE lease_id = ?1 AND action = ?2
                 ORDER BY seq DESC LIMIT 1",
            args![lease.as_str(), action],
            |r| r.get("detail"),
        )
    }

    /// Appends a row whose hashes the audit layer computed.
    pub fn insert_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.exec_later(
            &insert_audit_sql(),
            args![
                e.seq,
                e.at_ms,
                e.action,
                e.agent,
                e.provider,
                e.account,
                e.lease_id,
                e.detail,
                e.prev_hash,
                e.hash
            ],
        )?;
        self.audit.borrow_mut().tail = Some(Some((e.seq, e.hash.clone())));
        Ok(())
    }

    /// Rows matching a query, oldest first (the newest `limit` of them when a limit is set).
    /// Each optional filter is cast to its type: PostgreSQL cannot infer a parameter's type
    /// from `$1 IS NULL` alone and would refuse the statement.
    pub fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        // Each optional filter is cast where it is first seen: PostgreSQL types a parameter at
        // its first use, and `$1 IS NULL` alone says nothing ("could not determine data type").
        let limit = q.limit.map(i64::from).unwrap_or(i64::MAX);
        self.all(
            &format!(
                "SELECT * FROM (
                SELECT {AUDIT_COLS} FROM audit
                WHERE (CAST(?1 AS BIGINT) IS NULL OR at_ms >= ?1)
                  AND (CAST(?2 AS BIGINT) IS NULL OR at_ms < ?2)
                  AND (CAST(?3 AS TEXT) IS NULL OR agent = ?3)
                  AND (CAST(?4 AS TEXT) IS NULL OR provider = ?4)
                  AND (CAST(?5 AS TEXT) IS NULL OR action = ?5)
                ORDER BY seq DESC LIMIT ?6
             ) AS recent ORDER BY seq"
            ),
            args![
                q.since,
                q.until,
                q.agent,
                q.provider.map(|p| p.as_str()),
                q.action,
                limit
            ],
            audit_from_row,
        )
    }

    /// Feeds every row, in physical rowid order, to `visit`; stops at the first `Some`.
    /// Verification walks the table as stored so reordered rows cannot hide behind `ORDER BY`.
    pub fn audit_scan<T>(
        &self,
        mut visit: impl FnMut(AuditEntry) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        // SQLite: the physical order. PostgreSQL keeps no such order that survives a vacuum;
        // there the chain's own sequence is walked, and a missing or reordered row still
        // breaks the chain's MACs.
        let order = match self.dialect() {
            super::sql::Dialect::Sqlite => "rowid",
            super::sql::Dialect::Postgres => "seq",
        };
        let mut found = None;
        self.scan(
            &format!("SELECT {AUDIT_COLS} FROM audit ORDER BY {order}"),
            &[],
            |r| {
                found = visit(audit_from_row(r)?);
                Ok(found.is_none())
            },
        )?;
        Ok(found)
    }
}

impl Tx<'_> {
    /// How many rows each action has, per provider (`None` for rows of no provider): the
    /// counters `metrics` exports, counted here rather than by reading every row.
    pub fn audit_counts(&self) -> Result<Vec<(String, Option<String>, i64)>, StoreError> {
        let order = self.dialect().order_text(&["action", "provider"]);
        self.all(
            &format!(
                "SELECT action, provider, COUNT(*) AS n FROM audit
                 GROUP BY action, provider ORDER BY {order}"
            ),
            &[],
            |r| Ok((r.get("action")?, r.get("provider")?, r.get("n")?)),
        )
    }
}
