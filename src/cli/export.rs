//! `authledger export codex`

use std::path::PathBuf;

use clap::Subcommand;

use super::Ctx;
use super::json::{ExportJson, KeyRotationJson};
use crate::error::Error;
use crate::types::Account;

/// Write a stored credential in another tool's format.
#[derive(Debug, Subcommand)]
pub enum ExportCmd {
    /// Codex CLI's auth.json (0600) for the stored OpenAI credential.
    Codex {
        /// The CODEX_HOME directory to write auth.json into.
        #[arg(long, value_name = "DIR")]
        codex_home: PathBuf,
        /// Which OpenAI account.
        #[arg(long, default_value = "default")]
        account: Account,
        /// Hand the credential over: include the refresh token, and the ledger stops
        /// refreshing it (Codex does from now on). Without it, auth.json has no refresh token.
        #[arg(long)]
        with_refresh_token: bool,
    },
}

impl ExportCmd {
    /// Writes the file.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ExportCmd::Codex {
            codex_home,
            account,
            with_refresh_token,
        } = self;
        let export = ctx
            .open()?
            .export_codex(codex_home, account, *with_refresh_token)?;
        if ctx.out.json {
            ctx.out.json(&ExportJson::from(&export))?;
            return Ok(0);
        }
        ctx.out.line(&format!("wrote {}", export.path.display()))?;
        if export.handed_over {
            ctx.out.line(
                "handed over to Codex with the refresh token: Codex refreshes it now,\n\
                 the ledger no longer does (log in again to take it back)",
            )?;
        } else if export.refreshable_here {
            let until = export
                .expires_at
                .map_or_else(|| "it expires".into(), crate::clock::format_ms);
            ctx.out.line(&format!(
                "without the refresh token: Codex can use it until {until};\n\
                 the ledger keeps refreshing it (--with-refresh-token hands it over)"
            ))?;
        }
        Ok(0)
    }
}

/// Master key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Re-encrypt every credential under a new master key, in one transaction.
    Rotate,
}

impl KeyCmd {
    /// Rotates the key.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        let rotation = match std::env::var("AUTHLEDGER_NEW_MASTER_KEY") {
            Ok(v) if !v.trim().is_empty() => {
                let new = crate::vault::MasterKey::from_base64(&zeroize::Zeroizing::new(v))?;
                ledger.rotate_key_to(&new)?
            }
            _ => ledger.rotate_key()?,
        };
        if ctx.out.json {
            ctx.out.json(&KeyRotationJson::from(&rotation))?;
        } else {
            let n = rotation.credentials;
            ctx.out.line(&format!(
                "re-encrypted {n} credential(s) under key {}",
                rotation.key_id
            ))?;
            match &rotation.key_file {
                Some(file) => ctx.out.line(&format!(
                    "this ledger's key file is now {}\n(older key files stay: other ledgers \
                     and backups may be sealed under them)",
                    file.display()
                ))?,
                None => ctx
                    .out
                    .line("set AUTHLEDGER_MASTER_KEY to the new key from now on")?,
            }
        }
        Ok(0)
    }
}
