//! The ledger's figures as OpenMetrics text (`authledger metrics`, and `GET /metrics` on the
//! gateway's loopback listener): one read of the ledger, nothing written, nothing fetched.
//!
//! Every family is named `authledger_…` and carries `# TYPE`, `# HELP` and, where it has
//! one, `# UNIT` (its name then ends with the unit, as the format requires). Counters are
//! the audit trail's and the usage records' totals since the ledger began; gauges are the
//! windows and leases now. The text ends with `# EOF`. See
//! <https://prometheus.io/docs/specs/om/open_metrics_spec/>.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::audit::action;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::prices::{Cost, PriceTable};
use crate::records::UsageGroup;

/// The content type the text is served with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One metric family being assembled.
struct Family {
    name: &'static str,
    kind: &'static str,
    unit: Option<&'static str>,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, String)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind,
            unit: None,
            help,
            samples: Vec::new(),
        }
    }

    fn unit(mut self, unit: &'static str) -> Family {
        self.unit = Some(unit);
        self
    }

    fn sample(&mut self, labels: Vec<(&'static str, String)>, value: impl ToString) {
        self.samples.push((labels, value.to_string()));
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        if let Some(unit) = self.unit {
            let _ = writeln!(out, "# UNIT {} {unit}", self.name);
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let suffix = if self.kind == "counter" { "_total" } else { "" };
        for (labels, value) in &self.samples {
            let _ = write!(out, "{}{suffix}", self.name);
            if !labels.is_empty() {
                let parts: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", parts.join(","));
            }
            let _ = writeln!(out, " {value}");
        }
    }
}

/// A label value as the format quotes it: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The price table for a ledger as the CLI uses it: `prices update`'s file beside the
/// database, else the built-in snapshot; `None` when the file cannot be read (costs are then
/// left out rather than guessed).
pub fn prices_for(db_path: &Path) -> Option<PriceTable> {
    match std::fs::read_to_string(crate::paths::prices_file(db_path)) {
        Ok(text) => PriceTable::parse(&text).ok(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PriceTable::builtin().ok(),
        Err(_) => None,
    }
}

/// The whole text, `# EOF` included; `extra` (already formatted families, such as the
/// gateway's latency histogram) goes before the end.
pub fn render(ledger: &Ledger, prices: Option<&PriceTable>, extra: &str) -> Result<String, Error> {
    let mut families = windows(ledger)?;
    families.extend(audit_counters(ledger)?);
    families.extend(models(ledger, prices)?);
    families.push(gateway_requests(ledger)?);
    let mut out = String::new();
    for f in &families {
        f.render(&mut out);
    }
    out.push_str(extra);
    out.push_str("# EOF\n");
    Ok(out)
}

fn windows(ledger: &Ledger) -> Result<Vec<Family>, Error> {
    let mut used = Family::new(
        "authledger_window_used_tokens",
        "gauge",
        "Tokens recorded in the window.",
    )
    .unit("tokens");
    let mut reserved = Family::new(
        "authledger_window_reserved_tokens",
        "gauge",
        "Tokens held by active leases in the window.",
    )
    .unit("tokens");
    let mut limit = Family::new(
        "authledger_window_limit_tokens",
        "gauge",
        "The window's token limit (absent when it has none).",
    )
    .unit("tokens");
    let mut active = Family::new("authledger_leases_active", "gauge", "Leases active now.");
    let mut concurrent = Family::new(
        "authledger_leases_concurrent_limit",
        "gauge",
        "Concurrent leases allowed.",
    );
    for q in ledger.quota(None)? {
        let account = || {
            vec![
                ("provider", q.provider.to_string()),
                ("account", q.account.to_string()),
            ]
        };
        for w in &q.windows {
            let mut labels = account();
            labels.push(("window", w.kind.to_string()));
            used.sample(labels.clone(), w.used);
            reserved.sample(labels.clone(), w.reserved);
            if let Some(l) = w.limit {
                limit.sample(labels, l);
            }
        }
        active.sample(account(), q.active_leases);
        concurrent.sample(account(), q.concurrent_limit);
    }
    Ok(vec![used, reserved, limit, active, concurrent])
}

fn audit_counters(ledger: &Ledger) -> Result<Vec<Family>, Error> {
    let counts = ledger.audit_counts()?;
    let of = |name, act: &str, help| {
        let mut f = Family::new(name, "counter", help);
        for (a, provider, n) in &counts {
            if a == act {
                let labels = provider.iter().map(|p| ("provider", p.clone())).collect();
                f.sample(labels, n);
            }
        }
        if f.samples.is_empty() {
            f.sample(Vec::new(), 0);
        }
        f
    };
    Ok(vec![
        of(
            "authledger_lease_grants",
            action::ACQUIRE,
            "Leases granted (audit action acquire).",
        ),
        of(
            "authledger_denials",
            action::DENY,
            "Requests refused (audit action deny).",
        ),
        of(
            "authledger_fallbacks",
            action::FALLBACK,
            "Selections that passed over the first choice (audit action fallback).",
        ),
        of(
            "authledger_lease_topups",
            action::TOPUP,
            "Active leases' allocations grown (audit action topup).",
        ),
        of(
            "authledger_oauth_refreshes",
            action::REFRESH,
            "OAuth refreshes run (audit action refresh).",
        ),
    ])
}

fn models(ledger: &Ledger, prices: Option<&PriceTable>) -> Result<Vec<Family>, Error> {
    let mut tokens = Family::new(
        "authledger_model_tokens",
        "counter",
        "Tokens recorded per model (`-`: records without one) and kind.",
    )
    .unit("tokens");
    let mut requests = Family::new(
        "authledger_model_requests",
        "counter",
        "Requests recorded per model.",
    );
    for s in ledger.usage_report(0, UsageGroup::Model)? {
        for (kind, n) in [
            ("input", s.input),
            ("output", s.output),
            ("cache_read", s.cache_read),
            ("cache_write", s.cache_write),
        ] {
            tokens.sample(vec![("model", s.key.clone()), ("kind", kind.into())], n);
        }
        requests.sample(vec![("model", s.key.clone())], s.requests);
    }
    let mut families = vec![tokens, requests];
    let Some(prices) = prices else {
        return Ok(families);
    };
    let costs: BTreeMap<String, Cost> = ledger.usage_cost(0, UsageGroup::Model, prices)?;
    let mut cost = Family::new(
        "authledger_model_cost_usd",
        "counter",
        "What the priced requests of each model cost, at the prices in force.",
    )
    .unit("usd");
    let mut unpriced = Family::new(
        "authledger_model_unpriced_requests",
        "counter",
        "Requests of a model with no price: not counted in the cost, never as $0.",
    );
    for (model, c) in &costs {
        if c.picos > 0 || c.unknown_requests == 0 {
            cost.sample(
                vec![("model", model.clone())],
                crate::prices::usd_decimal(c.picos),
            );
        }
        if c.unknown_requests > 0 {
            unpriced.sample(vec![("model", model.clone())], c.unknown_requests);
        }
    }
    families.push(cost);
    families.push(unpriced);
    Ok(families)
}

fn gateway_requests(ledger: &Ledger) -> Result<Family, Error> {
    let mut f = Family::new(
        "authledger_gateway_requests",
        "counter",
        "Requests metered by the gateway, per provider and outcome.",
    );
    for (provider, status, n) in ledger.usage_outcomes()? {
        f.sample(vec![("provider", provider), ("status", status)], n);
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn counters_sample_as_total_and_units_follow_type() {
        let mut f = Family::new("authledger_x_tokens", "counter", "X.").unit("tokens");
        f.sample(vec![("model", "m".into())], 3);
        let mut out = String::new();
        f.render(&mut out);
        assert_eq!(
            out,
            "# TYPE authledger_x_tokens counter\n# UNIT authledger_x_tokens tokens\n\
             # HELP authledger_x_tokens X.\nauthledger_x_tokens_total{model=\"m\"} 3\n"
        );
    }
}
