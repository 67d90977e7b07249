//! What model tokens cost: a dated price table (built in, or replaced at run time by
//! `prices update`) and the cost of a usage record in exact integers.
//!
//! Pure computation: no files, no clock, nothing of the crate. The table is read from a
//! LiteLLM-format JSON object (`model_prices_and_context_window.json`, MIT licensed; see
//! `src/prices/NOTICE.md`), by our own parser, keeping per model only the four per-token prices
//! (input, output, cache write, cache read) and their long-context tiers
//! (`…_above_<N>k_tokens`).
//!
//! **Units.** A price is held in picodollars per token (10⁻¹² USD, an `i64`): LiteLLM's
//! figures are dollars per token with at most a few significant digits (`3e-06` is 3 000 000
//! pUSD), so rounding them to the nearest picodollar on load loses nothing a provider bills.
//! A cost is an `i128` of picodollars, summed exactly; it is rounded only when shown
//! (micro-dollars in `--json`, cents in tables). No floating-point sum anywhere.
//!
//! **Model names** are matched by [`PriceTable::lookup`]: exactly; then with any provider
//! prefix (everything up to the last `/`, as in `anthropic/claude-sonnet-4-5`) removed; then
//! with a date suffix (`-20250929` or `-2025-09-29`) removed; then, for an undated name, the
//! newest dated entry of that name (`claude-opus-4-1` → `claude-opus-4-1-20250805`). Anything
//! else is unknown: never priced at $0.

mod cost;
mod parse;

use std::collections::BTreeMap;

pub use cost::{Cost, Usage, format_usd, micro_usd, usd_decimal};

/// The snapshot built into the binary (see `src/prices/NOTICE.md` for its source and date).
const BUILTIN: &str = include_str!("snapshot.json");

/// Why a price table could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PricesError {
    /// Not JSON, or not a JSON object of models.
    #[error("not a price table: {0}")]
    Malformed(String),
    /// One model's entry has a price that is not a non-negative number.
    #[error("model {model}: {field} is not a non-negative number of dollars per token")]
    BadPrice {
        /// The model's name.
        model: String,
        /// The offending field.
        field: String,
    },
    /// Nothing usable: no Anthropic or OpenAI model with input and output prices.
    #[error("no Anthropic or OpenAI model with input and output prices")]
    Empty,
    /// The file could not be read at all.
    #[error("cannot read it: {0}")]
    Unreadable(String),
    /// A model asked for by name is not in the table.
    #[error("no price for model {0}: costs of its requests are shown as unknown")]
    UnknownModel(String),
}

/// Per-token prices of one tier, in picodollars per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    /// Input (prompt) tokens.
    pub input: i64,
    /// Output (completion, reasoning) tokens.
    pub output: i64,
    /// Prompt-cache writes; `None`: the provider does not price them apart, so they are
    /// charged as input.
    pub cache_write: Option<i64>,
    /// Prompt-cache reads; `None`: charged as input.
    pub cache_read: Option<i64>,
}

/// A long-context tier: a request whose prompt passes `above` tokens is charged, all of it,
/// at `rates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// The threshold in prompt tokens (input + cache read + cache write); strictly above it.
    pub above: i64,
    /// The prices of the whole request past the threshold.
    pub rates: Rates,
}

/// One model's prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    /// The prices up to the first threshold.
    pub base: Rates,
    /// Long-context tiers, lowest threshold first (usually none or one).
    pub tiers: Vec<Tier>,
}

impl ModelPrice {
    /// The rates a request with a prompt of `prompt` tokens is charged at: the highest tier
    /// whose threshold it passes, else the base.
    pub fn rates_for(&self, prompt: i64) -> Rates {
        self.tiers
            .iter()
            .rev()
            .find(|t| prompt > t.above)
            .map_or(self.base, |t| t.rates)
    }
}

/// A dated price table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    /// When the prices were taken (`YYYY-MM-DD`), as the table says.
    pub date: String,
    /// Where they came from, as the table says.
    pub source: String,
    /// Prices by model name.
    pub models: BTreeMap<String, ModelPrice>,
}

impl PriceTable {
    /// The snapshot compiled into the binary.
    pub fn builtin() -> Result<Self, PricesError> {
        Self::parse(BUILTIN)
    }

    /// Reads a LiteLLM-format table (the full upstream file or a filtered one). Models of
    /// other providers, other modes and entries without token prices are skipped; a kept
    /// model with a malformed price fails the whole table, so a bad file changes nothing.
    pub fn parse(text: &str) -> Result<Self, PricesError> {
        parse::table(text)
    }

    /// The table as LiteLLM-format JSON, which [`PriceTable::parse`] reads back to the same
    /// table: what `prices update` stores.
    pub fn to_json(&self) -> String {
        parse::to_json(self)
    }

    /// The entry a model name is priced by, and the name it matched (see the module docs for
    /// the rule); `None` when the model is unknown.
    pub fn lookup(&self, model: &str) -> Option<(&str, &ModelPrice)> {
        let exact = |name: &str| self.models.get_key_value(name);
        let bare = model.rsplit('/').next().unwrap_or(model);
        let undated = strip_date(bare);
        let found = exact(model)
            .or_else(|| exact(bare))
            .or_else(|| undated.and_then(exact))
            .or_else(|| {
                // An undated name: its newest dated entry (dates sort as text).
                self.models
                    .range(format!("{bare}-")..)
                    .take_while(|(k, _)| k.starts_with(bare))
                    .filter(|(k, _)| strip_date(k) == Some(bare))
                    .last()
            });
        found.map(|(k, v)| (k.as_str(), v))
    }
}

/// `name` without a trailing date (`-YYYYMMDD` or `-YYYY-MM-DD`), if it has one.
fn strip_date(name: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((head, tail)) = name.rsplit_once('-')
        && tail.len() == 8
        && digits(tail)
        && tail.starts_with("20")
    {
        return Some(head);
    }
    let b = name.as_bytes();
    if b.len() > 11 {
        let (head, tail) = name.split_at(name.len() - 11);
        let t = tail.as_bytes();
        if t[0] == b'-'
            && t[5] == b'-'
            && t[8] == b'-'
            && digits(&tail[1..5])
            && digits(&tail[6..8])
            && digits(&tail[9..11])
        {
            return Some(head);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_snapshot_loads_and_prices_the_main_current_models() {
        let t = PriceTable::builtin().unwrap();
        assert_eq!(t.date, "2026-12-02");
        assert!(t.source.contains("LiteLLM"), "{}", t.source);
        for m in [
            "claude-sonnet-4-5",
            "claude-opus-4-5",
            "claude-haiku-4-5",
            "claude-opus-4-7",
            "gpt-5",
            "gpt-5-codex",
            "gpt-5.1-codex",
            "gpt-4.1",
            "o3",
            "o4-mini",
        ] {
            assert!(t.models.contains_key(m), "{m} missing");
        }
        // $3 and $15 per million tokens, $3.75 to write and $0.30 to read the cache.
        let sonnet = &t.models["claude-sonnet-4-5"].base;
        assert_eq!(
            *sonnet,
            Rates {
                input: 3_000_000,
                output: 15_000_000,
                cache_write: Some(3_750_000),
                cache_read: Some(300_000),
            }
        );
        assert!(!t.models.keys().any(|k| k.starts_with("gemini")));
        // A model with a long-context tier kept its threshold.
        let haiku = &t.models["claude-haiku-5-5"];
        assert_eq!(haiku.tiers.len(), 1);
        assert_eq!(haiku.tiers[0].above, 100_000);
    }

    #[test]
    fn names_match_exactly_then_without_prefix_then_without_date() {
        let t = PriceTable::builtin().unwrap();
        let name = |m: &str| t.lookup(m).map(|(k, _)| k.to_string());
        assert_eq!(
            name("claude-sonnet-4-5-20250929").as_deref(),
            Some("claude-sonnet-4-5-20250929")
        );
        assert_eq!(
            name("anthropic/claude-sonnet-4-5").as_deref(),
            Some("claude-sonnet-4-5")
        );
        // A dated name the table does not list falls back to the undated entry.
        assert_eq!(
            name("claude-sonnet-4-6-20991231").as_deref(),
            Some("claude-sonnet-4-6")
        );
        assert_eq!(name("gpt-4.1-2099-01-01").as_deref(), Some("gpt-4.1"));
        assert_eq!(name("claude-unheard-of-9"), None);
        assert_eq!(name(""), None);
    }

    #[test]
    fn an_undated_name_takes_its_newest_dated_entry() {
        let t = PriceTable::parse(
            r#"{"m-20240101": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
                "m-20250101": {"input_cost_per_token": 2e-06, "output_cost_per_token": 2e-06},
                "m-mini-20260101": {"input_cost_per_token": 9e-06, "output_cost_per_token": 9e-06}}"#,
        )
        .unwrap();
        assert_eq!(t.lookup("m").map(|(k, _)| k), Some("m-20250101"));
    }

    #[test]
    fn dates_are_recognised_only_as_a_suffix_of_digits() {
        assert_eq!(strip_date("claude-x-20250929"), Some("claude-x"));
        assert_eq!(strip_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(strip_date("gpt-4o"), None);
        assert_eq!(strip_date("claude-3-5"), None);
        assert_eq!(strip_date("x-2024-8-06"), None);
    }
}
