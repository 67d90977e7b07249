//! The transaction handle the business layers work through.

use std::cell::RefCell;
use std::str::FromStr;
use std::sync::Arc;

use rusqlite::Transaction;

use super::{StoreError, TxExtension};

/// A value an upper layer stages in a transaction, handed to its [`TxExtension`] only once the
/// transaction commits.
pub type Staged = Arc<dyn std::any::Any + Send + Sync>;

/// One open transaction. Its methods (spread over the `*_rows` modules) read and write ledger
/// records; dropping it without [`Store::write`](super::Store::write) committing rolls back.
pub struct Tx<'c> {
    pub(super) txn: Transaction<'c>,
    /// The upper layers' state this store's transactions carry (none for a bare store).
    extension: Option<Arc<dyn TxExtension>>,
    /// What this transaction staged for the extension: handed over only once it commits, so
    /// nothing of a rolled-back transaction is ever used by a later one.
    staged: RefCell<Option<Staged>>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl<'c> Tx<'c> {
    pub(super) fn new(txn: Transaction<'c>, extension: Option<Arc<dyn TxExtension>>) -> Self {
        Tx {
            txn,
            extension,
            staged: RefCell::new(None),
        }
    }

    /// The extension of the store this transaction belongs to, if it is a `T`.
    pub fn extension<T: TxExtension>(&self) -> Option<&T> {
        let any: &dyn std::any::Any = self.extension.as_deref()?.as_any();
        any.downcast_ref::<T>()
    }

    /// What this transaction staged, if it is a `T`.
    pub fn staged<T: std::any::Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.staged.borrow().clone()?.downcast::<T>().ok()
    }

    /// Stages `value` for the extension, handed to it once this transaction commits.
    pub fn stage(&self, value: Staged) {
        *self.staged.borrow_mut() = Some(value);
    }

    /// Executes one statement through the connection's statement cache: the ledger runs the
    /// same few dozen statements over and over, and re-preparing them dominated a transaction.
    pub(super) fn exec<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> rusqlite::Result<usize> {
        self.txn.prepare_cached(sql)?.execute(params)
    }

    /// [`exec`](Self::exec) for a query returning one row.
    pub(super) fn one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.txn.prepare_cached(sql)?.query_row(params, f)
    }

    pub(super) fn commit(self) -> Result<(), rusqlite::Error> {
        let staged = self.staged.into_inner();
        self.txn.commit()?;
        if let (Some(extension), Some(value)) = (&self.extension, staged) {
            extension.committed(value);
        }
        Ok(())
    }

    /// Runs `f` inside a savepoint that is rolled back when it fails, so one request of a batch
    /// undoes only itself. The outer error is the savepoint's own failure (the transaction is
    /// then unusable); the inner one is `f`'s.
    pub fn isolated<T, E>(
        &mut self,
        f: impl FnOnce(&mut Tx<'c>) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        self.exec("SAVEPOINT one", [])?;
        let staged_before = self.staged.borrow().clone();
        let result = f(self);
        if result.is_err() {
            self.exec("ROLLBACK TO one", [])?;
            // What the undone writes staged is undone with them.
            *self.staged.borrow_mut() = staged_before;
        }
        self.exec("RELEASE one", [])?;
        Ok(result)
    }

    /// Runs `f` inside a savepoint that is rolled back when `f` returns `Ok(false)`: a decision
    /// that was refused leaves no trace but what the caller writes afterwards.
    pub fn undo_unless<E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Tx<'c>) -> Result<bool, E>,
    ) -> Result<bool, E> {
        self.exec("SAVEPOINT decide", [])
            .map_err(StoreError::from)?;
        let staged_before = self.staged.borrow().clone();
        let keep = f(self)?;
        if !keep {
            self.exec("ROLLBACK TO decide", [])
                .map_err(StoreError::from)?;
            *self.staged.borrow_mut() = staged_before;
        }
        self.exec("RELEASE decide", []).map_err(StoreError::from)?;
        Ok(keep)
    }
}

/// Parses a stored text column back into its type, reporting a hand-edited value clearly.
pub(super) fn parse_col<T: FromStr>(what: &'static str, s: String) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::BadRow {
        what,
        value: crate::types::truncate_for_message(&s),
    })
}
