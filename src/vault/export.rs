//! Writing credentials in the form other tools read: Codex's `auth.json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::VaultError;
use super::credential::{Credential, CredentialKind};
use crate::clock::format_ms;
use crate::store::files;
use crate::types::{Millis, Provider};

/// The JSON Codex reads from `$CODEX_HOME/auth.json` for an OpenAI credential.
pub fn codex_auth_json(c: &Credential, now: Millis) -> Result<serde_json::Value, VaultError> {
    if c.provider != Provider::Openai {
        return Err(VaultError::Conflict(format!(
            "Codex uses OpenAI credentials, not {}",
            c.provider
        )));
    }
    let missing = |what: &str| {
        VaultError::Unsupported(format!(
            "the stored OpenAI credential has no {what}, which Codex needs; import it from Codex (`login openai --from codex`)"
        ))
    };
    Ok(match c.kind {
        CredentialKind::ApiKey => json!({
            "auth_mode": "apikey",
            "OPENAI_API_KEY": c.api_key.as_ref().ok_or_else(|| missing("API key"))?.expose_secret(),
        }),
        CredentialKind::Oauth => json!({
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": c.id_token.as_ref().ok_or_else(|| missing("id_token"))?.expose_secret(),
                "access_token": c.access_token.as_ref().ok_or_else(|| missing("access token"))?.expose_secret(),
                // Codex requires the field; an empty one means "cannot refresh".
                "refresh_token": c.refresh_token.as_ref().map_or("", |s| s.expose_secret()),
                "account_id": c.account_id,
            },
            "last_refresh": format_ms(now),
        }),
    })
}

/// Writes `dir/<name>` atomically (temporary file, fsync, rename) with mode 0600, creating
/// `dir` with mode 0700 if needed. Returns the file's path.
pub fn write_private_json(
    dir: &Path,
    name: &str,
    value: &serde_json::Value,
) -> Result<PathBuf, VaultError> {
    stage_private_json(dir, name, value)?.put_in_place()
}

/// A private JSON file written whole under a temporary name beside its target, not yet in
/// place: [`StagedFile::put_in_place`] renames it there; dropped without that, it is removed.
/// Lets a caller write everything that can fail (space, permissions) before its transaction
/// commits and make the file visible only after.
pub struct StagedFile {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl StagedFile {
    /// Renames the file into place (replacing what was there). Returns its path.
    pub fn put_in_place(self) -> Result<PathBuf, VaultError> {
        let target = self.target;
        self.tmp.persist(&target).map_err(|e| VaultError::Io {
            what: format!("cannot replace {}", target.display()),
            source: e.error,
        })?;
        Ok(target)
    }
}

/// Writes `value` to a temporary 0600 file in `dir` (made 0700 if needed), fsynced, to be put
/// in place as `dir/<name>` later.
pub fn stage_private_json(
    dir: &Path,
    name: &str,
    value: &serde_json::Value,
) -> Result<StagedFile, VaultError> {
    let io = |what: String| move |source| VaultError::Io { what, source };
    files::ensure_private_dir(dir).map_err(|e| VaultError::Io {
        what: format!("cannot create {}", dir.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    let target = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io(format!("cannot write in {}", dir.display())))?;
    let text = zeroize::Zeroizing::new(serde_json::to_string_pretty(value).map_err(|e| {
        VaultError::Io {
            what: format!("cannot encode {name}"),
            source: std::io::Error::other(e),
        }
    })?);
    tmp.write_all(text.as_bytes())
        .and_then(|_| tmp.write_all(b"\n"))
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(io(format!("cannot write {}", target.display())))?;
    Ok(StagedFile { tmp, target })
}
