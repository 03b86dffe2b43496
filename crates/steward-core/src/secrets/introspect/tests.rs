//! Tests of token introspection: the shared scope comparison, the record,
//! and the whole path against a fake RFC 7662 endpoint on 127.0.0.1 that
//! checks the form body and the client authentication, with canaries that
//! must reach no record and no log line.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine;
use secrecy::SecretString;

use super::*;
use crate::config::RedactionConfig;
use crate::secrets::AgentToken;

/// The planted access token: base64-ish, so the form encoding matters.
const TOKEN: &str = "canary-token+7c1e/9a2b4d6f==";
/// The planted client id and secret (`[credentials.social_client]`).
const CLIENT_ID: &str = "steward-client";
const CLIENT_SECRET: &str = "client-secret-canary-5e4d3c2b1a09";

/// One request the fake saw.
#[derive(Debug, Clone)]
struct Seen {
    /// Path asked.
    path: String,
    /// `Content-Type`.
    content_type: String,
    /// The decoded form fields, in order.
    form: Vec<(String, String)>,
    /// Whether the Authorization header was the one expected on this path.
    auth_ok: bool,
}

/// The fake endpoint's state: the answer to give, and what it saw.
#[derive(Clone, Default)]
struct Fake {
    /// HTTP status and JSON body of the next answers.
    answer: Arc<Mutex<(u16, serde_json::Value)>>,
    /// Every request, in order.
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn answer(&self, status: u16, body: serde_json::Value) {
        *self.answer.lock().unwrap() = (status, body);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// `application/x-www-form-urlencoded` decoding.
fn decode_form(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// `/basic` expects HTTP Basic with the client's id and secret, `/bearer`
/// the token itself. A request that is not a proper RFC 7662 call gets a 400
/// whose body echoes the token, as a careless server might; `$SENT` in the
/// answer is replaced by what the request carried (token, client secret).
async fn handle(State(fake): State<Fake>, uri: Uri, headers: HeaderMap, body: String) -> (StatusCode, String) {
    let expected_auth = match uri.path() {
        "/basic" => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        ),
        _ => format!("Bearer {TOKEN}"),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let seen = Seen {
        path: uri.path().to_owned(),
        content_type: header("content-type"),
        form: decode_form(&body),
        auth_ok: header("authorization") == expected_auth,
    };
    let proper = seen.auth_ok
        && seen.content_type == "application/x-www-form-urlencoded"
        && seen.form
            == [("token".to_owned(), TOKEN.to_owned()), ("token_type_hint".to_owned(), "access_token".to_owned())];
    fake.seen.lock().unwrap().push(seen);
    if !proper {
        return (StatusCode::BAD_REQUEST, format!("{{\"error\":\"invalid_request\",\"token\":\"{TOKEN}\"}}"));
    }
    let (status, answer) = fake.answer.lock().unwrap().clone();
    // `$SENT` stands for everything this request carried: the endpoint echoes it.
    let sent = if uri.path() == "/basic" { format!("{TOKEN} {CLIENT_SECRET}") } else { TOKEN.to_owned() };
    (StatusCode::from_u16(status).unwrap(), answer.to_string().replace("$SENT", &sent))
}

/// Starts the fake on 127.0.0.1:0; returns its base URL.
async fn start_fake(fake: &Fake) -> String {
    let app = axum::Router::new()
        .route("/basic", axum::routing::post(handle))
        .route("/bearer", axum::routing::post(handle))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// An active answer with `scope`, carrying the token and the client secret
/// in fields steward must ignore.
fn active(scope: &str) -> serde_json::Value {
    serde_json::json!({
        "active": true,
        "scope": scope,
        "client_id": CLIENT_ID,
        "username": TOKEN,
        "sub": CLIENT_SECRET,
        "exp": 1_900_000_000,
    })
}

/// Two upstreams on the fake: `social` authenticates as the client, `plain` with the token.
fn config(dir: &std::path::Path, base: &str) -> Config {
    let text = format!(
        "[agent]\nname = \"t\"\n\n[state]\ndir = \"./state\"\n\n[policy]\nforbidden_scopes = [\"admin\"]\n\n\
         [credentials.social]\nsource = \"env:SOCIAL\"\nscopes = [\"read\", \"write:statuses\"]\n\n\
         [credentials.social_client]\nsource = \"env:CLIENT\"\n\n\
         [upstreams.social]\nbase_url = \"https://social.example\"\ncredential = \"social\"\n\
         introspection_url = \"{base}/basic\"\nintrospection_credential = \"social_client\"\n\n\
         [upstreams.plain]\nbase_url = \"https://plain.example\"\ncredential = \"social\"\n\
         introspection_url = \"{base}/bearer\"\n\n\
         [upstreams.unchecked]\nbase_url = \"https://unchecked.example\"\ncredential = \"social\"\n"
    );
    crate::config::parse(&text, &dir.join("steward.toml")).unwrap()
}

fn secrets() -> Secrets {
    Secrets::from_values([
        ("social".to_owned(), SecretString::from(TOKEN)),
        ("social_client".to_owned(), SecretString::from(format!("{CLIENT_ID}:{CLIENT_SECRET}"))),
    ])
}

fn redactor(secrets: &Secrets) -> redact::Redactor {
    secrets.redactor(&AgentToken::from_value("stw_test-agent-token"), &RedactionConfig::default())
}

/// Everything a test of the whole path needs.
struct Fixture {
    fake: Fake,
    task: IntrospectionTask,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let fake = Fake::default();
    let base = start_fake(&fake).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &base);
    std::fs::create_dir_all(&config.state.dir).unwrap();
    let store = Store::open(&config.state.db_path(), crate::store::tests::redactor()).unwrap();
    let secrets = secrets();
    let redactor = redactor(&secrets);
    let task = IntrospectionTask {
        config: Arc::new(config),
        secrets: Arc::new(ArcSwap::from_pointee(secrets)),
        redactor: crate::redaction::shared(redactor),
        store,
        client: crate::outbound::http_client().unwrap(),
    };
    Fixture { fake, task, _dir: dir }
}

/// A log writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Captures every log line of this thread until the guard drops.
fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    // `tracing` caches each callsite's interest process-wide, computed by the
    // first thread to reach it: a sibling test reaching a log line on a
    // thread with no subscriber caches it as "never", and this thread's
    // capture then misses it (seen once in CI). A global default that is
    // interested in everything (a bare registry, which writes nothing) keeps
    // any callsite from being cached as "never"; the rebuild re-asks the
    // callsites cached before it was set.
    static ANCHOR: std::sync::Once = std::sync::Once::new();
    ANCHOR.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    (captured, guard)
}

/// The planted values and the encodings they could leak in.
fn canaries() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        TOKEN.to_owned(),
        CLIENT_SECRET.to_owned(),
        percent_encoding::utf8_percent_encode(TOKEN, percent_encoding::NON_ALPHANUMERIC).to_string(),
        b64.encode(TOKEN),
        b64.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")),
    ]
}

fn assert_no_canary(what: &str, text: &str) {
    for canary in canaries() {
        assert!(!text.contains(&canary), "{what} holds {canary:?}:\n{text}");
    }
}

#[test]
fn compare_scopes_is_the_header_comparison() {
    let forbidden = vec!["admin".to_owned(), "admin:*".to_owned()];
    let c = compare_scopes("read  Write:Statuses", &["write:statuses", "read"], &forbidden);
    assert!(c.matches(), "{c:?}");
    assert_eq!(c.reported, ["read", "write:statuses"]);
    let c = compare_scopes("read, admin:org,admin", &["read", "write:statuses"], &forbidden);
    assert_eq!(c.undeclared, ["admin", "admin:org"]);
    assert_eq!(c.missing, ["write:statuses"]);
    assert_eq!(c.forbidden, ["admin", "admin:org"]);
    assert!(!c.matches());
    let c = compare_scopes("", &["read"], &forbidden);
    assert_eq!((c.reported.len(), c.missing.as_slice()), (0, &["read".to_owned()][..]));
}

#[test]
fn the_record_of_each_outcome() {
    let secrets = secrets();
    let redactor = redactor(&secrets);
    let declared = vec!["read".to_owned(), "write:statuses".to_owned()];
    let forbidden = vec!["admin".to_owned()];
    let answer = |scope: Option<&str>| {
        Ok(Introspection {
            scope: scope.map(str::to_owned),
            expires: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
            client_id: None,
        })
    };

    let ok = IntrospectionRecord::new(&answer(Some("write:statuses read")), &declared, &forbidden, &redactor, 42);
    assert!(ok.ok && ok.error.is_none(), "{ok:?}");
    assert_eq!((ok.at_ms, ok.active), (42, Some(true)));
    assert_eq!(ok.reported.as_deref(), Some(&declared[..]));
    assert_eq!(ok.expires_at_ms, Some(1_900_000_000_000));

    let admin =
        IntrospectionRecord::new(&answer(Some("read write:statuses admin")), &declared, &forbidden, &redactor, 1);
    assert!(!admin.ok);
    assert_eq!(
        (admin.undeclared.as_slice(), admin.forbidden.as_slice()),
        (&["admin".to_owned()][..], &["admin".to_owned()][..])
    );
    assert!(admin.missing.is_empty());
    assert!(!admin.comparison().unwrap().matches());

    let silent = IntrospectionRecord::new(&answer(None), &declared, &forbidden, &redactor, 1);
    assert!(!silent.ok && silent.reported.is_none());
    assert!(silent.error.unwrap().contains("reports no scope"));

    let inactive = IntrospectionRecord::new(&Err(IntrospectError::Inactive), &declared, &forbidden, &redactor, 1);
    assert_eq!((inactive.ok, inactive.active), (false, Some(false)));
    assert!(inactive.error.unwrap().contains("not active: rotate it"));

    let down = IntrospectionRecord::new(&Err(IntrospectError::Timeout), &declared, &forbidden, &redactor, 1);
    assert_eq!((down.ok, down.active, down.comparison()), (false, None, None));

    // A scope that echoes the token is kept only redacted.
    let echo = IntrospectionRecord::new(&answer(Some(&format!("read {TOKEN}"))), &declared, &forbidden, &redactor, 1);
    assert_no_canary("the record", &serde_json::to_string(&echo).unwrap());
    assert_eq!(echo.undeclared.len(), 1, "{echo:?}");
}

#[test]
fn a_client_credential_is_split_at_its_first_colon() {
    let value = SecretString::from("id:se:cret");
    match ClientAuth::from_value(&value) {
        Some(ClientAuth::Basic { client_id, client_secret }) => {
            assert_eq!((client_id, client_secret), ("id", "se:cret"))
        }
        other => panic!("{other:?}"),
    }
    for bad in ["no-colon", ":secret", "id:"] {
        assert!(ClientAuth::from_value(&SecretString::from(bad)).is_none(), "{bad}");
    }
    let shown = format!("{:?}", ClientAuth::from_value(&value));
    assert!(shown.contains("id") && !shown.contains("cret"), "{shown}");
}

#[tokio::test]
async fn matching_scopes_with_client_auth_and_with_the_token_as_bearer() {
    let f = fixture().await;
    f.fake.answer(200, active("read write:statuses"));
    let records: BTreeMap<String, IntrospectionRecord> = f.task.run_once(SystemTime::now()).await.into_iter().collect();
    assert_eq!(records.keys().collect::<Vec<_>>(), ["plain", "social"], "only upstreams with introspection_url");
    for (upstream, record) in &records {
        assert!(record.ok, "{upstream}: {record:?}");
        assert_eq!(record.active, Some(true));
        assert_eq!(record.reported.as_deref(), Some(&["read".to_owned(), "write:statuses".to_owned()][..]));
        let stored = load_record(&f.task.store, upstream).await.unwrap();
        assert_eq!(&stored, record, "recorded under scopes.introspection.{upstream}");
    }
    let seen = f.fake.seen();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert!(request.auth_ok, "{request:?}");
        assert_eq!(request.content_type, "application/x-www-form-urlencoded");
        assert_eq!(request.form[0], ("token".to_owned(), TOKEN.to_owned()), "the token survives form encoding");
        assert_eq!(request.form[1], ("token_type_hint".to_owned(), "access_token".to_owned()));
    }
    assert_eq!(seen.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), ["/bearer", "/basic"]);
}

#[tokio::test]
async fn a_scope_list_is_read_like_the_rfc_string() {
    let f = fixture().await;
    let mut answer = active("");
    answer["scope"] = serde_json::json!(["write:statuses", "read"]);
    f.fake.answer(200, answer);
    for (upstream, record) in f.task.run_once(SystemTime::now()).await {
        assert!(record.ok, "{upstream}: {record:?}");
    }
}

#[tokio::test]
async fn an_extra_admin_scope_is_reported_forbidden() {
    let f = fixture().await;
    f.fake.answer(200, active("read write:statuses admin"));
    let (logs, guard) = capture_logs();
    let records = f.task.run_once(SystemTime::now()).await;
    drop(guard);
    let (_, social) = records.iter().find(|(u, _)| u == "social").unwrap();
    assert!(!social.ok);
    assert_eq!(social.forbidden, ["admin"]);
    assert_eq!(social.undeclared, ["admin"]);
    assert!(social.missing.is_empty());
    let logs = logs.text();
    assert!(logs.contains("ERROR") && logs.contains("forbidden_scopes forbids"), "{logs}");
    assert!(logs.contains("upstream=\"social\"") && logs.contains("social"), "{logs}");
}

#[tokio::test]
async fn an_inactive_token_is_an_error_naming_the_upstream_and_credential() {
    let f = fixture().await;
    f.fake.answer(200, serde_json::json!({ "active": false }));
    let (logs, guard) = capture_logs();
    let records = f.task.run_once(SystemTime::now()).await;
    drop(guard);
    for (_, record) in &records {
        assert_eq!((record.ok, record.active), (false, Some(false)), "{record:?}");
        assert!(record.error.as_deref().unwrap().contains("not active: rotate it"), "{record:?}");
    }
    let logs = logs.text();
    assert!(logs.contains("ERROR") && logs.contains("not active"), "{logs}");
    assert!(logs.contains("credential=social"), "{logs}");
}

#[tokio::test]
async fn failures_are_described_without_the_body() {
    let f = fixture().await;
    let client = crate::outbound::http_client().unwrap();
    let url = f.task.config.upstreams["plain"].introspection_url.clone().unwrap();
    let token = SecretString::from(TOKEN);
    // A wrong token gets the fake's 400, whose body echoes the token.
    let wrong = SecretString::from("not-the-token");
    let err = introspect(&client, &url, &wrong, ClientAuth::Token).await.unwrap_err();
    assert_eq!(err, IntrospectError::Status { status: 400 });
    f.fake.answer(401, serde_json::json!({ "error": TOKEN }));
    let err = introspect(&client, &url, &token, ClientAuth::Token).await.unwrap_err();
    assert_eq!(err, IntrospectError::Unauthorized { status: 401 });
    assert!(err.to_string().contains("introspection_credential"), "{err}");
    f.fake.answer(200, serde_json::json!({ "scope": TOKEN }));
    assert_eq!(introspect(&client, &url, &token, ClientAuth::Token).await.unwrap_err(), IntrospectError::Malformed);
    f.fake.answer(200, serde_json::json!({ "active": true, "pad": "x".repeat(MAX_INTROSPECTION_BYTES) }));
    assert_eq!(introspect(&client, &url, &token, ClientAuth::Token).await.unwrap_err(), IntrospectError::TooLarge);
    // Nothing listens on a port just released.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let err = introspect(&client, &format!("http://{closed}/x"), &token, ClientAuth::Token).await.unwrap_err();
    assert_eq!(err, IntrospectError::Unreachable);
}

#[tokio::test]
async fn no_token_or_client_secret_reaches_the_record_or_the_log() {
    let f = fixture().await;
    let (logs, guard) = capture_logs();
    // Every shape of answer: echoed in ignored fields, in the scope, in an error body.
    for answer in [
        (200, active("read write:statuses")),
        (200, active("read $SENT")),
        (200, serde_json::json!({ "active": false, "username": TOKEN })),
        (401, serde_json::json!({ "error": TOKEN, "client_secret": CLIENT_SECRET })),
        (200, serde_json::json!({ "active": true, "username": TOKEN })),
    ] {
        let echoes_in_scope = answer.1["scope"].as_str().is_some_and(|s| s.contains("$SENT"));
        f.fake.answer(answer.0, answer.1);
        for (upstream, record) in f.task.run_once(SystemTime::now()).await {
            if echoes_in_scope {
                let reported = record.reported.clone().unwrap_or_default();
                assert!(reported.iter().any(|s| s.contains("redacted")), "the echo arrived, redacted: {reported:?}");
            }
            assert_no_canary("the record", &serde_json::to_string(&record).unwrap());
            let stored = f.task.store.kv_get(&record_key(&upstream)).await.unwrap().unwrap();
            assert_no_canary("the stored record", &stored);
        }
    }
    drop(guard);
    let logs = logs.text();
    assert!(logs.contains("upstream"), "logs were captured: {logs}");
    assert_no_canary("the log", &logs);
}

#[tokio::test]
async fn an_expiry_the_config_does_not_know_is_logged() {
    let f = fixture().await;
    f.fake.answer(200, active("read write:statuses"));
    let (logs, guard) = capture_logs();
    f.task.run_once(SystemTime::now()).await;
    drop(guard);
    let logs = logs.text();
    assert!(logs.contains("expires = \"2030-03-17\""), "exp 1900000000 is 2030-03-17: {logs}");
}

#[tokio::test]
async fn the_background_task_runs_at_start_and_again_when_woken() {
    let f = fixture().await;
    f.fake.answer(200, active("read write:statuses"));
    let (tracker, shutdown, wake) = (TaskTracker::new(), CancellationToken::new(), Arc::new(Notify::new()));
    spawn(f.task.clone(), Arc::clone(&wake), &tracker, shutdown.clone());
    let wait_for = |n: usize| {
        let fake = f.fake.clone();
        async move {
            for _ in 0..500 {
                if fake.seen().len() >= n {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
    };
    assert!(wait_for(2).await, "the first run asks both upstreams");
    wake.notify_one();
    assert!(wait_for(4).await, "a wake (a reload) asks again");
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    assert_eq!(f.fake.seen().len(), 4, "nothing ran after shutdown");
}
