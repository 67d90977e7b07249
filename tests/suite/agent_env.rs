//! The environment of a metered agent (issue 13): the lease token wherever the credential
//! went and the gateway wherever a base URL went, each client's own base-URL form (metered or
//! not), opencode's merged `OPENCODE_CONFIG_CONTENT`, and a per-lease `CODEX_HOME` that links
//! the user's Codex state instead of owning it. Built through the library with the inherited
//! environment given explicitly (this test process's own `HOME` is never used), and through
//! `authledger env` for the unmetered base-URL forms.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use authledger::agent::{AgentEnv, Inherited, UserCodexHome};
use authledger::config_file::ConfigFile;
use authledger::{
    Account, AcquireRequest, AgentId, Credential, Error, Ledger, Provider, QuotaError, Secret,
};
use common::{Home, T0, fixture, mode, must, stdout};
use serde_json::Value;

const GATEWAY: &str = "http://127.0.0.1:4321";
const CLAUDE_API_KEY: &str = "sk-ant-api03-REAL-claude-key-0123456789";
const OPENAI_API_KEY: &str = "sk-proj-REAL-openai-key-0123456789";
/// The tokens of fixtures/claude-code-credentials.json.
const CLAUDE_OAUTH: &[&str] = &["sk-ant-oat01-FAKE", "sk-ant-ort01-FAKE"];

/// A home with both imported OAuth credentials (`default` accounts) and an API key for each
/// provider (`key` accounts), and the library ledger on it at [`T0`].
struct Fixture {
    home: Home,
    ledger: Ledger,
    /// A directory standing in for the user's home directory.
    user: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(None)
    }

    fn with_config(config: Option<&str>) -> Fixture {
        let home = Home::new();
        let file = config.map_or_else(ConfigFile::default, |text| {
            ConfigFile::parse(Path::new("config.toml"), text).expect("config")
        });
        let ledger = common::home_ledger_with(&home, T0, file);
        for (provider, key) in [
            (Provider::Claude, CLAUDE_API_KEY),
            (Provider::Openai, OPENAI_API_KEY),
        ] {
            ledger
                .store_credential(&Credential::api_key(
                    provider,
                    Account::new("key").unwrap(),
                    Secret::new(key.into()),
                    "stdin",
                ))
                .expect("store an API key");
        }
        let user = tempfile::tempdir().expect("user home");
        Fixture { home, ledger, user }
    }

    fn lease(&self, provider: Provider, account: &str) -> authledger::Lease {
        let req = AcquireRequest::new(AgentId::new("agent").unwrap(), provider)
            .account(Account::new(account).unwrap());
        self.ledger.acquire(&req).expect("acquire")
    }

    /// The user's Codex home (`~/.codex` under the stand-in home directory).
    fn codex(&self) -> PathBuf {
        self.user.path().join(".codex")
    }

    fn inherited(&self) -> Inherited {
        Inherited {
            codex_home: Some(UserCodexHome::Default(self.codex())),
            opencode_config: None,
        }
    }

    fn metered(&self, lease: &authledger::Lease) -> Env {
        self.metered_with(lease, &self.inherited())
    }

    fn metered_with(&self, lease: &authledger::Lease, inherited: &Inherited) -> Env {
        Env::of(
            self.ledger
                .agent_env_for(lease, Some(GATEWAY), inherited)
                .expect("metered env"),
        )
    }
}

/// An agent's environment with its values exposed, as the child would see them.
struct Env {
    vars: BTreeMap<String, String>,
    raw: AgentEnv,
}

impl Env {
    fn of(raw: AgentEnv) -> Env {
        let vars = raw
            .set
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect();
        Env { vars, raw }
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.vars.get(k).map(String::as_str)
    }

    /// The lease token, as opencode's auth entry holds it (every kind has one), checked to
    /// be a valid token of `lease`.
    fn token(&self, ledger: &Ledger, lease: &authledger::Lease) -> String {
        let auth = self.json("OPENCODE_AUTH_CONTENT");
        let entry = auth.as_object().unwrap().values().next().unwrap();
        let token = entry
            .get("key")
            .or_else(|| entry.get("access"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no token in {entry}"))
            .to_string();
        assert!(token.starts_with("alt-"), "a lease token: {token}");
        let found = ledger.lease_for_token(&token).unwrap().expect("valid");
        assert_eq!(found.id, lease.id);
        token
    }

    fn json(&self, k: &str) -> Value {
        let text = self.get(k).unwrap_or_else(|| panic!("{k} missing"));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{k} is not JSON ({e}): {text}"))
    }

    fn codex_home(&self) -> PathBuf {
        PathBuf::from(self.get("CODEX_HOME").expect("CODEX_HOME"))
    }
}

/// Every regular file under `dir`, links not followed (they lead to the user's own files).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(files_under(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

/// No real secret in any value of the environment nor in any byte of the lease's files.
fn assert_no_real_secret(f: &Fixture, env: &Env, lease: &authledger::Lease, secrets: &[&str]) {
    let dir = authledger::agent::lease_dir(&f.home.db(), &lease.id);
    for secret in secrets {
        for (k, v) in &env.vars {
            assert!(!v.contains(secret), "{k} holds a real secret: {v}");
        }
        for file in files_under(&dir) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a real secret",
                file.display()
            );
        }
    }
}

/// The gateway's base URL in opencode's form, in `OPENCODE_CONFIG_CONTENT`.
fn opencode_base_url(env: &Env, provider_id: &str) -> Value {
    env.json("OPENCODE_CONFIG_CONTENT")["provider"][provider_id]["options"]["baseURL"].clone()
}

fn opencode_auth(env: &Env, provider_id: &str) -> Value {
    let v = env.json("OPENCODE_AUTH_CONTENT");
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    v[provider_id].clone()
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Metered: the lease token and the gateway, for each credential kind
// ---------------------------------------------------------------------------------------------

#[test]
fn a_metered_claude_key_agent_holds_the_lease_token_and_talks_to_the_gateway() {
    // A configured base URL is the gateway's upstream, never the agent's.
    let f = Fixture::with_config(Some(
        "[providers.claude]\nbase_url = \"http://upstream.invalid/v1\"\n",
    ));
    let lease = f.lease(Provider::Claude, "key");
    let env = f.metered(&lease);
    let token = env.token(&f.ledger, &lease);
    assert_eq!(env.get("ANTHROPIC_API_KEY"), Some(token.as_str()));
    assert_eq!(env.get("CLAUDE_API_KEY"), Some(token.as_str()));
    assert_eq!(env.get("CLAUDE_CODE_OAUTH_TOKEN"), None);
    // Claude Code appends /v1/messages itself; opencode appends /messages.
    assert_eq!(env.get("ANTHROPIC_BASE_URL"), Some(GATEWAY));
    assert_eq!(env.get("CLAUDE_BASE_URL"), Some(GATEWAY));
    assert_eq!(
        opencode_base_url(&env, "anthropic"),
        format!("{GATEWAY}/v1")
    );
    assert_eq!(
        opencode_auth(&env, "anthropic"),
        serde_json::json!({ "type": "api", "key": token })
    );
    assert_no_real_secret(&f, &env, &lease, &[CLAUDE_API_KEY]);
}

#[test]
fn a_metered_claude_oauth_agent_holds_the_lease_token_as_its_bearer_token() {
    let f = Fixture::new();
    let lease = f.lease(Provider::Claude, "default");
    let env = f.metered(&lease);
    let token = env.token(&f.ledger, &lease);
    assert_eq!(env.get("CLAUDE_CODE_OAUTH_TOKEN"), Some(token.as_str()));
    for never in ["ANTHROPIC_API_KEY", "CLAUDE_API_KEY"] {
        assert_eq!(env.get(never), None, "{never}");
        assert!(env.raw.remove.iter().any(|v| v == never), "{never} removed");
    }
    assert_eq!(env.get("ANTHROPIC_BASE_URL"), Some(GATEWAY));
    assert_eq!(
        opencode_base_url(&env, "anthropic"),
        format!("{GATEWAY}/v1")
    );
    let entry = opencode_auth(&env, "anthropic");
    assert_eq!(entry["access"], token.as_str(), "{entry}");
    assert_eq!(entry["refresh"], "", "{entry}");
    // The lease token lives as long as the lease, not as the real token.
    assert_eq!(entry["expires"], lease.expires_at, "{entry}");
    assert_no_real_secret(&f, &env, &lease, CLAUDE_OAUTH);
}

#[test]
fn a_metered_openai_key_agent_holds_the_lease_token_in_env_and_codex_home() {
    let f = Fixture::new();
    let lease = f.lease(Provider::Openai, "key");
    let env = f.metered(&lease);
    let token = env.token(&f.ledger, &lease);
    assert_eq!(env.get("OPENAI_API_KEY"), Some(token.as_str()));
    assert_eq!(env.get("CODEX_API_KEY"), Some(token.as_str()));
    let v1 = format!("{GATEWAY}/v1");
    assert_eq!(env.get("OPENAI_BASE_URL"), Some(v1.as_str()));
    assert_eq!(opencode_base_url(&env, "openai"), v1.as_str());
    assert_eq!(env.get("ANTHROPIC_BASE_URL"), None);
    let home = env.codex_home();
    let auth: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("auth.json")).unwrap()).unwrap();
    assert_eq!(
        auth,
        serde_json::json!({ "auth_mode": "apikey", "OPENAI_API_KEY": token })
    );
    let config: toml::Table = std::fs::read_to_string(home.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(config["openai_base_url"].as_str(), Some(v1.as_str()));
    assert_eq!(
        opencode_auth(&env, "openai"),
        serde_json::json!({ "type": "api", "key": token })
    );
    assert_no_real_secret(&f, &env, &lease, &[OPENAI_API_KEY]);
}

#[test]
fn a_metered_chatgpt_agent_gets_codex_auth_with_the_lease_token_and_no_refresh_token() {
    let f = Fixture::new();
    let lease = f.lease(Provider::Openai, "default");
    let env = f.metered(&lease);
    let token = env.token(&f.ledger, &lease);
    let original = fixture_json("codex-auth.chatgpt.json");
    let home = env.codex_home();
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("auth.json")), 0o600);
    let auth: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("auth.json")).unwrap()).unwrap();
    assert_eq!(auth["auth_mode"], "chatgpt", "{auth}");
    assert_eq!(auth["tokens"]["access_token"], token.as_str(), "{auth}");
    assert_eq!(auth["tokens"]["refresh_token"], "", "{auth}");
    assert_eq!(auth["tokens"]["id_token"], original["tokens"]["id_token"]);
    assert_eq!(auth["tokens"]["account_id"], "acct-FAKE");
    let config: toml::Table = std::fs::read_to_string(home.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let v1 = format!("{GATEWAY}/v1");
    assert_eq!(config["openai_base_url"].as_str(), Some(v1.as_str()));
    let entry = opencode_auth(&env, "openai");
    assert_eq!(entry["access"], token.as_str(), "{entry}");
    assert_eq!(entry["accountId"], "acct-FAKE", "{entry}");
    assert_eq!(entry["expires"], lease.expires_at, "{entry}");
    let real = [
        original["tokens"]["access_token"].as_str().unwrap(),
        original["tokens"]["refresh_token"].as_str().unwrap(),
    ];
    assert_no_real_secret(&f, &env, &lease, &real);
}

#[test]
fn an_ended_lease_gets_no_metered_environment_and_no_files() {
    let f = Fixture::new();
    let lease = f.lease(Provider::Openai, "key");
    f.ledger.release(&lease.id).unwrap();
    match f
        .ledger
        .agent_env_for(&lease, Some(GATEWAY), &f.inherited())
    {
        Err(Error::Quota(QuotaError::LeaseLost { .. })) => {}
        other => panic!("expected a lost lease, got {other:?}"),
    }
    assert!(!authledger::agent::lease_dir(&f.home.db(), &lease.id).exists());
    assert!(!f.codex().exists(), "nothing made for an ended lease");
}

// ---------------------------------------------------------------------------------------------
// opencode's configuration and auth entry
// ---------------------------------------------------------------------------------------------

#[test]
fn opencode_config_content_is_merged_into_the_inherited_one() {
    let f = Fixture::new();
    let lease = f.lease(Provider::Claude, "key");
    let mut inherited = f.inherited();
    // JSONC, as opencode reads it: a comment and a trailing comma.
    inherited.opencode_config = Some(
        "{ // mine\n \"model\": \"anthropic/claude-x\",\n \"provider\": {\n  \
         \"anthropic\": { \"options\": { \"baseURL\": \"http://elsewhere\", \"timeout\": 7 } },\n  \
         \"openai\": { \"options\": { \"timeout\": 5 } },\n },\n}"
            .into(),
    );
    let env = f.metered_with(&lease, &inherited);
    let config = env.json("OPENCODE_CONFIG_CONTENT");
    assert_eq!(config["model"], "anthropic/claude-x", "{config}");
    assert_eq!(config["provider"]["openai"]["options"]["timeout"], 5);
    let anthropic = &config["provider"]["anthropic"]["options"];
    assert_eq!(anthropic["timeout"], 7, "{config}");
    assert_eq!(anthropic["baseURL"], format!("{GATEWAY}/v1"), "{config}");

    // A value that is not a JSON object is the user's to fix: left as it is (not set over,
    // not removed), for opencode to report.
    inherited.opencode_config = Some("[not an object]".into());
    let env = f.metered_with(&lease, &inherited);
    assert_eq!(env.get("OPENCODE_CONFIG_CONTENT"), None);
    assert!(
        !env.raw
            .remove
            .iter()
            .any(|v| v == "OPENCODE_CONFIG_CONTENT"),
        "never removed"
    );
}

#[test]
fn an_opencode_oauth_entry_without_a_known_expiry_expires_with_the_lease() {
    let f = Fixture::new();
    let mut chatgpt = f
        .ledger
        .credential(Provider::Openai, &Account::default())
        .unwrap();
    chatgpt.account = Account::new("noexpiry").unwrap();
    chatgpt.expires_at = None;
    f.ledger.store_credential(&chatgpt).unwrap();
    let lease = f.lease(Provider::Openai, "noexpiry");
    let env = Env::of(
        f.ledger
            .agent_env_for(&lease, None, &f.inherited())
            .unwrap(),
    );
    let entry = opencode_auth(&env, "openai");
    assert_eq!(entry["type"], "oauth", "{entry}");
    assert_eq!(entry["expires"], lease.expires_at, "never 0: {entry}");
}

// ---------------------------------------------------------------------------------------------
// Codex state outlives the lease
// ---------------------------------------------------------------------------------------------

#[test]
fn codex_state_is_linked_into_the_lease_home_and_survives_its_release() {
    let f = Fixture::new();
    let codex = f.codex();
    std::fs::create_dir_all(codex.join("sessions/2026/11/23")).unwrap();
    std::fs::create_dir_all(codex.join("prompts")).unwrap();
    let session = "sessions/2026/11/23/rollout-1.jsonl";
    let own = [
        (session, "{\"session\":1}\n"),
        ("history.jsonl", "{\"text\":\"hi\"}\n"),
        ("AGENTS.md", "be kind\n"),
        ("prompts/review.md", "review\n"),
        ("config.toml", "model = \"o3\"\n"),
        ("auth.json", "{\"OPENAI_API_KEY\":\"sk-user-own\"}"),
    ];
    for (name, text) in own {
        std::fs::write(codex.join(name), text).unwrap();
    }
    let lease = f.lease(Provider::Openai, "key");
    let env = f.metered(&lease);
    let home = env.codex_home();
    for (name, text) in &own[..4] {
        assert_eq!(
            std::fs::read_to_string(home.join(name)).unwrap(),
            *text,
            "{name} seen through the lease's CODEX_HOME"
        );
    }
    // The lease owns its auth.json and config.toml (the user's settings copied in).
    for owned in ["auth.json", "config.toml"] {
        let meta = std::fs::symlink_metadata(home.join(owned)).unwrap();
        assert!(meta.is_file(), "{owned} is the lease's own file");
    }
    let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
    assert!(config.contains("model = \"o3\""), "{config}");
    assert!(
        !std::fs::read_to_string(home.join("auth.json"))
            .unwrap()
            .contains("sk-user-own")
    );

    // What Codex writes during the lease lands in the user's home.
    std::fs::write(home.join("sessions/2026/11/23/rollout-2.jsonl"), "new\n").unwrap();
    let mut history = std::fs::OpenOptions::new()
        .append(true)
        .open(home.join("history.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut history, b"{\"text\":\"again\"}\n").unwrap();
    drop(history);

    f.ledger.release(&lease.id).unwrap();
    assert!(
        !authledger::agent::lease_dir(&f.home.db(), &lease.id).exists(),
        "the lease's directory is removed"
    );
    for (name, text) in &own[2..] {
        assert_eq!(std::fs::read_to_string(codex.join(name)).unwrap(), *text);
    }
    assert_eq!(
        std::fs::read_to_string(codex.join(session)).unwrap(),
        "{\"session\":1}\n"
    );
    assert_eq!(
        std::fs::read_to_string(codex.join("sessions/2026/11/23/rollout-2.jsonl")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(codex.join("history.jsonl")).unwrap(),
        "{\"text\":\"hi\"}\n{\"text\":\"again\"}\n"
    );

    // The next lease sees all of it.
    let next = f.lease(Provider::Openai, "key");
    let env = f.metered(&next);
    let seen = env.codex_home().join("sessions/2026/11/23/rollout-2.jsonl");
    assert_eq!(std::fs::read_to_string(seen).unwrap(), "new\n");
}

#[test]
fn a_missing_default_codex_home_is_made_so_the_first_state_lands_there() {
    let f = Fixture::new();
    let codex = f.codex();
    let lease = f.lease(Provider::Openai, "default");
    let env = f.metered(&lease);
    assert_eq!(mode(&codex), 0o700, "~/.codex made private");
    let home = env.codex_home();
    std::fs::create_dir_all(home.join("sessions/2026/11/23")).unwrap();
    std::fs::write(home.join("sessions/2026/11/23/first.jsonl"), "1\n").unwrap();
    // history.jsonl does not exist yet: appending through the link creates the user's.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("history.jsonl"))
        .unwrap();
    f.ledger.release(&lease.id).unwrap();
    assert!(codex.join("sessions/2026/11/23/first.jsonl").is_file());
    assert!(codex.join("history.jsonl").is_file());
    assert!(
        !codex.join("auth.json").exists(),
        "no credential left behind"
    );

    // A CODEX_HOME the user named but that does not exist is not made (Codex refuses it too).
    let named = f.user.path().join("named-codex");
    let lease = f.lease(Provider::Openai, "default");
    let inherited = Inherited {
        codex_home: Some(UserCodexHome::Set(named.clone())),
        opencode_config: None,
    };
    let env = f.metered_with(&lease, &inherited);
    assert!(env.codex_home().join("auth.json").is_file());
    assert!(!named.exists(), "{} was made", named.display());
}

// ---------------------------------------------------------------------------------------------
// Unmetered: each client's base-URL form from a configured base_url
// ---------------------------------------------------------------------------------------------

fn env_json(home: &Home, id: &str, inherited_opencode: Option<&str>) -> BTreeMap<String, String> {
    let mut cmd = home.cmd();
    cmd.args(["env", id, "--format", "json"]);
    if let Some(v) = inherited_opencode {
        cmd.env("OPENCODE_CONFIG_CONTENT", v);
    }
    let out = stdout(&must(cmd.output().unwrap(), "env"));
    let v: Value = serde_json::from_str(&out).unwrap();
    serde_json::from_value(v["set"].clone()).unwrap()
}

#[test]
fn env_gives_claude_code_the_root_and_opencode_the_v1_form_of_a_base_url() {
    let home = Home::new();
    std::fs::write(
        home.path().join("config.toml"),
        "[providers.claude]\nbase_url = \"http://127.0.0.1:9/anthropic/v1/\"\n\
         [providers.openai]\nbase_url = \"http://127.0.0.1:9/openai\"\n",
    )
    .unwrap();
    let l = common::json_at(
        &home,
        T0,
        &["lease", "acquire", "--agent", "a", "--provider", "claude"],
    );
    let id = l["lease_id"].as_str().unwrap();
    let set = env_json(&home, id, Some(r#"{"model":"anthropic/x"}"#));
    assert_eq!(set["ANTHROPIC_BASE_URL"], "http://127.0.0.1:9/anthropic");
    assert_eq!(set["CLAUDE_BASE_URL"], "http://127.0.0.1:9/anthropic");
    let config: Value = serde_json::from_str(&set["OPENCODE_CONFIG_CONTENT"]).unwrap();
    assert_eq!(
        config,
        serde_json::json!({
            "model": "anthropic/x",
            "provider": { "anthropic": { "options": {
                "baseURL": "http://127.0.0.1:9/anthropic/v1"
            } } }
        })
    );

    let l = common::json_at(
        &home,
        T0,
        &["lease", "acquire", "--agent", "b", "--provider", "openai"],
    );
    let set = env_json(&home, l["lease_id"].as_str().unwrap(), None);
    assert_eq!(set["OPENAI_BASE_URL"], "http://127.0.0.1:9/openai/v1");
    let config: Value = serde_json::from_str(&set["OPENCODE_CONFIG_CONTENT"]).unwrap();
    assert_eq!(
        config["provider"]["openai"]["options"]["baseURL"],
        "http://127.0.0.1:9/openai/v1"
    );
}

#[test]
fn without_a_base_url_opencode_config_content_is_left_to_the_agent() {
    let home = Home::new();
    let l = common::json_at(
        &home,
        T0,
        &["lease", "acquire", "--agent", "a", "--provider", "claude"],
    );
    let set = env_json(&home, l["lease_id"].as_str().unwrap(), Some("{\"a\":1}"));
    assert!(!set.contains_key("OPENCODE_CONFIG_CONTENT"), "{set:?}");
    assert!(!set.contains_key("ANTHROPIC_BASE_URL"), "{set:?}");
}
