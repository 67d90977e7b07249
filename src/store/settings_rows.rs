//! Key/value settings shared by every process (preferred provider, audit head, …).

use super::sql::args;

use super::{StoreError, Tx};

impl Tx<'_> {
    /// Reads a setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.one(
            "SELECT value FROM settings WHERE key = ?1",
            args![key],
            |r| r.get("value"),
        )
    }

    /// Writes a setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            args![key, value],
        )?;
        Ok(())
    }

    /// Removes a setting, if present.
    pub fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        self.exec("DELETE FROM settings WHERE key = ?1", args![key])?;
        Ok(())
    }
}
