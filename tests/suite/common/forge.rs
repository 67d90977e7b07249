//! An attacker who can write the database file but does not hold the master key: drops the
//! audit triggers, changes rows, recomputes every chain value after them the way the chain
//! is computed (plain SHA-256, or HMAC under a key of their own), moves the head, and puts
//! the triggers back.

use std::path::Path;

use ring::{digest, hmac};
use rusqlite::{Connection, params};

/// How the attacker recomputes the chain.
#[derive(Clone, Copy, Debug)]
pub enum Forge {
    /// Unkeyed SHA-256, as the chain was before it was keyed.
    Sha256,
    /// HMAC-SHA256 under a key the attacker made up.
    HmacGuess,
}

/// One audit row as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub seq: i64,
    pub at_ms: i64,
    pub action: String,
    pub agent: Option<String>,
    pub provider: Option<String>,
    pub account: Option<String>,
    pub lease_id: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Every audit row in sequence order, read straight from the file.
pub fn rows(db: &Path) -> Vec<Row> {
    let c = Connection::open(db).unwrap();
    let mut stmt = c
        .prepare(
            "SELECT seq, at_ms, action, agent, provider, account, lease_id, detail, prev_hash,
                    hash FROM audit ORDER BY seq",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            seq: r.get(0)?,
            at_ms: r.get(1)?,
            action: r.get(2)?,
            agent: r.get(3)?,
            provider: r.get(4)?,
            account: r.get(5)?,
            lease_id: r.get(6)?,
            detail: r.get(7)?,
            prev_hash: r.get(8)?,
            hash: r.get(9)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The bytes the chain covers: previous value and every field, length-prefixed.
pub fn encode(e: &Row) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut field = |bytes: Option<&[u8]>| match bytes {
        None => buf.extend_from_slice(&u64::MAX.to_be_bytes()),
        Some(b) => {
            buf.extend_from_slice(&(b.len() as u64).to_be_bytes());
            buf.extend_from_slice(b);
        }
    };
    field(Some(e.prev_hash.as_bytes()));
    field(Some(&e.seq.to_be_bytes()));
    field(Some(&e.at_ms.to_be_bytes()));
    field(Some(e.action.as_bytes()));
    field(e.agent.as_deref().map(str::as_bytes));
    field(e.provider.as_deref().map(str::as_bytes));
    field(e.account.as_deref().map(str::as_bytes));
    field(e.lease_id.as_deref().map(str::as_bytes));
    field(Some(e.detail.as_bytes()));
    buf
}

/// The legacy (unkeyed) hash of a row.
pub fn sha256(e: &Row) -> String {
    hex::encode(digest::digest(&digest::SHA256, &encode(e)))
}

const TRIGGERS: &str = "
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;";

/// Runs `sql` with the triggers dropped, then restores them.
pub fn raw(db: &Path, sql: &str) {
    let c = Connection::open(db).unwrap();
    c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    c.execute_batch(sql).unwrap();
    c.execute_batch(TRIGGERS).unwrap();
}

/// Lets `change` edit the rows (in sequence order; it may add, drop, renumber or alter them),
/// then recomputes every link and hash from the first row that changed, rewrites the table
/// and the recorded head, and restores the triggers.
pub fn rewrite(db: &Path, how: Forge, change: impl FnOnce(&mut Vec<Row>)) {
    let before = rows(db);
    let mut after = before.clone();
    change(&mut after);
    let guess = hmac::Key::new(hmac::HMAC_SHA256, b"the attacker's own key");
    // Rows before the first change keep their stored values; every later one is recomputed.
    let first = after
        .iter()
        .zip(&before)
        .position(|(a, b)| a != b)
        .unwrap_or(before.len().min(after.len()));
    let mut prev = match first {
        0 => "0".repeat(64),
        i => after[i - 1].hash.clone(),
    };
    for r in after.iter_mut().skip(first) {
        r.prev_hash = prev.clone();
        r.hash = match how {
            Forge::Sha256 => sha256(r),
            Forge::HmacGuess => hex::encode(hmac::sign(&guess, &encode(r)).as_ref()),
        };
        prev = r.hash.clone();
    }
    let c = Connection::open(db).unwrap();
    c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    c.execute("DELETE FROM audit", []).unwrap();
    for r in &after {
        c.execute(
            "INSERT INTO audit (seq, at_ms, action, agent, provider, account, lease_id, detail,
                                prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                r.seq,
                r.at_ms,
                r.action,
                r.agent,
                r.provider,
                r.account,
                r.lease_id,
                r.detail,
                r.prev_hash,
                r.hash
            ],
        )
        .unwrap();
    }
    if let Some(last) = after.last() {
        c.execute(
            "UPDATE settings SET value = ?1 WHERE key = 'audit_head'",
            [format!("{}:{}", last.seq, last.hash)],
        )
        .unwrap();
    }
    c.execute_batch(TRIGGERS).unwrap();
}
