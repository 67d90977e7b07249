//! One dialect of SQL for both stores: the row modules write each statement once, with `?N`
//! placeholders and portable SQL, bind [`Value`]s and read a [`Row`] by column name; this
//! module hands them to SQLite as they are and rewrites them for PostgreSQL.
//!
//! Portable means: integers are 64-bit (`BIGINT` on the server), a `SUM` is cast back to
//! `BIGINT` (PostgreSQL widens it to `numeric`), upserts are `ON CONFLICT … DO UPDATE` with
//! the target's columns qualified, and a derived table has an alias. The two spots that cannot
//! be written once (`INDEXED BY` hints and the day of a timestamp) are handled here.

use std::borrow::Cow;
use std::error::Error;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::StoreError;

/// A value bound to a placeholder.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Int(i64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// Turns a Rust value into a bound [`Value`] without copying it.
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value<'_>;
}

impl ToValue for i64 {
    fn to_value(&self) -> Value<'_> {
        Value::Int(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// The values bound to a statement's `?1`, `?2`, … in order.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::store::sql::ToValue::to_value(&$v)),*][..]
    };
}
pub(crate) use args;

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            // The server infers a placeholder's type from where it stands: an integer may be
            // asked for as any of its integer types.
            Value::Int(i) if *ty == Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::UNKNOWN,
            Type::BYTEA,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

/// A column type the stores can read back: from SQLite, from PostgreSQL's binary rows, and
/// from its text rows (what a multi-statement round trip answers).
pub trait FromColumn:
    rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a> + FromText
{
}
impl<T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a> + FromText> FromColumn
    for T
{
}

/// A value read back from PostgreSQL's text form (`None`: SQL NULL).
pub trait FromText: Sized {
    /// The value, or why the text is not one.
    fn from_text(text: Option<&str>) -> Result<Self, String>;
}

impl FromText for i64 {
    fn from_text(text: Option<&str>) -> Result<Self, String> {
        let t = text.ok_or("NULL where a number belongs")?;
        t.parse().map_err(|_| format!("{t:?} is not a number"))
    }
}

impl FromText for f64 {
    fn from_text(text: Option<&str>) -> Result<Self, String> {
        let t = text.ok_or("NULL where a number belongs")?;
        t.parse().map_err(|_| format!("{t:?} is not a number"))
    }
}

impl FromText for bool {
    fn from_text(text: Option<&str>) -> Result<Self, String> {
        match text {
            Some("t") => Ok(true),
            Some("f") => Ok(false),
            other => Err(format!("{other:?} is not a boolean")),
        }
    }
}

impl FromText for String {
    fn from_text(text: Option<&str>) -> Result<Self, String> {
        Ok(text.ok_or("NULL where text belongs")?.to_string())
    }
}

impl FromText for Vec<u8> {
    fn from_text(text: Option<&str>) -> Result<Self, String> {
        let t = text.ok_or("NULL where bytes belong")?;
        t.strip_prefix("\\x")
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| "bytes not in hex form".to_string())
    }
}

impl<T: FromText> FromText for Option<T> {
    fn from_text(text: Option<&str>) -> Result<Self, String> {
        text.map(|t| T::from_text(Some(t))).transpose()
    }
}

/// One result row, read by column name.
pub enum Row<'r> {
    /// A SQLite row.
    Lite(&'r rusqlite::Row<'r>),
    /// A PostgreSQL row.
    Pg(&'r postgres::Row),
    /// A PostgreSQL row in text form.
    PgText(&'r postgres::SimpleQueryRow),
}

impl Row<'_> {
    /// The value of column `name`.
    pub fn get<T: FromColumn>(&self, name: &str) -> Result<T, StoreError> {
        match self {
            Row::Lite(r) => Ok(r.get(name)?),
            Row::Pg(r) => r
                .try_get(name)
                .map_err(|e| StoreError::Backend(Box::new(e))),
            Row::PgText(r) => {
                let text = r
                    .try_get(name)
                    .map_err(|e| StoreError::Backend(Box::new(e)))?;
                T::from_text(text).map_err(|why| StoreError::BadRow {
                    what: "column",
                    value: format!("{name}: {why}"),
                })
            }
        }
    }
}

/// Which engine a statement goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Dialect {
    /// An `ORDER BY` list of text columns sorted as SQLite sorts them (byte by byte, NULL
    /// first) on either engine: a server sorts by its database's collation (which may put
    /// `a-agent` before `B-agent`, or ignore punctuation) and NULL last, and a list must come
    /// out the same whichever ledger it is read from.
    pub fn order_text(self, columns: &[&str]) -> String {
        let each = |c: &&str| match self {
            Dialect::Sqlite => c.to_string(),
            Dialect::Postgres => format!("{c} COLLATE \"C\" NULLS FIRST"),
        };
        columns.iter().map(each).collect::<Vec<_>>().join(", ")
    }

    /// The UTC day (`YYYY-MM-DD`) of an epoch-milliseconds column.
    pub fn utc_day(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("strftime('%Y-%m-%d', {column} / 1000, 'unixepoch')"),
            Dialect::Postgres => {
                format!("to_char(to_timestamp({column} / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
            }
        }
    }
}

/// A statement as PostgreSQL takes it: `?N` becomes `$N` and SQLite's `INDEXED BY` hints go
/// (the server's planner picks the partial index itself). Text in quotes is left alone.
pub fn for_postgres(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') && !sql.contains("INDEXED BY") {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut in_quotes = false;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            in_quotes = !in_quotes;
        } else if !in_quotes && c == '?' {
            out.push('$');
            rest = &rest[1..];
            continue;
        } else if !in_quotes && rest.starts_with("INDEXED BY ") {
            let after = &rest["INDEXED BY ".len()..];
            let name_len = after
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(after.len());
            rest = &after[name_len..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Cow::Owned(out)
}

/// A value written as a PostgreSQL literal, for a statement sent with others in one
/// multi-statement round trip (which takes no parameters); `None` for text with a NUL (which
/// PostgreSQL text cannot hold). Text is an escape string (`E'…'`) with its quotes doubled and
/// its backslashes escaped: exact whatever `standard_conforming_strings` says.
pub fn literal(value: &Value<'_>) -> Option<String> {
    match value {
        Value::Null => Some("NULL".into()),
        Value::Int(i) => Some(i.to_string()),
        Value::Text(t) if !t.contains('\0') => Some(format!(
            "E'{}'",
            t.replace('\\', "\\\\").replace('\'', "''")
        )),
        Value::Text(_) => None,
        Value::Blob(b) => Some(format!("E'\\\\x{}'::bytea", hex::encode(b))),
    }
}

/// A PostgreSQL statement (`$N` placeholders) with `literals` written in for its placeholders;
/// `None` when one has no literal.
pub fn fill(sql: &str, literals: &[String]) -> Option<String> {
    let mut out = String::with_capacity(sql.len() + 16 * literals.len());
    let mut in_quotes = false;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            in_quotes = !in_quotes;
        } else if !in_quotes && c == '$' {
            let digits = rest[1..]
                .find(|ch: char| !ch.is_ascii_digit())
                .unwrap_or(rest.len() - 1);
            let n: usize = rest[1..1 + digits].parse().ok()?;
            out.push_str(literals.get(n.checked_sub(1)?)?);
            rest = &rest[1 + digits..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// The name a statement is prepared under in a session (its text's digest).
pub fn statement_name(sql: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, sql.as_bytes());
    format!("authledger_{}", hex::encode(&digest.as_ref()[..8]))
}

/// A statement as sent in a multi-statement round trip: `EXECUTE` of the session's statement
/// prepared by name (planned once per session, not at every use), or else its text with its
/// values written in.
pub fn named_or_text(
    named: &std::collections::HashSet<String>,
    sql: &str,
    literals: &[String],
) -> String {
    let name = statement_name(sql);
    if named.contains(&name) {
        if literals.is_empty() {
            return format!("EXECUTE {name}");
        }
        return format!("EXECUTE {name}({})", literals.join(", "));
    }
    fill(sql, literals).unwrap_or_else(|| sql.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_literals(sql: &str, args: &[Value<'_>]) -> Option<String> {
        let literals = args.iter().map(literal).collect::<Option<Vec<_>>>()?;
        fill(&for_postgres(sql), &literals)
    }

    #[test]
    fn values_are_written_in_as_literals_exactly() {
        assert_eq!(
            with_literals(
                "SELECT a FROM t INDEXED BY i WHERE p = ?1 AND n > ?2 AND q = '?1' AND m = ?10",
                &[
                    Value::Text("o'brien\\n"),
                    Value::Int(-5),
                    Value::Blob(&[0, 255]),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ],
            )
            .as_deref(),
            Some(
                "SELECT a FROM t  WHERE p = E'o''brien\\\\n' AND n > -5 AND q = '?1' AND m = NULL"
            )
        );
        assert_eq!(
            with_literals("SELECT ?1", &[Value::Blob(&[0, 255])]).as_deref(),
            Some("SELECT E'\\\\x00ff'::bytea")
        );
        assert_eq!(with_literals("SELECT ?1", &[Value::Text("a\0b")]), None);
        assert_eq!(
            with_literals("SELECT ?2", &[Value::Int(1)]),
            None,
            "a missing value"
        );
    }

    #[test]
    fn placeholders_and_hints_are_rewritten_for_postgres_but_not_inside_quotes() {
        assert_eq!(
            for_postgres(
                "SELECT a FROM leases INDEXED BY leases_live WHERE x = ?1 AND y = '?2' AND z = ?12"
            ),
            "SELECT a FROM leases  WHERE x = $1 AND y = '?2' AND z = $12"
        );
        assert!(matches!(for_postgres("SELECT 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn optional_values_bind_as_null_or_their_value() {
        let none: Option<String> = None;
        let some = Some("x".to_string());
        let bytes = vec![1u8, 2];
        let bound = args![1i64, none, some, "y", bytes];
        assert!(matches!(bound[0], Value::Int(1)));
        assert!(matches!(bound[1], Value::Null));
        assert!(matches!(bound[2], Value::Text("x")));
        assert!(matches!(bound[3], Value::Text("y")));
        assert!(matches!(bound[4], Value::Blob([1, 2])));
    }

    #[test]
    fn text_values_read_back_as_postgres_writes_them_and_nonsense_is_refused() {
        assert_eq!(i64::from_text(Some("-42")), Ok(-42));
        assert_eq!(Option::<i64>::from_text(None), Ok(None));
        assert_eq!(Option::<i64>::from_text(Some("7")), Ok(Some(7)));
        assert_eq!(bool::from_text(Some("t")), Ok(true));
        assert_eq!(bool::from_text(Some("f")), Ok(false));
        assert_eq!(f64::from_text(Some("1.5")), Ok(1.5));
        assert_eq!(Vec::<u8>::from_text(Some("\\x0aff")), Ok(vec![10, 255]));
        assert_eq!(String::from_text(Some("")), Ok(String::new()));
        assert!(i64::from_text(None).is_err(), "NULL is not a number");
        assert!(i64::from_text(Some("12x")).is_err());
        assert!(bool::from_text(Some("true")).is_err());
        assert!(Vec::<u8>::from_text(Some("0aff")).is_err());
        assert!(String::from_text(None).is_err());
    }
}
