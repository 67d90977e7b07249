//! One refresh request, classified so the caller knows whether it may try again.

use std::time::Duration;

use oauth2::basic::BasicErrorResponseType;
use oauth2::{RefreshToken, RequestTokenError};

use super::client::{http, token_client};
use super::flow::{TokenSet, error_chain};
use crate::config_file::OAuthConfig;
use crate::types::Provider;
use crate::vault::Secret;

/// How a refresh ended.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// New tokens.
    Refreshed(TokenSet),
    /// The refresh token is no longer valid (`invalid_grant`): a new login is needed.
    InvalidGrant(Option<String>),
    /// The server refused for another reason (`invalid_client`, …): a configuration problem.
    Refused {
        /// The error code.
        error: String,
        /// Its description.
        description: Option<String>,
    },
    /// The request may or may not have reached the server (timeout, connection lost, garbled
    /// answer). The refresh token may already be rotated: it must not be replayed blindly.
    Ambiguous(String),
    /// The request surely did not take effect (connection refused, server error); retrying is
    /// safe.
    Transient(String),
}

/// Exchanges a refresh token once, retrying only failures that surely did not reach the
/// server, at most `attempts` times with doubling pauses from 100 ms.
pub fn refresh(
    cfg: &OAuthConfig,
    provider: Provider,
    token: &Secret,
    attempts: u32,
) -> RefreshOutcome {
    let client = match token_client(cfg, provider) {
        Ok(c) => c,
        Err(e) => {
            return RefreshOutcome::Refused {
                error: "not_configured".into(),
                description: Some(e.to_string()),
            };
        }
    };
    let http = match http(provider) {
        Ok(h) => h,
        Err(e) => return RefreshOutcome::Transient(e.to_string()),
    };
    let mut pause = Duration::from_millis(100);
    let mut last = RefreshOutcome::Transient("no attempt made".into());
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(pause);
            pause *= 2;
        }
        let refresh_token = RefreshToken::new(token.expose_secret().to_string());
        let mut request = client.exchange_refresh_token(&refresh_token);
        for s in &cfg.scopes {
            request = request.add_scope(oauth2::Scope::new(s.clone()));
        }
        last = match request.request(&http) {
            Ok(r) => return RefreshOutcome::Refreshed(TokenSet::from_response(&r)),
            Err(RequestTokenError::ServerResponse(r)) => {
                return match r.error() {
                    BasicErrorResponseType::InvalidGrant => {
                        RefreshOutcome::InvalidGrant(r.error_description().cloned())
                    }
                    other => RefreshOutcome::Refused {
                        error: other.as_ref().to_string(),
                        description: r.error_description().cloned(),
                    },
                };
            }
            Err(RequestTokenError::Request(e)) => {
                let not_sent = match &e {
                    oauth2::HttpClientError::Reqwest(re) => re.is_connect(),
                    _ => false,
                };
                let reason = error_chain(&e);
                if not_sent {
                    RefreshOutcome::Transient(reason)
                } else {
                    return RefreshOutcome::Ambiguous(reason);
                }
            }
            Err(RequestTokenError::Parse(e, _)) => {
                return RefreshOutcome::Ambiguous(format!(
                    "unreadable token response ({})",
                    e.inner()
                ));
            }
            // oauth2 reports here a reply it could not read as a token response (an empty
            // error body, or a 200 without JSON): the server may have rotated the token.
            Err(RequestTokenError::Other(s)) => return RefreshOutcome::Ambiguous(s),
        };
    }
    last
}
