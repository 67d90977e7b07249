//! The authorization-code flow with PKCE, and the device grant.

use std::time::Duration;

use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardDeviceAuthorizationResponse, TokenResponse,
};

use super::OAuthError;
use super::client::{code_client, device_client, http};
use crate::config_file::OAuthConfig;
use crate::types::Provider;
use crate::vault::Secret;

/// What a token endpoint gave: RFC 6749 section 5.1, with `refresh_token`, `expires_in` and
/// `scope` optional.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: Secret,
    /// The refresh token, if the server issued one.
    pub refresh_token: Option<Secret>,
    /// Seconds until the access token expires, if the server said.
    pub expires_in: Option<Duration>,
    /// Granted scopes, if the server said.
    pub scopes: Option<Vec<String>>,
    /// The OpenID id token, if the server issued one.
    pub id_token: Option<Secret>,
}

impl TokenSet {
    pub(crate) fn from_response(r: &super::client::OidcTokenResponse) -> TokenSet {
        TokenSet {
            access_token: Secret::new(r.access_token().secret().clone()),
            refresh_token: r.refresh_token().map(|t| Secret::new(t.secret().clone())),
            expires_in: r.expires_in(),
            scopes: r
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str().to_string()).collect()),
            id_token: r.extra_fields().id_token.clone().map(Secret::new),
        }
    }
}

/// A login in progress: the URL to open, and what the callback must match.
pub struct AuthorizationRequest {
    /// The URL to open in a browser.
    pub url: url::Url,
    state: CsrfToken,
    verifier: PkceCodeVerifier,
    redirect: RedirectUrl,
}

impl AuthorizationRequest {
    /// The state the callback must carry.
    pub fn state(&self) -> &str {
        self.state.secret()
    }
}

impl std::fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Whether a token may be sent to `url`: https, or plain http to this machine only (a local
/// proxy or a test server); never, for Claude, Anthropic's own endpoints. The same check runs
/// at login and before every refresh.
pub fn check_endpoint(provider: Provider, key: &str, url: &str) -> Result<(), OAuthError> {
    let parsed = url::Url::parse(url).map_err(|e| OAuthError::BadUrl {
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        return Err(OAuthError::BadUrl {
            key: key.to_string(),
            reason: "tokens go only to https endpoints (plain http only to 127.0.0.1)".into(),
        });
    }
    check_allowed(
        &OAuthConfig {
            token_url: Some(url.to_string()),
            ..OAuthConfig::default()
        },
        provider,
    )
}

/// Every configured endpoint passes [`check_endpoint`].
fn check_endpoints(cfg: &OAuthConfig, provider: Provider) -> Result<(), OAuthError> {
    check_allowed(cfg, provider)?;
    for (name, url) in [
        ("authorize_url", &cfg.authorize_url),
        ("token_url", &cfg.token_url),
        ("device_authorization_url", &cfg.device_authorization_url),
    ] {
        if let Some(url) = url.as_deref().filter(|u| !u.trim().is_empty()) {
            check_endpoint(provider, &format!("providers.{provider}.oauth.{name}"), url)?;
        }
    }
    Ok(())
}

/// Refuses the generic flow against Anthropic's own endpoints: Claude subscription tokens are
/// accepted only from Claude Code itself.
fn check_allowed(cfg: &OAuthConfig, provider: Provider) -> Result<(), OAuthError> {
    let anthropic = |u: &Option<String>| {
        u.as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .is_some_and(|h| {
                ["anthropic.com", "claude.ai", "claude.com"]
                    .iter()
                    .any(|d| h == *d || h.ends_with(&format!(".{d}")))
            })
    };
    if provider == Provider::Claude
        && (anthropic(&cfg.authorize_url)
            || anthropic(&cfg.token_url)
            || anthropic(&cfg.device_authorization_url))
    {
        return Err(OAuthError::NotAllowed(
            "Claude subscription tokens come only from Claude Code: run `claude setup-token` and store the token with `authledger login claude --setup-token`, or use --from claude-code".into(),
        ));
    }
    Ok(())
}

/// Starts a login: a fresh PKCE verifier (S256) and state, and the URL to open.
pub fn begin(
    cfg: &OAuthConfig,
    provider: Provider,
    redirect_uri: &str,
) -> Result<AuthorizationRequest, OAuthError> {
    check_endpoints(cfg, provider)?;
    let redirect = RedirectUrl::new(redirect_uri.to_string()).map_err(|e| OAuthError::BadUrl {
        key: "redirect_uri".into(),
        reason: e.to_string(),
    })?;
    let client = code_client(cfg, provider)?.set_redirect_uri(redirect.clone());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for s in &cfg.scopes {
        request = request.add_scope(Scope::new(s.clone()));
    }
    for (k, v) in &cfg.extra_params {
        request = request.add_extra_param(k.clone(), v.clone());
    }
    let (url, state) = request.url();
    Ok(AuthorizationRequest {
        url,
        state,
        verifier,
        redirect,
    })
}

fn token_error<RE, T>(
    provider: Provider,
    e: RequestTokenError<RE, oauth2::StandardErrorResponse<T>>,
) -> OAuthError
where
    RE: std::error::Error + 'static,
    T: oauth2::ErrorResponseType + AsRef<str> + std::fmt::Display + 'static,
{
    match e {
        RequestTokenError::ServerResponse(r) => OAuthError::TokenRefused {
            error: r.error().as_ref().to_string(),
            description: r.error_description().cloned(),
        },
        RequestTokenError::Request(e) => OAuthError::Network {
            provider,
            reason: error_chain(&e),
        },
        RequestTokenError::Parse(e, _) => OAuthError::Network {
            provider,
            reason: format!("unreadable token response ({})", e.inner()),
        },
        RequestTokenError::Other(s) => OAuthError::Network {
            provider,
            reason: s,
        },
    }
}

/// An error and its sources on one line (reqwest hides the useful part in the source).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Finishes a login: checks the callback, then exchanges the code (with the PKCE verifier) at
/// the token endpoint.
pub fn exchange(
    cfg: &OAuthConfig,
    provider: Provider,
    request: AuthorizationRequest,
    callback: &super::CallbackParams,
) -> Result<TokenSet, OAuthError> {
    // The state is checked first: a forged callback gets nothing, not even an error from the
    // authorization server.
    if callback.state.as_deref() != Some(request.state.secret().as_str()) {
        return Err(OAuthError::StateMismatch);
    }
    if let Some(error) = &callback.error {
        return Err(OAuthError::Denied {
            error: error.clone(),
            description: callback.error_description.clone(),
        });
    }
    let code = callback.code.clone().ok_or(OAuthError::NoCode)?;
    let client = code_client(cfg, provider)?.set_redirect_uri(request.redirect.clone());
    let http = http(provider)?;
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(request.verifier)
        .request(&http)
        .map_err(|e| token_error(provider, e))?;
    Ok(TokenSet::from_response(&response))
}

/// The device grant (RFC 8628): shows the user code via `show`, then polls at the server's
/// interval (slowing down when told to) until the user approves, refuses, or the code expires.
pub fn device_login(
    cfg: &OAuthConfig,
    provider: Provider,
    show: impl FnOnce(&str, &str, Option<&str>),
) -> Result<TokenSet, OAuthError> {
    device_login_with(cfg, provider, show, std::thread::sleep)
}

/// [`device_login`] with the pause between polls given: tests pass one that records the
/// intervals instead of waiting them out.
pub fn device_login_with(
    cfg: &OAuthConfig,
    provider: Provider,
    show: impl FnOnce(&str, &str, Option<&str>),
    sleep: impl Fn(Duration),
) -> Result<TokenSet, OAuthError> {
    check_endpoints(cfg, provider)?;
    let client = device_client(cfg, provider)?;
    let http = http(provider)?;
    let mut request = client.exchange_device_code();
    for s in &cfg.scopes {
        request = request.add_scope(Scope::new(s.clone()));
    }
    let details: StandardDeviceAuthorizationResponse = request
        .request(&http)
        .map_err(|e| token_error(provider, e))?;
    show(
        details.verification_uri().as_str(),
        details.user_code().secret(),
        details
            .verification_uri_complete()
            .map(|u| u.secret().as_str()),
    );
    let response = client
        .exchange_device_access_token(&details)
        .request(&http, sleep, None)
        .map_err(|e| token_error(provider, e))?;
    Ok(TokenSet::from_response(&response))
}
