//! Transient JSON values that carry tokens (an `auth.json` being written, an agent's
//! environment being built) are wiped when dropped: every string in them is zeroed, so the
//! copies serde_json makes do not linger in freed memory.

use zeroize::Zeroize;

/// A JSON value whose strings are zeroed on drop.
#[derive(Default)]
pub struct WipedJson(pub serde_json::Value);

impl std::fmt::Debug for WipedJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WipedJson([redacted])")
    }
}

impl std::ops::Deref for WipedJson {
    type Target = serde_json::Value;
    fn deref(&self) -> &serde_json::Value {
        &self.0
    }
}

impl Drop for WipedJson {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Zeroes every string value in `value` (object keys are field names, not secrets).
pub fn wipe(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => {
            for (_, v) in map.iter_mut() {
                wipe(v);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiping_zeroes_every_string_in_place() {
        let mut v = serde_json::json!({
            "tokens": { "access_token": "sk-secret-1", "list": ["sk-secret-2"] },
            "n": 3,
        });
        wipe(&mut v);
        let text = v.to_string();
        assert!(!text.contains("sk-secret"), "{text}");
        assert_eq!(v["n"], 3);
    }
}
