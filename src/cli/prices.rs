//! `authledger prices [show]` and `authledger prices update --from FILE`, and the table the
//! cost-showing commands (`usage --cost`, `quota`, `status`) use.
//!
//! The table in force is the file `prices update` wrote beside the database
//! (`ledger.db.prices.json`, see [`crate::paths::prices_file`]) if there is one, else the
//! snapshot built into the binary. A file, not a settings row: it is read without opening the
//! ledger, replaced atomically (a reader sees the old table or the new one), and removing it
//! returns to the built-in prices.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::Ctx;
use super::json::{ModelPriceJson, PricesJson};
use super::output::table;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::paths::prices_file;
use crate::prices::{Cost, PriceTable, PricesError, Rates};
use crate::records::UsageGroup;
use crate::types::{Account, Provider};

/// Show the model prices in force, or replace them.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PricesCmd {
    #[command(subcommand)]
    action: Option<PricesAction>,
    /// Only this model (matched as costs are: exact, then without provider prefix or date).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
}

#[derive(Debug, Subcommand)]
enum PricesAction {
    /// List the prices in force, with their date and source.
    Show {
        /// Only this model (matched as costs are: exact, then without provider prefix or
        /// date).
        #[arg(long, value_name = "MODEL")]
        model: Option<String>,
    },
    /// Put a LiteLLM-format price table (model_prices_and_context_window.json) in force for
    /// this ledger; a malformed file changes nothing.
    Update {
        /// The table to read.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}

/// The table in force and where it came from.
pub struct InForce {
    /// The prices.
    pub table: PriceTable,
    /// The file `prices update` wrote, or `None` for the built-in snapshot.
    pub file: Option<PathBuf>,
}

/// The prices the cost-showing commands use: the ledger's own file, else the built-in one.
pub fn in_force(ctx: &Ctx) -> Result<InForce, Error> {
    let path = prices_file(&ctx.db_path()?);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(InForce {
            table: PriceTable::parse(&text).map_err(|source| Error::Prices {
                file: path.display().to_string(),
                source,
            })?,
            file: Some(path),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(InForce {
            table: PriceTable::builtin().map_err(|source| Error::Prices {
                file: "(built in)".into(),
                source,
            })?,
            file: None,
        }),
        Err(e) => Err(Error::Io {
            what: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// What each account's usage cost today (since 00:00 UTC), keyed `provider/account`.
pub fn costs_today(ctx: &Ctx, ledger: &Ledger) -> Result<BTreeMap<String, Cost>, Error> {
    let prices = in_force(ctx)?;
    let now = ledger.now();
    ledger.usage_cost(
        now - now.rem_euclid(DAY_MS),
        UsageGroup::Provider,
        &prices.table,
    )
}

/// One account's cost in `costs` (nothing used: $0).
pub fn cost_of(costs: &BTreeMap<String, Cost>, provider: Provider, account: &Account) -> Cost {
    costs
        .get(&format!("{provider}/{account}"))
        .copied()
        .unwrap_or_default()
}

/// The line under `quota` and `status`: `today (UTC): claude/default $1.23, …`, with the
/// requests whose model has no price counted, so a lower bound never passes for a total.
pub fn today_line<'a>(
    accounts: impl Iterator<Item = (Provider, &'a Account)>,
    costs: &BTreeMap<String, Cost>,
) -> Option<String> {
    let mut unknown = 0;
    let parts: Vec<String> = accounts
        .map(|(p, a)| {
            let c = cost_of(costs, p, a);
            unknown += c.unknown_requests;
            format!("{p}/{a} {}", c.cell())
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    let mut line = format!("cost today (UTC): {}", parts.join(", "));
    if unknown > 0 {
        line.push_str(&format!("; {}", unpriced(unknown)));
    }
    Some(line)
}

/// `1 request of an unknown model not priced`, `3 requests of unknown models not priced`.
pub fn unpriced(requests: i64) -> String {
    if requests == 1 {
        "1 request of an unknown model not priced".to_string()
    } else {
        format!("{requests} requests of unknown models not priced")
    }
}

impl PricesCmd {
    /// Runs the command.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        match &self.action {
            None => show(ctx, self.model.as_deref()),
            Some(PricesAction::Show { model }) => show(ctx, model.as_deref()),
            Some(PricesAction::Update { from }) => update(ctx, from),
        }
    }
}

fn show(ctx: &Ctx, model: Option<&str>) -> Result<i32, Error> {
    let f = in_force(ctx)?;
    let models: Vec<(&str, &crate::prices::ModelPrice)> = match model {
        Some(m) => {
            let found = f.table.lookup(m).ok_or_else(|| Error::Prices {
                file: format!("of {} ({})", f.table.date, origin(&f)),
                source: PricesError::UnknownModel(m.to_string()),
            })?;
            vec![found]
        }
        None => f
            .table
            .models
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect(),
    };
    if ctx.out.json {
        return ctx
            .out
            .json(&PricesJson {
                date: f.table.date.clone(),
                source: f.table.source.clone(),
                file: f.file.clone(),
                models: models
                    .iter()
                    .map(|(name, p)| ModelPriceJson::new(name, p))
                    .collect(),
            })
            .map(|_| 0);
    }
    let head = format!(
        "prices of {} ({}); source: {}",
        f.table.date,
        origin(&f),
        f.table.source
    );
    for line in super::output::wrap(&head, super::output::WIDTH) {
        ctx.out.line(&line)?;
    }
    ctx.out
        .line("USD per million tokens; a long prompt is charged whole at its tier")?;
    let mut t = table(&["model", "input", "output", "cache wr", "cache rd", "tier"]);
    for (name, p) in &models {
        t.add_row(row(&cut(name, 30), &p.base, ""));
        for tier in &p.tiers {
            let label = format!("> {}k", tier.above / 1000);
            t.add_row(row("", &tier.rates, &label));
        }
    }
    for line in t.to_string().lines() {
        ctx.out.line(line.trim_end())?;
    }
    Ok(0)
}

fn row(name: &str, r: &Rates, tier: &str) -> Vec<String> {
    vec![
        name.to_string(),
        per_million(r.input),
        per_million(r.output),
        r.cache_write.map_or("= input".into(), per_million),
        r.cache_read.map_or("= input".into(), per_million),
        tier.to_string(),
    ]
}

/// Picodollars per token as dollars per million tokens, exact (`3`, `3.75`, `0.0546875`).
pub fn per_million(picos: i64) -> String {
    let whole = picos / 1_000_000;
    let frac = picos % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// `built in`, or the file in force.
fn origin(f: &InForce) -> String {
    f.file
        .as_ref()
        .map_or_else(|| "built in".to_string(), |p| p.display().to_string())
}

fn update(ctx: &Ctx, from: &Path) -> Result<i32, Error> {
    let bad = |source| Error::Prices {
        file: from.display().to_string(),
        source,
    };
    let text =
        std::fs::read_to_string(from).map_err(|e| bad(PricesError::Unreadable(e.to_string())))?;
    let mut table = PriceTable::parse(&text).map_err(bad)?;
    // The upstream file carries no date of its own: it is dated by this update.
    if table.date.is_empty() {
        table.date = crate::clock::format_ms(ctx.clock().now_ms())
            .chars()
            .take(10)
            .collect();
    }
    if table.source.is_empty() {
        table.source = format!("{} (prices update)", from.display());
    }
    let path = prices_file(&ctx.db_path()?);
    write_atomically(&path, &table.to_json())?;
    let f = InForce {
        table,
        file: Some(path),
    };
    if ctx.out.json {
        return ctx
            .out
            .json(&PricesJson {
                date: f.table.date.clone(),
                source: f.table.source.clone(),
                file: f.file.clone(),
                models: Vec::new(),
            })
            .map(|_| 0);
    }
    ctx.out.line(&format!(
        "{} model prices of {} in force ({})",
        f.table.models.len(),
        f.table.date,
        origin(&f)
    ))?;
    Ok(0)
}

/// Writes `text` to `path` through a private temporary file renamed over it, so a reader
/// sees the old table or the new one, never half of one.
fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    let io = |what: &str, source| Error::Io {
        what: format!("{what} {}", path.display()),
        source,
    };
    let tmp = crate::paths::sidecar(path, format!(".tmp-{}", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("writing", e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("replacing", e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_per_million_tokens_are_exact() {
        assert_eq!(per_million(3_000_000), "3");
        assert_eq!(per_million(3_750_000), "3.75");
        assert_eq!(per_million(546_875), "0.546875");
        assert_eq!(per_million(0), "0");
    }
}
