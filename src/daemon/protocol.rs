//! The wire between `authledger daemon` and the ledgers of other processes on the machine: one
//! request, one reply, each a length-prefixed JSON frame on a Unix socket.
//!
//! Only the writes an agent makes on its hot path travel here (acquire, renew, release and
//! record_usage): those are the ones worth sharing a transaction and an fsync with other
//! processes. Everything else is done directly on the database by the caller.

//! This module is a leaf: it owns the wire's types and imports nothing of the ledger but its
//! value types (ids, names, states). The ledger's domain structs are not the wire schema; the
//! daemon's client and server convert at the edge (`daemon::convert`), so either side can
//! change without the other noticing. The JSON of every type here is the wire format of
//! [`VERSION`]: a change to it is a new version.

use std::io::{Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::{Account, AgentId, LeaseId, LeaseState, Millis, Provider, WindowKind};

/// The largest frame either side accepts: requests are a few hundred bytes, so anything bigger
/// is a confused or hostile peer.
const MAX_FRAME: usize = 1 << 20;

/// The version of this wire format. A daemon answers requests of another version with
/// [`WireError::Version`], and the client then works on the database directly: an upgraded
/// client never fails because an older daemon is still running.
///
/// Version 2: a usage report carries the model, the prompt-cache figures and the status.
pub const VERSION: u32 = 2;

/// A request as framed: the wire format's version and the request's deadline beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// [`VERSION`] of the sender.
    pub v: u32,
    /// Wall-clock time (ms) after which the daemon must not start the request: by then the
    /// client may have given up and done it itself.
    pub deadline_ms: Millis,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

/// Just the version of a frame, read before anything else so a request of another version is
/// answered with [`WireError::Version`] even when its shape is unknown here.
#[derive(Debug, Deserialize)]
pub struct VersionOnly {
    /// The sender's [`VERSION`].
    pub v: u32,
}

/// One write asked of the daemon. Every id is chosen by the caller, so a reply lost with a dying
/// daemon can be settled by looking at the ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// An acquire with the lease id already drawn.
    Acquire {
        /// The id the lease gets if granted.
        id: LeaseId,
        /// What is asked.
        request: WireAcquire,
    },
    /// An acquire on the account selection chooses, with the lease id drawn.
    AcquireSelected {
        /// The id the lease gets if granted.
        id: LeaseId,
        /// What is asked (provider and account are replaced by the choice).
        request: WireAcquire,
        /// Which provider, or the best one.
        choice: WireChoice,
    },
    /// A renew.
    Renew {
        /// The lease.
        id: LeaseId,
    },
    /// A release.
    Release {
        /// The lease.
        id: LeaseId,
        /// Facts for the audit row.
        detail: Option<serde_json::Value>,
    },
    /// A usage record with the idempotency key drawn.
    RecordUsage {
        /// The lease.
        id: LeaseId,
        /// What was used.
        record: WireUsage,
        /// The key stored when the record has none of its own.
        fallback_key: String,
    },
}

/// What an agent asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireAcquire {
    /// Who asks.
    pub agent: AgentId,
    /// Which provider.
    pub provider: Provider,
    /// Which account of it.
    pub account: Account,
    /// A named figure, or `None` for a fair share.
    pub tokens: Option<i64>,
    /// How long the lease lives without a renew.
    pub ttl: Duration,
    /// Whether a refusal is written to the audit trail.
    pub audit_denial: bool,
}

/// Which provider account an agent asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireChoice {
    /// This provider (and, if given, this account).
    Explicit(Provider, Option<Account>),
    /// The best provider by the rules.
    Auto,
}

/// One usage report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireUsage {
    /// Input tokens.
    pub input: i64,
    /// Output tokens.
    pub output: i64,
    /// Requests made.
    pub requests: i64,
    /// The caller's idempotency key.
    pub key: Option<String>,
    /// The model the provider answered with.
    pub model: Option<String>,
    /// Prompt-cache tokens read.
    pub cache_read: i64,
    /// Prompt-cache tokens written.
    pub cache_write: i64,
    /// The request's outcome.
    pub status: Option<String>,
}

/// What a request did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Outcome {
    /// A lease granted or renewed.
    Lease(WireLease),
    /// A lease granted on the account selection chose.
    Selected {
        /// The lease.
        lease: WireLease,
        /// The choice and why.
        decision: WireDecision,
    },
    /// A lease released.
    Released(WireReleased),
    /// Usage recorded.
    Usage(WireUsageOutcome),
}

/// A lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireLease {
    /// The lease's id.
    pub id: LeaseId,
    /// Its fencing number.
    pub fence: i64,
    /// Who holds it.
    pub agent: AgentId,
    /// On which provider.
    pub provider: Provider,
    /// On which account.
    pub account: Account,
    /// Tokens reserved at acquire.
    pub allocated: i64,
    /// Tokens recorded against it.
    pub used: i64,
    /// Time to live.
    pub ttl_ms: Millis,
    /// When it was granted.
    pub created_at: Millis,
    /// When it expires unless renewed.
    pub expires_at: Millis,
    /// Last acquire or renew.
    pub heartbeat_at: Millis,
    /// Where it is in its life.
    pub state: LeaseState,
    /// When it ended, if it has.
    pub ended_at: Option<Millis>,
    /// Why it ended, if it has.
    pub end_reason: Option<String>,
}

/// The account selection chose, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireDecision {
    /// The chosen provider.
    pub provider: Provider,
    /// The chosen account.
    pub account: Account,
    /// Why it was chosen.
    pub reason: String,
    /// The account passed over, if this is a fallback, and why.
    pub fallback_from: Option<(Provider, Account, String)>,
    /// Every candidate with its verdict.
    pub considered: Vec<WireVerdict>,
}

/// One candidate and the verdict on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireVerdict {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// `None` if it passes every test, else why not.
    pub problem: Option<String>,
    /// Whether it could still serve as a last resort.
    pub fallback_ok: bool,
}

/// What a release gave back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireReleased {
    /// The lease as it ended.
    pub lease: WireLease,
    /// Unused tokens returned.
    pub returned: i64,
}

/// What recording usage did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireUsageOutcome {
    /// The lease.
    pub lease_id: LeaseId,
    /// The idempotency key the record is stored under.
    pub key: String,
    /// Whether this was a retry of a record already stored.
    pub duplicate: bool,
    /// Tokens recorded on the lease so far.
    pub lease_used: i64,
    /// Tokens allocated to the lease.
    pub allocated: i64,
    /// Whether the lease's allocation is used up.
    pub exhausted: bool,
    /// The lease's state after recording.
    pub lease_state: LeaseState,
}

/// The daemon's answer to one request.
pub type Reply = Result<Outcome, WireError>;

/// Why a request did not happen, precise enough for the caller to see the same error it would
/// have got working on the database itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum WireError {
    /// A limit refused the request.
    Denied {
        /// The refusal.
        denial: WireDenial,
    },
    /// No provider account can take the agent; each candidate says why.
    NoneUsable {
        /// Every candidate with its verdict.
        considered: Vec<WireVerdict>,
        /// What was asked.
        asked: Option<i64>,
    },
    /// No lease has this id.
    UnknownLease {
        /// The id.
        id: LeaseId,
    },
    /// The lease already ended.
    LeaseLost {
        /// The lease.
        id: LeaseId,
        /// How it ended.
        state: LeaseState,
        /// When it ended.
        ended_at: Millis,
    },
    /// An idempotency key was reused for a different record.
    IdempotencyConflict {
        /// The key.
        key: String,
    },
    /// The request's deadline passed before the daemon could start it; nothing was done.
    Expired,
    /// The daemon speaks another version of the wire format.
    Version {
        /// The version the daemon speaks.
        served: u32,
    },
    /// Anything else, as its message and exit code.
    Other {
        /// The documented exit code.
        exit_code: i32,
        /// The one-line message.
        message: String,
    },
}

/// A refusal by a limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireDenial {
    /// Which limit refused.
    pub reason: WireDenyReason,
    /// Whose limit.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// What was asked (`None` for a fair share).
    pub asked: Option<i64>,
    /// What is available now.
    pub available: i64,
    /// The limit in force.
    pub limit: i64,
    /// When the limiting window resets or the first slot frees, if known.
    pub resets_at: Option<Millis>,
}

/// Which limit refused.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(tag = "limit", content = "window", rename_all = "snake_case")]
pub enum WireDenyReason {
    /// A budget window.
    Budget(WindowKind),
    /// Every concurrent slot is taken.
    Concurrency,
    /// The requests-per-minute limit.
    RequestsPerMinute,
    /// The tokens-per-minute limit.
    TokensPerMinute,
}

/// Writes one frame: the JSON's length as 4 big-endian bytes, then the JSON.
pub fn write_frame(w: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    let body = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|n| (*n as usize) <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other("frame too large"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)
}

/// Reads one frame; `Ok(None)` when the peer closed the connection between frames.
pub fn read_frame<T: serde::de::DeserializeOwned>(r: &mut impl Read) -> std::io::Result<Option<T>> {
    match read_frame_bytes(r)? {
        Some(body) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        None => Ok(None),
    }
}

/// Reads one frame's JSON bytes; `Ok(None)` when the peer closed the connection between frames.
pub fn read_frame_bytes(r: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let req = Request::Renew {
            id: LeaseId::from_random([7; 10]),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        let back: Request = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        assert!(matches!(back, Request::Renew { id } if id == LeaseId::from_random([7; 10])));
        assert!(read_frame::<Request>(&mut [].as_slice()).unwrap().is_none());

        let mut huge = (u32::try_from(MAX_FRAME).unwrap() + 1)
            .to_be_bytes()
            .to_vec();
        huge.extend_from_slice(b"{}");
        let err = read_frame::<Request>(&mut huge.as_slice()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
