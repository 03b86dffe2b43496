//! The store holds only redacted text (issue 12, item 3): a canary planted in
//! every free-text value of every write never reaches `steward.db` or its
//! WAL, raw or escaped, and JSON values stay JSON.

use super::*;

/// A credential value the store's redactor knows; no rule would spot it.
const CANARY: &str = "canary-store-value-5e6f7a8b";

fn knowing_canary() -> SharedRedactor {
    crate::redaction::shared(redact::RedactorBuilder::new().secret("social", CANARY).build())
}

/// The canary's spellings an agent or upstream might use: as is, its first
/// letter percent-encoded, JSON-escaped, double-encoded.
fn spellings() -> [String; 4] {
    [
        CANARY.to_owned(),
        format!("%63{}", &CANARY[1..]),
        format!("\\u0063{}", &CANARY[1..]),
        format!("%2563{}", &CANARY[1..]),
    ]
}

/// Every table's every text value, as SQLite returns it.
fn all_text(path: &Path) -> String {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = String::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                if let Ok(Some(text)) = row.get::<_, Option<String>>(i) {
                    out.push_str(&text);
                    out.push('\n');
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn every_free_text_value_is_redacted_before_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let store = Store::open(&path, knowing_canary()).unwrap();
    let [raw, percent, json, double] = spellings();

    // An admitted LLM-style call: every free-text field of the admission and
    // of the spend hold carries the canary.
    let mut a = admission("c1", T0, Some(&format!("tool-{raw}")), "k1");
    a.upstream = format!("nope-{percent}");
    a.method = format!("M{raw}");
    a.path = format!("/api/echo/{percent}?q={double}");
    a.input_summary = format!("{{\"status\":\"{json}\"}}");
    a.spend = Some(SpendHold {
        day: "2026-11-30".into(),
        provider: format!("p-{raw}"),
        model: format!("gpt-4o-{raw}"),
        reserve_micros: 10,
        cap_micros: None,
    });
    assert_eq!(store.admit(a).await.unwrap(), AdmitOutcome::Admitted);
    let extra = serde_json::json!({"model": raw, raw.clone(): [percent, 1], "nested": {"id": json}}).to_string();
    store
        .complete(Completion {
            response_ref: Some(format!("resp-{raw}")),
            undo: None,
            error: Some(format!("upstream said {double}")),
            extra_json: Some(extra),
            spend: Some(SpendSettlement {
                micros: 5,
                input_tokens: 1,
                output_tokens: 1,
                cached_tokens: 0,
                estimated: false,
                stop: Some(format!("overran its reservation {raw}")),
            }),
            ..completion("c1", T0 + 5, Some(200))
        })
        .await
        .unwrap();

    // A refused call (unknown upstream), the kill switch, and kv values.
    let refused = Admission { upstream: format!("nope-{raw}"), ..admission("c2", T0 + 10, None, "k2") };
    store
        .record_refused(
            refused,
            crate::decision::Decision::UnknownUpstream,
            &format!("no upstream named `nope-{raw}`"),
            404,
        )
        .await
        .unwrap();
    store.engage_kill(&format!("stop: {percent}"), &format!("cli {raw}"), T0 + 20).await.unwrap();
    store.kv_set("alerts:state", &serde_json::json!({"detail": json, "n": 3}).to_string(), T0).await.unwrap();
    store.kv_set("plain", &format!("sent {raw}"), T0).await.unwrap();
    // An approval request and its decision (supervised mode).
    store
        .create_approval(NewApproval {
            id: "ab12".into(),
            created_ms: T0,
            expires_ms: T0 + 1_000_000,
            door: "api".into(),
            tool: format!("post-{raw}"),
            upstream: format!("social-{percent}"),
            method: "POST".into(),
            path: format!("/api/v1/statuses?q={double}"),
            digest: "d".repeat(64),
            summary: format!("{{\"status\":\"{json}\"}}"),
        })
        .await
        .unwrap();
    store
        .decide_approval(ApprovalDecision {
            id: "ab12".into(),
            verdict: Verdict::Deny,
            by: format!("ana {raw}"),
            via: "cli".into(),
            note: Some(format!("leaks {percent}")),
            now_ms: T0 + 1,
        })
        .await
        .unwrap();

    let stored = all_text(&path);
    for spelling in spellings() {
        assert!(!stored.contains(&spelling), "{spelling} reached the store:\n{stored}");
    }
    assert!(stored.contains("[REDACTED:credential]"), "{stored}");
    // What the store hands back is what it holds.
    let rows = store.last(LastQuery::default()).await.unwrap();
    let row = rows.iter().find(|r| r.id == "c1").unwrap();
    assert_eq!(row.upstream, "nope-[REDACTED:credential]");
    assert_eq!(row.response_ref.as_deref(), Some("resp-[REDACTED:credential]"));
    let extra: serde_json::Value = serde_json::from_str(row.extra_json.as_deref().unwrap()).unwrap();
    assert_eq!(extra["model"], "[REDACTED:credential]");
    assert_eq!(extra["[REDACTED:credential]"][1], 1);
    let state: serde_json::Value = serde_json::from_str(&store.kv_get("alerts:state").await.unwrap().unwrap()).unwrap();
    assert_eq!(state, serde_json::json!({"detail": "[REDACTED:credential]", "n": 3}));
    let kill = store.kill_state().await.unwrap();
    assert_eq!(kill.reason.as_deref(), Some("stop: [REDACTED:credential]"));
    let spend = store.spend_by_day("2026-11-30", "2026-11-30").await.unwrap();
    assert_eq!(spend[0].model, "gpt-4o-[REDACTED:credential]");

    // The bytes on disk hold none of it either: the WAL while the store is
    // open, the database file once it is checkpointed and closed.
    leak_check::assert_no_needles(dir.path(), &spellings(), &[]);
    drop(store);
    leak_check::assert_no_needles(dir.path(), &spellings(), &[]);
}

#[tokio::test]
async fn a_kill_reason_written_knowing_less_is_redacted_again_when_copied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    // `steward stop` knew only the rules; the daemon knows the credential.
    let cli = Store::open(&path, redactor()).unwrap();
    cli.engage_kill(&format!("leaked {CANARY}"), "cli", T0).await.unwrap();
    let daemon = Store::open(&path, knowing_canary()).unwrap();
    let outcome = daemon.admit(admission("c1", T0 + 1, Some("post"), "k")).await.unwrap();
    assert_eq!(outcome, AdmitOutcome::Killed { reason: "leaked [REDACTED:credential]".into() });
    let rows = daemon.last(LastQuery::default()).await.unwrap();
    let message = crate::store::KillState::refusal_message("leaked [REDACTED:credential]");
    assert_eq!(rows[0].reason.as_deref(), Some(message.as_str()));
}

#[tokio::test]
async fn a_store_that_withholds_everything_stores_no_unchecked_text() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("steward.db"), crate::redaction::shared(redact::Redactor::withhold_all()))
        .unwrap();
    store.kv_set("k", &format!("value {CANARY}"), T0).await.unwrap();
    assert_eq!(store.kv_get("k").await.unwrap().as_deref(), Some("[REDACTED:redactor-error]"));
    // Reads and empty writes are unaffected.
    store.kv_set("empty", "", T0).await.unwrap();
    assert_eq!(store.kv_get("empty").await.unwrap().as_deref(), Some(""));
    store.check_writable().await.unwrap();
}
