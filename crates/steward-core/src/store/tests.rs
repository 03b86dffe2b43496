//! Store tests: migrations, file modes, exact windows under concurrency,
//! loop breaker, kill switch across processes. What windows and the
//! error-rate flag count is in `tests/counting.rs`. Failure modes are in
//! `tests/failures.rs`, the WAL's bound in `tests/wal.rs`. The call and
//! ledger fixtures are `pub(crate)`: other modules' tests (the daemon's
//! retention) journal calls with them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use super::*;

mod approvals;
mod counting;
mod failures;
mod redaction;
pub(crate) mod spend;
mod undo;
mod wal;

const HOUR_MS: i64 = 3_600_000;
pub(crate) const T0: i64 = 1_790_000_000_000;

fn no_breaker() -> LoopBreakerConfig {
    LoopBreakerConfig { max_identical: 0, window: Duration::ZERO }
}

fn breaker(max_identical: u32) -> LoopBreakerConfig {
    LoopBreakerConfig { max_identical, window: Duration::from_secs(60) }
}

fn per_hour(max: u32) -> Option<RateLimit> {
    Some(RateLimit { max, per: Duration::from_secs(3600) })
}

pub(crate) fn admission(id: &str, now_ms: i64, tool: Option<&str>, loop_key: &str) -> Admission {
    Admission {
        call_id: id.to_owned(),
        now_ms,
        door: "api".into(),
        tool: tool.map(str::to_owned),
        upstream: "mastodon".into(),
        method: "POST".into(),
        path: "/api/v1/statuses".into(),
        loop_key: loop_key.to_owned(),
        input_summary: "{\"status\":\"hello\"}".into(),
        input_sha256: "ab".repeat(32),
        limit: None,
        loop_breaker: no_breaker(),
        undo_by_operator: false,
        spend: None,
    }
}

fn limited(id: &str, now_ms: i64, limit: Option<RateLimit>) -> Admission {
    Admission { limit, ..admission(id, now_ms, Some("post"), id) }
}

pub(crate) fn completion(id: &str, now_ms: i64, status: Option<u16>) -> Completion {
    Completion {
        call_id: id.to_owned(),
        now_ms,
        status,
        duration_ms: 12,
        attempts: 1,
        response_ref: None,
        undo: None,
        error: None,
        extra_json: None,
        spend: None,
    }
}

/// The redactor test stores write through: every rule and PII detector, no
/// known secret. Built once per test binary (compiling the rules is slow in
/// debug builds) and shared.
pub(crate) fn redactor() -> SharedRedactor {
    static SHARED: std::sync::LazyLock<SharedRedactor> =
        std::sync::LazyLock::new(|| crate::redaction::shared(redact::Redactor::default()));
    Arc::clone(&SHARED)
}

fn open_in(dir: &Path) -> Store {
    Store::open(&dir.join("steward.db"), redactor()).unwrap()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn user_version(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn migrations_are_versioned_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    drop(Store::open(&path, redactor()).unwrap());
    assert_eq!(user_version(&path), i64::try_from(schema::MIGRATIONS.len()).unwrap());
    // Reopening applies nothing twice (a second CREATE TABLE would fail).
    let store = Store::open(&path, redactor()).unwrap();
    assert_eq!(store.admit(admission("a", T0, Some("post"), "k")).await.unwrap(), AdmitOutcome::Admitted);
    drop(store);
    assert_eq!(user_version(&path), i64::try_from(schema::MIGRATIONS.len()).unwrap());

    // A later release appends a migration: only the new one runs.
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    schema::migrate(&conn, &["CREATE TABLE a (x INTEGER)"]).unwrap();
    conn.execute("INSERT INTO a VALUES (1)", []).unwrap();
    let two: &[&str] = &["CREATE TABLE a (x INTEGER)", "CREATE TABLE b (y INTEGER)"];
    schema::migrate(&conn, two).unwrap();
    schema::migrate(&conn, two).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, 2);
    let kept: i64 = conn.query_row("SELECT COUNT(*) FROM a", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, 1);
    conn.execute("INSERT INTO b VALUES (1)", []).unwrap();
}

#[tokio::test]
async fn files_are_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let store = Store::open(&path, redactor()).unwrap();
    store.admit(admission("a", T0, Some("post"), "k")).await.unwrap();
    for name in ["steward.db", "steward.db-wal", "steward.db-shm"] {
        assert_eq!(mode_of(&dir.path().join(name)), 0o600, "{name}");
    }
    drop(store);

    // A world-readable file left by someone else is tightened on open.
    let loose = dir.path().join("loose.db");
    std::fs::write(&loose, b"").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(&loose, redactor()).unwrap();
    store.kv_set("k", "v", T0).await.unwrap();
    for name in ["loose.db", "loose.db-wal", "loose.db-shm"] {
        assert_eq!(mode_of(&dir.path().join(name)), 0o600, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_admits_against_ten_per_hour_admit_exactly_ten() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.admit(limited(&format!("c{i}"), T0 + i, per_hour(10))).await })
        })
        .collect();
    let mut admitted = 0;
    let mut limited_count = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            AdmitOutcome::Admitted => admitted += 1,
            AdmitOutcome::RateLimited { retry_after_ms } => {
                // The admissions' clocks are T0..T0+19 but they commit in any
                // order: one stamped T0 may find a slot taken at T0+6, which
                // frees an hour after T0+6, i.e. up to 19 ms over an hour.
                assert!((1..=HOUR_MS + 19).contains(&retry_after_ms), "{retry_after_ms}");
                limited_count += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((admitted, limited_count), (10, 10));
    let counts = store.tool_counts_in(Window::after(0)).await.unwrap();
    assert_eq!(counts, vec![("post".to_owned(), 10)]);
    let refused = store.last(LastQuery { limit: 100, failed_only: true, ..LastQuery::default() }).await.unwrap();
    assert_eq!(refused.len(), 10);
    assert!(refused.iter().all(|r| r.decision == "rate_limited" && r.finished_ms.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_ops_share_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let store = Store::open(&path, redactor()).unwrap();
    // Another "process" holds the write lock, so the writer blocks in the
    // first batch's BEGIN IMMEDIATE while the other ops queue up behind it.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Polled once, the first admit is queued; once the writer took it, it
    // is blocked in that batch's BEGIN.
    let mut first = Box::pin(store.admit(limited("first", T0, per_hour(10))));
    tokio::select! {
        biased;
        _ = &mut first => panic!("cannot finish while the lock is held"),
        () = std::future::ready(()) => {}
    }
    while store.inner().ops.capacity() < WRITE_QUEUE {
        tokio::task::yield_now().await;
    }
    let rest: Vec<_> = (0..19)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.admit(limited(&format!("c{i}"), T0 + 1, per_hour(10))).await })
        })
        .collect();
    while store.inner().ops.capacity() > WRITE_QUEUE - 19 {
        tokio::task::yield_now().await;
    }
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(first.await.unwrap(), AdmitOutcome::Admitted);
    let mut admitted = 1;
    for task in rest {
        if task.await.unwrap().unwrap() == AdmitOutcome::Admitted {
            admitted += 1;
        }
    }
    // Evaluated one after the other inside the shared transaction: exact.
    assert_eq!(admitted, 10);
    assert_eq!(store.writer_stats(), WriterStats { batches: 2, ops: 20, inline: 0 });
}

#[tokio::test]
async fn a_lone_op_at_rest_runs_on_its_callers_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("steward.db"), redactor()).unwrap();
    for i in 0..3 {
        // At an agent's pace: writes close together are queued (a load).
        tokio::time::sleep(Duration::from_millis(5)).await;
        let outcome = store.admit(limited(&format!("c{i}"), T0 + i, per_hour(2))).await.unwrap();
        let expected =
            if i < 2 { AdmitOutcome::Admitted } else { AdmitOutcome::RateLimited { retry_after_ms: 3_599_998 } };
        assert_eq!(outcome, expected);
    }
    // One transaction each, all run by the caller: the writer thread was
    // never woken.
    assert_eq!(store.writer_stats(), WriterStats { batches: 3, ops: 3, inline: 3 });
    // Committed like any batch: another connection reads them.
    let other = rusqlite::Connection::open(dir.path().join("steward.db")).unwrap();
    let rows: i64 = other.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 3);
}

/// `steward stop` in another process holds SQLite's write lock: a caller
/// must not sit in SQLite's busy wait on a tokio worker. Its op is queued
/// for the writer thread, which waits for the lock, and the caller's thread
/// keeps serving (a current-thread runtime: a blocked caller would stall
/// the timer below for the whole busy timeout).
#[tokio::test(flavor = "current_thread")]
async fn a_lone_op_never_waits_for_another_connections_write_lock_on_the_callers_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let store = Store::open(&path, redactor()).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let admit = tokio::spawn({
        let store = store.clone();
        async move { store.admit(limited("held", T0, per_hour(10))).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(started.elapsed() < Duration::from_secs(2), "the caller's thread was blocked: {:?}", started.elapsed());
    assert!(!admit.is_finished(), "admitted while another connection held the write lock");
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(admit.await.unwrap().unwrap(), AdmitOutcome::Admitted);
    assert_eq!(store.writer_stats(), WriterStats { batches: 1, ops: 1, inline: 0 });
    // The lock free again: the next lone op runs inline.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.admit(limited("free", T0 + 1, per_hour(10))).await.unwrap(), AdmitOutcome::Admitted);
    assert_eq!(store.writer_stats(), WriterStats { batches: 2, ops: 2, inline: 1 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_share_the_window_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let a = open_in(dir.path());
    let b = open_in(dir.path());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.admit(limited(&format!("c{i}"), T0, per_hour(10))).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() == AdmitOutcome::Admitted {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
}

#[tokio::test]
async fn the_window_slides() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let limit = Some(RateLimit { max: 2, per: Duration::from_millis(1000) });
    assert_eq!(store.admit(limited("a", T0, limit)).await.unwrap(), AdmitOutcome::Admitted);
    assert_eq!(store.admit(limited("b", T0 + 100, limit)).await.unwrap(), AdmitOutcome::Admitted);
    assert_eq!(
        store.admit(limited("c", T0 + 200, limit)).await.unwrap(),
        AdmitOutcome::RateLimited { retry_after_ms: 800 }
    );
    // Refused calls do not occupy the window: `c` does not delay anything.
    assert_eq!(
        store.admit(limited("d", T0 + 999, limit)).await.unwrap(),
        AdmitOutcome::RateLimited { retry_after_ms: 1 }
    );
    // At T0 + 1000 the call of T0 has left the window (started_ms > now - per).
    assert_eq!(store.admit(limited("e", T0 + 1000, limit)).await.unwrap(), AdmitOutcome::Admitted);
    assert_eq!(
        store.admit(limited("f", T0 + 1050, limit)).await.unwrap(),
        AdmitOutcome::RateLimited { retry_after_ms: 50 }
    );
    // Another tool has its own window; calls without a limit are never limited.
    let other = Admission { limit, ..admission("g", T0 + 1050, Some("other"), "g") };
    assert_eq!(store.admit(other).await.unwrap(), AdmitOutcome::Admitted);
    assert_eq!(store.admit(limited("h", T0 + 1050, None)).await.unwrap(), AdmitOutcome::Admitted);
}

#[tokio::test]
async fn a_lowered_limit_waits_for_enough_calls_to_leave() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let wide = Some(RateLimit { max: 3, per: Duration::from_millis(1000) });
    for (i, t) in [0, 100, 200].into_iter().enumerate() {
        assert_eq!(store.admit(limited(&format!("a{i}"), T0 + t, wide)).await.unwrap(), AdmitOutcome::Admitted);
    }
    // Three in the window, limit now 1: the call fits once all three have
    // left, i.e. when the call of T0 + 200 leaves at T0 + 1200.
    let narrow = Some(RateLimit { max: 1, per: Duration::from_millis(1000) });
    assert_eq!(
        store.admit(limited("b", T0 + 300, narrow)).await.unwrap(),
        AdmitOutcome::RateLimited { retry_after_ms: 900 }
    );
    // Limit 2: two must leave, the second at T0 + 1100.
    let two = Some(RateLimit { max: 2, per: Duration::from_millis(1000) });
    assert_eq!(
        store.admit(limited("c", T0 + 300, two)).await.unwrap(),
        AdmitOutcome::RateLimited { retry_after_ms: 800 }
    );
}

#[tokio::test]
async fn limits_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    for i in 0..10 {
        assert_eq!(store.admit(limited(&format!("c{i}"), T0 + i, per_hour(10))).await.unwrap(), AdmitOutcome::Admitted);
    }
    drop(store);
    let store = open_in(dir.path());
    assert_eq!(
        store.admit(limited("late", T0 + 60_000, per_hour(10))).await.unwrap(),
        AdmitOutcome::RateLimited { retry_after_ms: HOUR_MS - 60_000 }
    );
    assert_eq!(store.admit(limited("later", T0 + HOUR_MS, per_hour(10))).await.unwrap(), AdmitOutcome::Admitted);
}

fn looping(id: &str, now_ms: i64, key: &str) -> Admission {
    Admission { loop_breaker: breaker(5), ..admission(id, now_ms, Some("post"), key) }
}

#[tokio::test]
async fn the_loop_breaker_trips_on_the_fifth_identical_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    for i in 0..4 {
        assert_eq!(store.admit(looping(&format!("l{i}"), T0 + i, "same")).await.unwrap(), AdmitOutcome::Admitted);
        // Different inputs and other tools do not add to the run.
        assert_eq!(
            store.admit(looping(&format!("d{i}"), T0 + i, &format!("other{i}"))).await.unwrap(),
            AdmitOutcome::Admitted
        );
        let other_tool =
            Admission { loop_breaker: breaker(5), ..admission(&format!("t{i}"), T0 + i, Some("other"), "same") };
        assert_eq!(store.admit(other_tool).await.unwrap(), AdmitOutcome::Admitted);
    }
    assert!(!store.kill_state().await.unwrap().engaged);
    let tripped = store.admit(looping("l4", T0 + 10, "same")).await.unwrap();
    assert_eq!(tripped, AdmitOutcome::LoopDetected { reason: "loop detected: post".into() });
    let kill = store.kill_state().await.unwrap();
    assert_eq!(
        kill,
        KillState {
            engaged: true,
            reason: Some("loop detected: post".into()),
            source: Some("loop_breaker".into()),
            changed_ms: T0 + 10
        }
    );
    // Fail closed: everything after is killed, whatever the tool.
    assert_eq!(
        store.admit(admission("x", T0 + 11, None, "")).await.unwrap(),
        AdmitOutcome::Killed { reason: "loop detected: post".into() }
    );
    let rows = store.last(LastQuery { limit: 2, ..LastQuery::default() }).await.unwrap();
    assert_eq!(rows[0].decision, "killed");
    assert_eq!(rows[1].decision, "loop_detected");
    assert_eq!(rows[1].id, "l4");
}

#[tokio::test]
async fn identical_calls_outside_the_window_do_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    for i in 0..4 {
        store.admit(looping(&format!("old{i}"), T0 + i, "same")).await.unwrap();
    }
    // 60 s later the old run has left the breaker's window.
    for i in 0..4 {
        let now = T0 + 60_000 + i;
        assert_eq!(store.admit(looping(&format!("new{i}"), now, "same")).await.unwrap(), AdmitOutcome::Admitted);
    }
}

#[tokio::test]
async fn rate_limited_repeats_count_toward_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let limit = Some(RateLimit { max: 1, per: Duration::from_secs(3600) });
    let call = |id: &str, t: i64| Admission { limit, ..looping(id, t, "same") };
    assert_eq!(store.admit(call("a", T0)).await.unwrap(), AdmitOutcome::Admitted);
    for (i, id) in ["b", "c", "d"].into_iter().enumerate() {
        let out = store.admit(call(id, T0 + 1 + i64::try_from(i).unwrap())).await.unwrap();
        assert!(matches!(out, AdmitOutcome::RateLimited { .. }), "{out:?}");
    }
    assert!(matches!(store.admit(call("e", T0 + 10)).await.unwrap(), AdmitOutcome::LoopDetected { .. }));
}

#[tokio::test]
async fn resume_restarts_the_loop_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    for i in 0..4 {
        store.admit(looping(&format!("a{i}"), T0 + i, "same")).await.unwrap();
    }
    assert!(matches!(store.admit(looping("a4", T0 + 4, "same")).await.unwrap(), AdmitOutcome::LoopDetected { .. }));
    store.release_kill(T0 + 5).await.unwrap();
    let state = store.kill_state().await.unwrap();
    assert!(!state.engaged);
    assert_eq!(state.changed_ms, T0 + 5);
    // Still inside the 60 s window, but the run before the release is forgiven.
    for i in 0..4 {
        assert_eq!(store.admit(looping(&format!("b{i}"), T0 + 6 + i, "same")).await.unwrap(), AdmitOutcome::Admitted);
    }
    assert!(matches!(store.admit(looping("b4", T0 + 20, "same")).await.unwrap(), AdmitOutcome::LoopDetected { .. }));
}

#[tokio::test]
async fn the_kill_switch_refuses_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.engage_kill("maintenance", "cli", T0).await.unwrap();
    // A second engage keeps the first cause on record.
    store.engage_kill("again", "dashboard", T0 + 5).await.unwrap();
    let state = store.kill_state().await.unwrap();
    assert_eq!(
        (state.reason.as_deref(), state.source.as_deref(), state.changed_ms),
        (Some("maintenance"), Some("cli"), T0)
    );
    let out = store.admit(limited("a", T0 + 10, per_hour(10))).await.unwrap();
    assert_eq!(out, AdmitOutcome::Killed { reason: "maintenance".into() });
    let row = &store.last(LastQuery::default()).await.unwrap()[0];
    // Journaled as the refusal the agent hears, with its status.
    let message = super::KillState::refusal_message("maintenance");
    assert_eq!(
        (row.decision.as_str(), row.reason.as_deref(), row.status),
        ("killed", Some(message.as_str()), Some(403))
    );
    // Killed calls do not use up the window.
    store.release_kill(T0 + 20).await.unwrap();
    for i in 0..10 {
        assert_eq!(
            store.admit(limited(&format!("b{i}"), T0 + 30, per_hour(10))).await.unwrap(),
            AdmitOutcome::Admitted
        );
    }
}

#[tokio::test]
async fn a_second_store_sees_the_kill_switch_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = open_in(dir.path());
    let cli = open_in(dir.path());
    assert!(!daemon.kill_state().await.unwrap().engaged);
    cli.engage_kill("stop requested", "cli", T0).await.unwrap();
    assert!(daemon.kill_state().await.unwrap().engaged);
    assert_eq!(
        daemon.admit(admission("a", T0 + 1, Some("post"), "k")).await.unwrap(),
        AdmitOutcome::Killed { reason: "stop requested".into() }
    );
    cli.release_kill(T0 + 2).await.unwrap();
    assert_eq!(daemon.admit(admission("b", T0 + 3, Some("post"), "k")).await.unwrap(), AdmitOutcome::Admitted);
    // The CLI's `last` sees the daemon's journal.
    assert_eq!(cli.last(LastQuery::default()).await.unwrap().len(), 2);
}

/// The kill switch is read on the caller's thread through the gate's own
/// connection; when another caller holds that connection, the read takes
/// the shared one instead of waiting or failing the call. (A WAL reader that
/// SQLite reports busy falls back the same way; no test here makes SQLite
/// refuse a WAL read while the store's own connections are open.)
#[tokio::test]
#[expect(clippy::await_holding_lock, reason = "the test holds the gate's connection as another caller would")]
async fn the_kill_switch_is_read_the_usual_way_when_the_gate_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.engage_kill("stop requested", "cli", T0).await.unwrap();
    {
        let _taken = store.inner().gate.lock().unwrap();
        assert!(Store::kill_state_inline(store.inner()).is_none());
        assert!(store.kill_state().await.unwrap().engaged);
    }
    assert!(Store::kill_state_inline(store.inner()).unwrap().unwrap().engaged);
}

#[tokio::test]
async fn complete_records_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.admit(admission("a", T0, Some("post"), "k")).await.unwrap();
    let mut done = completion("a", T0 + 40, Some(502));
    done.attempts = 3;
    done.error = Some("upstream answered 502".into());
    done.response_ref = Some("resp-1".into());
    done.extra_json = Some("{\"model\":\"m\"}".into());
    store.complete(done).await.unwrap();
    let row = &store.last(LastQuery::default()).await.unwrap()[0];
    assert_eq!(row.finished_ms, Some(T0 + 40));
    assert_eq!(row.status, Some(502));
    assert_eq!(row.duration_ms, Some(12));
    assert_eq!(row.attempts, 3);
    assert_eq!(row.reason.as_deref(), Some("upstream answered 502"));
    assert_eq!(row.response_ref.as_deref(), Some("resp-1"));
    assert_eq!(row.extra_json.as_deref(), Some("{\"model\":\"m\"}"));
    assert!(row.is_failed());
    match store.complete(completion("nope", T0, Some(200))).await {
        Err(StoreError::NotFound(what)) => assert!(what.contains("nope")),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn settle_interrupted_closes_calls_left_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    for id in ["a", "b", "c"] {
        store.admit(admission(id, T0, Some("post"), id)).await.unwrap();
    }
    store.complete(completion("b", T0 + 5, Some(200))).await.unwrap();
    store.record_refused(admission("r", T0, None, ""), Decision::Unauthenticated, "bad token", 401).await.unwrap();
    drop(store);
    // The next daemon settles what the crashed one left.
    let store = open_in(dir.path());
    assert_eq!(store.settle_interrupted(T0 + 1000).await.unwrap(), 2);
    assert_eq!(store.settle_interrupted(T0 + 2000).await.unwrap(), 0);
    let rows = store.last(LastQuery::default()).await.unwrap();
    for row in rows.iter().filter(|r| r.id == "a" || r.id == "c") {
        assert_eq!(row.decision, "allowed");
        assert_eq!(row.reason.as_deref(), Some("interrupted"));
        assert_eq!(row.finished_ms, Some(T0 + 1000));
        assert_eq!(row.duration_ms, Some(1000));
        assert_eq!(row.status, None);
        assert!(row.is_failed());
    }
    let b = rows.iter().find(|r| r.id == "b").unwrap();
    assert_eq!((b.status, b.reason.as_deref()), (Some(200), None));
}

#[tokio::test]
async fn last_filters_and_orders_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    // ok: allowed 200; err: allowed 500; flight: allowed, unfinished;
    // refused: 401 before admission; mail: another tool, 201.
    store.admit(admission("ok", T0, Some("post"), "1")).await.unwrap();
    store.complete(completion("ok", T0 + 1, Some(200))).await.unwrap();
    store.admit(admission("err", T0 + 10, Some("post"), "2")).await.unwrap();
    store.complete(completion("err", T0 + 11, Some(500))).await.unwrap();
    store.admit(admission("flight", T0 + 20, Some("post"), "3")).await.unwrap();
    store
        .record_refused(admission("refused", T0 + 30, None, ""), Decision::Unauthenticated, "bad token", 401)
        .await
        .unwrap();
    store.admit(admission("mail", T0 + 40, Some("mail"), "4")).await.unwrap();
    store.complete(completion("mail", T0 + 41, Some(201))).await.unwrap();

    let ids = |rows: Vec<CallRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(store.last(LastQuery::default()).await.unwrap()), ["mail", "refused", "flight", "err", "ok"]);
    assert_eq!(ids(store.last(LastQuery { limit: 2, ..LastQuery::default() }).await.unwrap()), ["mail", "refused"]);
    let post = LastQuery { tool: Some("post".into()), ..LastQuery::default() };
    assert_eq!(ids(store.last(post).await.unwrap()), ["flight", "err", "ok"]);
    let since = LastQuery { since_ms: Some(T0 + 20), ..LastQuery::default() };
    assert_eq!(ids(store.last(since).await.unwrap()), ["mail", "refused", "flight"]);
    let failed = LastQuery { failed_only: true, ..LastQuery::default() };
    assert_eq!(ids(store.last(failed).await.unwrap()), ["refused", "err"]);
    let refused = &store.last(LastQuery { limit: 1, failed_only: true, ..LastQuery::default() }).await.unwrap()[0];
    assert_eq!(
        (refused.status, refused.decision.as_str(), refused.reason.as_deref()),
        (Some(401), "unauthenticated", Some("bad token"))
    );
    assert_eq!(refused.tool, None);

    // Windows hold the calls started strictly after their start (`Window`).
    let counts = |after| store.tool_counts_in(Window::after(after));
    assert_eq!(counts(T0 - 1).await.unwrap(), vec![("mail".to_owned(), 1), ("post".to_owned(), 3)]);
    assert_eq!(counts(T0).await.unwrap(), vec![("mail".to_owned(), 1), ("post".to_owned(), 2)]);
    assert_eq!(counts(T0 + 19).await.unwrap(), vec![("mail".to_owned(), 1), ("post".to_owned(), 1)]);
    assert_eq!(counts(T0 + 20).await.unwrap(), vec![("mail".to_owned(), 1)]);
}

#[tokio::test]
async fn kv_round_trips_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    assert_eq!(store.kv_get("alert.error_rate").await.unwrap(), None);
    store.kv_set("alert.error_rate", "firing", T0).await.unwrap();
    store.kv_set("alert.error_rate", "resolved", T0 + 1).await.unwrap();
    drop(store);
    let store = open_in(dir.path());
    assert_eq!(store.kv_get("alert.error_rate").await.unwrap().as_deref(), Some("resolved"));
    store.check_writable().await.unwrap();
}

#[test]
fn usable_from_a_cli_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = Store::open(&path, redactor()).unwrap();
    rt.block_on(store.engage_kill("stopped from the CLI", "cli", T0)).unwrap();
    let state = rt.block_on(store.kill_state()).unwrap();
    assert!(state.engaged);
    assert_eq!(rt.block_on(store.last(LastQuery::default())).unwrap(), Vec::new());
    drop(store);
    // The next CLI invocation sees it.
    let store = Store::open(&path, redactor()).unwrap();
    assert!(rt.block_on(store.kill_state()).unwrap().engaged);
}

#[test]
fn call_ids_sort_by_time() {
    let a = new_call_id();
    std::thread::sleep(Duration::from_millis(2));
    let b = new_call_id();
    assert_eq!(a.len(), 36);
    assert!(a < b, "{a} {b}");
}

#[test]
fn store_is_clone_send_sync() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Store>();
}

#[tokio::test]
async fn pruning_deletes_old_finished_rows_in_batches_and_keeps_calls_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    const DAY: i64 = 86_400_000;
    // Five finished calls 40 days ago, one still in flight from then, and two recent.
    for i in 0..5 {
        let id = format!("old{i}");
        store.admit(admission(&id, T0 - 40 * DAY + i, Some("post"), &id)).await.unwrap();
        store.complete(completion(&id, T0 - 40 * DAY + i + 10, Some(200))).await.unwrap();
    }
    store.admit(admission("stuck", T0 - 40 * DAY, Some("post"), "stuck")).await.unwrap();
    for i in 0..2 {
        let id = format!("new{i}");
        store.admit(admission(&id, T0 - DAY + i, Some("post"), &id)).await.unwrap();
        store.complete(completion(&id, T0 - DAY + i + 10, Some(200))).await.unwrap();
    }
    let cutoff = T0 - 30 * DAY;
    assert_eq!(store.prune_journal(cutoff, 3).await.unwrap(), 3, "one batch");
    assert_eq!(store.prune_journal(cutoff, 3).await.unwrap(), 2, "the rest");
    assert_eq!(store.prune_journal(cutoff, 3).await.unwrap(), 0);
    let left: Vec<String> = store
        .last(LastQuery { limit: 100, ..LastQuery::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.contains(&"stuck".to_owned()) && left.contains(&"new0".to_owned()), "{left:?}");
}
