//! The audit trail is append-only and chained with a key only the master key's holder has:
//! any edit, deletion, insertion or reordering in the file, even with every chain value
//! recomputed, makes `audit verify` fail and name the first bad row; an anchor kept
//! elsewhere catches a cut or a rewrite before it.

use crate::common;

use common::forge::{self, Forge};
use common::{Home, T0, code, library_ledger, stderr, stdout};
use serde_json::json;

/// A ledger with a few dozen audit rows from real commands.
fn ledger_with_history() -> Home {
    let home = Home::new();
    assert_eq!(code(&home.run(&["init"])), 0);
    for i in 0..4 {
        let lease = home.json(&[
            "lease",
            "acquire",
            "--agent",
            &format!("a{i}"),
            "--provider",
            "claude",
            "--tokens",
            "100",
        ]);
        let id = lease["lease_id"].as_str().unwrap().to_string();
        assert_eq!(
            code(&home.run(&["usage", "record", &id, "--input", "5", "--output", "5"])),
            0
        );
        assert_eq!(code(&home.run(&["lease", "release", &id])), 0);
    }
    home
}

/// Opens the file as an attacker would: triggers dropped first.
fn tamper(home: &Home, sql: &str) {
    forge::raw(&home.db(), sql);
}

fn verify(home: &Home) -> (i32, serde_json::Value, String) {
    verify_with(home, &[])
}

/// `audit verify` with extra arguments (`--anchor HEAD`).
fn verify_with(home: &Home, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["--json", "audit", "verify"];
    args.extend_from_slice(extra);
    let out = home.run(&args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (code(&out), report, stderr(&out))
}

/// One more lease granted and released: two more rows.
fn more_history(home: &Home, agent: &str) {
    let lease = home.json(&[
        "lease",
        "acquire",
        "--agent",
        agent,
        "--provider",
        "claude",
        "--tokens",
        "10",
    ]);
    let id = lease["lease_id"].as_str().unwrap();
    assert_eq!(code(&home.run(&["lease", "release", id])), 0);
}

/// The trail's head as `audit anchor` prints it.
fn anchor(home: &Home) -> String {
    let out = home.run(&["audit", "anchor"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn an_untouched_trail_verifies() {
    let home = ledger_with_history();
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 0);
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["rows"], 16,
        "2 imports + 2 limits + 4 × (acquire, usage, release)"
    );
}

#[test]
fn the_table_refuses_update_and_delete() {
    let home = ledger_with_history();
    let c = common::raw(&home.db());
    let e = c
        .execute("UPDATE audit SET action = 'x' WHERE seq = 1", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = c
        .execute("DELETE FROM audit WHERE seq = 1", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
}

#[test]
fn an_edited_row_is_named() {
    let home = ledger_with_history();
    tamper(
        &home,
        "UPDATE audit SET detail = '{\"tokens\":1}' WHERE seq = 5",
    );
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(report["first_bad_seq"], 5);
    assert!(report["problem"].as_str().unwrap().contains("edited"));
}

#[test]
fn an_edited_timestamp_is_named() {
    let home = ledger_with_history();
    // Change a field other than detail too: at_ms.
    tamper(&home, "UPDATE audit SET at_ms = at_ms + 1 WHERE seq = 7");
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(report["first_bad_seq"], 7);
}

#[test]
fn a_deleted_row_is_named() {
    let home = ledger_with_history();
    tamper(&home, "DELETE FROM audit WHERE seq = 6");
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(
        report["first_bad_seq"], 7,
        "the row after the gap is where the chain breaks"
    );
}

#[test]
fn rows_deleted_from_the_end_are_caught() {
    let home = ledger_with_history();
    tamper(&home, "DELETE FROM audit WHERE seq >= 13");
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(report["first_bad_seq"], 13);
    assert!(
        report["problem"]
            .as_str()
            .unwrap()
            .contains("deleted from the end")
    );
}

#[test]
fn reordered_rows_are_named() {
    let home = ledger_with_history();
    tamper(
        &home,
        "UPDATE audit SET seq = -1 WHERE seq = 3;
         UPDATE audit SET seq = 3 WHERE seq = 4;
         UPDATE audit SET seq = 4 WHERE seq = -1;",
    );
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(report["first_bad_seq"], 3);
}

#[test]
fn the_human_form_names_the_row_on_one_line() {
    let home = ledger_with_history();
    tamper(&home, "UPDATE audit SET agent = 'mallory' WHERE seq = 9");
    let out = home.run(&["audit", "verify"]);
    assert_eq!(code(&out), 5);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("row 9"), "{err}");
}

#[test]
fn queries_filter_by_action_agent_provider_time_and_limit() {
    let home = ledger_with_history();
    let rows = home.json(&["audit", "--action", "acquire"]);
    assert_eq!(rows.as_array().unwrap().len(), 4);
    let rows = home.json(&["audit", "--agent", "a2"]);
    let actions: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["acquire", "usage", "release"]);
    let rows = home.json(&["audit", "--provider", "openai"]);
    assert_eq!(
        rows.as_array().unwrap().len(),
        2,
        "only openai's import and default limits rows"
    );
    let rows = home.json(&["audit", "--limit", "2"]);
    let seqs: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [15, 16], "the newest rows, oldest first");
    let rows = home.json(&["audit", "--since", "2026-11-24"]);
    assert!(rows.as_array().unwrap().is_empty());
    let rows = home.json(&["audit", "--until", "2026-11-24", "--since", "2026-11-23"]);
    assert_eq!(rows.as_array().unwrap().len(), 16);
}

#[test]
fn a_chain_forged_without_the_key_is_detected_and_the_row_named() {
    for how in [Forge::Sha256, Forge::HmacGuess] {
        let home = ledger_with_history();
        let usage = forge::rows(&home.db())
            .into_iter()
            .filter(|r| r.action == "usage")
            .nth(1)
            .unwrap();
        let target = usage.seq;
        // The attacker rewrites who used the tokens and how many, then recomputes every value
        // after that row and the head, as the chain is computed, and restores the triggers.
        forge::rewrite(&home.db(), how, |rows| {
            let r = rows.iter_mut().find(|r| r.seq == target).unwrap();
            r.agent = Some("mallory".into());
            let mut d: serde_json::Value = serde_json::from_str(&r.detail).unwrap();
            for v in d.as_object_mut().unwrap().values_mut() {
                if let Some(n) = v.as_i64() {
                    *v = json!(n * 100 + 1);
                }
            }
            assert_ne!(d.to_string(), r.detail, "the figures changed");
            r.detail = d.to_string();
        });
        let after = forge::rows(&home.db());
        assert_eq!(after[target as usize - 1].agent.as_deref(), Some("mallory"));
        if let Forge::Sha256 = how {
            assert_eq!(
                forge::sha256(&after[target as usize]),
                after[target as usize].hash,
                "the forgery is consistent as an unkeyed chain"
            );
        }

        let (rc, report, _) = verify(&home);
        assert_eq!(rc, 5, "{how:?}: {report}");
        assert_eq!(report["ok"], false);
        assert_eq!(report["first_bad_seq"], target, "{how:?}: {report}");
        assert!(
            report["problem"].as_str().unwrap().contains("MAC"),
            "{report}"
        );
        let out = home.run(&["audit", "verify"]);
        assert_eq!(code(&out), 5);
        assert!(
            stderr(&out).contains(&format!("row {target}")),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn an_inserted_row_is_named() {
    let home = ledger_with_history();
    // A row slipped in after row 10, later rows renumbered, the chain recomputed from there.
    forge::rewrite(&home.db(), Forge::Sha256, |rows| {
        let mut extra = rows[9].clone();
        extra.agent = Some("mallory".into());
        rows.insert(10, extra);
        for (i, r) in rows.iter_mut().enumerate() {
            r.seq = i as i64 + 1;
        }
    });
    assert_eq!(forge::rows(&home.db()).len(), 17);
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5, "{report}");
    assert_eq!(report["first_bad_seq"], 11, "{report}");
}

/// The downgrade: the attacker removes the sealed audit key and rewrites the whole trail as the
/// unkeyed SHA-256 chain of a ledger from before keyed trails. The key check, sealed under the
/// master key, still says the trail is keyed, so `audit verify` refuses it, and no later open
/// keys the forged rows over with a genuine `rekey` row.
#[test]
fn removing_the_audit_key_to_pass_a_forged_unkeyed_trail_is_detected() {
    let home = ledger_with_history();
    // Rewriting from the first row on makes every value a plain SHA-256 chain.
    forge::rewrite(&home.db(), Forge::Sha256, |rows| {
        rows[0].agent = Some("mallory".into());
    });
    tamper(&home, "DELETE FROM settings WHERE key = 'audit_key'");
    for rows in forge::rows(&home.db()) {
        assert_eq!(
            forge::sha256(&rows),
            rows.hash,
            "a consistent unkeyed chain"
        );
    }
    // Any command opens the ledger with the master key; none may key the forgery over.
    assert_eq!(code(&home.run(&["status"])), 0);
    more_history(&home, "after");
    let (rc, report, err) = verify(&home);
    assert_eq!(rc, 5, "{report} {err}");
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["problem"]
            .as_str()
            .unwrap()
            .contains("key was removed"),
        "{report}"
    );
    assert!(
        forge::rows(&home.db()).iter().all(|r| r.action != "rekey"),
        "the forged rows were covered by a rekey row"
    );
}

/// The same downgrade with the key check removed too: the ledger holds sealed credentials, so
/// a missing key check is itself the sign of an edited file, and nothing runs on it.
#[test]
fn removing_the_key_check_of_a_ledger_with_credentials_is_refused() {
    let home = ledger_with_history();
    tamper(
        &home,
        "DELETE FROM settings WHERE key IN ('audit_key', 'vault_key_check')",
    );
    let before = common::snapshot(&home.db());
    for args in [&["audit", "verify"][..], &["status"], &["token", "claude"]] {
        let out = home.run(args);
        assert_eq!(code(&out), 5, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("key check is missing"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(common::snapshot(&home.db()), before, "nothing was written");
}

#[test]
fn verify_against_an_anchor_passes_while_the_trail_extends_it() {
    let home = ledger_with_history();
    let head = anchor(&home);
    let (seq, mac) = head.split_once(':').unwrap();
    assert_eq!(seq, "16");
    assert_eq!(mac.len(), 64, "{head}");
    assert!(head.len() <= 80);
    let j = home.json(&["audit", "anchor"]);
    assert_eq!(j["anchor"], head.as_str());
    assert_eq!(j["seq"], 16);
    assert_eq!(j["mac"], mac);

    more_history(&home, "later");
    let (rc, report, err) = verify_with(&home, &["--anchor", &head]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["rows"], 18);
    let out = home.run(&["audit", "verify", "--anchor", &head]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("anchor row 16"), "{}", stdout(&out));

    // Not an anchor: a usage error, and nothing is checked.
    for bad in ["16", "x:y", "16:abcd", &format!("-1:{mac}")] {
        let out = home.run(&["audit", "verify", "--anchor", bad]);
        assert_eq!(code(&out), 2, "{bad}: {}", stderr(&out));
    }
}

#[test]
fn a_cut_before_the_anchor_is_named() {
    let home = ledger_with_history();
    let head = anchor(&home);
    more_history(&home, "later");
    // Rows 10 onwards removed and the head moved back to row 9: a valid, shorter chain.
    tamper(
        &home,
        "DELETE FROM audit WHERE seq >= 10;
         UPDATE settings SET value = (SELECT seq || ':' || hash FROM audit WHERE seq = 9)
         WHERE key = 'audit_head';",
    );
    let (rc, report, _) = verify_with(&home, &["--anchor", &head]);
    assert_eq!(rc, 5, "{report}");
    assert_eq!(report["first_bad_seq"], 10, "{report}");
    let problem = report["problem"].as_str().unwrap();
    assert!(problem.contains("anchored row 16"), "{problem}");
}

#[test]
fn a_rewrite_before_the_anchor_is_named() {
    // Without the key: the rewritten row itself is named.
    let home = ledger_with_history();
    let head = anchor(&home);
    more_history(&home, "later");
    forge::rewrite(&home.db(), Forge::HmacGuess, |rows| {
        rows[11].agent = Some("mallory".into());
    });
    let (rc, report, _) = verify_with(&home, &["--anchor", &head]);
    assert_eq!(rc, 5, "{report}");
    assert_eq!(report["first_bad_seq"], 12, "{report}");

    // With the key (a restored backup written over by its owner): every MAC is valid, but
    // the trail no longer extends the anchor, and the anchored row is named.
    let home = ledger_with_history();
    let backup = std::fs::read(home.db()).unwrap();
    more_history(&home, "original");
    let head = anchor(&home);
    assert!(head.starts_with("18:"), "{head}");
    std::fs::write(home.db(), &backup).unwrap();
    more_history(&home, "rewritten");
    more_history(&home, "rewritten");
    let (rc, _, _) = verify(&home);
    assert_eq!(rc, 0, "a valid trail on its own");
    let (rc, report, _) = verify_with(&home, &["--anchor", &head]);
    assert_eq!(rc, 5, "{report}");
    assert_eq!(report["first_bad_seq"], 18, "{report}");
    assert!(
        report["problem"].as_str().unwrap().contains("anchor"),
        "{report}"
    );
}

#[test]
fn a_process_without_the_master_key_cannot_extend_a_keyed_trail() {
    let home = ledger_with_history();
    let key = home.path().join("keys/master.key");
    let kept = home.path().join("kept.key");
    std::fs::rename(&key, &kept).unwrap();
    let before = home.snapshot();
    let out = home.run(&["lease", "acquire", "--agent", "x", "--provider", "claude"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("master key"), "{}", stderr(&out));
    assert_eq!(home.snapshot(), before, "nothing was written");
    // Nor can it vouch for the keyed rows.
    assert_eq!(code(&home.run(&["audit", "verify"])), 5);

    std::fs::rename(&kept, &key).unwrap();
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["rows"], 16);
}

#[test]
fn key_rotation_keeps_the_keyed_trail_verifiable() {
    let home = ledger_with_history();
    let (_, before, _) = verify(&home);
    assert_eq!(
        before["keyed_from"], 1,
        "a new ledger is keyed from its first row"
    );
    let out = home.run(&["key", "rotate"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    more_history(&home, "after-rotation");
    let (rc, report, err) = verify(&home);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(report["rows"], 19, "16 + key_rotate + acquire + release");
    assert_eq!(report["keyed_from"], 1, "one chain key before and after");
    // Rows written after the rotation are keyed too.
    forge::rewrite(&home.db(), Forge::Sha256, |rows| {
        rows[17].agent = Some("mallory".into());
    });
    let (rc, report, _) = verify(&home);
    assert_eq!(rc, 5);
    assert_eq!(report["first_bad_seq"], 18);
}

#[test]
fn the_library_anchors_and_verifies_against_an_anchor() {
    use authledger::audit::Anchor;
    use authledger::{AcquireRequest, AgentId, LimitsUpdate, Provider};
    // Limits first (no key yet: an unkeyed row), then the first credential keys the trail.
    let f = library_ledger(
        T0,
        LimitsUpdate {
            daily_tokens: Some(1_000),
            ..LimitsUpdate::default()
        },
    );
    let report = f.ledger.verify_audit().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.keyed_from, Some(2));
    let rows = f.ledger.audit(&authledger::AuditQuery::default()).unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["limits", "rekey", "login"]);
    assert_eq!(rows[1].prev_hash, rows[0].hash, "rekey chains to the tail");

    let head = f.ledger.audit_anchor().unwrap();
    assert_eq!(head.seq, 3);
    assert_eq!(head.to_string().parse::<Anchor>().unwrap(), head);
    assert!("3".parse::<Anchor>().is_err());
    let lease = f
        .ledger
        .acquire(&AcquireRequest::new(AgentId::new("lib").unwrap(), Provider::Claude).tokens(10))
        .unwrap();
    f.ledger.release(&lease.id).unwrap();
    assert!(f.ledger.verify_audit_against(&head).unwrap().ok);
    let other = Anchor {
        seq: 3,
        mac: "ab".repeat(32),
    };
    let report = f.ledger.verify_audit_against(&other).unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_bad_seq, Some(3));
}

#[test]
fn a_top_up_reads_as_a_sentence_and_keeps_its_json() {
    let home = Home::new();
    let out = home.run(&[
        "--json",
        "lease",
        "acquire",
        "--agent",
        "grower",
        "--provider",
        "claude",
        "--tokens",
        "20000",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = id["lease_id"].as_str().unwrap();
    common::home_ledger(&home, T0)
        .top_up(&authledger::LeaseId::parse(id).unwrap(), 8192)
        .unwrap();
    let text = stdout(&home.run(&["audit", "--action", "topup"]));
    assert!(text.contains("topped up +8192 → 28192"), "{text}");
    let rows = home.json(&["audit", "--action", "topup"]);
    assert_eq!(rows[0]["detail"]["tokens"], 8192, "{rows}");
    assert_eq!(rows[0]["detail"]["allocated"], 28192, "{rows}");
}
