//! The wire between `authledger daemon` and the ledgers of other processes on the machine: one
//! request, one reply, each a length-prefixed JSON frame on a Unix socket.
//!
//! Only the writes an agent makes on its hot path travel here (acquire, renew, release and
//! record_usage): those are the ones worth sharing a transaction and an fsync with other
//! processes. Everything else is done directly on the database by the caller.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::quota::{AcquireRequest, Denial, QuotaError, Released, UsageOutcome, UsageRecord};
use crate::records::Lease;
use crate::select::{Choice, Decision, SelectError, Verdict};
use crate::types::{LeaseId, LeaseState, Millis};

/// The largest frame either side accepts: requests are a few hundred bytes, so anything bigger
/// is a confused or hostile peer.
const MAX_FRAME: usize = 1 << 20;

/// The version of this wire format. A daemon answers requests of another version with
/// [`WireError::Version`], and the client then works on the database directly: an upgraded
/// client never fails because an older daemon is still running.
pub const VERSION: u32 = 1;

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
    /// [`Ledger::acquire`](crate::Ledger::acquire) with the lease id already drawn.
    Acquire {
        /// The id the lease gets if granted.
        id: LeaseId,
        /// What is asked.
        request: AcquireRequest,
    },
    /// [`Ledger::acquire_selected`](crate::Ledger::acquire_selected) with the lease id drawn.
    AcquireSelected {
        /// The id the lease gets if granted.
        id: LeaseId,
        /// What is asked (provider and account are replaced by the choice).
        request: AcquireRequest,
        /// Which provider, or the best one.
        choice: Choice,
    },
    /// [`Ledger::renew`](crate::Ledger::renew).
    Renew {
        /// The lease.
        id: LeaseId,
    },
    /// [`Ledger::release_with`](crate::Ledger::release_with).
    Release {
        /// The lease.
        id: LeaseId,
        /// Facts for the audit row.
        detail: Option<serde_json::Value>,
    },
    /// [`Ledger::record_usage`](crate::Ledger::record_usage) with the idempotency key drawn.
    RecordUsage {
        /// The lease.
        id: LeaseId,
        /// What was used.
        record: UsageRecord,
        /// The key stored when the record has none of its own.
        fallback_key: String,
    },
}

/// What a request did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Outcome {
    /// A lease granted or renewed.
    Lease(Lease),
    /// A lease granted on the account selection chose.
    Selected {
        /// The lease.
        lease: Lease,
        /// The choice and why.
        decision: Decision,
    },
    /// A lease released.
    Released(Released),
    /// Usage recorded.
    Usage(UsageOutcome),
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
        denial: Denial,
    },
    /// No provider account can take the agent; each candidate says why.
    NoneUsable {
        /// Every candidate with its verdict.
        considered: Vec<Verdict>,
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

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::Quota(QuotaError::Denied(d)) => WireError::Denied {
                denial: (**d).clone(),
            },
            Error::Quota(QuotaError::UnknownLease(id)) => {
                WireError::UnknownLease { id: id.clone() }
            }
            Error::Select(SelectError::NoneUsable(considered, asked)) => WireError::NoneUsable {
                considered: considered.clone(),
                asked: *asked,
            },
            Error::Quota(QuotaError::LeaseLost {
                id,
                state,
                ended_at,
            }) => WireError::LeaseLost {
                id: id.clone(),
                state: *state,
                ended_at: *ended_at,
            },
            Error::Quota(QuotaError::IdempotencyConflict { key }) => {
                WireError::IdempotencyConflict { key: key.clone() }
            }
            other => WireError::Other {
                exit_code: other.exit_code(),
                message: other.to_string(),
            },
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Denied { denial } => QuotaError::Denied(Box::new(denial)).into(),
            WireError::UnknownLease { id } => QuotaError::UnknownLease(id).into(),
            WireError::NoneUsable { considered, asked } => {
                Error::Select(SelectError::NoneUsable(considered, asked))
            }
            WireError::LeaseLost {
                id,
                state,
                ended_at,
            } => QuotaError::LeaseLost {
                id,
                state,
                ended_at,
            }
            .into(),
            WireError::IdempotencyConflict { key } => {
                QuotaError::IdempotencyConflict { key }.into()
            }
            WireError::Expired => Error::Daemon {
                exit_code: crate::error::exit::OTHER,
                message: "the daemon could not start the request in time; nothing was done".into(),
            },
            WireError::Version { served } => Error::Daemon {
                exit_code: crate::error::exit::OTHER,
                message: format!(
                    "the daemon speaks wire format {served}, this build {VERSION}; restart it"
                ),
            },
            WireError::Other { exit_code, message } => Error::Daemon { exit_code, message },
        }
    }
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

    #[test]
    fn a_denial_crosses_the_wire_as_the_same_error() {
        let denial = Denial {
            reason: crate::quota::DenyReason::Concurrency,
            provider: crate::types::Provider::Claude,
            account: crate::types::Account::default(),
            asked: Some(5),
            available: 0,
            limit: 2,
            resets_at: Some(1_000),
        };
        let original = Error::Quota(QuotaError::Denied(Box::new(denial.clone())));
        let mut buf = Vec::new();
        write_frame(&mut buf, &WireError::from(&original)).unwrap();
        let wire: WireError = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        let back = Error::from(wire);
        assert_eq!(back.exit_code(), original.exit_code());
        assert_eq!(back.to_string(), original.to_string());
        assert!(matches!(back, Error::Quota(QuotaError::Denied(d)) if *d == denial));
    }
}
