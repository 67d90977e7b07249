//! The transaction handle the business layers work through.

use std::cell::RefCell;
use std::str::FromStr;
use std::sync::Arc;

use rusqlite::Transaction;

use super::StoreError;
use crate::audit::{ChainKey, ChainSlot};

/// One open transaction. Its methods (spread over the `*_rows` modules) read and write ledger
/// records; dropping it without [`Store::write`](super::Store::write) committing rolls back.
pub struct Tx<'c> {
    pub(super) txn: Transaction<'c>,
    /// How this process reaches the audit chain's key (none for a bare store).
    chain: Option<Arc<ChainSlot>>,
    /// A chain key first made in this transaction: published to the slot only once it
    /// commits, so a rolled-back secret never keys a later row.
    fresh_chain_key: RefCell<Option<Arc<ChainKey>>>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl<'c> Tx<'c> {
    pub(super) fn new(txn: Transaction<'c>, chain: Option<Arc<ChainSlot>>) -> Self {
        Tx {
            txn,
            chain,
            fresh_chain_key: RefCell::new(None),
        }
    }

    /// The audit chain's key slot of the ledger this transaction belongs to.
    pub fn chain_slot(&self) -> Option<&Arc<ChainSlot>> {
        self.chain.as_ref()
    }

    /// The chain key made in this transaction, if any.
    pub fn fresh_chain_key(&self) -> Option<Arc<ChainKey>> {
        self.fresh_chain_key.borrow().clone()
    }

    /// Records a chain key made in this transaction (see [`fresh_chain_key`](Self::fresh_chain_key)).
    pub fn set_fresh_chain_key(&self, key: Arc<ChainKey>) {
        *self.fresh_chain_key.borrow_mut() = Some(key);
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
        let fresh = self.fresh_chain_key.into_inner();
        self.txn.commit()?;
        if let (Some(slot), Some(key)) = (&self.chain, fresh) {
            slot.publish(key);
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
