//! The vocabulary every layer shares: providers, ids, token figures, lease states.
//!
//! These types validate on construction, so a value that exists is a value the ledger accepts:
//! the CLI parses raw strings into them once and the layers below never re-check.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC. Every time in the ledger is one of these.
pub type Millis = i64;

/// The largest token figure the ledger accepts (10^15). Sums of a handful of these still fit in
/// an `i64`, so SQLite never silently turns an overflowing integer into a float.
pub const MAX_TOKENS: i64 = 1_000_000_000_000_000;

/// Why a raw value was refused. The message names the value's role and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// A model provider whose credentials and quota the ledger keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Provider {
    /// Anthropic: Claude API keys and Claude Code subscription tokens.
    Claude,
    /// OpenAI: API keys and ChatGPT (Codex) tokens.
    Openai,
}

impl Provider {
    /// Every provider, in the order `auto` selection prefers them.
    pub const ALL: [Provider; 2] = [Provider::Claude, Provider::Openai];

    /// The stable name used in the database, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Claude => "claude",
            Provider::Openai => "openai",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "claude" => Ok(Provider::Claude),
            "openai" => Ok(Provider::Openai),
            other => Err(InvalidInput(format!(
                "unknown provider {:?} (expected claude or openai)",
                truncate_for_message(other)
            ))),
        }
    }
}

/// Shortens a user-supplied string before it is echoed in an error, so a 10 KB argument does
/// not become a 10 KB error line.
pub fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// Checks a name (agent id, account) against one rule: 1–128 characters from
/// `[A-Za-z0-9._:@-]`, starting with a letter or digit. Names show up in tables, audit rows and
/// environment variables, so control characters, spaces and quotes are kept out.
fn validate_name(kind: &str, s: &str) -> Result<(), InvalidInput> {
    const MAX: usize = 128;
    if s.is_empty() {
        return Err(InvalidInput(format!("{kind} must not be empty")));
    }
    if s.len() > MAX {
        return Err(InvalidInput(format!(
            "{kind} is {} bytes long; the limit is {MAX}",
            s.len()
        )));
    }
    let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@'));
    if !ok_first || !ok_rest {
        return Err(InvalidInput(format!(
            "{kind} {:?} may hold only letters, digits and . _ - : @, and must start with a letter or digit",
            truncate_for_message(s)
        )));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a raw string.
            pub fn new(s: impl Into<String>) -> Result<Self, InvalidInput> {
                let s = s.into();
                validate_name($kind, &s)?;
                Ok(Self(s))
            }
            /// The name as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $name {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidInput;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
    };
}

name_type!(
    /// Who holds a lease: the name the user gives an agent (`reviewer`, `ci-42`).
    AgentId,
    "agent id"
);
name_type!(
    /// One of a provider's accounts (`default` unless named), part of every quota key.
    Account,
    "account"
);

impl Default for Account {
    fn default() -> Self {
        Account("default".to_string())
    }
}

/// A lease's public id (`lease-` and 20 hex digits). Unguessable, never reused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LeaseId(String);

impl LeaseId {
    const PREFIX: &'static str = "lease-";
    const HEX_LEN: usize = 20;

    /// Parses an id given by a user; anything not shaped like an id is refused before any
    /// database access.
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let ok = s
            .strip_prefix(Self::PREFIX)
            .is_some_and(|h| h.len() == Self::HEX_LEN && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if ok {
            Ok(LeaseId(s.to_ascii_lowercase()))
        } else {
            Err(InvalidInput(format!(
                "{:?} is not a lease id (expected lease- and {} hex digits)",
                truncate_for_message(s),
                Self::HEX_LEN
            )))
        }
    }

    /// Makes a fresh id from 10 random bytes.
    pub fn from_random(bytes: [u8; 10]) -> Self {
        LeaseId(format!("{}{}", Self::PREFIX, hex::encode(bytes)))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl FromStr for LeaseId {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
impl TryFrom<String> for LeaseId {
    type Error = InvalidInput;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<LeaseId> for String {
    fn from(id: LeaseId) -> String {
        id.0
    }
}

/// Parses a token figure: a whole number from 0 to [`MAX_TOKENS`]. Underscores and commas are
/// allowed as digit separators (`1_000_000`).
pub fn parse_tokens(what: &str, s: &str) -> Result<i64, InvalidInput> {
    let cleaned: String = s.chars().filter(|c| *c != '_' && *c != ',').collect();
    if cleaned.starts_with('-') {
        return Err(InvalidInput(format!(
            "{what} must not be negative (got {s})"
        )));
    }
    let n: i64 = cleaned.parse().map_err(|_| {
        if !cleaned.is_empty() && cleaned.bytes().all(|b| b.is_ascii_digit()) {
            InvalidInput(format!(
                "{what} is too large (got {}, the limit is {MAX_TOKENS})",
                truncate_for_message(s)
            ))
        } else {
            InvalidInput(format!(
                "{what} must be a whole number (got {:?})",
                truncate_for_message(s)
            ))
        }
    })?;
    check_tokens(what, n)
}

/// Checks that an already-numeric figure lies in 0..=[`MAX_TOKENS`].
pub fn check_tokens(what: &str, n: i64) -> Result<i64, InvalidInput> {
    if n < 0 {
        Err(InvalidInput(format!(
            "{what} must not be negative (got {n})"
        )))
    } else if n > MAX_TOKENS {
        Err(InvalidInput(format!(
            "{what} is too large (got {n}, the limit is {MAX_TOKENS})"
        )))
    } else {
        Ok(n)
    }
}

/// How a lease ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Held: its reservation counts against the windows and its slot against concurrency.
    Active,
    /// Given back by its holder.
    Released,
    /// Reclaimed after its TTL ran out or it went idle.
    Expired,
    /// Taken away (credential logged out, or an operator's decision).
    Revoked,
}

impl LeaseState {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Active => "active",
            LeaseState::Released => "released",
            LeaseState::Expired => "expired",
            LeaseState::Revoked => "revoked",
        }
    }

    /// Reads a stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => LeaseState::Active,
            "released" => LeaseState::Released,
            "expired" => LeaseState::Expired,
            "revoked" => LeaseState::Revoked,
            _ => return None,
        })
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of metering window. Budget windows (day, 5 h, week) hold reservations; the minute
/// window only counts what was recorded, for requests/min and tokens/min.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WindowKind {
    /// The calendar day, starting at the provider's configured UTC reset time.
    #[serde(rename = "day")]
    Day,
    /// Five hours from the first use after the previous one ended (Claude's session window).
    #[serde(rename = "5h")]
    FiveHour,
    /// Seven days from the first use after the previous one ended.
    #[serde(rename = "week")]
    Week,
    /// The current UTC minute, for requests/min and tokens/min.
    #[serde(rename = "minute")]
    Minute,
}

impl WindowKind {
    /// The stable name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Day => "day",
            WindowKind::FiveHour => "5h",
            WindowKind::Week => "week",
            WindowKind::Minute => "minute",
        }
    }

    /// Reads a stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "day" => WindowKind::Day,
            "5h" => WindowKind::FiveHour,
            "week" => WindowKind::Week,
            "minute" => WindowKind::Minute,
            _ => return None,
        })
    }

    /// The window's length in milliseconds.
    pub fn length_ms(self) -> Millis {
        match self {
            WindowKind::Day => 86_400_000,
            WindowKind::FiveHour => 5 * 3_600_000,
            WindowKind::Week => 7 * 86_400_000,
            WindowKind::Minute => 60_000,
        }
    }
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_empty_long_and_odd_characters() {
        assert!(AgentId::new("reviewer-1").is_ok());
        assert!(AgentId::new("").is_err());
        assert!(AgentId::new("a".repeat(10_000)).is_err());
        assert!(AgentId::new("x'; DROP TABLE leases; --").is_err());
        assert!(AgentId::new("-leading-dash").is_err());
        assert!(AgentId::new("tab\there").is_err());
    }

    #[test]
    fn long_names_are_truncated_in_messages() {
        let err = AgentId::new(format!("?{}", "b".repeat(10_000))).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn token_figures_refuse_negative_huge_and_non_numeric() {
        assert_eq!(parse_tokens("t", "1_000").unwrap(), 1000);
        assert!(parse_tokens("t", "-1").is_err());
        assert!(parse_tokens("t", "99999999999999999999999").is_err());
        assert!(parse_tokens("t", "1000000000000000001").is_err());
        assert!(parse_tokens("t", "ten").is_err());
        assert!(parse_tokens("t", "1e3").is_err());
    }

    #[test]
    fn lease_ids_round_trip_and_refuse_junk() {
        let id = LeaseId::from_random([0xab; 10]);
        assert_eq!(LeaseId::parse(id.as_str()).unwrap(), id);
        assert!(LeaseId::parse("lease-123").is_err());
        assert!(LeaseId::parse("1; DELETE FROM leases").is_err());
    }

    #[test]
    fn provider_names_are_stable() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
        }
        assert!("gemini".parse::<Provider>().is_err());
    }
}
