//! Tests of the pipeline itself, in process: a temp-dir store and audit log,
//! the gateway's router served on `127.0.0.1:0` by this process, and
//! mock-upstream behind it. Shared here: the [`Harness`] that assembles them
//! the way the daemon does. The tests:
//! - `refusals`: every refusal the pipeline answers, each with its status,
//!   its `reason` and its journal row (or, for junk, none);
//! - `kill`: the kill switch before every other refusal;
//! - `lifecycle`: fail-closed store and audit failures, `/readyz` when not
//!   ready, and the record of a response the agent abandoned.
//!
//! One suite, two backends: the harness opens the embedded SQLite store,
//! or with `STEWARD_TEST_STORE=postgresql` a fleet's store on a throwaway
//! PostgreSQL cluster (`.ci/run` runs the suite both ways). Only the way a
//! test breaks the store differs ([`Harness::break_store`]).

mod kill;
mod lifecycle;
mod refusals;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use base64::Engine;
use mock_upstream::MockUpstream;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{CALL_ID_HEADER, Pipeline, unix_ms};
use crate::audit::AuditLog;
use crate::config::Config;
use crate::monitor::Metrics;
use crate::secrets::{AgentToken, Secrets};
use crate::store::{CallRow, LastQuery, Store};

/// The planted upstream credential: reaches the upstream, nothing else.
const UPSTREAM_TOKEN: &str = "pipeline-test-upstream-token-5e4d3c2b1a";

/// The config around the mock: `{base}` is its URL, `{extra}` a test's own
/// sections. Small limits so each refusal is one or two calls away.
const CONFIG: &str = r#"
[agent]
name = "pipeline-test"

[gateway]
listen = "127.0.0.1:0"
max_body = "1KB"
body_timeout = "1s"

[state]
dir = "./state"

[logging]
dir = "./state/logs"

[credentials.social]
source = "file:social.token"

[credentials.stale]
source = "file:stale.token"

[credentials.llm]
source = "file:llm.token"

[upstreams.social]
base_url = "{base}"
credential = "social"
auth = { header = "Authorization", format = "Bearer {secret}" }
read_timeout = "5s"

[upstreams.stale]
base_url = "{base}"
credential = "stale"

[upstreams.dead]
base_url = "http://127.0.0.1:1"

[upstreams.slow]
base_url = "{base}"
read_timeout = "200ms"

[llm.openai]
kind = "openai"
base_url = "{base}"
credential = "llm"

[[tools]]
name = "post"
upstream = "social"
match = "POST /api/v1/statuses"
side_effect = true
limit = "2/hour"
retry = "never"

[[tools]]
name = "read_status"
upstream = "social"
match = "GET /api/v1/statuses/{id}"

[[tools]]
name = "echo"
upstream = "social"
match = "POST /echo"

[[tools]]
name = "stream"
upstream = "social"
match = "GET /stream"

[[tools]]
name = "stale_list"
upstream = "stale"
match = "GET /api/v1/statuses"

[[tools]]
name = "dead_post"
upstream = "dead"
match = "POST /x"
retry = "never"

[[tools]]
name = "slow_post"
upstream = "slow"
match = "POST /echo"
retry = "never"

[loop_breaker]
max_identical = 3
window = "10m"

[unmatched]
policy = "deny"

[spend]
daily_cap_usd = {cap}
default_max_output_tokens = 100
{extra}
"#;

/// An unsigned JWT that expired an hour ago (steward reads `exp` only).
fn expired_jwt() -> String {
    let exp = unix_ms(SystemTime::now()) / 1000 - 3600;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2ln", b64(json!({"alg": "HS256", "typ": "JWT"})), b64(json!({"sub": "t", "exp": exp})))
}

/// The pipeline as the daemon assembles it, served in this process.
pub(super) struct Harness {
    dir: tempfile::TempDir,
    pub(super) mock: MockUpstream,
    pub(super) config: Config,
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) store: Store,
    /// The daemon's tracker: the gateway and whatever calls leave behind.
    pub(super) tasks: TaskTracker,
    shutdown: CancellationToken,
    addr: SocketAddr,
    token: String,
    client: reqwest::Client,
    /// The PostgreSQL cluster of a fleet's store (`STEWARD_TEST_STORE=postgresql`).
    pg: Option<std::sync::Mutex<pg_harness::PgCluster>>,
}

/// The store this run of the suite uses: SQLite, or with
/// `STEWARD_TEST_STORE=postgresql` a fleet's store on a cluster of its own.
async fn open_store(
    config: &Config,
    redactor: crate::redaction::SharedRedactor,
) -> (Store, Option<pg_harness::PgCluster>) {
    match std::env::var("STEWARD_TEST_STORE").as_deref() {
        Ok("postgresql") => {
            let cluster = pg_harness::PgCluster::start()
                .unwrap_or_else(|| panic!("STEWARD_TEST_STORE=postgresql needs PostgreSQL's initdb and postgres"));
            crate::store::pg::fleet::migrate_at(&cluster.url()).await.unwrap();
            let store = Store::open_fleet(&cluster.url(), "test", 4, redactor).await.unwrap();
            (store, Some(cluster))
        }
        Ok("sqlite") | Err(_) => (Store::open(&config.state.db_path(), redactor).unwrap(), None),
        Ok(other) => panic!("STEWARD_TEST_STORE={other}: use sqlite or postgresql"),
    }
}

impl Harness {
    /// A spend cap that no priced call fits under.
    pub(super) async fn start() -> Harness {
        Self::with("", 0.000_001).await
    }

    /// [`CONFIG`] with `extra` appended and a daily cap of `cap` USD.
    pub(super) async fn with(extra: &str, cap: f64) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mock = MockUpstream::start().await.unwrap();
        for (file, value) in [("social.token", UPSTREAM_TOKEN.to_owned()), ("stale.token", expired_jwt())] {
            leak_check::private_file(&dir.path().join(file), &format!("{value}\n"));
        }
        leak_check::private_file(&dir.path().join("llm.token"), "pipeline-test-llm-key\n");
        let text =
            CONFIG.replace("{base}", &mock.base_url()).replace("{cap}", &cap.to_string()).replace("{extra}", extra);
        let path = dir.path().join("steward.toml");
        std::fs::write(&path, &text).unwrap();
        let config = crate::config::parse(&text, &path).unwrap();
        std::fs::create_dir_all(&config.state.dir).unwrap();

        let (agent_token, _) = AgentToken::load_or_create(&config.state.token_path()).unwrap();
        let token = agent_token.expose().to_owned();
        let secrets = Secrets::resolve(&config).await.unwrap();
        let redactor = Arc::new(ArcSwap::from_pointee(secrets.redactor(&agent_token, &config.redaction)));
        let secrets = Arc::new(ArcSwap::from_pointee(secrets));
        let (store, pg) = open_store(&config, Arc::clone(&redactor)).await;
        let audit = Arc::new(AuditLog::open(&config.logging, Arc::clone(&redactor)).unwrap());
        let tasks = TaskTracker::new();
        let metrics = Arc::new(Metrics::new());
        let pipeline = Pipeline::new(&config, store.clone(), audit, redactor, secrets, agent_token, tasks.clone())
            .unwrap()
            .with_monitoring(
                crate::events::EventBus::new(),
                Arc::clone(&metrics) as Arc<dyn crate::telemetry::CallMetrics>,
            );
        let pipeline = Arc::new(pipeline);
        let listener = crate::gateway::bind(config.gateway.listen).unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let service =
            crate::gateway::Service::new(Arc::clone(&pipeline), axum::Router::new(), &config.gateway, metrics);
        tasks.spawn(service.serve(listener, shutdown.clone()));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let pg = pg.map(std::sync::Mutex::new);
        Harness { dir, mock, config, pipeline, store, tasks, shutdown, addr, token, client, pg }
    }

    /// Makes the store unable to journal a call: on SQLite a trigger that
    /// refuses inserts into the journal (reads still work), on PostgreSQL
    /// the server stopped.
    pub(super) async fn break_store(&self) {
        match &self.pg {
            None => self
                .store
                .exec_on_writer(
                    "CREATE TEMP TRIGGER refuse_calls BEFORE INSERT ON calls BEGIN SELECT RAISE(ABORT, 'disk full'); END",
                )
                .await
                .unwrap(),
            Some(pg) => pg.lock().unwrap().stop(),
        }
    }

    /// Undoes [`Harness::break_store`]; returns once a call is journaled again.
    pub(super) async fn mend_store(&self) {
        match &self.pg {
            None => self.store.exec_on_writer("DROP TRIGGER temp.refuse_calls").await.unwrap(),
            Some(pg) => {
                pg.lock().unwrap().restart();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while self.store.check_writable().await.is_err() || self.store.kill_state().await.is_err() {
                    assert!(std::time::Instant::now() < deadline, "the store did not come back");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Whether the store is the fleet's PostgreSQL.
    pub(super) fn on_postgresql(&self) -> bool {
        self.pg.is_some()
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request carrying the agent's token.
    pub(super) fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(&self.token)
    }

    /// A request without a token.
    pub(super) fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// The agent's token, for hand-written requests.
    pub(super) fn token(&self) -> &str {
        &self.token
    }

    /// The gateway's address, for hand-written requests.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state dir (store and logs).
    pub(super) fn state_dir(&self) -> PathBuf {
        self.config.state.dir.clone()
    }

    /// Every journal row, newest first.
    pub(super) async fn rows(&self) -> Vec<CallRow> {
        self.store.last(LastQuery { limit: 1000, ..LastQuery::default() }).await.unwrap()
    }

    /// The journal row of `call_id`.
    pub(super) async fn row(&self, call_id: &str) -> Option<CallRow> {
        self.rows().await.into_iter().find(|r| r.id == call_id)
    }

    /// Every line of the active audit file.
    pub(super) fn audit_lines(&self) -> Vec<Value> {
        let path = self.config.logging.dir.join(crate::audit::ACTIVE_FILE);
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The audit lines of `call_id`.
    pub(super) fn audit_of(&self, call_id: &str) -> Vec<Value> {
        self.audit_lines().into_iter().filter(|l| l["call_id"] == call_id).collect()
    }

    /// Drains like the daemon: the gateway stops, and every tracked task
    /// (the record of an abandoned response included) ends.
    pub(super) async fn drain(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Ends the test: drained, and no planted credential in any file written.
    pub(super) async fn finish(self) {
        self.drain().await;
        self.pipeline.flush_junk(true).await;
        leak_check::assert_no_needles(&self.state_dir(), &leak_check::with_encodings(&[UPSTREAM_TOKEN]), &[]);
        drop(self.dir);
    }
}

/// A refusal as the agent saw it.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) reason: String,
    pub(super) message: String,
    pub(super) call_id: String,
    pub(super) retry_after: Option<String>,
}

/// Sends `request` and reads the refusal (or answer) it got.
pub(super) async fn answer(request: RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let call_id = header(CALL_ID_HEADER).unwrap_or_default();
    let retry_after = header("retry-after");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let error = &body["error"];
    let reason = error["reason"].as_str().unwrap_or_default().to_owned();
    let message = error["message"].as_str().unwrap_or_default().to_owned();
    Answer { status, reason, message, call_id, retry_after }
}

/// A chat completion body for `model`.
pub(super) fn chat(model: &str) -> Value {
    json!({ "model": model, "messages": [{"role": "user", "content": "hello"}] })
}
