//! What `--json` prints: one documented struct per output, owned by the CLI, so the machine
//! contract does not change when a storage record, a library type or the wire protocol does.
//!
//! One convention for times, across every command: a time field `x` is an RFC 3339 UTC string
//! with milliseconds (`"2026-11-23T10:00:00.000Z"`), and `x_ms` beside it is the same instant
//! in epoch milliseconds (the form scripts read before the strings existed). Durations are
//! `_ms` integers (`ttl_ms`). A time that may be missing is `null` in both fields.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::audit::{Anchor, VerifyReport};
use crate::health::ProviderUtilization;
use crate::ledger::{CodexExport, KeyRotation, LogoutReport};
use crate::prices::{Cost, ModelPrice, Rates, micro_usd, usd_decimal};
use crate::quota::{CleanupReport, Denial, DenyReason, QuotaStatus, UsageOutcome, WindowStatus};
use crate::records::{AuditEntry, HealthRecord, Lease, Limits, UsageSummary};
use crate::select::{Decision, Verdict};
use crate::types::{Account, AgentId, LeaseId, LeaseState, Millis, Provider, WindowKind};
use crate::vault::{CredentialKind, CredentialSummary, Tier};

/// An instant as the JSON convention writes it: RFC 3339, UTC, milliseconds.
pub fn time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

fn opt_time(ms: Option<Millis>) -> Option<String> {
    ms.map(time)
}

/// A lease, the same in every command that prints one (`lease acquire|renew|release|list`,
/// and `run` on stderr).
#[derive(Debug, Serialize)]
pub struct LeaseJson {
    /// The lease's id (what `renew`, `release`, `usage record` and `env` take).
    pub lease_id: LeaseId,
    /// Fencing number: a later lease always has a larger one (`--fence N` checks it).
    pub fence: i64,
    /// Who holds it.
    pub agent: AgentId,
    /// On which provider.
    pub provider: Provider,
    /// On which account of the provider.
    pub account: Account,
    /// Tokens reserved for it at acquire.
    pub allocated_tokens: i64,
    /// Tokens recorded against it so far.
    pub used_tokens: i64,
    /// `active`, `released`, `expired` or `revoked`.
    pub state: LeaseState,
    /// Time to live, restarted by each renew.
    pub ttl_ms: i64,
    /// When it was granted.
    pub created_at: String,
    /// `created_at` in epoch milliseconds.
    pub created_at_ms: Millis,
    /// When it expires unless renewed.
    pub expires_at: String,
    /// `expires_at` in epoch milliseconds.
    pub expires_at_ms: Millis,
    /// The last acquire or renew.
    pub heartbeat_at: String,
    /// `heartbeat_at` in epoch milliseconds.
    pub heartbeat_at_ms: Millis,
    /// When it ended, if it has.
    pub ended_at: Option<String>,
    /// `ended_at` in epoch milliseconds.
    pub ended_at_ms: Option<Millis>,
    /// Why it ended (`released`, `ttl`, `idle`, …), if it has.
    pub end_reason: Option<String>,
}

impl From<&Lease> for LeaseJson {
    fn from(l: &Lease) -> Self {
        LeaseJson {
            lease_id: l.id.clone(),
            fence: l.fence,
            agent: l.agent.clone(),
            provider: l.provider,
            account: l.account.clone(),
            allocated_tokens: l.allocated,
            used_tokens: l.used,
            state: l.state,
            ttl_ms: l.ttl_ms,
            created_at: time(l.created_at),
            created_at_ms: l.created_at,
            expires_at: time(l.expires_at),
            expires_at_ms: l.expires_at,
            heartbeat_at: time(l.heartbeat_at),
            heartbeat_at_ms: l.heartbeat_at,
            ended_at: opt_time(l.ended_at),
            ended_at_ms: l.ended_at,
            end_reason: l.end_reason.clone(),
        }
    }
}

/// `lease acquire` (and `run`'s first stderr line): the lease and why it went where it did.
#[derive(Debug, Serialize)]
pub struct AcquiredJson {
    /// The lease granted.
    #[serde(flatten)]
    pub lease: LeaseJson,
    /// Why this provider account was chosen.
    pub reason: String,
    /// Whether it is a fallback from the account that would have been first.
    pub fallback: bool,
}

impl AcquiredJson {
    /// The lease with the selection's decision.
    pub fn new(lease: &Lease, decision: &Decision) -> Self {
        AcquiredJson {
            lease: lease.into(),
            reason: decision.reason.clone(),
            fallback: decision.fallback_from.is_some(),
        }
    }
}

/// `lease release`: the lease as it ended and what went back.
#[derive(Debug, Serialize)]
pub struct ReleasedJson {
    /// The lease as it ended.
    #[serde(flatten)]
    pub lease: LeaseJson,
    /// Unused tokens returned to the windows.
    pub returned_tokens: i64,
}

/// One window of one account in `quota` and `status`.
#[derive(Debug, Serialize)]
pub struct WindowJson {
    /// `day`, `5h`, `week` or `minute`.
    pub kind: WindowKind,
    /// Its token limit (for the minute window: tokens/min), `null` if not enforced.
    pub limit: Option<i64>,
    /// Tokens recorded.
    pub used: i64,
    /// Tokens held by active leases and not yet used.
    pub reserved: i64,
    /// What a new lease could still get (0 when over), `null` without a limit.
    pub remaining: Option<i64>,
    /// `(used + reserved) / limit` in percent, `null` without a limit.
    pub percent: Option<f64>,
    /// Requests recorded (the minute window's figure is what requests/min counts).
    pub requests: i64,
    /// When the window ends (`null` for a window counted from first use, not yet started).
    pub resets_at: Option<String>,
    /// `resets_at` in epoch milliseconds.
    pub resets_at_ms: Option<Millis>,
}

impl From<&WindowStatus> for WindowJson {
    fn from(w: &WindowStatus) -> Self {
        WindowJson {
            kind: w.kind,
            limit: w.limit,
            used: w.used,
            reserved: w.reserved,
            remaining: w.remaining,
            percent: w.percent,
            requests: w.requests,
            resets_at: opt_time(w.resets_at),
            resets_at_ms: w.resets_at,
        }
    }
}

/// `quota`: one provider account. The top-level figures are the daily window's.
#[derive(Debug, Serialize)]
pub struct QuotaJson {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// Daily token limit.
    pub limit: i64,
    /// Tokens used today.
    pub used: i64,
    /// Tokens reserved today by active leases.
    pub reserved: i64,
    /// Tokens a new lease could still get today.
    pub remaining: i64,
    /// Today's used plus reserved, in percent of the limit.
    pub percent: f64,
    /// Leases active now.
    pub active_leases: i64,
    /// Leases allowed at once.
    pub concurrent_limit: i64,
    /// When today's window resets.
    pub resets_at: String,
    /// `resets_at` in epoch milliseconds.
    pub resets_at_ms: Millis,
    /// Requests/min limit, if any.
    pub rpm: Option<i64>,
    /// Every window, day first.
    pub windows: Vec<WindowJson>,
    /// What the provider itself last said of the account's use (from its rate-limit headers),
    /// beside the ledger's own figures above; empty when it said nothing readable.
    pub provider_utilization: Vec<ProviderUtilizationJson>,
    /// What the account's usage cost today (since 00:00 UTC), at the prices in force.
    pub cost_today: CostJson,
}

impl QuotaJson {
    /// One account's quota with what its provider last reported and what it cost today.
    pub fn new(q: &QuotaStatus, provider: &[ProviderUtilization], cost_today: &Cost) -> Self {
        QuotaJson {
            provider: q.provider,
            account: q.account.clone(),
            limit: q.limit,
            used: q.used,
            reserved: q.reserved,
            remaining: q.remaining,
            percent: q.percent,
            active_leases: q.active_leases,
            concurrent_limit: q.concurrent_limit,
            resets_at: time(q.resets_at),
            resets_at_ms: q.resets_at,
            rpm: q.rpm,
            windows: q.windows.iter().map(WindowJson::from).collect(),
            provider_utilization: provider.iter().map(ProviderUtilizationJson::from).collect(),
            cost_today: CostJson::from(cost_today),
        }
    }
}

/// One of the provider's own rate-limit windows, as its last response reported it.
#[derive(Debug, Serialize)]
pub struct ProviderUtilizationJson {
    /// `5h`, `7d` (Claude subscription), `requests/min`, `tokens/min`, `input-tokens/min`,
    /// `output-tokens/min` (APIs), `primary` or `secondary` (Codex).
    pub window: String,
    /// The window's length in minutes where the provider says it (Codex), else `null`.
    pub window_minutes: Option<i64>,
    /// Used, in percent of the provider's limit (0 to 100).
    pub used_percent: f64,
    /// The provider's verdict (`allowed`, `allowed_warning`, `rejected`), where it sends one.
    pub status: Option<String>,
    /// When the provider said the window resets, if it did.
    pub resets_at: Option<String>,
    /// `resets_at` in epoch milliseconds.
    pub resets_at_ms: Option<Millis>,
    /// When the provider said it (the last reported response).
    pub as_of: String,
    /// `as_of` in epoch milliseconds.
    pub as_of_ms: Millis,
}

impl From<&ProviderUtilization> for ProviderUtilizationJson {
    fn from(u: &ProviderUtilization) -> Self {
        ProviderUtilizationJson {
            window: u.window.clone(),
            window_minutes: u.window_minutes,
            used_percent: u.used_percent,
            status: u.status.clone(),
            resets_at: opt_time(u.resets_at),
            resets_at_ms: u.resets_at,
            as_of: time(u.as_of),
            as_of_ms: u.as_of,
        }
    }
}

/// A stored credential, redacted (`login`, `status`). Never holds a secret.
#[derive(Debug, Serialize)]
pub struct CredentialJson {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// `api_key` or `oauth`.
    pub kind: CredentialKind,
    /// The plan (`max`, `pro`, `api`, `chatgpt`, …).
    pub tier: Tier,
    /// The main secret, redacted (`sk-ant-…f3a9`).
    pub redacted: String,
    /// Whether a refresh token is stored.
    pub refreshable: bool,
    /// Whether the ledger itself refreshes it.
    pub ledger_refreshes: bool,
    /// When the access token expires, if it does.
    pub expires_at: Option<String>,
    /// `expires_at` in epoch milliseconds.
    pub expires_at_ms: Option<Millis>,
    /// OAuth scopes.
    pub scopes: Vec<String>,
    /// The provider's account id, where known.
    pub account_id: Option<String>,
    /// Where it came from (`claude-code`, `codex`, `stdin`, `oauth`, …).
    pub source: String,
    /// `ok`, `needs_login` or `handed_over`.
    pub status: String,
    /// The tool it was handed over to, which refreshes it now.
    pub handed_over_to: Option<String>,
    /// When it was stored.
    pub created_at: String,
    /// `created_at` in epoch milliseconds.
    pub created_at_ms: Millis,
    /// When it last changed.
    pub updated_at: String,
    /// `updated_at` in epoch milliseconds.
    pub updated_at_ms: Millis,
    /// When an agent last got it.
    pub last_used_at: Option<String>,
    /// `last_used_at` in epoch milliseconds.
    pub last_used_at_ms: Option<Millis>,
    /// When an OAuth refresh last replaced its tokens.
    pub refreshed_at: Option<String>,
    /// `refreshed_at` in epoch milliseconds.
    pub refreshed_at_ms: Option<Millis>,
}

impl From<&CredentialSummary> for CredentialJson {
    fn from(c: &CredentialSummary) -> Self {
        CredentialJson {
            provider: c.provider,
            account: c.account.clone(),
            kind: c.kind,
            tier: c.tier,
            redacted: c.redacted.clone(),
            refreshable: c.refreshable,
            ledger_refreshes: c.ledger_refreshes,
            expires_at: opt_time(c.expires_at),
            expires_at_ms: c.expires_at,
            scopes: c.scopes.clone(),
            account_id: c.account_id.clone(),
            source: c.source.clone(),
            status: c.status.clone(),
            handed_over_to: c.handed_over_to.clone(),
            created_at: time(c.created_at),
            created_at_ms: c.created_at,
            updated_at: time(c.updated_at),
            updated_at_ms: c.updated_at,
            last_used_at: opt_time(c.last_used_at),
            last_used_at_ms: c.last_used_at,
            refreshed_at: opt_time(c.refreshed_at),
            refreshed_at_ms: c.refreshed_at,
        }
    }
}

/// `status`: one provider account, its credential and its quota.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// The stored credential, redacted (`null` if none).
    pub credential: Option<CredentialJson>,
    /// Its quota, as `quota` prints it.
    pub quota: QuotaJson,
}

/// `providers`: one account in selection order.
#[derive(Debug, Serialize)]
pub struct ProviderJson {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// Whether a lease could be granted on it now (first choice or fallback).
    pub usable: bool,
    /// Why not, or `ok`.
    pub reason: String,
    /// Whether the next `auto` agent goes here.
    pub next: bool,
}

impl ProviderJson {
    /// A candidate's verdict, and whether it is the next agent's account.
    pub fn new(v: &Verdict, next: bool) -> Self {
        ProviderJson {
            provider: v.provider,
            account: v.account.clone(),
            usable: v.problem.is_none() || v.fallback_ok,
            reason: v.problem.clone().unwrap_or_else(|| "ok".into()),
            next,
        }
    }
}

/// `logout`: what was removed.
#[derive(Debug, Serialize)]
pub struct LogoutJson {
    /// The provider logged out of.
    pub provider: Provider,
    /// The account.
    pub account: Account,
    /// The active leases revoked with it.
    pub revoked: Vec<LeaseId>,
}

impl From<&LogoutReport> for LogoutJson {
    fn from(r: &LogoutReport) -> Self {
        LogoutJson {
            provider: r.provider,
            account: r.account.clone(),
            revoked: r.revoked.clone(),
        }
    }
}

/// `token`: the usable secret (the one output that holds one, by request).
#[derive(Debug, Serialize)]
pub struct TokenJson<'a> {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: &'a Account,
    /// The secret itself.
    pub token: &'a str,
}

/// `switch`: the preference now stored.
#[derive(Debug, Serialize)]
pub struct SwitchJson {
    /// `claude`, `openai` or `auto` (none).
    pub preferred: &'static str,
}

/// `report`: what the ledger now knows of the account's health.
#[derive(Debug, Serialize)]
pub struct HealthJson {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// Selection skips the account until then (`null`: available).
    pub unavailable_until: Option<String>,
    /// `unavailable_until` in epoch milliseconds.
    pub unavailable_until_ms: Option<Millis>,
    /// Why it is unavailable (`429`, `5xx x3`).
    pub reason: Option<String>,
    /// 5xx answers in a row.
    pub consecutive_errors: i64,
    /// The last reported HTTP status.
    pub last_status: Option<i64>,
    /// The rate-limit headers last reported, as JSON text (header name → value), with
    /// `reported_at_ms`: when they were reported.
    pub facts: String,
    /// When last reported.
    pub updated_at: String,
    /// `updated_at` in epoch milliseconds.
    pub updated_at_ms: Millis,
}

impl From<&HealthRecord> for HealthJson {
    fn from(h: &HealthRecord) -> Self {
        HealthJson {
            provider: h.provider,
            account: h.account.clone(),
            unavailable_until: opt_time(h.unavailable_until),
            unavailable_until_ms: h.unavailable_until,
            reason: h.reason.clone(),
            consecutive_errors: h.consecutive_errors,
            last_status: h.last_status,
            facts: h.facts.clone(),
            updated_at: time(h.updated_at),
            updated_at_ms: h.updated_at,
        }
    }
}

/// `env --format json`: the agent environment (secrets included, by request).
#[derive(Debug, Serialize)]
pub struct EnvJson<'a> {
    /// Variables to set, by name.
    pub set: BTreeMap<&'a str, &'a str>,
    /// Inherited variables to remove.
    pub unset: &'a [String],
}

/// `limits set` and `init`: one provider account's limits (`null`: not enforced).
#[derive(Debug, Serialize)]
pub struct LimitsJson {
    /// Whose limits.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// Tokens per day.
    pub daily_tokens: i64,
    /// Tokens per 5-hour window from first use.
    pub window_5h_tokens: Option<i64>,
    /// Tokens per 7-day window from first use.
    pub weekly_tokens: Option<i64>,
    /// Requests per minute.
    pub rpm: Option<i64>,
    /// Tokens per minute.
    pub tpm: Option<i64>,
    /// Leases active at once.
    pub concurrent: i64,
    /// The most a fair-share lease may take (`null`: daily ÷ concurrent).
    pub lease_cap: Option<i64>,
    /// Minutes after midnight UTC when the daily window starts.
    pub reset_offset_min: i64,
    /// When they last changed.
    pub updated_at: String,
    /// `updated_at` in epoch milliseconds.
    pub updated_at_ms: Millis,
}

impl From<&Limits> for LimitsJson {
    fn from(l: &Limits) -> Self {
        LimitsJson {
            provider: l.provider,
            account: l.account.clone(),
            daily_tokens: l.daily_tokens,
            window_5h_tokens: l.window_5h_tokens,
            weekly_tokens: l.weekly_tokens,
            rpm: l.rpm,
            tpm: l.tpm,
            concurrent: l.concurrent,
            lease_cap: l.lease_cap,
            reset_offset_min: l.reset_offset_min,
            updated_at: time(l.updated_at),
            updated_at_ms: l.updated_at,
        }
    }
}

/// `limits show`: an account's limits and the estimates of its subscription windows.
#[derive(Debug, Serialize)]
pub struct LimitsShowJson {
    /// The limits in force, as `limits set` prints them.
    #[serde(flatten)]
    pub limits: LimitsJson,
    /// The estimated limits (`limits set --window-5h auto`).
    pub estimated: EstimatedJson,
}

impl LimitsShowJson {
    /// An account's limits and its calibration.
    pub fn new(l: &Limits, c: &crate::ledger::Calibration) -> Self {
        LimitsShowJson {
            limits: LimitsJson::from(l),
            estimated: EstimatedJson {
                window_5h: EstimateJson::from(&c.window_5h),
                weekly: EstimateJson::from(&c.weekly),
            },
        }
    }
}

/// The estimate of each subscription window.
#[derive(Debug, Serialize)]
pub struct EstimatedJson {
    /// Tokens per 5-hour window (Claude `5h`, Codex `primary`).
    pub window_5h: EstimateJson,
    /// Tokens per 7-day window (Claude `7d`, Codex `secondary`).
    pub weekly: EstimateJson,
}

/// One window's estimated limit, or none yet.
#[derive(Debug, Serialize)]
pub struct EstimateJson {
    /// The estimated tokens per window (`null`: not enough reports yet).
    pub limit: Option<i64>,
    /// Its uncertainty, ± percent of `limit` (about 95 %).
    pub margin_percent: Option<f64>,
    /// `high`, `medium`, `low`, or `none` without an estimate.
    pub confidence: &'static str,
    /// The usable reports it rests on.
    pub samples: usize,
    /// How many usable reports an estimate needs.
    pub samples_needed: usize,
}

impl From<&Result<crate::calibrate::Estimate, crate::calibrate::NotYet>> for EstimateJson {
    fn from(e: &Result<crate::calibrate::Estimate, crate::calibrate::NotYet>) -> Self {
        match e {
            Ok(e) => EstimateJson {
                limit: Some(e.limit),
                margin_percent: Some(e.margin_percent),
                confidence: e.confidence.as_str(),
                samples: e.samples,
                samples_needed: crate::calibrate::MIN_SAMPLES,
            },
            Err(n) => EstimateJson {
                limit: None,
                margin_percent: None,
                confidence: "none",
                samples: n.usable,
                samples_needed: n.needed,
            },
        }
    }
}

/// `init`: where the ledger is and the limits it starts with.
#[derive(Debug, Serialize)]
pub struct InitJson {
    /// The database file.
    pub db: PathBuf,
    /// Its schema version.
    pub schema_version: i64,
    /// The limits stored for each provider account.
    pub limits: Vec<LimitsJson>,
}

/// `usage record`: what recording did and what the holder should do next.
#[derive(Debug, Serialize)]
pub struct UsageRecordedJson {
    /// The lease.
    pub lease_id: LeaseId,
    /// The idempotency key the record is stored under.
    pub key: String,
    /// Whether this was a retry of a record already stored (nothing changed).
    pub duplicate: bool,
    /// Tokens recorded on the lease so far (as in every lease object).
    pub used_tokens: i64,
    /// Tokens allocated to the lease (as in every lease object).
    pub allocated_tokens: i64,
    /// Whether the allocation is used up: acquire a new lease before going on.
    pub exhausted: bool,
    /// The lease's state after recording; anything but `active` means it was lost.
    pub lease_state: LeaseState,
}

impl From<&UsageOutcome> for UsageRecordedJson {
    fn from(o: &UsageOutcome) -> Self {
        UsageRecordedJson {
            lease_id: o.lease_id.clone(),
            key: o.key.clone(),
            duplicate: o.duplicate,
            used_tokens: o.lease_used,
            allocated_tokens: o.allocated,
            exhausted: o.exhausted,
            lease_state: o.lease_state,
        }
    }
}

/// `usage`: one row of the summary.
#[derive(Debug, Serialize)]
pub struct UsageRowJson {
    /// The agent, `provider/account`, UTC day (`YYYY-MM-DD`) or model (`-`: none) this row
    /// sums.
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
    /// With `--cost`: what the row cost.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostJson>,
}

/// A cost, exact: a decimal string of dollars and the same in whole micro-dollars, with the
/// requests left out of it because their model has no price (then the cost is a lower bound,
/// never a guessed $0).
#[derive(Debug, Serialize)]
pub struct CostJson {
    /// US dollars as a decimal string to the micro-dollar (`"12.345678"`), so no reader
    /// has to trust a float.
    pub cost_usd: String,
    /// The same in micro-dollars (10⁻⁶ USD), rounded half away from zero.
    pub cost_micro_usd: i64,
    /// Requests not priced because their model is unknown to the price table (or unnamed).
    pub unknown_model_requests: i64,
}

impl From<&Cost> for CostJson {
    fn from(c: &Cost) -> Self {
        let micros = micro_usd(c.picos);
        CostJson {
            cost_usd: usd_decimal(c.picos),
            cost_micro_usd: i64::try_from(micros).unwrap_or(if micros < 0 {
                i64::MIN
            } else {
                i64::MAX
            }),
            unknown_model_requests: c.unknown_requests,
        }
    }
}

/// `prices show` and `prices update`: the table in force.
#[derive(Debug, Serialize)]
pub struct PricesJson {
    /// When the prices were taken (`YYYY-MM-DD`; for a table without a date of its own, the
    /// day of its `prices update`).
    pub date: String,
    /// Where they came from.
    pub source: String,
    /// The file `prices update` put in force, or `null` for the snapshot built in.
    pub file: Option<PathBuf>,
    /// The models shown (empty for `prices update`).
    pub models: Vec<ModelPriceJson>,
}

/// One model's prices, in US dollars per million tokens as exact decimal strings.
#[derive(Debug, Serialize)]
pub struct ModelPriceJson {
    /// The model's name in the table.
    pub model: String,
    /// The prices up to the first long-context threshold.
    #[serde(flatten)]
    pub base: RatesJson,
    /// Long-context tiers: a request whose prompt passes `above_tokens` is charged whole at
    /// these prices.
    pub tiers: Vec<TierJson>,
}

impl ModelPriceJson {
    /// One model of the table.
    pub fn new(name: &str, p: &ModelPrice) -> Self {
        ModelPriceJson {
            model: name.to_string(),
            base: RatesJson::from(&p.base),
            tiers: p
                .tiers
                .iter()
                .map(|t| TierJson {
                    above_tokens: t.above,
                    rates: RatesJson::from(&t.rates),
                })
                .collect(),
        }
    }
}

/// A long-context tier.
#[derive(Debug, Serialize)]
pub struct TierJson {
    /// The prompt size (input + cache read + cache write) past which the tier applies.
    pub above_tokens: i64,
    /// Its prices.
    #[serde(flatten)]
    pub rates: RatesJson,
}

/// Per-token prices as USD per million tokens; a missing cache price (`null`) means cache
/// tokens are charged as input.
#[derive(Debug, Serialize)]
pub struct RatesJson {
    /// Input tokens.
    pub input_usd_per_mtok: String,
    /// Output tokens.
    pub output_usd_per_mtok: String,
    /// Prompt-cache writes.
    pub cache_write_usd_per_mtok: Option<String>,
    /// Prompt-cache reads.
    pub cache_read_usd_per_mtok: Option<String>,
}

impl From<&Rates> for RatesJson {
    fn from(r: &Rates) -> Self {
        use super::prices::per_million;
        RatesJson {
            input_usd_per_mtok: per_million(r.input),
            output_usd_per_mtok: per_million(r.output),
            cache_write_usd_per_mtok: r.cache_write.map(per_million),
            cache_read_usd_per_mtok: r.cache_read.map(per_million),
        }
    }
}

impl From<&UsageSummary> for UsageRowJson {
    fn from(r: &UsageSummary) -> Self {
        UsageRowJson {
            key: r.key.clone(),
            input: r.input,
            output: r.output,
            cache_read: r.cache_read,
            cache_write: r.cache_write,
            total: r.total,
            requests: r.requests,
            records: r.records,
            cost: None,
        }
    }
}

/// `audit`: one row of the trail.
#[derive(Debug, Serialize)]
pub struct AuditRowJson {
    /// Position in the chain, from 1 without gaps.
    pub seq: i64,
    /// When it happened.
    pub at: String,
    /// `at` in epoch milliseconds.
    pub at_ms: Millis,
    /// The stable action name (`acquire`, `release`, `deny`, …).
    pub action: String,
    /// The agent concerned, if any.
    pub agent: Option<String>,
    /// The provider concerned, if any.
    pub provider: Option<String>,
    /// The account concerned, if any.
    pub account: Option<String>,
    /// The lease concerned, if any.
    pub lease_id: Option<String>,
    /// Action-specific facts, as a JSON object (never a secret).
    pub detail: serde_json::Value,
    /// The row's chain MAC (hex).
    pub hash: String,
}

impl From<&AuditEntry> for AuditRowJson {
    fn from(e: &AuditEntry) -> Self {
        AuditRowJson {
            seq: e.seq,
            at: time(e.at_ms),
            at_ms: e.at_ms,
            action: e.action.clone(),
            agent: e.agent.clone(),
            provider: e.provider.clone(),
            account: e.account.clone(),
            lease_id: e.lease_id.clone(),
            detail: serde_json::from_str(&e.detail)
                .unwrap_or_else(|_| serde_json::Value::String(e.detail.clone())),
            hash: e.hash.clone(),
        }
    }
}

/// `audit verify`: what the walk of the chain found.
#[derive(Debug, Serialize)]
pub struct VerifyJson {
    /// Rows checked before stopping.
    pub rows: i64,
    /// Whether the whole chain is intact.
    pub ok: bool,
    /// The first bad row's sequence number, if any.
    pub first_bad_seq: Option<i64>,
    /// What is wrong with it.
    pub problem: Option<String>,
    /// The first keyed row; rows before it are the legacy SHA-256 chain.
    pub keyed_from: Option<i64>,
}

impl From<&VerifyReport> for VerifyJson {
    fn from(r: &VerifyReport) -> Self {
        VerifyJson {
            rows: r.rows,
            ok: r.ok,
            first_bad_seq: r.first_bad_seq,
            problem: r.problem.clone(),
            keyed_from: r.keyed_from,
        }
    }
}

/// `audit anchor`: the trail's head, to keep elsewhere.
#[derive(Debug, Serialize)]
pub struct AnchorJson {
    /// The last row's sequence number.
    pub seq: i64,
    /// The last row's MAC (hex).
    pub mac: String,
    /// Both as `SEQ:MAC`, what `audit verify --anchor` takes.
    pub anchor: String,
}

impl From<&Anchor> for AnchorJson {
    fn from(a: &Anchor) -> Self {
        AnchorJson {
            seq: a.seq,
            mac: a.mac.clone(),
            anchor: a.to_string(),
        }
    }
}

/// `cleanup` (and each pass of `daemon`): what was reclaimed.
#[derive(Debug, Serialize)]
pub struct CleanupJson {
    /// Leases whose TTL had run out.
    pub expired: u64,
    /// Leases with no heartbeat for the idle time.
    pub idle: u64,
    /// Tokens returned to the windows.
    pub tokens_returned: i64,
    /// The leases reclaimed.
    pub leases: Vec<LeaseId>,
}

impl From<&CleanupReport> for CleanupJson {
    fn from(r: &CleanupReport) -> Self {
        CleanupJson {
            expired: r.expired,
            idle: r.idle,
            tokens_returned: r.tokens_returned,
            leases: r.leases.clone(),
        }
    }
}

/// `daemon --json`: one line on stderr per cleanup pass.
#[derive(Debug, Serialize)]
pub struct DaemonCleanupJson {
    /// When the pass ran.
    pub at: String,
    /// `at` in epoch milliseconds.
    pub at_ms: Millis,
    /// What it reclaimed.
    pub cleanup: CleanupJson,
}

/// `doctor`: one check.
#[derive(Debug, Serialize)]
pub struct CheckJson {
    /// What was checked (`schema`, `integrity`, `permissions <path>`, …).
    pub check: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// `export codex`: what was written.
#[derive(Debug, Serialize)]
pub struct ExportJson {
    /// The `auth.json` written.
    pub path: PathBuf,
    /// Whether the refresh token went with it (Codex refreshes it from now on).
    pub handed_over: bool,
    /// Whether the ledger still refreshes the credential.
    pub refreshable_here: bool,
    /// When the exported access token expires, if it does.
    pub expires_at: Option<String>,
    /// `expires_at` in epoch milliseconds.
    pub expires_at_ms: Option<Millis>,
}

impl From<&CodexExport> for ExportJson {
    fn from(e: &CodexExport) -> Self {
        ExportJson {
            path: e.path.clone(),
            handed_over: e.handed_over,
            refreshable_here: e.refreshable_here,
            expires_at: opt_time(e.expires_at),
            expires_at_ms: e.expires_at,
        }
    }
}

/// `key rotate`: what the rotation did.
#[derive(Debug, Serialize)]
pub struct KeyRotationJson {
    /// How many credentials were re-encrypted.
    pub credentials: usize,
    /// The id of the new key.
    pub key_id: String,
    /// The ledger's new key file (`null` when the caller holds the key).
    pub key_file: Option<PathBuf>,
}

impl From<&KeyRotation> for KeyRotationJson {
    fn from(r: &KeyRotation) -> Self {
        KeyRotationJson {
            credentials: r.credentials,
            key_id: r.key_id.clone(),
            key_file: r.key_file.clone(),
        }
    }
}

/// `demo`: how the tour went.
#[derive(Debug, Serialize)]
pub struct DemoJson {
    /// Whether the tour's audit trail verified.
    pub audit_intact: bool,
    /// The kept ledger file (`--keep`), else `null`.
    pub kept: Option<PathBuf>,
    /// The kept home (ledger and key), else `null`.
    pub kept_home: Option<PathBuf>,
    /// The tour's lines, as printed without `--json`.
    pub tour: Vec<String>,
}

/// What limit refused, in an error's `denial`.
#[derive(Debug, Serialize)]
pub struct DenyReasonJson {
    /// `budget`, `concurrency`, `requests_per_minute` or `tokens_per_minute`.
    pub limit: &'static str,
    /// For `budget`: which window (`day`, `5h`, `week`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowKind>,
}

/// A refusal, in an error's `denial`: everything a caller needs to decide what to do next.
#[derive(Debug, Serialize)]
pub struct DenialJson {
    /// Which limit refused.
    pub reason: DenyReasonJson,
    /// Whose limit.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// What was asked (`null` for a fair share).
    pub asked: Option<i64>,
    /// What is available now (tokens, slots or requests, per the reason).
    pub available: i64,
    /// The limit in force.
    pub limit: i64,
    /// When the limiting window resets or the first slot frees, if known.
    pub resets_at: Option<String>,
    /// `resets_at` in epoch milliseconds.
    pub resets_at_ms: Option<Millis>,
}

impl From<&Denial> for DenialJson {
    fn from(d: &Denial) -> Self {
        let (limit, window) = match d.reason {
            DenyReason::Budget(w) => ("budget", Some(w)),
            DenyReason::Concurrency => ("concurrency", None),
            DenyReason::RequestsPerMinute => ("requests_per_minute", None),
            DenyReason::TokensPerMinute => ("tokens_per_minute", None),
        };
        DenialJson {
            reason: DenyReasonJson { limit, window },
            provider: d.provider,
            account: d.account.clone(),
            asked: d.asked,
            available: d.available,
            limit: d.limit,
            resets_at: opt_time(d.resets_at),
            resets_at_ms: d.resets_at,
        }
    }
}

/// Any error with `--json`: one object on stderr.
#[derive(Debug, Serialize)]
pub struct ErrorJson<'a> {
    /// The one-line message.
    pub error: &'a str,
    /// The exit code the process ends with.
    pub exit_code: i32,
    /// For a quota refusal: what refused and when it frees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial: Option<DenialJson>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(time(1_795_428_000_000), "2026-11-23T10:00:00.000Z");
        assert_eq!(time(1_795_428_000_042), "2026-11-23T10:00:00.042Z");
    }
}
