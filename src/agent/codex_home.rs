//! The lease's private `CODEX_HOME`. It owns only `auth.json` (and the `auth.json.lock` Codex
//! makes beside it) and `config.toml`; every other entry of the user's own Codex home
//! (sessions, `history.jsonl`, `AGENTS.md`, prompts, skills, logs, …) is a symlink to it, so
//! `codex resume` and history work across leases and removing the lease's directory (which
//! removes links, never what they point to) leaves the user's files alone.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// Where the user's own Codex home is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCodexHome {
    /// `$CODEX_HOME` as inherited. Used only if it exists: Codex itself refuses a
    /// `CODEX_HOME` that does not, and authledger does not create a directory it was only
    /// pointed at.
    Set(PathBuf),
    /// `~/.codex`, Codex's default: created (0700) if missing, so that the state a Codex
    /// under a lease starts (its first sessions and history) lands there, not in the lease's
    /// directory that is removed with it.
    Default(PathBuf),
}

impl UserCodexHome {
    /// `$CODEX_HOME` if set and not empty, else `$HOME/.codex`; `None` if neither is set.
    pub fn from_process() -> Option<UserCodexHome> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var("CODEX_HOME") {
            let dir = PathBuf::from(dir);
            return Some(UserCodexHome::Set(std::path::absolute(&dir).unwrap_or(dir)));
        }
        var("HOME").map(|h| UserCodexHome::Default(PathBuf::from(h).join(".codex")))
    }

    fn path(&self) -> &Path {
        match self {
            UserCodexHome::Set(p) | UserCodexHome::Default(p) => p,
        }
    }

    /// The directory, made first if it is the default one; `None` if it is not there.
    fn ensure(&self) -> Option<&Path> {
        let dir = self.path();
        if let UserCodexHome::Default(_) = self
            && !dir.exists()
        {
            use std::os::unix::fs::DirBuilderExt;
            // Not recursive: only `~/.codex` itself, in a home that exists.
            let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
        }
        dir.is_dir().then_some(dir)
    }
}

/// Directories Codex writes its state into, made in the user's home before they are linked:
/// Codex creates them with `create_dir_all`, which fails on a dangling link.
const STATE_DIRS: &[&str] = &["sessions", "archived_sessions", "log"];
/// Files Codex appends to, linked even before they exist: opening a dangling link to create
/// the file creates it at the link's target, in the user's home.
const STATE_FILES: &[&str] = &["history.jsonl"];

/// Whether an entry belongs to the lease's home and is never linked from the user's:
/// `config.toml` and `auth.json` with its lock and any other `auth.json*` file (which could
/// hold the user's own credential).
fn owned_by_lease(name: &str) -> bool {
    name == "config.toml" || name.starts_with("auth.json")
}

/// The user's own Codex settings, copied into a private home with `openai_base_url` set.
pub(super) fn config(
    user: Option<&UserCodexHome>,
    openai_base_url: Option<&str>,
) -> Result<Option<String>, Error> {
    let own = user.map(|u| u.path().join("config.toml"));
    let mut table: toml::Table = match own.as_deref().map(std::fs::read_to_string) {
        Some(Ok(text)) => text.parse().unwrap_or_default(),
        _ => toml::Table::new(),
    };
    if let Some(url) = openai_base_url {
        table.insert("openai_base_url".into(), toml::Value::String(url.into()));
    } else if table.is_empty() {
        return Ok(None);
    }
    toml::to_string(&table).map(Some).map_err(|e| Error::Io {
        what: "cannot write Codex's config.toml".into(),
        source: std::io::Error::other(e),
    })
}

/// Writes the lease's Codex home: `auth.json`, `config.toml` if any, and the links to the
/// user's Codex state.
pub(super) fn write(
    dir: &Path,
    auth: &serde_json::Value,
    config: Option<String>,
    user: Option<&UserCodexHome>,
) -> Result<(), Error> {
    crate::vault::export::write_private_json(dir, "auth.json", auth)?;
    if let Some(text) = config {
        write_private(&dir.join("config.toml"), &text)?;
    }
    if let Some(user) = user.and_then(UserCodexHome::ensure) {
        link_state(dir, user)?;
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Private from its creation, whatever the umask: never readable by others, even for a
    // moment.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| Error::Io {
            what: format!("cannot write {}", path.display()),
            source,
        })?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    Ok(())
}

/// Links every entry of `user` but the lease's own into `dir`. An entry `dir` already has
/// (a link from an earlier call for the same lease) is kept.
fn link_state(dir: &Path, user: &Path) -> Result<(), Error> {
    if same_dir(dir, user) {
        return Ok(());
    }
    for name in STATE_DIRS {
        let path = user.join(name);
        if !path.exists() {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new().mode(0o700).create(&path);
        }
    }
    let io = |what: String| move |source| Error::Io { what, source };
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(user)
        .map_err(io(format!("cannot read {}", user.display())))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io(format!("cannot read {}", user.display())))?;
    names.extend(STATE_FILES.iter().map(Into::into));
    for name in names {
        if name.to_str().is_some_and(owned_by_lease) {
            continue;
        }
        let link = dir.join(&name);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        std::os::unix::fs::symlink(user.join(&name), &link)
            .map_err(io(format!("cannot link {}", link.display())))?;
    }
    Ok(())
}

/// Whether two paths name one directory (a user whose `CODEX_HOME` is this lease's).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
