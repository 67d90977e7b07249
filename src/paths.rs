//! Where the ledger's files are: its home, the database, the key file, the per-lease
//! directories, the daemon's socket and lock, and `config.toml`. A leaf: it imports nothing
//! from the crate, and every other module asks it rather than joining names of its own.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The directory holding the ledger's own files: `AUTHLEDGER_HOME` if set, else `None` (the
/// XDG directories apply).
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("AUTHLEDGER_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The XDG directories of `authledger`, used when no home is set.
fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "authledger")
}

/// A PostgreSQL connection URL. It may hold a password, so it never prints itself: `Debug`
/// shows it with the password masked, and only [`ServerUrl::as_str`] gives it whole (to the
/// driver).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// The whole URL, password included: for connecting, never for printing.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL as people may see it: any password (in the authority or the query) masked.
    pub fn shown(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("***"));
                }
                if u.query_pairs().any(|(k, _)| k == "password") {
                    let kept: Vec<(String, String)> = u
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k == "password" {
                                "***".into()
                            } else {
                                v.into_owned()
                            };
                            (k.into_owned(), v)
                        })
                        .collect();
                    u.query_pairs_mut().clear().extend_pairs(kept);
                }
                u.to_string()
            }
            Err(_) => "postgres://(unparsable URL)".into(),
        }
    }
}

impl std::fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerUrl({})", self.shown())
    }
}

impl From<String> for ServerUrl {
    fn from(url: String) -> Self {
        ServerUrl(url)
    }
}

impl From<&str> for ServerUrl {
    fn from(url: &str) -> Self {
        ServerUrl(url.to_string())
    }
}

/// Where a ledger is: a SQLite file, or a database on a PostgreSQL server shared by many hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerLocation {
    /// The SQLite file.
    File(PathBuf),
    /// A PostgreSQL database. `anchor` names this host's own files for it (lease directories,
    /// the daemon's socket, the gateway's address), in this host's state directory: the
    /// server holds the shared truth, each host its local state.
    Server {
        /// The connection URL as given (it may hold a password; it never prints it).
        url: ServerUrl,
        /// This host's anchor: files are named after it as they are after a SQLite file.
        anchor: PathBuf,
    },
}

impl LedgerLocation {
    /// The path local files are named after: the SQLite file, or the server's anchor.
    pub fn local_path(&self) -> &Path {
        match self {
            LedgerLocation::File(p) => p,
            LedgerLocation::Server { anchor, .. } => anchor,
        }
    }
}

/// Reads a `--db` / `AUTHLEDGER_DB` value. Anything that looks like `scheme://` is a URL, never
/// a path: `postgres://` and `postgresql://` name a server, `sqlite://PATH` (or `sqlite:PATH`,
/// `file:PATH`) a file; another scheme is an error naming the ones understood.
pub fn parse_location(value: &OsStr) -> Result<LedgerLocation, String> {
    if value.is_empty() {
        return Err("an empty ledger location names no ledger: give a path or a URL".into());
    }
    let Some(text) = value.to_str() else {
        use std::os::unix::ffi::OsStrExt;
        let bytes = value.as_bytes();
        if bytes.windows(3).any(|w| w == b"://") {
            return Err("the database URL is not valid UTF-8".into());
        }
        return Ok(LedgerLocation::File(PathBuf::from(value)));
    };
    for scheme in ["sqlite://", "file://"] {
        if let Some(rest) = text.strip_prefix(scheme) {
            // A URL: `sqlite:///abs/path` or `file://localhost/abs/path`, percent-decoded.
            let parsed = url::Url::parse(&format!("file://{rest}"))
                .map_err(|e| format!("cannot read `{text}`: {e}"))?;
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(format!("`{text}`: a SQLite ledger takes no URL options"));
            }
            return parsed
                .to_file_path()
                .map(LedgerLocation::File)
                .map_err(|()| format!("`{text}` names no local file (sqlite:///PATH)"));
        }
    }
    for prefix in ["sqlite:", "file:"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            if rest.is_empty() {
                return Err(format!("`{text}` names no file"));
            }
            return Ok(LedgerLocation::File(PathBuf::from(rest)));
        }
    }
    let Some((scheme, _)) = text.split_once("://") else {
        return Ok(LedgerLocation::File(PathBuf::from(text)));
    };
    let looks_like_scheme = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !looks_like_scheme {
        return Ok(LedgerLocation::File(PathBuf::from(text)));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => {
            let anchor = server_anchor(text)?;
            Ok(LedgerLocation::Server {
                url: ServerUrl::from(text),
                anchor,
            })
        }
        other => Err(format!(
            "unsupported database URL scheme `{other}://`: use a file path, sqlite://PATH, \
             or postgres://USER@HOST:PORT/DATABASE"
        )),
    }
}

/// This host's anchor for a server ledger: `servers/<host>-<port>-<database>/ledger` in its
/// state directory (`AUTHLEDGER_HOME`, else the XDG data directory).
fn server_anchor(url: &str) -> Result<PathBuf, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("cannot read the database URL: {e}"))?;
    let host = parsed.host_str().unwrap_or("local");
    let port = parsed.port().unwrap_or(5432);
    let database = parsed.path().trim_start_matches('/');
    let database = if database.is_empty() {
        parsed.username()
    } else {
        database
    };
    let name: String = format!("{host}-{port}-{database}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = home_dir()
        .or_else(|| project_dirs().map(|d| d.data_dir().to_path_buf()))
        .ok_or("no home directory for this host's state (set AUTHLEDGER_HOME)")?;
    Ok(base.join("servers").join(name).join("ledger"))
}

/// Where the ledger is: `--db`, else `AUTHLEDGER_DB`, else `AUTHLEDGER_HOME/ledger.db`, else
/// the XDG data directory. `Ok(None)` when there is no home to put it in.
pub fn resolve_location(flag: Option<&OsStr>) -> Result<Option<LedgerLocation>, String> {
    if let Some(v) = flag {
        return parse_location(v).map(Some);
    }
    if let Some(v) = std::env::var_os("AUTHLEDGER_DB").filter(|v| !v.is_empty()) {
        return parse_location(&v).map(Some);
    }
    if let Some(home) = home_dir() {
        return Ok(Some(LedgerLocation::File(home.join("ledger.db"))));
    }
    Ok(project_dirs().map(|d| LedgerLocation::File(d.data_dir().join("ledger.db"))))
}

/// The default key file: `$AUTHLEDGER_HOME/keys/master.key`, else the XDG config directory's
/// `master.key`. Kept apart from the database so a copy of the data directory does not carry
/// the key with it.
pub fn default_key_path() -> Option<PathBuf> {
    if let Some(home) = home_dir() {
        return Some(home.join("keys").join("master.key"));
    }
    project_dirs().map(|d| d.config_dir().join("master.key"))
}

/// The key file a rotation gives a ledger: beside the configured one, named after the key
/// id (`master-<id>.key`).
pub fn key_for_id(configured: &Path, id: &str) -> PathBuf {
    let stem = configured.file_stem().map_or_else(
        || "master".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    configured.with_file_name(format!("{stem}-{id}.key"))
}

/// The configuration file's location: `$AUTHLEDGER_HOME/config.toml`, else the XDG config dir.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(home) = home_dir() {
        return Some(home.join("config.toml"));
    }
    project_dirs().map(|d| d.config_dir().join("config.toml"))
}

/// The directory holding every lease's private directory: `agents/` beside the database.
pub fn lease_root(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new(".")).join("agents")
}

/// One lease's private directory, `agents/<lease>/` beside the database.
pub fn lease_dir(db: &Path, lease: &str) -> PathBuf {
    lease_root(db).join(lease)
}

/// A file beside the database named after it: the database's name with `suffix` appended
/// (`-wal`, `-shm`, `.lock`, …).
pub fn sidecar(db: &Path, suffix: impl AsRef<OsStr>) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The file the store locks to let one writer in at a time.
pub fn store_lock(db: &Path) -> PathBuf {
    sidecar(db, ".lock")
}

/// The file a serving daemon holds locked, so there is never more than one per ledger.
pub fn daemon_lock(db: &Path) -> PathBuf {
    sidecar(db, ".daemon")
}

/// Where a running gateway writes its URL (`ledger.db.gateway`), for `authledger env`.
pub fn gateway_url_file(db: &Path) -> PathBuf {
    sidecar(db, ".gateway")
}

/// The price table `prices update` put in force for this ledger (`ledger.db.prices.json`);
/// without it the snapshot built into the binary applies.
pub fn prices_file(db: &Path) -> PathBuf {
    sidecar(db, ".prices.json")
}

/// Unix socket addresses hold 108 bytes on Linux, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

/// The daemon's socket beside the database, or `None` when its path is too long to bind.
pub fn daemon_socket(db: &Path) -> Option<PathBuf> {
    let s = sidecar(db, ".sock");
    // The server binds under a staging name a few bytes longer (".<pid>").
    (s.as_os_str().len() + 8 <= MAX_SOCKET_PATH).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_never_a_path() {
        let loc = |s: &str| parse_location(OsStr::new(s));
        assert_eq!(loc("/x/l.db"), Ok(LedgerLocation::File("/x/l.db".into())));
        assert_eq!(
            loc("sqlite:///x/l.db"),
            Ok(LedgerLocation::File("/x/l.db".into()))
        );
        assert_eq!(
            loc("sqlite:rel.db"),
            Ok(LedgerLocation::File("rel.db".into()))
        );
        assert_eq!(
            loc("file:/x/l.db"),
            Ok(LedgerLocation::File("/x/l.db".into()))
        );
        for url in [
            "postgres://postgres@127.0.0.1:5432/ledger",
            "postgresql://u:secret@db.example:6000/team",
        ] {
            match loc(url) {
                Ok(LedgerLocation::Server { url: u, anchor }) => {
                    assert_eq!(u.as_str(), url);
                    assert!(!format!("{u:?}").contains("secret"), "{u:?}");
                    assert!(anchor.ends_with("ledger"), "{anchor:?}");
                    assert!(!anchor.to_string_lossy().contains("secret"), "{anchor:?}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(
            loc("file://localhost/x/my%20l.db"),
            Ok(LedgerLocation::File("/x/my l.db".into()))
        );
        assert!(loc("sqlite:///x/l.db?mode=ro").is_err());
        assert!(loc("file://elsewhere/x/l.db").is_err());
        {
            use std::os::unix::ffi::OsStrExt;
            let bad = OsStr::from_bytes(b"postgres://u@h/\xff");
            assert!(parse_location(bad).is_err());
        }
        let err = loc("mysql://root@localhost/ledger").unwrap_err();
        assert!(
            err.contains("mysql://") && err.contains("postgres://"),
            "{err}"
        );
        assert!(loc("sqlite:").is_err());
        assert!(loc("").is_err(), "an empty value is no path");
    }

    #[test]
    fn files_beside_the_database_are_named_after_it() {
        let db = Path::new("/x/ledger.db");
        assert_eq!(lease_dir(db, "l1"), Path::new("/x/agents/l1"));
        assert_eq!(store_lock(db), Path::new("/x/ledger.db.lock"));
        assert_eq!(daemon_lock(db), Path::new("/x/ledger.db.daemon"));
        assert_eq!(daemon_socket(db).unwrap(), Path::new("/x/ledger.db.sock"));
        let long = PathBuf::from(format!("/{}/ledger.db", "d".repeat(100)));
        assert_eq!(daemon_socket(&long), None);
        let key = Path::new("/k/keys/master.key");
        assert_eq!(
            key_for_id(key, "ab12"),
            Path::new("/k/keys/master-ab12.key")
        );
    }
}
