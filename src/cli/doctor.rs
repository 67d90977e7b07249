//! `authledger doctor`: is this ledger healthy and private?

use clap::Args;

use super::Ctx;
use super::output::table;
use crate::error::{Error, exit};
use crate::paths::default_config_path;
use crate::store::files::mode_of;

/// Check permissions (ledger files, key files, config.toml), integrity, schema version and
/// the audit chain.
#[derive(Debug, Args)]
pub struct DoctorCmd {}

use super::json::CheckJson as Check;

impl DoctorCmd {
    /// Runs every check; exit 5 for a storage problem, 1 for loose permissions.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        let store = ledger.store_check()?;
        let mut checks = Vec::new();
        let mut storage_bad = false;
        let mut perms_bad = false;

        storage_bad |= !store.schema_current();
        checks.push(Check {
            check: "schema".into(),
            ok: store.schema_current(),
            detail: format!(
                "version {} (this build: {})",
                store.schema_version, store.supported_version
            ),
        });

        storage_bad |= store.integrity.is_some();
        checks.push(Check {
            check: "integrity".into(),
            ok: store.integrity.is_none(),
            detail: store.integrity.clone().unwrap_or_else(|| "ok".into()),
        });

        // What only this kind of store can tell (SQLite: the journal mode).
        for fact in &store.facts {
            checks.push(Check {
                check: fact.check.clone(),
                ok: fact.ok,
                detail: fact.detail.clone(),
            });
        }

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
        let mut private = store.files;
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
