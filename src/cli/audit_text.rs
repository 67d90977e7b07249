//! An audit row's detail as a sentence for people (`asked 20000 → granted 20000, expires
//! 03:16`); `audit --json` keeps the full object.

use serde_json::Value;

use super::output::{clock_time, times_for_people};
use crate::types::Millis;

/// The detail of an `action` row, read at `now` (times are shown as local clock times).
pub fn describe(action: &str, detail: &Value, now: Millis) -> String {
    let d = Detail { v: detail, now };
    let text = match action {
        "acquire" => d.has("asked").then(|| {
            let mut s = format!("asked {}", d.num("asked"));
            if d.has("tokens") {
                s.push_str(&format!(" → granted {}", d.num("tokens")));
            }
            if d.has("expires_at") {
                s.push_str(&format!(", expires {}", d.time("expires_at")));
            }
            s
        }),
        "renew" => d
            .has("expires_at")
            .then(|| format!("until {}", d.time("expires_at"))),
        "release" | "expire" => d.has("allocated").then(|| {
            let mut s = String::new();
            if let Some(r) = d.str("reason") {
                s.push_str(&format!("{r}: "));
            }
            s.push_str(&format!(
                "used {} of {}, returned {}",
                d.num("used"),
                d.num("allocated"),
                d.num("returned")
            ));
            if let Some(h) = detail.get("holder") {
                match (h.get("exit_code").and_then(Value::as_i64), h.get("signal")) {
                    (Some(c), _) => s.push_str(&format!(", agent exited {c}")),
                    (None, Some(Value::Number(n))) => {
                        s.push_str(&format!(", agent killed by signal {n}"))
                    }
                    _ => {}
                }
            }
            s
        }),
        "usage" => d.has("input").then(|| {
            let mut parts = vec![
                format!("input {}", d.num("input")),
                format!("output {}", d.num("output")),
            ];
            for (key, label) in [("cache_read", "cache read"), ("cache_write", "cache write")] {
                if detail
                    .get(key)
                    .and_then(Value::as_i64)
                    .is_some_and(|n| n > 0)
                {
                    parts.push(format!("{label} {}", d.num(key)));
                }
            }
            if let Some(m) = d.str("model") {
                parts.push(format!("model {m}"));
            }
            if let Some(k) = d.str("key") {
                parts.push(format!("key {k}"));
            }
            if detail.get("exhausted") == Some(&Value::Bool(true)) {
                parts.push("lease exhausted".into());
            }
            parts.join(", ")
        }),
        "deny" => d.has("asked").then(|| {
            let problems: Vec<String> = detail
                .get("selection")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let p = times_for_people(s.get("problem")?.as_str()?, now);
                    let who = format!(
                        "{}/{}",
                        s.get("provider")?.as_str()?,
                        s.get("account")?.as_str()?
                    );
                    Some(format!("{who} {p}"))
                })
                .collect();
            let mut s = format!("asked {}", d.num("asked"));
            if !problems.is_empty() {
                s.push_str(&format!(": {}", problems.join("; ")));
            } else if let Some(r) = d.str("reason") {
                s.push_str(&format!(": {}", times_for_people(r, now)));
            }
            s
        }),
        "fallback" | "switch" => d.str("from").zip(d.str("to")).map(|(from, to)| {
            let mut s = format!("{from} → {to}");
            if let Some(r) = d.str("reason") {
                s.push_str(&format!(": {}", times_for_people(r, now)));
            }
            s
        }),
        "health" => detail.get("available").map(|a| {
            let mut s = if a == &Value::Bool(false) && d.has("until") {
                format!("unavailable until {}", d.time("until"))
            } else {
                "available".into()
            };
            if let Some(r) = d.str("reason") {
                s.push_str(&format!(": {r}"));
            }
            s
        }),
        "topup" => d.has("tokens").then(|| {
            let mut s = format!("topped up +{} → {}", d.num("tokens"), d.num("allocated"));
            if detail
                .get("absorbed")
                .and_then(Value::as_i64)
                .is_some_and(|n| n > 0)
            {
                s.push_str(&format!(
                    " ({} already used past the lease)",
                    d.num("absorbed")
                ));
            }
            s
        }),
        "limits" => limits(detail),
        _ => None,
    };
    text.unwrap_or_else(|| generic(detail, now))
}

/// What a `limits` row changed (`daily_tokens 1000000 → 100000, concurrent 10 → 3`), or the
/// limits it set from a source (`defaults: daily_tokens 1000000, concurrent 10`).
fn limits(detail: &Value) -> Option<String> {
    const SKIP: [&str; 3] = ["account", "provider", "updated_at"];
    if let (Some(Value::Object(before)), Some(Value::Object(after))) =
        (detail.get("before"), detail.get("after"))
    {
        let changes: Vec<String> = after
            .iter()
            .filter(|(k, v)| !SKIP.contains(&k.as_str()) && before.get(*k) != Some(*v))
            .map(|(k, v)| {
                let was = before.get(k).map_or("off".into(), scalar);
                format!("{k} {was} → {}", scalar(v))
            })
            .collect();
        return Some(if changes.is_empty() {
            "unchanged".into()
        } else {
            changes.join(", ")
        });
    }
    let Some(Value::Object(l)) = detail.get("limits") else {
        return None;
    };
    let set: Vec<String> = l
        .iter()
        .filter(|(k, v)| !SKIP.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| format!("{k} {}", scalar(v)))
        .collect();
    let source = detail
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or("set");
    Some(format!("{source}: {}", set.join(", ")))
}

/// Any other detail: its fields as `key value`, times as clock times, nested objects as JSON.
fn generic(detail: &Value, now: Millis) -> String {
    match detail {
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v.as_i64() {
                Some(t) if k.ends_with("_at") || k == "until" => {
                    format!("{k} {}", clock_time(t, now))
                }
                _ => format!("{k} {}", scalar(v)),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => scalar(other),
    }
}

/// A JSON value without quotes around strings; `off` for null; a long hex string (a MAC)
/// shortened to its first 12 digits.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() > 24 && s.chars().all(|c| c.is_ascii_hexdigit()) => {
            format!("{}…", &s[..12])
        }
        Value::String(s) => s.clone(),
        Value::Null => "off".into(),
        other => other.to_string(),
    }
}

/// Typed reads of a detail object.
struct Detail<'a> {
    v: &'a Value,
    now: Millis,
}

impl Detail<'_> {
    fn has(&self, key: &str) -> bool {
        self.v.get(key).is_some_and(|v| !v.is_null())
    }

    fn num(&self, key: &str) -> String {
        self.v.get(key).map_or("?".into(), scalar)
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.v.get(key)?.as_str()
    }

    fn time(&self, key: &str) -> String {
        self.v
            .get(key)
            .and_then(Value::as_i64)
            .map_or("?".into(), |t| clock_time(t, self.now))
    }
}

#[cfg(test)]
mod tests {
    use super::describe;
    use serde_json::json;

    const NOW: i64 = 1_795_428_000_000; // 2026-11-23T10:00:00Z

    #[test]
    fn audit_details_read_as_sentences() {
        // Local time is the test process's; pin it.
        let acquire = describe(
            "acquire",
            &json!({"asked": 20000, "tokens": 20000, "expires_at": NOW + 7_200_000, "fence": 1}),
            NOW,
        );
        assert!(
            acquire.starts_with("asked 20000 → granted 20000, expires "),
            "{acquire}"
        );
        assert_eq!(
            describe(
                "release",
                &json!({"allocated": 100, "used": 0, "returned": 100,
                        "holder": {"exit_code": 127, "signal": null}}),
                NOW
            ),
            "used 0 of 100, returned 100, agent exited 127"
        );
        assert_eq!(
            describe(
                "limits",
                &json!({"before": {"concurrent": 10, "rpm": null},
                        "after": {"concurrent": 3, "rpm": 60}}),
                NOW
            ),
            "concurrent 10 → 3, rpm off → 60"
        );
        assert_eq!(
            describe("switch", &json!({"from": "auto", "to": "openai"}), NOW),
            "auto → openai"
        );
        assert_eq!(
            describe("rekey", &json!({"legacy_rows": 2, "note": "x"}), NOW),
            "legacy_rows 2, note x"
        );
        assert_eq!(
            describe(
                "topup",
                &json!({"tokens": 8192, "allocated": 28192, "fence": 3}),
                NOW
            ),
            "topped up +8192 → 28192"
        );
        assert_eq!(
            describe(
                "topup",
                &json!({"tokens": 8192, "absorbed": 300, "allocated": 28492, "fence": 3}),
                NOW
            ),
            "topped up +8192 → 28492 (300 already used past the lease)"
        );
    }
}
