//! The ledger as the gateway's [`Authority`]: lease tokens resolved to their lease and real
//! credential, each request admitted against the lease's budget (topped up from the pool when
//! it runs out), and every response's usage and health written off the response path, many
//! requests to one commit.
//!
//! A request costs one read: the token's lease and the metadata of its account's credential.
//! The decrypted credential (with its upstream) is held for at most a second and only
//! while the credential's generation and status are the ones read with it, so a new login,
//! refresh or logout is seen by the next request, and the key file is read (and checked
//! against the ledger's key id) at most once per account per second. A request that
//! needs a write (the probe of a ledger not vouched for, a top-up) or a credential not held
//! goes to the blocking pool.
//!
//! Writes never sit on a response: [`Authority::record`] and [`Authority::observe`] only
//! queue. One recorder thread drains the queue and writes what it holds in one transaction
//! (through the daemon's group commit when the ledger has it as committer). A batch that fails
//! is retried with the same idempotency keys, so nothing is counted twice; a ledger that stops
//! taking writes makes every new request 503 until a write succeeds again (fail closed:
//! invariant 7). [`LedgerAuthority::flush`] waits for everything queued so far, which is what a
//! host does on SIGTERM and before it releases a lease.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use url::Url;

use super::authority::{Admission, Authority, Decided, GatewayError, Grant, UpstreamAuth};
use super::errors::Refusal;
use super::usage::Metered;
use crate::ledger::{Ledger, Spend};
use crate::quota::UsageRecord;
use crate::records::{CredentialRecord, Lease};
use crate::types::{Account, LeaseId, LeaseState, Provider};
use crate::vault::{CredentialKind, Secret};

/// Anthropic's public API.
const ANTHROPIC_API: &str = "https://api.anthropic.com";
/// OpenAI's public API (agents send `/v1/…`).
const OPENAI_API: &str = "https://api.openai.com";
/// The backend Codex talks to with a ChatGPT plan (it takes `/responses`, not `/v1/responses`).
const CHATGPT_BACKEND: &str = "https://chatgpt.com/backend-api/codex";
/// The header the ChatGPT backend needs to know the workspace.
const CHATGPT_ACCOUNT_HEADER: &str = "chatgpt-account-id";

/// How long a successful write vouches for the ledger taking the next one.
const WRITABLE_FOR: Duration = Duration::from_secs(1);
/// The most records written in one transaction.
const MAX_BATCH: usize = 512;
/// Attempts at writing one batch before its records are given up (and logged).
const ATTEMPTS: u32 = 5;
/// A successful response's health facts are written at most this often per account: only
/// errors and recoveries change what selection does.
const FACTS_EVERY: Duration = Duration::from_secs(2);
/// The longest a decrypted upstream credential is used without being decrypted again from the
/// ledger, in milliseconds of the ledger's clock (it is dropped sooner when its generation or
/// status moves).
const HOLD_GRANT_MS: i64 = 1_000;

/// The ledger, answering the gateway.
pub struct LedgerAuthority {
    ledger: Ledger,
    routes: Routes,
    queue: Mutex<Option<Sender<Job>>>,
    recorder: Mutex<Option<JoinHandle<()>>>,
    writes: Arc<WriteHealth>,
    held: Mutex<Vec<Held>>,
}

/// An account's grant as last built from the ledger, and the credential state it was built
/// from.
struct Held {
    provider: Provider,
    account: Account,
    generation: i64,
    status: String,
    /// When it was built, on the ledger's clock.
    built: crate::types::Millis,
    oauth: bool,
    grant: Grant,
}

impl std::fmt::Debug for LedgerAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerAuthority").finish_non_exhaustive()
    }
}

/// What the recorder does next, in the order asked.
enum Job {
    Usage(LeaseId, UsageRecord),
    Health {
        provider: Provider,
        account: Account,
        status: u16,
        headers: Vec<(String, String)>,
    },
    Flush(Sender<()>),
}

/// When the ledger last took a write, as milliseconds after `since` (0: it refused the last).
struct WriteHealth {
    since: Instant,
    vouched_until_ms: AtomicU64,
}

impl WriteHealth {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn vouched(&self) -> bool {
        self.now_ms() < self.vouched_until_ms.load(Ordering::Acquire)
    }

    fn took_a_write(&self) {
        let until = self.now_ms() + WRITABLE_FOR.as_millis() as u64;
        self.vouched_until_ms.store(until, Ordering::Release);
    }

    fn refused_a_write(&self) {
        self.vouched_until_ms.store(0, Ordering::Release);
    }
}

/// The upstreams, parsed once.
struct Routes {
    claude: Url,
    openai: Url,
    openai_strip: Option<&'static str>,
    chatgpt: Url,
}

impl Routes {
    fn new(ledger: &Ledger) -> Result<Routes, GatewayError> {
        let file = &ledger.config().file;
        let parse = |configured: Option<&str>, default: &str| -> Result<Url, GatewayError> {
            let text = configured.unwrap_or(default);
            Url::parse(text)
                .map_err(|e| GatewayError::Unavailable(format!("upstream URL {text:?}: {e}")))
        };
        let openai_base = file.base_url(Provider::Openai);
        Ok(Routes {
            claude: parse(file.base_url(Provider::Claude), ANTHROPIC_API)?,
            openai: parse(openai_base, OPENAI_API)?,
            // A configured base URL that already ends in /v1 takes the agents' paths without it.
            openai_strip: openai_base
                .filter(|u| u.trim_end_matches('/').ends_with("/v1"))
                .map(|_| "/v1"),
            chatgpt: parse(file.chatgpt_base_url(Provider::Openai), CHATGPT_BACKEND)?,
        })
    }
}

impl LedgerAuthority {
    /// The ledger as an authority, with its recorder thread started.
    pub fn new(ledger: Ledger) -> Result<LedgerAuthority, GatewayError> {
        let routes = Routes::new(&ledger)?;
        let writes = Arc::new(WriteHealth {
            since: Instant::now(),
            vouched_until_ms: AtomicU64::new(0),
        });
        let (queue, jobs) = channel();
        let recorder = {
            let ledger = ledger.clone();
            let writes = Arc::clone(&writes);
            std::thread::Builder::new()
                .name("authledger-recorder".into())
                .spawn(move || record_until_closed(&ledger, &writes, &jobs))
                .map_err(|e| GatewayError::Unavailable(format!("cannot start recorder: {e}")))?
        };
        Ok(LedgerAuthority {
            ledger,
            routes,
            queue: Mutex::new(Some(queue)),
            recorder: Mutex::new(Some(recorder)),
            writes,
            held: Mutex::new(Vec::new()),
        })
    }

    /// Waits until everything recorded or observed so far has been written (or given up).
    pub fn flush(&self) {
        let (done, wait) = channel();
        if self.send(Job::Flush(done)) {
            let _ = wait.recv();
        }
    }

    /// Writes everything queued, then stops the recorder; later records are dropped (logged).
    pub fn close(&self) {
        let queue = self.queue.lock().ok().and_then(|mut q| q.take());
        drop(queue);
        let recorder = self.recorder.lock().ok().and_then(|mut r| r.take());
        if let Some(recorder) = recorder {
            let _ = recorder.join();
        }
    }

    fn send(&self, job: Job) -> bool {
        let sent = self
            .queue
            .lock()
            .ok()
            .and_then(|q| q.as_ref().map(|q| q.send(job).is_ok()));
        sent == Some(true)
    }

    /// The upstream and credential for an account's requests, from the ledger.
    fn grant_for(&self, lease: &Lease) -> Result<Grant, GatewayError> {
        let credential = self.ledger.credential(lease.provider, &lease.account)?;
        let (provider, account) = (lease.provider, &lease.account);
        let id = lease.id.clone();
        let grant = match (provider, credential.kind) {
            (Provider::Claude, CredentialKind::ApiKey) => Grant::new(
                id,
                provider,
                self.routes.claude.clone(),
                api_key(credential.api_key)?,
            ),
            (Provider::Claude, CredentialKind::Oauth) => {
                let token = self.ledger.access_token(provider, account)?;
                Grant::new(
                    id,
                    provider,
                    self.routes.claude.clone(),
                    UpstreamAuth::OAuth(token),
                )
            }
            (Provider::Openai, CredentialKind::ApiKey) => {
                let mut g = Grant::new(
                    id,
                    provider,
                    self.routes.openai.clone(),
                    api_key(credential.api_key)?,
                );
                g.strip_prefix = self.routes.openai_strip;
                g
            }
            (Provider::Openai, CredentialKind::Oauth) => {
                let token = self.ledger.access_token(provider, account)?;
                let mut g = Grant::new(
                    id,
                    provider,
                    self.routes.chatgpt.clone(),
                    UpstreamAuth::OAuth(token),
                );
                g.strip_prefix = Some("/v1");
                if let Some(account_id) = credential.account_id {
                    g.default_headers = vec![(CHATGPT_ACCOUNT_HEADER, account_id)];
                }
                g
            }
        };
        Ok(Grant {
            account: Some(account.clone()),
            ..grant
        })
    }

    /// The grant held for the lease's account, if the credential is still the one it was
    /// built from (`record`, read in this request's transaction) and it is fresh: built less
    /// than [`HOLD_GRANT_MS`] ago (a clock that went back makes it stale) and, for an OAuth
    /// token, not yet due for a refresh.
    fn held_grant(&self, lease: &Lease, record: Option<&CredentialRecord>) -> Option<Grant> {
        let record = record?;
        let held = self.held.lock().ok()?;
        let h = held
            .iter()
            .find(|h| h.provider == lease.provider && h.account == lease.account)?;
        let margin = crate::oauth::ms(self.ledger.config().refresh.margin);
        let now = self.ledger.now();
        let fresh = h.generation == record.generation
            && h.status == record.status
            && (h.built..h.built.saturating_add(HOLD_GRANT_MS)).contains(&now)
            && (!h.oauth || record.expires_at.is_none_or(|at| at - margin > now));
        fresh.then(|| Grant {
            lease_id: lease.id.clone(),
            ..h.grant.clone()
        })
    }

    /// Holds a grant just built from the ledger under the credential state read before it was
    /// built (a credential changed in between is newer than that state says, so the next
    /// request builds it again).
    fn hold(&self, lease: &Lease, record: Option<CredentialRecord>, grant: &Grant) {
        let (Some(record), Ok(mut held)) = (record, self.held.lock()) else {
            return;
        };
        held.retain(|h| !(h.provider == lease.provider && h.account == lease.account));
        held.push(Held {
            provider: lease.provider,
            account: lease.account.clone(),
            generation: record.generation,
            status: record.status,
            built: self.ledger.now(),
            oauth: matches!(grant.credential, UpstreamAuth::OAuth(_)),
            grant: grant.clone(),
        });
    }

    /// Whether the ledger takes writes: vouched for by a recent write, else probed now.
    fn ensure_writable(&self) -> Result<(), GatewayError> {
        if self.writes.vouched() {
            return Ok(());
        }
        match self.ledger.probe_writable() {
            Ok(()) => {
                self.writes.took_a_write();
                Ok(())
            }
            Err(e) => {
                self.writes.refused_a_write();
                Err(e.into())
            }
        }
    }

    /// Admits an active lease read just now: tops it up when it is spent.
    fn admit_lease(&self, lease: &Lease) -> Result<Admission, GatewayError> {
        // Nothing is forwarded that could not be recorded.
        self.ensure_writable()?;
        Ok(match self.ledger.admit_spend(lease)? {
            Spend::Go | Spend::ToppedUp(_) => Admission::Go,
            Spend::Lost => Admission::Refuse(Refusal::UnknownToken),
            Spend::Refused {
                resets_at: Some(at),
                ..
            } => {
                let wait_ms = u64::try_from(at.saturating_sub(self.ledger.now())).unwrap_or(0);
                Admission::Refuse(Refusal::RateLimited {
                    retry_after_secs: wait_ms.div_ceil(1000).max(1),
                })
            }
            Spend::Refused {
                resets_at: None, ..
            } => Admission::Refuse(Refusal::QuotaExhausted),
        })
    }
}

fn api_key(key: Option<Secret>) -> Result<UpstreamAuth, GatewayError> {
    key.map(UpstreamAuth::ApiKey)
        .ok_or_else(|| GatewayError::Unavailable("the stored API key is missing".into()))
}

impl Drop for LedgerAuthority {
    fn drop(&mut self) {
        self.close();
    }
}

impl Authority for LedgerAuthority {
    fn resolve(&self, token: &str) -> Result<Option<Grant>, GatewayError> {
        match self.ledger.lease_for_token(token)? {
            Some(lease) => self.grant_for(&lease).map(Some),
            None => Ok(None),
        }
    }

    fn admit(&self, lease: &LeaseId) -> Result<Admission, GatewayError> {
        let lease = match self.ledger.lease(lease) {
            Ok(lease) if lease.state == LeaseState::Active => lease,
            Ok(_) => return Ok(Admission::Refuse(Refusal::UnknownToken)),
            Err(crate::error::Error::Quota(crate::quota::QuotaError::LeaseLost { .. })) => {
                return Ok(Admission::Refuse(Refusal::UnknownToken));
            }
            Err(e) => return Err(e.into()),
        };
        self.admit_lease(&lease)
    }

    /// One read for the token, its lease and its credential's state; the credential itself
    /// from the ledger only when the one held is stale.
    fn decide(&self, token: &str) -> Result<Decided, GatewayError> {
        let Some((lease, record)) = self.ledger.lease_and_credential_for_token(token)? else {
            return Ok(None);
        };
        let grant = match self.held_grant(&lease, record.as_ref()) {
            Some(grant) => grant,
            None => {
                let grant = self.grant_for(&lease)?;
                self.hold(&lease, record, &grant);
                grant
            }
        };
        let admission = self.admit_lease(&lease)?;
        Ok(Some((grant, admission)))
    }

    /// Answers when the answer needs only the read: a database connection idle, the ledger
    /// vouched for by a recent write, the credential held, and the lease with budget left (no
    /// top-up to write). The read itself does not wait on writers (WAL).
    fn decide_now(&self, token: &str) -> Option<Result<Decided, GatewayError>> {
        if !self.writes.vouched() {
            return None;
        }
        // No idle connection: the blocking pool waits for one, not the runtime.
        let (lease, record) = match self.ledger.try_lease_and_credential_for_token(token)? {
            Ok(Some(found)) => found,
            Ok(None) => return Some(Ok(None)),
            Err(e) => return Some(Err(e.into())),
        };
        if lease.used >= lease.allocated {
            return None;
        }
        let grant = self.held_grant(&lease, record.as_ref())?;
        Some(Ok(Some((grant, Admission::Go))))
    }

    fn record(&self, lease: &LeaseId, metered: Metered) -> Result<(), GatewayError> {
        let record = usage_record(metered)?;
        if self.send(Job::Usage(lease.clone(), record)) {
            Ok(())
        } else {
            Err(GatewayError::Unavailable(
                "the gateway is shutting down: usage not recorded".into(),
            ))
        }
    }

    fn observe(&self, grant: &Grant, status: u16, headers: &[(String, String)]) {
        let worth_keeping = status >= 400
            || headers
                .iter()
                .any(|(k, _)| crate::health::is_rate_header(&k.to_ascii_lowercase()));
        if !worth_keeping {
            return;
        }
        let account = match &grant.account {
            Some(account) => account.clone(),
            None => match self.ledger.lease(&grant.lease_id) {
                Ok(lease) => lease.account,
                Err(_) => return,
            },
        };
        let _ = self.send(Job::Health {
            provider: grant.provider,
            account,
            status,
            headers: headers.to_vec(),
        });
    }
}

/// A metered response as the ledger stores it: the upstream's id is the idempotency key (a
/// record written twice counts once); a response without one gets a random key now, so a
/// retried batch still counts it once.
fn usage_record(m: Metered) -> Result<UsageRecord, GatewayError> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let key = match m.upstream_id {
        Some(id) if !id.is_empty() && id.len() <= 200 && !id.chars().any(char::is_control) => id,
        _ => format!(
            "gw-{}",
            hex::encode(
                crate::random::bytes::<12>()
                    .map_err(|e| GatewayError::Unavailable(e.to_string()))?
            )
        ),
    };
    let mut record = UsageRecord::new(n(m.input), n(m.output))
        .cache(n(m.cache_read), n(m.cache_creation))
        .status(m.outcome.as_str())
        .key(key);
    if let Some(model) = m.model.filter(|m| !m.is_empty() && m.len() <= 200) {
        record = record.model(model);
    }
    Ok(record)
}

/// The recorder thread: takes what is queued, writes it in batches, until the queue closes.
fn record_until_closed(ledger: &Ledger, writes: &WriteHealth, jobs: &Receiver<Job>) {
    let mut last_facts: HashMap<(Provider, Account), (Instant, u16)> = HashMap::new();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut usage = Vec::new();
        let mut waiting = Vec::new();
        let mut health = Vec::new();
        for job in batch {
            match job {
                Job::Usage(id, record) => usage.push((id, record)),
                Job::Flush(done) => waiting.push(done),
                Job::Health {
                    provider,
                    account,
                    status,
                    headers,
                } => health.push((provider, account, status, headers)),
            }
        }
        if !usage.is_empty() {
            write_usage(ledger, writes, &usage);
        }
        for (provider, account, status, headers) in health {
            let key = (provider, account);
            let due = match last_facts.get(&key) {
                // Errors always count (a 5xx streak, a 429's reset); so does the first success
                // after one (it clears the outage); other successes only now and then.
                Some((at, last)) => status >= 400 || *last >= 400 || at.elapsed() >= FACTS_EVERY,
                None => true,
            };
            if !due {
                continue;
            }
            match ledger.report_response(provider, &key.1, status, &headers) {
                Ok(_) => {
                    last_facts.insert(key, (Instant::now(), status));
                }
                Err(e) => eprintln!("authledger gateway: health of {provider} not recorded: {e}"),
            }
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

/// Writes one batch of usage, retrying a failed commit with the same keys.
fn write_usage(ledger: &Ledger, writes: &WriteHealth, usage: &[(LeaseId, UsageRecord)]) {
    let mut pause = Duration::from_millis(50);
    for attempt in 1..=ATTEMPTS {
        match ledger.record_usage_batch(usage) {
            Ok(results) => {
                writes.took_a_write();
                for ((id, _), result) in usage.iter().zip(results) {
                    if let Err(e) = result {
                        eprintln!("authledger gateway: usage for {id} not recorded: {e}");
                    }
                }
                return;
            }
            Err(e) => {
                writes.refused_a_write();
                if attempt == ATTEMPTS {
                    eprintln!(
                        "authledger gateway: {} usage records not written after {ATTEMPTS} \
                         attempts: {e}",
                        usage.len()
                    );
                    return;
                }
                std::thread::sleep(pause);
                pause *= 2;
            }
        }
    }
}
