//! The environment for an agent holding a lease (README "Agent environment").

use std::path::{Path, PathBuf};

use serde_json::json;

use super::workspace::lease_dir;
use crate::clock::format_ms;
use crate::error::Error;
use crate::records::Lease;
use crate::types::Provider;
use crate::vault::wipe::WipedJson;
use crate::vault::{Credential, CredentialKind, Secret, VaultError};

/// Every variable that carries a provider credential or endpoint. An agent's inherited
/// environment loses all of these; the lease's provider gets its own values back.
pub const CREDENTIAL_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "CLAUDE_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_BASE_URL",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "OPENAI_BASE_URL",
    "CODEX_HOME",
    "OPENCODE_AUTH_CONTENT",
    // The ledger's own key: an agent holding one lease must not read every credential.
    "AUTHLEDGER_MASTER_KEY",
    "AUTHLEDGER_NEW_MASTER_KEY",
];

/// A variable's value: plain, or a secret that is only exposed when the environment is
/// handed to the child (or printed by `authledger env`, which exists to do exactly that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// Not secret.
    Plain(String),
    /// A credential.
    Secret(Secret),
}

impl EnvValue {
    /// The value to put in the child's environment.
    pub fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(s) => s,
            EnvValue::Secret(s) => s.expose_secret(),
        }
    }
}

/// The variables to set and to remove for one agent.
#[derive(Debug, Clone, Default)]
pub struct AgentEnv {
    /// Variables to set, in a stable order.
    pub set: Vec<(String, EnvValue)>,
    /// Inherited variables to remove.
    pub remove: Vec<String>,
    /// The lease's private `CODEX_HOME`, if one was made.
    pub codex_home: Option<PathBuf>,
}

impl AgentEnv {
    fn plain(&mut self, k: &str, v: impl Into<String>) {
        self.set.push((k.to_string(), EnvValue::Plain(v.into())));
    }

    fn secret(&mut self, k: &str, v: &Secret) {
        self.set.push((k.to_string(), EnvValue::Secret(v.clone())));
    }

    /// The value set for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&EnvValue> {
        self.set.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// A session id stable for the lease and unique to it, shaped as a UUID (Claude Code expects
/// one), derived from the lease id so repeated calls agree.
fn session_id(lease: &Lease) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, lease.id.as_str().as_bytes());
    let h = hex::encode(&d.as_ref()[..16]);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// opencode's auth.json entry for a credential.
fn opencode_entry(c: &Credential, token: &Secret) -> serde_json::Value {
    match c.kind {
        CredentialKind::ApiKey => json!({ "type": "api", "key": token.expose_secret() }),
        CredentialKind::Oauth => {
            let mut e = json!({
                "type": "oauth",
                "access": token.expose_secret(),
                // Agents never get the refresh token: refreshing is the ledger's job, done once
                // for everyone; an agent that refreshed on its own would rotate the token
                // behind the ledger's back.
                "refresh": "",
                "expires": c.expires_at.unwrap_or(0),
            });
            if let Some(id) = &c.account_id {
                e["accountId"] = json!(id);
            }
            e
        }
    }
}

/// The user's own Codex settings, copied into a private home with `openai_base_url` set.
fn codex_config(base_url: Option<&str>) -> Result<Option<String>, Error> {
    let own = std::env::var_os("CODEX_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".codex")))
        .map(|d| d.join("config.toml"));
    let mut table: toml::Table = match own.as_deref().map(std::fs::read_to_string) {
        Some(Ok(text)) => text.parse().unwrap_or_default(),
        _ => toml::Table::new(),
    };
    if let Some(url) = base_url {
        let url = url.trim_end_matches('/');
        let url = if url.ends_with("/v1") {
            url.to_string()
        } else {
            format!("{url}/v1")
        };
        table.insert("openai_base_url".into(), toml::Value::String(url));
    } else if table.is_empty() {
        return Ok(None);
    }
    toml::to_string(&table).map(Some).map_err(|e| Error::Io {
        what: "cannot write Codex's config.toml".into(),
        source: std::io::Error::other(e),
    })
}

fn write_codex_home(
    dir: &Path,
    auth: &serde_json::Value,
    config: Option<String>,
) -> Result<(), Error> {
    crate::vault::export::write_private_json(dir, "auth.json", auth)?;
    if let Some(text) = config {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = dir.join("config.toml");
        // Private from its creation, whatever the umask: never readable by others, even for
        // a moment.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|source| Error::Io {
                what: format!("cannot write {}", path.display()),
                source,
            })?;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// What the environment is built from; the ledger gathers it (credential refreshed first).
#[derive(Debug)]
pub struct EnvInputs<'a> {
    /// The lease.
    pub lease: &'a Lease,
    /// Its credential.
    pub credential: &'a Credential,
    /// The usable secret (API key, or the fresh access token).
    pub token: &'a Secret,
    /// Requests/min of the account, if limited.
    pub rpm: Option<i64>,
    /// The provider's configured base URL.
    pub base_url: Option<&'a str>,
    /// The ledger's database file.
    pub db_path: &'a Path,
    /// Now.
    pub now: crate::types::Millis,
}

/// Builds the environment for a lease: its credential in the form the provider's CLIs read,
/// the session variables, and the removal of every other credential variable the agent might
/// inherit. Writes the lease's private `CODEX_HOME` for OpenAI leases.
pub fn agent_env(inputs: EnvInputs<'_>) -> Result<AgentEnv, Error> {
    let EnvInputs {
        lease,
        credential,
        token,
        rpm,
        base_url,
        db_path,
        now,
    } = inputs;
    let token = token.clone();
    let base_url = base_url.map(str::to_string);
    let mut env = AgentEnv::default();

    env.plain("AUTHLEDGER_LEASE_ID", lease.id.as_str());
    env.plain("AUTHLEDGER_DB", db_path.to_string_lossy());
    env.plain("AGENT_ID", lease.agent.as_str());
    env.plain("ACTIVE_AUTH_PROVIDER", lease.provider.as_str());
    env.plain("AUTHLEDGER_LEASE_EXPIRES_AT", format_ms(lease.expires_at));

    let opencode_key = match lease.provider {
        Provider::Claude => {
            match credential.kind {
                CredentialKind::ApiKey => {
                    env.secret("ANTHROPIC_API_KEY", &token);
                    env.secret("CLAUDE_API_KEY", &token);
                }
                // Claude Code sends this as a bearer token; in ANTHROPIC_API_KEY it would be
                // sent as x-api-key and rejected.
                CredentialKind::Oauth => env.secret("CLAUDE_CODE_OAUTH_TOKEN", &token),
            }
            if let Some(url) = &base_url {
                env.plain("ANTHROPIC_BASE_URL", url);
                env.plain("CLAUDE_BASE_URL", url);
            }
            env.plain("CLAUDE_AGENT_ID", lease.agent.as_str());
            env.plain("CLAUDE_SESSION_ID", session_id(lease));
            env.plain("CLAUDE_MAX_TOKENS_ALLOCATED", lease.allocated.to_string());
            if let Some(rpm) = rpm {
                env.plain("CLAUDE_MAX_REQUESTS_PER_MINUTE", rpm.to_string());
            }
            env.plain("CLAUDE_SUBSCRIPTION_TIER", credential.tier.as_str());
            "anthropic"
        }
        Provider::Openai => {
            let home = lease_dir(db_path, &lease.id).join("codex");
            let mut for_codex = credential.clone();
            for_codex.refresh_token = None;
            match credential.kind {
                CredentialKind::ApiKey => {
                    env.secret("OPENAI_API_KEY", &token);
                    env.secret("CODEX_API_KEY", &token);
                    for_codex.api_key = Some(token.clone());
                }
                CredentialKind::Oauth => for_codex.access_token = Some(token.clone()),
            }
            if let Some(url) = &base_url {
                env.plain("OPENAI_BASE_URL", url);
            }
            let auth = match crate::vault::export::codex_auth_json(&for_codex, now) {
                Ok(a) => Some(WipedJson(a)),
                // A ChatGPT token imported without its id_token cannot make a Codex home; the
                // other variables still serve every other agent.
                Err(VaultError::Unsupported(_)) => None,
                Err(e) => return Err(e.into()),
            };
            if let Some(auth) = auth {
                write_codex_home(&home, &auth, codex_config(base_url.as_deref())?)?;
                env.plain("CODEX_HOME", home.to_string_lossy());
                env.codex_home = Some(home);
            }
            env.plain("OPENAI_AGENT_QUOTA", lease.allocated.to_string());
            "openai"
        }
    };
    let opencode = WipedJson(json!({ opencode_key: opencode_entry(credential, &token) }));
    env.secret("OPENCODE_AUTH_CONTENT", &Secret::new(opencode.to_string()));

    env.remove = CREDENTIAL_VARS
        .iter()
        .filter(|v| env.get(v).is_none())
        .map(|v| v.to_string())
        .collect();
    Ok(env)
}
