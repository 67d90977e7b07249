//! The tamper-evident audit trail.
//!
//! Every mutation appends one row in its own transaction. Each row stores an HMAC-SHA256,
//! under a key only a holder of the master key has (`audit::key`), over the previous row's MAC and
//! its own content, so editing, deleting, inserting or reordering any row breaks the chain at
//! that row, and `verify` names it, even when whoever did it recomputed every value. The
//! table's triggers refuse UPDATE and DELETE; the chain catches whoever drops them first. An
//! [`Anchor`] kept elsewhere proves the trail still extends an earlier head.
//!
//! Ledgers made before the trail was keyed keep their older rows, chained by plain SHA-256;
//! a `rekey` row marks where keyed rows begin.

mod key;

use std::fmt;
use std::str::FromStr;

use ring::digest::{SHA256, digest};
use serde::Serialize;

pub use key::{ChainKey, ChainSlot, INFO as CHAIN_KEY_INFO, keyed_from, reseal_audit_key};
pub(crate) use key::{ensure_keyed, prepare};

use crate::records::AuditEntry;
use crate::store::{StoreError, Tx};
use crate::types::{Account, AgentId, LeaseId, Millis, Provider};

/// The hash the first row chains from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The stable action names (README, "Audit"); scripts filter on them.
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
    /// An active lease's allocation grew (detail: tokens, allocated).
    pub const TOPUP: &str = "topup";
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
    /// Keyed rows begin here (detail: legacy_rows, legacy_tail).
    pub const REKEY: &str = "rekey";
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

/// Appends an event to the chain inside the caller's transaction. Keyed once the ledger is:
/// then refused unless this process holds the master key.
pub fn append(tx: &Tx<'_>, at_ms: Millis, event: AuditEvent<'_>) -> Result<(), StoreError> {
    let chain = key::chain_key(tx)?;
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
    let head = match &chain {
        Some(k) => {
            entry.hash = k.mac(&encode(&entry));
            let tag = k.head_tag(entry.seq, &entry.hash);
            format!("{}:{}:{tag}", entry.seq, entry.hash)
        }
        None => {
            entry.hash = entry_hash(&entry);
            format!("{}:{}", entry.seq, entry.hash)
        }
    };
    tx.insert_audit(&entry)?;
    tx.set_audit_head(&head);
    Ok(())
}

/// The settings key holding the chain's last `seq:hash` (and, once keyed, a tag over them),
/// so deleting rows from the end of the table (which leaves a valid, shorter chain) is
/// caught too.
const HEAD_KEY: &str = crate::store::AUDIT_HEAD_KEY;

/// The previous hash and every content field, each length-prefixed so no two different rows
/// encode to the same bytes.
fn encode(e: &AuditEntry) -> Vec<u8> {
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
    buf
}

/// The unkeyed SHA-256 of a legacy row (rows written before the ledger was keyed).
pub fn entry_hash(e: &AuditEntry) -> String {
    hex::encode(digest(&SHA256, &encode(e)))
}

/// A head of the trail kept outside the ledger: `SEQ:MAC`. `audit verify --anchor` proves the
/// trail still extends it, which also catches a rewrite by someone holding the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anchor {
    /// The anchored row's sequence number (0 for an empty trail).
    pub seq: i64,
    /// Its MAC (or legacy hash), hex.
    pub mac: String,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.mac)
    }
}

/// An anchor that does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not an audit anchor (expected SEQ:MAC as `audit anchor` prints it): {0}")]
pub struct BadAnchor(String);

impl FromStr for Anchor {
    type Err = BadAnchor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadAnchor(crate::types::truncate_for_message(s));
        let (seq, mac) = s.trim().split_once(':').ok_or_else(bad)?;
        let seq: i64 = seq.parse().ok().filter(|n| *n >= 0).ok_or_else(bad)?;
        let mac = mac.to_ascii_lowercase();
        if mac.len() != 64 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Anchor { seq, mac })
    }
}

/// The current head of the trail, to keep as an [`Anchor`].
pub fn anchor(tx: &Tx<'_>) -> Result<Anchor, StoreError> {
    let (seq, mac) = tx.audit_tail()?.unwrap_or((0, GENESIS.to_string()));
    Ok(Anchor { seq, mac })
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
    /// The first keyed row; rows before it are the legacy SHA-256 chain.
    pub keyed_from: Option<i64>,
}

/// Compares the chain's last row with the recorded head.
fn check_head(
    tx: &Tx<'_>,
    chain: Option<&ChainKey>,
    last_seq: i64,
    last_hash: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    let Some(head) = tx.setting(HEAD_KEY)? else {
        return Ok((last_seq != 0).then(|| (1, "the recorded chain head is missing".to_string())));
    };
    let mut parts = head.splitn(3, ':');
    let (seq, hash, tag) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next(),
    );
    if seq == last_seq.to_string() && hash == last_hash {
        let tagged = match (chain, tag) {
            (None, _) => true,
            (Some(k), Some(tag)) => k.head_tag(last_seq, last_hash) == tag,
            (Some(_), None) => false,
        };
        if tagged {
            return Ok(None);
        }
        return Ok(Some((
            last_seq,
            "the recorded head was not written with the key (rows were deleted from the end and the head moved back)".to_string(),
        )));
    }
    Ok(Some((
        last_seq + 1,
        format!(
            "the chain ends at row {last_seq} but the recorded head is row {seq} (rows were deleted from the end, or the head was edited)"
        ),
    )))
}

/// Walks every row in stored order and checks numbering, links and MACs (hashes before the
/// ledger was keyed). Refused with [`StoreError::AuditKey`] when the trail is keyed and the
/// master key is not available.
pub fn verify(tx: &Tx<'_>) -> Result<VerifyReport, StoreError> {
    verify_against(tx, None)
}

/// [`verify`], and also that the trail still extends `anchor`.
pub fn verify_against(tx: &Tx<'_>, anchor: Option<&Anchor>) -> Result<VerifyReport, StoreError> {
    let (keyed_from, chain) = match key::for_verify(tx)? {
        key::VerifyKey::Unkeyed => (None, None),
        key::VerifyKey::Keyed { keyed_from, key } => (Some(keyed_from), Some(key)),
        key::VerifyKey::Removed => {
            return Ok(VerifyReport {
                rows: 0,
                ok: false,
                first_bad_seq: Some(1),
                problem: Some(
                    "the trail's sealed key was removed although the ledger's key check says the trail is keyed (its rows may have been rewritten without the key)"
                        .into(),
                ),
                keyed_from: None,
            });
        }
    };
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS.to_string();
    let mut rows = 0;
    let mut at_anchor = None;
    let bad = tx.audit_scan(|e| {
        rows += 1;
        let keyed = keyed_from.is_some_and(|k| e.seq >= k);
        let problem = if e.seq != expected_seq {
            Some(format!(
                "sequence number {} where {} was expected (a row was deleted or moved)",
                e.seq, expected_seq
            ))
        } else if e.prev_hash != prev_hash {
            Some("does not link to the row before it (a row was deleted, inserted or moved)".into())
        } else if keyed_from == Some(e.seq) && e.seq > 1 && e.action != action::REKEY {
            Some("keyed rows begin here, but this is not the `rekey` row (rows were inserted or removed)".into())
        } else if e.action == action::REKEY && keyed_from != Some(e.seq) {
            Some("a `rekey` row where keyed rows do not begin (the row was inserted)".into())
        } else if let (true, Some(k)) = (keyed, &chain) {
            (k.mac(&encode(&e)) != e.hash).then(|| {
                "its content does not match its MAC (the row was edited, or written without the key)".into()
            })
        } else if entry_hash(&e) != e.hash {
            Some("its content does not match its hash (the row was edited)".into())
        } else {
            None
        };
        if anchor.is_some_and(|a| a.seq == e.seq) {
            at_anchor = Some(e.hash.clone());
        }
        expected_seq += 1;
        prev_hash = e.hash.clone();
        problem.map(|p| (e.seq, p))
    })?;
    let last_seq = expected_seq - 1;
    let bad = match (bad, anchor) {
        (Some(b), _) => Some(b),
        (None, Some(a)) if a.seq > last_seq => Some((
            last_seq + 1,
            format!(
                "the trail ends at row {last_seq}, before the anchored row {} (rows were cut)",
                a.seq
            ),
        )),
        (None, Some(a)) if a.seq > 0 && at_anchor.as_deref() != Some(a.mac.as_str()) => Some((
            a.seq,
            "does not match the anchor (the trail was rewritten up to here)".to_string(),
        )),
        (None, Some(a)) if a.seq == 0 && a.mac != GENESIS => Some((
            1,
            "the anchor does not name a head of this trail".to_string(),
        )),
        // A keyed ledger always has its first keyed row: it was written with the sealed key.
        (None, _) if keyed_from == Some(1) && last_seq == 0 => Some((
            1,
            "the keyed trail has no rows (they were deleted)".to_string(),
        )),
        // The `rekey` row is written with the sealed key: a trail ending before it was cut.
        (None, _) if keyed_from.is_some_and(|k| k > 1 && k > last_seq) => Some((
            last_seq + 1,
            format!(
                "the trail ends at row {last_seq}, before the row where keyed rows begin (rows were deleted from the end)"
            ),
        )),
        (None, _) => check_head(
            tx,
            chain
                .as_ref()
                .filter(|_| keyed_from.is_some_and(|k| k <= last_seq)),
            last_seq,
            &prev_hash,
        )?,
    };
    Ok(match bad {
        None => VerifyReport {
            rows,
            ok: true,
            first_bad_seq: None,
            problem: None,
            keyed_from,
        },
        Some((seq, problem)) => VerifyReport {
            rows,
            ok: false,
            first_bad_seq: Some(seq),
            problem: Some(problem),
            keyed_from,
        },
    })
}
