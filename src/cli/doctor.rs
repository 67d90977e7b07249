//! `authledger doctor`: is this ledger healthy and private?

use clap::Args;
use serde::Serialize;

use super::Ctx;
use super::output::table;
use crate::error::{Error, exit};
use crate::paths::default_config_path;
use crate::store::files::mode_of;

/// Check permissions (ledger files, key files, config.toml), integrity, schema version and
/// the audit chain.
#[derive(Debug, Args)]
pub struct DoctorCmd {}

#[derive(Debug, Serialize)]
struct Check {
    check: String,
    ok: bool,
    detail: String,
}

impl DoctorCmd {
    /// Runs every check; exit 5 for a storage problem, 1 for loose permissions.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        let store = ledger.store();
        let mut checks = Vec::new();
        let mut storage_bad = false;
        let mut perms_bad = false;

        let (latest, found) = store.schema_versions()?;
        storage_bad |= latest != found;
        checks.push(Check {
            check: "schema".into(),
            ok: latest == found,
            detail: format!("version {found} (this build: {latest})"),
        });

        let integrity = store.integrity_problem()?;
        storage_bad |= integrity.is_some();
        checks.push(Check {
            check: "integrity".into(),
            ok: integrity.is_none(),
            detail: integrity.unwrap_or_else(|| "ok".into()),
        });

        let mode = store.journal_mode()?;
        checks.push(Check {
            check: "journal".into(),
            ok: mode == "wal",
            detail: mode,
        });

        // Informational: the ledger is correct without a daemon, only slower under contention.
        checks.push(Check {
            check: "daemon".into(),
            ok: true,
            detail: match crate::daemon::serving(ledger.db_path()) {
                Some(socket) => format!("serving writes at {}", socket.display()),
                None => {
                    "none: writes go to the database directly (authledger daemon adds group commit)"
                        .into()
                }
            },
        });

        let audit = ledger.verify_audit()?;
        storage_bad |= !audit.ok;
        checks.push(Check {
            check: "audit chain".into(),
            ok: audit.ok,
            detail: match (&audit.first_bad_seq, &audit.problem) {
                (Some(seq), Some(p)) => format!("broken at row {seq}: {p}"),
                _ => format!("{} rows intact", audit.rows),
            },
        });

        // Files only their owner may read or write: the ledger, its directory, the key files
        // and their directories. `config.toml` holds no secret but says where tokens are sent,
        // so nobody else may write it.
        let mut private = store.files();
        if let Some(dir) = ledger.db_path().parent() {
            private.push(dir.to_path_buf());
        }
        for key in ledger.key_files()? {
            if let Some(dir) = key.parent()
                && !private.iter().any(|p| p == dir)
            {
                private.push(dir.to_path_buf());
            }
            private.push(key);
        }
        let config = default_config_path().into_iter().map(|p| (p, 0o022));
        for (p, loose) in private.into_iter().map(|p| (p, 0o077)).chain(config) {
            let Some(m) = mode_of(&p) else { continue };
            let ok = m & loose == 0;
            perms_bad |= !ok;
            let why = if loose == 0o077 {
                " (open to others: chmod go-rwx)"
            } else {
                " (writable by others: chmod go-w)"
            };
            checks.push(Check {
                check: format!("permissions {}", p.display()),
                ok,
                detail: format!("{m:o}{}", if ok { "" } else { why }),
            });
        }

        if ctx.out.json {
            ctx.out.json(&checks)?;
        } else {
            let mut t = table(&["check", "ok", "detail"]);
            for c in &checks {
                t.add_row(vec![
                    c.check.clone(),
                    if c.ok { "ok" } else { "FAIL" }.into(),
                    c.detail.clone(),
                ]);
            }
            ctx.out.line(&t.to_string())?;
        }
        Ok(if storage_bad {
            exit::STORAGE
        } else if perms_bad {
            exit::OTHER
        } else {
            exit::OK
        })
    }
}
