//! Building the oauth2 client and its HTTP client from configuration.

use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthUrl, Client, ClientId, DeviceAuthorizationUrl, EndpointNotSet, EndpointSet,
    ExtraTokenFields, StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::OAuthError;
use crate::config_file::OAuthConfig;
use crate::types::Provider;

/// The OpenID Connect field a token answer may carry beside RFC 6749's: the `id_token`
/// (Codex's ChatGPT `auth.json` needs it). A basic response would drop it.
#[derive(Clone, Default, Deserialize, Serialize)]
pub struct OidcFields {
    /// The id token (a JWT), if the server issued one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for OidcFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcFields")
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl ExtraTokenFields for OidcFields {}

/// A token answer with its OpenID field.
pub type OidcTokenResponse = StandardTokenResponse<OidcFields, BasicTokenType>;

/// A public client with its token endpoint set (and maybe others).
pub type TokenClient<A = EndpointNotSet, D = EndpointNotSet> = Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    A,
    D,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn key(provider: Provider, name: &str) -> String {
    format!("providers.{provider}.oauth.{name}")
}

fn required<'a>(
    provider: Provider,
    value: &'a Option<String>,
    name: &str,
) -> Result<&'a str, OAuthError> {
    value
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| OAuthError::NotConfigured {
            key: key(provider, name),
        })
}

fn bad(provider: Provider, name: &str, e: impl std::fmt::Display) -> OAuthError {
    OAuthError::BadUrl {
        key: key(provider, name),
        reason: e.to_string(),
    }
}

/// A client for refresh: client id and token endpoint.
pub fn token_client(cfg: &OAuthConfig, provider: Provider) -> Result<TokenClient, OAuthError> {
    let client_id = required(provider, &cfg.client_id, "client_id")?;
    let token_url = required(provider, &cfg.token_url, "token_url")?;
    Ok(
        Client::new(ClientId::new(client_id.to_string())).set_token_uri(
            TokenUrl::new(token_url.to_string()).map_err(|e| bad(provider, "token_url", e))?,
        ),
    )
}

/// A client for the authorization-code flow.
pub fn code_client(
    cfg: &OAuthConfig,
    provider: Provider,
) -> Result<TokenClient<EndpointSet>, OAuthError> {
    let authorize_url = required(provider, &cfg.authorize_url, "authorize_url")?;
    Ok(token_client(cfg, provider)?.set_auth_uri(
        AuthUrl::new(authorize_url.to_string()).map_err(|e| bad(provider, "authorize_url", e))?,
    ))
}

/// A client for the device grant.
pub fn device_client(
    cfg: &OAuthConfig,
    provider: Provider,
) -> Result<TokenClient<EndpointNotSet, EndpointSet>, OAuthError> {
    let url = required(
        provider,
        &cfg.device_authorization_url,
        "device_authorization_url",
    )?;
    Ok(token_client(cfg, provider)?.set_device_authorization_url(
        DeviceAuthorizationUrl::new(url.to_string())
            .map_err(|e| bad(provider, "device_authorization_url", e))?,
    ))
}

/// The HTTP client for token requests. It never follows redirects (a redirected token request
/// could carry a code or refresh token to another host) and gives up after 9 seconds, so three
/// attempts fit inside one 30-second refresh claim.
pub fn http(provider: Provider) -> Result<reqwest::blocking::Client, OAuthError> {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(9))
        .build()
        .map_err(|e| OAuthError::Network {
            provider,
            reason: e.to_string(),
        })
}
