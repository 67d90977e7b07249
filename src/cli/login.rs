//! `authledger login` and `authledger logout`

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::Ctx;
use super::json::{CredentialJson, LogoutJson};
use crate::error::Error;
use crate::types::{Account, InvalidInput, Provider};
use crate::vault::import::{self, ImportSource};
use crate::vault::verify::{default_base_url, verify_api_key};
use crate::vault::{Credential, Secret, Tier, VaultError};

/// The largest credential file or stdin input accepted (credential files are a few KB).
const MAX_INPUT: u64 = 1 << 20;

/// Store a credential: an API key from stdin (or a prompt), or an import from another tool.
#[derive(Debug, Args)]
pub struct LoginCmd {
    /// claude or openai (asked for in a terminal if left out).
    provider: Option<Provider>,
    /// Which account of the provider.
    #[arg(long, default_value = "default")]
    account: Account,
    /// Read an API key from stdin (never pass a key as an argument: it shows in `ps`).
    #[arg(long, conflicts_with = "from")]
    api_key_stdin: bool,
    /// Check the key against the provider's models endpoint before storing it.
    #[arg(long)]
    verify: bool,
    /// Import from another tool's credentials.
    #[arg(long, value_enum)]
    from: Option<FromArg>,
    /// The file to import (default: the tool's usual place).
    #[arg(long, requires = "from")]
    path: Option<PathBuf>,
    /// The plan: max, pro, api or chatgpt (default: from the source).
    #[arg(long)]
    tier: Option<Tier>,
    /// Sign in with OAuth (authorization code + PKCE) at the endpoints in config.toml.
    #[arg(long, conflicts_with_all = ["api_key_stdin", "from", "device", "setup_token"])]
    oauth: bool,
    /// With --oauth: print the URL instead of opening a browser, and accept a pasted
    /// `code#state` or redirect URL on stdin.
    #[arg(long, requires = "oauth")]
    no_browser: bool,
    /// With --oauth: how long to wait for the browser.
    #[arg(long, value_name = "DUR", value_parser = super::args::duration, default_value = "5m")]
    timeout: std::time::Duration,
    /// Sign in with the device grant (RFC 8628), for machines without a browser.
    #[arg(long, conflicts_with_all = ["api_key_stdin", "from", "setup_token"])]
    device: bool,
    /// Store the long-lived token printed by `claude setup-token`, read from stdin.
    #[arg(long, conflicts_with_all = ["api_key_stdin", "from"])]
    setup_token: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FromArg {
    Env,
    Codex,
    ClaudeCode,
    Opencode,
}

impl FromArg {
    fn source(self) -> ImportSource {
        match self {
            FromArg::Env => ImportSource::Env,
            FromArg::Codex => ImportSource::Codex,
            FromArg::ClaudeCode => ImportSource::ClaudeCode,
            FromArg::Opencode => ImportSource::Opencode,
        }
    }
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where each tool keeps its credentials by default.
fn default_path(source: ImportSource) -> Result<PathBuf, Error> {
    let home = || {
        env_path("HOME")
            .ok_or_else(|| Error::Invalid(InvalidInput("HOME is not set; pass --path".into())))
    };
    Ok(match source {
        ImportSource::Codex => env_path("CODEX_HOME")
            .map_or_else(|| home().map(|h| h.join(".codex")), Ok)?
            .join("auth.json"),
        ImportSource::ClaudeCode => env_path("CLAUDE_CONFIG_DIR")
            .map_or_else(|| home().map(|h| h.join(".claude")), Ok)?
            .join(".credentials.json"),
        ImportSource::Opencode => env_path("XDG_DATA_HOME")
            .map_or_else(|| home().map(|h| h.join(".local/share")), Ok)?
            .join("opencode/auth.json"),
        ImportSource::Env => {
            return Err(InvalidInput("--from env reads no file; drop --path".into()).into());
        }
    })
}

/// Reads a credential file without changing it (not even its access time matters to us).
fn read_source(path: &std::path::Path) -> Result<zeroize::Zeroizing<String>, Error> {
    let not_found = |e: std::io::Error| {
        Error::Vault(VaultError::NotFound(format!(
            "cannot read {}: {e}",
            path.display()
        )))
    };
    let meta = std::fs::metadata(path).map_err(not_found)?;
    if meta.len() > MAX_INPUT {
        return Err(VaultError::Malformed {
            what: path.display().to_string(),
            reason: "larger than 1 MiB: not a credential file".into(),
        }
        .into());
    }
    let bytes = std::fs::read(path).map_err(not_found)?;
    let text = String::from_utf8(bytes).map_err(|_| VaultError::Malformed {
        what: path.display().to_string(),
        reason: "not UTF-8 text".into(),
    })?;
    Ok(zeroize::Zeroizing::new(text))
}

/// A secret from stdin: typed at a terminal, one line without echo after `prompt`; piped, all
/// of stdin (to EOF), as before.
fn read_stdin_secret(prompt: &str) -> Result<Secret, Error> {
    let buf = if std::io::stdin().is_terminal() {
        super::hidden::read_line(prompt)?
    } else {
        let mut buf = zeroize::Zeroizing::new(String::new());
        std::io::stdin()
            .take(MAX_INPUT)
            .read_to_string(&mut buf)
            .map_err(|source| Error::Io {
                what: "cannot read the key from stdin".into(),
                source,
            })?;
        buf
    };
    let key = Secret::new(buf.trim().to_string());
    if key.is_blank() {
        return Err(InvalidInput("no key on stdin".into()).into());
    }
    Ok(key)
}

/// How a person at a terminal chose to sign in.
#[derive(Debug, Clone, Copy)]
enum Chosen {
    Import(FromArg),
    SetupToken,
    ApiKey,
}

/// The ways to sign in offered at a terminal when no source flag was given: the
/// subscription's first (they cost nothing per token), the API key last.
fn offers(provider: Provider) -> Vec<(Chosen, &'static str)> {
    match provider {
        Provider::Claude => vec![
            (
                Chosen::Import(FromArg::ClaudeCode),
                "import Claude Code's login (--from claude-code)",
            ),
            (
                Chosen::SetupToken,
                "paste a `claude setup-token` token (--setup-token)",
            ),
            (Chosen::ApiKey, "paste an API key, billed per token"),
        ],
        Provider::Openai => vec![
            (
                Chosen::Import(FromArg::Codex),
                "import Codex's ChatGPT login (--from codex)",
            ),
            (Chosen::ApiKey, "paste an API key, billed per token"),
        ],
    }
}

/// Asks how to sign in (Enter takes the first, a subscription).
fn ask_source(provider: Provider, account: &Account) -> Result<Chosen, Error> {
    let offers = offers(provider);
    eprintln!("How do you sign in to {provider}/{account}?");
    for (i, (_, text)) in offers.iter().enumerate() {
        eprintln!("  {}. {text}", i + 1);
    }
    eprint!("Choose 1-{} [1]: ", offers.len());
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|source| Error::Io {
            what: "cannot read the answer".into(),
            source,
        })?;
    let answer = line.trim();
    let n = if answer.is_empty() {
        1
    } else {
        answer.parse::<usize>().unwrap_or(0)
    };
    offers
        .get(n.wrapping_sub(1))
        .map(|(c, _)| *c)
        .ok_or_else(|| {
            InvalidInput(format!(
                "choose a number from 1 to {}, not {answer:?}",
                offers.len()
            ))
            .into()
        })
}

fn ask_provider() -> Result<Provider, Error> {
    eprint!("Provider (claude or openai): ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|source| Error::Io {
            what: "cannot read the answer".into(),
            source,
        })?;
    Ok(line.trim().parse()?)
}

impl LoginCmd {
    fn credential(
        &self,
        ctx: &Ctx,
        provider: Provider,
        from: Option<FromArg>,
    ) -> Result<Credential, Error> {
        if let Some(from) = from {
            let source = from.source();
            if let ImportSource::Env = source {
                return Ok(import::from_env(provider, &self.account, self.tier, |n| {
                    std::env::var(n).ok()
                })?);
            }
            let path = match &self.path {
                Some(p) => p.clone(),
                None => default_path(source)?,
            };
            let text = read_source(&path)?;
            let what = path.display().to_string();
            let c = match source {
                ImportSource::Codex => {
                    import::from_codex(provider, &self.account, self.tier, &what, &text)
                }
                ImportSource::ClaudeCode => {
                    import::from_claude_code(provider, &self.account, self.tier, &what, &text)
                }
                ImportSource::Opencode => {
                    import::from_opencode(provider, &self.account, self.tier, &what, &text)
                }
                ImportSource::Env => {
                    return Err(InvalidInput("--from env reads no file".into()).into());
                }
            }?;
            return Ok(c);
        }
        let (key, source) = if self.api_key_stdin {
            (
                read_stdin_secret(&format!("{provider} API key: "))?,
                "stdin",
            )
        } else if std::io::stdin().is_terminal() {
            (
                read_stdin_secret(&format!("{provider} API key: "))?,
                "prompt",
            )
        } else {
            return Err(InvalidInput(
                "say where the credential comes from: --api-key-stdin or --from env|codex|claude-code|opencode".into(),
            )
            .into());
        };
        import::check_api_key(provider, &self.account, &key)?;
        if self.verify {
            let base = ctx
                .file_config()?
                .base_url(provider)
                .map(str::to_string)
                .unwrap_or_else(|| default_base_url(provider).to_string());
            verify_api_key(provider, &base, &key)?;
        }
        let mut c = Credential::api_key(provider, self.account.clone(), key, source);
        if let Some(t) = self.tier {
            c.tier = t;
        }
        Ok(c)
    }

    /// Stores the credential.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        if self.verify && (self.from.is_some() || self.oauth || self.device || self.setup_token) {
            return Err(
                InvalidInput("--verify checks API keys given with --api-key-stdin".into()).into(),
            );
        }
        let provider = match self.provider {
            Some(p) => p,
            None if std::io::stdin().is_terminal() && !self.api_key_stdin && !self.setup_token => {
                ask_provider()?
            }
            None => return Err(InvalidInput("name a provider: claude or openai".into()).into()),
        };
        if let Some(t) = self.tier {
            t.check_for(provider)?;
        }
        // At a terminal with no source named: offer the subscription's ways first. `--verify`
        // is for API keys, so it goes straight to the key's prompt.
        let asked = self.from.is_none()
            && !(self.api_key_stdin || self.oauth || self.device || self.setup_token)
            && !self.verify
            && std::io::stdin().is_terminal();
        let chosen = if asked {
            Some(ask_source(provider, &self.account)?)
        } else {
            None
        };
        let from = match chosen {
            Some(Chosen::Import(f)) => Some(f),
            _ => self.from,
        };
        let setup_token = self.setup_token || matches!(chosen, Some(Chosen::SetupToken));
        let s = if self.oauth || self.device {
            super::oauth_login::run(
                ctx,
                provider,
                &self.account,
                self.tier,
                self.device,
                self.no_browser,
                self.timeout,
            )?
        } else if setup_token {
            let credential = setup_token_credential(provider, &self.account, self.tier)?;
            ctx.open()?.store_credential(&credential)?
        } else {
            let credential = self.credential(ctx, provider, from)?;
            ctx.open()?.store_credential(&credential)?
        };
        // Stored anyway (it may be the only copy), but the user learns it serves no agent.
        if let Some(at) = s.expires_at
            && at <= ctx.clock().now_ms()
            && !s.ledger_refreshes
        {
            eprintln!(
                "authledger: warning: this token expired at {}; agents cannot use it: {}",
                crate::clock::format_ms(at),
                crate::vault::expired_remedy(s.provider, &s.account, &s.source)
            );
        }
        if ctx.out.json {
            ctx.out.json(&CredentialJson::from(&s))?;
        } else {
            ctx.out.line(&format!(
                "stored {}/{}: {} ({}) {}{}",
                s.provider,
                s.account,
                s.kind.as_str(),
                s.tier,
                s.redacted,
                s.expires_at
                    .map(|t| format!(", expires {}", crate::clock::format_ms(t)))
                    .unwrap_or_default()
            ))?;
        }
        Ok(0)
    }
}

/// A `claude setup-token` token from stdin: a long-lived Claude Code OAuth token, handed to
/// Claude Code only as `CLAUDE_CODE_OAUTH_TOKEN`.
fn setup_token_credential(
    provider: Provider,
    account: &Account,
    tier: Option<Tier>,
) -> Result<Credential, Error> {
    if provider != Provider::Claude {
        return Err(
            InvalidInput("--setup-token is for Claude Code's `claude setup-token`".into()).into(),
        );
    }
    let token = read_stdin_secret("Claude Code setup token: ")?;
    if !token.expose_secret().starts_with("sk-ant-oat")
        || token.expose_secret().chars().any(char::is_whitespace)
    {
        return Err(InvalidInput(
            "that is not a Claude Code OAuth token (they start with sk-ant-oat); paste what `claude setup-token` printed".into(),
        )
        .into());
    }
    Ok(Credential {
        provider,
        account: account.clone(),
        kind: crate::vault::CredentialKind::Oauth,
        tier: tier.unwrap_or(Tier::Max),
        api_key: None,
        access_token: Some(token),
        refresh_token: None,
        id_token: None,
        expires_at: None,
        scopes: vec!["user:inference".into()],
        account_id: None,
        source: "setup-token".into(),
        refresh_via: None,
    })
}

/// Remove a provider's credential and revoke its leases.
#[derive(Debug, Args)]
pub struct LogoutCmd {
    /// claude or openai.
    provider: Provider,
    /// Which account.
    #[arg(long, default_value = "default")]
    account: Account,
}

impl LogoutCmd {
    /// Removes the credential.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let r = ctx.open()?.logout(self.provider, &self.account)?;
        if ctx.out.json {
            ctx.out.json(&LogoutJson::from(&r))?;
        } else {
            ctx.out.line(&format!(
                "removed the {}/{} credential; revoked {} active lease(s)",
                r.provider,
                r.account,
                r.revoked.len()
            ))?;
        }
        Ok(0)
    }
}
