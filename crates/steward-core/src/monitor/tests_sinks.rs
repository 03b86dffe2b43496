//! Every sink kind against a local receiver on 127.0.0.1: an axum server for
//! the HTTP sinks, a small SMTP server written here, a shell command that
//! writes its stdin to a file. A dead sink must not hold up the others, a
//! failing one is retried and recorded, and no planted secret reaches any
//! receiver.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::delivery::{self, DeliveryContext};
use super::tests::{CANARY, config, redactor, t0};
use super::*;

/// What the HTTP receiver saw: (path, authorization header, body).
type Seen = Arc<Mutex<Vec<(String, Option<String>, String)>>>;

async fn http_receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = |State(seen): State<Seen>, path: String, headers: http::HeaderMap, body: String| {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        seen.lock().unwrap().push((path, auth, body));
    };
    let app =
        axum::Router::new()
            .route(
                "/",
                post(move |state: State<Seen>, headers: http::HeaderMap, body: String| async move {
                    record(state, "/".into(), headers, body);
                    "ok"
                }),
            )
            .route(
                "/{name}",
                post(
                    move |state: State<Seen>,
                          UrlPath(name): UrlPath<String>,
                          headers: http::HeaderMap,
                          body: String| async move {
                        record(state, format!("/{name}"), headers, body);
                        match name.as_str() {
                            "fail" => http::StatusCode::INTERNAL_SERVER_ERROR,
                            "gone" => http::StatusCode::GONE,
                            _ => http::StatusCode::OK,
                        }
                    },
                ),
            )
            .with_state(Arc::clone(&seen));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

/// A minimal SMTP server: accepts any envelope and keeps each message's DATA.
async fn smtp_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let kept = Arc::clone(&messages);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { return };
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 localhost test SMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 localhost\r\n",
                        "DATA" => {
                            write.write_all(b"354 go ahead\r\n").await.unwrap();
                            let mut data = String::new();
                            while let Ok(Some(line)) = lines.next_line().await {
                                if line == "." {
                                    break;
                                }
                                data.push_str(&line);
                                data.push('\n');
                            }
                            kept.lock().unwrap().push(data);
                            b"250 queued\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (addr, messages)
}

/// Accepts connections and never answers: a hung webhook.
async fn dead_receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    base
}

fn secrets(values: &[(&str, String)]) -> Secrets {
    Secrets::from_values(values.iter().map(|(k, v)| ((*k).to_owned(), SecretString::from(v.clone()))))
}

fn sample_alert() -> Alert {
    Alert {
        key: "kill_switch".into(),
        status: AlertStatus::Firing,
        severity: Severity::Critical,
        agent: "poster".into(),
        title: "Kill switch engaged: the agent is stopped".into(),
        message: format!("The kill switch was engaged by cli: leaked {CANARY}. <!channel> @everyone"),
        since_ms: super::tests::ms(t0()),
        at_ms: super::tests::ms(t0()),
        repeat: 0,
        test: false,
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sink_kind_delivers_and_a_dead_sink_blocks_none() {
    let (base, seen) = http_receiver().await;
    let (smtp, mail) = smtp_receiver().await;
    let dead = dead_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("alert.json");
    let config = config(&format!(
        r#"
[[alerts.sinks]]
kind = "webhook"
name = "dead"
url = "env:DEAD"
timeout = "60s"
[[alerts.sinks]]
kind = "webhook"
url = "env:HOOK"
[[alerts.sinks]]
kind = "slack"
url = "env:SLACK"
[[alerts.sinks]]
kind = "discord"
url = "env:DISCORD"
[[alerts.sinks]]
kind = "ntfy"
url = "env:NTFY"
token = "env:NTFY_TOKEN"
[[alerts.sinks]]
kind = "email"
smtp = "{smtp}"
tls = "none"
from = "Steward <steward@example.com>"
to = ["oncall@example.com", "backup@example.com"]
[[alerts.sinks]]
kind = "command"
command = ["/bin/sh", "-c", "cat > '{out}'"]
"#,
        out = out.display()
    ));
    let secrets = secrets(&[
        ("alerts:dead:url", format!("{dead}/hook")),
        ("alerts:webhook:url", format!("{base}/hook")),
        ("alerts:slack:url", format!("{base}/slack")),
        ("alerts:discord:url", format!("{base}/discord")),
        ("alerts:ntfy:url", format!("{base}/steward-alerts")),
        ("alerts:ntfy:token", "tk_ntfy_access".to_owned()),
    ]);
    let sinks = build_sinks(&config, &secrets).unwrap();
    let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
    let metrics = Arc::new(Metrics::new());
    let ctx = DeliveryContext {
        store: store.clone(),
        redactor: redactor(),
        metrics: Arc::clone(&metrics),
        client: crate::outbound::http_client().unwrap(),
    };
    let tracker = tokio_util::task::TaskTracker::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let dispatcher = Dispatcher::start(sinks, &ctx, &tracker, &shutdown);
    dispatcher.dispatch(sample_alert());

    // Everything but the dead sink arrives while the dead one still hangs
    // (its first attempt alone may take 60 s).
    wait_for("the HTTP sinks", || seen.lock().unwrap().len() >= 4).await;
    wait_for("the email", || !mail.lock().unwrap().is_empty()).await;
    wait_for("the command's file", || std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)).await;
    wait_for("the delivery records", || {
        metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("steward_alert_deliveries_total{") && l.contains("result=\"ok\""))
            .count()
            == 6
    })
    .await;

    let seen = seen.lock().unwrap().clone();
    let body = |path: &str| -> serde_json::Value {
        let (_, _, body) =
            seen.iter().find(|(p, _, _)| p == path).unwrap_or_else(|| panic!("nothing at {path}: {seen:?}"));
        serde_json::from_str(body).unwrap()
    };
    let generic = body("/hook");
    assert_eq!(generic["key"], "kill_switch");
    assert_eq!(generic["status"], "firing");
    assert_eq!(generic["severity"], "critical");
    assert_eq!(generic["agent"], "poster");
    assert_eq!(generic["since"], "2026-11-26T10:00:00.000Z");
    let slack = body("/slack");
    assert!(slack["text"].as_str().unwrap().contains("[steward] FIRING: Kill switch engaged"));
    let section = slack["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(section.contains("&lt;!channel&gt;") && !section.contains("<!channel>"), "{section}");
    let discord = body("/discord");
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));
    assert_eq!(discord["embeds"][0]["title"], "Kill switch engaged: the agent is stopped");
    assert_eq!(discord["embeds"][0]["color"], 0xd9_30_25);
    let ntfy = body("/");
    assert_eq!(ntfy["topic"], "steward-alerts");
    assert_eq!(ntfy["priority"], 5);
    let ntfy_auth = seen.iter().find(|(p, _, _)| p == "/").and_then(|(_, a, _)| a.clone());
    assert_eq!(ntfy_auth.as_deref(), Some("Bearer tk_ntfy_access"));
    let email = mail.lock().unwrap()[0].clone();
    assert!(email.contains("Subject: [steward] FIRING: Kill switch engaged"), "{email}");
    assert!(email.contains("To: oncall@example.com, backup@example.com"), "{email}");
    let command: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(command["key"], "kill_switch");

    // The planted secret reached no receiver, in any sink's format.
    let mut everything: Vec<String> = seen.iter().map(|(_, _, b)| b.clone()).collect();
    everything.push(email);
    everything.push(command.to_string());
    for text in &everything {
        assert!(!text.contains(CANARY), "secret leaked into a notice: {text}");
    }

    // Each delivered sink's result is persisted for `steward status`; the dead one has none yet.
    let names = ["dead", "webhook", "slack", "discord", "ntfy", "email", "command"].map(str::to_owned);
    let health = delivery::read_health(&store, names).await.unwrap();
    for (name, h) in &health[1..] {
        let h = h.as_ref().unwrap_or_else(|| panic!("{name} has no recorded result"));
        assert!(h.ok && h.attempts == 1 && h.alert_key == "kill_switch", "{name}: {h:?}");
    }
    assert!(health[0].1.is_none(), "the dead sink finished?");
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_is_retried_then_recorded_and_a_rejected_one_is_not_retried() {
    let (base, seen) = http_receiver().await;
    let config = config(
        "[[alerts.sinks]]\nkind = \"webhook\"\nname = \"broken\"\nurl = \"env:A\"\n\
         [[alerts.sinks]]\nkind = \"slack\"\nname = \"revoked\"\nurl = \"env:B\"\n\
         [[alerts.sinks]]\nkind = \"command\"\nname = \"script\"\ncommand = [\"/bin/sh\", \"-c\", \"echo boom >&2; exit 3\"]\n",
    );
    let secrets =
        secrets(&[("alerts:broken:url", format!("{base}/fail")), ("alerts:revoked:url", format!("{base}/gone"))]);
    let sinks = build_sinks(&config, &secrets).unwrap();
    let client = crate::outbound::http_client().unwrap();
    let reports = delivery::deliver_to_all(&sinks, &sample_alert(), &client, &redactor(), 3).await;
    let broken = &reports[0];
    assert!(!broken.ok && broken.attempts == 3, "{broken:?}");
    assert_eq!(broken.error.as_deref(), Some("the server answered HTTP 500"));
    let revoked = &reports[1];
    assert!(!revoked.ok && revoked.attempts == 1, "a 410 must not be retried: {revoked:?}");
    let script = &reports[2];
    assert!(!script.ok && script.attempts == 3, "{script:?}");
    assert!(script.error.as_deref().unwrap().contains("boom"), "{script:?}");
    let hits = |path: &str| seen.lock().unwrap().iter().filter(|(p, _, _)| p == path).count();
    assert_eq!((hits("/fail"), hits("/gone")), (3, 1));
    // The URL (it carries the webhook's token) is in no error text.
    for report in &reports {
        assert!(!report.error.clone().unwrap_or_default().contains(&base), "{report:?}");
    }
}

#[tokio::test]
async fn an_unreachable_webhook_error_does_not_reveal_its_url() {
    let config = config("[[alerts.sinks]]\nkind = \"discord\"\nurl = \"env:D\"\ntimeout = \"5s\"\n");
    // A closed port: connection refused at once.
    let port = { TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port() };
    let url = format!("http://127.0.0.1:{port}/api/webhooks/123/{CANARY}");
    let sinks = build_sinks(&config, &secrets(&[("alerts:discord:url", url)])).unwrap();
    let err = sinks[0].send(&sample_alert(), &crate::outbound::http_client().unwrap()).await.unwrap_err();
    assert!(matches!(err, SinkError::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains(CANARY) && !err.to_string().contains("webhooks"), "{err}");
}

#[test]
fn ntfy_urls_are_split_into_server_and_topic() {
    let (server, body) = sinks::ntfy_message("https://ntfy.example/base/alerts/", &sample_alert()).unwrap();
    assert_eq!(server, "https://ntfy.example/base");
    assert_eq!(body["topic"], "alerts");
    assert!(sinks::ntfy_message("https://ntfy.example/", &sample_alert()).is_err());
    assert!(sinks::ntfy_message("alerts", &sample_alert()).is_err());
}

/// A receiver that counts GET pings.
async fn ping_receiver() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    let app = axum::Router::new().route(
        "/ping/{id}",
        axum::routing::get(move || {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                "OK"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ping/0f4e", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_pings_while_steward_can_record_calls_and_stops_when_it_cannot() {
    let (url, pings) = ping_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config("[heartbeat]\nurl = \"env:DEADMAN_URL\"\nevery = \"100ms\"\n");
    let metrics = Arc::new(Metrics::new());
    let beat = heartbeat::Heartbeat {
        url: SecretString::from(url),
        config: config.heartbeat.clone().unwrap(),
        store: Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap(),
        audit: None,
        metrics: Arc::clone(&metrics),
        client: crate::outbound::http_client().unwrap(),
    };
    beat.ping().await.unwrap();
    assert_eq!(pings.load(std::sync::atomic::Ordering::SeqCst), 1);

    let shutdown = tokio_util::sync::CancellationToken::new();
    let store_path = dir.path().join("steward.db");
    let task = tokio::spawn(beat.run(shutdown.clone()));
    wait_for("three more pings", || pings.load(std::sync::atomic::Ordering::SeqCst) >= 4).await;

    // The database disappears: steward refuses calls, so the pings stop.
    std::fs::rename(&store_path, dir.path().join("moved.db")).unwrap();
    wait_for("a withheld ping", || metrics.render().contains("steward_heartbeat_failures_total 1")).await;
    let after = pings.load(std::sync::atomic::Ordering::SeqCst);
    wait_for("more withheld pings", || metrics.render().contains("steward_heartbeat_failures_total 3")).await;
    assert_eq!(pings.load(std::sync::atomic::Ordering::SeqCst), after, "pinged while the store was gone");
    shutdown.cancel();
    task.await.unwrap();
}
