//! `access_token`, as the ledger offers it: the refresh itself is
//! [`oauth::Refresher`](crate::oauth::Refresher)'s; and the storing of a finished OAuth login.

use std::time::Duration;

use super::Ledger;
use crate::error::Error;
use crate::oauth::{self, TokenSet, ms};
use crate::types::{Account, Provider};
use crate::vault::{self, Credential, CredentialKind, RefreshVia, Secret};

impl Ledger {
    /// The usable secret of a provider account: the API key, or the OAuth access token,
    /// refreshed first when it expires within the refresh margin.
    pub fn access_token(&self, provider: Provider, account: &Account) -> Result<Secret, Error> {
        self.access_token_within(provider, account, self.config.refresh.margin)
    }

    /// [`access_token`](Self::access_token) with another margin (the daemon refreshes well
    /// ahead of expiry).
    pub fn access_token_within(
        &self,
        provider: Provider,
        account: &Account,
        margin: Duration,
    ) -> Result<Secret, Error> {
        Ok(self.refresher().access_token(provider, account, margin)?)
    }

    /// What a refresh needs of this ledger.
    fn refresher(&self) -> oauth::Refresher<'_> {
        oauth::Refresher {
            store: &self.store,
            clock: self.clock.as_ref(),
            key: &self.config.key,
            policy: &self.config.refresh,
            config: &self.config.file,
        }
    }

    /// Stores the tokens of a finished OAuth login (audited as `login`), with the endpoint and
    /// client that issued them: the only ones that may refresh them.
    pub fn store_oauth_login(
        &self,
        provider: Provider,
        account: &Account,
        tier: vault::Tier,
        tokens: TokenSet,
        requested_scopes: &[String],
        via: RefreshVia,
    ) -> Result<vault::CredentialSummary, Error> {
        let now = self.now();
        let credential = Credential {
            provider,
            account: account.clone(),
            kind: CredentialKind::Oauth,
            tier,
            api_key: None,
            access_token: Some(tokens.access_token),
            refresh_token: tokens.refresh_token,
            account_id: tokens
                .id_token
                .as_ref()
                .and_then(|t| vault::jwt::chatgpt_account_id(t.expose_secret())),
            id_token: tokens.id_token,
            expires_at: tokens.expires_in.map(|d| now.saturating_add(ms(d))),
            scopes: tokens.scopes.unwrap_or_else(|| requested_scopes.to_vec()),
            source: "oauth".to_string(),
            refresh_via: Some(via),
        };
        self.store_credential(&credential)
    }
}
