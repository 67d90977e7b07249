//! `authledger doctor`: is this ledger healthy and private?

use clap::Args;

use super::Ctx;
use super::output::{Grid, coloured};
use crate::error::{Error, exit};
use crate::paths::default_config_path;
use crate::store::files::mode_of;
use comfy_table::{Cell, Color};

/// Check permissions (ledger files, key files, config.toml), integrity, schema version and
/// the audit chain.
#[derive(Debug, Args)]
pub struct DoctorCmd {}

use super::json::CheckJson as Check;

impl DoctorCmd {
    /// Runs every check; exit 5 for a storage problem, 1 for loose permissions.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let mut checks = Vec::new();
        // A broken `config.toml` is one finding among the others, not a reason to stop.
        let file = match ctx.file_config() {
            Ok(file) => {
                checks.push(Check {
                    check: "config".into(),
                    ok: true,
                    detail: match default_config_path() {
                        Some(p) if p.exists() => format!("{} parses", p.display()),
                        _ => "no config.toml (defaults)".into(),
                    },
                });
                file
            }
            Err(e) => {
                checks.push(Check {
                    check: "config".into(),
                    ok: false,
                    detail: e.to_string(),
                });
                crate::config_file::ConfigFile::default()
            }
        };
        let config_bad = checks.iter().any(|c| !c.ok);
        // A ledger that cannot be opened (read-only, corrupt, newer) is reported, not fatal.
        let ledger = match ctx.open_with(file) {
            Ok(l) => l,
            Err(e) => {
                let code = e.exit_code();
                checks.push(Check {
                    check: "ledger".into(),
                    ok: false,
                    detail: e.to_string(),
                });
                print(ctx, &checks)?;
                return Ok(code);
            }
        };
        // A step that fails (a read-only or damaged ledger) is reported in the table too.
        let failed = |checks: &mut Vec<Check>, what: &str, e: Error| -> Result<i32, Error> {
            let code = e.exit_code();
            checks.push(Check {
                check: what.into(),
                ok: false,
                detail: e.to_string(),
            });
            print(ctx, checks)?;
            Ok(code)
        };
        let store = match ledger.store_check() {
            Ok(s) => s,
            Err(e) => return failed(&mut checks, "ledger", e),
        };
        let mut storage_bad = false;
        let mut perms_bad = config_bad;

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
            storage_bad |= !fact.ok;
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

        let audit = match ledger.verify_audit() {
            Ok(a) => a,
            Err(e) => return failed(&mut checks, "audit chain", e),
        };
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
        let keys = match ledger.key_files() {
            Ok(k) => k,
            Err(e) => return failed(&mut checks, "keys", e),
        };
        for key in keys {
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

        print(ctx, &checks)?;
        Ok(if storage_bad {
            exit::STORAGE
        } else if perms_bad {
            exit::OTHER
        } else {
            exit::OK
        })
    }
}

/// The checks as a table, or as JSON.
fn print(ctx: &Ctx, checks: &[Check]) -> Result<(), Error> {
    if ctx.out.json {
        return ctx.out.json(&checks);
    }
    let mut t = Grid::new(&[("check", 0), ("ok", 0), ("detail", 0)]);
    for c in checks {
        // A file's path goes beside its mode, where a long one can wrap.
        let (check, detail) = match c.check.strip_prefix("permissions ") {
            Some(path) => {
                let (mode, why) = c.detail.split_once(' ').unwrap_or((&c.detail, ""));
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(" {why}")
                };
                ("permissions", format!("{mode} {path}{why}"))
            }
            None => (c.check.as_str(), c.detail.clone()),
        };
        t.row([
            Cell::new(check),
            if c.ok {
                coloured("ok", Color::Green)
            } else {
                coloured("FAIL", Color::Red)
            },
            Cell::new(detail),
        ]);
    }
    ctx.out.line(&t.render(&ctx.out.screen()))
}
