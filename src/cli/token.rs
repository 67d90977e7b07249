//! `authledger token`

use clap::Args;

use super::Ctx;
use super::json::TokenJson;
use crate::error::Error;
use crate::types::{Account, Provider};

/// Print the current usable secret (refreshed if needed).
#[derive(Debug, Args)]
pub struct TokenCmd {
    /// claude or openai.
    provider: Provider,
    /// Which account.
    #[arg(long, default_value = "default")]
    account: Account,
}

impl TokenCmd {
    /// Prints the secret on stdout, the only place it goes.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let secret = ctx.open()?.access_token(self.provider, &self.account)?;
        if ctx.out.json {
            ctx.out.json(&TokenJson {
                provider: self.provider,
                account: &self.account,
                token: secret.expose_secret(),
            })?;
        } else {
            ctx.out.line(secret.expose_secret())?;
        }
        Ok(0)
    }
}
