//! `login --verify`: ask the provider whether it accepts an API key, without spending tokens.

use std::time::Duration;

use super::VaultError;
use super::secret::Secret;
use crate::types::Provider;

/// The default API base URLs.
pub fn default_base_url(provider: Provider) -> &'static str {
    match provider {
        Provider::Claude => "https://api.anthropic.com",
        Provider::Openai => "https://api.openai.com",
    }
}

/// Lists the provider's models with the key: 2xx accepts it, 401/403 refuse it (exit 4).
/// Redirects are not followed, so a key is never sent anywhere but the configured host.
pub fn verify_api_key(provider: Provider, base_url: &str, key: &Secret) -> Result<(), VaultError> {
    let http = |reason: String| VaultError::Http { provider, reason };
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| http(e.to_string()))?;
    let url = format!("{}/v1/models", base_url.trim_end_matches('/'));
    let request = match provider {
        Provider::Claude => client
            .get(&url)
            .header("x-api-key", key.expose_secret())
            .header("anthropic-version", "2023-06-01"),
        Provider::Openai => client.get(&url).bearer_auth(key.expose_secret()),
    };
    // reqwest's errors name the URL, never the headers.
    let response = request
        .send()
        .map_err(|e| http(e.without_url().to_string()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.as_u16() == 401 || status.as_u16() == 403 {
        Err(VaultError::Rejected {
            provider,
            status: status.as_u16(),
        })
    } else {
        Err(http(format!("{url} answered HTTP {}", status.as_u16())))
    }
}
