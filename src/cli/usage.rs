//! `authledger usage record` and `authledger usage`

use clap::{Args, Subcommand, ValueEnum};

use super::Ctx;
use super::args::{self, When};
use super::json::{CostJson, UsageRecordedJson, UsageRowJson};
use super::output::table;
use crate::error::{Error, exit};
use crate::prices::Cost;
use crate::quota::UsageRecord;
use crate::records::{UsageGroup, UsageSummary};
use crate::types::{LeaseId, LeaseState};

/// Record usage, or summarise it.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct UsageCmd {
    #[command(subcommand)]
    action: Option<UsageAction>,
    /// Usage from this time on (2026-11-23, RFC 3339, or a duration ago such as 24h);
    /// default: the last 24 hours.
    #[arg(long, value_parser = args::when)]
    since: Option<When>,
    /// Group by agent, provider, day, model or session (one lease).
    #[arg(long, value_enum, default_value = "agent")]
    by: GroupBy,
    /// Show what the usage cost beside its tokens, at the prices in force (`prices show`).
    #[arg(long)]
    cost: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GroupBy {
    Agent,
    Provider,
    Day,
    Model,
    Session,
}

#[derive(Debug, Subcommand)]
enum UsageAction {
    /// Record tokens used on a lease (idempotent with --key).
    Record {
        /// The lease the tokens were used on.
        lease_id: LeaseId,
        /// Input tokens.
        #[arg(long, value_name = "N", value_parser = args::tokens, allow_negative_numbers = true)]
        input: i64,
        /// Output tokens.
        #[arg(long, value_name = "N", value_parser = args::tokens, allow_negative_numbers = true)]
        output: i64,
        /// Requests made.
        #[arg(long, value_name = "N", value_parser = args::tokens, default_value = "1", allow_negative_numbers = true)]
        requests: i64,
        /// Idempotency key: a retry with the same key is recorded once.
        #[arg(long, value_name = "IDEMPOTENCY_KEY")]
        key: Option<String>,
        /// Refuse unless this is the lease's fencing number (printed by acquire --json).
        #[arg(long, value_name = "N")]
        fence: Option<i64>,
        /// The model the provider answered with (for `usage --by model`).
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
        /// Prompt-cache tokens read (counted against the budget like input).
        #[arg(long, value_name = "N", value_parser = args::tokens, default_value = "0", allow_negative_numbers = true)]
        cache_read: i64,
        /// Prompt-cache tokens written (counted against the budget like input).
        #[arg(long, value_name = "N", value_parser = args::tokens, default_value = "0", allow_negative_numbers = true)]
        cache_write: i64,
        /// The request's outcome (ok, error, …).
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
    },
}

impl UsageCmd {
    /// Runs the command.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        match &self.action {
            Some(UsageAction::Record {
                lease_id,
                input,
                output,
                requests,
                key,
                fence,
                model,
                cache_read,
                cache_write,
                status,
            }) => {
                let mut record = UsageRecord::new(*input, *output).cache(*cache_read, *cache_write);
                record.requests = *requests;
                record.key = key.clone();
                record.model = model.clone();
                record.status = status.clone();
                record.validate()?;
                let ledger = ctx.open()?;
                if let Some(f) = fence {
                    ledger.check_fence(lease_id, *f)?;
                }
                let o = ledger.record_usage(lease_id, &record)?;
                if ctx.out.json {
                    ctx.out.json(&UsageRecordedJson::from(&o))?;
                } else {
                    let note = if o.duplicate {
                        " (already recorded)"
                    } else {
                        ""
                    };
                    ctx.out.line(&format!(
                        "{}: {} of {} tokens used{note}{}",
                        o.lease_id,
                        o.lease_used,
                        o.allocated,
                        if o.exhausted {
                            "; lease exhausted: acquire a new one before going on"
                        } else {
                            ""
                        }
                    ))?;
                }
                if o.lease_state != LeaseState::Active {
                    let msg = format!(
                        "usage recorded, but lease {} is {}: it was lost; stop using it",
                        o.lease_id, o.lease_state
                    );
                    ctx.out.failure(&msg, exit::DENIED);
                    return Ok(exit::DENIED);
                }
                Ok(0)
            }
            None => {
                let ledger = ctx.open()?;
                let since = self
                    .since
                    .unwrap_or(When::Ago(std::time::Duration::from_secs(86_400)))
                    .resolve(ctx.clock());
                let group = match self.by {
                    GroupBy::Agent => UsageGroup::Agent,
                    GroupBy::Provider => UsageGroup::Provider,
                    GroupBy::Day => UsageGroup::Day,
                    GroupBy::Model => UsageGroup::Model,
                    GroupBy::Session => UsageGroup::Session,
                };
                let rows = ledger.usage_report(since, group)?;
                let prices = if self.cost {
                    Some(super::prices::in_force(ctx)?)
                } else {
                    None
                };
                let costs = match &prices {
                    Some(p) => Some(ledger.usage_cost(since, group, &p.table)?),
                    None => None,
                };
                let cost_of = |key: &str| {
                    costs
                        .as_ref()
                        .map(|c| c.get(key).copied().unwrap_or_default())
                };
                if ctx.out.json {
                    let rows: Vec<_> = rows
                        .iter()
                        .map(|r| {
                            let mut row = UsageRowJson::from(r);
                            row.cost = cost_of(&r.key).as_ref().map(CostJson::from);
                            row
                        })
                        .collect();
                    return ctx.out.json(&rows).map(|_| 0);
                }
                let row_costs: Option<Vec<Cost>> = costs
                    .as_ref()
                    .map(|_| rows.iter().filter_map(|r| cost_of(&r.key)).collect());
                ctx.out
                    .line(&usage_table(&rows, row_costs.as_deref()).to_string())?;
                if let (Some(p), Some(costs)) = (&prices, &costs) {
                    let mut total = Cost::default();
                    for c in costs.values() {
                        total.merge(c);
                    }
                    let line = total_line(&total, &p.table.date);
                    for line in super::output::wrap(&line, super::output::WIDTH) {
                        ctx.out.line(&line)?;
                    }
                }
                for q in ledger.quota(None)? {
                    let windows: Vec<String> = q
                        .windows
                        .iter()
                        .filter_map(|w| w.percent.map(|p| format!("{} {p:.1} %", w.kind)))
                        .collect();
                    ctx.out.line(&format!(
                        "{}/{}: {}",
                        q.provider,
                        q.account,
                        windows.join(", ")
                    ))?;
                }
                if let Some(r) = super::status::recommendation(&ledger, ctx.clock().now_ms()) {
                    for line in super::output::wrap(&r, ctx.out.screen().width) {
                        ctx.out.line(&line)?;
                    }
                }
                Ok(0)
            }
        }
    }
}

/// The line under `usage --cost`: the sum, and what it leaves out.
fn total_line(total: &Cost, date: &str) -> String {
    let mut line = format!("cost {} (prices of {date})", total.cell());
    if total.unknown_requests > 0 {
        line.push_str(&format!(
            "; {}",
            super::prices::unpriced(total.unknown_requests)
        ));
    }
    line
}

/// The summary table, within [`super::output::WIDTH`] columns: token figures of a million or
/// more are shortened (`12.3M`; `--json` has them exact), the record count is left to
/// `--json`, and a key (a long model name) that would not fit is cut with `…`. With `costs`
/// (one per row), a `cost` column in dollars and cents takes the place of `total` (the sum
/// of the token columns beside it, exact in `--json`), so a lease id still fits whole.
fn usage_table(rows: &[UsageSummary], costs: Option<&[Cost]>) -> comfy_table::Table {
    let mut header = vec!["input", "output", "cache rd", "cache wr"];
    if costs.is_some() {
        header.extend(["reqs", "cost"]);
    } else {
        header.extend(["total", "requests"]);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut c: Vec<String> = [r.input, r.output, r.cache_read, r.cache_write]
                .map(compact)
                .to_vec();
            match costs {
                Some(costs) => {
                    c.push(compact(r.requests));
                    c.push(costs.get(i).map_or_else(|| "?".into(), Cost::cell));
                }
                None => c.extend([compact(r.total), compact(r.requests)]),
            }
            c
        })
        .collect();
    // Each column is its widest cell plus one blank each side.
    let numbers: usize = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
                + 2
        })
        .sum();
    let key_width = super::output::WIDTH.saturating_sub(numbers + 2).max(3);
    header.insert(0, "key");
    let mut t = table(&header);
    for (r, c) in rows.iter().zip(cells) {
        let mut row = vec![cut(&r.key, key_width)];
        row.extend(c);
        t.add_row(row);
    }
    t
}

/// A token count for a table cell: exact below a million, else `1.23M`, `12.3M`, `123M`, `1.23G`.
fn compact(n: i64) -> String {
    let a = n.unsigned_abs() as f64;
    let (v, unit) = if a < 1e6 {
        return n.to_string();
    } else if a < 1e9 {
        (a / 1e6, "M")
    } else {
        (a / 1e9, "G")
    };
    let sign = if n < 0 { "-" } else { "" };
    let digits = if v < 9.995 {
        format!("{v:.2}")
    } else if v < 99.95 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    };
    format!("{sign}{digits}{unit}")
}

/// `s` in at most `width` characters, its end replaced by `…` when cut.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, n: i64) -> UsageSummary {
        UsageSummary {
            key: key.into(),
            input: n,
            output: n,
            cache_read: n,
            cache_write: n,
            total: 4 * n,
            requests: n,
            records: 1,
        }
    }

    #[test]
    fn the_usage_table_fits_80_columns_with_long_models_and_big_counts() {
        let rows = [
            row("claude-sonnet-4-5-20250929", 3_000),
            row(
                "a-very-long-model-name-from-some-gateway-2026-12-01",
                987_654_321_012,
            ),
        ];
        let text = usage_table(&rows, None).to_string();
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{} wide: {line}", line.len());
        }
        assert!(text.contains("claude-sonnet-4-5-20250929"), "{text}");
        assert!(text.contains("988G"), "{text}");
        assert!(text.contains("a-very-long-model-name-fr…"), "{text}");
    }

    #[test]
    fn the_cost_table_fits_80_columns_and_keeps_a_lease_id_whole() {
        // A working session: lease ids stay whole.
        let rows = [row("lease-ec0d673c9de28f073c89", 99_999)];
        let costs = [Cost {
            picos: 12_345_000_000_000,
            unknown_requests: 0,
        }];
        let text = usage_table(&rows, Some(&costs)).to_string();
        assert!(text.contains("lease-ec0d673c9de28f073c89"), "{text}");
        assert!(text.contains("$12.35"), "{text}");
        assert!(!text.contains("TOTAL"), "{text}");
        // Extreme figures: the id is cut, the line still fits.
        let rows = [
            row("lease-ec0d673c9de28f073c89", 999_999),
            row("lease-0000000000000000000a", 987_654_321_012),
        ];
        let costs = [
            Cost {
                picos: 123_456_780_000_000_000,
                unknown_requests: 3,
            },
            Cost::default(),
        ];
        let text = usage_table(&rows, Some(&costs)).to_string();
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{} wide: {line}", line.len());
        }
        assert!(text.contains("lease-ec0d67"), "{text}");
        assert!(text.contains("≥ $123,456.78"), "{text}");
        assert!(text.contains("$0.00"), "{text}");
    }

    #[test]
    fn compact_counts_keep_three_significant_digits() {
        assert_eq!(compact(999_999), "999999");
        assert_eq!(compact(1_234_567), "1.23M");
        assert_eq!(compact(12_345_678), "12.3M");
        assert_eq!(compact(123_456_789), "123M");
        assert_eq!(compact(9_999_999), "10.0M");
        assert_eq!(compact(1_500_000_000), "1.50G");
    }
}
