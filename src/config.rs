//! Where the ledger lives and how it behaves: paths from flags and environment, and the
//! options a [`Ledger`](crate::Ledger) opens with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::settings::FileConfig;
use crate::store::{Durability, StoreOptions};
use crate::vault::KeySource;

/// How a [`Ledger`](crate::Ledger) is opened.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// The SQLite file.
    pub db_path: PathBuf,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Commit durability (FULL unless chosen otherwise).
    pub durability: Durability,
    /// Leases with no heartbeat for this long are reclaimed by cleanup (default 30 min).
    pub idle_timeout: Duration,
    /// Where the master key comes from (default: `AUTHLEDGER_MASTER_KEY`, else the key file).
    pub key: KeySource,
    /// Provider settings from `config.toml` (base URLs, OAuth endpoints).
    pub file: FileConfig,
    /// How OAuth tokens are refreshed.
    pub refresh: crate::ledger::RefreshPolicy,
    /// Where hot-path writes are committed when not by the ledger itself (the CLI hands in
    /// the daemon's client, for group commit). Default `None`: the ledger commits them.
    pub committer: Option<Arc<dyn crate::ledger::Committer>>,
}

impl LedgerConfig {
    /// A ledger at `db_path` with the system clock and the documented defaults.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        LedgerConfig {
            db_path: db_path.into(),
            clock: Arc::new(SystemClock),
            durability: Durability::Full,
            idle_timeout: Duration::from_secs(30 * 60),
            key: KeySource::Default,
            file: FileConfig::default(),
            refresh: crate::ledger::RefreshPolicy::default(),
            committer: None,
        }
    }

    /// Uses another master key source.
    pub fn with_key(mut self, key: KeySource) -> Self {
        self.key = key;
        self
    }

    /// Uses these provider settings.
    pub fn with_file_config(mut self, file: FileConfig) -> Self {
        self.file = file;
        self
    }

    /// Uses another clock (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Commits the ledger's hot-path writes through `committer` (see
    /// [`crate::ledger::op`]): e.g. the daemon's `Client`, which sends them to a running
    /// daemon and declines when none serves. Without one, the ledger commits them itself.
    pub fn with_committer(mut self, committer: Arc<dyn crate::ledger::Committer>) -> Self {
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
            ..StoreOptions::default()
        }
    }
}

/// The directory holding the ledger's own files: `AUTHLEDGER_HOME` if set, else `None` (the
/// XDG directories apply).
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("AUTHLEDGER_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The database path: `--db`, else `AUTHLEDGER_DB`, else `AUTHLEDGER_HOME/ledger.db`, else the
/// XDG data directory.
pub fn resolve_db_path(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("AUTHLEDGER_DB").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(home) = home_dir() {
        return Some(home.join("ledger.db"));
    }
    directories::ProjectDirs::from("", "", "authledger").map(|d| d.data_dir().join("ledger.db"))
}
