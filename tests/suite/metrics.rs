//! `authledger metrics` and `GET /metrics` on the gateway: OpenMetrics text that Prometheus'
//! parser reads, with the ledger's figures (windows, leases, the audit trail's counters,
//! tokens and cost per model, gateway requests) checked against what the test did.

use std::collections::BTreeMap;

use prometheus_parse::{Sample, Scrape, Value};

use crate::common::upstream::FakeUpstream;
use crate::common::{Home, code, stderr, stdout};
use crate::gateway_cli::{
    acquire, answer, client, env_of, home_in_front_of, post_messages, start_gateway, terminate,
};
use crate::prices::{TABLE, put_in_force, record};

/// Parses `text` with the Prometheus parser, after checking what that lenient parser does
/// not: every sample line is one it read, every family has `# TYPE` and `# HELP` before its
/// samples, a family with a `# UNIT` ends with it, counters' samples end `_total`, every name
/// is `authledger_…`, a histogram's samples are its `_bucket`s, `_sum` and `_count`, and the
/// text ends with `# EOF`.
fn parse(text: &str) -> Scrape {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end: {text}");
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: Vec<String> = Vec::new();
    let mut sample_lines = 0;
    let mut histograms = std::collections::BTreeSet::new();
    for line in text.lines() {
        let words: Vec<&str> = line.splitn(4, ' ').collect();
        match words.as_slice() {
            ["#", "EOF"] => {}
            ["#", "TYPE", name, kind] => {
                assert!(name.starts_with("authledger_"), "{line}");
                assert!(["gauge", "counter", "histogram"].contains(kind), "{line}");
                assert!(kinds.insert(name.to_string(), kind.to_string()).is_none());
            }
            ["#", "UNIT", name, unit] => {
                assert!(kinds.contains_key(*name), "UNIT before TYPE: {line}");
                assert!(name.ends_with(&format!("_{unit}")), "{line}");
            }
            ["#", "HELP", name, ..] => helped.push(name.to_string()),
            _ => {
                assert!(!line.starts_with('#'), "unknown comment {line}");
                let name = line.split(['{', ' ']).next().unwrap();
                let family = kinds
                    .iter()
                    .filter(|(f, _)| name.starts_with(f.as_str()))
                    .max_by_key(|(f, _)| f.len())
                    .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
                assert!(helped.contains(family.0), "no HELP for {line}");
                match family.1.as_str() {
                    "counter" => assert_eq!(name, format!("{}_total", family.0), "{line}"),
                    "histogram" => {
                        let part = &name[family.0.len()..];
                        assert!(["_bucket", "_sum", "_count"].contains(&part), "{line}");
                        if part == "_bucket" {
                            // The parser folds a series' buckets into one sample.
                            histograms.insert(family.0.clone());
                            continue;
                        }
                    }
                    _ => assert_eq!(name, family.0, "{line}"),
                }
                sample_lines += 1;
            }
        }
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parse");
    assert_eq!(
        scrape.samples.len(),
        sample_lines + histograms.len(),
        "lines the parser skipped"
    );
    scrape
}

/// The value of the one sample `name{labels}`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?} in {:#?}", scrape.samples);
    match found[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{name} is not a number"),
    }
}

fn metrics(home: &Home) -> String {
    let out = home.run(&["metrics"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn metrics_are_openmetrics_with_the_ledgers_figures() {
    let home = Home::new();
    put_in_force(&home, TABLE);
    let out = home.run(&["limits", "set", "claude", "--concurrent", "2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let grant = |tokens| {
        home.json(&[
            "lease",
            "acquire",
            "--agent",
            "coder",
            "--provider",
            "claude",
            "--tokens",
            tokens,
        ])["lease_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = grant("100000");
    grant("1000");
    // A third is over the concurrency limit: one denial.
    let denied = home.run(&[
        "lease",
        "acquire",
        "--agent",
        "coder",
        "--provider",
        "claude",
        "--tokens",
        "10",
    ]);
    assert_eq!(code(&denied), 3, "{}", stderr(&denied));
    // 36 000 tokens priced at $0.1305 by hand (see statusline.rs), one gateway-shaped
    // record, one request of a model with no price.
    record(
        &home,
        &first,
        "claude-test-1",
        ["20000", "4000", "10000", "2000"],
    );
    let out = home.run(&[
        "usage",
        "record",
        &first,
        "--model",
        "claude-test-1",
        "--input",
        "100",
        "--output",
        "0",
        "--status",
        "completed",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    record(&home, &first, "mystery-model", ["10", "5", "0", "0"]);
    let before = home.snapshot();

    let text = metrics(&home);
    let s = parse(&text);
    let claude = [("provider", "claude")];
    let day = [
        ("provider", "claude"),
        ("account", "default"),
        ("window", "day"),
    ];
    assert_eq!(value(&s, "authledger_window_used_tokens", &day), 36_115.0);
    let quota = home.json(&["quota", "--provider", "claude"]);
    assert_eq!(
        value(&s, "authledger_window_limit_tokens", &day),
        quota[0]["limit"].as_f64().unwrap()
    );
    assert_eq!(
        value(&s, "authledger_window_reserved_tokens", &day),
        quota[0]["reserved"].as_f64().unwrap()
    );
    let account = [("provider", "claude"), ("account", "default")];
    assert_eq!(value(&s, "authledger_leases_active", &account), 2.0);
    assert_eq!(
        value(&s, "authledger_leases_concurrent_limit", &account),
        2.0
    );
    assert_eq!(value(&s, "authledger_lease_grants_total", &claude), 2.0);
    assert_eq!(value(&s, "authledger_denials_total", &claude), 1.0);
    assert_eq!(value(&s, "authledger_fallbacks_total", &[]), 0.0);
    assert_eq!(value(&s, "authledger_lease_topups_total", &[]), 0.0);
    assert_eq!(value(&s, "authledger_oauth_refreshes_total", &[]), 0.0);
    let model = [("model", "claude-test-1"), ("kind", "input")];
    assert_eq!(value(&s, "authledger_model_tokens_total", &model), 20_100.0);
    let model = [("model", "claude-test-1"), ("kind", "cache_write")];
    assert_eq!(value(&s, "authledger_model_tokens_total", &model), 2_000.0);
    let model = [("model", "claude-test-1")];
    assert_eq!(value(&s, "authledger_model_requests_total", &model), 2.0);
    // $0.1305 + 100 input tokens at $3 per million.
    assert_eq!(value(&s, "authledger_model_cost_usd_total", &model), 0.1308);
    let mystery = [("model", "mystery-model")];
    assert_eq!(
        value(&s, "authledger_model_unpriced_requests_total", &mystery),
        1.0
    );
    assert!(
        !text.contains("authledger_model_cost_usd_total{model=\"mystery-model\"}"),
        "an unknown model is priced at $0: {text}"
    );
    let completed = [("provider", "claude"), ("status", "completed")];
    assert_eq!(
        value(&s, "authledger_gateway_requests_total", &completed),
        1.0
    );
    assert!(
        !text.contains("histogram"),
        "latency is the gateway's own: {text}"
    );
    assert_eq!(home.snapshot(), before, "metrics wrote to the ledger");
}

#[test]
fn metrics_without_a_ledger_is_a_clear_error_and_creates_none() {
    let home = Home::empty();
    let out = home.run(&["metrics"]);
    assert_ne!(code(&out), 0);
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("no ledger here"), "{}", stderr(&out));
    assert_eq!(code(&out), 5, "a missing ledger is a storage error");
    assert!(!home.db().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_metrics_at_slash_metrics() {
    let upstream = FakeUpstream::start().await;
    let home = home_in_front_of(&upstream);
    let lease = acquire(&home);
    let (gateway, url) = start_gateway(&home, &[]);
    let token = env_of(&home, &lease)["CLAUDE_CODE_OAUTH_TOKEN"]
        .as_str()
        .unwrap()
        .to_string();
    for n in 0..2 {
        upstream.reply(answer(&format!("msg_metrics_{n}"), 10, 2));
        let response = post_messages(&url, &token).await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    // The gateway writes its records behind the responses: scrape until both are counted.
    let completed = [("provider", "claude"), ("status", "completed")];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (headers, scrape) = loop {
        let response = client().get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        let scrape = parse(&response.text().await.unwrap());
        let counted = scrape.samples.iter().any(|s| {
            s.metric == "authledger_gateway_requests_total"
                && s.labels.get("status") == Some("completed")
                && matches!(s.value, Value::Untyped(v) | Value::Counter(v) if v == 2.0)
        });
        if counted {
            break (headers, scrape);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "records never counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert_eq!(
        value(&scrape, "authledger_gateway_requests_total", &completed),
        2.0
    );
    let model = [("model", "claude-x"), ("kind", "input")];
    assert_eq!(
        value(&scrape, "authledger_model_tokens_total", &model),
        20.0
    );
    let claude = [("provider", "claude")];
    assert_eq!(
        value(&scrape, "authledger_lease_grants_total", &claude),
        1.0
    );
    // The gateway's own latency histogram: both forwarded requests, in cumulative buckets.
    let latency = "authledger_gateway_response_header_seconds";
    assert_eq!(value(&scrape, &format!("{latency}_count"), &[]), 2.0);
    assert!(value(&scrape, &format!("{latency}_sum"), &[]) > 0.0);
    let buckets = scrape
        .samples
        .iter()
        .find_map(|s| match &s.value {
            Value::Histogram(b) if s.metric == latency => Some(b.clone()),
            _ => None,
        })
        .expect("latency histogram");
    assert_eq!(buckets.len(), 14);
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
    assert_eq!(buckets.last().unwrap().less_than, f64::INFINITY);
    assert_eq!(buckets.last().unwrap().count, 2.0);
    // Only GET /metrics: anything else there is refused like any unmetered path.
    let posted = client()
        .post(format!("{url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 404);
    terminate(&gateway);
    let out = gateway.finish();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
