//! The `authledger` command line: argument parsing, one module per command group, and the
//! mapping of errors to the documented exit codes.

mod agents;
mod args;
mod audit;
mod audit_text;
mod cleanup;
mod completions;
mod daemon;
mod demo;
mod demo_upstream;
mod doctor;
mod export;
mod gateway;
mod hidden;
mod init;
mod json;
mod lease;
mod limits;
mod login;
mod metrics;
mod migrate;
mod oauth_login;
mod output;
mod prices;
mod provider_says;
mod quota;
mod run;
mod status;
mod statusline;
mod token;
pub mod top;
mod usage;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::{Clock, ManualClock, SystemClock, parse_time};
use crate::config_file::ConfigFile;
use crate::error::{Error, exit};
use crate::ledger::Ledger;
use crate::ledger::LedgerConfig;
use crate::paths::{LedgerLocation, default_config_path, resolve_location};
pub use output::Output;
use std::path::Path;

/// The environment variable that pins the clock (RFC 3339 or epoch ms). Tests use it to move
/// time across processes without sleeping; it has no other use.
pub const NOW_VAR: &str = "AUTHLEDGER_NOW";

/// Set (to anything but `0`) to make commands work on the database directly even when a daemon
/// serves it.
pub const NO_DAEMON_VAR: &str = "AUTHLEDGER_NO_DAEMON";

/// One ledger for coding agents' credentials and quotas.
#[derive(Debug, Parser)]
#[command(name = "authledger", version, about, allow_negative_numbers = true)]
pub struct Cli {
    /// The ledger: a SQLite file, sqlite://PATH, or postgres://USER@HOST:PORT/DATABASE for one
    /// ledger shared by many hosts (else AUTHLEDGER_DB, else AUTHLEDGER_HOME/ledger.db, else
    /// the XDG data directory).
    #[arg(long, global = true, value_name = "PATH|URL")]
    db: Option<PathBuf>,
    /// Machine-readable output on stdout; errors as JSON on stderr.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A self-contained tour on a temporary ledger.
    Demo(demo::DemoCmd),
    /// Create the ledger (and its default limits) if it does not exist.
    Init(init::InitCmd),
    /// Store a credential: an API key from stdin, an import from Codex, Claude Code, opencode
    /// or the environment, a `claude setup-token` token, or an OAuth login (PKCE or device).
    Login(login::LoginCmd),
    /// Remove a provider's credential and revoke its leases.
    Logout(login::LogoutCmd),
    /// Print the provider's usable secret, refreshing an OAuth token first if it is about to
    /// expire (usable as Claude Code's apiKeyHelper).
    Token(token::TokenCmd),
    /// Credentials (redacted), tier, expiry, last use and quota per provider.
    Status(status::StatusCmd),
    /// Each account in selection order: usable or not and why, and where the next agent goes.
    Providers(status::ProvidersCmd),
    /// Write a stored credential in another tool's format.
    #[command(subcommand)]
    Export(export::ExportCmd),
    /// Master key commands.
    #[command(subcommand)]
    Key(export::KeyCmd),
    /// Change limits.
    #[command(subcommand)]
    Limits(limits::LimitsCmd),
    /// Set the preferred provider for `auto` (claude, openai, or auto for none).
    Switch(agents::SwitchCmd),
    /// Feed a provider's HTTP response (status, rate-limit headers) into its health.
    Report(agents::ReportCmd),
    /// Print the environment an agent holding a lease gets (shell, json or dotenv).
    Env(agents::EnvCmd),
    /// Run an agent under a lease: acquire, start it with its environment, heartbeat, forward
    /// signals, release when it ends, exit with its code.
    Run(run::RunCmd),
    /// Limit, used, reserved, remaining and reset time per provider.
    Quota(quota::QuotaCmd),
    /// One line for Claude Code's `statusLine`: the lease's tokens left, the account's
    /// window, the session's cost. Reads Claude Code's JSON on stdin; never fails.
    Statusline(statusline::StatuslineCmd),
    /// The ledger's figures as OpenMetrics text (what the gateway serves at /metrics).
    Metrics(metrics::MetricsCmd),
    /// Acquire, renew, release and list leases.
    #[command(subcommand)]
    Lease(lease::LeaseCmd),
    /// Record usage, or summarise it.
    Usage(usage::UsageCmd),
    /// The model prices costs are computed with: show them, or put a newer table in force.
    Prices(prices::PricesCmd),
    /// Query the audit trail, verify its keyed chain, or print its head as an anchor.
    Audit(audit::AuditCmd),
    /// Reclaim expired and idle leases now.
    Cleanup(cleanup::CleanupCmd),
    /// Copy a whole ledger into a new, empty one: SQLite to PostgreSQL when a team's agents
    /// run on many hosts, or back. Credentials stay sealed; the audit trail verifies.
    Migrate(migrate::MigrateCmd),
    /// Serve group commit for every process's writes, run hourly cleanup and OAuth refresh
    /// ahead of expiry, until SIGTERM or SIGINT.
    Daemon(daemon::DaemonCmd),
    /// Check permissions, integrity, schema version and the audit chain.
    Doctor(doctor::DoctorCmd),
    /// A live view: every account's windows beside the provider's figure, active leases, burn
    /// rate and predicted run-out, the latest denials, fallbacks and top-ups (q quits).
    Top(top::TopCmd),
    /// Print shell completions (bash, zsh or fish) on stdout.
    Completions(completions::CompletionsCmd),
    /// Print the man page (roff) on stdout: `authledger man > authledger.1`.
    Man(completions::ManCmd),
    /// Serve the metering gateway for agents started by other means than `run`, until SIGTERM
    /// or SIGINT; `authledger env` hands agents its URL and a lease token.
    Gateway(gateway::GatewayCmd),
}

/// What every command needs: where the ledger is, the clock, and how to print.
pub struct Ctx {
    db: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    /// How to print.
    pub out: Output,
}

impl Ctx {
    /// Opens the ledger the flags and environment point at, with `config.toml`.
    pub fn open(&self) -> Result<Ledger, Error> {
        self.open_with(self.file_config()?)
    }

    /// Opens the ledger with `file` as its `config.toml` (`doctor` opens one even when the
    /// file is broken, to say so beside everything else).
    pub fn open_with(&self, file: ConfigFile) -> Result<Ledger, Error> {
        let location = self.location()?;
        let path = location.local_path().to_path_buf();
        let mut config = LedgerConfig::at(location)
            .with_clock(self.clock.clone())
            .with_file_config(file);
        // Hot-path writes go through a serving daemon (group commit), unless told not to. A
        // ledger on a pinned clock never does: the daemon's transactions run on the wall clock.
        let daemon_allowed = std::env::var_os(NO_DAEMON_VAR).is_none_or(|v| v == "0");
        if daemon_allowed && self.clock.is_wall_clock() {
            config = config.with_committer(Arc::new(crate::daemon::Client::new(&path)));
        }
        Ledger::open(config)
    }

    /// Opens the existing ledger for reading only (`top`, `statusline`, `metrics`): nothing is
    /// created, migrated or written, and no daemon is involved. A missing file is a storage error (exit 5).
    pub fn open_read_only(&self) -> Result<Ledger, Error> {
        Ledger::open(
            LedgerConfig::at(self.location()?)
                .with_clock(self.clock.clone())
                .with_file_config(self.file_config()?)
                .read_only(),
        )
    }

    /// The database's path (on a server, this host's anchor for its local files), without
    /// opening it.
    pub fn db_path(&self) -> Result<PathBuf, Error> {
        Ok(self.location()?.local_path().to_path_buf())
    }

    /// Where the ledger is, from `--db` and the environment: a URL is never taken for a path.
    pub fn location(&self) -> Result<LedgerLocation, Error> {
        resolve_location(self.db.as_deref().map(Path::as_os_str))
            .map_err(|e| Error::Invalid(crate::types::InvalidInput(e)))?
            .ok_or(Error::NoLocation)
    }

    /// `config.toml` (empty when there is none).
    pub fn file_config(&self) -> Result<ConfigFile, Error> {
        match default_config_path() {
            Some(p) => Ok(ConfigFile::load(&p)?),
            None => Ok(ConfigFile::default()),
        }
    }

    /// The clock commands read time from.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }
}

fn clock_from_env() -> Result<Arc<dyn Clock>, String> {
    match std::env::var(NOW_VAR) {
        Ok(v) if !v.is_empty() => parse_time(&v)
            .map(|ms| Arc::new(ManualClock::new(ms)) as Arc<dyn Clock>)
            .ok_or_else(|| format!("{NOW_VAR}={v:?} is not a time")),
        _ => Ok(Arc::new(SystemClock)),
    }
}

/// Shortens every quoted value in a message (clap quotes the raw argument, which may be
/// 10 KB long) so the error stays one readable line.
fn shorten_quoted(message: &str) -> String {
    message
        .split('\'')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                crate::types::truncate_for_message(part)
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("'")
}

/// clap's error as one line: its first paragraph, and its tips (`a similar subcommand exists:
/// 'status'`) as "did you mean".
fn one_line(rendered: &str) -> String {
    let mut lines = rendered.lines().take_while(|l| !l.starts_with("Usage:"));
    let head: Vec<&str> = lines
        .by_ref()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let mut message = shorten_quoted(&head.join(" "))
        .trim_start_matches("error: ")
        .to_string();
    for tip in lines.filter_map(|l| l.trim().strip_prefix("tip: ")) {
        let similar = tip
            .split_once(" exists: ")
            .or_else(|| tip.split_once(" exist: "));
        match similar {
            Some((_, suggestion)) if tip.contains("similar") => {
                message.push_str(&format!(" (did you mean {}?)", shorten_quoted(suggestion)));
            }
            _ => message.push_str(&format!("; {}", shorten_quoted(tip))),
        }
    }
    message
}

/// Parses the arguments, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let wants_json = argv.iter().any(|a| a == "--json");
    let out = Output { json: wants_json };
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    exit::USAGE
                } else {
                    exit::OK
                };
            }
            // clap explains over several lines; the contract is one line.
            let message = one_line(&e.render().to_string());
            out.usage_error(&message);
            return exit::USAGE;
        }
    };
    let clock = match clock_from_env() {
        Ok(c) => c,
        Err(msg) => {
            out.usage_error(&msg);
            return exit::USAGE;
        }
    };
    let ctx = Ctx {
        db: cli.db,
        clock,
        out: Output { json: cli.json },
    };
    let result = match &cli.command {
        Command::Demo(c) => c.run(&ctx),
        Command::Init(c) => c.run(&ctx),
        Command::Login(c) => c.run(&ctx),
        Command::Logout(c) => c.run(&ctx),
        Command::Token(c) => c.run(&ctx),
        Command::Status(c) => c.run(&ctx),
        Command::Providers(c) => c.run(&ctx),
        Command::Export(c) => c.run(&ctx),
        Command::Key(c) => c.run(&ctx),
        Command::Limits(c) => c.run(&ctx),
        Command::Switch(c) => c.run(&ctx),
        Command::Report(c) => c.run(&ctx),
        Command::Env(c) => c.run(&ctx),
        Command::Run(c) => c.run(&ctx),
        Command::Quota(c) => c.run(&ctx),
        Command::Lease(c) => c.run(&ctx),
        Command::Statusline(c) => c.run(&ctx),
        Command::Metrics(c) => c.run(&ctx),
        Command::Usage(c) => c.run(&ctx),
        Command::Prices(c) => c.run(&ctx),
        Command::Audit(c) => c.run(&ctx),
        Command::Cleanup(c) => c.run(&ctx),
        Command::Migrate(c) => c.run(&ctx),
        Command::Daemon(c) => c.run(&ctx),
        Command::Gateway(c) => c.run(&ctx),
        Command::Doctor(c) => c.run(&ctx),
        Command::Top(c) => c.run(&ctx),
        Command::Completions(c) => c.run(&ctx),
        Command::Man(c) => c.run(&ctx),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            ctx.out.error(&e, ctx.clock().now_ms());
            e.exit_code()
        }
    }
}
