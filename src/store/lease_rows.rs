//! Leases and the reservations they hold in each window.

use super::sql::{Dialect, Row, args};

use super::tx::parse_col;
use super::{StoreError, Tx};
use crate::records::Lease;
use crate::types::{Account, LeaseId, LeaseState, Millis, Provider};

const LEASE_COLS: &str = "id, fence, agent, provider, account, allocated, used, ttl_ms, created_at, expires_at, heartbeat_at, state, ended_at, end_reason";

struct LeaseRaw {
    text: [String; 5],
    nums: [i64; 8],
    ended_at: Option<i64>,
    end_reason: Option<String>,
}

fn lease_from_row(r: &Row<'_>) -> Result<LeaseRaw, StoreError> {
    Ok(LeaseRaw {
        text: [
            r.get("id")?,
            r.get("agent")?,
            r.get("provider")?,
            r.get("account")?,
            r.get("state")?,
        ],
        nums: [
            r.get("fence")?,
            r.get("allocated")?,
            r.get("used")?,
            r.get("ttl_ms")?,
            r.get("created_at")?,
            r.get("expires_at")?,
            r.get("heartbeat_at")?,
            0,
        ],
        ended_at: r.get("ended_at")?,
        end_reason: r.get("end_reason")?,
    })
}

fn lease_build(raw: LeaseRaw) -> Result<Lease, StoreError> {
    let [id, agent, provider, account, state] = raw.text;
    let [
        fence,
        allocated,
        used,
        ttl_ms,
        created_at,
        expires_at,
        heartbeat_at,
        _,
    ] = raw.nums;
    Ok(Lease {
        id: parse_col("lease id", id)?,
        fence,
        agent: parse_col("agent id", agent)?,
        provider: parse_col("provider", provider)?,
        account: parse_col("account", account)?,
        allocated,
        used,
        ttl_ms,
        created_at,
        expires_at,
        heartbeat_at,
        state: LeaseState::parse(&state).ok_or(StoreError::BadRow {
            what: "lease state",
            value: state,
        })?,
        ended_at: raw.ended_at,
        end_reason: raw.end_reason,
    })
}

/// Which leases [`Tx::leases`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseFilter {
    /// Only active leases.
    Active,
    /// Every lease ever granted.
    All,
}

/// Stores a new lease.
pub(super) fn insert_lease_sql() -> String {
    format!(
        "INSERT INTO leases ({LEASE_COLS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    )
}

/// Ends a lease that must be active (see [`Tx::end_active_lease`]).
pub(super) const END_ACTIVE_LEASE: &str = "WITH ended AS (
         UPDATE leases SET state = ?2, ended_at = ?3, end_reason = ?4
         WHERE id = ?1 AND state = 'active' RETURNING id
     )
     SELECT CASE WHEN COUNT(*) = 1 THEN 1
            ELSE CAST('authledger constraint: the lease was not active'
                      || REPEAT('', COUNT(*)::INT) AS INT) END
     FROM ended";

/// Lowers what a lease holds in a window.
pub(super) const TAKE_FROM_LEASE_WINDOW: &str =
    "UPDATE lease_windows SET reserved = reserved - ?3 WHERE lease_id = ?1 AND window_id = ?2";

/// Notes what a new lease holds in a window.
pub(super) const INSERT_LEASE_WINDOW: &str =
    "INSERT INTO lease_windows (lease_id, window_id, reserved) VALUES (?1, ?2, ?3)";

impl Tx<'_> {
    /// One lease by id.
    pub fn lease(&self, id: &LeaseId) -> Result<Option<Lease>, StoreError> {
        let raw = self.one(
            &format!("SELECT {LEASE_COLS} FROM leases WHERE id = ?1"),
            args![id.as_str()],
            lease_from_row,
        )?;
        raw.map(lease_build).transpose()
    }

    /// Leases, newest first.
    pub fn leases(&self, filter: LeaseFilter) -> Result<Vec<Lease>, StoreError> {
        let sql = match filter {
            LeaseFilter::Active => format!(
                "SELECT {LEASE_COLS} FROM leases WHERE state = 'active' ORDER BY created_at DESC, fence DESC"
            ),
            LeaseFilter::All => {
                format!("SELECT {LEASE_COLS} FROM leases ORDER BY created_at DESC, fence DESC")
            }
        };
        let raws = self.all(&sql, &[], lease_from_row)?;
        raws.into_iter().map(lease_build).collect()
    }

    /// Active leases of one provider account whose TTL has run out by `now`: what an acquire
    /// on that account reclaims first. A range of the active-lease index, however many leases
    /// are held.
    pub fn expired_leases(
        &self,
        provider: Provider,
        account: &Account,
        now: Millis,
    ) -> Result<Vec<Lease>, StoreError> {
        let raws = self.all(
            &format!(
                "SELECT {LEASE_COLS} FROM leases INDEXED BY leases_live
                 WHERE state = 'active' AND provider = ?1 AND account = ?2 AND expires_at <= ?3
                 ORDER BY fence"
            ),
            args![provider.as_str(), account.as_str(), now],
            lease_from_row,
        )?;
        raws.into_iter().map(lease_build).collect()
    }

    /// Every active lease whose TTL has run out by `now` or whose last heartbeat is at or
    /// before `idle_before`: what cleanup reclaims. Reads the active-lease index only, never
    /// the leases that ended.
    pub fn stale_leases(&self, now: Millis, idle_before: Millis) -> Result<Vec<Lease>, StoreError> {
        let raws = self.all(
            &format!(
                "SELECT {LEASE_COLS} FROM leases INDEXED BY leases_live
                 WHERE state = 'active' AND (expires_at <= ?1 OR heartbeat_at <= ?2)
                 ORDER BY fence"
            ),
            args![now, idle_before],
            lease_from_row,
        )?;
        raws.into_iter().map(lease_build).collect()
    }

    /// Live leases of one provider account (active, unexpired at `now`, and heard from after
    /// `idle_before`), and the earliest time one of them expires. A lease past its TTL or idle
    /// time holds no slot even before anyone reclaims it: its holder is gone.
    pub fn active_lease_count(
        &self,
        provider: Provider,
        account: &Account,
        now: Millis,
        idle_before: Millis,
    ) -> Result<(i64, Option<Millis>), StoreError> {
        self.single(
            "SELECT COUNT(*) AS live, MIN(expires_at) AS first_expiry
             FROM leases INDEXED BY leases_live
             WHERE provider = ?1 AND account = ?2 AND state = 'active'
               AND expires_at > ?3 AND heartbeat_at > ?4",
            args![provider.as_str(), account.as_str(), now, idle_before],
            |r| Ok((r.get("live")?, r.get("first_expiry")?)),
        )
    }

    /// Active leases of one provider account past their TTL at `now` or idle since
    /// `idle_before`: what an acquire on that account reclaims before it counts slots.
    pub fn stale_leases_of(
        &self,
        provider: Provider,
        account: &Account,
        now: Millis,
        idle_before: Millis,
    ) -> Result<Vec<Lease>, StoreError> {
        let raws = self.all(
            &format!(
                "SELECT {LEASE_COLS} FROM leases INDEXED BY leases_live
                 WHERE state = 'active' AND provider = ?1 AND account = ?2
                   AND (expires_at <= ?3 OR heartbeat_at <= ?4)
                 ORDER BY fence"
            ),
            args![provider.as_str(), account.as_str(), now, idle_before],
            lease_from_row,
        )?;
        raws.into_iter().map(lease_build).collect()
    }

    /// The next fencing number: larger than any lease's so far.
    pub fn next_fence(&self) -> Result<i64, StoreError> {
        self.single(
            "SELECT COALESCE(MAX(fence), 0) + 1 AS next_fence FROM leases",
            &[],
            |r| r.get("next_fence"),
        )
    }

    /// Stores a new lease (its fence read by [`Tx::next_fence`] under the same lock; the
    /// UNIQUE index refuses a second). On a server it goes with the transaction's next round
    /// trip.
    pub fn insert_lease(&self, l: &Lease) -> Result<(), StoreError> {
        self.exec_later(
            &insert_lease_sql(),
            args![
                l.id.as_str(),
                l.fence,
                l.agent.as_str(),
                l.provider.as_str(),
                l.account.as_str(),
                l.allocated,
                l.used,
                l.ttl_ms,
                l.created_at,
                l.expires_at,
                l.heartbeat_at,
                l.state.as_str(),
                l.ended_at,
                l.end_reason
            ],
        )
    }

    /// Records a heartbeat: the lease lives until `expires_at` now.
    pub fn touch_lease(
        &self,
        id: &LeaseId,
        now: Millis,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        self.exec(
            "UPDATE leases SET heartbeat_at = ?2, expires_at = ?3 WHERE id = ?1 AND state = 'active'",
            args![id.as_str(), now, expires_at],
        )?;
        Ok(())
    }

    /// Ends an active lease. Returns false if it was not active (it ends exactly once).
    pub fn end_lease(
        &self,
        id: &LeaseId,
        state: LeaseState,
        now: Millis,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let n = self.exec(
            "UPDATE leases SET state = ?2, ended_at = ?3, end_reason = ?4 WHERE id = ?1 AND state = 'active'",
            args![id.as_str(), state.as_str(), now, reason],
        )?;
        Ok(n == 1)
    }

    /// Ends a lease the caller read active under this transaction's lock. On a server it goes
    /// with the transaction's next round trip; if the lease was not active after all, the
    /// transaction fails (there, or here on SQLite) rather than ending nothing.
    pub fn end_active_lease(
        &self,
        id: &LeaseId,
        state: LeaseState,
        now: Millis,
        reason: &str,
    ) -> Result<(), StoreError> {
        if self.dialect() == Dialect::Postgres {
            return self.exec_later(
                END_ACTIVE_LEASE,
                args![id.as_str(), state.as_str(), now, reason],
            );
        }
        if self.end_lease(id, state, now, reason)? {
            Ok(())
        } else {
            Err(StoreError::Constraint {
                reason: format!("lease {id} was not active"),
            })
        }
    }

    /// Gives back everything a lease still holds in its windows (each window's `reserved`
    /// shrinks by the lease's holding there, which becomes 0); returns the largest holding
    /// given back. Reads what the lease holds first, then writes (sent later on a server).
    pub fn return_lease_reservations(&self, id: &LeaseId) -> Result<i64, StoreError> {
        let mut returned = 0;
        for (window_id, held) in self.lease_windows(id)? {
            if held > 0 {
                self.unreserve_in_window(window_id, held)?;
                self.take_from_lease_window(id, window_id, held)?;
                returned = returned.max(held);
            }
        }
        Ok(returned)
    }

    /// Adds recorded usage to a lease's own tally.
    pub fn add_lease_usage(&self, id: &LeaseId, tokens: i64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE leases SET used = used + ?2 WHERE id = ?1",
            args![id.as_str(), tokens],
        )?;
        Ok(())
    }

    /// Grows a lease's allocation by `tokens` (a top-up).
    pub fn grow_lease_allocation(&self, id: &LeaseId, tokens: i64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE leases SET allocated = allocated + ?2 WHERE id = ?1",
            args![id.as_str(), tokens],
        )?;
        Ok(())
    }

    /// Adds `tokens` to what a lease holds in a window, noting the window if it held none.
    pub fn add_to_lease_window(
        &self,
        id: &LeaseId,
        window_id: i64,
        tokens: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO lease_windows (lease_id, window_id, reserved) VALUES (?1, ?2, ?3)
             ON CONFLICT (lease_id, window_id)
             DO UPDATE SET reserved = lease_windows.reserved + excluded.reserved",
            args![id.as_str(), window_id, tokens],
        )?;
        Ok(())
    }

    /// Notes that a lease holds `reserved` tokens in a window.
    pub fn insert_lease_window(
        &self,
        id: &LeaseId,
        window_id: i64,
        reserved: i64,
    ) -> Result<(), StoreError> {
        self.exec_later(INSERT_LEASE_WINDOW, args![id.as_str(), window_id, reserved])
    }

    /// The windows a lease reserved in and what it still holds in each: `(window_id, reserved)`.
    pub fn lease_windows(&self, id: &LeaseId) -> Result<Vec<(i64, i64)>, StoreError> {
        self.all(
            "SELECT window_id, reserved FROM lease_windows WHERE lease_id = ?1 ORDER BY window_id",
            args![id.as_str()],
            |r| Ok((r.get("window_id")?, r.get("reserved")?)),
        )
    }

    /// Lowers what a lease holds in a window by `tokens`.
    pub fn take_from_lease_window(
        &self,
        id: &LeaseId,
        window_id: i64,
        tokens: i64,
    ) -> Result<(), StoreError> {
        self.exec_later(
            TAKE_FROM_LEASE_WINDOW,
            args![id.as_str(), window_id, tokens],
        )
    }
}
