//! OAuth 2.0 for providers whose terms allow a registered client: authorization code with
//! PKCE (S256) and a loopback callback, the device grant for headless machines, and refresh.
//!
//! Endpoints, client id, scopes and redirect port come from `config.toml`; no client id is
//! embedded. Claude subscription tokens are not obtained here: they come only from Claude Code
//! (`claude setup-token`, or its credentials file).

mod access;
mod callback;
mod client;
mod flow;
mod refresh;

pub(crate) use access::ms;
pub use access::{RefreshPolicy, Refresher};
pub use callback::{CallbackParams, Loopback, parse_pasted};
pub use flow::{
    AuthorizationRequest, TokenSet, begin, check_endpoint, device_login, device_login_with,
    exchange,
};
pub use refresh::{RefreshOutcome, refresh};

use crate::store::StoreError;
use crate::types::Provider;
use crate::vault::VaultError;

/// Why an OAuth step failed. Never carries a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// A setting the flow needs is missing from `config.toml`.
    #[error("{key} is not set in config.toml")]
    NotConfigured {
        /// The missing key, e.g. `providers.openai.oauth.client_id`.
        key: String,
    },
    /// A configured URL does not parse.
    #[error("{key} is not a valid URL: {reason}")]
    BadUrl {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The provider's terms do not allow this flow.
    #[error("{0}")]
    NotAllowed(String),
    /// The authorization server sent the user back with an error (e.g. `access_denied`).
    #[error("authorization refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        /// The `error` parameter.
        error: String,
        /// The `error_description` parameter.
        description: Option<String>,
    },
    /// The callback's `state` is not the one we sent: possibly a forged request.
    #[error("the callback's state does not match the request: refusing it (possible CSRF)")]
    StateMismatch,
    /// The callback carried no code.
    #[error("the callback carried no authorization code")]
    NoCode,
    /// Nobody completed the login in time.
    #[error("no authorization arrived within {0}")]
    Timeout(String),
    /// The token endpoint refused.
    #[error("the token endpoint refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TokenRefused {
        /// The standard error code (`invalid_grant`, `invalid_request`, …).
        error: String,
        /// Its description.
        description: Option<String>,
    },
    /// The token endpoint could not be reached or answered nonsense.
    #[error("cannot reach the {provider} token endpoint: {reason}")]
    Network {
        /// Which provider.
        provider: Provider,
        /// What went wrong.
        reason: String,
    },
    /// The loopback callback server could not start.
    #[error("cannot listen for the OAuth callback on 127.0.0.1:{port}: {source}")]
    Callback {
        /// The port.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
    /// The ledger could not be read or written while refreshing.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The credential being refreshed is missing, cannot be opened, or cannot be used.
    #[error(transparent)]
    Vault(#[from] VaultError),
}
