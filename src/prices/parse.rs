//! Reading and writing the LiteLLM-format table. Our own parser: it reads a JSON object of
//! `model → entry` and keeps, of each entry, only the four per-token prices and their
//! `…_above_<N>k_tokens` tiers; `_snapshot` carries the table's date and source.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{ModelPrice, PriceTable, PricesError, Rates, Tier};

/// The entry holding the table's own date and source, not a model.
const META: &str = "_snapshot";

/// The four prices of a tier, in the order of [`Rates`]' fields.
const FIELDS: [&str; 4] = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_creation_input_token_cost",
    "cache_read_input_token_cost",
];

/// Picodollars in a dollar.
const PICOS_PER_USD: f64 = 1e12;

/// Reads a table; see [`PriceTable::parse`].
pub(super) fn table(text: &str) -> Result<PriceTable, PricesError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| PricesError::Malformed(e.to_string()))?;
    let Value::Object(entries) = value else {
        return Err(PricesError::Malformed(
            "expected a JSON object of models".into(),
        ));
    };
    let (date, source) = match entries.get(META) {
        Some(Value::Object(m)) => (text_field(m, "date"), text_field(m, "source")),
        Some(_) => {
            return Err(PricesError::Malformed(format!("{META} is not an object")));
        }
        None => (String::new(), String::new()),
    };
    let mut models = BTreeMap::new();
    for (name, entry) in &entries {
        if name == META {
            continue;
        }
        let Value::Object(entry) = entry else {
            continue;
        };
        if !wanted(entry) {
            continue;
        }
        models.insert(name.clone(), model(name, entry)?);
    }
    if models.is_empty() {
        return Err(PricesError::Empty);
    }
    Ok(PriceTable {
        date,
        source,
        models,
    })
}

fn text_field(m: &Map<String, Value>, key: &str) -> String {
    m.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// An entry we price: one with input and output token prices, of Anthropic or OpenAI (or no
/// provider named), for chat or responses (or no mode named).
fn wanted(entry: &Map<String, Value>) -> bool {
    let is = |key: &str, allowed: &[&str]| match entry.get(key) {
        None => true,
        Some(v) => v.as_str().is_some_and(|s| allowed.contains(&s)),
    };
    entry.contains_key(FIELDS[0])
        && entry.contains_key(FIELDS[1])
        && is("litellm_provider", &["anthropic", "openai"])
        && is("mode", &["chat", "responses"])
}

fn model(name: &str, entry: &Map<String, Value>) -> Result<ModelPrice, PricesError> {
    let price = |field: String| -> Result<Option<i64>, PricesError> {
        match entry.get(&field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => picos(v).map(Some).ok_or(PricesError::BadPrice {
                model: name.to_string(),
                field,
            }),
        }
    };
    let rates = |suffix: &str, base: Option<&Rates>| -> Result<Rates, PricesError> {
        let [input, output, write, read] = FIELDS.map(|f| format!("{f}{suffix}"));
        let (input, output) = match (price(input)?, price(output)?, base) {
            (Some(i), Some(o), _) => (i, o),
            (i, o, Some(b)) => (i.unwrap_or(b.input), o.unwrap_or(b.output)),
            (_, _, None) => unreachable_prices(name)?,
        };
        Ok(Rates {
            input,
            output,
            cache_write: price(write)?.or(base.and_then(|b| b.cache_write)),
            cache_read: price(read)?.or(base.and_then(|b| b.cache_read)),
        })
    };
    let base = rates("", None)?;
    let mut thresholds: Vec<i64> = entry.keys().filter_map(|k| threshold_of(k)).collect();
    thresholds.sort_unstable();
    thresholds.dedup();
    let tiers = thresholds
        .into_iter()
        .map(|above| {
            Ok(Tier {
                above,
                rates: rates(&format!("_above_{}k_tokens", above / 1000), Some(&base))?,
            })
        })
        .collect::<Result<Vec<_>, PricesError>>()?;
    Ok(ModelPrice { base, tiers })
}

/// `wanted` saw both base prices, so only a `null` one lands here.
fn unreachable_prices(name: &str) -> Result<(i64, i64), PricesError> {
    Err(PricesError::BadPrice {
        model: name.to_string(),
        field: "input_cost_per_token or output_cost_per_token".into(),
    })
}

/// The threshold a tier field names (`input_cost_per_token_above_200k_tokens` → 200 000).
fn threshold_of(field: &str) -> Option<i64> {
    let rest = FIELDS
        .iter()
        .find_map(|f| field.strip_prefix(f)?.strip_prefix("_above_"))?;
    let k = rest.strip_suffix("k_tokens")?;
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    k.parse::<i64>().ok()?.checked_mul(1000)
}

/// Dollars per token as picodollars per token; `None` unless a finite, non-negative number
/// under a million dollars a token.
fn picos(v: &Value) -> Option<i64> {
    let usd = v.as_f64()?;
    if !usd.is_finite() || !(0.0..1e6).contains(&usd) {
        return None;
    }
    // At most 1e18 after scaling: fits an i64.
    Some((usd * PICOS_PER_USD).round() as i64)
}

/// Picodollars per token back as LiteLLM's dollars per token.
fn usd(picos: i64) -> Value {
    Value::from(picos as f64 / PICOS_PER_USD)
}

/// Writes a table; see [`PriceTable::to_json`].
pub(super) fn to_json(t: &PriceTable) -> String {
    let mut out = Map::new();
    out.insert(
        META.into(),
        serde_json::json!({ "date": t.date, "source": t.source }),
    );
    for (name, m) in &t.models {
        let mut e = Map::new();
        put(&mut e, "", &m.base);
        for tier in &m.tiers {
            put(
                &mut e,
                &format!("_above_{}k_tokens", tier.above / 1000),
                &tier.rates,
            );
        }
        out.insert(name.clone(), Value::Object(e));
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(out)).unwrap_or_default();
    text.push('\n');
    text
}

fn put(e: &mut Map<String, Value>, suffix: &str, r: &Rates) {
    let values = [Some(r.input), Some(r.output), r.cache_write, r.cache_read];
    for (field, value) in FIELDS.iter().zip(values) {
        if let Some(v) = value {
            e.insert(format!("{field}{suffix}"), usd(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_written_reads_back_the_same() {
        let t = PriceTable::builtin().unwrap();
        assert_eq!(PriceTable::parse(&t.to_json()).unwrap(), t);
    }

    #[test]
    fn other_providers_modes_and_fields_are_skipped() {
        let t = table(
            r#"{"sample_spec": {"input_cost_per_token": "n/a", "litellm_provider": "x"},
                "gemini-9": {"litellm_provider": "vertex_ai", "input_cost_per_token": 1e-06,
                             "output_cost_per_token": 1e-06},
                "text-embedding-9": {"litellm_provider": "openai", "mode": "embedding",
                             "input_cost_per_token": 1e-06, "output_cost_per_token": 0},
                "gpt-9": {"litellm_provider": "openai", "mode": "responses",
                          "input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05,
                          "cache_read_input_token_cost": 1.25e-07,
                          "input_cost_per_token_batches": 6e-07,
                          "input_cost_per_token_above_272k_tokens": 2.5e-06,
                          "input_cost_per_token_above_272k_tokens_priority": 9e-06}}"#,
        )
        .unwrap();
        assert_eq!(t.models.keys().collect::<Vec<_>>(), ["gpt-9"]);
        let m = &t.models["gpt-9"];
        assert_eq!(m.base.input, 1_250_000);
        assert_eq!(m.base.cache_read, Some(125_000));
        assert_eq!(m.base.cache_write, None);
        assert_eq!(m.tiers.len(), 1);
        assert_eq!(m.tiers[0].above, 272_000);
        // The tier names only input: the rest is the base price.
        assert_eq!(m.tiers[0].rates.input, 2_500_000);
        assert_eq!(m.tiers[0].rates.output, 10_000_000);
        assert_eq!(m.tiers[0].rates.cache_read, Some(125_000));
    }

    #[test]
    fn malformed_tables_are_refused_with_the_reason() {
        let err = |s: &str| table(s).unwrap_err().to_string();
        assert!(err("not json").starts_with("not a price table:"));
        assert!(err("[1, 2]").contains("JSON object"));
        assert_eq!(
            err(r#"{"gpt-9": {"input_cost_per_token": -1, "output_cost_per_token": 1}}"#),
            "model gpt-9: input_cost_per_token is not a non-negative number of dollars \
             per token"
        );
        assert_eq!(
            err(r#"{"gpt-9": {"input_cost_per_token": 1e-6, "output_cost_per_token": "1"}}"#),
            "model gpt-9: output_cost_per_token is not a non-negative number of dollars \
             per token"
        );
        assert_eq!(
            err("{}"),
            "no Anthropic or OpenAI model with input and output prices"
        );
    }
}
