//! A fleet: several `steward run` processes, each with its own state dir,
//! sharing one PostgreSQL database (`[store] url`, `docs/fleet.md`),
//! against a throwaway cluster (`pg-harness`; NOT RUN without PostgreSQL,
//! a failure under `.ci/run`). What the issue asks of it, end to end:
//! one limit across the fleet, exact; the daily cap under 200 concurrent
//! LLM calls; `steward stop` on one host refusing calls on every instance
//! (time measured); a `kill -9`ed instance's call settled by a live one
//! after its lease; a database restart refusing calls while it is down
//! and serving them after, nothing counted twice. The store URL carries a
//! canary password, which must reach no file steward writes.
#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{DEFAULT_TOOLS, Env, steward_bin};
use reqwest::Method;
use serde_json::{Value, json};

/// Planted in the store URL (trust authentication ignores it): it must not
/// reach a log, the journal, an audit line or an error.
const URL_CANARY: &str = "fleetCanaryPw9f3e1";

/// The fleet's sections after the tools: an LLM provider on the mock, a
/// small cap, and the store.
fn sections(instance: &str, lease: &str, cap_usd: f64) -> String {
    format!(
        r#"{DEFAULT_TOOLS}
[llm.openai]
kind = "openai"
base_url = "{{base}}"
credential = "llm"

[spend]
daily_cap_usd = {cap_usd}
default_max_output_tokens = 100

[store]
url = "file:store.url"
instance = "{instance}"
lease = "{lease}"
"#
    )
}

/// An instance's environment (not started), its store URL written.
async fn instance(url: &str, name: &str, lease: &str, cap_usd: f64) -> Env {
    let env = Env::with_tools("", &sections(name, lease, cap_usd)).await;
    common::private_file(&env.dir.path().join("store.url"), &format!("{url}\n"));
    env
}

/// The cluster's URL with the canary as password.
fn url_with_canary(cluster: &pg_harness::PgCluster) -> String {
    cluster.url().replacen("://postgres@", &format!("://postgres:{URL_CANARY}@"), 1)
}

fn migrate(env: &Env) -> String {
    let out = env.steward(&["migrate"]);
    assert!(out.status.success(), "steward migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn post(env: &Env, n: usize) -> u16 {
    env.req(Method::POST, "/api/social/api/v1/statuses")
        .json(&json!({ "status": format!("hello {n}") }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn list(env: &Env) -> u16 {
    env.req(Method::GET, "/api/social/api/v1/statuses").send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// The fleet's journal, newest first (`steward last --fleet --json`).
fn fleet_journal(env: &Env) -> Vec<Value> {
    let out = env.steward(&["last", "--fleet", "--json", "-n", "100000"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every file the instances wrote holds neither the canary password nor a
/// planted credential.
fn assert_no_leak(envs: &[&Env]) {
    for env in envs {
        env.assert_no_secret_leaked();
        common::assert_no_needles(
            env.dir.path(),
            &common::with_encodings(&[URL_CANARY]),
            &[env.dir.path().join("store.url")],
        );
    }
}

/// Waits until `check` holds, at most `limit`; how long it took.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_one_limit_one_cap_one_kill_switch_and_one_journal() {
    let Some(cluster) = pg_harness::PgCluster::start() else { return };
    let url = url_with_canary(&cluster);
    let mut envs = Vec::new();
    for name in ["web-1", "web-2", "web-3"] {
        envs.push(instance(&url, name, "30s", 0.001).await);
    }

    // Before `steward migrate`, an instance refuses to start and says so.
    let out = Command::new(steward_bin())
        .args(["run", "--config"])
        .arg(&envs[0].config_path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on an empty database");
    assert!(stderr.contains("steward migrate"), "{stderr}");
    assert!(!stderr.contains(URL_CANARY), "{stderr}");

    let first = migrate(&envs[0]);
    assert!(first.contains("migrated from version 0"), "{first}");
    assert!(!first.contains(URL_CANARY), "{first}");
    assert!(migrate(&envs[1]).contains("nothing to apply"));
    for env in &mut envs {
        env.start();
    }

    // One limit across the fleet: 3 x 100 concurrent posts against
    // `10/hour` are admitted exactly 10 times.
    let mut calls = tokio::task::JoinSet::new();
    for (i, env) in envs.iter().enumerate() {
        for n in 0..100 {
            let req =
                env.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": format!("p{i}-{n}") }));
            calls.spawn(async move { req.send().await.unwrap().status().as_u16() });
        }
    }
    let statuses = calls.join_all().await;
    let allowed = statuses.iter().filter(|s| (200..300).contains(*s)).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((allowed, limited), (10, 290), "{statuses:?}");
    let upstream: usize = envs.iter().map(|e| e.mock.requests().len()).sum();
    assert_eq!(upstream, 10, "only the admitted posts reached an upstream");

    // The journal is the fleet's: `steward last --fleet` on any instance
    // shows every instance's calls; `steward last`, this instance's.
    let journal = fleet_journal(&envs[2]);
    let posts: Vec<&Value> = journal.iter().filter(|r| r["tool"] == "post").collect();
    assert_eq!(posts.len(), 300);
    assert_eq!(posts.iter().filter(|r| r["decision"] == "allowed").count(), 10);
    let mine = envs[2].journal();
    assert_eq!(mine.iter().filter(|r| r["tool"] == "post").count(), 100);
    assert!(mine.iter().all(|r| r["instance"] == "web-3"), "{:?}", mine.first());

    // The daily cap under 200 concurrent LLM calls across the fleet: what
    // is settled never passes the cap.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let req = envs[i % 3].req(Method::POST, "/llm/openai/v1/chat/completions").json(&json!({
            "model": "gpt-4o-mini", "max_tokens": 100, "messages": [{"role": "user", "content": format!("hi {i}")}]
        }));
        calls.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let statuses = calls.join_all().await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!(served > 0 && served < 200, "the cap admits some and refuses the rest: {statuses:?}");
    let out = envs[1].steward(&["spend", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let spend: Value = serde_json::from_slice(&out.stdout).unwrap();
    let spent = spend["today"]["spent_usd"].as_f64().unwrap();
    assert!(spent <= 0.001 + 1e-12, "the fleet spent {spent} against a $0.001 cap");
    eprintln!("cap: {served} of 200 concurrent LLM calls served, {spent} USD settled against 0.001");

    // `steward stop` on one host reaches every instance.
    let before = envs[1].req(Method::GET, "/api/social/api/v1/statuses").send().await.unwrap();
    let (status, body) = (before.status().as_u16(), before.text().await.unwrap());
    assert_eq!(status, 200, "{body}");
    let stopped = Instant::now();
    let out = envs[0].steward(&["stop", "--reason", "fleet test"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut reached = Vec::new();
    for env in &envs[1..] {
        let took = within(Duration::from_secs(5), async || list(env).await == 403).await;
        reached.push(took.map(|_| stopped.elapsed()));
    }
    eprintln!("stop reached web-2 and web-3 after {reached:?} (from the start of `steward stop`)");
    for took in &reached {
        let took = took.expect("the stop never reached an instance");
        assert!(took < Duration::from_secs(2), "the stop took {took:?}");
    }
    let out = envs[2].steward(&["resume"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for env in &envs {
        assert!(within(Duration::from_secs(5), async || list(env).await == 200).await.is_some(), "not resumed");
    }

    // `steward status --fleet` lists the live instances.
    let out = envs[0].steward(&["status", "--fleet", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> =
        status["fleet"]["instances"].as_array().unwrap().iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, ["web-1", "web-2", "web-3"], "{status}");

    // `/metrics` shows the pool and each store operation's duration.
    let metrics = envs[0].client().get(envs[0].url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("steward_store_pool_connections{state=\"open\"}"), "{metrics}");
    let admits = metrics
        .lines()
        .find_map(|l| l.strip_prefix("steward_store_op_duration_seconds_count{op=\"admit\"} "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(admits.is_some_and(|n| n >= 100), "{metrics}");

    // Each audit line names its instance.
    let lines = envs[1].audit_lines();
    assert!(!lines.is_empty() && lines.iter().all(|l| l["instance"] == "web-2"), "{:?}", lines.first());

    for env in &mut envs {
        env.stop(false);
    }
    let refs: Vec<&Env> = envs.iter().collect();
    assert_no_leak(&refs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_instances_call_is_settled_by_a_live_one_after_its_lease() {
    let Some(cluster) = pg_harness::PgCluster::start() else { return };
    let url = url_with_canary(&cluster);
    let mut crashed = instance(&url, "web-1", "5s", 1.0).await;
    let mut live = instance(&url, "web-2", "5s", 1.0).await;
    migrate(&crashed);
    crashed.start();
    live.start();

    // A post and a priced LLM call that hang upstream, then their instance
    // is killed.
    crashed.mock.set_faults(mock_upstream::faults::Faults { latency: Duration::from_secs(60), ..Default::default() });
    let hanging = crashed.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": "hang" }));
    let _call = tokio::spawn(async move { hanging.send().await });
    let priced = crashed.req(Method::POST, "/llm/openai/v1/chat/completions").json(&json!({
        "model": "gpt-4o-mini", "max_tokens": 100, "messages": [{"role": "user", "content": "hang"}]
    }));
    let _llm = tokio::spawn(async move { priced.send().await });
    let in_flight = within(Duration::from_secs(10), async || {
        fleet_journal(&live).iter().filter(|r| r["instance"] == "web-1" && r["finished_ms"].is_null()).count() == 2
    })
    .await;
    assert!(in_flight.is_some(), "the calls were never journaled in flight");
    let spend = |env: &Env| -> Value {
        let out = env.steward(&["spend", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["today"].clone()
    };
    let reserved = spend(&live)["reserved_usd"].as_f64().unwrap();
    assert!(reserved > 0.0, "the LLM call holds a reservation");
    let killed = Instant::now();
    crashed.stop(true);

    // After the lease (5 s) the live instance's reaper (every 5 s) settles it.
    let settled = within(Duration::from_secs(20), async || {
        fleet_journal(&live).iter().any(|r| {
            r["tool"] == "post"
                && r["instance"] == "web-1"
                && r["reason"] == "interrupted"
                && !r["finished_ms"].is_null()
        })
    })
    .await;
    assert!(settled.is_some(), "the dead instance's call was never settled: {:?}", fleet_journal(&live));
    let took = killed.elapsed();
    eprintln!(
        "the killed instance's call was settled {took:?} after kill -9 (lease 5 s from its last renewal, reaper every 5 s)"
    );
    // The lease runs from the last renewal, up to a second before the kill.
    assert!(took >= Duration::from_secs(4), "settled before the lease lapsed ({took:?})");
    assert!(live.daemon_log().contains("web-1"), "the live instance says whose calls it settled");
    // Its reservation no longer held open: billed in full (fail closed),
    // the day's total unchanged.
    let after = within(Duration::from_secs(10), async || spend(&live)["reserved_usd"].as_f64() == Some(0.0)).await;
    assert!(after.is_some(), "the reservation stayed open: {}", spend(&live));
    let today = spend(&live);
    assert!((today["settled_usd"].as_f64().unwrap() - reserved).abs() < 1e-9, "{today}");
    assert!((today["spent_usd"].as_f64().unwrap() - reserved).abs() < 1e-9, "nothing counted twice: {today}");

    // The name is free again: the crashed instance restarts as web-1.
    crashed.mock.set_faults(mock_upstream::faults::Faults::default());
    crashed.start();
    assert_eq!(list(&crashed).await, 200);
    crashed.stop(false);
    live.stop(false);
    assert_no_leak(&[&crashed, &live]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_refuses_calls_while_it_is_down_and_counts_nothing_twice() {
    let Some(mut cluster) = pg_harness::PgCluster::start() else { return };
    let url = url_with_canary(&cluster);
    let mut env = instance(&url, "web-1", "30s", 1.0).await;
    migrate(&env);
    env.start();
    assert_eq!(post(&env, 1).await, 200);

    cluster.stop();
    let refused = within(Duration::from_secs(10), async || list(&env).await == 503).await;
    eprintln!("with the database down, calls were refused after {refused:?}");
    assert!(refused.is_some(), "calls were served with the database down");
    let body =
        env.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({"status": "down"})).send().await.unwrap();
    assert_eq!(body.status().as_u16(), 503);
    let text = body.text().await.unwrap();
    assert!(!text.contains(URL_CANARY), "{text}");
    assert!(text.contains("store_unavailable") || text.contains("kill switch"), "{text}");

    cluster.restart();
    let served = within(Duration::from_secs(20), async || list(&env).await == 200).await;
    eprintln!("after the restart, calls were served again after {served:?}");
    assert!(served.is_some(), "calls were not served after the database came back");
    assert_eq!(post(&env, 2).await, 200);
    // Nothing counted twice: two posts allowed, two reached the upstream.
    let journal = env.journal();
    assert_eq!(journal.iter().filter(|r| r["tool"] == "post" && r["decision"] == "allowed").count(), 2);
    assert_eq!(env.mock.requests().iter().filter(|r| r.method == "POST").count(), 2);
    env.stop(false);
    assert_no_leak(&[&env]);
}

/// Supervised mode across the fleet: a call held on one instance is seen
/// and approved from another host's CLI, and released once, on its own
/// instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_held_on_one_instance_is_approved_from_another() {
    let Some(cluster) = pg_harness::PgCluster::start() else { return };
    let url = url_with_canary(&cluster);
    let supervised =
        |name: &str| format!("{}\n[supervised]\nenabled = true\nwait = \"25s\"\n", sections(name, "30s", 1.0));
    let mut held_on = Env::with_tools("", &supervised("web-1")).await;
    let mut other = Env::with_tools("", &supervised("web-2")).await;
    for env in [&held_on, &other] {
        common::private_file(&env.dir.path().join("store.url"), &format!("{url}\n"));
    }
    migrate(&held_on);
    held_on.start();
    other.start();

    let call = held_on.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": "held" }));
    let agent = tokio::spawn(async move { call.send().await.unwrap().status().as_u16() });
    let pending = |env: &Env| -> Vec<Value> {
        let out = env.steward(&["approvals", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        listed["approvals"].as_array().cloned().unwrap_or_default()
    };
    let mut request = None;
    let seen = within(Duration::from_secs(15), async || {
        request = pending(&other).into_iter().next();
        request.is_some()
    })
    .await;
    assert!(seen.is_some(), "web-2 never saw web-1's pending request");
    let id = request.unwrap()["id"].as_str().unwrap().to_owned();
    assert!(held_on.mock.requests().is_empty(), "nothing leaves before the approval");
    let out = other.steward(&["approve", &id, "--note", "from web-2"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(agent.await.unwrap(), 200);
    assert_eq!(held_on.mock.requests().len(), 1, "released once, on its own instance");
    assert!(other.mock.requests().is_empty());
    held_on.stop(false);
    other.stop(false);
    assert_no_leak(&[&held_on, &other]);
}

/// Undo across the fleet: a post made through one instance is undone from
/// another host (its daemon sends the recorded undo), once: the first
/// instance then finds it undone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_made_on_one_instance_is_undone_from_another_once() {
    let Some(cluster) = pg_harness::PgCluster::start() else { return };
    let url = url_with_canary(&cluster);
    let config = |name: &str| {
        format!(
            "{}\n[store]\nurl = \"file:store.url\"\ninstance = \"{name}\"\n[supervised]\nenabled = false\n",
            common::UNDOABLE_TOOLS
        )
    };
    let mut made_on = Env::with_tools("", &config("web-1")).await;
    let mut undone_from = Env::with_tools("", &config("web-2")).await;
    for env in [&made_on, &undone_from] {
        common::private_file(&env.dir.path().join("store.url"), &format!("{url}\n"));
    }
    // One upstream, as a fleet has: web-2 reaches web-1's mock.
    let text = std::fs::read_to_string(&undone_from.config_path).unwrap();
    std::fs::write(&undone_from.config_path, text.replace(&undone_from.mock.base_url(), &made_on.mock.base_url()))
        .unwrap();
    migrate(&made_on);
    made_on.start();
    undone_from.start();

    let response = made_on
        .req(Method::POST, "/api/social/api/v1/statuses")
        .json(&json!({ "status": "oops" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-steward-call-id"].to_str().unwrap().to_owned();
    let status_id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    let out = undone_from.steward(&["undo", &call_id, "--yes", "--json"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let deletes = || -> Vec<String> {
        made_on.mock.requests().into_iter().filter(|r| r.method == "DELETE").map(|r| r.path).collect()
    };
    assert_eq!(deletes(), [format!("/api/v1/statuses/{status_id}")], "the undo went out, from web-2");

    // One claim across the fleet: web-1 finds it undone and sends nothing.
    let again = made_on.steward(&["undo", &call_id, "--yes", "--json"]);
    let text = format!("{}{}", String::from_utf8_lossy(&again.stdout), String::from_utf8_lossy(&again.stderr));
    assert!(text.contains("undone"), "{text}");
    assert_eq!(deletes().len(), 1, "sent once: {text}");
    let row = fleet_journal(&made_on).into_iter().find(|r| r["id"] == call_id.as_str()).unwrap();
    assert_eq!(row["undo"]["state"], "undone", "{row}");
    made_on.stop(false);
    undone_from.stop(false);
    assert_no_leak(&[&made_on, &undone_from]);
}

/// The alerts over state the fleet shares (here the kill switch) are
/// notified once for the fleet, by its speaker, not once per instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_wide_alert_is_notified_once_not_once_per_instance() {
    let Some(cluster) = pg_harness::PgCluster::start() else { return };
    let url = url_with_canary(&cluster);
    let notices: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = std::sync::Arc::default();
    let kept = std::sync::Arc::clone(&notices);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let kept = std::sync::Arc::clone(&kept);
            async move {
                kept.lock().unwrap().push(serde_json::from_str::<Value>(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let alerting = |name: &str| {
        format!("{}\n[[alerts.sinks]]\nkind = \"webhook\"\nurl = \"file:hook.url\"\n", sections(name, "30s", 1.0))
    };
    let mut envs = vec![Env::with_tools("", &alerting("web-1")).await, Env::with_tools("", &alerting("web-2")).await];
    for env in &envs {
        common::private_file(&env.dir.path().join("store.url"), &format!("{url}\n"));
        common::private_file(&env.dir.path().join("hook.url"), &format!("{hook}\n"));
    }
    migrate(&envs[0]);
    for env in &mut envs {
        env.start();
    }
    let kill_notices = || notices.lock().unwrap().iter().filter(|n| n["key"] == "kill_switch").count();
    assert!(envs[1].steward(&["stop", "--reason", "fleet alert test"]).status.success());
    assert!(within(Duration::from_secs(30), async || kill_notices() >= 1).await.is_some(), "never alerted");
    // Two more rounds of both engines (every 5 s): still one notice.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(kill_notices(), 1, "{:?}", notices.lock().unwrap());
    assert!(envs[1].steward(&["resume"]).status.success());
    assert!(within(Duration::from_secs(30), async || kill_notices() >= 2).await.is_some(), "never resolved");
    for env in &mut envs {
        env.stop(false);
    }
    let refs: Vec<&Env> = envs.iter().collect();
    assert_no_leak(&refs);
}
