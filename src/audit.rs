//! The tamper-evident audit trail.
//!
//! Every mutation appends one row in its own transaction. Each row stores the SHA-256 of the
//! previous row's hash and its own content, so editing, deleting or reordering any row breaks
//! the chain at that row, and `verify` names it. The table's triggers refuse UPDATE and DELETE;
//! the chain catches whoever drops the triggers first.

use ring::digest::{SHA256, digest};
use serde::Serialize;

use crate::records::AuditEntry;
use crate::store::{StoreError, Tx};
use crate::types::{Account, AgentId, LeaseId, Millis, Provider};

/// The hash the first row chains from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The stable action names (DESIGN.md invariant 5); scripts filter on them.
pub mod action {
    /// A lease was granted.
    pub const ACQUIRE: &str = "acquire";
    /// A lease was renewed (heartbeat).
    pub const RENEW: &str = "renew";
    /// A lease was released by its holder.
    pub const RELEASE: &str = "release";
    /// A lease was reclaimed after its TTL or idle time.
    pub const EXPIRE: &str = "expire";
    /// A lease was revoked.
    pub const REVOKE: &str = "revoke";
    /// A request was refused.
    pub const DENY: &str = "deny";
    /// Usage was recorded.
    pub const USAGE: &str = "usage";
    /// Limits were changed.
    pub const LIMITS: &str = "limits";
    /// A credential was stored by a login.
    pub const LOGIN: &str = "login";
    /// A credential was removed.
    pub const LOGOUT: &str = "logout";
    /// A credential was imported from another tool's file or the environment.
    pub const IMPORT: &str = "import";
    /// A credential was exported to another tool's file.
    pub const EXPORT: &str = "export";
    /// The preferred provider changed.
    pub const SWITCH: &str = "switch";
    /// Selection passed over the first choice (detail: from, to, reason).
    pub const FALLBACK: &str = "fallback";
    /// An OAuth refresh ran (detail: its outcome).
    pub const REFRESH: &str = "refresh";
    /// The master key was rotated.
    pub const KEY_ROTATE: &str = "key_rotate";
    /// A provider account went out of service or came back (detail: status, until, reason).
    pub const HEALTH: &str = "health";
}

/// What happened, about whom: the content of one audit row before it is chained.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// A stable action name from [`action`].
    pub action: &'static str,
    /// The agent concerned.
    pub agent: Option<&'a AgentId>,
    /// The provider concerned.
    pub provider: Option<Provider>,
    /// The account concerned.
    pub account: Option<&'a Account>,
    /// The lease concerned.
    pub lease_id: Option<&'a LeaseId>,
    /// Action-specific facts. Never a secret.
    pub detail: serde_json::Value,
}

impl<'a> AuditEvent<'a> {
    /// An event with no subject yet; fill in with the builder methods.
    pub fn new(action: &'static str, detail: serde_json::Value) -> Self {
        AuditEvent {
            action,
            agent: None,
            provider: None,
            account: None,
            lease_id: None,
            detail,
        }
    }

    /// Sets the provider account concerned.
    pub fn on(mut self, provider: Provider, account: &'a Account) -> Self {
        self.provider = Some(provider);
        self.account = Some(account);
        self
    }

    /// Sets the agent concerned.
    pub fn by(mut self, agent: &'a AgentId) -> Self {
        self.agent = Some(agent);
        self
    }

    /// Sets the lease concerned.
    pub fn lease(mut self, id: &'a LeaseId) -> Self {
        self.lease_id = Some(id);
        self
    }
}

/// Appends an event to the chain inside the caller's transaction.
pub fn append(tx: &Tx<'_>, at_ms: Millis, event: AuditEvent<'_>) -> Result<(), StoreError> {
    let (prev_seq, prev_hash) = tx.audit_tail()?.unwrap_or((0, GENESIS.to_string()));
    let mut entry = AuditEntry {
        seq: prev_seq + 1,
        at_ms,
        action: event.action.to_string(),
        agent: event.agent.map(|a| a.as_str().to_string()),
        provider: event.provider.map(|p| p.as_str().to_string()),
        account: event.account.map(|a| a.as_str().to_string()),
        lease_id: event.lease_id.map(|l| l.as_str().to_string()),
        detail: event.detail.to_string(),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry);
    tx.insert_audit(&entry)?;
    tx.set_setting(HEAD_KEY, &format!("{}:{}", entry.seq, entry.hash))
}

/// The settings key holding the chain's last `seq:hash`, so deleting rows from the end of
/// the table (which leaves a valid, shorter chain) is caught too.
const HEAD_KEY: &str = "audit_head";

/// SHA-256 over the previous hash and every content field, each length-prefixed so no two
/// different rows encode to the same bytes.
pub fn entry_hash(e: &AuditEntry) -> String {
    let mut buf = Vec::with_capacity(256);
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
    hex::encode(digest(&SHA256, &buf))
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows checked before stopping.
    pub rows: i64,
    /// Whether the whole chain is intact.
    pub ok: bool,
    /// The first bad row's sequence number (as stored), if any.
    pub first_bad_seq: Option<i64>,
    /// What is wrong with it.
    pub problem: Option<String>,
}

/// Compares the chain's last row with the recorded head.
fn check_head(
    tx: &Tx<'_>,
    last_seq: i64,
    last_hash: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    let Some(head) = tx.setting(HEAD_KEY)? else {
        return Ok((last_seq != 0).then(|| (1, "the recorded chain head is missing".to_string())));
    };
    let (seq, hash) = head.split_once(':').unwrap_or(("", ""));
    if seq == last_seq.to_string() && hash == last_hash {
        return Ok(None);
    }
    Ok(Some((
        last_seq + 1,
        format!(
            "the chain ends at row {last_seq} but the recorded head is row {seq} (rows were deleted from the end, or the head was edited)"
        ),
    )))
}

/// Walks every row in stored order and checks numbering, links and hashes.
pub fn verify(tx: &Tx<'_>) -> Result<VerifyReport, StoreError> {
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS.to_string();
    let mut rows = 0;
    let bad = tx.audit_scan(|e| {
        rows += 1;
        let problem = if e.seq != expected_seq {
            Some(format!(
                "sequence number {} where {} was expected (a row was deleted or moved)",
                e.seq, expected_seq
            ))
        } else if e.prev_hash != prev_hash {
            Some("does not link to the row before it (a row was deleted, inserted or moved)".into())
        } else if entry_hash(&e) != e.hash {
            Some("its content does not match its hash (the row was edited)".into())
        } else {
            None
        };
        expected_seq += 1;
        prev_hash = e.hash.clone();
        problem.map(|p| (e.seq, p))
    })?;
    let bad = match bad {
        Some(b) => Some(b),
        None => check_head(tx, expected_seq - 1, &prev_hash)?,
    };
    Ok(match bad {
        None => VerifyReport {
            rows,
            ok: true,
            first_bad_seq: None,
            problem: None,
        },
        Some((seq, problem)) => VerifyReport {
            rows,
            ok: false,
            first_bad_seq: Some(seq),
            problem: Some(problem),
        },
    })
}
