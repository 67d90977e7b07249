//! Gateway overhead: the same Anthropic `/v1/messages` requests sent straight to a fake
//! upstream on 127.0.0.1 and through `authledger::gateway::serve` on a real ledger, interleaved
//! in rounds (direct, gateway, direct, gateway, …) so drift hits both sides alike.
//!
//! ```sh
//! cargo bench --bench gateway                  # the full run (about a minute)
//! BENCH_QUICK=1 cargo bench --bench gateway    # a few seconds; CI runs it, asserting no timing
//! BENCH_UPSTREAM=node cargo bench --bench gateway  # the upstream in node, as in the issue
//! LITELLM_BIN=/path/to/litellm cargo bench --bench gateway   # also LiteLLM's proxy, same upstream
//! BENCH_RECORDS=single cargo bench --bench gateway # usage one transaction per request
//! BENCH_UPSTREAM_DELAY_MS=5 cargo bench --bench gateway # an upstream that takes 5 ms per answer
//! ```
//!
//! `BENCH_UPSTREAM_DELAY_MS` makes the hyper upstream wait that long (a timer, no CPU) before
//! each answer, as a real provider's does (and far less): what the gateway's throughput ratio
//! means for agents, whose requests wait on the provider, not on the CPU.
//!
//! The default upstream is hyper in this process: it is the faster one (≈ 40,000 JSON
//! requests/s here against node's 2,000–4,000), so it adds the least to every figure; the
//! throughput ratio against it is the gateway's cost beside an upstream that costs almost
//! nothing, a harder test than the issue's node upstream.
//!
//! Measured at concurrency 1 and 16, JSON and SSE: latency to the last byte (p50, p99, and the
//! gateway's added time at each percentile), time to the first SSE event, requests/s; then
//! every gateway request's usage is checked in the ledger (row count and token sum), and the
//! bench fails loudly if any is missing. Last, the peak RSS of `authledger run` with a child
//! making requests through `$ANTHROPIC_BASE_URL`. Figures go to stdout as a table beside the
//! issue's targets, and to `target/bench/gateway.json`.
//!
//! Threads: the fake upstream, the gateway and the load each run on their own current-thread
//! tokio runtime (the gateway's like `run`'s), all sharing the machine's cores.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use authledger::gateway::HostedGateway;
use authledger::{
    Account, AcquireRequest, AgentId, Credential, KeySource, LeaseId, Ledger, LedgerConfig,
    LimitsUpdate, Provider, Secret,
};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use url::Url;

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0")
}

// ---------- the fake upstream ----------

/// Usage every fake response reports, as Anthropic reports it.
const INPUT: u64 = 1_200;
const OUTPUT: u64 = 300;
const CACHE_READ: u64 = 4_000;
const CACHE_WRITE: u64 = 150;
const PER_REQUEST: u64 = INPUT + OUTPUT + CACHE_READ + CACHE_WRITE;
/// Text deltas per SSE response (a short answer of a few hundred tokens).
const DELTAS: usize = 40;

/// The one real credential the fake upstream accepts.
const API_KEY: &str = "sk-ant-api03-bench-key-000000000000";

/// Each response's id, unique so the ledger's idempotency keys differ.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn json_reply(id: u64) -> Bytes {
    let text = "The function returns early when the lease has ended. ".repeat(12);
    Bytes::from(
        json!({
            "id": format!("msg_bench_{id:08}"),
            "type": "message",
            "role": "assistant",
            "model": "claude-bench-4",
            "content": [{ "type": "text", "text": text }],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {
                "input_tokens": INPUT,
                "cache_creation_input_tokens": CACHE_WRITE,
                "cache_read_input_tokens": CACHE_READ,
                "output_tokens": OUTPUT,
                "service_tier": "standard"
            }
        })
        .to_string(),
    )
}

/// An Anthropic stream, one frame per event: `message_start`, a text block of `DELTAS`
/// deltas, `message_delta` with the cumulative usage, `message_stop`.
fn sse_reply(id: u64) -> VecDeque<Bytes> {
    let event = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let mut frames = VecDeque::with_capacity(DELTAS + 6);
    frames.push_back(event(
        "message_start",
        json!({"type":"message_start","message":{"id":format!("msg_bench_{id:08}"),
            "type":"message","role":"assistant","model":"claude-bench-4","content":[],
            "stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":INPUT,
            "cache_creation_input_tokens":CACHE_WRITE,"cache_read_input_tokens":CACHE_READ,
            "output_tokens":1}}}),
    ));
    frames.push_back(event(
        "content_block_start",
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    ));
    frames.push_back(Bytes::from_static(
        b"event: ping\ndata: {\"type\": \"ping\"}\n\n",
    ));
    for i in 0..DELTAS {
        frames.push_back(event(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,
                "delta":{"type":"text_delta","text":format!("returns early ({i}) when the lease ended; ")}}),
        ));
    }
    frames.push_back(event(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    ));
    frames.push_back(event(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},
            "usage":{"input_tokens":INPUT,"cache_creation_input_tokens":CACHE_WRITE,
            "cache_read_input_tokens":CACHE_READ,"output_tokens":OUTPUT}}),
    ));
    frames.push_back(event("message_stop", json!({"type":"message_stop"})));
    frames
}

/// A body of frames all ready at once: the upstream answers instantly.
struct Frames(VecDeque<Bytes>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// The hyper upstream's wait before each answer (`BENCH_UPSTREAM_DELAY_MS`, default none).
fn upstream_delay() -> Option<Duration> {
    std::env::var("BENCH_UPSTREAM_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

async fn upstream_answer(req: Request<Incoming>) -> Result<Response<Frames>, Infallible> {
    if let Some(delay) = upstream_delay() {
        tokio::time::sleep(delay).await;
    }
    let authorized = req
        .headers()
        .get("x-api-key")
        .is_some_and(|v| v.as_bytes() == API_KEY.as_bytes());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut response = Response::new(Frames(VecDeque::new()));
    if !authorized {
        *response.status_mut() = hyper::StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let stream = memchr::memmem::find(&body, b"\"stream\":true").is_some();
    let (content_type, frames) = if stream {
        ("text/event-stream", sse_reply(id))
    } else {
        ("application/json", VecDeque::from([json_reply(id)]))
    };
    if !stream {
        response
            .headers_mut()
            .insert("content-length", frames[0].len().into());
    }
    response
        .headers_mut()
        .insert("content-type", content_type.parse().expect("content type"));
    response
        .headers_mut()
        .insert("request-id", format!("req_bench_{id}").parse().expect("id"));
    *response.body_mut() = Frames(frames);
    Ok(response)
}

/// Starts the fake upstream on its own thread and runtime; returns its address.
fn start_upstream() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    listener.set_nonblocking(true).expect("nonblocking");
    spawn_named("upstream", move || {
        let runtime = current_thread();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            TokioIo::new(stream),
                            hyper::service::service_fn(upstream_answer),
                        )
                        .await;
                });
            }
        });
    });
    addr
}

/// The node upstream (`BENCH_UPSTREAM=node`, the kind the issue's figures were taken with):
/// the same answers from `benches/fake_upstream.js`. Returns the process and its address.
fn start_node_upstream() -> (std::process::Child, SocketAddr) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fake_upstream.js");
    let mut child = Command::new(std::env::var_os("NODE").unwrap_or_else(|| "node".into()))
        .arg(script)
        .args([INPUT, OUTPUT, CACHE_READ, CACHE_WRITE].map(|n| n.to_string()))
        .arg(API_KEY)
        .arg(DELTAS.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn node (set NODE to its path)");
    let mut line = String::new();
    let mut out = child.stdout.take().expect("node stdout");
    let mut byte = [0u8; 1];
    while out.read(&mut byte).expect("node port") == 1 && byte[0] != b'\n' {
        line.push(char::from(byte[0]));
    }
    let port: u16 = line.trim().parse().expect("node printed its port");
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A thread named for profiles (`perf report --sort comm`).
fn spawn_named<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawn thread")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

// ---------- the ledger and its authority ----------

/// A real ledger in `dir` (the layout `AUTHLEDGER_HOME=dir` uses), with an API key for claude
/// and no limit the bench would hit; `config.toml` points claude at the fake upstream.
fn prepare_ledger(dir: &Path, upstream: SocketAddr) -> Ledger {
    std::fs::write(
        dir.join("config.toml"),
        format!("[providers.claude]\nbase_url = \"http://{upstream}\"\n"),
    )
    .expect("config.toml");
    let file =
        authledger::config_file::ConfigFile::load(&dir.join("config.toml")).expect("config.toml");
    let ledger = Ledger::open(
        LedgerConfig::new(dir.join("ledger.db"))
            .with_key(KeySource::File(dir.join("keys").join("master.key")))
            .with_file_config(file),
    )
    .expect("open ledger");
    ledger
        .store_credential(&Credential::api_key(
            Provider::Claude,
            Account::default(),
            Secret::new(API_KEY.into()),
            "stdin",
        ))
        .expect("credential");
    ledger
        .set_limits(
            Provider::Claude,
            &Account::default(),
            &LimitsUpdate {
                daily_tokens: Some(authledger::types::MAX_TOKENS / 10),
                concurrent: Some(1_000),
                rpm: Some(None),
                tpm: Some(None),
                ..LimitsUpdate::default()
            },
        )
        .expect("limits");
    ledger
}

// ---------- the load ----------

/// A request body of a realistic size: a system prompt and a few turns (about 2.3 KB).
fn request_body(stream: bool) -> Bytes {
    let turn = "Please look at src/gateway/proxy.rs and explain what happens when the lease \
                ends while a stream is open; keep the answer short. ";
    Bytes::from(
        json!({
            "model": "claude-bench-4",
            "max_tokens": 1024,
            "stream": stream,
            "system": "You are a careful reviewer of Rust code. ".repeat(10),
            "messages": [
                { "role": "user", "content": turn.repeat(6) },
                { "role": "assistant", "content": "Certainly. ".repeat(20) },
                { "role": "user", "content": turn.repeat(4) },
            ]
        })
        // Compact: the upstream tells a stream by the exact text `"stream":true`.
        .to_string(),
    )
}

/// Where one side sends its requests and with which key.
#[derive(Clone)]
struct Side {
    name: &'static str,
    url: String,
    key: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Sse,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Json => "JSON",
            Kind::Sse => "SSE",
        }
    }
}

/// One request's timings in microseconds: to the first body chunk and to the last byte.
struct Sample {
    first_us: f64,
    last_us: f64,
    bytes: usize,
}

async fn one(client: &reqwest::Client, side: &Side, body: &Bytes) -> Sample {
    let t = Instant::now();
    let mut response = client
        .post(&side.url)
        .header("x-api-key", &side.key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} request failed: {e}", side.name));
    let status = response.status();
    let mut first_us = None;
    let mut bytes = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .unwrap_or_else(|e| panic!("{} body failed: {e}", side.name))
    {
        first_us.get_or_insert_with(|| t.elapsed().as_secs_f64() * 1e6);
        bytes += chunk.len();
    }
    let last_us = t.elapsed().as_secs_f64() * 1e6;
    assert!(
        status.is_success(),
        "{} answered {status} ({bytes} bytes)",
        side.name
    );
    Sample {
        first_us: first_us.unwrap_or(last_us),
        last_us,
        bytes,
    }
}

/// Timings of one side at one concurrency and kind, gathered over the rounds.
#[derive(Default)]
struct Series {
    first_us: Vec<f64>,
    last_us: Vec<f64>,
    secs: f64,
    bytes: Vec<usize>,
    /// CPU time the gateway's threads spent on these requests (gateway side only).
    cpu_ns: u64,
}

impl Series {
    fn rate(&self) -> f64 {
        self.last_us.len() as f64 / self.secs.max(1e-9)
    }
}

/// `n` requests from `concurrency` tasks at once; appends to `into`.
async fn batch(
    client: &reqwest::Client,
    side: &Side,
    body: &Bytes,
    concurrency: usize,
    n: usize,
    into: &mut Series,
) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|k| {
            let (client, side, body) = (client.clone(), side.clone(), body.clone());
            let count = n / concurrency + usize::from(k < n % concurrency);
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(count);
                for _ in 0..count {
                    out.push(one(&client, &side, &body).await);
                }
                out
            })
        })
        .collect();
    for task in tasks {
        for s in task.await.expect("load task") {
            into.first_us.push(s.first_us);
            into.last_us.push(s.last_us);
            into.bytes.push(s.bytes);
        }
    }
    into.secs += start.elapsed().as_secs_f64();
}

#[derive(Debug, Clone, Copy, Default)]
struct Lat {
    p50: f64,
    p99: f64,
}

fn summarize(us: &[f64]) -> Lat {
    let mut us = us.to_vec();
    if us.is_empty() {
        return Lat::default();
    }
    us.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize];
    Lat {
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Requests per side per round.
struct Plan {
    rounds: usize,
    per_round: usize,
    /// LiteLLM is ~100× slower; it gets this many per round.
    litellm_per_round: usize,
}

fn plan(concurrency: usize) -> Plan {
    match (quick(), concurrency) {
        (true, 1) => Plan {
            rounds: 3,
            per_round: 60,
            litellm_per_round: 5,
        },
        (true, _) => Plan {
            rounds: 3,
            per_round: 320,
            litellm_per_round: 32,
        },
        (false, 1) => Plan {
            rounds: 10,
            per_round: 400,
            litellm_per_round: 20,
        },
        (false, _) => Plan {
            rounds: 10,
            per_round: 3_200,
            litellm_per_round: 64,
        },
    }
}

/// One configuration (concurrency, kind): every side in turn, round after round.
async fn measure(
    client: &reqwest::Client,
    sides: &[Side],
    concurrency: usize,
    kind: Kind,
) -> Vec<Series> {
    let body = request_body(kind == Kind::Sse);
    let p = plan(concurrency);
    let mut series: Vec<Series> = sides.iter().map(|_| Series::default()).collect();
    // Warm every connection pool first.
    for side in sides {
        batch(
            client,
            side,
            &body,
            concurrency,
            concurrency * 4,
            &mut Series::default(),
        )
        .await;
    }
    for _ in 0..p.rounds {
        for (side, into) in sides.iter().zip(series.iter_mut()) {
            let n = if side.name == "litellm" {
                p.litellm_per_round
            } else {
                p.per_round
            };
            let cpu = gateway_cpu_ns();
            batch(client, side, &body, concurrency, n, into).await;
            if side.name == "gateway" {
                into.cpu_ns += gateway_cpu_ns().saturating_sub(cpu);
            }
        }
    }
    series
}

/// CPU time so far of the gateway's threads in this process (its runtime and blocking pool,
/// its recorder: every thread named `authledger-…`), in ns, from /proc's schedstat: a figure
/// the other helpers' load on a shared machine does not move much, unlike wall-clock rates.
fn gateway_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            if !comm.starts_with("authledger-") {
                return None;
            }
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

// ---------- usage check ----------

/// Waits until the ledger holds a usage row for every gateway request, then checks the count
/// and the token sum. Panics (failing the bench) when any is missing or wrong.
fn check_usage(dir: &Path, lease: &LeaseId, requests: u64, failed: u64) -> Value {
    let db = rusqlite::Connection::open(dir.join("ledger.db")).expect("open for checking");
    db.busy_timeout(Duration::from_secs(5)).expect("busy");
    let count = || -> (u64, u64) {
        db.query_row(
            "SELECT count(*), coalesce(sum(input + output + cache_read + cache_write), 0)
             FROM usage_events WHERE lease_id = ?1",
            [lease.as_str()],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .expect("count usage")
    };
    // Records still queued keep landing; give up once none has landed for 3 s.
    let start = Instant::now();
    let mut seen = count();
    let mut moved = Instant::now();
    while seen.0 < requests && moved.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        let now = count();
        if now != seen {
            moved = Instant::now();
        }
        seen = now;
    }
    let drain_s = start.elapsed().as_secs_f64();
    let ok = seen == (requests, requests * PER_REQUEST) && failed == 0;
    assert!(
        ok,
        "USAGE NOT COMMITTED: {requests} gateway requests should give {requests} rows and {} \
         tokens; the ledger has {} rows and {} tokens ({failed} records failed)",
        requests * PER_REQUEST,
        seen.0,
        seen.1
    );
    json!({ "requests": requests, "rows": seen.0, "tokens": seen.1, "drain_after_load_s": drain_s })
}

// ---------- `run`'s peak RSS ----------

/// The agent `run` starts for the RSS figure: a few requests through `$ANTHROPIC_BASE_URL`
/// with `$ANTHROPIC_API_KEY` (plain HTTP/1.1 over std, so the agent itself stays small), then
/// its parent's (`run`'s) peak RSS from /proc, printed.
fn agent_child() {
    let base = std::env::var("ANTHROPIC_BASE_URL").expect("ANTHROPIC_BASE_URL");
    let key = std::env::var("ANTHROPIC_API_KEY").expect("ANTHROPIC_API_KEY");
    let url = Url::parse(&base).expect("base url");
    let host = url.host_str().expect("host");
    let port = url.port().unwrap_or(80);
    let prefix = url.path().trim_end_matches('/');
    for stream in [false, true, false, true, false] {
        let body = request_body(stream);
        let mut conn = std::net::TcpStream::connect((host, port)).expect("connect");
        write!(
            conn,
            "POST {prefix}/v1/messages HTTP/1.1\r\nhost: {host}:{port}\r\nx-api-key: {key}\r\n\
             anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .expect("write head");
        conn.write_all(&body).expect("write body");
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).expect("read answer");
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "agent request failed: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
    let status = std::fs::read_to_string(format!(
        "/proc/{}/status",
        std::os::unix::process::parent_id()
    ))
    .unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().to_string())
        .unwrap_or_default();
    println!("{hwm}");
}

/// `authledger run` with [`agent_child`] as its agent: `run`'s own peak RSS (read by the agent)
/// and wait4's peak for `run` and its waited-for descendants.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4 below, which also gives its rusage"
)]
fn run_rss(home: &Path) -> Value {
    let child = Command::new(env!("CARGO_BIN_EXE_authledger"))
        .env("AUTHLEDGER_HOME", home)
        .env_remove("AUTHLEDGER_MASTER_KEY")
        .args([
            "run",
            "--agent",
            "x",
            "--provider",
            "claude",
            "--tokens",
            "100000",
        ])
        .arg("--")
        .arg(std::env::current_exe().expect("current exe"))
        .arg("--agent-child")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn run");
    let pid = child.id() as libc::pid_t;
    let mut out = String::new();
    child
        .stdout
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("agent output");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped (std reaps only on wait, never on drop).
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 on run");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "authledger run failed (status {status})"
    );
    let own: i64 = out.trim().parse().unwrap_or(0);
    json!({ "run_vmhwm_kb": own, "wait4_maxrss_kb": usage.ru_maxrss })
}

// ---------- LiteLLM (optional, never in CI) ----------

/// The key agents give LiteLLM (it refuses to start without one).
const LITELLM_KEY: &str = "sk-litellm-bench-6f1d2c9a8b7e4d3c2b1a0f9e8d7c6b5a";

/// LiteLLM's proxy (one worker, no database) in front of the same fake upstream, when
/// `LITELLM_BIN` names its executable. Returns the process and its base URL.
fn start_litellm(upstream: SocketAddr, dir: &Path) -> Option<(std::process::Child, String)> {
    let bin = std::env::var_os("LITELLM_BIN")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: claude-bench-4\n    litellm_params:\n      \
             model: anthropic/claude-bench-4\n      api_base: http://{upstream}\n      \
             api_key: {API_KEY}\ngeneral_settings:\n  master_key: {LITELLM_KEY}\n"
        ),
    )
    .expect("litellm config");
    let child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--num_workers", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn litellm");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "litellm did not start in 120 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    Some((child, url))
}

/// Peak RSS (VmHWM) of a process and all its descendants, summed, in KB.
fn tree_vmhwm_kb(root: u32) -> u64 {
    let mut total = 0;
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        todo.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    total
}

// ---------- report ----------

struct Row {
    figure: String,
    target: String,
    measured: String,
    pass: Option<bool>,
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1e3)
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--agent-child") {
        agent_child();
        return;
    }
    let quick = quick();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "authledger gateway benchmark ({} mode, {cores} cores)",
        if quick { "quick" } else { "full" }
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let node = std::env::var("BENCH_UPSTREAM").is_ok_and(|v| v == "node");
    let (mut node_upstream, upstream) = if node {
        let (child, addr) = start_node_upstream();
        (Some(child), addr)
    } else {
        (None, start_upstream())
    };
    println!(
        "fake upstream: {}",
        if node {
            "node (benches/fake_upstream.js)"
        } else {
            "hyper, in this process"
        }
    );
    if let Some(delay) = upstream_delay().filter(|_| !node) {
        println!("upstream answers after {} ms", delay.as_millis());
    }
    let ledger = Arc::new(prepare_ledger(dir.path(), upstream));

    // `run` first, before any large child (LiteLLM) could count in wait4's figure.
    let rss = run_rss(dir.path());

    let lease = ledger
        .acquire(
            &AcquireRequest::new(AgentId::new("bench").expect("agent"), Provider::Claude)
                .tokens(authledger::types::MAX_TOKENS / 100)
                .ttl(Duration::from_secs(3_600)),
        )
        .expect("acquire");
    let token = ledger.issue_lease_token(&lease.id).expect("lease token");
    // The gateway `run` hosts: the ledger as its authority, on one current-thread runtime.
    let hosted = HostedGateway::start(
        Ledger::clone(&ledger),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        1,
    )
    .expect("gateway");
    let gateway = hosted.addr();

    let mut sides = vec![
        Side {
            name: "direct",
            url: format!("http://{upstream}/v1/messages"),
            key: API_KEY.into(),
        },
        Side {
            name: "gateway",
            url: format!("http://{gateway}/v1/messages"),
            key: token.expose_secret().to_string(),
        },
    ];
    let litellm = start_litellm(upstream, dir.path());
    if let Some((_, url)) = &litellm {
        sides.push(Side {
            name: "litellm",
            url: format!("{url}/v1/messages"),
            key: LITELLM_KEY.into(),
        });
    }

    // The load runs on its own thread and runtime.
    let load_sides = sides.clone();
    let results = spawn_named("load", move || {
        current_thread().block_on(async move {
            let client = reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(64)
                .build()
                .expect("client");
            let mut out = Vec::new();
            for concurrency in [1, 16] {
                for kind in [Kind::Json, Kind::Sse] {
                    let series = measure(&client, &load_sides, concurrency, kind).await;
                    out.push((concurrency, kind, series));
                }
            }
            out
        })
    })
    .join()
    .expect("load thread");

    let litellm_rss = litellm.map(|(mut child, _)| {
        let kb = tree_vmhwm_kb(child.id());
        let _ = child.kill();
        let _ = child.wait();
        kb
    });

    if let Some(child) = node_upstream.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }

    // Every gateway request (the measured ones and the warm-up) must be in the ledger.
    let gateway_requests: u64 = results
        .iter()
        .map(|(c, _, s)| (s[1].last_us.len() + c * 4) as u64)
        .sum();
    hosted.flush();
    let usage = check_usage(dir.path(), &lease.id, gateway_requests, 0);
    let lease_after = ledger.lease(&lease.id).expect("lease");
    assert_eq!(
        lease_after.used as u64,
        gateway_requests * PER_REQUEST,
        "USAGE NOT COMMITTED: the lease's used tokens"
    );

    // The bodies went through whole.
    for (c, kind, s) in &results {
        let sizes = |i: usize| (s[i].bytes.iter().min(), s[i].bytes.iter().max());
        assert_eq!(
            sizes(0),
            sizes(1),
            "c={c} {}: the gateway changed body sizes",
            kind.name()
        );
    }

    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for (c, kind, s) in &results {
        let (d, g) = (&s[0], &s[1]);
        let (dl, gl) = (summarize(&d.last_us), summarize(&g.last_us));
        let (df, gf) = (summarize(&d.first_us), summarize(&g.first_us));
        let lite = s
            .get(2)
            .map(|l| (summarize(&l.last_us), summarize(&l.first_us), l.rate()));
        let (p50_target, p99_target) = if *c == 1 {
            (500.0, 1_500.0)
        } else {
            (1_000.0, 3_000.0)
        };
        let added50 = gl.p50 - dl.p50;
        let added99 = gl.p99 - dl.p99;
        let lite_note = |v: Option<f64>| {
            v.map(|v| format!("; LiteLLM {}", ms(v)))
                .unwrap_or_default()
        };
        rows.push(Row {
            figure: format!("c={c} {}: added p50 to last byte", kind.name()),
            target: "≤ ".to_string() + &ms(p50_target),
            measured: format!(
                "{} (direct {}, gateway {}{})",
                ms(added50),
                ms(dl.p50),
                ms(gl.p50),
                lite_note(lite.map(|l| l.0.p50 - dl.p50))
            ),
            pass: Some(added50 <= p50_target),
        });
        rows.push(Row {
            figure: format!("c={c} {}: added p99 to last byte", kind.name()),
            target: "≤ ".to_string() + &ms(p99_target),
            measured: format!(
                "{} (direct {}, gateway {}{})",
                ms(added99),
                ms(dl.p99),
                ms(gl.p99),
                lite_note(lite.map(|l| l.0.p99 - dl.p99))
            ),
            pass: Some(added99 <= p99_target),
        });
        if *kind == Kind::Sse {
            let added = gf.p50 - df.p50;
            rows.push(Row {
                figure: format!("c={c} SSE: added p50 to first event"),
                target: if *c == 1 {
                    "≤ 0.50 ms".into()
                } else {
                    String::new()
                },
                measured: format!(
                    "{} (direct {}, gateway {}{})",
                    ms(added),
                    ms(df.p50),
                    ms(gf.p50),
                    lite_note(lite.map(|l| l.1.p50 - df.p50))
                ),
                pass: (*c == 1).then_some(added <= 500.0),
            });
        }
        let cpu_us = g.cpu_ns as f64 / 1e3 / g.last_us.len().max(1) as f64;
        rows.push(Row {
            figure: format!("c={c} {}: gateway CPU per request", kind.name()),
            target: String::new(),
            measured: format!("{cpu_us:.0} µs (all its threads)"),
            pass: None,
        });
        if *c == 16 {
            let ratio = g.rate() / d.rate().max(1e-9);
            rows.push(Row {
                figure: format!("c=16 {}: gateway / direct rate", kind.name()),
                target: "≥ 0.80×".into(),
                measured: format!(
                    "{ratio:.2}× ({:.0} / {:.0} req/s{})",
                    g.rate(),
                    d.rate(),
                    lite.map(|l| format!("; LiteLLM {:.0} req/s", l.2))
                        .unwrap_or_default()
                ),
                pass: Some(ratio >= 0.8),
            });
        }
        figures.push(json!({
            "concurrency": c, "kind": kind.name(),
            "direct": { "p50_us": dl.p50, "p99_us": dl.p99, "first_p50_us": df.p50, "first_p99_us": df.p99, "req_per_s": d.rate(), "n": d.last_us.len() },
            "gateway": { "p50_us": gl.p50, "p99_us": gl.p99, "first_p50_us": gf.p50, "first_p99_us": gf.p99, "req_per_s": g.rate(), "n": g.last_us.len() },
            "litellm": lite.map(|l| json!({ "p50_us": l.0.p50, "p99_us": l.0.p99, "first_p50_us": l.1.p50, "req_per_s": l.2, "n": s[2].last_us.len() })),
            "gateway_cpu_us_per_request": cpu_us,
            "added_p50_us": added50, "added_p99_us": added99, "added_first_p50_us": gf.p50 - df.p50,
        }));
    }
    rows.push(Row {
        figure: "usage committed (rows / tokens)".into(),
        target: "all".into(),
        measured: format!(
            "{} / {} of {} requests, in ledger {:.1} s after load",
            usage["rows"],
            usage["tokens"],
            usage["requests"],
            usage["drain_after_load_s"].as_f64().unwrap_or(0.0)
        ),
        pass: Some(true),
    });
    let run_kb = rss["run_vmhwm_kb"].as_i64().unwrap_or(0);
    rows.push(Row {
        figure: "peak RSS of `run` (its own; wait4)".into(),
        target: "≤ 20 MB".into(),
        measured: format!(
            "{:.1} MB; {:.1} MB{}",
            run_kb as f64 / 1024.0,
            rss["wait4_maxrss_kb"].as_i64().unwrap_or(0) as f64 / 1024.0,
            litellm_rss
                .map(|kb| format!("; LiteLLM {:.0} MB", kb as f64 / 1024.0))
                .unwrap_or_default()
        ),
        pass: Some(run_kb > 0 && run_kb <= 20 * 1024),
    });

    let width = rows
        .iter()
        .map(|r| r.figure.chars().count())
        .max()
        .unwrap_or(0);
    for r in &rows {
        let verdict = match r.pass {
            Some(true) => "pass",
            Some(false) => "MISS",
            None => "",
        };
        println!(
            "{:<width$}  {:<10} {verdict:<4}  {}",
            r.figure, r.target, r.measured
        );
    }

    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out_dir);
    let results = json!({
        "cores": cores, "quick": quick, "upstream": if node { "node" } else { "hyper" }, "figures": figures, "usage": usage,
        "run_rss": rss, "litellm_rss_kb": litellm_rss,
    });
    let file = if node {
        "gateway-node.json"
    } else {
        "gateway.json"
    };
    let _ = std::fs::write(
        out_dir.join(file),
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    );
    println!("wrote {}", out_dir.join(file).display());
}
