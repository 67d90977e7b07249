//! What opencode reads: its auth entry (`OPENCODE_AUTH_CONTENT`) and its base URL, carried in
//! `OPENCODE_CONFIG_CONTENT` merged into the one the agent inherits.
//!
//! opencode appends `/messages` (Anthropic) or `/responses` (OpenAI) to its `baseURL`, so the
//! base URL it gets always ends in `/v1`; Claude Code's form (no `/v1`) would post to
//! `/messages`.

use std::ffi::OsStr;

use serde_json::{Map, Value, json};

use crate::types::{Millis, Provider};
use crate::vault::{CredentialKind, Secret};

/// opencode's provider id for a lease's provider.
pub(super) fn provider_id(p: Provider) -> &'static str {
    match p {
        Provider::Claude => "anthropic",
        Provider::Openai => "openai",
    }
}

/// opencode's auth.json entry for the secret the agent holds. An OAuth entry always has a
/// real expiry: opencode treats `expires: 0` as expired and tries to refresh with the empty
/// refresh token it gets.
pub(super) fn auth_entry(
    kind: CredentialKind,
    held: &Secret,
    expires: Millis,
    account_id: Option<&str>,
) -> Value {
    match kind {
        CredentialKind::ApiKey => json!({ "type": "api", "key": held.expose_secret() }),
        CredentialKind::Oauth => {
            let mut e = json!({
                "type": "oauth",
                "access": held.expose_secret(),
                // Agents never get the refresh token: refreshing is the ledger's job, done once
                // for everyone; an agent that refreshed on its own would rotate the token
                // behind the ledger's back.
                "refresh": "",
                "expires": expires,
            });
            if let Some(id) = account_id {
                e["accountId"] = json!(id);
            }
            e
        }
    }
}

/// `OPENCODE_CONFIG_CONTENT` with `provider.<id>.options.baseURL` = `base_url`, every other
/// key of the inherited value kept (a `baseURL` it set for the lease's provider is replaced).
///
/// The inherited value may be JSONC, as opencode accepts (comments, trailing commas): those
/// are read and the merge is written as plain JSON. `None` when the inherited value is not a
/// JSON object even so (or not UTF-8): it is then left exactly as the user set it, for opencode
/// itself to report, rather than discarded for ours.
pub(super) fn config_content(
    inherited: Option<&OsStr>,
    provider_id: &str,
    base_url: &str,
) -> Option<String> {
    let mut config = match inherited {
        None => Map::new(),
        Some(text) => {
            let text = text.to_str()?;
            match serde_json::from_str::<Value>(&strip_jsonc(text)) {
                Ok(Value::Object(map)) => map,
                _ => return None,
            }
        }
    };
    set_path(
        &mut config,
        &["provider", provider_id, "options", "baseURL"],
        json!(base_url),
    );
    Some(Value::Object(config).to_string())
}

/// Sets `value` at `path`, making objects on the way (replacing a non-object there).
fn set_path(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    let [first, rest @ ..] = path else {
        return;
    };
    if rest.is_empty() {
        map.insert(first.to_string(), value);
        return;
    }
    let slot = map
        .entry(first.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(inner) = slot {
        set_path(inner, rest, value);
    }
}

/// JSONC to JSON: removes `//` and `/* */` comments and trailing commas outside strings.
fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                out.push(' ');
            }
            (']' | '}', _) => {
                let kept = out.trim_end().len();
                if out[..kept].ends_with(',') {
                    out.truncate(kept - 1);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(inherited: &str) -> Option<Value> {
        config_content(Some(OsStr::new(inherited)), "anthropic", "http://g/v1")
            .map(|s| serde_json::from_str(&s).expect("JSON out"))
    }

    #[test]
    fn jsonc_comments_and_trailing_commas_are_read() {
        let v = merged(
            "{ // mine\n \"model\": \"a//b\", /* x */ \"share\": \"off\",\n \
             \"provider\": { \"openai\": { \"options\": { \"timeout\": 5, } }, },\n}",
        )
        .expect("an object");
        assert_eq!(v["model"], "a//b");
        assert_eq!(v["share"], "off");
        assert_eq!(v["provider"]["openai"]["options"]["timeout"], 5);
        assert_eq!(
            v["provider"]["anthropic"]["options"]["baseURL"],
            "http://g/v1"
        );
    }

    #[test]
    fn strings_with_escapes_and_comment_marks_survive() {
        let v = merged(r#"{"a": "q\"//not a comment", "b": "/*x*/,}"}"#).expect("object");
        assert_eq!(v["a"], "q\"//not a comment");
        assert_eq!(v["b"], "/*x*/,}");
    }

    #[test]
    fn a_value_that_is_not_an_object_is_left_alone() {
        assert_eq!(merged("[1, 2]"), None);
        assert_eq!(merged("{ not json"), None);
        assert_eq!(merged(""), None);
    }

    #[test]
    fn the_leases_base_url_replaces_an_inherited_one_and_keeps_its_siblings() {
        let v = merged(
            r#"{"provider":{"anthropic":{"options":{"baseURL":"http://old","timeout":9},
                "models":{"m":{}}}}}"#,
        )
        .expect("object");
        let a = &v["provider"]["anthropic"];
        assert_eq!(a["options"]["baseURL"], "http://g/v1");
        assert_eq!(a["options"]["timeout"], 9);
        assert!(a["models"]["m"].is_object(), "{v}");
    }
}
