//! Moving a whole ledger to another store: `authledger migrate --from sqlite:PATH --to
//! postgres://…` when a team outgrows one machine.

use crate::audit::VerifyReport;
use crate::error::Error;
use crate::store::{CopyReport, Store};

use super::{Ledger, LedgerConfig};

/// What a move did: the rows copied per table, and the audit chain as verified on each side.
#[derive(Debug)]
pub struct MoveReport {
    /// Rows copied, per table.
    pub tables: CopyReport,
    /// The source's chain, verified before the copy.
    pub source_audit: VerifyReport,
    /// The target's chain, verified after it: the same rows, still intact.
    pub target_audit: VerifyReport,
}

/// Copies the ledger at `from` whole into the new, empty ledger at `to`: credentials stay
/// sealed with the same master key (which every user of the target needs), the audit trail
/// keeps every row and verifies on the other side. Refused, with nothing written, when the
/// source's chain does not verify or the target holds anything.
pub fn move_ledger(from: LedgerConfig, to: LedgerConfig) -> Result<MoveReport, Error> {
    let source = Ledger::open(from)?;
    let source_audit = source.verify_audit()?;
    if !source_audit.ok {
        return Err(Error::Invalid(crate::types::InvalidInput(format!(
            "the source's audit trail does not verify (row {}: {}); run `authledger audit \
             verify` on it",
            source_audit.first_bad_seq.unwrap_or_default(),
            source_audit.problem.clone().unwrap_or_default()
        ))));
    }
    let target_store = Store::open(&to.db_path, to.store_options())?;
    if let Some(table) = target_store.first_nonempty_table()? {
        return Err(not_empty(table));
    }
    let tables = match source.store.copy_into(&target_store) {
        Ok(t) => t,
        // Another copy filled the target between the check above and this one's transaction:
        // the same refusal, nothing written by this one.
        Err(e) => match target_store.first_nonempty_table()? {
            Some(table) => return Err(not_empty(table)),
            None => return Err(e.into()),
        },
    };
    drop(target_store);
    let target = Ledger::open(to)?;
    let target_audit = target.verify_audit()?;
    Ok(MoveReport {
        tables,
        source_audit,
        target_audit,
    })
}

/// The refusal of a target that holds anything (exit 2).
fn not_empty(table: &str) -> Error {
    Error::Invalid(crate::types::InvalidInput(format!(
        "the target is not empty (its {table} table has rows): migrate only into a new ledger"
    )))
}
