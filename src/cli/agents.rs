//! `authledger switch`, `authledger report` and `authledger env`

use clap::{Args, ValueEnum};

use super::Ctx;
use super::json::{EnvJson, HealthJson, SwitchJson};
use crate::agent::AgentEnv;
use crate::clock::format_ms;
use crate::error::Error;
use crate::types::{Account, InvalidInput, LeaseId, Provider};

/// Set the preferred provider for `auto` (or `auto` for none).
#[derive(Debug, Args)]
pub struct SwitchCmd {
    /// claude, openai or auto.
    #[arg(value_parser = super::lease::provider_choice)]
    provider: super::lease::ProviderChoice,
}

impl SwitchCmd {
    /// Stores the preference.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        ctx.open()?.switch(self.provider.0)?;
        let name = self.provider.0.map_or("auto", |p| p.as_str());
        if ctx.out.json {
            ctx.out.json(&SwitchJson { preferred: name })?;
        } else {
            ctx.out.line(&format!("preferred provider: {name}"))?;
        }
        Ok(0)
    }
}

/// Feed a provider's response into its health.
#[derive(Debug, Args)]
pub struct ReportCmd {
    /// claude or openai.
    provider: Provider,
    /// Which account.
    #[arg(long, default_value = "default")]
    account: Account,
    /// The HTTP status the provider answered.
    #[arg(long, value_parser = clap::value_parser!(u16).range(100..=599))]
    status: u16,
    /// A response header, `name: value` (repeatable): retry-after, anthropic-ratelimit-*,
    /// x-ratelimit-*, x-codex-*.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    crate::health::parse_header(s).map_err(|e| e.to_string())
}

impl ReportCmd {
    /// Records the response.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let h = ctx.open()?.report_response(
            self.provider,
            &self.account,
            self.status,
            &self.headers,
        )?;
        if ctx.out.json {
            ctx.out.json(&HealthJson::from(&h))?;
        } else {
            let state = match h.unavailable_until {
                Some(t) if t > ctx.clock().now_ms() => format!(
                    "unavailable until {} ({})",
                    format_ms(t),
                    h.reason.as_deref().unwrap_or("")
                ),
                _ => "available".into(),
            };
            ctx.out
                .line(&format!("{}/{}: {state}", h.provider, h.account))?;
        }
        Ok(0)
    }
}

/// How `env` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Shell,
    Json,
    Dotenv,
}

/// Print the environment an agent holding the lease gets.
#[derive(Debug, Args)]
pub struct EnvCmd {
    /// The lease.
    lease_id: LeaseId,
    /// shell (`export`/`unset`, for eval), json, or dotenv.
    #[arg(long, value_enum, default_value = "shell")]
    format: Format,
    /// Hand the agent the real credential even when a gateway is running (its usage is then
    /// not metered).
    #[arg(long)]
    no_meter: bool,
}

/// Quotes a value for POSIX shells: single quotes, with embedded ones closed and escaped.
pub fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

fn dotenv_quote(v: &str) -> String {
    let escaped: String = v
        .chars()
        .flat_map(|c| match c {
            '\\' => vec!['\\', '\\'],
            '"' => vec!['\\', '"'],
            '\n' => vec!['\\', 'n'],
            '$' => vec!['\\', '$'],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

fn render(env: &AgentEnv, format: Format) -> String {
    match format {
        Format::Shell => {
            let mut out: Vec<String> = env.remove.iter().map(|k| format!("unset {k}")).collect();
            out.extend(
                env.set
                    .iter()
                    .map(|(k, v)| format!("export {k}={}", shell_quote(v.expose()))),
            );
            out.join("\n")
        }
        Format::Dotenv => env
            .set
            .iter()
            .map(|(k, v)| format!("{k}={}", dotenv_quote(v.expose())))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json => {
            let json = EnvJson {
                set: env
                    .set
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.expose()))
                    .collect(),
                unset: &env.remove,
            };
            serde_json::to_string_pretty(&json).unwrap_or_default()
        }
    }
}

impl EnvCmd {
    /// Prints the environment (secrets included: this is how they reach a child by hand).
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let ledger = ctx.open()?;
        let lease = ledger.lease(&self.lease_id)?;
        if lease.state != crate::types::LeaseState::Active {
            return Err(InvalidInput(format!(
                "lease {} is {}: acquire a new one",
                lease.id, lease.state
            ))
            .into());
        }
        let gateway = if self.no_meter {
            None
        } else {
            crate::gateway::host::published_url(ledger.db_path())
        };
        let env = match &gateway {
            Some(url) => ledger.agent_env_metered(&lease, url)?,
            None => {
                if !self.no_meter {
                    eprintln!(
                        "authledger: no gateway running: the agent gets the real credential, \
                         unmetered\n  (start `authledger gateway`; `--no-meter` says this is meant)"
                    );
                }
                ledger.agent_env(&lease)?
            }
        };
        ctx.out.line(&render(&env, self.format))?;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes_and_dollars() {
        assert_eq!(shell_quote("a'b $X"), r"'a'\''b $X'");
        assert_eq!(dotenv_quote("a\"b$c\n"), r#""a\"b\$c\n""#);
    }
}
