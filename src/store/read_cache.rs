//! What a PostgreSQL write transaction already read, kept until a write could change it.
//!
//! Every ledger writer holds the ledger's lock, so within a write transaction nothing but the
//! transaction's own writes changes what it reads: a read asked again is answered from here
//! without a round trip. A write forgets only the reads of the tables it changes (a grant's
//! writes leave the credentials, limits and health it read standing for the next request of
//! the same batch). A write that names no known table forgets everything, and a read that
//! names none is not remembered; a test keeps the list of tables equal to the migrations'.

use std::collections::HashMap;
use std::rc::Rc;

use super::tx::PgRows;

/// The ledger's tables (both engines' newest schema; a test holds this list to the
/// PostgreSQL migrations).
pub(super) const TABLES: &[&str] = &[
    "settings",
    "limits",
    "windows",
    "leases",
    "lease_windows",
    "usage_events",
    "audit",
    "credentials",
    "credential_secrets",
    "refresh_claims",
    "provider_health",
    "credential_generations",
    "lease_tokens",
    "utilization_samples",
];

/// The tables a write to `table` changes besides itself: `credential_secrets` rows go with
/// their credential (`ON DELETE CASCADE`) and a trigger keeps `credential_generations`.
fn also_changed(table: &str) -> &'static [&'static str] {
    match table {
        "credentials" => &["credential_secrets", "credential_generations"],
        _ => &[],
    }
}

/// Whether `sql` (lower case) names `table` as a whole word (`windows` is not in
/// `lease_windows`).
fn names(sql: &str, table: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = sql.as_bytes();
    sql.match_indices(table).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + table.len()).copied();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// The ledger tables `sql` names, in any case.
fn tables_in(sql: &str) -> Vec<&'static str> {
    let sql = sql.to_ascii_lowercase();
    TABLES.iter().copied().filter(|t| names(&sql, t)).collect()
}

/// One remembered read: the tables its statement names, and what it answered.
struct Remembered {
    tables: Vec<&'static str>,
    rows: Rc<PgRows>,
}

/// The reads of one transaction, by statement and values (see the module's documentation).
#[derive(Default)]
pub(super) struct ReadCache {
    reads: HashMap<String, Remembered>,
}

impl ReadCache {
    /// What the read remembered under `key` answered.
    pub(super) fn get(&self, key: &str) -> Option<Rc<PgRows>> {
        self.reads.get(key).map(|r| r.rows.clone())
    }

    /// Whether a read is remembered under `key`.
    pub(super) fn has(&self, key: &str) -> bool {
        self.reads.contains_key(key)
    }

    /// Remembers what the read `key` (its statement, a NUL, its values) answered.
    pub(super) fn remember(&mut self, key: String, rows: Rc<PgRows>) {
        let statement = key.split('\0').next().unwrap_or_default();
        let tables = tables_in(statement);
        // A read of no known table could not be told apart from one any write changes.
        if !tables.is_empty() {
            self.reads.insert(key, Remembered { tables, rows });
        }
    }

    /// Forgets the reads the write `sql` may change.
    pub(super) fn forget_changed_by(&mut self, sql: &str) {
        let mut written = tables_in(sql);
        if written.is_empty() {
            self.reads.clear();
            return;
        }
        for t in written.clone() {
            written.extend_from_slice(also_changed(t));
        }
        self.reads
            .retain(|_, read| !read.tables.iter().any(|t| written.contains(t)));
    }

    /// Forgets everything read (a savepoint rolled back to, any other command).
    pub(super) fn clear(&mut self) {
        self.reads.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(statements: &[&str]) -> ReadCache {
        let mut cache = ReadCache::default();
        for s in statements {
            cache.remember(format!("{s}\0[]"), Rc::new(PgRows::Text(Vec::new())));
        }
        cache
    }

    fn kept(cache: &ReadCache) -> Vec<String> {
        let mut keys: Vec<String> = cache
            .reads
            .keys()
            .map(|k| k.split('\0').next().unwrap_or_default().to_string())
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn a_write_forgets_only_the_reads_of_its_tables() {
        let mut cache = cache_with(&[
            "SELECT * FROM windows WHERE id = ?1",
            "SELECT * FROM lease_windows WHERE lease_id = ?1",
            "SELECT * FROM limits",
        ]);
        cache.forget_changed_by("UPDATE lease_windows SET reserved = reserved - ?3");
        assert_eq!(
            kept(&cache),
            [
                "SELECT * FROM limits",
                "SELECT * FROM windows WHERE id = ?1"
            ]
        );
        cache.forget_changed_by(
            "WITH reserved AS (UPDATE windows SET reserved = reserved + ?2 WHERE id = ?1) SELECT 1",
        );
        assert_eq!(kept(&cache), ["SELECT * FROM limits"]);
    }

    #[test]
    fn tables_are_named_in_any_case() {
        let mut cache = cache_with(&["SELECT * FROM Limits"]);
        assert_eq!(kept(&cache), ["SELECT * FROM Limits"]);
        cache.forget_changed_by("UPDATE LIMITS SET rpm = 1");
        assert!(kept(&cache).is_empty());
    }

    #[test]
    fn a_read_of_two_tables_goes_when_either_is_written() {
        let mut cache = cache_with(&["SELECT l.id FROM leases l JOIN lease_windows w ON 1 = 1"]);
        cache.forget_changed_by("INSERT INTO lease_windows (lease_id) VALUES (?1)");
        assert!(kept(&cache).is_empty());
    }

    #[test]
    fn a_credential_write_forgets_its_secrets_and_generations() {
        let mut cache = cache_with(&[
            "SELECT * FROM credential_secrets",
            "SELECT last FROM credential_generations",
            "SELECT * FROM provider_health",
        ]);
        cache.forget_changed_by("DELETE FROM credentials WHERE provider = ?1");
        assert_eq!(kept(&cache), ["SELECT * FROM provider_health"]);
    }

    #[test]
    fn what_names_no_known_table_is_never_trusted() {
        let cache = cache_with(&["SELECT 1 AS one"]);
        assert!(kept(&cache).is_empty(), "a read of no known table is kept");
        let mut cache = cache_with(&["SELECT * FROM limits"]);
        cache.forget_changed_by("INSERT INTO some_new_table VALUES (1)");
        assert!(
            kept(&cache).is_empty(),
            "an unknown write left a read standing"
        );
    }

    /// The PostgreSQL migrations, all of them, as one text.
    fn migrations() -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("migrations/postgres")
            .map(|e| e.expect("a migration").path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("read a migration"))
            .collect()
    }

    #[test]
    fn every_table_the_migrations_create_is_known() {
        let text = migrations();
        let created: Vec<String> = text
            .split("CREATE TABLE ")
            .skip(1)
            .map(|part| {
                part.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect();
        assert!(created.len() >= 10, "found only {created:?}");
        for name in &created {
            assert!(TABLES.contains(&name.as_str()), "{name} is not in TABLES");
        }
        for known in TABLES {
            assert!(created.iter().any(|c| c == known), "{known} is not created");
        }
    }

    #[test]
    fn every_write_one_table_makes_to_another_is_known() {
        // A cascade or a trigger function is a write the statement does not name: each must
        // be in `also_changed` (or write nothing, as the audit trail's refusals).
        let text = migrations();
        assert_eq!(text.matches("CASCADE").count(), 1, "a new cascade");
        for writes_elsewhere in ["SET NULL", "SET DEFAULT", "CREATE RULE", "OR REPLACE"] {
            assert!(!text.contains(writes_elsewhere), "{writes_elsewhere}");
        }
        assert_eq!(text.matches("CREATE TRIGGER").count(), 5, "a new trigger");
        assert!(text.contains("REFERENCES credentials (provider, account) ON DELETE CASCADE"));
        let functions: Vec<&str> = text
            .split("CREATE FUNCTION ")
            .skip(1)
            .filter_map(|part| part.split('(').next())
            .collect();
        assert_eq!(
            functions,
            ["audit_append_only", "credential_generation_keep"],
            "a new trigger function"
        );
        assert!(also_changed("credentials").contains(&"credential_generations"));
        assert!(also_changed("credentials").contains(&"credential_secrets"));
    }
}
