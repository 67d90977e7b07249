//! One conformance suite of the ledger's behaviour, each test written once and run against
//! both stores (issue 15): `conformance::sqlite::NAME` on a temporary SQLite file and
//! `conformance::postgres::NAME` on a fresh database of the test PostgreSQL server
//! (`common::pg`). The library runs on the manual clock, the CLI on a pinned one; a test only
//! asserts values both engines must give alike. At the end, the CLI's `migrate` between the two
//! and the `--db` URL checks, which need both stores at once.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use authledger::paths::LedgerLocation;
use authledger::select::Choice;
use authledger::{
    Account, Credential, DenyReason, Error, KeySource, LeaseState, Ledger, LedgerConfig,
    LimitsUpdate, ManualClock, Provider, QuotaError, Secret, UsageGroup, UsageRecord, WindowKind,
};

use crate::common::{self, Home, T0, code, limits, pg, req, stderr, stdout};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// 2026-11-23T00:00:00Z (T0 is 10:00 that day).
const MIDNIGHT: i64 = T0 - 10 * HOUR;
const CLAUDE_KEY: &str = "sk-ant-api03-conformance-key-0000";
const OPENAI_KEY: &str = "sk-proj-conformance-openai-key-0000";

/// Where one test's ledger lives: a private home (this host's state: key file, lease
/// directories, `config.toml`) and, on PostgreSQL, a fresh database of its own.
pub struct Backing {
    pub home: Home,
    /// The database URL when the ledger is on PostgreSQL.
    pub url: Option<String>,
}

impl Backing {
    fn sqlite() -> Backing {
        Backing {
            home: Home::empty(),
            url: None,
        }
    }

    fn postgres() -> Backing {
        Backing {
            home: Home::empty(),
            url: Some(pg::server().fresh_db()),
        }
    }

    /// PostgreSQL on a database whose collation is not byte order: ICU's root locale (which
    /// sorts `a-agent` before `B-agent` and `c` before `Zed`).
    fn postgres_with_icu_collation() -> Backing {
        let server = pg::server();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("icu_{}_{nanos}", std::process::id());
        pg::psql(
            &server.db_url("postgres"),
            &format!(
                "CREATE DATABASE {name} LOCALE_PROVIDER icu ICU_LOCALE 'und' \
                 LOCALE 'C.UTF-8' TEMPLATE template0"
            ),
        );
        Backing {
            home: Home::empty(),
            url: Some(server.db_url(&name)),
        }
    }

    /// The ledger's location as the CLI resolves it for this home.
    fn location(&self) -> LedgerLocation {
        match &self.url {
            None => LedgerLocation::File(self.home.db()),
            Some(url) => LedgerLocation::Server {
                url: url.clone().into(),
                anchor: self.home.path().join("servers").join("test").join("ledger"),
            },
        }
    }

    /// The library's configuration: the manual `clock`, and the key file the CLI uses.
    fn config(&self, clock: &ManualClock) -> LedgerConfig {
        LedgerConfig::at(self.location())
            .with_clock(Arc::new(clock.clone()))
            .with_key(KeySource::File(
                self.home.path().join("keys").join("master.key"),
            ))
    }

    /// The store under the ledger, without the ledger's layers.
    fn bare_store(&self) -> authledger::store::Store {
        use authledger::store::{Store, StoreOptions};
        let location = self.location();
        let options = StoreOptions {
            server: match &location {
                LedgerLocation::Server { url, .. } => Some(url.clone()),
                LedgerLocation::File(_) => None,
            },
            ..StoreOptions::default()
        };
        Store::open(location.local_path(), options).unwrap()
    }

    fn open(&self, clock: &ManualClock) -> Ledger {
        Ledger::open(self.config(clock)).expect("open the ledger")
    }

    /// A ledger on a manual clock at `start` with Claude limits `update` and a Claude API
    /// key stored.
    fn ledger(&self, start: i64, update: LimitsUpdate) -> (Ledger, ManualClock) {
        let clock = ManualClock::new(start);
        let ledger = self.open(&clock);
        ledger
            .set_limits(Provider::Claude, &Account::default(), &update)
            .expect("limits");
        ledger
            .store_credential(&api_key(Provider::Claude, CLAUDE_KEY))
            .expect("credential");
        (ledger, clock)
    }

    /// The CLI on this ledger with its clock pinned at `now`.
    fn cmd_at(&self, now: i64) -> Command {
        let mut c = self.home.cmd_at(now);
        if let Some(url) = &self.url {
            c.env("AUTHLEDGER_DB", url);
        }
        c
    }

    fn run_at(&self, now: i64, args: &[&str]) -> Output {
        self.cmd_at(now)
            .args(args)
            .output()
            .expect("run authledger")
    }

    /// `--json` output of a command that must succeed.
    fn json_at(&self, now: i64, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = common::must(self.run_at(now, &all), &format!("{args:?}"));
        common::parse_json(&out)
    }

    fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        common::with_stdin(self.cmd_at(T0).args(args), input)
    }

    /// Rows of a query run straight on the database (no authledger in between), each cell as
    /// text.
    fn query(&self, sql: &str) -> Vec<Vec<String>> {
        match &self.url {
            None => common::query_rows(&self.home.db(), sql),
            Some(url) => {
                let text = pg::psql(url, sql);
                text.lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| l.split('|').map(str::to_string).collect())
                    .collect()
            }
        }
    }

    /// Changes audit rows behind the ledger's back, as someone with write access to the
    /// database would: past the append-only triggers.
    /// Runs SQL on the ledger's database behind its back (a hand edit, or a newer build's).
    fn edit(&self, sql: &str) {
        match &self.url {
            None => common::raw(&self.home.db())
                .execute_batch(sql)
                .expect("edit the SQLite ledger"),
            Some(url) => {
                pg::psql(url, sql);
            }
        }
    }

    fn tamper_audit(&self, set: &str, seq: i64) {
        match &self.url {
            None => {
                let c = common::raw(&self.home.db());
                c.execute_batch(&format!(
                    "DROP TRIGGER audit_no_update; UPDATE audit SET {set} WHERE seq = {seq};"
                ))
                .expect("tamper with the SQLite audit table");
            }
            Some(url) => {
                pg::psql(
                    url,
                    &format!(
                        "ALTER TABLE audit DISABLE TRIGGER ALL; \
                         UPDATE audit SET {set} WHERE seq = {seq}; \
                         ALTER TABLE audit ENABLE TRIGGER ALL;"
                    ),
                );
            }
        }
    }
}

/// Writes each test once, for both stores: `fn name(store: &Backing) { … }` becomes
/// `sqlite::name` and `postgres::name`.
macro_rules! conformance {
    ($( $(#[doc = $doc:literal])* fn $name:ident($store:ident: &Backing) $body:block )*) => {
        $( $(#[doc = $doc])* fn $name($store: &Backing) $body )*

        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::Backing::sqlite()) } )*
        }

        mod postgres {
            $( #[test] fn $name() { super::$name(&super::Backing::postgres()) } )*
        }
    };
}

fn api_key(provider: Provider, key: &str) -> Credential {
    Credential::api_key(
        provider,
        Account::default(),
        Secret::new(key.into()),
        "stdin",
    )
}

/// The bare store under `store` with Claude's day window around [`T0`] opened.
fn day_window(store: &Backing) -> (authledger::store::Store, authledger::records::Window) {
    let db = store.bare_store();
    let window = db
        .write(|tx| {
            tx.insert_window(
                Provider::Claude,
                &Account::default(),
                WindowKind::Day,
                T0 - 1,
                T0 + 1,
            )
        })
        .unwrap();
    (db, window)
}

/// What Claude's day window at [`T0`] holds reserved.
fn reserved_now(db: &authledger::store::Store) -> i64 {
    db.read(|tx| tx.window_at(Provider::Claude, &Account::default(), WindowKind::Day, T0))
        .unwrap()
        .unwrap()
        .reserved
}

fn claude(ledger: &Ledger) -> authledger::QuotaStatus {
    ledger.quota(Some(Provider::Claude)).unwrap().remove(0)
}

fn denial<T: std::fmt::Debug>(r: Result<T, Error>) -> authledger::Denial {
    match r {
        Err(Error::Quota(QuotaError::Denied(d))) => *d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn lost<T: std::fmt::Debug>(r: Result<T, Error>) -> LeaseState {
    match r {
        Err(Error::Quota(QuotaError::LeaseLost { state, .. })) => state,
        other => panic!("expected the lease to be lost, got {other:?}"),
    }
}

/// (key, input, output, records) of a usage summary.
fn summary(ledger: &Ledger, group: UsageGroup) -> Vec<(String, i64, i64, i64)> {
    ledger
        .usage_report(0, group)
        .unwrap()
        .into_iter()
        .map(|s| (s.key, s.input, s.output, s.records))
        .collect()
}

fn s(key: &str, input: i64, output: i64, records: i64) -> (String, i64, i64, i64) {
    (key.to_string(), input, output, records)
}

/// `audit verify --json`: its exit code and report.
fn verify(store: &Backing) -> (i32, serde_json::Value) {
    let out = store.run_at(T0, &["--json", "audit", "verify"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (code(&out), report)
}

/// Starts `n` copies of the CLI with `args` at once and waits for them all.
fn processes(store: &Backing, now: i64, n: usize, args: &[&str]) -> Vec<Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            store
                .cmd_at(now)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn authledger")
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect()
}

conformance! {
    /// Inside one transaction a read sees the transaction's own writes, whatever the store
    /// remembers of earlier reads: a setting written, a window inserted (`INSERT … RETURNING`),
    /// a write undone by a savepoint.
    fn a_transaction_reads_its_own_writes(store: &Backing) {
        use authledger::store::StoreError;
        let db = store.bare_store();
        let seen = db
            .write(|tx| -> Result<_, StoreError> {
                let before = tx.setting("k")?;
                tx.set_setting("k", "1")?;
                let after = tx.setting("k")?;
                let no_window = tx.window_at(Provider::Claude, &Account::default(), WindowKind::Day, T0)?;
                tx.insert_window(Provider::Claude, &Account::default(), WindowKind::Day, T0 - 1, T0 + 1)?;
                let window = tx.window_at(Provider::Claude, &Account::default(), WindowKind::Day, T0)?;
                tx.undo_unless(|tx| -> Result<bool, StoreError> {
                    tx.set_setting("k", "undone")?;
                    assert_eq!(tx.setting("k")?.as_deref(), Some("undone"));
                    Ok(false)
                })?;
                let after_undo = tx.setting("k")?;
                Ok((before, after, no_window.is_none(), window.is_some(), after_undo))
            })
            .unwrap();
        assert_eq!(
            seen,
            (None, Some("1".to_string()), true, true, Some("1".to_string()))
        );
    }

    /// The `AUTHLEDGER_DB` an agent is given names this very ledger (the file, or the server
    /// without any password): an `authledger` the agent runs, from another directory, finds its
    /// lease there instead of creating a ledger of its own.
    fn an_agents_authledger_db_names_the_same_ledger(store: &Backing) {
        let out = store.run_stdin(&["login", "claude", "--api-key-stdin"], "sk-ant-api03-agent-env-000000\n");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let lease = store.json_at(T0, &["lease", "acquire", "--agent", "a", "--provider", "claude", "--tokens", "10"]);
        let id = lease["lease_id"].as_str().unwrap().to_string();
        let env = store.json_at(T0, &["env", &id, "--no-meter", "--format", "json"]);
        let db = env["set"]["AUTHLEDGER_DB"].as_str().unwrap_or_else(|| panic!("{env}")).to_string();
        match &store.url {
            Some(url) => assert_eq!(&db, url),
            None => assert_eq!(db, store.home.db().display().to_string()),
        }
        let elsewhere = Home::empty();
        let out = elsewhere
            .cmd_at(T0)
            .env("AUTHLEDGER_DB", &db)
            .args(["--json", "lease", "list"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(stdout(&out).contains(&id), "{}", stdout(&out));
        assert!(!elsewhere.db().exists(), "the agent's authledger made a ledger of its own");
    }

    /// Hosts' clocks differ a little: a 5-hour window opened by a host whose clock runs ahead is
    /// the window a host behind it counts in too, never a second, overlapping one.
    fn a_host_behind_counts_in_the_window_a_host_ahead_opened(store: &Backing) {
        let update = LimitsUpdate {
            window_5h_tokens: Some(Some(1_000)),
            ..limits(1_000_000, 10)
        };
        let (ledger, clock) = store.ledger(T0, update);
        ledger.acquire(&req("ahead").tokens(600)).unwrap();
        clock.set_ms(T0 - 2_000);
        let refused = ledger.acquire(&req("behind").tokens(600));
        assert!(refused.is_err(), "granted past the 5h limit in an overlapping window");
        ledger.acquire(&req("behind").tokens(400)).unwrap();
        let windows = store.query("SELECT COUNT(*) FROM windows WHERE kind = '5h'");
        assert_eq!(windows, vec![vec!["1".to_string()]]);
    }

    /// Acquire, renew, record, release: the figures, the states, and a lease ends only once.
    fn a_lease_is_granted_renewed_and_released_once(store: &Backing) {
        let (ledger, clock) = store.ledger(T0, limits(1_000, 10));
        let lease = ledger
            .acquire(&req("a").tokens(400).ttl(Duration::from_secs(600)))
            .unwrap();
        assert_eq!((lease.allocated, lease.state), (400, LeaseState::Active));
        assert_eq!(lease.expires_at, T0 + 10 * MIN);
        clock.advance_ms(9 * MIN);
        let renewed = ledger.renew(&lease.id).unwrap();
        assert_eq!(renewed.expires_at, T0 + 19 * MIN);
        ledger
            .record_usage(&lease.id, &UsageRecord::new(100, 50))
            .unwrap();
        let released = ledger.release(&lease.id).unwrap();
        assert_eq!(released.returned, 250);
        let q = claude(&ledger);
        assert_eq!((q.used, q.reserved, q.remaining), (150, 0, 850));
        let ended = ledger.lease(&lease.id).unwrap();
        assert_eq!((ended.state, ended.used), (LeaseState::Released, 150));
        assert_eq!(ended.ended_at, Some(T0 + 9 * MIN));
        assert_eq!(lost(ledger.release(&lease.id)), LeaseState::Released);
        assert_eq!(lost(ledger.renew(&lease.id)), LeaseState::Released);
        let q = claude(&ledger);
        assert_eq!((q.used, q.reserved), (150, 0), "nothing returned twice");
    }

    /// The concurrency limit refuses the next lease and frees its slot on release.
    fn the_concurrency_limit_refuses_at_the_limit_and_frees_on_release(store: &Backing) {
        let (ledger, _clock) = store.ledger(T0, limits(1_000, 2));
        let a = ledger.acquire(&req("a").tokens(10)).unwrap();
        ledger.acquire(&req("b").tokens(10)).unwrap();
        let d = denial(ledger.acquire(&req("c").tokens(10)));
        assert_eq!(d.reason, DenyReason::Concurrency);
        assert_eq!(claude(&ledger).active_leases, 2);
        ledger.release(&a.id).unwrap();
        assert_eq!(ledger.acquire(&req("c").tokens(10)).unwrap().allocated, 10);
    }

    /// Writes no one waits for (a server transaction sends them with its next round trip):
    /// a later read sees them, a savepoint rolled back to drops them unsent, and a
    /// reservation past its limit fails the whole transaction, as on SQLite, leaving nothing.
    fn writes_sent_later_are_read_undone_and_refused_like_any_other(store: &Backing) {
        use authledger::store::StoreError;
        let (db, window) = day_window(store);
        let (claude, default) = (Provider::Claude, Account::default());
        let seen = db
            .write(|tx| -> Result<_, StoreError> {
                assert!(tx.reserve_in_window(window.id, 10, 100)?);
                let reserved = tx.window_at(claude, &default, WindowKind::Day, T0)?.unwrap().reserved;
                tx.undo_unless(|tx| -> Result<bool, StoreError> {
                    tx.reserve_in_window(window.id, 5, 100)?;
                    Ok(false)
                })?;
                let after_undo = tx.window_at(claude, &default, WindowKind::Day, T0)?.unwrap().reserved;
                tx.undo_unless(|tx| -> Result<bool, StoreError> {
                    tx.reserve_in_window(window.id, 7, 100)?;
                    Ok(true)
                })?;
                Ok((reserved, after_undo))
            })
            .unwrap();
        assert_eq!(seen, (10, 10));
        let reserved = || reserved_now(&db);
        assert_eq!(reserved(), 17);
        // Past the limit: refused now (SQLite) or when sent (a server); never committed.
        let refused = db.write(|tx| -> Result<_, StoreError> {
            if !tx.reserve_in_window(window.id, 90, 100)? {
                return Err(StoreError::Constraint { reason: "refused".into() });
            }
            tx.set_setting("after-refusal", "written")
        });
        assert!(
            matches!(refused, Err(StoreError::Constraint { .. })),
            "a refused reservation is a constraint's refusal on either engine: {refused:?}"
        );
        assert_eq!(reserved(), 17);
        assert_eq!(db.read(|tx| tx.setting("after-refusal")).unwrap(), None);
    }

    /// One request of a batch whose write fails (a reservation past the limit: refused at
    /// once on SQLite, when sent on a server) undoes only itself; the requests around it keep
    /// theirs, and none is reported done while its write failed.
    fn a_batched_request_whose_write_fails_undoes_only_itself(store: &Backing) {
        use authledger::store::StoreError;
        let (db, window) = day_window(store);
        let reserve = |tx: &mut authledger::store::Tx<'_>, n: i64| -> Result<(), StoreError> {
            if !tx.reserve_in_window(window.id, n, 100)? {
                return Err(StoreError::Constraint { reason: "refused".into() });
            }
            Ok(())
        };
        let outcomes = db
            .write(|tx| -> Result<_, StoreError> {
                let first = tx.isolated(|tx| reserve(tx, 30))?;
                let second = tx.isolated(|tx| reserve(tx, 90))?;
                // Written, then a write that would fail queued, then given up: undone whole,
                // the failing write never sent.
                let fourth = tx.isolated(|tx| -> Result<(), StoreError> {
                    tx.set_setting("given-up", "1")?;
                    let _ = tx.reserve_in_window(window.id, 90, 100)?;
                    Err(StoreError::Constraint { reason: "given up".into() })
                })?;
                let third = tx.isolated(|tx| reserve(tx, 40))?;
                Ok([first.is_ok(), second.is_ok(), fourth.is_ok(), third.is_ok()])
            })
            .unwrap();
        assert_eq!(outcomes, [true, false, false, true]);
        assert_eq!(db.read(|tx| tx.setting("given-up")).unwrap(), None);
        assert_eq!(reserved_now(&db), 70);
    }

    /// Requests committed together (as the daemon commits them) decide on what the ones
    /// before them in the same transaction wrote: the day's tokens and the live leases counted
    /// across them, a slot a release freed granted at once. On a server each request's reads
    /// go ahead in one round trip, and what an earlier request changed is read again.
    fn requests_in_one_batch_decide_on_each_others_writes(store: &Backing) {
        use authledger::LeaseId;
        use authledger::ledger::{Op, Queued};
        let (ledger, _clock) = store.ledger(T0, limits(350, 3));
        let id = |n: u8| LeaseId::from_random([n; 10]);
        let acquire = |n: u8, tokens: i64| Op::Acquire {
            id: id(n),
            request: req(&format!("batch-{n}")).tokens(tokens),
        };
        let ops = [
            acquire(1, 100),
            acquire(2, 100),
            acquire(3, 200), // 400 tokens of 350: refused
            acquire(4, 100),
            acquire(5, 10), // a fourth live lease of 3: refused
            Op::Release {
                id: id(1),
                detail: None,
            },
            acquire(6, 150), // the freed slot and tokens: exactly 350
            acquire(7, 1),   // refused
        ];
        let queued: Vec<Queued<'_>> = ops
            .iter()
            .map(|op| Queued {
                op,
                start_by: i64::MAX,
            })
            .collect();
        let replies = ledger.commit_together(&queued).unwrap();
        let done: Vec<bool> = replies
            .iter()
            .map(|r| matches!(r, Some(Ok(_))))
            .collect();
        assert_eq!(
            done,
            [true, true, false, true, false, true, true, false],
            "{replies:?}"
        );
        let mut live: Vec<(String, i64)> = ledger
            .leases(false)
            .unwrap()
            .into_iter()
            .map(|l| (l.agent.as_str().to_string(), l.allocated))
            .collect();
        live.sort();
        assert_eq!(
            live,
            [
                ("batch-2".to_string(), 100),
                ("batch-4".to_string(), 100),
                ("batch-6".to_string(), 150)
            ]
        );
        let (rc, report) = verify(store);
        assert_eq!((rc, report["ok"].clone()), (0, true.into()), "{report}");
    }

    /// Lists come out in the same order from either engine: text byte by byte (`B-agent`,
    /// `Zed`, `a-agent`, `c`), a missing value first, whatever collation the server's database
    /// has (run once more below on a database sorting by ICU's root locale).
    fn lists_come_out_in_byte_order_on_either_engine(store: &Backing) {
        let (ledger, _clock) = store.ledger(T0, limits(10_000, 10));
        for agent in ["c", "a-agent", "Zed", "B-agent"] {
            let lease = ledger.acquire(&req(agent).tokens(10)).unwrap();
            ledger
                .record_usage(&lease.id, &UsageRecord::new(1, 0))
                .unwrap();
            ledger.release(&lease.id).unwrap();
        }
        let agents: Vec<String> = ledger
            .usage_report(0, UsageGroup::Agent)
            .unwrap()
            .into_iter()
            .map(|u| u.key)
            .collect();
        assert_eq!(agents, ["B-agent", "Zed", "a-agent", "c"]);
        let counts = ledger.audit_counts().unwrap();
        let mut sorted = counts.clone();
        sorted.sort();
        assert_eq!(counts, sorted, "audit counts not in byte order, None first");
        let out = store.run_at(T0, &["usage", "--by", "agent"]);
        let text = stdout(&out);
        let at = |agent: &str| text.find(agent).unwrap_or_else(|| panic!("{agent}: {text}"));
        assert!(at("Zed") < at("a-agent") && at("a-agent") < at(" c "), "{text}");
    }

    /// A row this build cannot read (another provider's, written by a newer build) stops
    /// nothing that does not ask for it, on either engine: a grant on an account it knows
    /// goes through.
    fn a_row_of_an_unknown_provider_stops_no_grant_on_a_known_one(store: &Backing) {
        let (ledger, _clock) = store.ledger(T0, limits(1_000, 10));
        store.edit(
            "INSERT INTO credentials (provider, account, kind, created_at, updated_at) \
             VALUES ('gemini', 'default', 'api_key', 1, 1); \
             INSERT INTO limits (provider, account, daily_tokens, concurrent, updated_at) \
             VALUES ('gemini', 'default', 5, 1, 1); \
             INSERT INTO provider_health (provider, account, consecutive_errors, facts, \
             updated_at) VALUES ('gemini', 'default', 0, '{}', 1);",
        );
        let lease = ledger.acquire(&req("known").tokens(10)).unwrap();
        assert_eq!(lease.provider, Provider::Claude);
        ledger.release(&lease.id).unwrap();
    }

    /// What an audit row says comes back byte for byte (a server transaction writes it in as a
    /// literal): quotes, backslashes, NUL-free control characters and any script, and the
    /// keyed chain over it verifies.
    fn audit_text_round_trips_exactly(store: &Backing) {
        let (ledger, _clock) = store.ledger(T0, limits(1_000, 10));
        let lease = ledger.acquire(&req("quoted").tokens(10)).unwrap();
        let note = "it's \"quoted\", a back\\slash \\x41, E'x', $1 ?1 -- ; \t ünïcødé 漢字 🙂";
        ledger
            .release_with(&lease.id, Some(serde_json::json!({ "note": note })))
            .unwrap();
        let rows = ledger
            .audit(&authledger::AuditQuery {
                action: Some("release".into()),
                ..Default::default()
            })
            .unwrap();
        let detail: serde_json::Value = serde_json::from_str(&rows[0].detail).unwrap();
        assert_eq!(detail["holder"]["note"], note);
        let (rc, report) = verify(store);
        assert_eq!((rc, report["ok"].clone()), (0, true.into()), "{report}");
    }

    /// A refusal undoes what deciding wrote (the day window it opened) and keeps only its
    /// `deny` row; refusals decided before any write (the concurrency limit) alike; the chain
    /// runs on unbroken through grants, refusals and releases.
    fn a_refusal_leaves_only_its_audit_row_and_the_chain_runs_on(store: &Backing) {
        let (ledger, _clock) = store.ledger(T0, limits(1_000, 1));
        let windows = || store.query("SELECT COUNT(*) FROM windows")[0][0].clone();
        let d = denial(ledger.acquire(&req("big").tokens(5_000)));
        assert_eq!(d.reason, DenyReason::Budget(WindowKind::Day));
        assert_eq!(windows(), "0", "the refused grant's window must be undone");
        let held = ledger.acquire(&req("a").tokens(100)).unwrap();
        assert_eq!(windows(), "1");
        let d = denial(ledger.acquire(&req("b").tokens(100)));
        assert_eq!(d.reason, DenyReason::Concurrency);
        let released = ledger.release(&held.id).unwrap();
        assert_eq!(released.returned, 100);
        assert_eq!(claude(&ledger).reserved, 0);
        let tail: Vec<String> = store
            .query("SELECT action FROM audit ORDER BY seq DESC LIMIT 4")
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(tail, ["release", "deny", "acquire", "deny"]);
        let head = store.query("SELECT value FROM settings WHERE key = 'audit_head'");
        let last = store.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
        assert!(
            head[0][0].starts_with(&format!("{}:{}:", last[0][0], last[0][1])),
            "the recorded head must be the last row: {head:?} {last:?}"
        );
        let (rc, report) = verify(store);
        assert_eq!((rc, report["ok"].clone()), (0, true.into()), "{report}");
    }

    /// An account the provider answered 429 for is passed over until the reset it gave, then
    /// chosen again.
    fn an_unavailable_account_is_passed_over_until_its_reset(store: &Backing) {
        let (ledger, clock) = store.ledger(T0, limits(1_000, 10));
        ledger
            .set_limits(Provider::Openai, &Account::default(), &limits(1_000, 10))
            .unwrap();
        ledger.store_credential(&api_key(Provider::Openai, OPENAI_KEY)).unwrap();
        let headers = [("retry-after".to_string(), "120".to_string())];
        ledger
            .report_response(Provider::Claude, &Account::default(), 429, &headers)
            .unwrap();
        let (lease, decision) = ledger
            .acquire_selected(&req("x").tokens(10), &Choice::Auto)
            .unwrap();
        assert_eq!(lease.provider, Provider::Openai, "{decision:?}");
        assert_eq!(
            decision.fallback_from.as_ref().map(|f| f.0),
            Some(Provider::Claude),
            "{decision:?}"
        );
        clock.set_ms(T0 + 3 * MIN);
        let (lease, decision) = ledger
            .acquire_selected(&req("y").tokens(10), &Choice::Auto)
            .unwrap();
        assert_eq!(lease.provider, Provider::Claude, "{decision:?}");
    }

    /// A lease past its TTL is expired on the spot; its late usage still counts, and it can
    /// be neither renewed nor released.
    fn an_expired_lease_ends_once_and_its_late_usage_counts(store: &Backing) {
        let (ledger, clock) = store.ledger(T0, limits(1_000, 10));
        let lease = ledger
            .acquire(&req("a").tokens(300).ttl(Duration::from_secs(600)))
            .unwrap();
        clock.advance_ms(10 * MIN);
        assert_eq!(lost(ledger.renew(&lease.id)), LeaseState::Expired);
        assert_eq!(claude(&ledger).reserved, 0, "reclaimed on the spot");
        let o = ledger
            .record_usage(&lease.id, &UsageRecord::new(40, 2).key("late"))
            .unwrap();
        assert_eq!(o.lease_state, LeaseState::Expired);
        assert_eq!(lost(ledger.release(&lease.id)), LeaseState::Expired);
        let q = claude(&ledger);
        assert_eq!((q.used, q.reserved), (42, 0));
        assert_eq!(ledger.cleanup().unwrap().leases.len(), 0, "already ended");
    }

    /// The day window rolls over at midnight UTC and a lease that outlives its day keeps
    /// holding its tokens in the next.
    fn the_daily_window_rolls_over_and_carries_reservations(store: &Backing) {
        let (ledger, clock) = store.ledger(MIDNIGHT + DAY - 10 * MIN, limits(1_000, 5));
        let long = ledger
            .acquire(&req("night-owl").tokens(1_000).ttl(Duration::from_secs(3600)))
            .unwrap();
        let d = denial(ledger.acquire(&req("b").tokens(1)));
        assert_eq!(d.reason, DenyReason::Budget(WindowKind::Day));
        assert_eq!(d.resets_at, Some(MIDNIGHT + DAY));
        clock.set_ms(MIDNIGHT + DAY + 10 * MIN);
        let d = denial(ledger.acquire(&req("b").tokens(1_000)));
        assert_eq!((d.available, d.limit), (0, 1_000));
        let q = claude(&ledger);
        assert_eq!((q.used, q.reserved), (0, 1_000), "the reservation moved to today");
        clock.set_ms(MIDNIGHT + DAY + 20 * MIN);
        ledger.record_usage(&long.id, &UsageRecord::new(600, 0)).unwrap();
        let q = claude(&ledger);
        assert_eq!((q.used, q.reserved, q.remaining), (600, 400, 0));
        assert_eq!(ledger.release(&long.id).unwrap().returned, 400);
        let q = claude(&ledger);
        assert_eq!((q.used, q.reserved, q.remaining), (600, 0, 400));
    }

    /// The 5-hour window starts at first use, refuses at its edge and rolls on.
    fn the_five_hour_window_starts_at_first_use_and_rolls_on(store: &Backing) {
        let start = MIDNIGHT + 9 * HOUR + 17 * MIN;
        let (ledger, clock) = store.ledger(
            start,
            LimitsUpdate {
                window_5h_tokens: Some(Some(500)),
                ..Default::default()
            },
        );
        let spend = |tokens: i64| {
            let lease = ledger.acquire(&req("a").tokens(tokens)).unwrap();
            ledger.record_usage(&lease.id, &UsageRecord::new(tokens, 0)).unwrap();
            ledger.release(&lease.id).unwrap();
        };
        spend(300);
        clock.advance_ms(2 * HOUR);
        spend(200);
        let d = denial(ledger.acquire(&req("a").tokens(1)));
        assert_eq!(d.reason, DenyReason::Budget(WindowKind::FiveHour));
        assert_eq!(d.resets_at, Some(start + 5 * HOUR));
        clock.set_ms(start + 5 * HOUR - 1);
        denial(ledger.acquire(&req("a").tokens(1)));
        clock.set_ms(start + 5 * HOUR);
        spend(500);
        let d = denial(ledger.acquire(&req("a").tokens(1)));
        assert_eq!(d.resets_at, Some(start + 10 * HOUR));
    }

    /// The same key twice counts once; the summaries by agent, UTC day and model are the
    /// same on both engines (the day is computed by each engine's own SQL).
    fn usage_is_idempotent_by_key_and_summed_by_agent_day_and_model(store: &Backing) {
        let (ledger, clock) = store.ledger(MIDNIGHT + DAY - 1_000, limits(100_000, 10));
        let a = ledger.acquire(&req("alpha").tokens(5_000)).unwrap();
        let b = ledger.acquire(&req("beta").tokens(5_000)).unwrap();
        let rec = UsageRecord::new(10, 20).model("claude-x").key("call-1");
        assert!(!ledger.record_usage(&a.id, &rec).unwrap().duplicate);
        assert!(ledger.record_usage(&a.id, &rec).unwrap().duplicate);
        assert!(matches!(
            ledger.record_usage(&a.id, &UsageRecord::new(11, 20).key("call-1")),
            Err(Error::Quota(QuotaError::IdempotencyConflict { .. }))
        ));
        // The last millisecond of the 23rd, then the first of the 24th.
        clock.set_ms(MIDNIGHT + DAY - 1);
        ledger
            .record_usage(&b.id, &UsageRecord::new(1, 2).model("claude-y").key("b-1"))
            .unwrap();
        clock.set_ms(MIDNIGHT + DAY);
        ledger
            .record_usage(&a.id, &UsageRecord::new(100, 200).model("claude-y").key("a-2"))
            .unwrap();
        ledger
            .record_usage(&b.id, &UsageRecord::new(1_000, 0).key("b-2"))
            .unwrap();
        ledger
            .record_usage(&b.id, &UsageRecord::new(1_000, 0).key("b-2"))
            .unwrap();
        assert_eq!(
            summary(&ledger, UsageGroup::Agent),
            vec![s("alpha", 110, 220, 2), s("beta", 1_001, 2, 2)]
        );
        assert_eq!(
            summary(&ledger, UsageGroup::Day),
            vec![s("2026-11-23", 11, 22, 2), s("2026-11-24", 1_100, 200, 2)]
        );
        assert_eq!(
            summary(&ledger, UsageGroup::Model),
            vec![s("-", 1_000, 0, 1), s("claude-x", 10, 20, 1), s("claude-y", 101, 202, 2)]
        );
        assert_eq!(ledger.lease(&a.id).unwrap().used, 330);
        assert_eq!(ledger.lease(&b.id).unwrap().used, 1_003);
    }

    /// Cleanup reclaims expired and idle leases, returns their tokens once, and a second pass
    /// finds nothing.
    fn cleanup_reclaims_expired_and_idle_leases_once(store: &Backing) {
        let (ledger, clock) = store.ledger(T0, limits(1_000, 10));
        let short = ledger
            .acquire(&req("short").tokens(100).ttl(Duration::from_secs(60)))
            .unwrap();
        let idle = ledger
            .acquire(&req("idle").tokens(200).ttl(Duration::from_secs(7_200)))
            .unwrap();
        let busy = ledger
            .acquire(&req("busy").tokens(300).ttl(Duration::from_secs(7_200)))
            .unwrap();
        clock.advance_ms(20 * MIN);
        ledger.renew(&busy.id).unwrap();
        clock.advance_ms(20 * MIN);
        let report = ledger.cleanup_idle(Duration::from_secs(30 * 60)).unwrap();
        assert_eq!((report.expired, report.idle, report.tokens_returned), (1, 1, 300));
        let mut ids: Vec<String> = report.leases.iter().map(|l| l.to_string()).collect();
        ids.sort();
        let mut want = vec![short.id.to_string(), idle.id.to_string()];
        want.sort();
        assert_eq!(ids, want);
        let ended = |id| {
            let l = ledger.lease(id).unwrap();
            (l.state, l.end_reason)
        };
        assert_eq!(ended(&short.id), (LeaseState::Expired, Some("ttl".into())));
        assert_eq!(ended(&idle.id), (LeaseState::Expired, Some("idle".into())));
        assert_eq!(ledger.lease(&busy.id).unwrap().state, LeaseState::Active);
        let again = ledger.cleanup_idle(Duration::from_secs(30 * 60)).unwrap();
        assert_eq!((again.expired, again.idle, again.tokens_returned), (0, 0, 0));
        assert_eq!(claude(&ledger).reserved, 300);
    }

    /// Two ledgers (two pools) cleaning up from two threads at once, and then four CLI
    /// processes: each lease is reclaimed by exactly one of them.
    fn racing_cleanups_reclaim_each_lease_once(store: &Backing) {
        let (ledger, clock) = store.ledger(T0, limits(100_000, 64));
        for i in 0..20 {
            ledger
                .acquire(&req(&format!("a{i}")).tokens(10).ttl(Duration::from_secs(60)))
                .unwrap();
        }
        clock.advance_ms(2 * MIN);
        let other = store.open(&clock);
        let reports: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = [&ledger, &other]
                .into_iter()
                .map(|l| scope.spawn(move || l.cleanup().unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<String> = reports
            .iter()
            .flat_map(|r| r.leases.iter().map(|l| l.to_string()))
            .collect();
        assert_eq!(all.len(), 20, "{reports:?}");
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 20, "a lease reclaimed twice: {reports:?}");
        let returned: i64 = reports.iter().map(|r| r.tokens_returned).sum();
        assert_eq!(returned, 200);

        // The same with processes, on leases granted by the CLI.
        for i in 0..12 {
            store.json_at(T0 + 3 * MIN, &[
                "lease", "acquire", "--agent", &format!("p{i}"), "--provider", "claude",
                "--tokens", "10", "--ttl", "1m",
            ]);
        }
        let outs = processes(store, T0 + 10 * MIN, 4, &["--json", "cleanup"]);
        let mut ids = Vec::new();
        for out in &outs {
            let v = common::parse_json(common_must(out));
            ids.extend(
                v["leases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l.as_str().unwrap().to_string()),
            );
        }
        assert_eq!(ids.len(), 12, "{ids:?}");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 12, "a lease reclaimed twice");
        assert_eq!(claude(&ledger).reserved, 0);
    }

    /// Every grant's fence is above every earlier one's, across renewals and handles.
    fn fences_strictly_increase(store: &Backing) {
        let (ledger, clock) = store.ledger(T0, limits(100_000, 64));
        let other = store.open(&clock);
        let mut fences = Vec::new();
        for i in 0..10 {
            let l = if i % 2 == 0 { &ledger } else { &other };
            let lease = l.acquire(&req(&format!("f{i}")).tokens(1)).unwrap();
            fences.push(lease.fence);
            if i % 3 == 0 {
                l.renew(&lease.id).unwrap();
            }
            if i % 2 == 1 {
                l.release(&lease.id).unwrap();
            }
        }
        assert!(
            fences.windows(2).all(|w| w[0] < w[1]),
            "fences must only grow: {fences:?}"
        );
        let first = ledger.leases(true).unwrap();
        let lease = first.iter().find(|l| l.fence == fences[0]).unwrap();
        ledger.check_fence(&lease.id, fences[0]).unwrap();
        assert!(matches!(
            ledger.check_fence(&lease.id, fences[0] + 1),
            Err(Error::Quota(QuotaError::StaleFence { .. }))
        ));
    }

    /// `audit verify` passes on an intact trail and names a row changed in the database.
    fn audit_verify_passes_intact_and_catches_a_tampered_row(store: &Backing) {
        let (ledger, _clock) = store.ledger(T0, limits(1_000, 10));
        for agent in ["a", "b", "c"] {
            let lease = ledger.acquire(&req(agent).tokens(10)).unwrap();
            ledger.record_usage(&lease.id, &UsageRecord::new(3, 4)).unwrap();
            ledger.release(&lease.id).unwrap();
        }
        let actions: Vec<String> = store
            .query("SELECT action FROM audit ORDER BY seq")
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        let mut want = vec!["limits", "rekey", "login"];
        for _ in 0..3 {
            want.extend(["acquire", "usage", "release"]);
        }
        assert_eq!(actions, want);
        // Listing with filters: every optional filter is a typed parameter on both engines.
        let acquires = store.json_at(T0, &["audit", "--action", "acquire", "--agent", "b"]);
        assert_eq!(acquires.as_array().unwrap().len(), 1, "{acquires}");
        assert_eq!(store.json_at(T0, &["audit"]).as_array().unwrap().len(), 12);
        let (rc, report) = verify(store);
        assert_eq!(rc, 0, "{report}");
        assert_eq!((report["ok"].clone(), report["rows"].clone()), (true.into(), 12.into()));
        assert!(ledger.verify_audit().unwrap().ok);

        store.tamper_audit("detail = '{\"tokens\":1}'", 5);
        let (rc, report) = verify(store);
        assert_ne!(rc, 0, "a tampered trail must fail: {report}");
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(report["first_bad_seq"], 5, "{report}");
        assert!(!ledger.verify_audit().unwrap().ok);
    }

    /// Login with an API key, read it back, log out; generations never repeat; a key
    /// rotation keeps every credential readable.
    fn credentials_are_stored_read_rotated_and_logged_out(store: &Backing) {
        let out = store.run_stdin(&["login", "claude", "--api-key-stdin"], CLAUDE_KEY);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let out = store.run_stdin(&["login", "openai", "--api-key-stdin"], OPENAI_KEY);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let token = store.run_at(T0, &["token", "claude"]);
        assert_eq!((code(&token), stdout(&token).trim()), (0, CLAUDE_KEY), "{}", stderr(&token));
        let sealed = store.query("SELECT COUNT(*) FROM credential_secrets");
        assert_ne!(sealed[0][0], "0");
        let generation = |p: &str| -> i64 {
            store.query(&format!(
                "SELECT generation FROM credentials WHERE provider = '{p}'"
            ))[0][0]
                .parse()
                .unwrap()
        };
        let first = generation("claude");

        let out = store.run_at(T0, &["logout", "claude"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(store.query("SELECT 1 FROM credentials WHERE provider = 'claude'").is_empty());
        let out = store.run_at(T0, &["token", "claude"]);
        assert_eq!(code(&out), 4, "no credential after logout: {}", stderr(&out));
        let out = store.run_stdin(&["login", "claude", "--api-key-stdin"], CLAUDE_KEY);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(generation("claude") > first, "a generation never repeats");

        let clock = ManualClock::new(T0);
        let ledger = store.open(&clock);
        let rotation = ledger.rotate_key().unwrap();
        assert!(rotation.credentials >= 2, "{rotation:?}");
        for (p, key) in [("claude", CLAUDE_KEY), ("openai", OPENAI_KEY)] {
            let out = store.run_at(T0, &["token", p]);
            assert_eq!((code(&out), stdout(&out).trim()), (0, key), "{}", stderr(&out));
        }
        let dump = store.query("SELECT * FROM credential_secrets");
        let dump = format!("{dump:?}");
        assert!(!dump.contains(CLAUDE_KEY) && !dump.contains(OPENAI_KEY), "sealed");
    }

    /// Twelve processes asking for an expiring OAuth token at once: the authorization server
    /// sees one refresh, and every process prints the new token.
    fn racing_processes_refresh_an_oauth_token_once(store: &Backing) {
        use common::oauth_server::OAuthServer;
        let server = OAuthServer::start();
        std::fs::write(store.home.path().join("config.toml"), server.config_toml("openai"))
            .unwrap();
        server.set(|m| m.expires_in = Some(120));
        let out = store
            .cmd_at(T0)
            .args(["login", "openai", "--device"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        server.set(|m| {
            m.expires_in = Some(3600);
            m.refresh_delay = Duration::from_millis(300);
        });
        let outs = processes(store, T0, 12, &["token", "openai"]);
        assert_eq!(server.token_requests("refresh_token").len(), 1, "one refresh");
        assert_eq!(server.replays(), Vec::<String>::new());
        let new = server.access_tokens().last().unwrap().clone();
        for (i, out) in outs.iter().enumerate() {
            assert_eq!(code(out), 0, "process {i}: {}", stderr(out));
            assert_eq!(stdout(out).trim(), new, "process {i}'s token");
        }
        let refreshes = store.json_at(T0, &["audit", "--action", "refresh"]);
        assert_eq!(refreshes.as_array().unwrap().len(), 1, "{refreshes}");
        assert!(store.query("SELECT * FROM refresh_claims").is_empty(), "claim released");
    }

    /// Claude out of quota: selection falls back to OpenAI, and back to Claude the next day.
    fn selection_falls_back_from_claude_out_of_quota_to_openai(store: &Backing) {
        let (ledger, clock) = store.ledger(T0, limits(1_000, 10));
        ledger
            .set_limits(Provider::Openai, &Account::default(), &limits(1_000, 10))
            .unwrap();
        ledger.store_credential(&api_key(Provider::Openai, OPENAI_KEY)).unwrap();
        assert_eq!(ledger.select(&Choice::Auto).unwrap().provider, Provider::Claude);
        let lease = ledger.acquire(&req("filler").tokens(1_000)).unwrap();
        ledger.record_usage(&lease.id, &UsageRecord::new(1_000, 0)).unwrap();
        ledger.release(&lease.id).unwrap();
        let (granted, decision) = ledger
            .acquire_selected(&req("next").tokens(100), &Choice::Auto)
            .unwrap();
        assert_eq!((granted.provider, decision.provider), (Provider::Openai, Provider::Openai));
        assert_eq!(
            decision.fallback_from.as_ref().map(|f| f.0),
            Some(Provider::Claude),
            "{decision:?}"
        );
        clock.set_ms(MIDNIGHT + DAY);
        assert_eq!(ledger.select(&Choice::Auto).unwrap().provider, Provider::Claude);
    }

    /// The gateway meters what the upstream reports: usage recorded with its model, a
    /// response delivered twice counted once.
    fn the_gateway_records_usage_with_its_model_once_per_response(store: &Backing) {
        use authledger::gateway::HostedGateway;
        use common::upstream::{FakeUpstream, Reply};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let upstream = rt.block_on(FakeUpstream::start());
        std::fs::write(
            store.home.path().join("config.toml"),
            format!("[providers.claude]\nbase_url = \"http://{}\"\n", upstream.addr),
        )
        .unwrap();
        let file = authledger::config_file::ConfigFile::parse(
            &store.home.path().join("config.toml"),
            &std::fs::read_to_string(store.home.path().join("config.toml")).unwrap(),
        )
        .unwrap();
        let clock = ManualClock::new(T0);
        let ledger = Ledger::open(store.config(&clock).with_file_config(file)).unwrap();
        ledger.set_limits(Provider::Claude, &Account::default(), &limits(1_000_000, 4)).unwrap();
        ledger.store_credential(&api_key(Provider::Claude, CLAUDE_KEY)).unwrap();
        let gateway =
            HostedGateway::start(ledger.clone(), "127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let lease = ledger.acquire(&req("agent-1").tokens(100_000)).unwrap();
        let token = ledger.issue_lease_token(&lease.id).unwrap();
        let token = token.expose_secret().to_string();
        let url = format!("{}/v1/messages", gateway.url());
        let reply = |id: &str, input: u64, output: u64| Reply::Whole {
            status: 200,
            content_type: "application/json",
            body: format!(
                r#"{{"id":"{id}","type":"message","model":"claude-x","content":[],"usage":{{"input_tokens":{input},"output_tokens":{output}}}}}"#
            )
            .into_bytes(),
        };
        rt.block_on(async {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            for (id, input, output) in [("msg_1", 50, 5), ("msg_1", 50, 5), ("msg_2", 7, 3)] {
                upstream.reply(reply(id, input, output));
                let response = client
                    .post(&url)
                    .header("x-api-key", &token)
                    .header("anthropic-version", "2023-06-01")
                    .header("content-type", "application/json")
                    .body(r#"{"model":"claude-x","max_tokens":5,"messages":[]}"#)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
            }
        });
        // Stopping the gateway writes every record it has.
        gateway.stop().unwrap();
        assert_eq!(
            summary(&ledger, UsageGroup::Model),
            vec![s("claude-x", 57, 8, 2)]
        );
        assert_eq!(ledger.lease(&lease.id).unwrap().used, 65);
        let keys = store.query("SELECT idem_key, status FROM usage_events ORDER BY idem_key");
        assert_eq!(
            keys,
            vec![
                vec![format!("{}:msg_1", lease.id), "completed".into()],
                vec![format!("{}:msg_2", lease.id), "completed".into()],
            ]
        );
        drop(upstream);
    }
}

/// [`common::must`] on a borrowed output.
fn common_must(out: &Output) -> &Output {
    let err = stderr(out).to_lowercase();
    assert!(
        !err.contains("busy") && !err.contains("locked"),
        "stderr mentions busy/locked: {err}"
    );
    assert_eq!(code(out), 0, "failed: {err}");
    out
}

// ---------------------------------------------------------------------------------------------
// Both stores at once: `migrate`, and what `--db` accepts
// ---------------------------------------------------------------------------------------------

mod cli {
    use super::*;

    /// A SQLite ledger with history: two credentials, finished and open leases, usage.
    fn populated() -> Backing {
        let store = Backing::sqlite();
        let out = store.run_stdin(&["login", "claude", "--api-key-stdin"], CLAUDE_KEY);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let out = store.run_stdin(&["login", "openai", "--api-key-stdin"], OPENAI_KEY);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        for (i, provider) in ["claude", "openai", "claude"].iter().enumerate() {
            let lease = store.json_at(
                T0,
                &[
                    "lease",
                    "acquire",
                    "--agent",
                    &format!("agent-{i}"),
                    "--provider",
                    provider,
                    "--tokens",
                    "100",
                    "--ttl",
                    "1h",
                ],
            );
            let id = lease["lease_id"].as_str().unwrap().to_string();
            store.json_at(
                T0,
                &[
                    "usage",
                    "record",
                    &id,
                    "--input",
                    "10",
                    "--output",
                    &format!("{}", i + 1),
                    "--model",
                    "m-1",
                ],
            );
            if i < 2 {
                store.json_at(T0, &["lease", "release", &id]);
            }
        }
        store
    }

    /// What must agree across a migration: status, every lease, usage, the audit check.
    fn view(store: &Backing) -> Vec<serde_json::Value> {
        let mut status = store.json_at(T0, &["status"]);
        // Where the ledger is differs by design.
        if let Some(rows) = status.as_array_mut() {
            for row in rows {
                if let Some(o) = row.as_object_mut() {
                    o.remove("db");
                }
            }
        }
        let (rc, mut verify) = verify(store);
        assert_eq!(rc, 0, "{verify}");
        if let Some(o) = verify.as_object_mut() {
            o.remove("head");
        }
        vec![
            status,
            store.json_at(T0, &["lease", "list", "--all"]),
            store.json_at(T0, &["usage", "--by", "agent"]),
            store.json_at(T0, &["usage", "--by", "model"]),
            verify,
        ]
    }

    #[test]
    fn migrate_copies_a_ledger_to_postgres_and_back_alike() {
        let source = populated();
        let before = view(&source);
        let pg = Backing {
            home: Home::empty(),
            url: Some(pg::server().fresh_db()),
        };
        std::fs::create_dir_all(pg.home.path().join("keys")).unwrap();
        std::fs::copy(
            source.home.path().join("keys/master.key"),
            pg.home.path().join("keys/master.key"),
        )
        .unwrap();
        let from = format!("sqlite:{}", source.home.db().display());
        let out = source.run_at(
            T0,
            &[
                "migrate",
                "--from",
                &from,
                "--to",
                pg.url.as_deref().unwrap(),
            ],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(
            view(&pg),
            before,
            "status, leases, usage and audit agree on PostgreSQL"
        );
        let token = pg.run_at(T0, &["token", "claude"]);
        assert_eq!(stdout(&token).trim(), CLAUDE_KEY, "{}", stderr(&token));

        let back = Backing::sqlite();
        std::fs::create_dir_all(back.home.path().join("keys")).unwrap();
        std::fs::copy(
            source.home.path().join("keys/master.key"),
            back.home.path().join("keys/master.key"),
        )
        .unwrap();
        let to = format!("sqlite:{}", back.home.db().display());
        let out = pg.run_at(T0, &["migrate", "--to", &to]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(view(&back), before, "and again on the new SQLite file");
        let token = back.run_at(T0, &["token", "openai"]);
        assert_eq!(stdout(&token).trim(), OPENAI_KEY, "{}", stderr(&token));
        // The open lease is still open on the copy: it can be released there.
        let open = back.json_at(T0, &["lease", "list"]);
        let id = open[0]["lease_id"].as_str().unwrap().to_string();
        back.json_at(T0, &["lease", "release", &id]);
    }

    #[test]
    fn migrate_refuses_a_target_that_is_not_empty_and_changes_nothing() {
        let source = populated();
        let target = Backing::postgres();
        let out = target.run_stdin(&["login", "openai", "--api-key-stdin"], OPENAI_KEY);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let url = target.url.as_deref().unwrap();
        let dump = || {
            pg::psql(
                url,
                "SELECT (SELECT COUNT(*) FROM audit), (SELECT COUNT(*) FROM leases), \
                 (SELECT COUNT(*) FROM credentials), (SELECT MAX(hash) FROM audit)",
            )
        };
        let before = dump();
        let source_before = source.home.snapshot();
        let from = format!("sqlite:{}", source.home.db().display());
        let out = source.run_at(T0, &["migrate", "--from", &from, "--to", url]);
        common::assert_refused(&out, 2, &["empty"], "migrate into a used database");
        assert_eq!(dump(), before, "the target is unchanged");
        assert_eq!(
            source.home.snapshot(),
            source_before,
            "the source is unchanged"
        );
    }

    /// Two moves into the same new database at once: one copies, the other is refused as
    /// into a used database (exit 2), and the target holds the source once.
    #[test]
    fn two_migrations_racing_into_one_target_copy_once() {
        let source = populated();
        let target = Backing::postgres();
        let url = target.url.as_deref().unwrap();
        let from = format!("sqlite:{}", source.home.db().display());
        let children: Vec<_> = (0..2)
            .map(|_| {
                source
                    .cmd_at(T0)
                    .args(["migrate", "--from", &from, "--to", url])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut codes: Vec<i32> = children
            .into_iter()
            .map(|c| code(&c.wait_with_output().unwrap()))
            .collect();
        codes.sort();
        assert_eq!(codes, vec![0, 2]);
        let rows = |sql: &str| source.query(sql);
        let copied = pg::psql(url, "SELECT COUNT(*) FROM audit");
        assert_eq!(copied, rows("SELECT COUNT(*) FROM audit")[0][0]);
    }

    #[test]
    fn an_unknown_database_scheme_is_refused_and_creates_nothing() {
        let home = Home::empty();
        let cwd = tempfile::tempdir().unwrap();
        let out = home
            .cmd()
            .current_dir(cwd.path())
            .args(["--db", "mysql://x/y", "status"])
            .output()
            .unwrap();
        common::assert_refused(&out, 2, &["mysql"], "--db mysql://x/y status");
        let listed = |p: &std::path::Path| -> Vec<PathBuf> {
            std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        };
        assert_eq!(
            listed(cwd.path()),
            Vec::<PathBuf>::new(),
            "nothing in the directory"
        );
        assert_eq!(
            listed(home.path()),
            Vec::<PathBuf>::new(),
            "nothing in the home"
        );
    }

    #[test]
    fn a_postgres_url_never_becomes_a_path() {
        let home = Home::empty();
        let cwd = tempfile::tempdir().unwrap();
        let url = pg::server().fresh_db();
        let status = |args: &[&str]| {
            let out = home
                .cmd()
                .current_dir(cwd.path())
                .args(args)
                .output()
                .unwrap();
            assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        };
        status(&["--db", &url, "status"]);
        status(&[
            "--db",
            &url.replacen("postgres://", "postgresql://", 1),
            "status",
        ]);
        let mut env = home.cmd();
        let out = env
            .current_dir(cwd.path())
            .env("AUTHLEDGER_DB", &url)
            .args(["status"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let names: Vec<String> = std::fs::read_dir(cwd.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            Vec::<String>::new(),
            "no `postgres:` directory or file"
        );
        assert!(!home.db().exists(), "no SQLite file in the home either");
        // The ledger really is on the server.
        let tables = pg::psql(
            &url,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'leases'",
        );
        assert_eq!(tables, "1");
    }
}

/// [`lists_come_out_in_byte_order_on_either_engine`] on a server database whose collation
/// sorts otherwise.
#[test]
fn lists_come_out_in_byte_order_on_a_database_of_another_collation() {
    lists_come_out_in_byte_order_on_either_engine(&Backing::postgres_with_icu_collation());
}
