//! `authledger login <provider> --oauth | --device`: the interactive parts of OAuth (browser,
//! paste, spinner, device code); the protocol lives in `crate::oauth`.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::time::Duration;

use super::Ctx;
use crate::config_file::OAuthConfig;
use crate::error::Error;
use crate::oauth::{self, Loopback, OAuthError};
use crate::types::{Account, Provider};
use crate::vault::{CredentialSummary, Tier};

fn config(ctx: &Ctx, provider: Provider) -> Result<OAuthConfig, Error> {
    Ok(ctx
        .file_config()?
        .provider(provider)
        .and_then(|p| p.oauth.clone())
        .ok_or_else(|| OAuthError::NotConfigured {
            key: format!("[providers.{provider}.oauth]"),
        })?)
}

/// Tries the desktop's URL opener; the URL is printed either way.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// Lines typed or piped on stdin, for a pasted `code#state` or redirect URL.
fn pasted_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while stdin.read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    rx
}

fn spinner(message: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

/// Runs the browser (or device) flow and stores the tokens. Nothing is stored unless the
/// whole flow succeeds.
pub fn run(
    ctx: &Ctx,
    provider: Provider,
    account: &Account,
    tier: Option<Tier>,
    device: bool,
    no_browser: bool,
    timeout: Duration,
) -> Result<CredentialSummary, Error> {
    let cfg = config(ctx, provider)?;
    // Open the ledger first: a storage or key problem should stop us before the user signs in.
    let ledger = ctx.open()?;
    let tier = tier.unwrap_or(match provider {
        Provider::Claude => Tier::Max,
        Provider::Openai => Tier::Chatgpt,
    });
    let tokens = if device {
        let spin = std::cell::RefCell::new(None);
        let tokens = oauth::device_login(&cfg, provider, |uri, code, complete| {
            eprintln!("To sign in, open {uri} and enter the code {code}");
            if let Some(c) = complete {
                eprintln!("(or open {c})");
            }
            *spin.borrow_mut() = spinner("waiting for approval…");
        });
        if let Some(s) = spin.into_inner() {
            s.finish_and_clear();
        }
        tokens?
    } else {
        let loopback = Loopback::bind(cfg.redirect_port.unwrap_or(0))?;
        let request = oauth::begin(&cfg, provider, &loopback.redirect_uri())?;
        eprintln!("Open this URL to sign in:\n{}", request.url);
        let pasted = if no_browser {
            eprintln!("…or paste the code#state (or the whole redirect URL) here:");
            Some(pasted_lines())
        } else {
            open_browser(request.url.as_str());
            None
        };
        let spin = spinner("waiting for the browser…");
        let params = loopback.wait(timeout, request.state(), pasted.as_ref());
        if let Some(s) = spin {
            s.finish_and_clear();
        }
        oauth::exchange(&cfg, provider, request, &params?)?
    };
    // The endpoint and client that issued the tokens are the only ones that may refresh them.
    let via = crate::vault::RefreshVia {
        token_url: cfg.token_url.clone().unwrap_or_default(),
        client_id: cfg.client_id.clone().unwrap_or_default(),
    };
    ledger.store_oauth_login(provider, account, tier, tokens, &cfg.scopes, via)
}
