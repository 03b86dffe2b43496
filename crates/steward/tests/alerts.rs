//! Monitoring end to end: the real `steward run` in front of mock-upstream,
//! alert sinks pointing at a local receiver, driven like an agent would.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::routing::post;
use common::{DEFAULT_TOOLS, Env, jwt_expiring};
use mock_upstream::Faults;
use reqwest::Method;
use serde_json::Value;

/// Notices the receiver got, as JSON.
type Inbox = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let kept = Arc::clone(&inbox);
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let kept = Arc::clone(&kept);
            async move {
                kept.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, inbox)
}

fn write_secret(env: &Env, name: &str, value: &str) {
    common::private_file(&env.dir.path().join(name), &format!("{value}\n"));
}

fn notices(inbox: &Inbox, key: &str) -> Vec<Value> {
    inbox.lock().unwrap().iter().filter(|n| n["key"] == key).cloned().collect()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    // The engine polls every 5 s; allow several rounds on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn echo(env: &Env, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..n {
        let response = env.req(Method::POST, "/api/social/echo").body(format!("call {i}")).send().await.unwrap();
        statuses.push(response.status().as_u16());
        response.bytes().await.unwrap();
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_alert_fires_once_resolves_and_sinks_show_in_status() {
    let (hook, inbox) = receiver().await;
    let alerts = r#"
[alerts]
error_rate_percent = 20
error_rate_min_calls = 20
repeat_every = "1h"

[[alerts.sinks]]
kind = "webhook"
url = "file:hook.url"

[[alerts.sinks]]
kind = "webhook"
name = "down"
url = "file:down.url"
timeout = "2s"
"#;
    let mut env = Env::with_tools("", &format!("{DEFAULT_TOOLS}{alerts}")).await;
    write_secret(&env, "hook.url", &hook);
    // A closed port: every delivery to this sink fails at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    write_secret(&env, "down.url", &format!("http://127.0.0.1:{closed}/hook"));
    env.start();

    // 30 calls, 40% of them answered 503 by the upstream.
    env.mock.set_faults(Faults { error_rate: 0.4, ..Faults::default() });
    let statuses = echo(&env, 30).await;
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 12, "{statuses:?}");

    wait_until("the error-rate alert", || !notices(&inbox, "error_rate").is_empty()).await;
    let firing = notices(&inbox, "error_rate");
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0]["status"], "firing");
    assert_eq!(firing[0]["agent"], "test-agent");
    // The engine polls every 5 s, so it may judge the window while the 30
    // calls are still being made: the counts are the ones it saw then.
    let message = firing[0]["message"].as_str().unwrap();
    let counts: Vec<u64> = message
        .split(" calls")
        .next()
        .and_then(|head| head.split_once(" of "))
        .map(|(failed, judged)| vec![failed.parse().unwrap(), judged.parse().unwrap()])
        .unwrap_or_else(|| panic!("no `N of M calls` in {message}"));
    let (failed, judged) = (counts[0], counts[1]);
    assert!((20..=30).contains(&judged) && failed <= 12 && failed * 100 > judged * 20, "{message}");

    // /metrics parses and counts the upstream errors; /readyz says ready.
    let metrics = env.client().get(env.url("/metrics")).send().await.unwrap();
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = metrics.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"));
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let sample = |metric: &str, label: &str, value: &str| {
        scrape.samples.iter().find(|s| s.metric == metric && s.labels.get(label) == Some(value)).map(|s| {
            match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v)
                | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            }
        })
    };
    assert_eq!(sample("steward_upstream_errors_total", "kind", "status_5xx"), Some(12.0), "{text}");
    assert_eq!(sample("steward_calls_total", "tool", "echo"), Some(30.0), "{text}");
    assert_eq!(sample("steward_alert_firing", "rule", "error_rate"), Some(1.0), "{text}");
    assert!(!text.contains(common::CANARY_TOKEN) && !text.contains(&env.token));
    // The store's files and checkpoints, read at the scrape.
    let value = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok());
    assert!(value("steward_store_db_bytes").is_some_and(|v| v > 0.0), "{text}");
    assert!(value("steward_store_wal_bytes").is_some(), "{text}");
    for mode in ["passive", "restart", "truncate"] {
        let count = format!("steward_store_checkpoint_duration_seconds_count{{mode=\"{mode}\"}}");
        assert!(value(&count).is_some(), "{count} in {text}");
    }
    let ready = env.client().get(env.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["ready"], true);

    // `steward status` shows the firing alert and the failing sink.
    wait_until("the failing sink's record", || {
        let out = env.steward(&["status", "--json"]);
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        status["alerts"]["sinks"].as_array().unwrap().iter().any(|s| s["name"] == "down" && s["ok"] == false)
    })
    .await;
    let out = env.steward(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["alerts"]["firing"][0]["key"], "error_rate", "{status}");
    let sinks = status["alerts"]["sinks"].as_array().unwrap();
    assert_eq!(sinks[0]["name"], "webhook");
    assert_eq!(sinks[0]["ok"], true, "{status}");
    let human = String::from_utf8(env.steward(&["status"]).stdout).unwrap();
    assert!(human.contains("1 firing") && human.contains("error_rate"), "{human}");
    assert!(human.contains("down (webhook) FAILING"), "{human}");

    // Still failing, still one notice: no repeat before repeat_every (1h),
    // across at least two more evaluations.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(notices(&inbox, "error_rate").len(), 1);

    // Recovery: 60 good calls bring the hour to 12 of 90.
    env.mock.set_faults(Faults::default());
    assert!(echo(&env, 60).await.iter().all(|s| *s == 200));
    wait_until("the resolved notice", || notices(&inbox, "error_rate").len() == 2).await;
    let resolved = &notices(&inbox, "error_rate")[1];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["label"], "RESOLVED");

    // `steward alerts test`: each sink's result, exit 1 because one failed, recorded in kv.
    let out = env.steward(&["alerts", "test", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["ok"], false);
    let results = record["results"].as_array().unwrap();
    assert_eq!((results[0]["sink"].as_str(), results[0]["ok"].as_bool()), (Some("webhook"), Some(true)));
    assert_eq!((results[1]["sink"].as_str(), results[1]["ok"].as_bool()), (Some("down"), Some(false)));
    assert_eq!(results[1]["attempts"], 2);
    assert!(!results[1]["error"].as_str().unwrap().contains(&closed.to_string()), "the URL leaked into the error");
    assert_eq!(notices(&inbox, "test").len(), 1);
    assert_eq!(notices(&inbox, "test")[0]["test"], true);
    let table = String::from_utf8(env.steward(&["alerts", "test"]).stdout).unwrap();
    assert!(table.contains("delivered") && table.contains("FAILED"), "{table}");
    // Columns line up: each row's attempt count sits under ATTEMPTS (colour codes were counted as width once).
    let lines: Vec<&str> = table.lines().take(3).collect();
    let column = lines[0].find("ATTEMPTS").unwrap();
    for row in &lines[1..] {
        assert!(row[column..].starts_with(|c: char| c.is_ascii_digit()), "misaligned:\n{table}");
    }
    let human = String::from_utf8(env.steward(&["status"]).stdout).unwrap();
    assert!(human.contains("tested") && human.contains("none firing"), "{human}");

    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_from_the_cli_is_alerted_with_its_reason() {
    let (hook, inbox) = receiver().await;
    let alerts = "\n[[alerts.sinks]]\nkind = \"webhook\"\nurl = \"file:hook.url\"\n";
    let mut env = Env::with_tools("", &format!("{DEFAULT_TOOLS}{alerts}")).await;
    write_secret(&env, "hook.url", &hook);
    env.start();
    // `steward stop` in another process, with a reason naming a person
    // (PII is redacted from alerts by default).
    let reason = "rotating the token, ask ops.lead@example.com".to_owned();
    let out = env.steward(&["stop", "--reason", &reason]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("the kill-switch alert", || !notices(&inbox, "kill_switch").is_empty()).await;
    let alert = &notices(&inbox, "kill_switch")[0];
    let message = alert["message"].as_str().unwrap();
    assert!(message.contains("rotating") && message.contains("steward resume"), "{message}");
    assert!(!alert.to_string().contains("ops.lead@example.com"), "{alert}");
    // The reason is redacted before it is stored, so status, the journal and
    // the agent's refusals never carry the address either.
    let out = env.steward(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stored = status["kill_switch"]["reason"].as_str().unwrap();
    assert!(stored.contains("rotating the token") && stored.contains("[REDACTED:email]"), "{status:#}");
    assert!(env.steward(&["resume"]).status.success());
    wait_until("the resolved notice", || notices(&inbox, "kill_switch").len() == 2).await;
    env.stop(false);
    env.assert_no_secret_leaked();
    common::assert_no_needles(env.dir.path(), &["ops.lead@example.com".to_owned()], &[env.config_path.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_agent_raises_one_crash_loop_alert_and_no_agent_down() {
    let (hook, inbox) = receiver().await;
    let alerts = "\n[[alerts.sinks]]\nkind = \"webhook\"\nurl = \"file:hook.url\"\n";
    let agent = "command = [\"sh\", \"-c\", \"exit 1\"]\nmin_uptime = \"1s\"";
    let mut env = Env::with_agent_and_tools(agent, "", &format!("{DEFAULT_TOOLS}{alerts}")).await;
    write_secret(&env, "hook.url", &hook);
    env.start();
    // Five quick exits with backoff (1 s, 2 s, 4 s, 8 s) take about 15 s.
    wait_until("the crash-loop alert", || !notices(&inbox, "crash_loop").is_empty()).await;
    let alert = &notices(&inbox, "crash_loop")[0];
    assert_eq!(alert["severity"], "critical");
    assert!(alert["message"].as_str().unwrap().contains("steward resume"), "{alert}");
    // The crash loop explains the outage: no separate agent-down alert,
    // even past agent_down_after (30 s) and a few more evaluations.
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(notices(&inbox, "crash_loop").len(), 1);
    assert!(notices(&inbox, "agent_down").is_empty(), "{:?}", inbox.lock().unwrap());
    let out = env.steward(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["state"], "fatal", "{status:#}");
    assert_eq!(status["alerts"]["firing"][0]["key"], "crash_loop", "{status:#}");
    // The agent metrics come from the supervisor's events and agree with its count.
    let text = env.client().get(env.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(&format!("steward_agent_restarts_total {}", status["restarts"])), "{text}");
    assert!(
        text.contains("steward_agent_up 0") && text.contains("steward_alert_firing{rule=\"crash_loop\"} 1"),
        "{text}"
    );
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_expiring_in_five_days_is_alerted_once_at_the_seven_day_threshold() {
    let (hook, inbox) = receiver().await;
    let alerts = "\n[[alerts.sinks]]\nkind = \"webhook\"\nurl = \"file:hook.url\"\n";
    let mut env = Env::with_tools("", &format!("{DEFAULT_TOOLS}{alerts}")).await;
    write_secret(&env, "hook.url", &hook);
    // Five days and an hour: the whole-day count stays 5 however long the test takes.
    let soon = jwt_expiring(SystemTime::now() + Duration::from_secs(5 * 86_400 + 3_600));
    std::fs::write(env.dir.path().join("social.token"), format!("{soon}\n")).unwrap();
    env.start();
    wait_until("the expiry alert", || !notices(&inbox, "credential_expiry:social").is_empty()).await;
    let alert = &notices(&inbox, "credential_expiry:social")[0];
    assert_eq!((alert["severity"].as_str(), alert["label"].as_str()), (Some("warning"), Some("FIRING")));
    assert_eq!(alert["title"], "Credential `social` expires in 5 days");
    let message = alert["message"].as_str().unwrap();
    assert!(message.contains("7-day warning") && message.contains("steward secrets reload"), "{message}");
    assert!(!alert.to_string().contains(&soon), "the token is in the notice");
    // Several more evaluations: the same threshold is not sent again.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(notices(&inbox, "credential_expiry:social").len(), 1, "{:?}", inbox.lock().unwrap());
    let out = env.steward(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["alerts"]["firing"][0]["key"], "credential_expiry:social", "{status:#}");
    env.stop(false);
    env.assert_no_secret_leaked();
    common::assert_no_needles(env.dir.path(), &[soon], &[env.dir.path().join("social.token")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_scheduled_backup_is_alerted_and_a_good_one_resolves_it() {
    let (hook, inbox) = receiver().await;
    let alerts = "\n[[alerts.sinks]]\nkind = \"webhook\"\nurl = \"file:hook.url\"\n";
    let mut env = Env::with_tools("", &format!("{DEFAULT_TOOLS}{alerts}")).await;
    write_secret(&env, "hook.url", &hook);
    // The destination is a regular file, so the upload cannot create its directory.
    let dest = env.dir.path().join("dest");
    std::fs::write(&dest, "not a directory").unwrap();
    let mut config = std::fs::OpenOptions::new().append(true).open(&env.config_path).unwrap();
    // Never backed up: the start counts as a missed run, which fails.
    writeln!(
        config,
        "\n[backup]\ndestination = \"file://{}\"\nschedule = \"0 3 1 1 *\"\nrestore_test = \"never\"",
        dest.display()
    )
    .unwrap();
    drop(config);
    env.start();
    wait_until("the backup-failed alert", || !notices(&inbox, "backup_failed").is_empty()).await;
    let alert = &notices(&inbox, "backup_failed")[0];
    assert_eq!(alert["severity"], "warning");
    assert!(alert["message"].as_str().unwrap().contains("steward backup now"), "{alert}");

    // Fixed: a manual backup succeeds and the incident resolves.
    std::fs::remove_file(&dest).unwrap();
    let out = env.steward(&["backup", "now", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("the resolved notice", || notices(&inbox, "backup_failed").len() == 2).await;
    assert_eq!(notices(&inbox, "backup_failed")[1]["status"], "resolved");
    assert!(notices(&inbox, "backup_overdue").is_empty() && notices(&inbox, "restore_test").is_empty());
    env.stop(false);
    env.assert_no_secret_leaked();
}
