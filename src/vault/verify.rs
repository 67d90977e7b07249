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
/// Either error names the URL asked and the cause (`connection refused`, `401 Unauthorized`).
pub fn verify_api_key(provider: Provider, base_url: &str, key: &Secret) -> Result<(), VaultError> {
    let url = format!("{}/v1/models", base_url.trim_end_matches('/'));
    let http = |reason: String| VaultError::Http {
        provider,
        url: url.clone(),
        reason,
    };
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| http(cause(&e)))?;
    let request = match provider {
        Provider::Claude => client
            .get(&url)
            .header("x-api-key", key.expose_secret())
            .header("anthropic-version", "2023-06-01"),
        Provider::Openai => client.get(&url).bearer_auth(key.expose_secret()),
    };
    let response = request.send().map_err(|e| http(cause(&e)))?;
    let status = response.status();
    let said = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_string();
    if status.is_success() {
        Ok(())
    } else if status.as_u16() == 401 || status.as_u16() == 403 {
        Err(VaultError::Rejected {
            provider,
            url,
            status: said,
        })
    } else {
        Err(http(format!("it answered {said}")))
    }
}

/// Why a request failed, in a few words: the innermost error of the chain (`connection
/// refused`, `operation timed out`), as reqwest's own message says only "error sending
/// request". No error in the chain carries the request's headers, so the key is not in it.
fn cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer within 20 s".into();
    }
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let text = inner.to_string();
    // `Connection refused (os error 111)` → `connection refused`.
    let text = match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "the request failed".into(),
    }
}
