//! Runtime options: what a [`Ledger`](crate::Ledger) is opened with (database, clock, key,
//! durability, provider settings). Where files are found is [`paths`](crate::paths); the parsed
//! `config.toml` is [`config_file`](crate::config_file).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::config_file::ConfigFile;
use crate::store::{Durability, StoreOptions};
use crate::vault::KeySource;

/// How a [`Ledger`](crate::Ledger) is opened.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// The SQLite file; on a server ([`LedgerConfig::server`]), this host's anchor for its
    /// local files (lease directories, the daemon's socket, the gateway's address).
    pub db_path: PathBuf,
    /// A PostgreSQL URL when the ledger lives on a server shared by many hosts.
    pub server: Option<crate::paths::ServerUrl>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Commit durability (FULL unless chosen otherwise).
    pub durability: Durability,
    /// Leases with no heartbeat for this long are reclaimed by cleanup (default 30 min).
    pub idle_timeout: Duration,
    /// Where the master key comes from (default: `AUTHLEDGER_MASTER_KEY`, else the key file).
    pub key: KeySource,
    /// Provider settings from `config.toml` (base URLs, OAuth endpoints).
    pub file: ConfigFile,
    /// How OAuth tokens are refreshed.
    pub refresh: crate::oauth::RefreshPolicy,
    /// Where hot-path writes are committed when not by the ledger itself (the CLI hands in
    /// the daemon's client, for group commit). Default `None`: the ledger commits them.
    pub committer: Option<Arc<dyn super::Committer>>,
    /// Open an existing ledger for reading only (a viewer such as `top`): nothing is created,
    /// migrated, keyed or swept, and every write is refused as read-only.
    pub read_only: bool,
}

impl LedgerConfig {
    /// A ledger at `db_path` with the system clock and the documented defaults.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        LedgerConfig {
            db_path: db_path.into(),
            server: None,
            clock: Arc::new(SystemClock),
            durability: Durability::Full,
            idle_timeout: Duration::from_secs(30 * 60),
            key: KeySource::Default,
            file: ConfigFile::default(),
            refresh: crate::oauth::RefreshPolicy::default(),
            committer: None,
            read_only: false,
        }
    }

    /// A ledger at `location`: a SQLite file or a database on a PostgreSQL server.
    pub fn at(location: crate::paths::LedgerLocation) -> Self {
        match location {
            crate::paths::LedgerLocation::File(path) => LedgerConfig::new(path),
            crate::paths::LedgerLocation::Server { url, anchor } => {
                let mut config = LedgerConfig::new(anchor);
                config.server = Some(url);
                config
            }
        }
    }

    /// Opens the ledger for reading only: see [`LedgerConfig::read_only`].
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Uses another master key source.
    pub fn with_key(mut self, key: KeySource) -> Self {
        self.key = key;
        self
    }

    /// Uses these provider settings.
    pub fn with_file_config(mut self, file: ConfigFile) -> Self {
        self.file = file;
        self
    }

    /// Uses another clock (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Commits the ledger's hot-path writes through `committer` (see
    /// [`super::op`]): e.g. the daemon's `Client`, which sends them to a running
    /// daemon and declines when none serves. Without one, the ledger commits them itself.
    pub fn with_committer(mut self, committer: Arc<dyn super::Committer>) -> Self {
        self.committer = Some(committer);
        self
    }

    /// Chooses commit durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    pub(crate) fn store_options(&self) -> StoreOptions {
        StoreOptions {
            durability: self.durability,
            read_only: self.read_only,
            server: self.server.clone(),
            ..StoreOptions::default()
        }
    }
}

#[cfg(test)]
mod password_tests {
    use super::*;

    #[test]
    fn a_server_password_never_shows_in_a_config_or_its_store_options() {
        let location = crate::paths::parse_location(std::ffi::OsStr::new(
            "postgres://fleet:hunter2@db.internal:5432/ledger?sslmode=require",
        ))
        .unwrap();
        let config = LedgerConfig::at(location);
        for shown in [
            format!("{config:?}"),
            format!("{:?}", config.store_options()),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("db.internal"), "{shown}");
        }
    }
}
