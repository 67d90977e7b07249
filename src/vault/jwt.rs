//! Reading (not verifying) JWT payloads: Codex's token files carry expiry and account facts
//! there, and Codex refuses an `id_token` that is not a three-part JWT with a JSON payload.

use base64::Engine;

/// The decoded payload of a three-part JWT, or `None` if it is not one.
pub fn payload(token: &str) -> Option<serde_json::Value> {
    let mut parts = token.split('.');
    let (_header, body, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.is_object().then_some(value)
}

/// The `exp` claim in epoch milliseconds.
pub fn expiry_ms(token: &str) -> Option<i64> {
    payload(token)?
        .get("exp")?
        .as_i64()
        .and_then(|s| s.checked_mul(1000))
}

/// The ChatGPT account id Codex sends with its requests: the id token's
/// `https://api.openai.com/auth`.`chatgpt_account_id` claim.
pub fn chatgpt_account_id(token: &str) -> Option<String> {
    payload(token)?
        .get("https://api.openai.com/auth")?
        .get("chatgpt_account_id")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_from_a_codex_access_token() {
        let t = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjE4OTM0NTYwMDAsImh0dHBzOi8vYXBpLm9wZW5haS5jb20vYXV0aCI6eyJjaGF0Z3B0X2FjY291bnRfaWQiOiJhY2N0LUZBS0UifX0.sig";
        assert_eq!(expiry_ms(t), Some(1_893_456_000_000));
        assert_eq!(chatgpt_account_id(t).as_deref(), Some("acct-FAKE"));
        assert!(payload("eyJ.FAKE.sig").is_none());
        assert!(payload("a.b").is_none());
    }
}
