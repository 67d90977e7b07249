//! `authledger init`

use clap::Args;

use super::Ctx;
use super::json::{InitJson, LimitsJson};
use crate::error::Error;

/// Create the ledger and store default limits.
#[derive(Debug, Args)]
pub struct InitCmd {}

impl InitCmd {
    /// Opens (creating and migrating) the ledger and stores default limits.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        let limits = ledger.init()?;
        let version = ledger.schema_version()?;
        let config = write_config_template()?;
        if ctx.out.json {
            ctx.out.json(&InitJson {
                db: ledger.db_path().to_path_buf(),
                schema_version: version,
                limits: limits.iter().map(LimitsJson::from).collect(),
            })?;
        } else {
            ctx.out.line(&format!(
                "ledger ready at {} (schema v{version})",
                ledger.location_shown()
            ))?;
            for l in limits {
                ctx.out.line(&format!(
                    "  {}/{}: {} tokens/day, {} concurrent",
                    l.provider, l.account, l.daily_tokens, l.concurrent
                ))?;
            }
            if let Some(path) = config {
                ctx.out.line(&format!(
                    "wrote {} (every setting commented out)",
                    path.display()
                ))?;
            }
        }
        Ok(0)
    }
}

/// Writes the commented `config.toml` (0600) when there is none; an existing one is never
/// touched. Returns its path when written.
fn write_config_template() -> Result<Option<std::path::PathBuf>, Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Some(path) = crate::paths::default_config_path() else {
        return Ok(None);
    };
    let io = |source| Error::Io {
        what: format!("cannot write {}", path.display()),
        source,
    };
    if let Some(dir) = path.parent() {
        crate::store::files::ensure_private_dir(dir)?;
    }
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    file.write_all(crate::config_file::TEMPLATE.as_bytes())
        .map_err(io)?;
    Ok(Some(path))
}
