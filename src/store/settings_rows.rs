//! Key/value settings shared by every process (preferred provider, audit head, …).

use super::sql::args;

use super::tx::AUDIT_HEAD_KEY;
use super::{StoreError, Tx};

/// Writes one setting (also how a transaction records the audit head when it commits).
pub(super) const SET_SETTING: &str = "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value";

impl Tx<'_> {
    /// Reads a setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        if key == AUDIT_HEAD_KEY
            && let Some(head) = &self.audit.borrow().head
        {
            // Appended in this transaction, recorded when it commits.
            return Ok(Some(head.clone()));
        }
        self.one(
            "SELECT value FROM settings WHERE key = ?1",
            args![key],
            |r| r.get("value"),
        )
    }

    /// Writes a setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        if key == AUDIT_HEAD_KEY {
            // Written as said, not replaced at commit by an earlier append's head.
            self.audit.borrow_mut().head = None;
        }
        self.exec(SET_SETTING, args![key, value])?;
        Ok(())
    }

    /// Removes a setting, if present.
    pub fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        if key == AUDIT_HEAD_KEY {
            self.audit.borrow_mut().head = None;
        }
        self.exec("DELETE FROM settings WHERE key = ?1", args![key])?;
        Ok(())
    }
}
