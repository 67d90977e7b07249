//! Limits and metering windows.

use super::sql::{Dialect, Row, args};

use super::tx::parse_col;
use super::{StoreError, Tx};
use crate::records::{Limits, Window};
use crate::types::{Account, Millis, Provider, WindowKind};

const WINDOW_COLS: &str = "id, provider, account, kind, start_ms, end_ms, used, reserved, requests";
const LIMIT_COLS: &str = "provider, account, daily_tokens, window_5h_tokens, weekly_tokens, rpm, tpm, concurrent, lease_cap, reset_offset_min, updated_at";

fn window_from_row(r: &Row<'_>) -> Result<(i64, String, String, String, [i64; 5]), StoreError> {
    Ok((
        r.get("id")?,
        r.get("provider")?,
        r.get("account")?,
        r.get("kind")?,
        [
            r.get("start_ms")?,
            r.get("end_ms")?,
            r.get("used")?,
            r.get("reserved")?,
            r.get("requests")?,
        ],
    ))
}

fn window_build(raw: (i64, String, String, String, [i64; 5])) -> Result<Window, StoreError> {
    let (id, provider, account, kind, [start_ms, end_ms, used, reserved, requests]) = raw;
    Ok(Window {
        id,
        provider: parse_col("provider", provider)?,
        account: parse_col("account", account)?,
        kind: WindowKind::parse(&kind).ok_or(StoreError::BadRow {
            what: "window kind",
            value: kind,
        })?,
        start_ms,
        end_ms,
        used,
        reserved,
        requests,
    })
}

type LimitRaw = (
    String,
    String,
    i64,
    [Option<i64>; 4],
    i64,
    Option<i64>,
    i64,
    i64,
);

fn limits_from_row(r: &Row<'_>) -> Result<LimitRaw, StoreError> {
    Ok((
        r.get("provider")?,
        r.get("account")?,
        r.get("daily_tokens")?,
        [
            r.get("window_5h_tokens")?,
            r.get("weekly_tokens")?,
            r.get("rpm")?,
            r.get("tpm")?,
        ],
        r.get("concurrent")?,
        r.get("lease_cap")?,
        r.get("reset_offset_min")?,
        r.get("updated_at")?,
    ))
}

fn limits_build(raw: LimitRaw) -> Result<Limits, StoreError> {
    let (provider, account, daily_tokens, [w5, weekly, rpm, tpm], concurrent, cap, offset, at) =
        raw;
    Ok(Limits {
        provider: parse_col("provider", provider)?,
        account: parse_col("account", account)?,
        daily_tokens,
        window_5h_tokens: w5,
        weekly_tokens: weekly,
        rpm,
        tpm,
        concurrent,
        lease_cap: cap,
        reset_offset_min: offset,
        updated_at: at,
    })
}

/// Every stored limits row, ordered by provider and account.
pub(super) fn all_limits_sql(dialect: Dialect) -> String {
    let order = dialect.order_text(&["provider", "account"]);
    format!("SELECT {LIMIT_COLS} FROM limits ORDER BY {order}")
}

/// Returns an unused reservation to a window.
pub(super) const UNRESERVE: &str = "UPDATE windows SET reserved = reserved - ?2 WHERE id = ?1";

/// A window's reservation that fails its statement when it would pass the limit (see
/// [`Tx::reserve_in_window`]).
pub(super) const RESERVE_OR_FAIL: &str = "WITH reserved AS (
         UPDATE windows SET reserved = reserved + ?2
         WHERE id = ?1 AND used + reserved + ?2 <= ?3 RETURNING id
     )
     SELECT CASE WHEN COUNT(*) = 1 THEN 1
            ELSE CAST('authledger constraint: a reservation would exceed its window''s limit'
                      || REPEAT('', COUNT(*)::INT) AS INT) END
     FROM reserved";

impl Tx<'_> {
    /// The stored limits of one provider account, if any were set.
    pub fn limits(
        &self,
        provider: Provider,
        account: &Account,
    ) -> Result<Option<Limits>, StoreError> {
        if self.reads_cost_round_trips() {
            // Out of the whole (small) table, read once per transaction; only that row is
            // parsed, as below.
            let raws = self.all(&all_limits_sql(self.dialect()), &[], limits_from_row)?;
            return raws
                .into_iter()
                .find(|r| r.0 == provider.as_str() && r.1 == account.as_str())
                .map(limits_build)
                .transpose();
        }
        let raw = self.one(
            &format!("SELECT {LIMIT_COLS} FROM limits WHERE provider = ?1 AND account = ?2"),
            args![provider.as_str(), account.as_str()],
            limits_from_row,
        )?;
        raw.map(limits_build).transpose()
    }

    /// Every provider account the ledger knows of: with limits or a credential (a lease's
    /// account always has limits: acquire stores them).
    pub fn known_accounts(&self) -> Result<Vec<(Provider, Account)>, StoreError> {
        let key = |r: &Row<'_>| Ok((r.get::<String>("provider")?, r.get::<String>("account")?));
        let raws = if self.reads_cost_round_trips() {
            // From the two tables as this transaction reads them anyway (only these two
            // columns parsed, as below).
            let mut raws = self.all(&all_limits_sql(self.dialect()), &[], key)?;
            raws.extend(self.all(
                &super::credential_rows::all_credentials_sql(self.dialect()),
                &[],
                key,
            )?);
            raws.sort();
            raws.dedup();
            raws
        } else {
            self.all(
                "SELECT provider, account FROM limits
                 UNION SELECT provider, account FROM credentials
                 ORDER BY 1, 2",
                &[],
                key,
            )?
        };
        raws.into_iter()
            .map(|(p, a)| Ok((parse_col("provider", p)?, parse_col("account", a)?)))
            .collect()
    }

    /// Inserts or replaces one provider account's limits.
    pub fn put_limits(&self, l: &Limits) -> Result<(), StoreError> {
        self.exec(
            &format!(
                "INSERT INTO limits ({LIMIT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (provider, account) DO UPDATE SET
                   daily_tokens = excluded.daily_tokens,
                   window_5h_tokens = excluded.window_5h_tokens,
                   weekly_tokens = excluded.weekly_tokens, rpm = excluded.rpm, tpm = excluded.tpm,
                   concurrent = excluded.concurrent, lease_cap = excluded.lease_cap,
                   reset_offset_min = excluded.reset_offset_min, updated_at = excluded.updated_at"
            ),
            args![
                l.provider.as_str(),
                l.account.as_str(),
                l.daily_tokens,
                l.window_5h_tokens,
                l.weekly_tokens,
                l.rpm,
                l.tpm,
                l.concurrent,
                l.lease_cap,
                l.reset_offset_min,
                l.updated_at
            ],
        )?;
        Ok(())
    }

    /// The window of `kind` containing `now`, if one exists.
    pub fn window_at(
        &self,
        provider: Provider,
        account: &Account,
        kind: WindowKind,
        now: Millis,
    ) -> Result<Option<Window>, StoreError> {
        let sql = if kind == WindowKind::Minute {
            format!(
                "SELECT {WINDOW_COLS} FROM windows
                 WHERE provider = ?1 AND account = ?2 AND kind = 'minute'
                   AND start_ms <= ?3 AND end_ms > ?3
                 ORDER BY start_ms DESC LIMIT 1"
            )
        } else {
            // The three budget kinds in one statement (three probes of the same index): an
            // acquire reads them ahead of knowing which have a limit, and on a server one
            // statement costs less than three.
            let one = |kind: &str, alias: &str| {
                format!(
                    "SELECT {WINDOW_COLS} FROM (SELECT {WINDOW_COLS} FROM windows
                       WHERE provider = ?1 AND account = ?2 AND kind = '{kind}'
                         AND start_ms <= ?3 AND end_ms > ?3
                       ORDER BY start_ms DESC LIMIT 1) AS {alias}"
                )
            };
            [one("day", "d"), one("5h", "h"), one("week", "w")].join(" UNION ALL ")
        };
        let raws = self.all(
            &sql,
            args![provider.as_str(), account.as_str(), now],
            window_from_row,
        )?;
        match raws.into_iter().find(|raw| raw.3 == kind.as_str()) {
            Some(raw) => window_build(raw).map(Some),
            None => Ok(None),
        }
    }

    /// The latest window of `kind` that started before `before`.
    pub fn previous_window(
        &self,
        provider: Provider,
        account: &Account,
        kind: WindowKind,
        before: Millis,
    ) -> Result<Option<Window>, StoreError> {
        let raw = self.one(
            &format!(
                "SELECT {WINDOW_COLS} FROM windows
                     WHERE provider = ?1 AND account = ?2 AND kind = ?3 AND start_ms < ?4
                     ORDER BY start_ms DESC LIMIT 1"
            ),
            args![provider.as_str(), account.as_str(), kind.as_str(), before],
            window_from_row,
        )?;
        raw.map(window_build).transpose()
    }

    /// What active leases still hold in a window: the reservation that moves with them when
    /// the next window opens.
    pub fn active_holdings(&self, window_id: i64) -> Result<i64, StoreError> {
        self.single(
            // From the few active leases to their reservations, never across every
            // reservation ever made.
            "SELECT CAST(COALESCE(SUM(lw.reserved), 0) AS BIGINT) AS held
             FROM leases l CROSS JOIN lease_windows lw
             WHERE l.state = 'active' AND lw.lease_id = l.id AND lw.window_id = ?1",
            args![window_id],
            |r| r.get("held"),
        )
    }

    /// Moves active leases' unused reservations from a window that has ended into the one that
    /// replaced it, so a lease that outlives its window keeps holding its tokens where they
    /// count. Returns the tokens moved.
    pub fn carry_reservations(&self, from: i64, to: i64) -> Result<i64, StoreError> {
        let moved = self.active_holdings(from)?;
        if moved == 0 {
            return Ok(0);
        }
        self.exec(
            "UPDATE lease_windows SET window_id = ?2
             WHERE lease_id IN (SELECT id FROM leases WHERE state = 'active')
               AND window_id = ?1 AND reserved > 0",
            args![from, to],
        )?;
        self.exec(
            "UPDATE windows SET reserved = reserved - ?2 WHERE id = ?1",
            args![from, moved],
        )?;
        self.exec(
            "UPDATE windows SET reserved = reserved + ?2 WHERE id = ?1",
            args![to, moved],
        )?;
        Ok(moved)
    }

    /// Creates a window row (a new window, never a reset of an old one) and returns it.
    pub fn insert_window(
        &self,
        provider: Provider,
        account: &Account,
        kind: WindowKind,
        start_ms: Millis,
        end_ms: Millis,
    ) -> Result<Window, StoreError> {
        let id = self.single(
            "INSERT INTO windows (provider, account, kind, start_ms, end_ms)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            args![
                provider.as_str(),
                account.as_str(),
                kind.as_str(),
                start_ms,
                end_ms
            ],
            |r| r.get("id"),
        )?;
        Ok(Window {
            id,
            provider,
            account: account.clone(),
            kind,
            start_ms,
            end_ms,
            used: 0,
            reserved: 0,
            requests: 0,
        })
    }

    /// Reserves `tokens` in a window only if `used + reserved + tokens <= limit`; returns whether
    /// the reservation was made. This conditional update is what makes over-granting impossible.
    /// On a server the reservation goes with the transaction's next round trip (its commit at
    /// the latest) and a refusal fails the transaction there instead of returning `false` (a
    /// cast that cannot succeed, evaluated only then: the server folds a constant one while
    /// planning): either way nothing past the limit is ever committed.
    pub fn reserve_in_window(
        &self,
        window_id: i64,
        tokens: i64,
        limit: i64,
    ) -> Result<bool, StoreError> {
        if self.dialect() == Dialect::Postgres {
            self.exec_later(RESERVE_OR_FAIL, args![window_id, tokens, limit])?;
            return Ok(true);
        }
        let n = self.exec(
            "UPDATE windows SET reserved = reserved + ?2
             WHERE id = ?1 AND used + reserved + ?2 <= ?3",
            args![window_id, tokens, limit],
        )?;
        Ok(n == 1)
    }

    /// Returns an unused reservation to a window.
    pub fn unreserve_in_window(&self, window_id: i64, tokens: i64) -> Result<(), StoreError> {
        self.exec_later(UNRESERVE, args![window_id, tokens])
    }

    /// Records usage in a window: `used` grows by `tokens`, `reserved` shrinks by the part of
    /// them that had been reserved, `requests` grows by `requests`.
    pub fn add_usage_to_window(
        &self,
        window_id: i64,
        tokens: i64,
        from_reserved: i64,
        requests: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE windows SET used = used + ?2, reserved = reserved - ?3, requests = requests + ?4
             WHERE id = ?1",
            args![window_id, tokens, from_reserved, requests],
        )?;
        Ok(())
    }
}
