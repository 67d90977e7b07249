//! Secret values: never printed, zeroed when dropped, reachable only through a loudly named
//! accessor.

use std::fmt;

use zeroize::Zeroizing;

/// An API key or token. `Debug` and `Display` print `[redacted]`; [`Secret::redacted`] gives the
/// short form users recognise (`sk-ant-…f3a9`); only [`Secret::expose_secret`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value; the `String`'s buffer is zeroed when the secret is dropped.
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// The plaintext. Call it only where the value must leave the process: the AEAD, an
    /// exported auth file, an agent's environment, an HTTP header.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The prefix and the last four characters, as `codex login status` and the Anthropic
    /// console show keys (`sk-ant-…f3a9`); short values show nothing at all.
    pub fn redacted(&self) -> String {
        let s: &str = &self.0;
        let n = s.chars().count();
        if n < 16 {
            return "…".to_string();
        }
        let prefix_len = s
            .char_indices()
            .take(8)
            .filter(|(_, c)| *c == '-' || *c == '_')
            .map(|(i, _)| i + 1)
            .last()
            .unwrap_or(3)
            .min(8);
        let head: String = s.chars().take(prefix_len).collect();
        let tail: String = s.chars().skip(n - 4).collect();
        format!("{head}…{tail}")
    }

    /// Whether the secret is empty (after trimming).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-ant-api03-abcdefghijklmnopqrstuvwxyzf3a9".into());
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.redacted(), "sk-ant-…f3a9");
        assert_eq!(
            Secret::new("sk-proj-1234567890abcdef".into()).redacted(),
            "sk-proj-…cdef"
        );
        assert_eq!(Secret::new("short".into()).redacted(), "…");
    }
}
