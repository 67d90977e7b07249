//! `authledger demo`: a tour of the ledger on a temporary database, with a manual clock so it
//! runs in a blink and shows hours passing.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::Ctx;
use crate::UsageRecord;
use crate::clock::{ManualClock, format_ms};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::LedgerConfig;
use crate::quota::{AcquireRequest, LimitsUpdate};
use crate::records::{AuditQuery, UsageGroup};
use crate::select::Choice;
use crate::types::{Account, AgentId, Provider};
use crate::vault::{Credential, KeySource, Secret};

/// Run a self-contained tour on a temporary ledger.
#[derive(Debug, Args)]
pub struct DemoCmd {
    /// Keep the temporary ledger and print its path (to explore it with the other commands).
    #[arg(long)]
    keep: bool,
}

fn agent(name: &str) -> Result<AgentId, Error> {
    Ok(AgentId::new(name)?)
}

impl DemoCmd {
    /// Runs the tour.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        let dir = tempfile::Builder::new()
            .prefix("authledger-demo-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "cannot create a temporary directory".into(),
                source,
            })?;
        let db = dir.path().join("ledger.db");
        // Start at 09:00 UTC today so the day window has a visible reset.
        let start = (ctx.clock().now_ms() / 86_400_000) * 86_400_000 + 9 * 3_600_000;
        let clock = ManualClock::new(start);
        let fake_key = Secret::new(format!(
            "sk-ant-api03-demo-{}",
            hex::encode(crate::random::bytes::<12>().map_err(crate::vault::VaultError::from)?)
        ));
        // A stand-in for Anthropic's API on 127.0.0.1, so the tour can meter real requests.
        let upstream = super::demo_upstream::DemoUpstream::start(fake_key.expose_secret().into())?;
        let config_path = dir.path().join("config.toml");
        let file = crate::config_file::ConfigFile::parse(
            &config_path,
            &format!("[providers.claude]\nbase_url = \"{}\"\n", upstream.url()),
        )?;
        let ledger = Ledger::open(
            LedgerConfig::new(&db)
                .with_clock(Arc::new(clock.clone()))
                .with_key(KeySource::File(dir.path().join("keys/master.key")))
                .with_file_config(file),
        )?;
        // With --json the tour is collected and printed as one document at the end. Either
        // way its lines are wrapped to fit an 80-column terminal.
        let lines = std::cell::RefCell::new(Vec::<String>::new());
        let put = |line: String| -> Result<(), Error> {
            if ctx.out.json {
                lines.borrow_mut().push(line);
                Ok(())
            } else {
                ctx.out.line(&line)
            }
        };
        let say = |s: &str| -> Result<(), Error> {
            super::output::wrap(s, super::output::WIDTH)
                .into_iter()
                .try_for_each(put)
        };
        let account = Account::default();

        // The path on a line of its own: however long TMPDIR is, the tour reads the same.
        say("authledger demo: a temporary ledger at")?;
        say(&format!("   {}", db.display()))?;
        say("")?;
        say("0. A Claude API key goes into the vault, encrypted; it is only shown redacted.")?;
        let stored = ledger.store_credential(&Credential::api_key(
            Provider::Claude,
            account.clone(),
            fake_key,
            "stdin",
        ))?;
        say(&format!(
            "   stored {}/{}: {} {}",
            stored.provider,
            stored.account,
            stored.kind.as_str(),
            stored.redacted
        ))?;
        say("")?;
        say("1. Three agents share Claude's budget: 100,000 tokens/day, 3 at a time.")?;
        ledger.set_limits(
            Provider::Claude,
            &account,
            &LimitsUpdate {
                daily_tokens: Some(100_000),
                concurrent: Some(3),
                ..LimitsUpdate::default()
            },
        )?;
        let mut leases = Vec::new();
        for name in ["reviewer", "tester", "writer"] {
            let lease = ledger.acquire(
                &AcquireRequest::new(agent(name)?, Provider::Claude).ttl(Duration::from_secs(3600)),
            )?;
            say(&format!(
                "   {name:<9} got {} ({} tokens, a fair share)",
                lease.id, lease.allocated
            ))?;
            leases.push(lease);
        }

        say("")?;
        say("2. A fourth agent is refused: every slot is taken.")?;
        match ledger.acquire(&AcquireRequest::new(agent("linter")?, Provider::Claude)) {
            Err(e) => say(&format!("   linter: {e} (exit code {})", e.exit_code()))?,
            Ok(l) => say(&format!("   linter unexpectedly got {}", l.id))?,
        }
        let openai_key = Secret::new(format!(
            "sk-proj-demo-{}",
            hex::encode(crate::random::bytes::<12>().map_err(crate::vault::VaultError::from)?)
        ));
        ledger.store_credential(&Credential::api_key(
            Provider::Openai,
            account.clone(),
            openai_key,
            "stdin",
        ))?;
        let (fallback, decision) = ledger.acquire_selected(
            &AcquireRequest::new(agent("linter")?, Provider::Claude).ttl(Duration::from_secs(3600)),
            &Choice::Auto,
        )?;
        say(&format!(
            "   with an OpenAI key in the vault, `auto` sends it to {}/{} instead: {}",
            fallback.provider, fallback.account, decision.reason
        ))?;
        let env = ledger.agent_env(&leases[0])?;
        let names: Vec<&str> = env.set.iter().map(|(k, _)| k.as_str()).collect();
        say(&format!(
            "   the reviewer's agent gets (values stay in its environment): {}",
            names.join(", ")
        ))?;
        ledger.release(&fallback.id)?;

        say("")?;
        say("3. The reviewer records usage (a retried record counts once) and releases.")?;
        let reviewer = &leases[0];
        clock.advance_ms(10 * 60_000);
        let record = UsageRecord::new(8_000, 2_000).key("reviewer-call-1");
        ledger.record_usage(&reviewer.id, &record)?;
        let again = ledger.record_usage(&reviewer.id, &record)?;
        say(&format!(
            "   recorded 10,000 tokens; the retry was a duplicate: {}",
            again.duplicate
        ))?;
        let released = ledger.release(&reviewer.id)?;
        say(&format!(
            "   released: {} unused tokens went back to the pool",
            released.returned
        ))?;

        say("")?;
        say("4. The writer is metered, as under `authledger run`: its agent holds a lease")?;
        say("   token and a gateway's address; the gateway (on 127.0.0.1) swaps the token")?;
        say("   for the key and reads what each answer cost from the stream itself.")?;
        let writer = &leases[2];
        metered_requests(&ledger, writer, &say)?;

        say("")?;
        say("5. The tester crashes without releasing. Its lease lives until its TTL (1 h)...")?;
        let tester = &leases[1];
        clock.advance_ms(40 * 60_000);
        ledger.renew(&leases[2].id)?; // the writer is alive and heartbeats
        clock.advance_ms(21 * 60_000);
        let report = ledger.cleanup()?;
        say(&format!(
            "   an hour on, cleanup reclaimed {} lease(s) and returned {} tokens",
            report.expired + report.idle,
            report.tokens_returned
        ))?;
        match ledger.renew(&tester.id) {
            Err(e) => say(&format!("   the tester, if it came back: {e}"))?,
            Ok(_) => say("   the tester's lease unexpectedly survived")?,
        }

        say("")?;
        say("6. Asking for more than is left is refused, with the reason and the reset time.")?;
        match ledger
            .acquire(&AcquireRequest::new(agent("bulk-import")?, Provider::Claude).tokens(500_000))
        {
            Err(e) => say(&format!("   bulk-import: {e}"))?,
            Ok(l) => say(&format!("   bulk-import unexpectedly got {}", l.id))?,
        }
        ledger.release(&leases[2].id)?;

        say("")?;
        say("7. Where the quota stands, and who spent what:")?;
        for q in ledger.quota(Some(Provider::Claude))? {
            say(&format!(
                "   {}/{}: used {} + reserved {} of {} ({}%), {} active leases, resets {}",
                q.provider,
                q.account,
                q.used,
                q.reserved,
                q.limit,
                q.percent,
                q.active_leases,
                format_ms(q.resets_at)
            ))?;
        }
        for u in ledger.usage_report(0, UsageGroup::Agent)? {
            say(&format!(
                "   {:<9} {} tokens in {} record(s)",
                u.key, u.total, u.records
            ))?;
        }

        say("")?;
        say("8. The audit trail, chained under a key:")?;
        for e in ledger.audit(&AuditQuery::default())? {
            say(&format!(
                "   #{:<3} {} {:<8} {:<9} {}",
                e.seq,
                format_ms(e.at_ms),
                e.action,
                e.agent.unwrap_or_default(),
                e.lease_id.unwrap_or_default()
            ))?;
        }
        let verify = ledger.verify_audit()?;
        say(&format!(
            "   audit verify: {} ({} rows)",
            if verify.ok { "intact" } else { "BROKEN" },
            verify.rows
        ))?;
        // The kept ledger is a home of its own (ledger.db and keys/master.key): naming the home
        // names both, so the hint reopens it with its own key, not the user's.
        let kept = self.keep.then(|| dir.keep());
        if let Some(home) = &kept {
            say("")?;
            say(&format!(
                "kept: {} (its ledger.db and keys/master.key)",
                home.display()
            ))?;
            say("explore it with AUTHLEDGER_DB and AUTHLEDGER_MASTER_KEY unset:")?;
            // A command to copy stays whole, however long the path.
            put(format!(
                "  AUTHLEDGER_HOME={} authledger quota",
                home.display()
            ))?;
        }
        if ctx.out.json {
            ctx.out.json(&super::json::DemoJson {
                audit_intact: verify.ok,
                kept: kept.as_ref().map(|h| h.join("ledger.db")),
                kept_home: kept,
                tour: lines.into_inner(),
            })?;
        }
        Ok(0)
    }
}

/// Step 4: a gateway for the demo ledger, two streamed requests through it with the writer's
/// lease token (what Claude Code would send), and what the ledger recorded.
fn metered_requests(
    ledger: &Ledger,
    writer: &crate::records::Lease,
    say: &dyn Fn(&str) -> Result<(), Error>,
) -> Result<(), Error> {
    use crate::gateway::{HostedGateway, run::into_error};
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let gateway = HostedGateway::start(ledger.clone(), listen, 1).map_err(into_error)?;
    let env = ledger.agent_env_metered(writer, &gateway.url())?;
    let token = env
        .get("ANTHROPIC_API_KEY")
        .map(|v| v.expose().to_string())
        .unwrap_or_default();
    say(&format!(
        "   its ANTHROPIC_API_KEY: a lease token, {}…; ANTHROPIC_BASE_URL: the gateway",
        token.chars().take(8).collect::<String>()
    ))?;
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| demo_failed(&e))?;
    for _ in 0..2 {
        let answer = client
            .post(format!("{}/v1/messages", gateway.url()))
            .header("x-api-key", &token)
            .header("anthropic-version", "2023-06-01")
            .body(r#"{"model":"claude-sonnet-4-5","max_tokens":512,"stream":true,"messages":[]}"#)
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
            .map_err(|e| demo_failed(&e))?;
        let events = answer.matches("event: ").count();
        say(&format!(
            "   a request through it: {events} events streamed back"
        ))?;
    }
    // Stopping the gateway writes every record it holds.
    gateway.stop().map_err(into_error)?;
    // The reviewer's hand-made record has no model: only the metered ones are shown.
    for u in ledger
        .usage_report(0, UsageGroup::Model)?
        .into_iter()
        .filter(|u| u.key != "-")
    {
        say(&format!(
            "   metered {} request(s) of {}: input {}, cache read {}, output {}",
            u.requests, u.key, u.input, u.cache_read, u.output
        ))?;
    }
    let lease = ledger.lease(&writer.id)?;
    say(&format!(
        "   the writer's lease has used {} of its {} tokens; it never saw the key",
        lease.used, lease.allocated
    ))?;
    Ok(())
}

fn demo_failed(e: &dyn std::fmt::Display) -> Error {
    Error::Io {
        what: "the demo's metered request failed".into(),
        source: std::io::Error::other(e.to_string()),
    }
}
