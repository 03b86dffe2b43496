//! The spend ledger: reservations against the cap are exact under
//! concurrency, settle to the real cost, and survive a crash conservatively.

use super::*;

pub(crate) fn hold(day: &str, reserve_micros: u64, cap_micros: Option<u64>) -> SpendHold {
    SpendHold { day: day.into(), provider: "openai".into(), model: "gpt-4o-mini".into(), reserve_micros, cap_micros }
}

pub(crate) fn priced(id: &str, now_ms: i64, spend: SpendHold) -> Admission {
    Admission { spend: Some(spend), door: "llm".into(), ..admission(id, now_ms, Some("openai:chat.completions"), id) }
}

pub(crate) fn settled(id: &str, micros: u64) -> Completion {
    Completion {
        spend: Some(SpendSettlement {
            micros,
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: 0,
            estimated: false,
            stop: None,
        }),
        ..completion(id, T0 + 10, Some(200))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reservations_never_pass_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    // 100 calls of 30 µUSD worst case against a 1000 µUSD cap: exactly 33 fit.
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.admit(priced(&format!("s{i}"), T0 + i, hold("2026-11-26", 30, Some(1000)))).await
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap().unwrap() {
            AdmitOutcome::Admitted => admitted.push(format!("s{i}")),
            AdmitOutcome::SpendCapped { spent_micros, cap_micros, reserve_micros } => {
                assert_eq!(cap_micros, 1000);
                assert_eq!(reserve_micros, 30);
                assert!(spent_micros + 30 > 1000, "refused although it fit: {spent_micros}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(admitted.len(), 33);
    assert_eq!(store.spend_total("2026-11-26").await.unwrap(), 990);

    // Settling at the real (lower) cost frees room under the cap.
    for id in &admitted {
        store.complete(settled(id, 10)).await.unwrap();
    }
    assert_eq!(store.spend_total("2026-11-26").await.unwrap(), 330);
    let outcome = store.admit(priced("late", T0 + 500, hold("2026-11-26", 30, Some(1000)))).await.unwrap();
    assert_eq!(outcome, AdmitOutcome::Admitted);
    // Another day has its own budget.
    assert_eq!(store.spend_total("2026-11-27").await.unwrap(), 0);

    let rows = store.spend_by_day("2026-11-01", "2026-11-30").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].calls, 34);
    assert_eq!(rows[0].settled_micros, 330);
    assert_eq!(rows[0].reserved_micros, 30);
    let refused = store.last(LastQuery { limit: 200, failed_only: true, ..LastQuery::default() }).await.unwrap();
    assert_eq!(refused.iter().filter(|r| r.decision == "spend_cap").count(), 67);
    let cost = store.last(LastQuery { limit: 200, ..LastQuery::default() }).await.unwrap();
    assert!(cost.iter().any(|r| r.cost_usd == Some(0.00001)));
}

#[tokio::test]
async fn a_crash_settles_open_reservations_at_their_worst_case() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.admit(priced("open", T0, hold("2026-11-26", 500, None))).await.unwrap();
    store.admit(priced("done", T0 + 1, hold("2026-11-26", 500, None))).await.unwrap();
    store.complete(settled("done", 120)).await.unwrap();
    drop(store);
    let store = open_in(dir.path());
    assert_eq!(store.settle_interrupted(T0 + 100).await.unwrap(), 1);
    let rows = store.spend_by_day("2026-11-26", "2026-11-26").await.unwrap();
    assert_eq!(rows[0].settled_micros, 620);
    assert_eq!(rows[0].reserved_micros, 0);
    assert_eq!(store.spend_total("2026-11-26").await.unwrap(), 620);
}

/// The ledger's own sum for `day`, the definition the running total must match.
fn ledger_sum(path: &std::path::Path, day: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT COALESCE(SUM(COALESCE(settled_micros, reserved_micros)), 0) FROM spend WHERE day = ?1",
        [day],
        |row| row.get(0),
    )
    .unwrap()
}

#[tokio::test]
async fn the_running_day_total_matches_the_ledger_through_reserve_settle_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let db = dir.path().join("steward.db");
    for (i, day) in ["2026-11-26", "2026-11-26", "2026-11-27", "2026-11-26"].iter().enumerate() {
        store.admit(priced(&format!("c{i}"), T0 + i as i64, hold(day, 100 + i as u64, None))).await.unwrap();
    }
    store.complete(settled("c0", 7)).await.unwrap();
    store.complete(settled("c2", 0)).await.unwrap();
    for day in ["2026-11-26", "2026-11-27", "2026-11-28"] {
        let total = store.spend_total(day).await.unwrap();
        assert_eq!(i64::try_from(total).unwrap(), ledger_sum(&db, day), "{day}");
    }
    assert_eq!(store.spend_total("2026-11-26").await.unwrap(), 7 + 101 + 103);
    drop(store);
    let store = open_in(dir.path());
    store.settle_interrupted(T0 + 100).await.unwrap();
    assert_eq!(store.spend_total("2026-11-26").await.unwrap(), 7 + 101 + 103);
    assert_eq!(i64::try_from(store.spend_total("2026-11-27").await.unwrap()).unwrap(), ledger_sum(&db, "2026-11-27"));
}

#[tokio::test]
async fn a_store_from_before_the_running_total_is_backfilled_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("steward.db");
    {
        // A version-2 store (ledger, no running total) with one settled and one open call.
        let conn = rusqlite::Connection::open(&db).unwrap();
        for migration in &crate::store::schema::MIGRATIONS[..2] {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 2;
             INSERT INTO spend (call_id, day, provider, model, reserved_micros, settled_micros, created_ms)
                 VALUES ('a', '2026-11-26', 'openai', 'm', 500, 40, 1), ('b', '2026-11-26', 'openai', 'm', 300, NULL, 2);",
        )
        .unwrap();
    }
    let store = open_in(dir.path());
    assert_eq!(store.spend_total("2026-11-26").await.unwrap(), 340);
}

/// History retention: settled records of old days go, in batches, with
/// their day totals; open reservations and recent days stay exact.
#[tokio::test]
async fn pruning_deletes_old_settled_records_and_their_day_totals_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let db = dir.path().join("steward.db");
    for i in 0..5 {
        store.admit(priced(&format!("old{i}"), T0 + i, hold("2025-01-10", 100, None))).await.unwrap();
        store.complete(settled(&format!("old{i}"), 40)).await.unwrap();
    }
    // An old reservation that never settled (a daemon that has not restarted since).
    store.admit(priced("open", T0 + 10, hold("2025-01-11", 300, None))).await.unwrap();
    store.admit(priced("today", T0 + 11, hold("2026-11-26", 200, None))).await.unwrap();
    store.complete(settled("today", 50)).await.unwrap();

    // Two rows per batch: the caller repeats until a batch comes back short.
    assert_eq!(store.prune_spend("2026-01-01", 2).await.unwrap(), 2);
    assert_eq!(store.spend_total("2025-01-10").await.unwrap(), 120, "the total follows the remaining records");
    assert_eq!(store.prune_spend("2026-01-01", 2).await.unwrap(), 2);
    assert_eq!(store.prune_spend("2026-01-01", 2).await.unwrap(), 1);
    assert_eq!(store.prune_spend("2026-01-01", 2).await.unwrap(), 0);

    assert_eq!(store.spend_by_day("2025-01-01", "2025-01-31").await.unwrap().len(), 1, "only the open reservation");
    assert_eq!(store.spend_total("2025-01-10").await.unwrap(), 0);
    assert_eq!(store.spend_total("2025-01-11").await.unwrap(), 300);
    assert_eq!(store.spend_total("2026-11-26").await.unwrap(), 50);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let days: Vec<String> = conn
        .prepare("SELECT day FROM spend_days ORDER BY day")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(days, ["2025-01-11", "2026-11-26"], "the emptied day's total row is gone");
    for day in ["2025-01-11", "2026-11-26"] {
        assert_eq!(i64::try_from(store.spend_total(day).await.unwrap()).unwrap(), ledger_sum(&db, day), "{day}");
    }
}

/// Issue 23 item 7: absurd counts (10^18 tokens on two concurrent streams)
/// overflowed the day's running total ("cannot store REAL value in INTEGER
/// column"): the completions failed, the calls were never journaled, and
/// later calls were still admitted.
#[tokio::test]
async fn absurd_settlements_are_stored_saturated_and_never_lose_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let db = dir.path().join("steward.db");
    for id in ["a", "b"] {
        store.admit(priced(id, T0, hold("2026-11-26", 100, Some(1_000_000)))).await.unwrap();
    }
    for id in ["a", "b"] {
        let absurd = SpendSettlement {
            micros: u64::MAX,
            input_tokens: u64::MAX,
            output_tokens: 1_000_000_000_000_000_000,
            cached_tokens: 0,
            estimated: false,
            stop: None,
        };
        store.complete(Completion { spend: Some(absurd), ..completion(id, T0 + 10, Some(200)) }).await.unwrap();
    }
    let rows = store.last(LastQuery::default()).await.unwrap();
    assert!(rows.iter().all(|r| r.finished_ms.is_some() && r.status == Some(200)), "{rows:?}");
    assert_eq!(store.spend_total("2026-11-26").await.unwrap(), 2 * MAX_STORED_MICROS);
    assert_eq!(i64::try_from(store.spend_total("2026-11-26").await.unwrap()).unwrap(), ledger_sum(&db, "2026-11-26"));
    let day = &store.spend_by_day("2026-11-26", "2026-11-26").await.unwrap()[0];
    assert_eq!(day.output_tokens, 2 * MAX_STORED_TOKENS);
    let next = store.admit(priced("c", T0 + 20, hold("2026-11-26", 1, Some(1_000_000)))).await.unwrap();
    assert!(matches!(next, AdmitOutcome::SpendCapped { .. }), "{next:?}");
}

/// Issue 23 item 1: a call billed past its reservation stops priced calls
/// for the rest of its spend day, in the settlement's own transaction.
#[tokio::test]
async fn a_settlement_over_its_reservation_stops_the_day_until_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.admit(priced("over", T0, hold("2026-11-26", 100, Some(1_000_000)))).await.unwrap();
    store.admit(priced("inflight", T0 + 1, hold("2026-11-26", 100, Some(1_000_000)))).await.unwrap();
    let reason = "provider `openai` (model `gpt-4o-mini`) used more than its reservation: billed $0.0003";
    let over = SpendSettlement {
        micros: 300,
        input_tokens: 10,
        output_tokens: 500,
        cached_tokens: 0,
        estimated: false,
        stop: Some(reason.to_owned()),
    };
    store.complete(Completion { spend: Some(over), ..completion("over", T0 + 5, Some(200)) }).await.unwrap();
    assert_eq!(store.spend_total("2026-11-26").await.unwrap(), 400, "billed what was reported");
    let stop = store.spend_stop("2026-11-26").await.unwrap().unwrap();
    assert_eq!((stop.reason.as_str(), stop.call_id.as_str()), (reason, "over"));

    // Far under the cap, and still refused; journaled with the reason.
    let next = store.admit(priced("next", T0 + 6, hold("2026-11-26", 1, Some(1_000_000)))).await.unwrap();
    assert_eq!(next, AdmitOutcome::SpendStopped { reason: reason.to_owned() });
    let rows = store.last(LastQuery::default()).await.unwrap();
    assert_eq!(rows[0].decision, "spend_cap");
    assert_eq!(rows[0].reason.as_deref(), Some(reason));
    // A second overrun the same day keeps the first cause on record.
    let again = SpendSettlement { stop: Some("second".to_owned()), ..settled("x", 1).spend.unwrap() };
    store.complete(Completion { spend: Some(again), ..completion("inflight", T0 + 7, Some(200)) }).await.unwrap();
    assert_eq!(store.spend_stop("2026-11-26").await.unwrap().unwrap().reason, reason);
    // Unpriced calls and other days are not stopped.
    assert_eq!(store.admit(admission("api", T0 + 8, Some("post"), "k")).await.unwrap(), AdmitOutcome::Admitted);
    assert!(store.spend_stop("2026-11-27").await.unwrap().is_none());
    let tomorrow = store.admit(priced("tomorrow", T0 + 9, hold("2026-11-27", 1, Some(1_000_000)))).await.unwrap();
    assert_eq!(tomorrow, AdmitOutcome::Admitted);
    // `steward resume` lifts it.
    assert_eq!(store.lift_spend_stop().await.unwrap().unwrap().reason, reason);
    let lifted = store.admit(priced("lifted", T0 + 10, hold("2026-11-26", 1, Some(1_000_000)))).await.unwrap();
    assert_eq!(lifted, AdmitOutcome::Admitted);
}
