//! What a credential is: kind, tier, secrets and the metadata kept in clear.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::secret::Secret;
use crate::types::{Account, InvalidInput, Millis, Provider};

/// How the credential authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A long-lived API key.
    ApiKey,
    /// An OAuth access token, usually with a refresh token and an expiry.
    Oauth,
}

impl CredentialKind {
    /// The stable name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::Oauth => "oauth",
        }
    }
}

impl FromStr for CredentialKind {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "api_key" => Ok(CredentialKind::ApiKey),
            "oauth" => Ok(CredentialKind::Oauth),
            _ => Err(InvalidInput(format!("unknown credential kind {s:?}"))),
        }
    }
}

/// The plan behind a credential; it decides default limits and the fallback order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Claude Max subscription.
    Max,
    /// Claude Pro subscription.
    Pro,
    /// Metered API billing.
    Api,
    /// ChatGPT plan (Codex).
    Chatgpt,
}

impl Tier {
    /// The stable name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Max => "max",
            Tier::Pro => "pro",
            Tier::Api => "api",
            Tier::Chatgpt => "chatgpt",
        }
    }
}

impl Tier {
    /// Checks that the plan exists for the provider (Claude: max, pro, api; OpenAI: api,
    /// chatgpt).
    pub fn check_for(self, provider: Provider) -> Result<(), InvalidInput> {
        let ok = match provider {
            Provider::Claude => matches!(self, Tier::Max | Tier::Pro | Tier::Api),
            Provider::Openai => matches!(self, Tier::Api | Tier::Chatgpt),
        };
        if ok {
            Ok(())
        } else {
            Err(InvalidInput(format!("{provider} has no {self} tier")))
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "max" => Ok(Tier::Max),
            "pro" => Ok(Tier::Pro),
            "api" => Ok(Tier::Api),
            "chatgpt" => Ok(Tier::Chatgpt),
            other => Err(InvalidInput(format!(
                "unknown tier {:?} (expected max, pro, api or chatgpt)",
                crate::types::truncate_for_message(other)
            ))),
        }
    }
}

/// A credential with its secrets in the clear (in memory only; zeroed on drop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// API key or OAuth.
    pub kind: CredentialKind,
    /// The plan.
    pub tier: Tier,
    /// The API key (kind `api_key`).
    pub api_key: Option<Secret>,
    /// The OAuth access token.
    pub access_token: Option<Secret>,
    /// The OAuth refresh token.
    pub refresh_token: Option<Secret>,
    /// The OpenID id token (ChatGPT logins; Codex needs it in auth.json).
    pub id_token: Option<Secret>,
    /// When the access token expires.
    pub expires_at: Option<Millis>,
    /// OAuth scopes.
    pub scopes: Vec<String>,
    /// The provider's account or organisation id, where known.
    pub account_id: Option<String>,
    /// Where it came from (`stdin`, `env`, `codex`, `claude-code`, `opencode`, …).
    pub source: String,
    /// Who may refresh it: recorded by the ledger's own OAuth login. `None` (an imported token,
    /// which the tool that issued it refreshes itself): the ledger never refreshes it.
    pub refresh_via: Option<RefreshVia>,
}

/// The token endpoint and client a credential was issued through: the only place its refresh
/// token may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshVia {
    /// The token endpoint URL.
    pub token_url: String,
    /// The public client id.
    pub client_id: String,
}

impl Credential {
    /// What to do about this credential once it expired and the ledger may not refresh it.
    pub fn expired_remedy(&self) -> String {
        expired_remedy(self.provider, &self.account, &self.source)
    }
}

/// The `authledger login` command for an account, keeping `--account` when it is not the
/// default one, so a suggestion can be pasted as it is.
pub fn login_command(provider: Provider, account: &Account) -> String {
    if account.as_str() == "default" {
        format!("authledger login {provider}")
    } else {
        format!("authledger login {provider} --account {account}")
    }
}

/// What to do about an expired credential the ledger may not refresh, by where it came from.
pub fn expired_remedy(provider: Provider, account: &Account, source: &str) -> String {
    let login = login_command(provider, account);
    match source {
        "claude-code" => format!("refresh it in Claude Code, then `{login} --from claude-code`"),
        "setup-token" => format!("run `claude setup-token`, then `{login} --setup-token`"),
        "codex" => format!("refresh it in Codex, then `{login} --from codex`"),
        "opencode" => format!("refresh it in opencode, then `{login} --from opencode`"),
        _ => format!("log in again (`{login}`)"),
    }
}

impl Credential {
    /// An API-key credential.
    pub fn api_key(provider: Provider, account: Account, key: Secret, source: &str) -> Self {
        Credential {
            provider,
            account,
            kind: CredentialKind::ApiKey,
            tier: Tier::Api,
            api_key: Some(key),
            access_token: None,
            refresh_token: None,
            id_token: None,
            expires_at: None,
            scopes: Vec::new(),
            account_id: None,
            source: source.to_string(),
            refresh_via: None,
        }
    }

    /// The secret fields present, by their stored names.
    pub fn secret_fields(&self) -> Vec<(&'static str, &Secret)> {
        [
            ("api_key", &self.api_key),
            ("access_token", &self.access_token),
            ("refresh_token", &self.refresh_token),
            ("id_token", &self.id_token),
        ]
        .into_iter()
        .filter_map(|(name, s)| s.as_ref().map(|s| (name, s)))
        .collect()
    }

    /// The credential without the secrets that reach the provider (API key, access and
    /// refresh tokens): what a metered agent's environment is built from. The id_token stays:
    /// it names the account (Codex needs it) and the provider accepts no request with it.
    pub fn metadata(&self) -> Credential {
        Credential {
            api_key: None,
            access_token: None,
            refresh_token: None,
            ..self.clone()
        }
    }

    /// The secret an agent authenticates with: the API key or the access token.
    pub fn primary_secret(&self) -> Option<&Secret> {
        match self.kind {
            CredentialKind::ApiKey => self.api_key.as_ref(),
            CredentialKind::Oauth => self.access_token.as_ref(),
        }
    }
}

/// What `status` shows of a stored credential: nothing secret but a redacted form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialSummary {
    /// Which provider.
    pub provider: Provider,
    /// Which account.
    pub account: Account,
    /// API key or OAuth.
    pub kind: CredentialKind,
    /// The plan.
    pub tier: Tier,
    /// The main secret, redacted (`sk-ant-…f3a9`).
    pub redacted: String,
    /// Whether a refresh token is stored.
    pub refreshable: bool,
    /// Whether the ledger itself may refresh it (an OAuth login of its own, not an import).
    pub ledger_refreshes: bool,
    /// When the access token expires.
    pub expires_at: Option<Millis>,
    /// OAuth scopes.
    pub scopes: Vec<String>,
    /// The provider's account id, where known.
    pub account_id: Option<String>,
    /// Where it came from.
    pub source: String,
    /// `ok`, `needs_login` after a refused refresh, or `handed_over` after an export that
    /// gave another tool the refresh token.
    pub status: String,
    /// The tool a credential was handed over to (`export codex --with-refresh-token`): it
    /// refreshes the credential now, the ledger does not.
    pub handed_over_to: Option<String>,
    /// When it was stored.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
    /// When an agent last got it.
    pub last_used_at: Option<Millis>,
    /// When an OAuth refresh last replaced its tokens.
    pub refreshed_at: Option<Millis>,
}
