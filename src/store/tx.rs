//! The transaction handle the business layers work through.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::Arc;

use postgres::types::ToSql;

use super::read_cache::ReadCache;
use super::settings_rows::SET_SETTING;
use super::sql::{Dialect, Row, Value, for_postgres};
use super::{StoreError, TxExtension};

/// A value an upper layer stages in a transaction, handed to its [`TxExtension`] only once the
/// transaction commits.
pub type Staged = Arc<dyn std::any::Any + Send + Sync>;

/// The statements a PostgreSQL connection has prepared, by their text: the ledger runs the
/// same few dozen over and over, and preparing one is a round trip to the server.
pub(super) type StatementCache = HashMap<String, postgres::Statement>;

/// An open PostgreSQL transaction (begun by the store) and its connection's statements;
/// rolled back when dropped uncommitted.
pub(super) struct PgTx<'c> {
    txn: &'c mut postgres::Client,
    statements: &'c mut StatementCache,
    open: bool,
    /// What queries read that no write since could have changed (see [`ReadCache`]): a query
    /// asked again (selection, then the grant, read the same rows) is answered without a round
    /// trip.
    reads: ReadCache,
    /// A statement failed: the server has aborted the transaction until a savepoint before the
    /// failure is rolled back to, and would answer `COMMIT` with a silent rollback.
    failed: bool,
    /// Commands not sent yet, in order: savepoints (none matters until something is written)
    /// and writes whose outcome no one waits for. They go out with the next statement that
    /// needs them (a read, a write whose outcome is awaited, a command) or with `COMMIT`; a
    /// savepoint released or rolled back to before anything was sent is never sent, and the
    /// writes a rollback undoes are dropped unsent. A deferred write that fails fails the
    /// transaction where it is sent.
    deferred: Vec<Deferred>,
    /// The statements the session prepared by name.
    named: &'c HashSet<String>,
    /// The server as shown to people, named by each failure of a statement.
    server: &'c str,
}

/// What a PostgreSQL query answered: rows in binary form (a prepared statement) or in text
/// form (read together with `BEGIN`).
pub(super) enum PgRows {
    Binary(Vec<postgres::Row>),
    Text(Vec<postgres::SimpleQueryRow>),
}

impl PgRows {
    /// Feeds each row to `f` until it returns `false`.
    fn scan(
        &self,
        mut f: impl FnMut(&Row<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        match self {
            PgRows::Binary(rows) => {
                for r in rows {
                    if !f(&Row::Pg(r))? {
                        break;
                    }
                }
            }
            PgRows::Text(rows) => {
                for r in rows {
                    if !f(&Row::PgText(r))? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether a statement only reads (`SELECT`): only those are remembered or planned.
fn reads_only(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("select"))
}

/// The key a read is remembered under: the statement and its values.
fn read_key(sql: &str, args: &[Value<'_>]) -> String {
    format!("{sql}\u{0}{args:?}")
}

/// A command waiting for the next round trip: a savepoint's, or a write whose outcome no one
/// waits for (its values written in).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Deferred {
    Savepoint(String),
    Release(String),
    /// A statement as PostgreSQL takes it, and its values as literals.
    Write(String, Vec<String>),
}

impl Deferred {
    fn sql(&self, named: &HashSet<String>) -> String {
        match self {
            Deferred::Savepoint(name) => format!("SAVEPOINT {name}; "),
            Deferred::Release(name) => format!("RELEASE SAVEPOINT {name}; "),
            Deferred::Write(sql, literals) => {
                format!("{}; ", super::sql::named_or_text(named, sql, literals))
            }
        }
    }
}

impl<'c> PgTx<'c> {
    /// Takes over a connection on which the store has just run `BEGIN`.
    pub(super) fn begun(
        client: &'c mut postgres::Client,
        statements: &'c mut StatementCache,
        named: &'c HashSet<String>,
        server: &'c str,
    ) -> Self {
        PgTx {
            txn: client,
            statements,
            open: true,
            reads: ReadCache::default(),
            failed: false,
            deferred: Vec::new(),
            named,
            server,
        }
    }

    /// Remembers what a planned read (see [`Planned`]) answered, as the store read it with
    /// `BEGIN`, under the ledger's lock.
    pub(super) fn remember(&mut self, key: String, rows: Vec<postgres::SimpleQueryRow>) {
        self.reads.remember(key, Rc::new(PgRows::Text(rows)));
    }

    /// Reads what `planned` names and this transaction has not read (or has written since),
    /// in one round trip with the queued commands, and remembers the rows: the reads of the
    /// next request of a batch, after the writes of the one before it.
    fn read_planned(&mut self, planned: Vec<Planned>) -> Result<(), StoreError> {
        let missing: Vec<Planned> = planned
            .into_iter()
            .filter(|p| !self.reads.has(&p.key))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let queued = self.deferred.len();
        let mut text = self.take_deferred();
        for p in &missing {
            text.push_str(&super::sql::named_or_text(self.named, &p.sql, &p.literals));
            text.push_str("; ");
        }
        let answer = self.txn.simple_query(&text).map_err(StoreError::from);
        let answer = self.noted(answer)?;
        // One answer per statement, in order: the queued commands', then the reads'.
        let answers = super::pg::rows_by_statement(answer)
            .into_iter()
            .skip(queued);
        for (p, rows) in missing.into_iter().zip(answers) {
            self.remember(p.key, rows);
        }
        Ok(())
    }

    /// Queues a write whose outcome no one waits for (see [`PgTx::deferred`]).
    fn write_later(&mut self, sql: String, literals: Vec<String>) {
        self.reads.forget_changed_by(&sql);
        self.deferred.push(Deferred::Write(sql, literals));
    }

    /// The deferred commands as one text to prefix the next round trip with.
    fn take_deferred(&mut self) -> String {
        let named = self.named;
        self.deferred.drain(..).map(|d| d.sql(named)).collect()
    }

    /// Sends the deferred commands if a write is among them.
    fn send_queued_writes(&mut self) -> Result<(), StoreError> {
        if self
            .deferred
            .iter()
            .any(|d| matches!(d, Deferred::Write(..)))
        {
            self.flush_deferred()?;
        }
        Ok(())
    }

    /// Sends the deferred commands before a statement that needs them.
    fn flush_deferred(&mut self) -> Result<(), StoreError> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let sql = self.take_deferred();
        let r = self.txn.batch_execute(&sql).map_err(StoreError::from);
        self.noted(r)
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let prepared = self.txn.prepare(&for_postgres(sql))?;
        self.statements.insert(sql.to_string(), prepared.clone());
        Ok(prepared)
    }

    /// Notes a failed statement (see [`PgTx::failed`]); a failure of the connection names the
    /// server.
    fn noted<T>(&mut self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        r.map_err(|e| {
            self.failed = true;
            super::error::at_server(self.server, e)
        })
    }

    fn execute(&mut self, sql: &str, args: &[Value<'_>]) -> Result<u64, StoreError> {
        self.reads.forget_changed_by(sql);
        self.flush_deferred()?;
        let r = self
            .statement(sql)
            .and_then(|stmt| Ok(self.txn.execute(&stmt, &pg_args(args))?));
        self.noted(r)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        if let Some(name) = sql.strip_prefix("SAVEPOINT ") {
            self.deferred.push(Deferred::Savepoint(name.to_string()));
            return Ok(());
        }
        if let Some(name) = sql.strip_prefix("RELEASE SAVEPOINT ") {
            let unsent = Deferred::Savepoint(name.to_string());
            if self.deferred.last() == Some(&unsent) {
                // Set and released with nothing sent between: it never needs to exist.
                self.deferred.pop();
            } else {
                self.deferred.push(Deferred::Release(name.to_string()));
            }
            return Ok(());
        }
        if let Some(name) = sql.strip_prefix("ROLLBACK TO SAVEPOINT ")
            && let Some(at) = self
                .deferred
                .iter()
                .rposition(|d| *d == Deferred::Savepoint(name.to_string()))
        {
            if self.failed {
                // A read failed after the savepoint was asked for, and the server never set
                // it: nothing can take the transaction back to before the failure.
                return Err(StoreError::Backend(
                    "a statement failed where no savepoint was set; the transaction cannot go on"
                        .into(),
                ));
            }
            // Nothing was sent since the savepoint was asked for: undoing is dropping what was
            // queued after it.
            self.deferred.truncate(at + 1);
            return Ok(());
        }
        // Anything else may change what was read.
        self.reads.clear();
        if sql.starts_with("ROLLBACK TO SAVEPOINT ") {
            // The savepoint was sent, so all that is queued came after it: undone unsent (a
            // queued write that would fail must not stop the rollback).
            self.deferred.clear();
        }
        let text = format!("{}{sql}", self.take_deferred());
        let r = self.txn.batch_execute(&text).map_err(StoreError::from);
        if r.is_ok() && sql.starts_with("ROLLBACK TO SAVEPOINT") {
            // Back before the failure: the transaction may go on.
            self.failed = false;
        }
        self.noted(r)
    }

    fn query(&mut self, sql: &str, args: &[Value<'_>]) -> Result<Rc<PgRows>, StoreError> {
        let r = self.query_uncounted(sql, args);
        self.noted(r)
    }

    /// The rows `sql` with `args` reads: remembered from an earlier identical read when
    /// nothing written since could change them.
    fn query_uncounted(&mut self, sql: &str, args: &[Value<'_>]) -> Result<Rc<PgRows>, StoreError> {
        // A statement that returns rows may also write (`INSERT … RETURNING`): it is never
        // remembered, and it forgets what it may change.
        if !reads_only(sql) {
            self.reads.forget_changed_by(sql);
            self.flush_deferred()?;
            let stmt = self.statement(sql)?;
            return Ok(Rc::new(PgRows::Binary(
                self.txn.query(&stmt, &pg_args(args))?,
            )));
        }
        let key = read_key(sql, args);
        if let Some(rows) = self.reads.get(&key) {
            // Queued writes were forgotten from it as they were queued.
            return Ok(rows);
        }
        // What it reads must include the queued writes.
        self.send_queued_writes()?;
        let stmt = self.statement(sql)?;
        let rows = Rc::new(PgRows::Binary(self.txn.query(&stmt, &pg_args(args))?));
        self.reads.remember(key, rows.clone());
        Ok(rows)
    }

    /// Commits, writing `audit_head` (the chain's recorded head) in the same round trip.
    fn commit(mut self, audit_head: Option<&str>) -> Result<(), StoreError> {
        if self.failed {
            // Drop rolls back: what this transaction wrote is not committed, and its caller
            // hears so rather than a success the server would not honour.
            return Err(StoreError::Backend(
                "a statement of this transaction failed; it was rolled back".into(),
            ));
        }
        let mut text = self.take_deferred();
        if let Some(head) = audit_head {
            let literals = [AUDIT_HEAD_KEY, head].map(|v| super::sql::literal(&Value::Text(v)));
            let [Some(key), Some(head)] = literals else {
                return Err(StoreError::BadRow {
                    what: "audit head",
                    value: crate::types::truncate_for_message(head),
                });
            };
            let sql = for_postgres(SET_SETTING);
            text.push_str(&super::sql::named_or_text(self.named, &sql, &[key, head]));
            text.push_str("; ");
        }
        text.push_str("COMMIT");
        self.txn.batch_execute(&text)?;
        self.open = false;
        Ok(())
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if self.open && !self.txn.is_closed() {
            // A failed rollback leaves a broken connection, which the pool then discards.
            let _ = self.txn.batch_execute("ROLLBACK");
        }
    }
}

/// The engine's own transaction.
pub(super) enum Conn<'c> {
    Lite(rusqlite::Transaction<'c>),
    Pg(RefCell<PgTx<'c>>),
    /// No transaction: the reads asked of it are noted, to be sent ahead with a write's
    /// `BEGIN` (see [`Store::write_reading`](super::Store::write_reading)), and answered with
    /// no rows.
    Plan(RefCell<Vec<Planned>>),
}

/// A read to send with a write's `BEGIN`: the key the transaction remembers its rows under,
/// the statement as PostgreSQL takes it, and its values as literals.
pub(super) struct Planned {
    pub(super) key: String,
    pub(super) sql: String,
    pub(super) literals: Vec<String>,
}

/// One open transaction. Its methods (spread over the `*_rows` modules) read and write ledger
/// records; dropping it without [`Store::write`](super::Store::write) committing rolls back.
pub struct Tx<'c> {
    conn: Conn<'c>,
    /// The upper layers' state this store's transactions carry (none for a bare store).
    extension: Option<Arc<dyn TxExtension>>,
    /// What this transaction staged for the extension: handed over only once it commits, so
    /// nothing of a rolled-back transaction is ever used by a later one.
    staged: RefCell<Option<Staged>>,
    /// The end of the audit chain as this transaction knows it.
    pub(super) audit: RefCell<AuditCursor>,
}

/// The audit chain's end as one transaction knows it. Appending a row needs the last row
/// and moves the recorded head; under the ledger's lock nothing but this transaction appends,
/// so the tail is read at most once (on PostgreSQL together with `BEGIN`) and the head is
/// written once, at commit, however many rows the transaction appends.
#[derive(Debug, Clone, Default)]
pub(super) struct AuditCursor {
    /// The last row, `(seq, hash)`, once known (`Some(None)`: the trail is empty).
    pub(super) tail: Option<Option<(i64, String)>>,
    /// The head to record at commit, once a row was appended.
    pub(super) head: Option<String>,
}

/// The settings key holding the chain's last `seq:hash` (and, once keyed, a tag over them).
pub const AUDIT_HEAD_KEY: &str = "audit_head";

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

fn pg_args<'a>(args: &'a [Value<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl<'c> Tx<'c> {
    pub(super) fn new(conn: Conn<'c>, extension: Option<Arc<dyn TxExtension>>) -> Self {
        Tx {
            conn,
            extension,
            staged: RefCell::new(None),
            audit: RefCell::new(AuditCursor::default()),
        }
    }

    /// A transaction that runs nothing and notes the reads asked of it.
    pub(super) fn plan() -> Tx<'static> {
        Tx::new(Conn::Plan(RefCell::new(Vec::new())), None).with_audit_tail(None)
    }

    /// The reads a [`plan`](Self::plan) transaction noted, each once.
    pub(super) fn into_planned(self) -> Vec<Planned> {
        match self.conn {
            Conn::Plan(p) => p.into_inner(),
            Conn::Lite(_) | Conn::Pg(_) => Vec::new(),
        }
    }

    /// Notes a read on a plan transaction.
    fn note(planned: &RefCell<Vec<Planned>>, sql: &str, args: &[Value<'_>]) {
        if !reads_only(sql) {
            return;
        }
        let key = read_key(sql, args);
        let mut planned = planned.borrow_mut();
        if planned.iter().any(|p| p.key == key) {
            return;
        }
        let Some(literals) = args
            .iter()
            .map(super::sql::literal)
            .collect::<Option<Vec<_>>>()
        else {
            return;
        };
        let sql = for_postgres(sql).into_owned();
        if super::sql::fill(&sql, &literals).is_some() {
            planned.push(Planned { key, sql, literals });
        }
    }

    /// A transaction that already read the audit chain's last row (with its `BEGIN`).
    pub(super) fn with_audit_tail(mut self, tail: Option<(i64, String)>) -> Self {
        self.audit.get_mut().tail = Some(tail);
        self
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

    /// Whether each statement is a round trip to a server (PostgreSQL) rather than a call into
    /// the process (SQLite): there, reading a small table whole once and answering the
    /// transaction's lookups from it beats one indexed query per lookup.
    pub(super) fn reads_cost_round_trips(&self) -> bool {
        matches!(self.conn, Conn::Pg(_) | Conn::Plan(_))
    }

    /// Which engine this transaction runs on, for the rare statement written per dialect.
    pub(super) fn dialect(&self) -> Dialect {
        match self.conn {
            Conn::Lite(_) => Dialect::Sqlite,
            Conn::Pg(_) | Conn::Plan(_) => Dialect::Postgres,
        }
    }

    /// Executes one statement through the connection's statement cache (re-preparing the
    /// same few dozen statements dominated a transaction); returns the rows it changed.
    pub(super) fn exec(&self, sql: &str, args: &[Value<'_>]) -> Result<u64, StoreError> {
        match &self.conn {
            Conn::Lite(t) => Ok(t
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(args))? as u64),
            Conn::Pg(c) => c.borrow_mut().execute(sql, args),
            Conn::Plan(_) => Err(StoreError::Backend(
                "a read-ahead plan reads; it cannot write".into(),
            )),
        }
    }

    /// Sends whatever is queued (writes of [`exec_later`](Self::exec_later), savepoint
    /// commands) now, so a failure is this caller's.
    fn send_deferred(&self) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Pg(c) => c.borrow_mut().flush_deferred(),
            Conn::Lite(_) | Conn::Plan(_) => Ok(()),
        }
    }

    /// Reads ahead, in one round trip, what `ahead` reads (on a plan, see
    /// [`Store::write_reading`](super::Store::write_reading)) and this transaction does not
    /// know yet: a batch's next request then decides without a round trip per read. SQLite
    /// reads in-process: `ahead` is not run there.
    pub fn read_ahead(&self, ahead: impl FnOnce(&Tx<'_>)) -> Result<(), StoreError> {
        let Conn::Pg(c) = &self.conn else {
            return Ok(());
        };
        let plan = Tx::plan();
        ahead(&plan);
        c.borrow_mut().read_planned(plan.into_planned())
    }

    /// Executes a write whose outcome (rows changed, a constraint's refusal) the caller does
    /// not wait for. SQLite runs it now; a server transaction sends it with its next round
    /// trip, `COMMIT` at the latest, and fails there if it fails (see [`PgTx::deferred`]).
    pub(super) fn exec_later(&self, sql: &str, args: &[Value<'_>]) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Pg(c) => {
                let literals = args
                    .iter()
                    .map(super::sql::literal)
                    .collect::<Option<Vec<_>>>();
                let sql_pg = for_postgres(sql);
                match literals.filter(|l| super::sql::fill(&sql_pg, l).is_some()) {
                    Some(literals) => c.borrow_mut().write_later(sql_pg.into_owned(), literals),
                    None => {
                        c.borrow_mut().execute(sql, args)?;
                    }
                }
                Ok(())
            }
            Conn::Lite(_) | Conn::Plan(_) => self.exec(sql, args).map(|_| ()),
        }
    }

    /// The first row of a query, read by `f`, or `None` when it returns none.
    pub(super) fn one<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match &self.conn {
            Conn::Lite(t) => {
                let mut stmt = t.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                match rows.next()? {
                    Some(r) => f(&Row::Lite(r)).map(Some),
                    None => Ok(None),
                }
            }
            Conn::Pg(c) => {
                let rows = c.borrow_mut().query(sql, args)?;
                let mut f = Some(f);
                let mut out = None;
                rows.scan(|r| {
                    out = f.take().map(|f| f(r)).transpose()?;
                    Ok(false)
                })?;
                Ok(out)
            }
            Conn::Plan(p) => {
                Self::note(p, sql, args);
                Ok(None)
            }
        }
    }

    /// The one row an aggregate query always returns.
    pub(super) fn single<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.one(sql, args, f)?.ok_or_else(|| StoreError::BadRow {
            what: "aggregate",
            value: "no row".into(),
        })
    }

    /// Every row of a query, each read by `f`.
    pub(super) fn all<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.scan(sql, args, |r| {
            out.push(f(r)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Feeds the rows of a query to `f` until it returns `false`.
    pub(super) fn scan(
        &self,
        sql: &str,
        args: &[Value<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Lite(t) => {
                let mut stmt = t.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                while let Some(r) = rows.next()? {
                    if !f(&Row::Lite(r))? {
                        break;
                    }
                }
            }
            Conn::Pg(c) => {
                let rows = c.borrow_mut().query(sql, args)?;
                rows.scan(f)?;
            }
            Conn::Plan(p) => Self::note(p, sql, args),
        }
        Ok(())
    }

    /// Runs a statement that takes no values and returns no rows (savepoints, locks), as
    /// plain text.
    pub(super) fn command(&self, sql: &str) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Lite(t) => t.execute_batch(sql)?,
            Conn::Pg(c) => c.borrow_mut().batch(sql)?,
            Conn::Plan(_) => {}
        }
        Ok(())
    }

    pub(super) fn commit(self) -> Result<(), StoreError> {
        let staged = self.staged.into_inner();
        let head = self.audit.into_inner().head;
        match self.conn {
            Conn::Lite(t) => {
                if let Some(head) = &head {
                    t.prepare_cached(SET_SETTING)?
                        .execute(rusqlite::params![AUDIT_HEAD_KEY, head])?;
                }
                t.commit()?
            }
            Conn::Pg(c) => c.into_inner().commit(head.as_deref())?,
            Conn::Plan(_) => {}
        }
        if let (Some(extension), Some(value)) = (&self.extension, staged) {
            extension.committed(value);
        }
        Ok(())
    }

    /// Runs `f` inside a savepoint that is rolled back when it fails, so one request of a batch
    /// undoes only itself. The outer error is the savepoint's own failure (the transaction is
    /// then unusable); the inner one is `f`'s, or that of a write `f` queued (sent before the
    /// savepoint is released, so a request is never reported done while a write of it fails
    /// later and takes the others with it).
    pub fn isolated<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Tx<'c>) -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        self.command("SAVEPOINT one")?;
        let staged_before = self.staged.borrow().clone();
        let audit_before = self.audit.borrow().clone();
        let result = f(self).and_then(|value| {
            // The request's queued writes and the savepoint's release go now, in one round
            // trip: a write that fails is this request's, and no release waits for the next.
            self.command("RELEASE SAVEPOINT one")?;
            self.send_deferred()?;
            Ok(value)
        });
        if result.is_err() {
            self.command("ROLLBACK TO SAVEPOINT one")?;
            // What the undone writes staged or appended is undone with them.
            *self.staged.borrow_mut() = staged_before;
            *self.audit.borrow_mut() = audit_before;
            self.command("RELEASE SAVEPOINT one")?;
            self.send_deferred()?;
        }
        Ok(result)
    }

    /// Runs `f` inside a savepoint that is rolled back when `f` returns `Ok(false)`: a decision
    /// that was refused leaves no trace but what the caller writes afterwards.
    pub fn undo_unless<E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Tx<'c>) -> Result<bool, E>,
    ) -> Result<bool, E> {
        self.command("SAVEPOINT decide")?;
        let staged_before = self.staged.borrow().clone();
        let audit_before = self.audit.borrow().clone();
        let keep = f(self)?;
        if !keep {
            self.command("ROLLBACK TO SAVEPOINT decide")?;
            *self.staged.borrow_mut() = staged_before;
            *self.audit.borrow_mut() = audit_before;
        }
        self.command("RELEASE SAVEPOINT decide")?;
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
