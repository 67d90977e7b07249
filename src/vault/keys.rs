//! Where the master key comes from: `AUTHLEDGER_MASTER_KEY`, or a key file (0600, in the
//! config directory, not beside the database) created on first use.
//!
//! Several ledgers may share one key file (`--db other.db` under one home). A ledger records
//! the id of the key it is sealed under; `key rotate` gives the rotated ledger a key file of
//! its own (`master-<id>.key` beside `master.key`) and never rewrites a key file, so rotating
//! one ledger cannot strand another.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{MasterKey, VaultError};
use crate::paths::{self, default_key_path};
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
            Resolved::File(path) => read_key_file(path),
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
        write_key_file(path, &key)?;
        // Another process may have won the race to create it: use whatever is there now.
        self.load()?
            .ok_or_else(|| VaultError::NoKey(format!("{} vanished", path.display())))
    }

    /// The key file a rotation gives a ledger: beside the configured one, named after the key
    /// id (`master-<id>.key`). The configured file is never rewritten by a rotation, so other
    /// ledgers sealed under it keep working.
    pub(crate) fn file_for_id(&self, id: &str) -> Option<PathBuf> {
        let Resolved::File(p) = self else { return None };
        Some(paths::key_for_id(p, id))
    }

    /// Where releases before key ids kept a rotation's key until they renamed it over the
    /// configured file: a ledger whose rotation stopped in between is still sealed under it.
    pub(crate) fn legacy_pending_path(&self) -> Option<PathBuf> {
        let Resolved::File(p) = self else { return None };
        Some(paths::sidecar(p, ".new"))
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            Resolved::File(p) => Some(p),
            Resolved::Key(_) => None,
        }
    }
}

/// Reads a key file; `Ok(None)` when it does not exist.
pub(crate) fn read_key_file(path: &Path) -> Result<Option<MasterKey>, VaultError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = zeroize::Zeroizing::new(text);
            Ok(Some(MasterKey::from_base64(&text)?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(VaultError::KeyFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes a new key file, mode 0600 in a 0700 directory, without ever exposing a partial one:
/// the key goes to a temporary file of its own, is fsynced, then linked to `path` (which fails
/// if `path` exists: first writer wins) and the directory is fsynced. A crash at any point
/// leaves either no `path` or a complete one. Returns whether this call created `path`.
pub(crate) fn write_key_file(path: &Path, key: &MasterKey) -> Result<bool, VaultError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| VaultError::KeyFile { path: p, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    files::ensure_private_dir(&dir).map_err(|e| VaultError::KeyFile {
        path: dir.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(
        ".tmp-{}",
        hex::encode(crate::random::bytes::<8>()?)
    ));
    let temp = PathBuf::from(temp);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        f.write_all(key.to_base64().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io(&temp)(e));
    }
    crate::fault::point("key:temp-written");
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    let created = match linked {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io(path)(e)),
    };
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir))?;
    Ok(created)
}
