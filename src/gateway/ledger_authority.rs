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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
/// How long a batch of records is retried before it is given up (and logged).
const RETRY_FOR: Duration = Duration::from_secs(60);
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
    pending: Arc<Pending>,
    lost: Arc<AtomicU64>,
    held: Mutex<Vec<Held>>,
}

/// What each lease has spent in records queued but not yet written, by idempotency key:
/// admission counts them as used, so an agent's next request is judged on its last one even
/// before it is committed. Keys let the top-up's transaction count exactly those not yet in
/// the ledger, whichever of a commit and a read comes first.
#[derive(Default)]
struct Pending(Mutex<HashMap<LeaseId, Vec<(String, i64)>>>);

impl Pending {
    fn of(&self, lease: &LeaseId) -> Vec<(String, i64)> {
        self.0
            .lock()
            .map(|m| m.get(lease).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn add(&self, lease: &LeaseId, key: &str, tokens: i64) {
        if let Ok(mut m) = self.0.lock() {
            m.entry(lease.clone())
                .or_default()
                .push((key.to_string(), tokens));
        }
    }

    fn remove(&self, lease: &LeaseId, key: &str) {
        if let Ok(mut m) = self.0.lock()
            && let Some(list) = m.get_mut(lease)
        {
            if let Some(i) = list.iter().position(|(k, _)| k == key) {
                list.swap_remove(i);
            }
            if list.is_empty() {
                m.remove(lease);
            }
        }
    }
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
        lease: LeaseId,
        provider: Provider,
        status: u16,
        headers: Vec<(String, String)>,
    },
    Flush(Sender<()>),
}

/// When the ledger last took a write, as milliseconds after `since` (0: it refused the last),
/// and whether usage records are failing: set when a batch of them cannot be written (or the
/// recorder has stopped), cleared only when one is. An empty write transaction can pass where
/// records fail (a full disk commits nothing), so admission trusts only the records.
struct WriteHealth {
    since: Instant,
    vouched_until_ms: AtomicU64,
    records_failing: AtomicBool,
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

    fn records_failing(&self) -> bool {
        self.records_failing.load(Ordering::Acquire)
    }
}

/// Marks records as failing when the recorder thread ends for any reason (closed, or a panic):
/// nothing is admitted that could not be recorded.
struct RecorderGone<'a>(&'a WriteHealth);

impl Drop for RecorderGone<'_> {
    fn drop(&mut self) {
        self.0.records_failing.store(true, Ordering::Release);
    }
}

/// The upstreams, parsed once.
struct Routes {
    claude: Url,
    claude_strip: Option<&'static str>,
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
        // A configured base URL that already ends in /v1 takes the agents' paths without it.
        let strip = |base: Option<&str>| {
            base.filter(|u| u.trim_end_matches('/').ends_with("/v1"))
                .map(|_| "/v1")
        };
        let claude_base = file.base_url(Provider::Claude);
        let openai_base = file.base_url(Provider::Openai);
        Ok(Routes {
            claude: parse(claude_base, ANTHROPIC_API)?,
            claude_strip: strip(claude_base),
            openai: parse(openai_base, OPENAI_API)?,
            openai_strip: strip(openai_base),
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
            records_failing: AtomicBool::new(false),
        });
        let pending = Arc::new(Pending::default());
        let lost = Arc::new(AtomicU64::new(0));
        let (queue, jobs) = channel();
        let recorder = {
            let ledger = ledger.clone();
            let writes = Arc::clone(&writes);
            let pending = Arc::clone(&pending);
            let lost = Arc::clone(&lost);
            std::thread::Builder::new()
                .name("authledger-recorder".into())
                .spawn(move || record_until_closed(&ledger, &writes, &pending, &lost, &jobs))
                .map_err(|e| GatewayError::Unavailable(format!("cannot start recorder: {e}")))?
        };
        Ok(LedgerAuthority {
            ledger,
            routes,
            queue: Mutex::new(Some(queue)),
            recorder: Mutex::new(Some(recorder)),
            writes,
            pending,
            lost,
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

    /// Usage records given up after failing for a minute (each logged with its figures).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
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
        let mut grant = match (provider, credential.kind) {
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
        if provider == Provider::Claude {
            grant.strip_prefix = self.routes.claude_strip;
        }
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
        if self.writes.records_failing() {
            return Err(GatewayError::Unavailable(
                "usage records cannot be written: the ledger is not taking writes".into(),
            ));
        }
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
        Ok(
            match self
                .ledger
                .admit_spend(lease, &self.pending.of(&lease.id))?
            {
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
            },
        )
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
    fn metrics(&self, extra: &str) -> Option<Result<String, GatewayError>> {
        let prices = crate::metrics::prices_for(self.ledger.db_path());
        Some(
            crate::metrics::render(&self.ledger, prices.as_ref(), extra)
                .map_err(GatewayError::from),
        )
    }

    fn resolve(&self, token: &str) -> Result<Option<Grant>, GatewayError> {
        match self.ledger.lease_for_token(token)? {
            Some(lease) => self.grant_for(&lease).map(Some),
            None => Ok(None),
        }
    }

    fn admit(&self, lease: &LeaseId) -> Result<Admission, GatewayError> {
        let lease = match self.ledger.lease(lease) {
            // A WebSocket admits each request on a lease resolved when it opened: the lease
            // must still be live, not past its expiry waiting for cleanup.
            Ok(lease)
                if lease.state == LeaseState::Active && lease.expires_at > self.ledger.now() =>
            {
                lease
            }
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
        if !self.writes.vouched() || self.writes.records_failing() {
            return None;
        }
        // No idle connection: the blocking pool waits for one, not the runtime.
        let (lease, record) = match self.ledger.try_lease_and_credential_for_token(token)? {
            Ok(Some(found)) => found,
            Ok(None) => return Some(Ok(None)),
            Err(e) => return Some(Err(e.into())),
        };
        let queued: i64 = self.pending.of(&lease.id).iter().map(|(_, t)| *t).sum();
        if lease.used.saturating_add(queued) >= lease.allocated {
            return None;
        }
        let grant = self.held_grant(&lease, record.as_ref())?;
        Some(Ok(Some((grant, Admission::Go))))
    }

    fn record(&self, lease: &LeaseId, metered: Metered) -> Result<(), GatewayError> {
        let record = usage_record(lease, metered)?;
        let key = record.key.clone().unwrap_or_default();
        self.pending.add(lease, &key, record.tokens());
        if self.send(Job::Usage(lease.clone(), record)) {
            Ok(())
        } else {
            self.pending.remove(lease, &key);
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
        // The account is looked up by the recorder: no read on the response path.
        let _ = self.send(Job::Health {
            lease: grant.lease_id.clone(),
            provider: grant.provider,
            status,
            headers: headers.to_vec(),
        });
    }
}

/// A metered response as the ledger stores it: `<lease>:<upstream id>` is the idempotency key
/// (a response recorded twice counts once; an upstream whose ids repeat across leases, as small
/// local servers' do, never merges two leases' records); a response without an id gets a
/// random key now, so a retried batch still counts it once.
fn usage_record(lease: &LeaseId, m: Metered) -> Result<UsageRecord, GatewayError> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let key = match m.upstream_id {
        Some(id) if !id.is_empty() && id.len() <= 160 && !id.chars().any(char::is_control) => {
            format!("{lease}:{id}")
        }
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
fn record_until_closed(
    ledger: &Ledger,
    writes: &WriteHealth,
    pending: &Pending,
    lost: &AtomicU64,
    jobs: &Receiver<Job>,
) {
    let _gone = RecorderGone(writes);
    let mut last_facts: HashMap<(Provider, Account), (Instant, u16)> = HashMap::new();
    // A lease's account never changes.
    let mut accounts: HashMap<LeaseId, Account> = HashMap::new();
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
                    lease,
                    provider,
                    status,
                    headers,
                } => health.push((lease, provider, status, headers)),
            }
        }
        if !usage.is_empty() {
            write_usage(ledger, writes, lost, &usage);
            // Written (or given up and logged): no longer pending either way.
            for (id, record) in &usage {
                pending.remove(id, record.key.as_deref().unwrap_or_default());
            }
        }
        for (lease, provider, status, headers) in health {
            let account = match accounts.get(&lease) {
                Some(account) => account.clone(),
                None => match ledger.lease(&lease) {
                    Ok(l) => {
                        // Bounded for a gateway that serves leases for months.
                        if accounts.len() >= 4_096 {
                            accounts.clear();
                        }
                        accounts.insert(lease, l.account.clone());
                        l.account
                    }
                    Err(_) => continue,
                },
            };
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

/// Writes one batch of usage, retrying a failed commit with the same keys (so nothing is
/// counted twice) for up to [`RETRY_FOR`]; while it fails, admission refuses every request.
/// A batch still failing after that is given up: each record is logged with what it takes
/// to enter it by hand, and counted in `lost`.
fn write_usage(
    ledger: &Ledger,
    writes: &WriteHealth,
    lost: &AtomicU64,
    usage: &[(LeaseId, UsageRecord)],
) {
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        match ledger.record_usage_batch(usage) {
            Ok(results) => {
                writes.took_a_write();
                writes.records_failing.store(false, Ordering::Release);
                for ((id, _), result) in usage.iter().zip(results) {
                    // A record the ledger refused on its own merits (a key reused with other
                    // figures): retrying cannot help.
                    if let Err(e) = result {
                        eprintln!("authledger gateway: usage for {id} not recorded: {e}");
                    }
                }
                return;
            }
            Err(e) => {
                writes.refused_a_write();
                writes.records_failing.store(true, Ordering::Release);
                if started.elapsed() >= RETRY_FOR {
                    eprintln!(
                        "authledger gateway: {} usage records not written after {}s: {e}",
                        usage.len(),
                        RETRY_FOR.as_secs()
                    );
                    for (id, r) in usage {
                        eprintln!(
                            "authledger gateway: lost: authledger usage record {id} --input {} \
                             --output {} --cache-read {} --cache-write {} --key {}",
                            r.input,
                            r.output,
                            r.cache_read,
                            r.cache_write,
                            r.key.as_deref().unwrap_or("-")
                        );
                    }
                    lost.fetch_add(usage.len() as u64, Ordering::Relaxed);
                    return;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}
