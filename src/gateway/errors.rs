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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(r: &ErrorReply) -> Value {
        serde_json::from_str(&r.body).expect("JSON")
    }

    #[test]
    fn anthropic_refusals_use_anthropics_error_shape_and_status() {
        let cases = [
            (Refusal::UnknownToken, 401, "authentication_error", None),
            (
                Refusal::RateLimited {
                    retry_after_secs: 3600,
                },
                429,
                "rate_limit_error",
                Some(3600),
            ),
            (Refusal::QuotaExhausted, 429, "rate_limit_error", None),
            (Refusal::Unmeterable, 503, "api_error", None),
        ];
        for (refusal, status, kind, retry) in cases {
            let r = ErrorReply::refuse(Api::AnthropicMessages, refusal);
            assert_eq!(
                (r.status, r.retry_after_secs),
                (status, retry),
                "{refusal:?}"
            );
            let b = body(&r);
            assert_eq!(b["type"], "error");
            assert_eq!(b["error"]["type"], kind);
            assert!(
                b["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
            assert_eq!(b.as_object().map(|o| o.len()), Some(2));
        }
    }

    #[test]
    fn openai_refusals_use_openais_error_shape_and_status() {
        let cases = [
            (
                Refusal::UnknownToken,
                401,
                "invalid_request_error",
                json!("invalid_api_key"),
            ),
            (
                Refusal::RateLimited {
                    retry_after_secs: 60,
                },
                429,
                "tokens",
                json!("rate_limit_exceeded"),
            ),
            (
                Refusal::QuotaExhausted,
                429,
                "insufficient_quota",
                json!("insufficient_quota"),
            ),
            (Refusal::Unmeterable, 503, "server_error", Value::Null),
        ];
        for api in [Api::OpenAiResponses, Api::OpenAiChatCompletions] {
            for (refusal, status, kind, code) in cases.clone() {
                let r = ErrorReply::refuse(api, refusal);
                assert_eq!(r.status, status, "{refusal:?}");
                let b = body(&r);
                let e = &b["error"];
                assert_eq!((&e["type"], &e["code"]), (&json!(kind), &code));
                assert_eq!(e["param"], Value::Null);
                assert!(e.as_object().is_some_and(|o| o.contains_key("param")));
                assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
        }
        let r = ErrorReply::refuse(
            Api::OpenAiResponses,
            Refusal::RateLimited {
                retry_after_secs: 60,
            },
        );
        assert_eq!(r.retry_after_secs, Some(60));
    }

    #[test]
    fn messages_are_escaped_as_json() {
        let r = ErrorReply::anthropic(400, "invalid_request_error", "a \"quoted\"\nline");
        assert_eq!(body(&r)["error"]["message"], "a \"quoted\"\nline");
        let r = ErrorReply::openai(400, "invalid_request_error", None, "back\\slash");
        assert_eq!(body(&r)["error"]["message"], "back\\slash");
    }
}
