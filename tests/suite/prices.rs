//! Money: the prices in force (built in, or put in force by `prices update`), and the costs
//! `usage --cost`, `quota` and `status` show, checked against figures computed by hand.

use crate::common::{Home, assert_refused, code, stderr};

/// A price table of our own, so the hand-computed figures do not move when the built-in
/// snapshot does: $3 / $15 per million, $3.75 to write and $0.30 to read the cache, and
/// $6 / $22.50 / $7.50 / $0.60 past 200k prompt tokens.
pub(crate) const TABLE: &str = r#"{
  "_snapshot": {"date": "2026-10-01", "source": "hand-made test table"},
  "claude-test-1": {
    "litellm_provider": "anthropic", "mode": "chat",
    "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
    "cache_creation_input_token_cost": 3.75e-06, "cache_read_input_token_cost": 3e-07,
    "input_cost_per_token_above_200k_tokens": 6e-06,
    "output_cost_per_token_above_200k_tokens": 2.25e-05,
    "cache_creation_input_token_cost_above_200k_tokens": 7.5e-06,
    "cache_read_input_token_cost_above_200k_tokens": 6e-07
  },
  "gemini-not-kept": {"litellm_provider": "vertex_ai",
    "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}
}"#;

pub(crate) fn lease(home: &Home, agent: &str) -> String {
    let v = home.json(&[
        "lease",
        "acquire",
        "--agent",
        agent,
        "--provider",
        "claude",
        "--tokens",
        "1000",
    ]);
    v["lease_id"].as_str().unwrap().to_string()
}

pub(crate) fn record(home: &Home, lease: &str, model: &str, figures: [&str; 4]) {
    let [input, output, read, write] = figures;
    let out = home.run(&[
        "usage",
        "record",
        lease,
        "--model",
        model,
        "--input",
        input,
        "--output",
        output,
        "--cache-read",
        read,
        "--cache-write",
        write,
    ]);
    assert_eq!(code(&out), 0, "usage record: {}", stderr(&out));
}

pub(crate) fn put_in_force(home: &Home, text: &str) -> std::path::PathBuf {
    let file = home.path().join("table.json");
    std::fs::write(&file, text).unwrap();
    let out = home.run(&["prices", "update", "--from", file.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "prices update: {}", stderr(&out));
    file
}

fn row<'a>(rows: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row {key}: {rows:#}"))
}

#[test]
fn usage_cost_matches_hand_computed_figures_for_each_pricing_rule() {
    let home = Home::new();
    put_in_force(&home, TABLE);
    let a = lease(&home, "plain");
    let b = lease(&home, "cached");
    let c = lease(&home, "long");
    let d = lease(&home, "mystery");
    // Plain: 1 000 × $3/M + 500 × $15/M = $0.0105.
    record(&home, &a, "claude-test-1", ["1000", "500", "0", "0"]);
    // Cache: 100 × $3/M + 200 × $15/M + 50 000 × $0.30/M + 10 000 × $3.75/M = $0.0558.
    record(&home, &b, "claude-test-1", ["100", "200", "50000", "10000"]);
    // Long context, dated name: a prompt of 100 001 + 60 000 + 40 000 > 200k, so the whole
    // request is at the tier: 100 001 × $6/M + 1 000 × $22.50/M + 60 000 × $0.60/M
    // + 40 000 × $7.50/M = $0.958506.
    record(
        &home,
        &c,
        "claude-test-1-20261001",
        ["100001", "1000", "60000", "40000"],
    );
    // Exactly 200k is not past the threshold: 100 000 × $3/M + 1 000 × $15/M
    // + 60 000 × $0.30/M + 40 000 × $3.75/M = $0.483.
    record(
        &home,
        &c,
        "claude-test-1",
        ["100000", "1000", "60000", "40000"],
    );
    // Unknown models, never $0.
    record(&home, &d, "claude-unheard-of", ["1000", "1000", "0", "0"]);
    record(&home, &d, "gemini-not-kept", ["1000", "1000", "0", "0"]);

    let by_agent = home.json(&["usage", "--by", "agent", "--cost"]);
    let cost = |key: &str| {
        let r = row(&by_agent, key);
        (
            r["cost_usd"].as_str().unwrap().to_string(),
            r["cost_micro_usd"].as_i64().unwrap(),
            r["unknown_model_requests"].as_i64().unwrap(),
        )
    };
    assert_eq!(cost("plain"), ("0.010500".into(), 10_500, 0));
    assert_eq!(cost("cached"), ("0.055800".into(), 55_800, 0));
    assert_eq!(cost("long"), ("1.441506".into(), 1_441_506, 0));
    assert_eq!(cost("mystery"), ("0.000000".into(), 0, 2));

    // By model: the dated name is its own row, priced by the undated entry.
    let by_model = home.json(&["usage", "--by", "model", "--cost"]);
    assert_eq!(
        row(&by_model, "claude-test-1-20261001")["cost_micro_usd"],
        958_506
    );
    assert_eq!(
        row(&by_model, "claude-unheard-of")["unknown_model_requests"],
        1
    );

    // By session (lease): the long-context lease's two requests.
    let by_session = home.json(&["usage", "--by", "session", "--cost"]);
    assert_eq!(row(&by_session, &c)["cost_usd"], "1.441506");
    assert_eq!(row(&by_session, &c)["requests"], 2);

    // The human total says it is a lower bound and why.
    let out = home.run(&["usage", "--by", "agent", "--cost"]);
    let text = crate::common::stdout(&out);
    assert!(
        text.contains(
            "cost ≥ $1.51 (prices of 2026-10-01); 2 requests of unknown models not priced"
        ),
        "{text}"
    );
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "{line}");
    }
    // Without --cost, the JSON rows are as before.
    let plain = home.json(&["usage", "--by", "agent"]);
    assert!(row(&plain, "plain").get("cost_usd").is_none());
}

#[test]
fn quota_and_status_show_todays_cost_per_account() {
    let home = Home::new();
    put_in_force(&home, TABLE);
    let a = lease(&home, "plain");
    record(&home, &a, "claude-test-1", ["1000", "500", "0", "0"]);
    record(&home, &a, "nobody-knows", ["1", "1", "0", "0"]);
    let quota = home.json(&["quota"]);
    let claude = quota
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["provider"] == "claude")
        .unwrap();
    assert_eq!(claude["cost_today"]["cost_usd"], "0.010500");
    assert_eq!(claude["cost_today"]["cost_micro_usd"], 10_500);
    assert_eq!(claude["cost_today"]["unknown_model_requests"], 1);
    let status = home.json(&["status"]);
    let openai = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["provider"] == "openai")
        .unwrap();
    assert_eq!(openai["quota"]["cost_today"]["cost_micro_usd"], 0);
    for cmd in ["quota", "status"] {
        let text = crate::common::stdout(&home.run(&[cmd]));
        assert!(
            text.contains("cost today (UTC): claude/default ≥ $0.01"),
            "{cmd}: {text}"
        );
    }
}

#[test]
fn the_builtin_prices_are_in_force_until_an_update() {
    let home = Home::new();
    let shown = home.json(&["prices", "show", "--model", "claude-sonnet-4-5-20250929"]);
    assert_eq!(shown["file"], serde_json::Value::Null);
    assert!(shown["source"].as_str().unwrap().contains("LiteLLM"));
    let m = &shown["models"][0];
    assert_eq!(m["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(m["input_usd_per_mtok"], "3");
    assert_eq!(m["output_usd_per_mtok"], "15");
    assert_eq!(m["cache_write_usd_per_mtok"], "3.75");
    assert_eq!(m["cache_read_usd_per_mtok"], "0.3");
    // Costs with the built-in table: 1 000 × $3/M + 1 000 × $15/M = $0.018.
    let a = lease(&home, "a");
    record(&home, &a, "claude-sonnet-4-5", ["1000", "1000", "0", "0"]);
    let rows = home.json(&["usage", "--by", "agent", "--cost"]);
    assert_eq!(row(&rows, "a")["cost_micro_usd"], 18_000);
    let out = home.run(&["prices", "show", "--model", "claude-unheard-of"]);
    assert_refused(&out, 2, &["claude-unheard-of"], "an unknown model");
}

#[test]
fn prices_update_replaces_the_table_and_a_bad_file_changes_nothing() {
    let home = Home::new();
    put_in_force(&home, TABLE);
    let in_force = home.db().with_extension("db.prices.json");
    let before = std::fs::read(&in_force).unwrap();
    let shown = home.json(&["prices"]);
    assert_eq!(shown["date"], "2026-10-01");
    assert_eq!(shown["source"], "hand-made test table");
    assert_eq!(shown["models"].as_array().unwrap().len(), 1);
    assert_eq!(shown["models"][0]["tiers"][0]["above_tokens"], 200_000);

    let bad = home.path().join("bad.json");
    for (text, needle) in [
        ("{ not json", "not a price table"),
        (
            r#"{"claude-x": {"input_cost_per_token": -1, "output_cost_per_token": 1}}"#,
            "claude-x",
        ),
        (
            r#"{"gemini": {"litellm_provider": "vertex_ai"}}"#,
            "no anthropic",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let out = home.run(&["prices", "update", "--from", bad.to_str().unwrap()]);
        assert_refused(&out, 2, &["price table", needle], text);
        assert_eq!(std::fs::read(&in_force).unwrap(), before, "{text}");
    }
    let missing = home.path().join("missing.json");
    let out = home.run(&["prices", "update", "--from", missing.to_str().unwrap()]);
    assert_refused(&out, 2, &["cannot read"], "a missing file");
    assert_eq!(std::fs::read(&in_force).unwrap(), before);

    // A table without a date of its own is dated by the update (the pinned clock's day).
    let undated = r#"{"gpt-test": {"input_cost_per_token": 1e-06,
                                   "output_cost_per_token": 2e-06}}"#;
    let file = put_in_force(&home, undated);
    let shown = home.json(&["prices", "show"]);
    assert_eq!(shown["date"], "2026-11-23");
    assert!(
        shown["source"]
            .as_str()
            .unwrap()
            .contains(file.to_str().unwrap())
    );
    assert_eq!(shown["models"][0]["model"], "gpt-test");
    assert_eq!(crate::common::mode(&in_force) & 0o077, 0, "private file");

    // A table in force broken by hand is named, not silently replaced by $0 or the built-in.
    std::fs::write(&in_force, "{ broken").unwrap();
    let out = home.run(&["usage", "--cost"]);
    assert_refused(
        &out,
        2,
        &["ledger.db.prices.json", "not a price table"],
        "broken",
    );
}
