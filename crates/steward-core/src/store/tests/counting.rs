//! What the store counts: the one window rule (admission, `steward status`
//! and the error-rate alert agree to the millisecond), and the error-rate
//! flag written with each outcome (and backfilled by migration 4).

use super::*;
use crate::decision::Decision;

#[tokio::test]
async fn admission_the_tool_counts_and_the_error_rate_agree_at_the_window_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let per = Duration::from_millis(1000);
    let limit = Some(RateLimit { max: 1, per });
    assert_eq!(store.admit(limited("a", T0, limit)).await.unwrap(), AdmitOutcome::Admitted);
    store.complete(completion("a", T0 + 1, Some(200))).await.unwrap();

    // One millisecond before `a` is a window old: inside, for everyone.
    let before = Window::ending_at(T0 + 999, per);
    assert!(before.contains(T0));
    assert_eq!(store.tool_counts_in(before).await.unwrap(), [("post".to_owned(), 1)]);
    assert!(matches!(store.admit(limited("b", T0 + 999, limit)).await.unwrap(), AdmitOutcome::RateLimited { .. }));
    assert_eq!(store.error_counts_in(before).await.unwrap(), (2, 0), "`a` and the refusal of `b`");

    // Exactly a window old: outside, for everyone.
    let at = Window::ending_at(T0 + 1000, per);
    assert!(!at.contains(T0) && at.contains(T0 + 1));
    assert_eq!(store.tool_counts_in(at).await.unwrap(), []);
    assert_eq!(store.error_counts_in(at).await.unwrap(), (1, 0), "only the refusal of `b`");
    assert_eq!(store.admit(limited("c", T0 + 1000, limit)).await.unwrap(), AdmitOutcome::Admitted);
    assert_eq!(store.tool_counts_in(at).await.unwrap(), [("post".to_owned(), 1)], "`c` itself");
}

#[tokio::test]
async fn the_error_flag_is_written_with_each_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let all = Window::after(0);
    for (id, status) in [("ok", Some(200)), ("not_found", Some(404)), ("broken", Some(503)), ("unreachable", None)] {
        store.admit(admission(id, T0, Some("post"), id)).await.unwrap();
        store.complete(completion(id, T0 + 1, status)).await.unwrap();
    }
    assert_eq!(store.error_counts_in(all).await.unwrap(), (4, 2), "5xx and no response failed");
    // In flight: not weighed until it completes.
    store.admit(admission("flight", T0, Some("post"), "flight")).await.unwrap();
    assert_eq!(store.error_counts_in(all).await.unwrap(), (4, 2));

    let refuse = |id: &str, decision: Decision| {
        let store = store.clone();
        let a = admission(id, T0 + 2, None, "");
        async move { store.record_refused(a, decision, "refused", 400).await.unwrap() }
    };
    refuse("unmatched", Decision::Unmatched).await;
    refuse("bad", Decision::BadRequest).await;
    refuse("killed", Decision::Killed).await;
    refuse("anonymous", Decision::Unauthenticated).await;
    assert_eq!(store.error_counts_in(all).await.unwrap(), (6, 3), "unmatched failed, bad judged, the rest left out");

    // Withdrawn (the audit log failed): a failure.
    store.admit(admission("withdrawn", T0, Some("post"), "w")).await.unwrap();
    store.withdraw("withdrawn", Decision::StoreUnavailable, "audit log", 503, T0 + 3).await.unwrap();
    assert_eq!(store.error_counts_in(all).await.unwrap(), (7, 4));
    // Interrupted by a restart: the outcome is unknown, left out.
    assert_eq!(store.settle_interrupted(T0 + 4).await.unwrap(), 1);
    assert_eq!(store.error_counts_in(all).await.unwrap(), (7, 4));
}

/// A row as a steward before the flag wrote it: `(id, decision, status,
/// finished, reason)`.
type OldRow = (&'static str, &'static str, Option<u16>, bool, Option<&'static str>);

/// Rows journaled before migration 4 get the flag the old SQL list gave them.
#[tokio::test]
async fn migration_4_backfills_the_error_flag_from_the_old_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let rows: &[OldRow] = &[
        ("ok", "allowed", Some(200), true, None),
        ("not_found", "allowed", Some(404), true, None),
        ("broken", "allowed", Some(500), true, None),
        ("unreachable", "allowed", None, true, Some("connection refused")),
        ("flight", "allowed", None, false, None),
        ("interrupted", "allowed", None, true, Some("interrupted")),
        ("loop", "loop_detected", None, true, None),
        ("store", "store_unavailable", Some(503), true, None),
        ("unmatched", "unmatched", Some(403), true, None),
        ("price", "unknown_price", Some(403), true, None),
        ("limited", "rate_limited", None, true, None),
        ("bad", "bad_request", Some(400), true, None),
        ("anonymous", "unauthenticated", Some(401), true, None),
        ("killed", "killed", None, true, None),
        ("capped", "spend_cap", None, true, None),
    ];
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        schema::migrate(&conn, &schema::MIGRATIONS[..3]).unwrap();
        for (id, decision, status, finished, reason) in rows {
            conn.execute(
                "INSERT INTO calls (id, started_ms, finished_ms, door, upstream, method, path, loop_key,
                                    input_summary, input_sha256, decision, reason, status)
                 VALUES (?1, ?2, ?3, 'api', 'u', 'GET', '/', '', '', '', ?4, ?5, ?6)",
                rusqlite::params![id, T0, finished.then_some(T0 + 1), decision, reason, status],
            )
            .unwrap();
        }
    }
    let store = Store::open(&path, redactor()).unwrap();
    assert_eq!(user_version(&path), i64::try_from(schema::MIGRATIONS.len()).unwrap());
    assert_eq!(store.error_counts_in(Window::after(0)).await.unwrap(), (10, 6));

    // Each backfilled flag is the one the decision's mapping writes today.
    let conn = rusqlite::Connection::open(&path).unwrap();
    for (id, decision, status, finished, reason) in rows {
        let flag: Option<bool> =
            conn.query_row("SELECT counts_as_error FROM calls WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        let expected = match (finished, reason) {
            (false, _) | (true, Some("interrupted")) => None,
            _ => Decision::parse(decision).unwrap().counts_as_error(*status),
        };
        assert_eq!(flag, expected, "{id}");
    }
}
