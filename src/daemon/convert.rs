//! The edge between the ledger's domain and the wire: ops become requests, outcomes and errors
//! become replies, and back. Only the daemon's client and server use it, so neither the
//! ledger's types nor the wire's need to know about each other.

use crate::error::Error;
use crate::ledger::{Op, Outcome};
use crate::quota::{
    AcquireRequest, Denial, DenyReason, QuotaError, Released, UsageOutcome, UsageRecord,
};
use crate::records::Lease;
use crate::select::{Choice, Decision, SelectError, Verdict};

use super::protocol::{
    self, Request, VERSION, WireAcquire, WireChoice, WireDecision, WireDenial, WireDenyReason,
    WireError, WireLease, WireReleased, WireUsage, WireUsageOutcome, WireVerdict,
};

/// The request that asks the daemon for `op`.
pub(super) fn request(op: &Op) -> Request {
    match op {
        Op::Acquire { id, request } => Request::Acquire {
            id: id.clone(),
            request: acquire_to_wire(request),
        },
        Op::AcquireSelected {
            id,
            request,
            choice,
        } => Request::AcquireSelected {
            id: id.clone(),
            request: acquire_to_wire(request),
            choice: match choice {
                Choice::Explicit(p, a) => WireChoice::Explicit(*p, a.clone()),
                Choice::Auto => WireChoice::Auto,
            },
        },
        Op::Renew { id } => Request::Renew { id: id.clone() },
        Op::Release { id, detail } => Request::Release {
            id: id.clone(),
            detail: detail.clone(),
        },
        Op::RecordUsage {
            id,
            record,
            fallback_key,
        } => Request::RecordUsage {
            id: id.clone(),
            record: WireUsage {
                input: record.input,
                output: record.output,
                requests: record.requests,
                key: record.key.clone(),
                model: record.model.clone(),
                cache_read: record.cache_read,
                cache_write: record.cache_write,
                status: record.status.clone(),
            },
            fallback_key: fallback_key.clone(),
        },
    }
}

/// The op a request asks for.
pub(super) fn op(request: Request) -> Op {
    match request {
        Request::Acquire { id, request } => Op::Acquire {
            id,
            request: acquire_from_wire(request),
        },
        Request::AcquireSelected {
            id,
            request,
            choice,
        } => Op::AcquireSelected {
            id,
            request: acquire_from_wire(request),
            choice: match choice {
                WireChoice::Explicit(p, a) => Choice::Explicit(p, a),
                WireChoice::Auto => Choice::Auto,
            },
        },
        Request::Renew { id } => Op::Renew { id },
        Request::Release { id, detail } => Op::Release { id, detail },
        Request::RecordUsage {
            id,
            record,
            fallback_key,
        } => Op::RecordUsage {
            id,
            record: UsageRecord {
                input: record.input,
                output: record.output,
                requests: record.requests,
                key: record.key,
                model: record.model,
                cache_read: record.cache_read,
                cache_write: record.cache_write,
                status: record.status,
            },
            fallback_key,
        },
    }
}

/// Whether `outcome` is the kind of answer `op` gets: anything else comes from a daemon that
/// does not speak this build's protocol.
pub(super) fn fits(op: &Op, outcome: &protocol::Outcome) -> bool {
    matches!(
        (op, outcome),
        (
            Op::Acquire { .. } | Op::Renew { .. },
            protocol::Outcome::Lease(_)
        ) | (
            Op::AcquireSelected { .. },
            protocol::Outcome::Selected { .. }
        ) | (Op::Release { .. }, protocol::Outcome::Released(_))
            | (Op::RecordUsage { .. }, protocol::Outcome::Usage(_))
    )
}

/// An outcome as sent back.
pub(super) fn outcome_to_wire(outcome: Outcome) -> protocol::Outcome {
    match outcome {
        Outcome::Lease(lease) => protocol::Outcome::Lease(lease_to_wire(lease)),
        Outcome::Selected { lease, decision } => protocol::Outcome::Selected {
            lease: lease_to_wire(lease),
            decision: WireDecision {
                provider: decision.provider,
                account: decision.account,
                reason: decision.reason,
                fallback_from: decision.fallback_from,
                considered: decision
                    .considered
                    .into_iter()
                    .map(verdict_to_wire)
                    .collect(),
            },
        },
        Outcome::Released(released) => protocol::Outcome::Released(WireReleased {
            lease: lease_to_wire(released.lease),
            returned: released.returned,
        }),
        Outcome::Usage(u) => protocol::Outcome::Usage(WireUsageOutcome {
            lease_id: u.lease_id,
            key: u.key,
            duplicate: u.duplicate,
            lease_used: u.lease_used,
            allocated: u.allocated,
            exhausted: u.exhausted,
            lease_state: u.lease_state,
        }),
    }
}

/// An outcome as received.
pub(super) fn outcome_from_wire(outcome: protocol::Outcome) -> Outcome {
    match outcome {
        protocol::Outcome::Lease(lease) => Outcome::Lease(lease_from_wire(lease)),
        protocol::Outcome::Selected { lease, decision } => Outcome::Selected {
            lease: lease_from_wire(lease),
            decision: Decision {
                provider: decision.provider,
                account: decision.account,
                reason: decision.reason,
                fallback_from: decision.fallback_from,
                considered: decision
                    .considered
                    .into_iter()
                    .map(verdict_from_wire)
                    .collect(),
            },
        },
        protocol::Outcome::Released(released) => Outcome::Released(Released {
            lease: lease_from_wire(released.lease),
            returned: released.returned,
        }),
        protocol::Outcome::Usage(u) => Outcome::Usage(UsageOutcome {
            lease_id: u.lease_id,
            key: u.key,
            duplicate: u.duplicate,
            lease_used: u.lease_used,
            allocated: u.allocated,
            exhausted: u.exhausted,
            lease_state: u.lease_state,
        }),
    }
}

/// An error as sent back: the variants a caller acts on keep their shape, the rest travel as
/// message and exit code.
pub(super) fn error_to_wire(e: &Error) -> WireError {
    match e {
        Error::Quota(QuotaError::Denied(d)) => WireError::Denied {
            denial: denial_to_wire(d),
        },
        Error::Quota(QuotaError::UnknownLease(id)) => WireError::UnknownLease { id: id.clone() },
        Error::Select(SelectError::NoneUsable(considered, asked)) => WireError::NoneUsable {
            considered: considered.iter().cloned().map(verdict_to_wire).collect(),
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

/// An error as received: the same error the caller would have got working directly.
pub(super) fn error_from_wire(e: WireError) -> Error {
    match e {
        WireError::Denied { denial } => {
            QuotaError::Denied(Box::new(denial_from_wire(denial))).into()
        }
        WireError::UnknownLease { id } => QuotaError::UnknownLease(id).into(),
        WireError::NoneUsable { considered, asked } => Error::Select(SelectError::NoneUsable(
            considered.into_iter().map(verdict_from_wire).collect(),
            asked,
        )),
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
        WireError::IdempotencyConflict { key } => QuotaError::IdempotencyConflict { key }.into(),
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

fn acquire_to_wire(r: &AcquireRequest) -> WireAcquire {
    WireAcquire {
        agent: r.agent.clone(),
        provider: r.provider,
        account: r.account.clone(),
        tokens: r.tokens,
        ttl: r.ttl,
        audit_denial: r.audit_denial,
    }
}

fn acquire_from_wire(r: WireAcquire) -> AcquireRequest {
    AcquireRequest {
        agent: r.agent,
        provider: r.provider,
        account: r.account,
        tokens: r.tokens,
        ttl: r.ttl,
        audit_denial: r.audit_denial,
    }
}

fn lease_to_wire(l: Lease) -> WireLease {
    WireLease {
        id: l.id,
        fence: l.fence,
        agent: l.agent,
        provider: l.provider,
        account: l.account,
        allocated: l.allocated,
        used: l.used,
        ttl_ms: l.ttl_ms,
        created_at: l.created_at,
        expires_at: l.expires_at,
        heartbeat_at: l.heartbeat_at,
        state: l.state,
        ended_at: l.ended_at,
        end_reason: l.end_reason,
    }
}

fn lease_from_wire(l: WireLease) -> Lease {
    Lease {
        id: l.id,
        fence: l.fence,
        agent: l.agent,
        provider: l.provider,
        account: l.account,
        allocated: l.allocated,
        used: l.used,
        ttl_ms: l.ttl_ms,
        created_at: l.created_at,
        expires_at: l.expires_at,
        heartbeat_at: l.heartbeat_at,
        state: l.state,
        ended_at: l.ended_at,
        end_reason: l.end_reason,
    }
}

fn verdict_to_wire(v: Verdict) -> WireVerdict {
    WireVerdict {
        provider: v.provider,
        account: v.account,
        problem: v.problem,
        fallback_ok: v.fallback_ok,
    }
}

fn verdict_from_wire(v: WireVerdict) -> Verdict {
    Verdict {
        provider: v.provider,
        account: v.account,
        kind: v.problem.as_deref().map(crate::select::Problem::of_text),
        problem: v.problem,
        fallback_ok: v.fallback_ok,
    }
}

fn denial_to_wire(d: &Denial) -> WireDenial {
    WireDenial {
        reason: match d.reason {
            DenyReason::Budget(kind) => WireDenyReason::Budget(kind),
            DenyReason::Concurrency => WireDenyReason::Concurrency,
            DenyReason::RequestsPerMinute => WireDenyReason::RequestsPerMinute,
            DenyReason::TokensPerMinute => WireDenyReason::TokensPerMinute,
        },
        provider: d.provider,
        account: d.account.clone(),
        asked: d.asked,
        available: d.available,
        limit: d.limit,
        resets_at: d.resets_at,
    }
}

fn denial_from_wire(d: WireDenial) -> Denial {
    Denial {
        reason: match d.reason {
            WireDenyReason::Budget(kind) => DenyReason::Budget(kind),
            WireDenyReason::Concurrency => DenyReason::Concurrency,
            WireDenyReason::RequestsPerMinute => DenyReason::RequestsPerMinute,
            WireDenyReason::TokensPerMinute => DenyReason::TokensPerMinute,
        },
        provider: d.provider,
        account: d.account,
        asked: d.asked,
        available: d.available,
        limit: d.limit,
        resets_at: d.resets_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::{read_frame, write_frame};

    #[test]
    fn a_denial_crosses_the_wire_as_the_same_error() {
        let denial = Denial {
            reason: DenyReason::Concurrency,
            provider: crate::types::Provider::Claude,
            account: crate::types::Account::default(),
            asked: Some(5),
            available: 0,
            limit: 2,
            resets_at: Some(1_000),
        };
        let original = Error::Quota(QuotaError::Denied(Box::new(denial.clone())));
        let mut buf = Vec::new();
        write_frame(&mut buf, &error_to_wire(&original)).unwrap();
        let wire: WireError = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        let back = error_from_wire(wire);
        assert_eq!(back.exit_code(), original.exit_code());
        assert_eq!(back.to_string(), original.to_string());
        assert!(matches!(back, Error::Quota(QuotaError::Denied(d)) if *d == denial));
    }

    /// One of each value the wire carries, with every optional field set.
    fn samples() -> (
        Lease,
        Decision,
        Denial,
        AcquireRequest,
        UsageRecord,
        UsageOutcome,
    ) {
        use crate::types::{Account, AgentId, LeaseId, LeaseState, Provider, WindowKind};
        let account = Account::new("work").unwrap();
        let lease = Lease {
            id: LeaseId::from_random([3; 10]),
            fence: 7,
            agent: AgentId::new("reviewer").unwrap(),
            provider: Provider::Claude,
            account: account.clone(),
            allocated: 100,
            used: 10,
            ttl_ms: 60_000,
            created_at: 1_000,
            expires_at: 61_000,
            heartbeat_at: 1_000,
            state: LeaseState::Released,
            ended_at: Some(2_000),
            end_reason: Some("released".into()),
        };
        let verdict = Verdict {
            provider: Provider::Openai,
            account: Account::default(),
            kind: Some(crate::select::Problem::Busy),
            problem: Some("busy".into()),
            fallback_ok: true,
        };
        let decision = Decision {
            provider: Provider::Claude,
            account: account.clone(),
            reason: "preferred".into(),
            fallback_from: Some((Provider::Openai, Account::default(), "busy".into())),
            considered: vec![verdict],
        };
        let denial = Denial {
            reason: DenyReason::Budget(WindowKind::FiveHour),
            provider: Provider::Claude,
            account: account.clone(),
            asked: Some(5),
            available: 1,
            limit: 2,
            resets_at: Some(9_000),
        };
        let request = AcquireRequest::new(lease.agent.clone(), Provider::Claude)
            .account(account)
            .tokens(100)
            .ttl(std::time::Duration::from_millis(60_500));
        let record = UsageRecord::new(10, 5)
            .key("k1")
            .model("claude-sonnet-4-5")
            .cache(3, 4)
            .status("ok");
        let usage = UsageOutcome {
            lease_id: lease.id.clone(),
            key: "k1".into(),
            duplicate: false,
            lease_used: 15,
            allocated: 100,
            exhausted: false,
            lease_state: LeaseState::Active,
        };
        (lease, decision, denial, request, record, usage)
    }

    /// The wire's JSON, frozen: a change to any of these is a new [`VERSION`] (version 1's
    /// were the JSON of the domain types the wire carried before it owned its types; version
    /// 2 added the model, cache and status of a usage report).
    #[test]
    fn the_wire_format_of_version_2_is_unchanged() {
        let (lease, decision, denial, asked, record, usage) = samples();
        let id = lease.id.clone();
        let json = |v: &dyn erased::Json| v.json();
        let ops = [
            Op::AcquireSelected {
                id: id.clone(),
                request: asked,
                choice: Choice::Explicit(crate::types::Provider::Claude, None),
            },
            Op::RecordUsage {
                id: id.clone(),
                record,
                fallback_key: "auto-1".into(),
            },
            Op::Release {
                id,
                detail: Some(serde_json::json!({ "exit_code": 0 })),
            },
        ];
        let outcomes = [
            Outcome::Selected {
                lease: lease.clone(),
                decision,
            },
            Outcome::Released(Released {
                lease,
                returned: 90,
            }),
            Outcome::Usage(usage),
        ];
        let mut got: Vec<String> = ops.iter().map(|op| json(&request(op))).collect();
        got.extend(outcomes.into_iter().map(|o| json(&outcome_to_wire(o))));
        let denied = Error::Quota(QuotaError::Denied(Box::new(denial)));
        got.push(json(&error_to_wire(&denied)));
        assert_eq!(got, GOLDEN);
    }

    /// Requests (acquire_selected, record_usage, release), outcomes (selected, released,
    /// usage) and a denial, as version 2 frames them.
    const GOLDEN: [&str; 7] = [
        r#"{"op":"acquire_selected","id":"lease-03030303030303030303","request":{"agent":"reviewer","provider":"claude","account":"work","tokens":100,"ttl":{"secs":60,"nanos":500000000},"audit_denial":true},"choice":{"Explicit":["claude",null]}}"#,
        r#"{"op":"record_usage","id":"lease-03030303030303030303","record":{"input":10,"output":5,"requests":1,"key":"k1","model":"claude-sonnet-4-5","cache_read":3,"cache_write":4,"status":"ok"},"fallback_key":"auto-1"}"#,
        r#"{"op":"release","id":"lease-03030303030303030303","detail":{"exit_code":0}}"#,
        r#"{"kind":"selected","value":{"lease":{"id":"lease-03030303030303030303","fence":7,"agent":"reviewer","provider":"claude","account":"work","allocated":100,"used":10,"ttl_ms":60000,"created_at":1000,"expires_at":61000,"heartbeat_at":1000,"state":"released","ended_at":2000,"end_reason":"released"},"decision":{"provider":"claude","account":"work","reason":"preferred","fallback_from":["openai","default","busy"],"considered":[{"provider":"openai","account":"default","problem":"busy","fallback_ok":true}]}}}"#,
        r#"{"kind":"released","value":{"lease":{"id":"lease-03030303030303030303","fence":7,"agent":"reviewer","provider":"claude","account":"work","allocated":100,"used":10,"ttl_ms":60000,"created_at":1000,"expires_at":61000,"heartbeat_at":1000,"state":"released","ended_at":2000,"end_reason":"released"},"returned":90}}"#,
        r#"{"kind":"usage","value":{"lease_id":"lease-03030303030303030303","key":"k1","duplicate":false,"lease_used":15,"allocated":100,"exhausted":false,"lease_state":"active"}}"#,
        r#"{"error":"denied","denial":{"reason":{"limit":"budget","window":"5h"},"provider":"claude","account":"work","asked":5,"available":1,"limit":2,"resets_at":9000}}"#,
    ];

    mod erased {
        pub trait Json {
            fn json(&self) -> String;
        }
        impl<T: serde::Serialize> Json for T {
            fn json(&self) -> String {
                serde_json::to_string(self).unwrap()
            }
        }
    }
}
