//! Copying a whole ledger from one store to another (`authledger migrate`): SQLite to a
//! server when a team outgrows one machine, or back.
//!
//! Rows are copied as stored, column by column: sealed secrets stay sealed (the master key is
//! never needed), and the audit trail keeps every row, hash and MAC, so it verifies on the
//! other side. The target must be empty; the whole copy is one write transaction on it, read
//! from one snapshot of the source, so a failure leaves the target as empty as it was.

use super::sql::{Row, Value};
use super::{Store, StoreError, Tx};

/// A column's type, as both engines store it.
#[derive(Debug, Clone, Copy)]
enum Col {
    Int,
    Text,
    Blob,
}

use Col::{Blob, Int, Text};

/// Every table of the schema, in an order that satisfies its foreign keys (and with
/// `credential_generations` before `credentials`, whose triggers keep it), with its columns.
const TABLES: &[(&str, &[(&str, Col)])] = &[
    ("settings", &[("key", Text), ("value", Text)]),
    (
        "limits",
        &[
            ("provider", Text),
            ("account", Text),
            ("daily_tokens", Int),
            ("window_5h_tokens", Int),
            ("weekly_tokens", Int),
            ("rpm", Int),
            ("tpm", Int),
            ("concurrent", Int),
            ("lease_cap", Int),
            ("reset_offset_min", Int),
            ("updated_at", Int),
        ],
    ),
    (
        "windows",
        &[
            ("id", Int),
            ("provider", Text),
            ("account", Text),
            ("kind", Text),
            ("start_ms", Int),
            ("end_ms", Int),
            ("used", Int),
            ("reserved", Int),
            ("requests", Int),
        ],
    ),
    (
        "leases",
        &[
            ("id", Text),
            ("fence", Int),
            ("agent", Text),
            ("provider", Text),
            ("account", Text),
            ("allocated", Int),
            ("used", Int),
            ("ttl_ms", Int),
            ("created_at", Int),
            ("expires_at", Int),
            ("heartbeat_at", Int),
            ("state", Text),
            ("ended_at", Int),
            ("end_reason", Text),
        ],
    ),
    (
        "lease_windows",
        &[("lease_id", Text), ("window_id", Int), ("reserved", Int)],
    ),
    (
        "usage_events",
        &[
            ("id", Int),
            ("idem_key", Text),
            ("lease_id", Text),
            ("agent", Text),
            ("provider", Text),
            ("account", Text),
            ("input", Int),
            ("output", Int),
            ("requests", Int),
            ("at_ms", Int),
            ("model", Text),
            ("cache_read", Int),
            ("cache_write", Int),
            ("status", Text),
        ],
    ),
    (
        "audit",
        &[
            ("seq", Int),
            ("at_ms", Int),
            ("action", Text),
            ("agent", Text),
            ("provider", Text),
            ("account", Text),
            ("lease_id", Text),
            ("detail", Text),
            ("prev_hash", Text),
            ("hash", Text),
        ],
    ),
    (
        "credential_generations",
        &[("provider", Text), ("account", Text), ("last", Int)],
    ),
    (
        "credentials",
        &[
            ("provider", Text),
            ("account", Text),
            ("kind", Text),
            ("tier", Text),
            ("expires_at", Int),
            ("scopes", Text),
            ("generation", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("last_used_at", Int),
            ("account_id", Text),
            ("source", Text),
            ("status", Text),
            ("refreshed_at", Int),
            ("refresh_token_url", Text),
            ("refresh_client_id", Text),
        ],
    ),
    (
        "credential_secrets",
        &[
            ("provider", Text),
            ("account", Text),
            ("field", Text),
            ("nonce", Blob),
            ("ciphertext", Blob),
        ],
    ),
    (
        "refresh_claims",
        &[
            ("provider", Text),
            ("account", Text),
            ("holder", Text),
            ("generation", Int),
            ("claimed_at", Int),
            ("expires_at", Int),
        ],
    ),
    (
        "provider_health",
        &[
            ("provider", Text),
            ("account", Text),
            ("unavailable_until", Int),
            ("reason", Text),
            ("consecutive_errors", Int),
            ("last_status", Int),
            ("facts", Text),
            ("updated_at", Int),
        ],
    ),
    (
        "lease_tokens",
        &[
            ("token_hash", Text),
            ("lease_id", Text),
            ("created_at", Int),
        ],
    ),
    (
        "utilization_samples",
        &[
            ("provider", Text),
            ("account", Text),
            ("window_name", Text),
            ("at_ms", Int),
            ("used_bp", Int),
            ("resets_at", Int),
            ("window_ms", Int),
        ],
    ),
];

/// Tables whose integer `id` a server draws from a sequence: after ids are copied in, the
/// sequence must continue above them.
const DRAWN_IDS: &[&str] = &["windows", "usage_events"];

/// One stored value, owned.
#[derive(Debug, Clone)]
enum Owned {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Owned {
    fn read(r: &Row<'_>, name: &str, col: Col) -> Result<Owned, StoreError> {
        Ok(match col {
            Int => r.get::<Option<i64>>(name)?.map_or(Owned::Null, Owned::Int),
            Text => r
                .get::<Option<String>>(name)?
                .map_or(Owned::Null, Owned::Text),
            Blob => r
                .get::<Option<Vec<u8>>>(name)?
                .map_or(Owned::Null, Owned::Blob),
        })
    }

    fn value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Int(i) => Value::Int(*i),
            Owned::Text(s) => Value::Text(s),
            Owned::Blob(b) => Value::Blob(b),
        }
    }
}

/// How many rows of each table a copy moved.
pub type CopyReport = Vec<(&'static str, u64)>;

impl Tx<'_> {
    /// The first table holding any row, if one does.
    fn first_nonempty_table(&self) -> Result<Option<&'static str>, StoreError> {
        for (table, _) in TABLES {
            let any = self
                .one(
                    &format!("SELECT 1 AS present FROM {table} LIMIT 1"),
                    &[],
                    |_| Ok(()),
                )?
                .is_some();
            if any {
                return Ok(Some(table));
            }
        }
        Ok(None)
    }
}

impl Store {
    /// Copies every row of this ledger into `target`, which must be an empty ledger at the
    /// same schema version; refused (nothing written) otherwise.
    pub fn copy_into(&self, target: &Store) -> Result<CopyReport, StoreError> {
        let (_, here) = self.schema_versions()?;
        let (_, there) = target.schema_versions()?;
        if here != there {
            return Err(StoreError::Constraint {
                reason: format!("the source is at schema version {here} and the target at {there}"),
            });
        }
        self.read(|source| {
            target.write(|dest| {
                if let Some(table) = dest.first_nonempty_table()? {
                    return Err(StoreError::Constraint {
                        reason: format!(
                            "the target is not empty (its {table} table has rows): \
                             migrate only into a new ledger"
                        ),
                    });
                }
                let mut report = Vec::new();
                for (table, cols) in TABLES {
                    let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
                    let list = names.join(", ");
                    let slots: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                    let insert =
                        format!("INSERT INTO {table} ({list}) VALUES ({})", slots.join(", "));
                    let mut copied = 0u64;
                    let mut failure = None;
                    source.scan(&format!("SELECT {list} FROM {table}"), &[], |r| {
                        let row = cols
                            .iter()
                            .map(|(n, c)| Owned::read(r, n, *c))
                            .collect::<Result<Vec<_>, _>>()?;
                        let values: Vec<Value<'_>> = row.iter().map(Owned::value).collect();
                        match dest.exec(&insert, &values) {
                            Ok(_) => {
                                copied += 1;
                                Ok(true)
                            }
                            Err(e) => {
                                failure = Some(e);
                                Ok(false)
                            }
                        }
                    })?;
                    if let Some(e) = failure {
                        return Err(e);
                    }
                    if dest.dialect() == super::sql::Dialect::Postgres && DRAWN_IDS.contains(table)
                    {
                        dest.command(&format!(
                            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                             COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                        ))?;
                    }
                    report.push((*table, copied));
                }
                Ok(report)
            })
        })
    }

    /// The first of the ledger's tables that holds a row, if any: a ledger that has none is
    /// new, and may be copied into.
    pub fn first_nonempty_table(&self) -> Result<Option<&'static str>, StoreError> {
        self.read(|tx| tx.first_nonempty_table())
    }

    /// The names of the schema's tables, as a copy knows them (a test checks that a new
    /// migration's tables are added here).
    pub fn copied_tables() -> Vec<&'static str> {
        TABLES.iter().map(|(t, _)| *t).collect()
    }
}
