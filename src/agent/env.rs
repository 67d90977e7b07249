//! The environment for an agent holding a lease (README "Agent environment").

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::codex_home::{self, UserCodexHome};
use super::opencode;
use super::workspace::lease_dir;
use crate::clock::format_ms;
use crate::error::Error;
use crate::records::Lease;
use crate::types::Provider;
use crate::vault::wipe::WipedJson;
use crate::vault::{Credential, CredentialKind, Secret, VaultError};

/// Every variable that carries a provider credential or endpoint. An agent's inherited
/// environment loses all of these; the lease's provider gets its own values back.
/// [`OPENCODE_CONFIG_VAR`] is not one: it carries the user's opencode settings, so it is
/// kept, and merged when the agent gets a base URL.
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

/// The gateway a metered agent talks to instead of its provider.
#[derive(Debug, Clone, Copy)]
pub struct Metering<'a> {
    /// Where the gateway listens: `http://127.0.0.1:PORT`, no path.
    pub url: &'a str,
    /// The lease token (`alt-…`) the agent holds instead of the credential.
    pub token: &'a Secret,
}

/// What the agent inherits that its environment builds on. Read from this process by
/// [`Inherited::from_process`]; a caller building the environment for another process (a
/// daemon answering `env`) gives that process's.
#[derive(Clone, Default)]
pub struct Inherited {
    /// The user's own Codex home, whose state the lease's `CODEX_HOME` links.
    pub codex_home: Option<UserCodexHome>,
    /// An inherited `OPENCODE_CONFIG_CONTENT`, merged into, never removed.
    pub opencode_config: Option<OsString>,
}

impl std::fmt::Debug for Inherited {
    // The user's opencode settings may hold a key of theirs: never in Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inherited")
            .field("codex_home", &self.codex_home)
            .field(
                "opencode_config",
                &self.opencode_config.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Inherited {
    /// This process's environment.
    pub fn from_process() -> Inherited {
        Inherited {
            codex_home: UserCodexHome::from_process(),
            opencode_config: std::env::var_os(OPENCODE_CONFIG_VAR),
        }
    }
}

/// opencode's configuration variable: not a credential, so never removed; when the agent gets
/// a base URL it is merged (the lease's provider's `baseURL` set, everything else kept).
pub const OPENCODE_CONFIG_VAR: &str = "OPENCODE_CONFIG_CONTENT";

/// A base URL in its root form, which Claude Code takes as is (it appends `/v1/messages`): no
/// trailing slash and no trailing `/v1`, which would make it post to `/v1/v1/messages`.
fn root_url(url: &str) -> &str {
    let url = url.trim_end_matches('/');
    url.strip_suffix("/v1")
        .map_or(url, |u| u.trim_end_matches('/'))
}

/// What the environment is built from; the ledger gathers it.
#[derive(Debug)]
pub struct EnvInputs<'a> {
    /// The lease.
    pub lease: &'a Lease,
    /// Its credential. Metered, only its metadata is needed (kind, tier, expiry, account id,
    /// and the id_token Codex's ChatGPT form requires): the ledger passes it without secrets.
    pub credential: &'a Credential,
    /// The usable secret (API key, or the fresh access token) an unmetered agent holds;
    /// `None` when metered, where the agent holds the lease token and the ledger never reads
    /// the real one.
    pub token: Option<&'a Secret>,
    /// Requests/min of the account, if limited.
    pub rpm: Option<i64>,
    /// The provider's configured base URL (unmetered; metered agents talk to the gateway).
    pub base_url: Option<&'a str>,
    /// The gateway of a metered agent.
    pub gateway: Option<Metering<'a>>,
    /// What the agent inherits.
    pub inherited: &'a Inherited,
    /// The path the ledger's local files are named after (its file, or on a server this
    /// host's anchor): where the lease's private directory is.
    pub db_path: &'a Path,
    /// What `AUTHLEDGER_DB` says to the agent: the ledger's file, or its server's URL without
    /// a password (an agent holds no credential of the ledger's own).
    pub ledger_db: &'a str,
    /// Now.
    pub now: crate::types::Millis,
}

/// Builds the environment for a lease: its credential in the form the provider's CLIs read,
/// the session variables, and the removal of every other credential variable the agent might
/// inherit. Writes the lease's private `CODEX_HOME` for OpenAI leases.
///
/// Metered (`gateway` set), every credential value is the lease token and every base URL the
/// gateway's, each in its client's form: Claude Code's `ANTHROPIC_BASE_URL` without `/v1`,
/// `OPENAI_BASE_URL`, Codex's `openai_base_url` and opencode's `baseURL` with it.
pub fn agent_env(inputs: EnvInputs<'_>) -> Result<AgentEnv, Error> {
    let EnvInputs {
        lease,
        credential,
        token,
        rpm,
        base_url,
        gateway,
        inherited,
        db_path,
        ledger_db,
        now,
    } = inputs;
    // What the agent holds, and where it sends its requests.
    let (held, root) = match (gateway, token) {
        (Some(g), _) => (g.token.clone(), Some(root_url(g.url).to_string())),
        (None, Some(t)) => (t.clone(), base_url.map(|u| root_url(u).to_string())),
        (None, None) => {
            return Err(crate::types::InvalidInput(
                "an unmetered agent needs its credential".into(),
            )
            .into());
        }
    };
    let root_v1 = root.as_ref().map(|r| format!("{r}/v1"));
    let mut env = AgentEnv::default();

    env.plain("AUTHLEDGER_LEASE_ID", lease.id.as_str());
    env.plain("AUTHLEDGER_DB", ledger_db);
    env.plain("AGENT_ID", lease.agent.as_str());
    env.plain("ACTIVE_AUTH_PROVIDER", lease.provider.as_str());
    env.plain("AUTHLEDGER_LEASE_EXPIRES_AT", format_ms(lease.expires_at));

    match lease.provider {
        Provider::Claude => {
            match credential.kind {
                CredentialKind::ApiKey => {
                    env.secret("ANTHROPIC_API_KEY", &held);
                    env.secret("CLAUDE_API_KEY", &held);
                }
                // Claude Code sends this as a bearer token; in ANTHROPIC_API_KEY it would be
                // sent as x-api-key and rejected.
                CredentialKind::Oauth => env.secret("CLAUDE_CODE_OAUTH_TOKEN", &held),
            }
            if let Some(url) = &root {
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
        }
        Provider::Openai => {
            let home = lease_dir(db_path, &lease.id).join("codex");
            let mut for_codex = credential.clone();
            for_codex.refresh_token = None;
            match credential.kind {
                CredentialKind::ApiKey => {
                    env.secret("OPENAI_API_KEY", &held);
                    env.secret("CODEX_API_KEY", &held);
                    for_codex.api_key = Some(held.clone());
                }
                CredentialKind::Oauth => for_codex.access_token = Some(held.clone()),
            }
            if let Some(url) = &root_v1 {
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
                let user = inherited.codex_home.as_ref();
                let config = codex_home::config(user, root_v1.as_deref())?;
                codex_home::write(&home, &auth, config, user)?;
                env.plain("CODEX_HOME", home.to_string_lossy());
                env.codex_home = Some(home);
            }
            env.plain("OPENAI_AGENT_QUOTA", lease.allocated.to_string());
        }
    }
    let id = opencode::provider_id(lease.provider);
    // The lease token lives as long as the lease; a real token until its own expiry.
    let expires = match gateway {
        Some(_) => lease.expires_at,
        None => credential.expires_at.unwrap_or(lease.expires_at),
    };
    let entry = opencode::auth_entry(
        credential.kind,
        &held,
        expires,
        credential.account_id.as_deref(),
    );
    let auth = WipedJson(json!({ id: entry }));
    env.secret("OPENCODE_AUTH_CONTENT", &Secret::new(auth.to_string()));
    if let Some(url) = &root_v1 {
        let inherited = inherited.opencode_config.as_deref();
        if let Some(config) = opencode::config_content(inherited, id, url) {
            // It may carry the user's own settings: kept out of Debug output like a secret.
            env.secret(OPENCODE_CONFIG_VAR, &Secret::new(config));
        }
    }

    env.remove = CREDENTIAL_VARS
        .iter()
        .filter(|v| env.get(v).is_none())
        .map(|v| v.to_string())
        .collect();
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_codes_base_url_never_ends_in_v1() {
        for url in [
            "http://h:1",
            "http://h:1/",
            "http://h:1/v1",
            "http://h:1/v1/",
        ] {
            assert_eq!(root_url(url), "http://h:1", "{url}");
        }
        assert_eq!(root_url("http://h/proxy/v1"), "http://h/proxy");
        assert_eq!(root_url("http://h/v1x"), "http://h/v1x");
    }

    #[test]
    fn inherited_opencode_settings_stay_out_of_debug_output() {
        let i = Inherited {
            codex_home: None,
            opencode_config: Some(r#"{"apiKey":"sk-user-own"}"#.into()),
        };
        assert!(!format!("{i:?}").contains("sk-user-own"), "{i:?}");
    }
}
