//! The seam between the proxy and whoever knows the leases: the [`Authority`].
//!
//! The proxy knows HTTP and metering, not leases, credentials or budgets. It asks an
//! [`Authority`] three things per request: which lease a token belongs to and how to reach its
//! upstream ([`Authority::resolve`]), whether the lease may spend now ([`Authority::admit`]),
//! and, once the response has ended, what it cost ([`Authority::record`]). The ledger implements
//! it (lease tokens, top-ups, batched usage); tests implement it with a map. The calls are
//! synchronous, like the ledger: the proxy runs [`Authority::decide`] on tokio's blocking pool
//! unless [`Authority::decide_now`] answered without blocking; `record` and `observe` only
//! queue, and are called on the async path.

use url::Url;

use super::errors::Refusal;
use super::usage::Metered;
use crate::types::{Account, LeaseId, Provider};
use crate::vault::Secret;

/// The authority could not answer (its storage failed). The proxy then refuses with 503 and
/// forwards nothing: a request that cannot be metered is never sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The ledger failed (storage unreadable or unwritable, a broken key, …).
    #[error(transparent)]
    Ledger(#[from] crate::error::Error),
    /// Another authority's failure, said in one line (no secrets).
    #[error("{0}")]
    Unavailable(String),
    /// The upstream HTTP client could not be built (TLS roots, …).
    #[error("cannot start the upstream client: {0}")]
    Client(#[from] reqwest::Error),
}

/// How the real credential goes on the upstream request.
#[derive(Debug, Clone)]
pub enum UpstreamAuth {
    /// An API key: `x-api-key` for Anthropic, `Authorization: Bearer` for OpenAI.
    ApiKey(Secret),
    /// An OAuth access token (a Claude subscription, a ChatGPT login): `Authorization: Bearer`;
    /// for Anthropic the request also carries the OAuth beta in `anthropic-beta`, added to the
    /// agent's own betas when it did not send it.
    OAuth(Secret),
}

/// What a lease token stands for: the lease to charge and where and how to forward.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The lease the request is charged to.
    pub lease_id: LeaseId,
    /// The provider, which decides the credential header and the error format.
    pub provider: Provider,
    /// The upstream's base URL (`https://api.anthropic.com`, or a configured `base_url`); the
    /// request's path and query are appended to it.
    pub upstream: Url,
    /// The real credential.
    pub credential: UpstreamAuth,
    /// A leading path segment the upstream does not use (the ChatGPT backend takes
    /// `/responses` where agents send `/v1/responses`): removed before the path is appended.
    pub strip_prefix: Option<&'static str>,
    /// Headers the upstream needs that the agent may not send (the ChatGPT account id), set
    /// only when the agent did not send them itself.
    pub default_headers: Vec<(&'static str, String)>,
    /// The provider account whose credential this is, when the authority knows it: health
    /// reports name it without another look-up.
    pub account: Option<Account>,
}

impl Grant {
    /// A grant that forwards paths unchanged and adds no header.
    pub fn new(
        lease_id: LeaseId,
        provider: Provider,
        upstream: Url,
        credential: UpstreamAuth,
    ) -> Grant {
        Grant {
            lease_id,
            provider,
            upstream,
            credential,
            strip_prefix: None,
            default_headers: Vec::new(),
            account: None,
        }
    }
}

/// What [`Authority::decide`] says of a token: its grant and whether the request may go;
/// `None` for an unknown token or an ended lease.
pub type Decided = Option<(Grant, Admission)>;

/// Whether a lease may make a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Forward it.
    Go,
    /// Answer this refusal in the provider's format instead (budget or window used up).
    Refuse(Refusal),
}

/// What the proxy needs from the ledger. Every method may block (it is called on tokio's
/// blocking pool); an `Err` from `resolve` or `admit` refuses the request with 503.
pub trait Authority: Send + Sync {
    /// The grant for an agent's lease token; `None` when the token is unknown or its lease has
    /// ended (the agent gets 401).
    fn resolve(&self, token: &str) -> Result<Option<Grant>, GatewayError>;

    /// Whether the lease may spend now: the ledger tops it up or refuses it here.
    fn admit(&self, lease: &LeaseId) -> Result<Admission, GatewayError>;

    /// [`resolve`](Self::resolve) then [`admit`](Self::admit), for one request: `None` for an
    /// unknown token. An authority may answer both from one read; the default asks each.
    fn decide(&self, token: &str) -> Result<Decided, GatewayError> {
        let Some(grant) = self.resolve(token)? else {
            return Ok(None);
        };
        let admission = self.admit(&grant.lease_id)?;
        Ok(Some((grant, admission)))
    }

    /// [`decide`](Self::decide), answered on the async path, when the authority can do so
    /// without blocking (nothing to write, nothing to fetch or decrypt); `None` sends the
    /// request to [`decide`](Self::decide) on the blocking pool. The default never answers.
    fn decide_now(&self, token: &str) -> Option<Result<Decided, GatewayError>> {
        let _ = token;
        None
    }

    /// What one request cost, called once per metered response after it ended (or after the
    /// client went away, with what was seen). Called on the async path: it must not block
    /// (queue the write). An error is logged: the response has already been delivered.
    fn record(&self, lease: &LeaseId, metered: Metered) -> Result<(), GatewayError>;

    /// The upstream's status and headers for a request of `grant`, as soon as they arrive, so
    /// rate-limit facts and errors reach provider health. Called on the async path: it must
    /// not block (queue the work). The default ignores them.
    fn observe(&self, grant: &Grant, status: u16, headers: &[(String, String)]) {
        let _ = (grant, status, headers);
    }

    /// The ledger's figures as OpenMetrics text, answered at `GET /metrics` (see
    /// [`crate::metrics`]), with `extra` (the gateway's own families, already formatted)
    /// before the `# EOF`; `None`: this authority has none, and the path is refused as any
    /// unmetered one. Called on the blocking pool; it must only read.
    fn metrics(&self, extra: &str) -> Option<Result<String, GatewayError>> {
        let _ = extra;
        None
    }
}
