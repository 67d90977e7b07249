//! `authledger export codex`

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::Ctx;
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
    },
}

impl ExportCmd {
    /// Writes the file.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ExportCmd::Codex {
            codex_home,
            account,
        } = self;
        let path = ctx.open()?.export_codex(codex_home, account)?;
        if ctx.out.json {
            ctx.out.json(&json!({ "path": path }))?;
        } else {
            ctx.out.line(&format!("wrote {}", path.display()))?;
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
            ctx.out.json(&rotation)?;
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
