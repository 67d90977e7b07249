//! Where a granted request goes and with which credential: the one place that turns a
//! [`Grant`] into an upstream URL and headers, for HTTP and WebSocket requests alike.

use hyper::header::{self, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::authority::{Grant, UpstreamAuth};
use crate::types::Provider;

/// The beta flag Anthropic requires with an OAuth (subscription) access token.
const OAUTH_BETA: &str = "oauth-2025-04-20";

impl Grant {
    /// The upstream URL for the agent's path and query: the grant's base URL with the path
    /// appended (a base path such as `/proxy` kept in front), after removing the prefix the
    /// upstream does not use.
    pub(crate) fn url_for(&self, path_and_query: &str) -> Result<Url, url::ParseError> {
        let tail = match self.strip_prefix {
            Some(prefix) => match path_and_query.strip_prefix(prefix) {
                Some(rest) if rest.is_empty() || rest.starts_with(['/', '?']) => rest,
                _ => path_and_query,
            },
            None => path_and_query,
        };
        let mut url = self.upstream.as_str().trim_end_matches('/').to_string();
        if !tail.starts_with('/') {
            url.push('/');
        }
        url.push_str(tail);
        Url::parse(&url)
    }

    /// Puts the real credential where the provider expects it, and the grant's default
    /// headers the agent did not send.
    pub(crate) fn authorize(
        &self,
        headers: &mut HeaderMap,
    ) -> Result<(), header::InvalidHeaderValue> {
        match (&self.credential, self.provider) {
            (UpstreamAuth::ApiKey(key), Provider::Claude) => {
                let mut value = HeaderValue::from_str(key.expose_secret())?;
                value.set_sensitive(true);
                headers.insert("x-api-key", value);
            }
            (UpstreamAuth::ApiKey(token), _) | (UpstreamAuth::OAuth(token), _) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
                let oauth_to_anthropic = matches!(self.credential, UpstreamAuth::OAuth(_))
                    && self.provider == Provider::Claude;
                if oauth_to_anthropic {
                    add_oauth_beta(headers)?;
                }
            }
        }
        for (name, value) in &self.default_headers {
            let name = HeaderName::from_static(name);
            if !headers.contains_key(&name) {
                headers.insert(name, HeaderValue::from_str(value)?);
            }
        }
        Ok(())
    }
}

/// Keeps the agent's `anthropic-beta` flags and adds the OAuth one if it is missing.
fn add_oauth_beta(headers: &mut HeaderMap) -> Result<(), header::InvalidHeaderValue> {
    let betas: Vec<String> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if betas.iter().any(|b| b == OAUTH_BETA) {
        return Ok(());
    }
    let mut all = betas;
    all.push(OAUTH_BETA.to_string());
    headers.insert("anthropic-beta", HeaderValue::from_str(&all.join(","))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LeaseId;
    use crate::vault::Secret;

    fn grant(base: &str, strip: Option<&'static str>) -> Grant {
        let mut g = Grant::new(
            LeaseId::from_random([1; 10]),
            Provider::Openai,
            Url::parse(base).expect("url"),
            UpstreamAuth::OAuth(Secret::new("tok".into())),
        );
        g.strip_prefix = strip;
        g
    }

    #[test]
    fn the_chatgpt_backend_gets_the_path_without_v1() {
        let g = grant("https://chatgpt.example/backend-api/codex", Some("/v1"));
        let url = g.url_for("/v1/responses?x=1").expect("url");
        assert_eq!(
            url.as_str(),
            "https://chatgpt.example/backend-api/codex/responses?x=1"
        );
        // A path that merely starts with the same letters is left alone.
        let url = g.url_for("/v1x/responses").expect("url");
        assert_eq!(
            url.as_str(),
            "https://chatgpt.example/backend-api/codex/v1x/responses"
        );
    }

    #[test]
    fn a_base_path_is_kept_in_front() {
        let g = grant("http://127.0.0.1:9/proxy/", None);
        let url = g.url_for("/v1/messages?beta=true").expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/proxy/v1/messages?beta=true"
        );
    }

    #[test]
    fn default_headers_never_override_the_agents_own() {
        let mut g = grant("http://127.0.0.1:9", None);
        g.default_headers = vec![("chatgpt-account-id", "acct-ledger".into())];
        let mut sent = HeaderMap::new();
        g.authorize(&mut sent).expect("headers");
        assert_eq!(sent["chatgpt-account-id"], "acct-ledger");
        let mut own = HeaderMap::new();
        own.insert("chatgpt-account-id", HeaderValue::from_static("acct-agent"));
        g.authorize(&mut own).expect("headers");
        assert_eq!(own["chatgpt-account-id"], "acct-agent");
        assert_eq!(own[AUTHORIZATION], "Bearer tok");
    }
}
