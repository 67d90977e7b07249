//! The cost of usage records, summed exactly in picodollars, and how a sum is shown.

use super::PriceTable;

/// Picodollars in a micro-dollar.
const PICOS_PER_MICRO: i128 = 1_000_000;

/// One usage record's figures, as the ledger stores them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage<'a> {
    /// The model the provider answered with; `None` when the record named none.
    pub model: Option<&'a str>,
    /// Input tokens (not counting cache reads or writes).
    pub input: i64,
    /// Output tokens.
    pub output: i64,
    /// Prompt-cache tokens read.
    pub cache_read: i64,
    /// Prompt-cache tokens written.
    pub cache_write: i64,
    /// Requests the record covers (the gateway writes one record per request).
    pub requests: i64,
}

impl PriceTable {
    /// What one record cost in picodollars, or `None` for a model the table does not know
    /// (or no model at all): never a guessed $0.
    ///
    /// The long-context tier is decided by the prompt (input + cache read + cache write) of
    /// each request, and when it passes the threshold the *whole* request — output and cache
    /// tokens too — is charged at the tier's prices, as Anthropic and OpenAI bill. A record of
    /// several requests is judged by its average prompt per request.
    pub fn cost_of(&self, u: &Usage<'_>) -> Option<i128> {
        let (_, price) = self.lookup(u.model?)?;
        let prompt = u
            .input
            .saturating_add(u.cache_read)
            .saturating_add(u.cache_write);
        let r = price.rates_for(prompt / u.requests.max(1));
        let part = |tokens: i64, rate: i64| i128::from(tokens) * i128::from(rate);
        Some(
            part(u.input, r.input)
                + part(u.output, r.output)
                + part(u.cache_read, r.cache_read.unwrap_or(r.input))
                + part(u.cache_write, r.cache_write.unwrap_or(r.input)),
        )
    }
}

/// A sum of costs, with what could not be priced counted beside it: a lower bound whenever
/// `unknown_requests` is not zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// The priced records' cost, in picodollars (10⁻¹² USD).
    pub picos: i128,
    /// Requests of records whose model is unknown to the table (or not named).
    pub unknown_requests: i64,
}

impl Cost {
    /// Adds one record.
    pub fn add(&mut self, table: &PriceTable, u: &Usage<'_>) {
        match table.cost_of(u) {
            Some(p) => self.picos += p,
            None => self.unknown_requests += u.requests.max(1),
        }
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: &Cost) {
        self.picos += other.picos;
        self.unknown_requests += other.unknown_requests;
    }

    /// The sum for a table cell: `$12.35`, `≥ $12.35` when some requests were unpriced, `?`
    /// when none was priced and some were not.
    pub fn cell(&self) -> String {
        match (self.picos, self.unknown_requests) {
            (_, 0) => format_usd(self.picos),
            (0, _) => "?".to_string(),
            (p, _) => format!("≥ {}", format_usd(p)),
        }
    }
}

/// Picodollars as whole micro-dollars, rounded half away from zero.
pub fn micro_usd(picos: i128) -> i128 {
    let half = PICOS_PER_MICRO / 2;
    if picos >= 0 {
        (picos + half) / PICOS_PER_MICRO
    } else {
        (picos - half) / PICOS_PER_MICRO
    }
}

/// Picodollars as an exact decimal string of dollars to the micro-dollar (`"12.345678"`):
/// what `--json` prints as `cost_usd`, so no reader has to trust a float.
pub fn usd_decimal(picos: i128) -> String {
    let micros = micro_usd(picos);
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// Picodollars for a person: dollars and cents (`$12.35`), and `<$0.01` for a cost that
/// rounds to nothing but is not nothing.
pub fn format_usd(picos: i128) -> String {
    let cents_in = 10_000_000_000_i128;
    let cents = (picos + cents_in / 2).div_euclid(cents_in);
    if cents == 0 && picos > 0 {
        return "<$0.01".to_string();
    }
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}${}.{:02}", group(c / 100), c % 100)
}

/// Whole dollars with thousands separators (`1,234`).
fn group(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model at $3 / $15 per million, $3.75 to write and $0.30 to read the cache, and
    /// twice that (input) and 1.5× (output) past 200k prompt tokens; one without cache
    /// prices.
    fn table() -> PriceTable {
        PriceTable::parse(
            r#"{"_snapshot": {"date": "2026-01-01", "source": "test"},
                "claude-x": {"litellm_provider": "anthropic", "mode": "chat",
                  "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                  "cache_creation_input_token_cost": 3.75e-06,
                  "cache_read_input_token_cost": 3e-07,
                  "input_cost_per_token_above_200k_tokens": 6e-06,
                  "output_cost_per_token_above_200k_tokens": 2.25e-05,
                  "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
                  "cache_read_input_token_cost_above_200k_tokens": 6e-07},
                "gpt-y": {"litellm_provider": "openai", "mode": "chat",
                  "input_cost_per_token": 1.25e-06, "output_cost_per_token": 1e-05}}"#,
        )
        .unwrap()
    }

    fn usage(model: &str, input: i64, output: i64, read: i64, write: i64) -> Usage<'_> {
        Usage {
            model: Some(model),
            input,
            output,
            cache_read: read,
            cache_write: write,
            requests: 1,
        }
    }

    #[test]
    fn plain_input_and_output_cost_what_the_price_list_says() {
        // 1 000 in × $3/M + 500 out × $15/M = $0.003 + $0.0075 = $0.0105.
        let p = table().cost_of(&usage("claude-x", 1_000, 500, 0, 0));
        assert_eq!(p, Some(10_500_000_000));
        assert_eq!(usd_decimal(p.unwrap()), "0.010500");
        assert_eq!(micro_usd(p.unwrap()), 10_500);
    }

    #[test]
    fn cache_writes_and_reads_have_their_own_prices() {
        // 100 in × $3/M + 10 000 write × $3.75/M + 50 000 read × $0.30/M + 200 out × $15/M
        // = $0.0003 + $0.0375 + $0.015 + $0.003 = $0.0558.
        let p = table().cost_of(&usage("claude-x", 100, 200, 50_000, 10_000));
        assert_eq!(usd_decimal(p.unwrap()), "0.055800");
        // Without cache prices, cache tokens are charged as input: 3 000 × $1.25/M.
        let p = table().cost_of(&usage("gpt-y", 1_000, 0, 1_000, 1_000));
        assert_eq!(usd_decimal(p.unwrap()), "0.003750");
    }

    #[test]
    fn a_prompt_past_the_threshold_is_charged_whole_at_the_higher_tier() {
        let t = table();
        // Exactly 200 000 prompt tokens: not past it. 100k in × $3/M + 60k read × $0.30/M
        // + 40k write × $3.75/M + 1 000 out × $15/M = 0.3 + 0.018 + 0.15 + 0.015 = $0.483.
        let at = t.cost_of(&usage("claude-x", 100_000, 1_000, 60_000, 40_000));
        assert_eq!(usd_decimal(at.unwrap()), "0.483000");
        // One token more, and every token is at the tier: 100 001 × $6/M + 60k × $0.60/M
        // + 40k × $7.50/M + 1 000 × $22.50/M = 0.600006 + 0.036 + 0.3 + 0.0225 = $0.958506.
        let past = t.cost_of(&usage("claude-x", 100_001, 1_000, 60_000, 40_000));
        assert_eq!(usd_decimal(past.unwrap()), "0.958506");
        // Output does not count towards the threshold.
        let out = t.cost_of(&usage("claude-x", 200_000, 1_000_000, 0, 0));
        assert_eq!(usd_decimal(out.unwrap()), "15.600000");
        // A record of two requests is judged per request: 150k each is under 200k.
        let mut two = usage("claude-x", 300_000, 0, 0, 0);
        two.requests = 2;
        assert_eq!(usd_decimal(t.cost_of(&two).unwrap()), "0.900000");
    }

    #[test]
    fn an_unknown_model_is_unknown_never_zero() {
        let t = table();
        assert_eq!(
            t.cost_of(&usage("claude-nonesuch", 1_000, 1_000, 0, 0)),
            None
        );
        let none = Usage {
            model: None,
            input: 5,
            ..Usage::default()
        };
        assert_eq!(t.cost_of(&none), None);
        let mut sum = Cost::default();
        sum.add(&t, &usage("claude-x", 1_000, 500, 0, 0));
        sum.add(&t, &usage("claude-nonesuch", 1_000, 1_000, 0, 0));
        assert_eq!(sum.unknown_requests, 1);
        assert_eq!(sum.picos, 10_500_000_000);
        assert_eq!(sum.cell(), "≥ $0.01");
        let mut only_unknown = Cost::default();
        only_unknown.add(&t, &none);
        assert_eq!(only_unknown.cell(), "?");
    }

    #[test]
    fn sums_stay_exact_where_floats_drift() {
        // A million records of 1 token at $0.30/M: exactly $0.30 (0.1 + 0.2 style drift in
        // f64 would not be).
        let t = table();
        let mut sum = Cost::default();
        for _ in 0..1_000_000 {
            sum.add(&t, &usage("claude-x", 0, 0, 1, 0));
        }
        assert_eq!(usd_decimal(sum.picos), "0.300000");
        assert_eq!(sum.picos, 300_000_000_000);
    }

    #[test]
    fn money_is_shown_in_cents_with_separators() {
        assert_eq!(format_usd(0), "$0.00");
        assert_eq!(format_usd(1), "<$0.01");
        assert_eq!(format_usd(12_345_000_000_000), "$12.35");
        assert_eq!(format_usd(1_234_567_890_000_000_000), "$1,234,567.89");
        assert_eq!(usd_decimal(-1_500_000), "-0.000002");
        assert_eq!(micro_usd(499_999), 0);
        assert_eq!(micro_usd(500_000), 1);
    }
}
