//! The parsed `config.toml`: per-provider base URLs and OAuth endpoints. Unknown keys are
//! errors, so a typo never silently falls back to a default. (The options a ledger is opened
//! with are `options.rs`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::types::Provider;

/// The configuration file's contents.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Per provider settings, keyed by provider name.
    #[serde(default)]
    pub providers: Providers,
}

/// The `[providers.*]` tables.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Providers {
    /// `[providers.claude]`.
    pub claude: Option<ProviderConfig>,
    /// `[providers.openai]`.
    pub openai: Option<ProviderConfig>,
}

/// One provider's settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Where its API lives (a gateway or proxy, or the provider itself).
    pub base_url: Option<String>,
    /// Where a ChatGPT login's requests go (OpenAI only): the ChatGPT backend Codex uses with
    /// a ChatGPT plan, `https://chatgpt.com/backend-api/codex` unless set.
    pub chatgpt_base_url: Option<String>,
    /// OAuth endpoints for providers whose terms allow a registered client.
    pub oauth: Option<OAuthConfig>,
}

/// `[providers.*.oauth]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The authorization endpoint.
    pub authorize_url: Option<String>,
    /// The token endpoint.
    pub token_url: Option<String>,
    /// The device authorization endpoint (RFC 8628), for headless machines.
    pub device_authorization_url: Option<String>,
    /// The registered public client id.
    pub client_id: Option<String>,
    /// Scopes to ask for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The loopback port for the redirect (else an ephemeral one).
    pub redirect_port: Option<u16>,
    /// Any other parameters the authorization server requires.
    #[serde(default)]
    pub extra_params: BTreeMap<String, String>,
}

/// What `authledger init` writes when there is no `config.toml`: every key, commented out,
/// with what it does; the file as written changes nothing.
pub const TEMPLATE: &str = r##"# authledger configuration. Every setting is commented out: remove the leading "#" of a
# key (and of its [table] line) to use it. Unknown keys are errors, never silently ignored.
# This file holds no secret, but it says where tokens are sent: keep it writable by you only.

# [providers.claude]
# Where Claude's API lives: a gateway or proxy in front of Anthropic, or Anthropic itself.
# base_url = "https://api.anthropic.com"

# [providers.openai]
# Where OpenAI's API lives (API-key logins).
# base_url = "https://api.openai.com/v1"
# Where a ChatGPT login's requests go (the backend Codex uses with a ChatGPT plan).
# chatgpt_base_url = "https://chatgpt.com/backend-api/codex"

# OAuth login (`authledger login openai --oauth`), for a provider whose terms allow a
# registered client; the same keys exist under [providers.claude.oauth].
# [providers.openai.oauth]
# The authorization endpoint the browser is sent to.
# authorize_url = "https://auth.example.com/oauth/authorize"
# The token endpoint (code exchange and refresh).
# token_url = "https://auth.example.com/oauth/token"
# The device authorization endpoint (RFC 8628), for machines without a browser.
# device_authorization_url = "https://auth.example.com/oauth/device/code"
# The registered public client id.
# client_id = "your-client-id"
# The scopes to ask for.
# scopes = ["openid", "offline_access"]
# The loopback port for the redirect (else any free port).
# redirect_port = 1455
# Any other parameters the authorization server requires.
# extra_params = { audience = "https://api.example.com" }
"##;

impl ConfigFile {
    /// One provider's settings, if configured.
    pub fn provider(&self, p: Provider) -> Option<&ProviderConfig> {
        match p {
            Provider::Claude => self.providers.claude.as_ref(),
            Provider::Openai => self.providers.openai.as_ref(),
        }
    }

    /// The configured base URL of a provider, if any.
    pub fn base_url(&self, p: Provider) -> Option<&str> {
        self.provider(p).and_then(|c| c.base_url.as_deref())
    }

    /// The configured ChatGPT backend URL, if any.
    pub fn chatgpt_base_url(&self, p: Provider) -> Option<&str> {
        self.provider(p).and_then(|c| c.chatgpt_base_url.as_deref())
    }

    /// Parses the text of a config file; `what` names it in errors.
    pub fn parse(what: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let cfg: ConfigFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            ConfigError::Malformed {
                path: what.to_path_buf(),
                reason: match line {
                    Some(l) => format!("line {l}: {}", e.message().trim()),
                    None => e.message().trim().to_string(),
                },
            }
        })?;
        for (name, p) in [
            ("claude", &cfg.providers.claude),
            ("openai", &cfg.providers.openai),
        ] {
            let urls = p.as_ref().map_or([None, None], |p| {
                [
                    ("base_url", p.base_url.as_deref()),
                    ("chatgpt_base_url", p.chatgpt_base_url.as_deref()),
                ]
                .map(|(key, url)| url.map(|u| (key, u)))
            });
            for (key, url) in urls.into_iter().flatten() {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Malformed {
                        path: what.to_path_buf(),
                        reason: format!(
                            "providers.{name}.{key} must start with http:// or https://"
                        ),
                    });
                }
            }
        }
        Ok(cfg)
    }

    /// Loads `path`; a missing file is the empty configuration.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => ConfigFile::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not valid TOML, an unknown key, or a bad value.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        reason: String,
    },
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_template_changes_nothing_and_names_only_real_keys() {
        let path = Path::new("config.toml");
        assert_eq!(
            ConfigFile::parse(path, TEMPLATE).unwrap(),
            ConfigFile::default()
        );
        // Uncommented, every key parses (an unknown one would be an error) and takes effect.
        let uncommented: String = TEMPLATE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let all = ConfigFile::parse(path, &uncommented).unwrap();
        assert_eq!(
            all.base_url(Provider::Claude),
            Some("https://api.anthropic.com")
        );
        let oauth = all
            .provider(Provider::Openai)
            .unwrap()
            .oauth
            .clone()
            .unwrap();
        assert_eq!(oauth.redirect_port, Some(1455));
        assert_eq!(oauth.extra_params.len(), 1);
        assert!(
            all.provider(Provider::Openai)
                .unwrap()
                .chatgpt_base_url
                .is_some()
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = ConfigFile::parse(
            Path::new("c.toml"),
            "[providers.claude]\nbase_urll = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("base_urll") && err.contains("line 2"), "{err}");
        let err = ConfigFile::parse(Path::new("c.toml"), "[providers.gemini]\n").unwrap_err();
        assert!(err.to_string().contains("gemini"), "{err}");
    }

    #[test]
    fn the_documented_example_parses() {
        let cfg = ConfigFile::parse(
            Path::new("c.toml"),
            r#"
[providers.claude]
base_url = "https://api.anthropic.com"
[providers.claude.oauth]
authorize_url = "https://example.com/oauth/authorize"
token_url = "https://example.com/oauth/token"
client_id = "abc"
scopes = ["user:inference"]
redirect_port = 54545
"#,
        )
        .unwrap();
        assert_eq!(
            cfg.base_url(Provider::Claude),
            Some("https://api.anthropic.com")
        );
        assert_eq!(
            cfg.provider(Provider::Claude)
                .unwrap()
                .oauth
                .as_ref()
                .unwrap()
                .redirect_port,
            Some(54545)
        );
    }
}
