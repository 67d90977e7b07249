//! The transaction handle the business layers work through.

use std::str::FromStr;

use rusqlite::Transaction;

use super::StoreError;

/// One open transaction. Its methods (spread over the `*_rows` modules) read and write ledger
/// records; dropping it without [`Store::write`](super::Store::write) committing rolls back.
pub struct Tx<'c> {
    pub(super) txn: Transaction<'c>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl<'c> Tx<'c> {
    pub(super) fn new(txn: Transaction<'c>) -> Self {
        Tx { txn }
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
        self.txn.commit()
    }

    /// Runs `f` inside a savepoint that is rolled back when it fails, so one request of a batch
    /// undoes only itself. The outer error is the savepoint's own failure (the transaction is
    /// then unusable); the inner one is `f`'s.
    pub fn isolated<T, E>(
        &mut self,
        f: impl FnOnce(&mut Tx<'c>) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        self.exec("SAVEPOINT one", [])?;
        let result = f(self);
        if result.is_err() {
            self.exec("ROLLBACK TO one", [])?;
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
        let keep = f(self)?;
        if !keep {
            self.exec("ROLLBACK TO decide", [])
                .map_err(StoreError::from)?;
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
