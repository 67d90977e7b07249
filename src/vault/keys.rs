//! Where the master key comes from: `AUTHLEDGER_MASTER_KEY`, or a key file (0600, in the
//! config directory, not beside the database) created on first use.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{MasterKey, VaultError};
use crate::store::files;

/// The environment variable holding a base64 master key.
pub const KEY_VAR: &str = "AUTHLEDGER_MASTER_KEY";

/// How a ledger finds its master key.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `AUTHLEDGER_MASTER_KEY` if set, else the default key file.
    Default,
    /// A key file at this path (created on first use).
    File(PathBuf),
    /// This key.
    Key(MasterKey),
}

/// The default key file: `$AUTHLEDGER_HOME/keys/master.key`, else the XDG config directory's
/// `master.key`. Kept apart from the database so a copy of the data directory does not carry
/// the key with it.
pub fn default_key_path() -> Option<PathBuf> {
    if let Some(home) = crate::config::home_dir() {
        return Some(home.join("keys").join("master.key"));
    }
    directories::ProjectDirs::from("", "", "authledger").map(|d| d.config_dir().join("master.key"))
}

/// A resolved source: a key in hand, or a file that may not exist yet.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    Key(MasterKey),
    File(PathBuf),
}

impl KeySource {
    pub(crate) fn resolve(&self) -> Result<Resolved, VaultError> {
        match self {
            KeySource::Key(k) => Ok(Resolved::Key(k.clone())),
            KeySource::File(p) => Ok(Resolved::File(p.clone())),
            KeySource::Default => {
                if let Ok(v) = std::env::var(KEY_VAR)
                    && !v.trim().is_empty()
                {
                    return Ok(Resolved::Key(MasterKey::from_base64(&v)?));
                }
                default_key_path()
                    .map(Resolved::File)
                    .ok_or_else(|| VaultError::NoKey(format!("set {KEY_VAR} or AUTHLEDGER_HOME")))
            }
        }
    }
}

impl Resolved {
    /// The key, reading the file; `Ok(None)` when the file does not exist.
    pub(crate) fn load(&self) -> Result<Option<MasterKey>, VaultError> {
        match self {
            Resolved::Key(k) => Ok(Some(k.clone())),
            Resolved::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => {
                    let text = zeroize::Zeroizing::new(text);
                    Ok(Some(MasterKey::from_base64(&text)?))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(VaultError::KeyFile {
                    path: path.clone(),
                    source,
                }),
            },
        }
    }

    /// The key, creating the key file with a fresh key if there is none yet.
    pub(crate) fn load_or_create(&self) -> Result<MasterKey, VaultError> {
        if let Some(k) = self.load()? {
            return Ok(k);
        }
        let Resolved::File(path) = self else {
            return Err(VaultError::NoKey("no key given".into()));
        };
        let key = MasterKey::generate()?;
        write_key_file(path, &key, true)?;
        // Another process may have won the race to create it: use whatever is there now.
        self.load()?
            .ok_or_else(|| VaultError::NoKey(format!("{} vanished", path.display())))
    }

    /// Where a rotated key is written before the database switches to it.
    pub(crate) fn pending_path(&self) -> Option<PathBuf> {
        match self {
            Resolved::File(p) => {
                let mut s = p.as_os_str().to_owned();
                s.push(".new");
                Some(PathBuf::from(s))
            }
            Resolved::Key(_) => None,
        }
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            Resolved::File(p) => Some(p),
            Resolved::Key(_) => None,
        }
    }
}

/// Writes a key file with mode 0600 in a 0700 directory. With `exclusive`, an existing file is
/// left alone (first writer wins).
pub(crate) fn write_key_file(
    path: &Path,
    key: &MasterKey,
    exclusive: bool,
) -> Result<(), VaultError> {
    let io = |source| VaultError::KeyFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        files::ensure_private_dir(dir).map_err(|e| VaultError::KeyFile {
            path: dir.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if exclusive {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    let mut f = match opts.open(path) {
        Ok(f) => f,
        Err(e) if exclusive && e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    f.write_all(key.to_base64().as_bytes()).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)
}
