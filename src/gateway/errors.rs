//! The error answers the gateway itself gives, in each provider's own format.
//!
//! An agent must be able to tell a refusal from the gateway apart from nothing: it sees the same
//! status codes and bodies the real API would send, so its own retry logic does the right
//! thing. Anthropic's shape is `{"type":"error","error":{"type":…,"message":…}}` with the
//! status each type goes with (401 `authentication_error`, 429 `rate_limit_error`, 5xx
//! `api_error`); OpenAI's is `{"error":{"message":…,"type":…,"param":null,"code":…}}` (401
//! `invalid_api_key`, 429 `rate_limit_exceeded` — which clients retry — or
//! `insufficient_quota` — which Codex treats as final).

use serde_json::json;

use super::usage::Api;

/// Why the gateway refuses a request without forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The lease token is unknown, or its lease has ended: 401.
    UnknownToken,
    /// The budget or a window is used up until a reset `retry_after_secs` from now: 429 with
    /// `retry-after`, the form clients wait out and retry.
    RateLimited {
        /// Seconds until the reset.
        retry_after_secs: u64,
    },
    /// The budget is used up with no reset in sight: 429, the form clients do not retry
    /// (OpenAI `insufficient_quota`; Anthropic has only `rate_limit_error`).
    QuotaExhausted,
    /// The ledger cannot record usage (storage unwritable): 503, since an unmetered request is
    /// never forwarded.
    Unmeterable,
}

/// A complete error response: status, `retry-after` if any, and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The HTTP status code.
    pub status: u16,
    /// The `retry-after` header value in seconds, when the client should come back.
    pub retry_after_secs: Option<u64>,
    /// The body, sent with [`ErrorReply::CONTENT_TYPE`].
    pub body: String,
}

impl ErrorReply {
    /// The `Content-Type` of every error body.
    pub const CONTENT_TYPE: &'static str = "application/json";

    /// The answer to `refusal` for a request to `api`.
    pub fn refuse(api: Api, refusal: Refusal) -> ErrorReply {
        match api {
            Api::AnthropicMessages => anthropic(refusal),
            _ => openai(refusal),
        }
    }

    /// An Anthropic error body: `error_type` is one of the API's types
    /// (`authentication_error`, `rate_limit_error`, `api_error`, `overloaded_error`, …).
    pub fn anthropic(status: u16, error_type: &str, message: &str) -> ErrorReply {
        let body = json!({
            "type": "error",
            "error": { "type": error_type, "message": message },
        });
        ErrorReply {
            status,
            retry_after_secs: None,
            body: body.to_string(),
        }
    }

    /// An OpenAI error body; `code` is `null` when `None`.
    pub fn openai(status: u16, error_type: &str, code: Option<&str>, message: &str) -> ErrorReply {
        let body = json!({
            "error": {
                "message": message,
                "type": error_type,
                "param": null,
                "code": code,
            },
        });
        ErrorReply {
            status,
            retry_after_secs: None,
            body: body.to_string(),
        }
    }

    fn retry_after(mut self, secs: Option<u64>) -> ErrorReply {
        self.retry_after_secs = secs;
        self
    }
}

const BAD_TOKEN: &str = "authledger: this lease token is unknown or its lease has ended; \
                         start the agent again with `authledger run`";
const RATE: &str = "authledger: this lease's budget is used up until its window resets";
const QUOTA: &str = "authledger: this lease's budget is used up";
const UNMETERABLE: &str = "authledger: usage cannot be recorded right now (ledger storage \
                           unavailable), so the request was not sent";

fn anthropic(refusal: Refusal) -> ErrorReply {
    match refusal {
        Refusal::UnknownToken => ErrorReply::anthropic(401, "authentication_error", BAD_TOKEN),
        Refusal::RateLimited { retry_after_secs } => {
            ErrorReply::anthropic(429, "rate_limit_error", RATE).retry_after(Some(retry_after_secs))
        }
        Refusal::QuotaExhausted => ErrorReply::anthropic(429, "rate_limit_error", QUOTA),
        Refusal::Unmeterable => ErrorReply::anthropic(503, "api_error", UNMETERABLE),
    }
}

fn openai(refusal: Refusal) -> ErrorReply {
    match refusal {
        Refusal::UnknownToken => ErrorReply::openai(
            401,
            "invalid_request_error",
            Some("invalid_api_key"),
            BAD_TOKEN,
        ),
        // OpenAI names the exhausted limit in `type` ("tokens" or "requests").
        Refusal::RateLimited { retry_after_secs } => {
            ErrorReply::openai(429, "tokens", Some("rate_limit_exceeded"), RATE)
                .retry_after(Some(retry_after_secs))
        }
        Refusal::QuotaExhausted => {
            ErrorReply::openai(429, "insufficient_quota", Some("insufficient_quota"), QUOTA)
        }
        Refusal::Unmeterable => ErrorReply::openai(503, "server_error", None, UNMETERABLE),
    }
}
