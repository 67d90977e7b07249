//! Plain records as the ledger stores them: limits, windows, leases, usage events, audit rows.
//!
//! They sit below every layer so the store can read and write them without importing the
//! business logic that interprets them.

use serde::Serialize;

use crate::types::{Account, AgentId, LeaseId, LeaseState, Millis, Provider, WindowKind};

/// The limits of one provider account. `None` means the limit is not enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Whose limits these are.
    pub provider: Provider,
    /// Which account of the provider.
    pub account: Account,
    /// Tokens per day, reset at `reset_offset_min` minutes past midnight UTC.
    pub daily_tokens: i64,
    /// Tokens per 5-hour window, counted from first use (Claude subscriptions meter this way).
    pub window_5h_tokens: Option<i64>,
    /// Tokens per 7-day window, counted from first use.
    pub weekly_tokens: Option<i64>,
    /// Requests per minute, counted from recorded usage.
    pub rpm: Option<i64>,
    /// Tokens per minute, counted from recorded usage.
    pub tpm: Option<i64>,
    /// Leases that may be active at once.
    pub concurrent: i64,
    /// The most a fair-share lease may take; `None` means `daily_tokens / concurrent`.
    pub lease_cap: Option<i64>,
    /// Minutes after midnight UTC at which the daily window starts.
    pub reset_offset_min: i64,
    /// When these limits were last changed.
    pub updated_at: Millis,
}

impl Limits {
    /// The limits the README ("Limits") promises a provider nobody has configured yet.
    pub fn defaults(provider: Provider, account: Account, now: Millis) -> Self {
        let (daily_tokens, concurrent) = match provider {
            Provider::Claude => (1_000_000, 10),
            Provider::Openai => (500_000, 8),
        };
        Limits {
            provider,
            account,
            daily_tokens,
            window_5h_tokens: None,
            weekly_tokens: None,
            rpm: None,
            tpm: None,
            concurrent,
            lease_cap: None,
            reset_offset_min: 0,
            updated_at: now,
        }
    }

    /// Whether these are exactly the provider's defaults (as `init` or a first acquire
    /// stores them), so a login may still give them the defaults of its credential kind.
    pub fn is_default(&self, provider: Provider) -> bool {
        let d = Limits::defaults(provider, self.account.clone(), self.updated_at);
        *self == d
    }

    /// The token limit of a budget window kind, if that window is enforced.
    pub fn budget_for(&self, kind: WindowKind) -> Option<i64> {
        match kind {
            WindowKind::Day => Some(self.daily_tokens),
            WindowKind::FiveHour => self.window_5h_tokens,
            WindowKind::Week => self.weekly_tokens,
            WindowKind::Minute => self.tpm,
        }
    }

    /// The most one fair-share lease may be given.
    pub fn effective_lease_cap(&self) -> i64 {
        self.lease_cap
            .unwrap_or_else(|| (self.daily_tokens / self.concurrent.max(1)).max(1))
    }
}

/// One metering window of one provider account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Row id; leases refer to the windows they reserved in by it.
    pub id: i64,
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// Which kind of window.
    pub kind: WindowKind,
    /// First millisecond of the window.
    pub start_ms: Millis,
    /// First millisecond after the window.
    pub end_ms: Millis,
    /// Tokens recorded as used.
    pub used: i64,
    /// Tokens held by active leases and not yet used.
    pub reserved: i64,
    /// Requests recorded.
    pub requests: i64,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The lease's id.
    pub id: LeaseId,
    /// Monotonic fencing number: a later lease always has a larger one, so a resource guarded by
    /// it can refuse a holder whose lease has been superseded.
    pub fence: i64,
    /// Who holds it.
    pub agent: AgentId,
    /// On which provider.
    pub provider: Provider,
    /// On which account.
    pub account: Account,
    /// Tokens reserved for it at acquire.
    pub allocated: i64,
    /// Tokens recorded against it.
    pub used: i64,
    /// Time to live, restarted by each renew.
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
    /// Why it ended (`released`, `ttl`, `idle`, …), if it has.
    pub end_reason: Option<String>,
}

/// One usage record, unique by its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageEvent {
    /// The caller's idempotency key (or a random one when none was given).
    pub idem_key: String,
    /// The lease the usage was recorded on.
    pub lease_id: LeaseId,
    /// The lease's agent.
    pub agent: AgentId,
    /// The lease's provider.
    pub provider: Provider,
    /// The lease's account.
    pub account: Account,
    /// Input tokens.
    pub input: i64,
    /// Output tokens.
    pub output: i64,
    /// Requests made.
    pub requests: i64,
    /// The model the provider answered with, if known.
    pub model: Option<String>,
    /// Input tokens read from the prompt cache (apart from `input`).
    pub cache_read: i64,
    /// Input tokens written to the prompt cache (apart from `input`).
    pub cache_write: i64,
    /// The request's outcome, if reported.
    pub status: Option<String>,
    /// When it was recorded.
    pub at_ms: Millis,
}

/// One audit row as stored, with its chain hashes (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1 without gaps.
    pub seq: i64,
    /// When it happened.
    pub at_ms: Millis,
    /// The stable action name (`acquire`, `release`, …).
    pub action: String,
    /// The agent concerned, if any.
    pub agent: Option<String>,
    /// The provider concerned, if any.
    pub provider: Option<String>,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// The lease concerned, if any.
    pub lease_id: Option<String>,
    /// Action-specific facts, as compact JSON text (never a secret).
    pub detail: String,
    /// The previous row's hash (64 zeros for the first row).
    pub prev_hash: String,
    /// SHA-256 of `prev_hash` and this row's content.
    pub hash: String,
}

/// What to group a usage summary by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageGroup {
    /// One row per agent.
    Agent,
    /// One row per provider and account.
    Provider,
    /// One row per UTC day.
    Day,
    /// One row per model (`-` for records without one).
    Model,
    /// One row per session: the lease the usage was recorded on, in the order the sessions
    /// first recorded usage.
    Session,
}

/// One row of a usage summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageSummary {
    /// The agent, `provider/account` or day this row sums.
    pub key: String,
    /// Input tokens.
    pub input: i64,
    /// Output tokens.
    pub output: i64,
    /// Prompt-cache tokens read.
    pub cache_read: i64,
    /// Prompt-cache tokens written.
    pub cache_write: i64,
    /// Every token counted against the budget: input, output and both cache figures.
    pub total: i64,
    /// Requests.
    pub requests: i64,
    /// Usage records summed.
    pub records: i64,
}

/// A filter over the audit trail; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Rows at or after this time.
    pub since: Option<Millis>,
    /// Rows before this time.
    pub until: Option<Millis>,
    /// Rows of this agent.
    pub agent: Option<String>,
    /// Rows of this provider.
    pub provider: Option<Provider>,
    /// Rows with this action.
    pub action: Option<String>,
    /// The most recent N matching rows.
    pub limit: Option<u32>,
}

/// A stored credential's clear metadata (secrets live in [`SealedField`] rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// `api_key` or `oauth`.
    pub kind: String,
    /// `max`, `pro`, `api` or `chatgpt`.
    pub tier: String,
    /// When the access token expires.
    pub expires_at: Option<Millis>,
    /// OAuth scopes, space-separated.
    pub scopes: String,
    /// The provider's account or organisation id.
    pub account_id: Option<String>,
    /// Where it came from.
    pub source: String,
    /// `ok` or `needs_login`.
    pub status: String,
    /// Bumped on every change: refreshes compare-and-swap on it.
    pub generation: i64,
    /// When first stored.
    pub created_at: Millis,
    /// When last changed.
    pub updated_at: Millis,
    /// When last handed to an agent.
    pub last_used_at: Option<Millis>,
    /// When an OAuth refresh last replaced the tokens.
    pub refreshed_at: Option<Millis>,
    /// The token endpoint that may refresh it (recorded at login; none: never refreshed here).
    pub refresh_token_url: Option<String>,
    /// The client id refreshes use with that endpoint.
    pub refresh_client_id: Option<String>,
}

/// One encrypted secret field of a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedField {
    /// `api_key`, `access_token`, `refresh_token` or `id_token`.
    pub field: String,
    /// The AEAD nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

/// What a provider said of one subscription window at one moment, kept so the window's token
/// limit can be estimated (`crate::calibrate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UtilizationSample {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// `5h`, `7d` (Claude) or `primary`, `secondary` (Codex).
    pub window: String,
    /// When the provider said it.
    pub at_ms: Millis,
    /// How much of the window was used, in hundredths of a percent (4200 is 42 %).
    pub used_bp: i64,
    /// When this instance of the window resets.
    pub resets_at: Millis,
    /// The window's length, so it started at `resets_at - window_ms`.
    pub window_ms: Millis,
}

/// What the ledger knows of a provider account's health, from reported responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthRecord {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// Selection skips the account until then.
    pub unavailable_until: Option<Millis>,
    /// Why it is unavailable (`429`, `5xx x3`).
    pub reason: Option<String>,
    /// 5xx answers in a row.
    pub consecutive_errors: i64,
    /// The last reported HTTP status.
    pub last_status: Option<i64>,
    /// The rate-limit headers last reported, as a JSON object.
    pub facts: String,
    /// When last reported.
    pub updated_at: Millis,
}
