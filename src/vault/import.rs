//! Reading the credential files other tools keep, without ever writing to them.
//!
//! Each reader turns one file's text into a [`Credential`] for the provider asked for, and
//! refuses anything it does not understand with a one-line reason (exit 2).

use serde_json::Value;

use super::VaultError;
use super::credential::{Credential, CredentialKind, Tier};
use super::jwt;
use super::secret::Secret;
use super::wipe::WipedJson;
use crate::types::{Account, Provider};

/// Where a credential can be imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportSource {
    /// `ANTHROPIC_API_KEY` / `CLAUDE_API_KEY` / `CLAUDE_CODE_OAUTH_TOKEN`, `OPENAI_API_KEY` /
    /// `CODEX_API_KEY`.
    Env,
    /// Codex CLI's `$CODEX_HOME/auth.json`.
    Codex,
    /// Claude Code's `~/.claude/.credentials.json`.
    ClaudeCode,
    /// opencode's `~/.local/share/opencode/auth.json`.
    Opencode,
}

impl ImportSource {
    /// The name used on the command line and in audit rows.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportSource::Env => "env",
            ImportSource::Codex => "codex",
            ImportSource::ClaudeCode => "claude-code",
            ImportSource::Opencode => "opencode",
        }
    }
}

fn malformed(what: &str, reason: impl Into<String>) -> VaultError {
    VaultError::Malformed {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// Parses another tool's credentials file; the parsed copy of its tokens is wiped on drop.
fn parse_json(what: &str, text: &str) -> Result<WipedJson, VaultError> {
    let v = WipedJson(
        serde_json::from_str(text).map_err(|e| malformed(what, format!("not valid JSON ({e})")))?,
    );
    if !v.is_object() {
        return Err(malformed(what, "expected a JSON object"));
    }
    Ok(v)
}

fn string_field(what: &str, obj: &Value, key: &str) -> Result<Option<String>, VaultError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(what, format!("{key} must be a string"))),
    }
}

fn required(what: &str, obj: &Value, key: &str) -> Result<Secret, VaultError> {
    string_field(what, obj, key)?
        .map(Secret::new)
        .ok_or_else(|| malformed(what, format!("{key} is missing")))
}

/// Checks an API key's shape: `sk-ant-` for Claude, `sk-` for OpenAI, no whitespace inside.
/// A Claude Code OAuth token (`sk-ant-oat…`) is refused: Claude Code rejects it as an API key.
pub fn check_api_key(
    provider: Provider,
    account: &Account,
    key: &Secret,
) -> Result<(), VaultError> {
    let k = key.expose_secret();
    if provider == Provider::Claude && k.starts_with("sk-ant-oat") {
        return Err(VaultError::Conflict(format!(
            "that is a Claude Code OAuth token, not an API key: store it with `{} --setup-token` (or --from claude-code)",
            super::login_command(provider, account)
        )));
    }
    let prefix = match provider {
        Provider::Claude => "sk-ant-",
        Provider::Openai => "sk-",
    };
    let ok =
        k.starts_with(prefix) && k.len() >= prefix.len() + 8 && !k.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadApiKey {
            provider,
            expected: prefix,
        })
    }
}

fn oauth(
    provider: Provider,
    account: &Account,
    tier: Tier,
    access: Secret,
    refresh: Option<Secret>,
    expires_at: Option<i64>,
    source: ImportSource,
) -> Credential {
    Credential {
        provider,
        account: account.clone(),
        kind: CredentialKind::Oauth,
        tier,
        api_key: None,
        access_token: Some(access),
        refresh_token: refresh,
        id_token: None,
        expires_at,
        scopes: Vec::new(),
        account_id: None,
        source: source.as_str().to_string(),
        refresh_via: None,
    }
}

/// Reads the provider's credential from environment variables (`get` looks one up).
pub fn from_env(
    provider: Provider,
    account: &Account,
    tier: Option<Tier>,
    get: impl Fn(&str) -> Option<String>,
) -> Result<Credential, VaultError> {
    let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let pair = |a: &str, b: &str| -> Result<Option<Secret>, VaultError> {
        match (get(a), get(b)) {
            (Some(x), Some(y)) if x != y => Err(VaultError::Conflict(format!(
                "{a} and {b} hold different keys; unset one"
            ))),
            (Some(x), _) | (None, Some(x)) => Ok(Some(Secret::new(x))),
            (None, None) => Ok(None),
        }
    };
    let (vars, key) = match provider {
        Provider::Claude => (
            "ANTHROPIC_API_KEY or CLAUDE_API_KEY",
            pair("ANTHROPIC_API_KEY", "CLAUDE_API_KEY")?,
        ),
        Provider::Openai => (
            "OPENAI_API_KEY or CODEX_API_KEY",
            pair("OPENAI_API_KEY", "CODEX_API_KEY")?,
        ),
    };
    if let Some(key) = key {
        check_api_key(provider, account, &key)?;
        let mut c = Credential::api_key(provider, account.clone(), key, "env");
        c.tier = tier.unwrap_or(Tier::Api);
        return Ok(c);
    }
    if provider == Provider::Claude
        && let Some(token) = get("CLAUDE_CODE_OAUTH_TOKEN")
    {
        return Ok(oauth(
            provider,
            account,
            tier.unwrap_or(Tier::Max),
            Secret::new(token),
            None,
            None,
            ImportSource::Env,
        ));
    }
    Err(VaultError::NotFound(format!("{vars} is not set")))
}

/// Reads Codex's `auth.json` (API-key and ChatGPT forms). Only OpenAI credentials live there.
pub fn from_codex(
    provider: Provider,
    account: &Account,
    tier: Option<Tier>,
    what: &str,
    text: &str,
) -> Result<Credential, VaultError> {
    if provider != Provider::Openai {
        return Err(VaultError::Conflict(format!(
            "Codex keeps OpenAI credentials, not {provider}"
        )));
    }
    let v = parse_json(what, text)?;
    let mode = string_field(what, &v, "auth_mode")?;
    let api_key = string_field(what, &v, "OPENAI_API_KEY")?;
    let tokens = v.get("tokens").filter(|t| !t.is_null());
    let mode = match mode.as_deref() {
        Some(m) => m.to_string(),
        // Older files have no auth_mode: the fields say which form it is.
        None if api_key.is_some() => "apikey".into(),
        None if tokens.is_some() => "chatgpt".into(),
        None => return Err(malformed(what, "holds neither OPENAI_API_KEY nor tokens")),
    };
    match mode.as_str() {
        "apikey" => {
            let key = Secret::new(api_key.ok_or_else(|| {
                malformed(what, "auth_mode is apikey but OPENAI_API_KEY is empty")
            })?);
            check_api_key(provider, account, &key)?;
            let mut c = Credential::api_key(provider, account.clone(), key, "codex");
            c.tier = tier.unwrap_or(Tier::Api);
            Ok(c)
        }
        "chatgpt" => {
            let t = tokens
                .ok_or_else(|| malformed(what, "auth_mode is chatgpt but tokens are missing"))?;
            if !t.is_object() {
                return Err(malformed(what, "tokens must be an object"));
            }
            let access = required(what, t, "access_token")?;
            let id_token = required(what, t, "id_token")?;
            if jwt::payload(id_token.expose_secret()).is_none() {
                return Err(malformed(
                    what,
                    "tokens.id_token is not a JWT with a JSON payload",
                ));
            }
            let refresh = string_field(what, t, "refresh_token")?.map(Secret::new);
            let mut c = oauth(
                provider,
                account,
                tier.unwrap_or(Tier::Chatgpt),
                access,
                refresh,
                None,
                ImportSource::Codex,
            );
            c.expires_at = c
                .access_token
                .as_ref()
                .and_then(|a| jwt::expiry_ms(a.expose_secret()));
            c.id_token = Some(id_token);
            c.account_id = string_field(what, t, "account_id")?;
            Ok(c)
        }
        other => Err(VaultError::Unsupported(format!(
            "Codex auth_mode {:?} is not supported (only apikey and chatgpt)",
            crate::types::truncate_for_message(other)
        ))),
    }
}

/// Reads Claude Code's `.credentials.json` (the `claudeAiOauth` object).
pub fn from_claude_code(
    provider: Provider,
    account: &Account,
    tier: Option<Tier>,
    what: &str,
    text: &str,
) -> Result<Credential, VaultError> {
    if provider != Provider::Claude {
        return Err(VaultError::Conflict(format!(
            "Claude Code keeps Claude credentials, not {provider}"
        )));
    }
    let v = parse_json(what, text)?;
    let o = v
        .get("claudeAiOauth")
        .filter(|o| o.is_object())
        .ok_or_else(|| malformed(what, "claudeAiOauth is missing"))?;
    let access = required(what, o, "accessToken")?;
    let refresh = string_field(what, o, "refreshToken")?.map(Secret::new);
    let expires_at = match o.get("expiresAt") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| malformed(what, "expiresAt must be epoch milliseconds"))?,
        ),
        Some(_) => return Err(malformed(what, "expiresAt must be epoch milliseconds")),
    };
    let file_tier = match string_field(what, o, "subscriptionType")?.as_deref() {
        Some("max") => Some(Tier::Max),
        Some("pro") => Some(Tier::Pro),
        _ => None,
    };
    let tier = tier
        .or(file_tier)
        .ok_or_else(|| malformed(what, "subscriptionType is neither max nor pro; pass --tier"))?;
    let mut c = oauth(
        provider,
        account,
        tier,
        access,
        refresh,
        expires_at,
        ImportSource::ClaudeCode,
    );
    if let Some(scopes) = o.get("scopes").and_then(Value::as_array) {
        c.scopes = scopes
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
    }
    Ok(c)
}

/// Reads opencode's provider-keyed `auth.json` (`anthropic` and `openai` entries).
pub fn from_opencode(
    provider: Provider,
    account: &Account,
    tier: Option<Tier>,
    what: &str,
    text: &str,
) -> Result<Credential, VaultError> {
    let v = parse_json(what, text)?;
    let key = match provider {
        Provider::Claude => "anthropic",
        Provider::Openai => "openai",
    };
    let e = v
        .get(key)
        .ok_or_else(|| VaultError::NotFound(format!("{what} has no {key:?} entry")))?;
    if !e.is_object() {
        return Err(malformed(what, format!("{key} must be an object")));
    }
    match string_field(what, e, "type")?.as_deref() {
        Some("api") => {
            let secret = required(what, e, "key")?;
            check_api_key(provider, account, &secret)?;
            let mut c = Credential::api_key(provider, account.clone(), secret, "opencode");
            c.tier = tier.unwrap_or(Tier::Api);
            Ok(c)
        }
        Some("oauth") => {
            let access = required(what, e, "access")?;
            let refresh = string_field(what, e, "refresh")?.map(Secret::new);
            let expires_at = match e.get("expires") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().filter(|ms| *ms >= 0).ok_or_else(|| {
                    malformed(what, format!("{key}.expires must be epoch milliseconds"))
                })?),
            };
            let default_tier = match provider {
                Provider::Claude => Tier::Max,
                Provider::Openai => Tier::Chatgpt,
            };
            let mut c = oauth(
                provider,
                account,
                tier.unwrap_or(default_tier),
                access,
                refresh,
                expires_at,
                ImportSource::Opencode,
            );
            c.account_id = string_field(what, e, "accountId")?;
            Ok(c)
        }
        other => Err(VaultError::Unsupported(format!(
            "opencode entry {key:?} has type {:?}; only api and oauth are supported",
            other.unwrap_or("none")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_map_both_names_and_refuse_a_mismatch() {
        let acct = Account::default();
        let c = from_env(Provider::Claude, &acct, None, |n| {
            (n == "CLAUDE_API_KEY").then(|| "sk-ant-api03-abcdefghij".to_string())
        })
        .unwrap();
        assert_eq!(c.kind, CredentialKind::ApiKey);
        let clash = from_env(Provider::Claude, &acct, None, |n| match n {
            "ANTHROPIC_API_KEY" => Some("sk-ant-aaaaaaaaaaaa".into()),
            "CLAUDE_API_KEY" => Some("sk-ant-bbbbbbbbbbbb".into()),
            _ => None,
        });
        assert!(clash.is_err());
        assert!(from_env(Provider::Openai, &acct, None, |_| None).is_err());
    }

    #[test]
    fn api_key_shapes_are_checked() {
        assert!(
            check_api_key(
                Provider::Claude,
                &Account::default(),
                &Secret::new("sk-ant-api03-xxxxxxxx".into())
            )
            .is_ok()
        );
        assert!(
            check_api_key(
                Provider::Claude,
                &Account::default(),
                &Secret::new("sk-proj-xxxxxxxxxxxx".into())
            )
            .is_err()
        );
        assert!(
            check_api_key(
                Provider::Openai,
                &Account::default(),
                &Secret::new("sk-proj-xxxxxxxx".into())
            )
            .is_ok()
        );
        assert!(
            check_api_key(
                Provider::Openai,
                &Account::default(),
                &Secret::new("sk-proj xxxxxxxx".into())
            )
            .is_err()
        );
    }
}
