//! The PostgreSQL store against a real server (`pg-harness`: a throwaway
//! cluster per test; NOT RUN without PostgreSQL, a failure under `.ci/run`):
//! the schema's migration, admission exact across instances (the issue's
//! 3 x 100 against `10/hour`, and the daily cap under 200 concurrent
//! calls), and the same rules deciding the same way as on SQLite; the
//! rest of the store (every read, undo claims, retention, kv) answering
//! and writing the same on both.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::super::tests::{T0, admission, redactor};
use super::*;
use crate::config::RateLimit;
use crate::store::{SpendHold, Store};

/// A connection to `cluster` (with its statement cache).
struct Conn {
    client: Client,
}

async fn connect(cluster: &pg_harness::PgCluster) -> Conn {
    Conn { client: target(cluster).connect().await.unwrap() }
}

fn target(cluster: &pg_harness::PgCluster) -> connect::Target {
    connect::Target::parse(&cluster.url()).unwrap()
}

/// A migrated database and the cluster holding it.
async fn database() -> Option<(pg_harness::PgCluster, Conn)> {
    let cluster = pg_harness::PgCluster::start()?;
    let mut conn = connect(&cluster).await;
    migrate(&mut conn.client).await.unwrap();
    Some((cluster, conn))
}

async fn admit_on(conn: &mut Conn, a: &Admission) -> AdmitOutcome {
    let redactor = redactor();
    let redactor = redactor.load();
    admit(&mut conn.client, "test", a, &redactor).await.unwrap()
}

fn post(id: &str, now_ms: i64, max: u32) -> Admission {
    Admission {
        limit: Some(RateLimit { max, per: std::time::Duration::from_secs(3600) }),
        ..admission(id, now_ms, Some("post"), id)
    }
}

fn priced(id: &str, now_ms: i64, reserve_micros: u64, cap_micros: u64) -> Admission {
    Admission {
        door: "llm".into(),
        spend: Some(SpendHold {
            day: "2026-12-04".into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            reserve_micros,
            cap_micros: Some(cap_micros),
        }),
        ..admission(id, now_ms, None, id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_schema_once_and_refuses_a_newer_one() {
    let Some((_cluster, mut conn)) = database().await else { return };
    let supported = i64::try_from(MIGRATIONS.len()).unwrap();
    assert_eq!(migrate(&mut conn.client).await.unwrap(), supported, "a second run applies nothing");
    let kill = conn.client.query_one("SELECT engaged, changed_ms FROM kill_switch", &[]).await.unwrap();
    assert_eq!((kill.get::<_, i64>(0), kill.get::<_, i64>(1)), (0, 0), "one kill switch row, released");
    conn.client.execute("UPDATE steward_schema SET version = 99", &[]).await.unwrap();
    let err = migrate(&mut conn.client).await.unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, supported: s } if s == supported), "{err}");
    assert!(err.to_string().contains("run the newer steward"), "{err}");
}

/// The issue's test at the store: 3 instances, each with its own
/// connections, 100 concurrent admissions each against `10/hour`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_admit_exactly_the_limit_between_them() {
    let Some((cluster, _conn)) = database().await else { return };
    let mut tasks = Vec::new();
    for instance in 0..3 {
        let mut pool = Vec::new();
        for _ in 0..4 {
            pool.push(Arc::new(Mutex::new(connect(&cluster).await)));
        }
        for n in 0..100 {
            let conn = Arc::clone(&pool[n % pool.len()]);
            tasks.push(tokio::spawn(async move {
                let a = post(&format!("i{instance}-{n:03}"), T0 + i64::try_from(n).unwrap(), 10);
                admit_on(&mut *conn.lock().await, &a).await
            }));
        }
    }
    let mut admitted = 0;
    for task in tasks {
        match task.await.unwrap() {
            AdmitOutcome::Admitted => admitted += 1,
            AdmitOutcome::RateLimited { retry_after_ms } => assert!(retry_after_ms >= 1, "{retry_after_ms}"),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(admitted, 10, "exactly the limit, across the fleet");
    let conn = connect(&cluster).await;
    let rows = conn.client.query_one("SELECT COUNT(*), COUNT(*) FILTER (WHERE decision = 'allowed') FROM calls", &[]);
    let rows = rows.await.unwrap();
    assert_eq!((rows.get::<_, i64>(0), rows.get::<_, i64>(1)), (300, 10), "every call journaled");
}

/// 200 concurrent priced calls, each reserving 1 cent, against a $1 cap,
/// from 3 instances: exactly 100 fit, and the day's total is the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_cap_holds_across_instances_under_200_concurrent_calls() {
    let Some((cluster, _conn)) = database().await else { return };
    let mut pools = Vec::new();
    for _ in 0..3 {
        let mut pool = Vec::new();
        for _ in 0..4 {
            pool.push(Arc::new(Mutex::new(connect(&cluster).await)));
        }
        pools.push(pool);
    }
    let mut tasks = Vec::new();
    for n in 0..200 {
        let conn = Arc::clone(&pools[n % 3][(n / 3) % 4]);
        tasks.push(tokio::spawn(async move {
            admit_on(&mut *conn.lock().await, &priced(&format!("llm-{n:03}"), T0, 10_000, 1_000_000)).await
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        match task.await.unwrap() {
            AdmitOutcome::Admitted => admitted += 1,
            AdmitOutcome::SpendCapped { cap_micros: 1_000_000, reserve_micros: 10_000, spent_micros } => {
                assert!(spent_micros + 10_000 > 1_000_000, "{spent_micros}");
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(admitted, 100);
    let conn = connect(&cluster).await;
    let day = conn.client.query_one("SELECT committed_micros FROM spend_days", &[]).await.unwrap();
    assert_eq!(day.get::<_, i64>(0), 1_000_000, "reserved up to the cap, never past it");
}

/// One script of admissions, decided by the SQLite store and by
/// PostgreSQL: the same outcomes, one set of rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_rules_decide_the_same_way_on_sqlite_and_postgresql() {
    let Some((_cluster, mut conn)) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&dir.path().join("steward.db"), redactor()).unwrap();
    let looping = |id: &str, now_ms: i64| Admission {
        loop_breaker: crate::config::LoopBreakerConfig { max_identical: 3, window: std::time::Duration::from_secs(60) },
        ..admission(id, now_ms, Some("search"), "same-input")
    };
    let script = vec![
        post("p1", T0, 2),
        post("p2", T0 + 1_000, 2),
        post("p3", T0 + 2_000, 2),
        priced("l1", T0, 600_000, 1_000_000),
        priced("l2", T0 + 10, 600_000, 1_000_000),
        looping("s1", T0),
        looping("s2", T0 + 1),
        looping("s3", T0 + 2),
        // The loop breaker engaged the kill switch: everything is refused.
        post("p4", T0 + 3_600_000 + 5_000, 2),
    ];
    let mut on_sqlite = Vec::new();
    let mut on_postgres = Vec::new();
    for a in &script {
        on_sqlite.push(sqlite.admit(a.clone()).await.unwrap());
        on_postgres.push(admit_on(&mut conn, a).await);
    }
    assert_eq!(on_postgres, on_sqlite);
    assert_eq!(on_sqlite[2], AdmitOutcome::RateLimited { retry_after_ms: 3_600_000 - 2_000 }, "{on_sqlite:#?}");
    assert!(matches!(on_sqlite[4], AdmitOutcome::SpendCapped { spent_micros: 600_000, .. }), "{on_sqlite:#?}");
    assert_eq!(on_sqlite[7], AdmitOutcome::LoopDetected { reason: "loop detected: search".into() });
    assert!(matches!(on_sqlite[8], AdmitOutcome::Killed { .. }), "{on_sqlite:#?}");
}

/// A journal row's id, decision, status, whether it finished, its cost.
type CallFacts = (String, String, Option<i64>, bool, Option<f64>);

/// A settlement of `micros`, with the day's stop when `stop` says why.
fn settlement(micros: u64, stop: Option<&str>) -> crate::store::SpendSettlement {
    crate::store::SpendSettlement {
        micros,
        input_tokens: 10,
        output_tokens: 20,
        cached_tokens: 0,
        estimated: false,
        stop: stop.map(str::to_owned),
    }
}

/// The end of a call, on both databases through the same rules: a
/// withdrawal frees its window slot and releases its reservation, a
/// settlement moves the day's total, one past its reservation stops the
/// day, an undo plan is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_call_is_recorded_the_same_way_on_sqlite_and_postgresql() {
    let Some((_cluster, mut conn)) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&dir.path().join("steward.db"), redactor()).unwrap();
    let undo = crate::store::UndoPlan::Unavailable { reason: "no undo declared".into() };
    let done = |id: &str, now_ms: i64| crate::store::tests::completion(id, now_ms, Some(200));

    let mut outcomes = [Vec::new(), Vec::new()];
    // On SQLite, through the store.
    for a in [post("p1", T0, 2), post("p2", T0 + 1, 2), post("p3", T0 + 2, 2)] {
        outcomes[0].push(sqlite.admit(a).await.unwrap());
    }
    sqlite.withdraw("p2", Decision::StoreUnavailable, "audit failed", 503, T0 + 3).await.unwrap();
    outcomes[0].push(sqlite.admit(post("p4", T0 + 4, 2)).await.unwrap());
    sqlite.complete(Completion { undo: Some(undo.clone()), ..done("p1", T0 + 5) }).await.unwrap();
    outcomes[0].push(sqlite.admit(priced("l1", T0, 600_000, 1_000_000)).await.unwrap());
    sqlite.complete(Completion { spend: Some(settlement(200_000, None)), ..done("l1", T0 + 6) }).await.unwrap();
    outcomes[0].push(sqlite.admit(priced("l2", T0 + 7, 600_000, 1_000_000)).await.unwrap());
    let over =
        Completion { spend: Some(settlement(900_000, Some("billed past its reservation"))), ..done("l2", T0 + 8) };
    sqlite.complete(over.clone()).await.unwrap();
    outcomes[0].push(sqlite.admit(priced("l3", T0 + 9, 1, 1_000_000)).await.unwrap());

    // On PostgreSQL, the same steps.
    let r = redactor();
    let r = r.load();
    let c = &mut conn;
    for a in [post("p1", T0, 2), post("p2", T0 + 1, 2), post("p3", T0 + 2, 2)] {
        outcomes[1].push(admit(&mut c.client, "test", &a, &r).await.unwrap());
    }
    withdraw(&mut c.client, "p2", Decision::StoreUnavailable, "audit failed", 503, T0 + 3).await.unwrap();
    outcomes[1].push(admit(&mut c.client, "test", &post("p4", T0 + 4, 2), &r).await.unwrap());
    complete(&mut c.client, &Completion { undo: Some(undo), ..done("p1", T0 + 5) }).await.unwrap();
    outcomes[1].push(admit(&mut c.client, "test", &priced("l1", T0, 600_000, 1_000_000), &r).await.unwrap());
    let settled = Completion { spend: Some(settlement(200_000, None)), ..done("l1", T0 + 6) };
    complete(&mut c.client, &settled).await.unwrap();
    outcomes[1].push(admit(&mut c.client, "test", &priced("l2", T0 + 7, 600_000, 1_000_000), &r).await.unwrap());
    complete(&mut c.client, &over).await.unwrap();
    outcomes[1].push(admit(&mut c.client, "test", &priced("l3", T0 + 9, 1, 1_000_000), &r).await.unwrap());

    let [on_sqlite, on_postgres] = outcomes;
    assert_eq!(on_postgres, on_sqlite);
    assert_eq!(on_sqlite[3], AdmitOutcome::Admitted, "the withdrawn call's slot is free: {on_sqlite:#?}");
    assert_eq!(on_sqlite[5], AdmitOutcome::Admitted, "200k settled + 600k reserved fit: {on_sqlite:#?}");
    assert_eq!(on_sqlite[6], AdmitOutcome::SpendStopped { reason: "billed past its reservation".into() });

    assert_eq!(sqlite.spend_total("2026-12-04").await.unwrap(), 1_100_000);
    let day = conn.client.query_one("SELECT committed_micros FROM spend_days", &[]).await.unwrap();
    assert_eq!(day.get::<_, i64>(0), 1_100_000, "the settlements moved the day's total");
    let rows = conn
        .client
        .query("SELECT id, decision, status, finished_ms IS NOT NULL, cost_usd FROM calls ORDER BY id", &[])
        .await
        .unwrap();
    let rows: Vec<CallFacts> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    for (id, decision, status, finished, cost) in &rows {
        let call = sqlite.call(id).await.unwrap().unwrap();
        assert_eq!(
            (&call.decision, call.status.map(i64::from), call.finished_ms.is_some(), call.cost_usd),
            (decision, *status, *finished, *cost),
            "call {id}"
        );
    }
    assert_eq!(rows.len(), 7);
    let undos = conn.client.query_one("SELECT call_id, state FROM undos", &[]).await.unwrap();
    assert_eq!((undos.get::<_, String>(0), undos.get::<_, String>(1)), ("p1".into(), "unavailable".into()));

    // `steward last` reads the same journal from either, filter by filter.
    let all = crate::store::LastQuery { limit: 50, ..crate::store::LastQuery::default() };
    for q in [
        all.clone(),
        crate::store::LastQuery { failed_only: true, ..all.clone() },
        crate::store::LastQuery { tool: Some("post".into()), limit: 2, ..all.clone() },
        crate::store::LastQuery { since_ms: Some(T0 + 5), ..all.clone() },
    ] {
        let on_sqlite = sqlite.last(q.clone()).await.unwrap();
        let mut on_postgres = last(&mut conn.client, &q).await.unwrap();
        assert!(!on_sqlite.is_empty(), "{q:?}");
        // Each PostgreSQL row names the instance that admitted it.
        for row in &mut on_postgres {
            assert_eq!(row.instance.take().as_deref(), Some("test"), "{q:?}");
        }
        assert_eq!(on_postgres, on_sqlite, "{q:?}");
    }
    // Filtered by instance: this instance's rows, none of another's.
    let mine = crate::store::LastQuery { instance: Some("test".into()), ..all.clone() };
    assert_eq!(last(&mut conn.client, &mine).await.unwrap().len(), sqlite.last(all.clone()).await.unwrap().len());
    let other = crate::store::LastQuery { instance: Some("web-9".into()), ..all };
    assert!(last(&mut conn.client, &other).await.unwrap().is_empty());
}

/// Waits, bounded, until `watch` knows something `wanted` accepts; how long
/// it took.
async fn until(
    watch: &kill::KillWatch,
    bound: std::time::Duration,
    wanted: impl Fn(&kill::Known) -> bool,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let known = watch.current();
        if wanted(&known) {
            return started.elapsed();
        }
        assert!(started.elapsed() < bound, "still {known:?} after {bound:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn engaged(known: &kill::Known) -> bool {
    matches!(known, kill::Known::State(state) if state.engaged)
}

fn released(known: &kill::Known) -> bool {
    matches!(known, kill::Known::State(state) if !state.engaged)
}

/// `steward stop` from one host reaches an instance that listens (its poll
/// set to a minute, so only a notification can bring it) and one that only
/// polls; a database that goes away turns the state unknown (refuse), and
/// its return brings the watch back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reaches_every_instance_by_notification_or_poll_and_a_lost_database_fails_closed() {
    use std::time::Duration;
    let Some((mut cluster, mut conn)) = database().await else { return };
    let url = target(&cluster);
    let minutes = Duration::from_secs(600);
    let by_note = kill::KillWatch::start(
        &url,
        kill::WatchTiming { poll: Duration::from_secs(60), stale_after: minutes, listen: true },
    );
    let by_poll = kill::KillWatch::start(
        &url,
        kill::WatchTiming { poll: Duration::from_millis(500), stale_after: minutes, listen: false },
    );
    until(&by_note, Duration::from_secs(10), released).await;
    until(&by_poll, Duration::from_secs(10), released).await;
    // The listener has read once at start; its next poll is a minute away.
    tokio::time::sleep(Duration::from_millis(200)).await;

    kill::engage(&mut conn.client, "stopped by the on-call", "cli", T0).await.unwrap();
    let (note_took, poll_took) = tokio::join!(
        until(&by_note, Duration::from_secs(30), engaged),
        until(&by_poll, Duration::from_secs(30), engaged)
    );
    eprintln!("the stop reached the listening instance in {note_took:?}, the polling one in {poll_took:?}");
    let kill::Known::State(state) = by_note.current() else { panic!("unknown") };
    assert_eq!((state.reason.as_deref(), state.source.as_deref()), (Some("stopped by the on-call"), Some("cli")));
    // The admission's own read agrees, on any connection.
    let refused = admit_on(&mut conn, &post("after-stop", T0 + 1, 10)).await;
    assert!(matches!(refused, AdmitOutcome::Killed { .. }), "{refused:?}");

    kill::release(&mut conn.client, T0 + 2).await.unwrap();
    until(&by_note, Duration::from_secs(30), released).await;
    until(&by_poll, Duration::from_secs(30), released).await;

    // Fail closed: the database stops; the watch says unknown once its
    // last read is older than `stale_after`, and recovers after.
    let watch = kill::KillWatch::start(
        &url,
        kill::WatchTiming { poll: Duration::from_millis(200), stale_after: Duration::from_secs(1), listen: true },
    );
    until(&watch, Duration::from_secs(10), released).await;
    cluster.stop();
    until(
        &watch,
        Duration::from_secs(10),
        |known| matches!(known, kill::Known::Unknown(why) if why.contains("cannot be read")),
    )
    .await;
    cluster.restart();
    until(&watch, Duration::from_secs(20), released).await;
}

/// A journal row's id, instance, end and reason.
type Settled = (String, Option<String>, Option<i64>, Option<String>);

/// An instance that stops beating mid-call is settled by the others after
/// its lease: its calls finished as interrupted, its reservation billed in
/// full (the day's total unchanged, nothing counted twice), once, however
/// many reapers run; a live instance's call is left alone; a second live
/// process cannot take a name in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instances_calls_are_settled_once_after_its_lease() {
    const LEASE: i64 = 30_000;
    let Some((cluster, mut conn)) = database().await else { return };
    let r = redactor();
    let r = r.load();
    lease::beat(&conn.client, "web-1", "host-a", 100, LEASE, T0).await.unwrap();
    lease::beat(&conn.client, "web-2", "host-b", 200, LEASE, T0).await.unwrap();
    let c = &mut conn;
    for (instance, a) in [
        ("web-1", priced("dead-llm", T0, 300_000, 1_000_000)),
        ("web-1", post("dead-post", T0, 10)),
        ("web-2", post("live-post", T0, 10)),
    ] {
        assert_eq!(admit(&mut c.client, instance, &a, &r).await.unwrap(), AdmitOutcome::Admitted);
    }
    // Each instance was running an undo (its undo call in flight).
    for (original, undo_call) in [("orig-1", "dead-post"), ("orig-2", "live-post")] {
        conn.client
            .execute(
                "INSERT INTO undos (call_id, tool, started_ms, state, undo_tool, method, path, planned_ms, changed_ms,
                                    undo_call_id, attempts)
                 VALUES ($1, 'post', $3, 'running', 'delete_status', 'DELETE', '/x', $3, $3, $2, 1)",
                &[&original, &undo_call, &T0],
            )
            .await
            .unwrap();
    }
    // Both live: the first name speaks for the fleet.
    assert_eq!(lease::speaker(&conn.client, T0 + 1_000).await.unwrap().as_deref(), Some("web-1"));
    // web-2 keeps beating; web-1 died after T0. Another process may not
    // take web-2's name while its lease holds.
    lease::beat(&conn.client, "web-2", "host-b", 200, LEASE, T0 + 25_000).await.unwrap();
    let err = lease::beat(&conn.client, "web-2", "host-c", 300, LEASE, T0 + 26_000).await.unwrap_err();
    assert!(err.to_string().contains("`[store] instance`"), "{err}");
    assert!(lease::reap(&mut conn.client, LEASE, T0 + 29_000).await.unwrap().is_empty(), "web-1's lease still holds");

    // Two reapers at once, on two connections, after the lease.
    let mut other = connect(&cluster).await;
    let (first, second) = tokio::join!(
        lease::reap(&mut conn.client, LEASE, T0 + 31_000),
        lease::reap(&mut other.client, LEASE, T0 + 31_000)
    );
    let mut settled: Vec<(String, u64)> = first.unwrap().into_iter().chain(second.unwrap()).collect();
    settled.sort();
    assert_eq!(settled, [("web-1".to_owned(), 2)], "settled once");

    let rows = conn.client.query("SELECT id, instance, finished_ms, reason FROM calls ORDER BY id", &[]).await.unwrap();
    let rows: Vec<Settled> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(
        rows,
        [
            ("dead-llm".into(), Some("web-1".into()), Some(T0 + 31_000), Some("interrupted".into())),
            ("dead-post".into(), Some("web-1".into()), Some(T0 + 31_000), Some("interrupted".into())),
            ("live-post".into(), Some("web-2".into()), None, None),
        ]
    );
    let spend = conn.client.query_one("SELECT settled_micros, estimated FROM spend", &[]).await.unwrap();
    assert_eq!(
        (spend.get::<_, Option<i64>>(0), spend.get::<_, i64>(1)),
        (Some(300_000), 1),
        "billed at its reservation"
    );
    let day = conn.client.query_one("SELECT committed_micros FROM spend_days", &[]).await.unwrap();
    assert_eq!(day.get::<_, i64>(0), 300_000, "the day's total unchanged: nothing counted twice");
    let undos = conn.client.query("SELECT call_id, state FROM undos ORDER BY call_id", &[]).await.unwrap();
    let undos: Vec<(String, String)> = undos.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        undos,
        [("orig-1".into(), "failed".into()), ("orig-2".into(), "running".into())],
        "web-1's undo can be run again; web-2's runs on"
    );
    // The speaker: web-2 now that web-1 lapsed.
    assert_eq!(lease::speaker(&conn.client, T0 + 26_000).await.unwrap().as_deref(), Some("web-2"));
    // A restarted web-1 takes its name back, and speaks again.
    lease::beat(&conn.client, "web-1", "host-a", 101, LEASE, T0 + 40_000).await.unwrap();
    assert_eq!(lease::speaker(&conn.client, T0 + 40_000).await.unwrap().as_deref(), Some("web-1"));
}

/// A pending approval request for `digest`, made at `T0`, for a minute.
fn approval_request(id: &str) -> crate::store::NewApproval {
    crate::store::NewApproval {
        id: id.to_owned(),
        created_ms: T0,
        expires_ms: T0 + 60_000,
        door: "api".into(),
        tool: "post".into(),
        upstream: "mastodon".into(),
        method: "POST".into(),
        path: "/api/v1/statuses".into(),
        digest: format!("digest-{id}"),
        summary: "{\"status\":\"hello\"}".into(),
    }
}

fn decision(id: &str, verdict: crate::store::Verdict, by: &str, now_ms: i64) -> crate::store::ApprovalDecision {
    crate::store::ApprovalDecision {
        id: id.to_owned(),
        verdict,
        by: by.to_owned(),
        via: "cli".into(),
        note: None,
        now_ms,
    }
}

/// Supervised mode across a fleet: two instances decide one request at
/// once, one decision is recorded; three held calls race for its grant,
/// one is released; a late decision finds the request expired. The same
/// writes give the same rows on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_decision_and_one_release_per_request_across_instances() {
    use crate::store::approvals::ApprovalWrite;
    use crate::store::writer::Response;
    use crate::store::{Decided, Verdict};
    let Some((cluster, mut conn)) = database().await else { return };
    let c = &mut conn;
    approval(&mut c.client, &ApprovalWrite::Create(approval_request("a1"))).await.unwrap();
    approval(&mut c.client, &ApprovalWrite::Create(approval_request("a2"))).await.unwrap();

    let mut deciders = Vec::new();
    for (n, verdict) in [(0, Verdict::Approve), (1, Verdict::Deny), (2, Verdict::Approve)] {
        let mut other = connect(&cluster).await;
        deciders.push(tokio::spawn(async move {
            let write = ApprovalWrite::Decide(decision("a1", verdict, &format!("ops-{n}"), T0 + 1_000));
            approval(&mut other.client, &write).await.unwrap()
        }));
    }
    let mut recorded = Vec::new();
    for decider in deciders {
        match decider.await.unwrap() {
            Response::Decided(decided) => match *decided {
                Decided::Recorded(row) => recorded.push(row),
                Decided::AlreadyDecided(_) => {}
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(recorded.len(), 1, "exactly one decision: {recorded:#?}");
    let approved = recorded[0].state == crate::store::ApprovalState::Approved;

    let mut racers = Vec::new();
    for n in 0..3 {
        let mut other = connect(&cluster).await;
        racers.push(tokio::spawn(async move {
            let write = ApprovalWrite::Release { id: "a1".into(), call_id: format!("held-{n}"), now_ms: T0 + 2_000 };
            matches!(approval(&mut other.client, &write).await.unwrap(), Response::Count(1))
        }));
    }
    let mut released = 0;
    for racer in racers {
        released += usize::from(racer.await.unwrap());
    }
    assert_eq!(released, usize::from(approved), "one grant, one release (none when denied)");

    // Too late: the request expired before the decision arrived.
    let late = ApprovalWrite::Decide(decision("a2", Verdict::Approve, "ops", T0 + 61_000));
    let Response::Decided(late) = approval(&mut c.client, &late).await.unwrap() else { panic!() };
    assert!(matches!(*late, Decided::Expired(ref row) if row.decided_via.as_deref() == Some("expiry")), "{late:?}");

    // The same writes on SQLite leave the same rows.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&dir.path().join("steward.db"), redactor()).unwrap();
    sqlite.create_approval(approval_request("a1")).await.unwrap();
    sqlite.create_approval(approval_request("a2")).await.unwrap();
    let first = &recorded[0];
    let verdict = if approved { Verdict::Approve } else { Verdict::Deny };
    let by = first.decided_by.clone().unwrap();
    sqlite.decide_approval(decision("a1", verdict, &by, T0 + 1_000)).await.unwrap();
    if approved {
        let winner = conn
            .client
            .query_one("SELECT released_call_id FROM approvals WHERE id = 'a1'", &[])
            .await
            .unwrap()
            .get::<_, String>(0);
        assert!(sqlite.release_approval("a1", &winner, T0 + 2_000).await.unwrap());
    }
    sqlite.decide_approval(decision("a2", Verdict::Approve, "ops", T0 + 61_000)).await.unwrap();
    for id in ["a1", "a2"] {
        let on_postgres =
            crate::store::approvals::by_id(&Postgres { tx: &conn.client.transaction().await.unwrap() }, id)
                .await
                .unwrap();
        assert_eq!(on_postgres, sqlite.approval(id).await.unwrap(), "{id}");
    }
}

/// The two schemas are written by hand, one per dialect: every table the
/// store shares has the same columns, in the same order, on both (the
/// journal's `instance` is always NULL on SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgresql_schema_has_the_sqlite_schemas_columns() {
    let Some((_cluster, conn)) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    drop(Store::open(&path, redactor()).unwrap());
    let sqlite = rusqlite::Connection::open(&path).unwrap();
    for table in ["calls", "kill_switch", "kv", "spend", "spend_days", "undos", "approvals"] {
        let on_sqlite: Vec<String> = sqlite
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap()
            .query_map([], |row| row.get::<_, String>(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let on_postgres: Vec<String> = conn
            .client
            .query(
                "SELECT column_name::TEXT FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(on_postgres, on_sqlite, "{table}");
    }
}

/// A priced call of spend day `day`.
fn priced_on(id: &str, day: &str, now_ms: i64, reserve_micros: u64) -> Admission {
    let mut a = priced(id, now_ms, reserve_micros, 10_000_000);
    if let Some(hold) = a.spend.as_mut() {
        hold.day = day.to_owned();
    }
    a
}

fn undo_call(path: &str) -> crate::store::UndoPlan {
    crate::store::UndoPlan::Call {
        tool: "delete_status".into(),
        method: "DELETE".into(),
        path: path.into(),
        body: Some("{}".into()),
    }
}

fn undo_claim(call_id: &str, now_ms: i64) -> crate::store::UndoClaim {
    crate::store::UndoClaim {
        call_id: call_id.into(),
        undo_call_id: format!("undo-{call_id}"),
        by: "ana".into(),
        via: "cli".into(),
        forced: call_id == "s1",
        now_ms,
    }
}

/// Two journal ids as steward makes them (UUIDv7), started at the same
/// instant: `steward undo`'s lookup by a prefix or the short id.
const UUID_IN_FLIGHT: &str = "019ae4a1-0000-7000-8000-4b1c9e2a7f3d";
const UUID_DONE: &str = "019ae4a1-0000-7000-8000-4b1c00000001";

/// A small history, the same on either database: admissions (one rate
/// limited), completions with and without a cost, upstream failures, a
/// withdrawal, calls left in flight, undo plans claimed and finished, kv
/// entries and approval decisions. What each step answered, to compare.
async fn history(db: &impl Db, redactor: &Redactor) -> Result<Vec<String>, StoreError> {
    use crate::store::approvals::ApprovalWrite;
    use crate::store::tests::completion as done;
    use crate::store::{UndoPlan, UndoState, Verdict, undo};
    let search = |id: &str, now_ms: i64| admission(id, now_ms, Some("search"), id);
    let mut said = Vec::new();
    for a in [
        post("p1", T0, 2),
        post("p2", T0 + 1_000, 2),
        post("p3", T0 + 2_000, 2),
        priced_on("old-llm", "2026-12-01", T0, 100_000),
        priced_on("l1", "2026-12-04", T0 + 3_000, 600_000),
        priced_on("l2", "2026-12-04", T0 + 4_000, 600_000),
        search("s1", T0 + 5_000),
        search("t1", T0 + 6_000),
        search("t2", T0 + 7_000),
        admission("u1", T0 + 8_000, None, "u1"),
        search("w1", T0 + 9_000),
        search(UUID_IN_FLIGHT, T0 + 10_000),
        search(UUID_DONE, T0 + 10_000),
    ] {
        said.push(format!("admit {}: {:?}", a.call_id, admission::admit(db, &a, redactor).await?));
    }
    let unavailable = UndoPlan::Unavailable { reason: "no id in the response".into() };
    for c in [
        Completion { undo: Some(undo_call("/api/v1/statuses/1")), ..done("p1", T0 + 100, Some(200)) },
        Completion { undo: Some(undo_call("/api/v1/statuses/2")), ..done("p2", T0 + 1_100, Some(502)) },
        Completion { spend: Some(settlement(50_000, None)), ..done("old-llm", T0 + 200, Some(200)) },
        Completion { spend: Some(settlement(200_000, None)), ..done("l1", T0 + 3_100, Some(200)) },
        Completion { undo: Some(undo_call("/api/v1/statuses/3")), ..done("s1", T0 + 5_100, Some(200)) },
        Completion { error: Some("upstream timed out after 30 s".into()), ..done("t1", T0 + 36_000, None) },
        Completion { error: Some("connection refused".into()), ..done("t2", T0 + 7_100, None) },
        Completion { undo: Some(unavailable), ..done("u1", T0 + 8_100, Some(201)) },
        done(UUID_DONE, T0 + 10_100, Some(200)),
    ] {
        completion::complete(db, &c).await?;
    }
    completion::withdraw(db, "w1", Decision::StoreUnavailable, "audit failed", 503, T0 + 9_001).await?;

    // p1's undo fails, s1's is done, p2's is left running; the others are
    // not claimable.
    for (id, at) in [("p1", T0 + 20_000), ("s1", T0 + 20_001), ("p2", T0 + 20_002), ("u1", T0 + 20_003), ("zz", 0)] {
        said.push(format!("claim {id}: {:?}", undo::claim(db, &undo_claim(id, at)).await?));
    }
    undo::finish(db, "p1", UndoState::Failed, Some("the upstream answered 500"), T0 + 21_000).await?;
    undo::finish(db, "s1", UndoState::Undone, None, T0 + 21_001).await?;
    said.push(format!("claim s1 again: {:?}", undo::claim(db, &undo_claim("s1", T0 + 22_000)).await?));
    said.push(format!("finish u1: {:?}", undo::finish(db, "u1", UndoState::Undone, None, T0 + 22_001).await));

    for (key, value, at) in
        [("report.a", "1", T0), ("report.b", "2", T0 + 1), ("other", "x", T0 + 2), ("report.a", "3", T0 + 3)]
    {
        queries::kv_set(db, key, value, at).await?;
    }
    for id in ["a1", "a2", "a3"] {
        ApprovalWrite::Create(approval_request(id)).apply(db).await?;
    }
    for (id, verdict, at) in [("a1", Verdict::Deny, T0 + 1_000), ("a2", Verdict::Approve, T0 + 2_000)] {
        let write = ApprovalWrite::Decide(decision(id, verdict, "ops", at));
        said.push(format!("decide {id}: {:?}", write.apply(db).await?));
    }
    Ok(said)
}

/// Every read written against [`Db`], named, with what it answered.
async fn every_read(db: &impl Db) -> Result<Vec<(&'static str, String)>, StoreError> {
    use crate::store::{UndoQuery, Window, report, spend, undo};
    let all = Window::after(T0 - 1);
    let later = Window::after(T0 + 5_000);
    let undos = UndoQuery::default();
    Ok(vec![
        ("tool_counts_in", format!("{:?}", queries::tool_counts_in(db, all).await?)),
        ("tool_counts_in later", format!("{:?}", queries::tool_counts_in(db, later).await?)),
        ("error_counts_in", format!("{:?}", queries::error_counts_in(db, all).await?)),
        ("error_counts_in later", format!("{:?}", queries::error_counts_in(db, later).await?)),
        ("footprint", format!("{:?}", queries::footprint(db, T0 + 5_000).await?)),
        ("footprint of nothing", format!("{:?}", queries::footprint(db, T0 + 999_000).await?)),
        ("kv_get", format!("{:?}", queries::kv_get(db, "report.a").await?)),
        ("in_flight", format!("{:?}", queries::in_flight(db, None).await?)),
        ("by_day", format!("{:?}", spend::by_day(db, "2026-12-01", "2026-12-31").await?)),
        ("by_day, one day", format!("{:?}", spend::by_day(db, "2026-12-04", "2026-12-04").await?)),
        ("day_total", format!("{:?}", spend::day_total(db, "2026-12-04").await?)),
        ("one", format!("{:?}", undo::one(db, "p2").await?)),
        ("one failed", format!("{:?}", undo::one(db, "p1").await?)),
        ("one without a plan", format!("{:?}", undo::one(db, "zz").await?)),
        ("undos", format!("{:?}", undo::query(db, &undos).await?)),
        (
            "undos undoable",
            format!("{:?}", undo::query(db, &UndoQuery { undoable_only: true, ..undos.clone() }).await?),
        ),
        ("undos failed", format!("{:?}", undo::query(db, &UndoQuery { failed_only: true, ..undos.clone() }).await?)),
        (
            "undos of a tool since, limited",
            format!(
                "{:?}",
                undo::query(
                    db,
                    &UndoQuery { tool: Some("post".into()), since_ms: Some(T0 + 1), limit: 1, ..undos.clone() }
                )
                .await?
            ),
        ),
        (
            "undos of some calls",
            format!(
                "{:?}",
                undo::query(db, &UndoQuery { call_ids: Some(vec!["s1".into(), "u1".into()]), ..undos.clone() }).await?
            ),
        ),
        ("find_call_ids by prefix", format!("{:?}", undo::find_call_ids(db, "019ae4a1").await?)),
        ("find_call_ids by short id", format!("{:?}", undo::find_call_ids(db, "4b1c9e2a7f3d").await?)),
        ("find_call_ids by a part", format!("{:?}", undo::find_call_ids(db, "4B1C").await?)),
        ("find_call_ids of nothing", format!("{:?}", undo::find_call_ids(db, "x'; DROP").await?)),
        ("calls_by_bucket", format!("{:?}", report::calls_by_bucket(db, all, 900_000).await?)),
        ("calls_by_bucket by second", format!("{:?}", report::calls_by_bucket(db, later, 1_000).await?)),
        ("refusals_in", format!("{:?}", report::refusals_in(db, all).await?)),
        ("upstream_errors_in", format!("{:?}", report::upstream_errors_in(db, all).await?)),
        ("upstream_errors_in later", format!("{:?}", report::upstream_errors_in(db, Window::after(T0 + 6_500)).await?)),
        ("approvals_in", format!("{:?}", report::approvals_in(db, all).await?)),
        ("last_denial_ms", format!("{:?}", report::last_denial_ms(db).await?)),
        ("kv_with_prefix", format!("{:?}", report::kv_with_prefix(db, "report.").await?)),
        ("kv_with_prefix, every key", format!("{:?}", report::kv_with_prefix(db, "").await?)),
    ])
}

/// The maintenance writes written against [`Db`], and what each answered.
async fn maintenance(db: &impl Db) -> Result<Vec<String>, StoreError> {
    use crate::store::{spend, undo};
    Ok(vec![
        format!("settle_interrupted: {}", completion::settle_interrupted(db, T0 + 60_000, None).await?),
        // old-llm and p1 started at the same instant: the first by id goes
        // first (on SQLite it once was the first inserted, p1).
        format!("prune_journal, one row: {}", queries::prune_journal(db, T0 + 500, 1).await?),
        format!("left of the two: {:?}", queries::call(db, "p1").await?.map(|c| c.id)),
        format!("prune_journal: {}", queries::prune_journal(db, T0 + 500, 100).await?),
        format!("prune spend: {}", spend::prune(db, "2026-12-04", 100).await?),
        format!("prune_orphans: {:?}", undo::prune_orphans(db, T0 + 60_000).await?),
        format!("kv_set: {:?}", queries::kv_set(db, "report.c", "4", T0 + 9).await?),
        format!("kv_delete: {:?}", queries::kv_delete(db, "other").await?),
        format!("kv_delete of nothing: {:?}", queries::kv_delete(db, "absent").await?),
        format!("write_probe: {:?}", queries::write_probe(db).await?),
        format!("write_probe again: {:?}", queries::write_probe(db).await?),
    ])
}

/// Every row of every table both databases hold (the journal without
/// PostgreSQL's `instance`), column by column, through the same [`Db`]
/// getters.
async fn every_row(db: &impl Db) -> Result<Vec<String>, StoreError> {
    // Each table's columns, and the kind of each: text, integer or real.
    let tables: [(&'static str, &str); 7] = [
        (
            "SELECT id, started_ms, finished_ms, door, tool, upstream, method, path, loop_key, input_summary,
                    input_sha256, decision, reason, status, duration_ms, attempts, response_ref, cost_usd,
                    extra_json, counts_as_error FROM calls ORDER BY id",
            // id, started, finished; door .. reason; status, duration, attempts; the rest.
            concat!("tii", "tttttttttt", "iii", "trti"),
        ),
        ("SELECT id, engaged, reason, source, changed_ms FROM kill_switch", "iitti"),
        ("SELECT key, value, updated_ms FROM kv ORDER BY key", "tti"),
        (
            "SELECT call_id, day, provider, model, reserved_micros, settled_micros, input_tokens, output_tokens,
                    cached_tokens, estimated, created_ms, settled_ms FROM spend ORDER BY call_id",
            "ttttiiiiiiii",
        ),
        ("SELECT day, committed_micros FROM spend_days ORDER BY day", "ti"),
        (
            "SELECT call_id, tool, started_ms, state, undo_tool, method, path, body, reason, planned_ms, changed_ms,
                    undo_call_id, attempts, by, via, forced FROM undos ORDER BY call_id",
            // call_id, tool, started; state .. reason; planned, changed; undo_call_id; attempts; by, via; forced.
            concat!("tti", "tttttt", "ii", "t", "i", "tt", "i"),
        ),
        (
            "SELECT id, created_ms, expires_ms, door, tool, upstream, method, path, digest, summary, state,
                    decided_ms, decided_by, decided_via, note, released_call_id FROM approvals ORDER BY id",
            // id, created, expires; door .. state; decided_ms; decided_by .. released_call_id.
            concat!("tii", "tttttttt", "i", "tttt"),
        ),
    ];
    let mut out = Vec::new();
    for (sql, kinds) in tables {
        let rows = db
            .rows("reading every row", sql, &[], |row| {
                let mut columns = Vec::new();
                for (i, kind) in kinds.chars().enumerate() {
                    columns.push(match kind {
                        'i' => format!("{:?}", row.int(i)?),
                        'r' => format!("{:?}", row.real(i)?),
                        _ => format!("{:?}", row.text(i)?),
                    });
                }
                Ok(columns.join(" | "))
            })
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// Compares what SQLite and PostgreSQL said, line by line (a line names
/// its step).
fn same<T: PartialEq + std::fmt::Debug>(step: &str, on_sqlite: &[T], on_postgres: &[T]) {
    for (s, p) in on_sqlite.iter().zip(on_postgres) {
        assert_eq!(p, s, "{step}");
    }
    assert_eq!(on_postgres.len(), on_sqlite.len(), "{step}");
}

/// `$body` with `$db` a [`Postgres`] on `$conn`, in one transaction, committed.
macro_rules! on_postgres {
    ($conn:expr, |$db:ident| $body:expr) => {{
        let tx = $conn.client.transaction().await.unwrap();
        let out = {
            let $db = &Postgres { tx: &tx };
            $body.await.unwrap()
        };
        tx.commit().await.unwrap();
        out
    }};
}

/// The rest of the store, written once against [`Db`]: the same history on
/// SQLite and PostgreSQL reads the same through every report, count, undo
/// and kv read, and the maintenance writes (a restart's settlement, the
/// journal's and the ledger's retention, kv, the write probe) leave the
/// same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_and_maintenance_write_agrees_on_sqlite_and_postgresql() {
    use crate::store::db::{Sqlite, at_once};
    let Some((_cluster, mut conn)) = database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    drop(Store::open(&path, redactor()).unwrap());
    let sqlite = rusqlite::Connection::open(&path).unwrap();
    let lite = &Sqlite(&sqlite);
    let r = redactor();
    let r = r.load();

    let told = [at_once(history(lite, &r)).unwrap(), on_postgres!(conn, |db| history(db, &r))];
    same("the history", &told[0], &told[1]);
    for expected in ["admit p3: RateLimited { retry_after_ms: 3598000 }", "claim zz: NoPlan"] {
        assert!(told[0].iter().any(|s| s == expected), "{expected}: {:#?}", told[0]);
    }
    for expected in
        ["claim p1: Claimed", "claim u1: NotClaimed", "claim s1 again: NotClaimed", "finish u1: Err(NotFound"]
    {
        assert!(told[0].iter().any(|s| s.starts_with(expected)), "{expected}: {:#?}", told[0]);
    }

    let reads = [at_once(every_read(lite)).unwrap(), on_postgres!(conn, |db| every_read(db))];
    same("the reads", &reads[0], &reads[1]);
    let answer = |name: &str| reads[0].iter().find(|(n, _)| *n == name).map(|(_, a)| a.clone()).unwrap();
    assert_eq!(answer("tool_counts_in"), r#"[("post", 2), ("search", 5)]"#);
    assert_eq!(answer("error_counts_in"), "(11, 4)");
    assert_eq!(answer("upstream_errors_in"), "UpstreamErrors { status_5xx: 1, unreachable: 1, timeout: 1 }");
    assert_eq!(answer("refusals_in"), r#"[("rate_limited", 1), ("store_unavailable", 1)]"#);
    assert_eq!(answer("last_denial_ms"), format!("Some({})", T0 + 1_000));
    assert!(answer("calls_by_bucket").starts_with("[ToolBucket { tool: None,"), "unmatched calls first");
    assert_eq!(answer("find_call_ids by a part"), format!("[{UUID_IN_FLIGHT:?}, {UUID_DONE:?}]"));

    let maintained = [at_once(maintenance(lite)).unwrap(), on_postgres!(conn, |db| maintenance(db))];
    same("the maintenance", &maintained[0], &maintained[1]);
    assert_eq!(
        maintained[0][..5],
        [
            "settle_interrupted: 2",
            "prune_journal, one row: 1",
            r#"left of the two: Some("p1")"#,
            "prune_journal: 1",
            "prune spend: 1"
        ]
    );

    let rows = [at_once(every_row(lite)).unwrap(), on_postgres!(conn, |db| every_row(db))];
    same("the rows after", &rows[0], &rows[1]);
    let row = |start: &str| rows[0].iter().find(|r| r.starts_with(start)).cloned().unwrap_or_default();
    assert!(row(r#"Some("p2") | Some("post") |"#).contains(r#"Some("failed")"#), "fail_running: {:#?}", rows[0]);
    assert!(row(r#"Some("l2") | Some("2026-12-04")"#).contains("Some(600000) | Some(600000)"), "{:#?}", rows[0]);
    assert!(row(r#"Some("store.write_probe")"#).ends_with("Some(1)"), "{:#?}", rows[0]);
    for gone in [r#"Some("old-llm")"#, r#"Some("p1")"#, r#"Some("other")"#, r#"Some("2026-12-01")"#] {
        assert!(!rows[0].iter().any(|r| r.starts_with(gone)), "{gone}: {:#?}", rows[0]);
    }

    let after = [at_once(every_read(lite)).unwrap(), on_postgres!(conn, |db| every_read(db))];
    same("the reads after", &after[0], &after[1]);
}

/// Behind PgBouncer in transaction mode a session's LISTEN and locks do
/// not survive its transaction: steward refuses to open the store there,
/// saying what to change; in session mode it opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_mode_pooler_is_refused_and_a_session_mode_one_is_not() {
    let Some((cluster, _conn)) = database().await else { return };
    let Some(transaction) = cluster.pooler("transaction") else { return };
    let err = connect::Target::parse(&transaction.url()).unwrap().check_session_pooling().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("pooler in transaction mode") && text.contains("pool_mode = session"), "{text}");
    let opened = Store::open_fleet(&transaction.url(), "web-1", 2, redactor()).await;
    assert!(opened.as_ref().is_err_and(|e| e.to_string().contains("transaction mode")), "{opened:?}");

    let Some(session) = cluster.pooler("session") else { return };
    connect::Target::parse(&session.url()).unwrap().check_session_pooling().await.unwrap();
    let store = match Store::open_fleet(&session.url(), "web-1", 2, redactor()).await {
        Ok(store) => store,
        Err(e) => panic!("{e}\n{}", session.log()),
    };
    assert!(!store.kill_state().await.unwrap().engaged);
}

/// TLS through rustls: with `sslrootcert` (a private CA) the connection is
/// encrypted and the server's certificate verified; without it the same
/// certificate is refused against the platform's roots, and the message
/// never carries the URL's password; `sslmode=disable` stays plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_servers_certificate_against_the_roots_it_is_given() {
    let Some(cluster) = pg_harness::PgCluster::start_tls() else { return };
    let ca = pg_harness::PgCluster::test_ca();
    let base = cluster.url().replacen("://steward@", "://steward:tlsCanaryPw77@", 1);
    let encoded: String =
        percent_encoding::utf8_percent_encode(&ca.display().to_string(), percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let verified = format!("{base}?sslmode=require&sslrootcert={encoded}");
    crate::store::pg::fleet::migrate_at(&verified).await.unwrap();
    let client = connect::Target::parse(&verified).unwrap().connect().await.unwrap();
    let ssl: bool =
        client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(ssl, "the connection is encrypted");
    let store = Store::open_fleet(&verified, "web-1", 2, redactor()).await.unwrap();
    assert!(!store.kill_state().await.unwrap().engaged);

    // The platform's roots do not know the test CA: refused, and said why.
    let err = connect::Target::parse(&format!("{base}?sslmode=require")).unwrap().connect().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cannot connect") && text.to_lowercase().contains("certificate"), "{text}");
    assert!(!text.contains("tlsCanaryPw77"), "{text}");

    // A bundle that is not one: the fix named.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let bad = format!("{base}?sslmode=require&sslrootcert={}", dir.path().join("empty.pem").display());
    let err = connect::Target::parse(&bad).unwrap_err().to_string();
    assert!(err.contains("sslrootcert") && err.contains("PEM file of the CA"), "{err}");
    assert!(!err.contains("tlsCanaryPw77"), "{err}");

    // Plain when asked.
    let plain = connect::Target::parse(&format!("{base}?sslmode=disable")).unwrap().connect().await.unwrap();
    let ssl: bool =
        plain.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(!ssl);
}

/// On a fleet, kv entries are the instance's own (its agent's status, its
/// MCP pins) unless the fleet shares them (the spend stop, supervised
/// mode): two instances' entries of one key do not overwrite each other,
/// a prefix lists this instance's as they were set, and a shared key is
/// one value for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_entries_are_each_instances_own_except_the_fleets() {
    let Some((cluster, _conn)) = database().await else { return };
    let web1 = Store::open_fleet(&cluster.url(), "web-1", 2, redactor()).await.unwrap();
    let web2 = Store::open_fleet(&cluster.url(), "web-2", 2, redactor()).await.unwrap();
    web1.kv_set("supervisor.status", "running on web-1", T0).await.unwrap();
    web2.kv_set("supervisor.status", "running on web-2", T0).await.unwrap();
    assert_eq!(web1.kv_get("supervisor.status").await.unwrap().as_deref(), Some("running on web-1"));
    assert_eq!(web2.kv_get("supervisor.status").await.unwrap().as_deref(), Some("running on web-2"));
    web1.kv_set("mcp.pin.files/read", "pin-1", T0).await.unwrap();
    let pins = web1.kv_with_prefix("mcp.pin.").await.unwrap();
    assert_eq!(pins, [("mcp.pin.files/read".to_owned(), "pin-1".to_owned(), T0)]);
    assert!(web2.kv_with_prefix("mcp.pin.").await.unwrap().is_empty());
    web1.kv_set("supervised.graduated", "{}", T0).await.unwrap();
    assert_eq!(web2.kv_get("supervised.graduated").await.unwrap().as_deref(), Some("{}"));
    web2.kv_delete("supervisor.status").await.unwrap();
    assert!(web2.kv_get("supervisor.status").await.unwrap().is_none());
    assert!(web1.kv_get("supervisor.status").await.unwrap().is_some());
}
