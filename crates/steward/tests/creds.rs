//! Credentials done right, end to end through the real binary: dev/prod
//! separation, forbidden scopes and unsafe files refused at start, expiry
//! refused at call time, rotation with `steward secrets reload`, `steward
//! secrets list`, the scopes an upstream reports (a response header, an RFC
//! 7662 introspection endpoint), and `steward doctor` on the quickstart config.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use base64::Engine;
use common::{CANARY_TOKEN, DEFAULT_TOOLS, Env, jwt_expiring};
use reqwest::Method;
use serde_json::{Value, json};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `steward <args> --config <config>` with extra environment variables.
fn steward_with_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
    command.args(args).arg("--config").arg(config).env("NO_COLOR", "1").env_remove("STEWARD_CONFIG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// Replaces the social credential's file content (its 0600 mode is kept).
fn write_social_token(env: &Env, value: &str) {
    std::fs::write(env.dir.path().join("social.token"), format!("{value}\n")).unwrap();
}

async fn post(env: &Env, body: Value) -> reqwest::Response {
    env.req(Method::POST, "/api/social/api/v1/statuses").json(&body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_shared_by_dev_and_prod_refuses_start_naming_both_never_the_value() {
    // social_dev reads the very file social (prod) reads: one value, two environments.
    let tools =
        format!("{DEFAULT_TOOLS}\n[credentials.social_dev]\nsource = \"file:social.token\"\nenvironment = \"dev\"\n");
    let env = Env::with_tools("", &tools).await;
    // `run` and `config check` both call the config unusable (3): a person must fix it.
    for (args, code) in [(&["run"][..], 3), (&["config", "check"], 3), (&["config", "check", "--json"], 3)] {
        let out = env.steward(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out.stderr));
        let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(shown.contains("`social_dev` (dev)") && shown.contains("`social` (prod)"), "{args:?}: {shown}");
        assert!(!shown.contains(CANARY_TOKEN), "{args:?} printed the value: {shown}");
    }
    let out = env.steward(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1), "doctor fails on it: {}", text(&out.stderr));
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let separate = checks.iter().find(|c| c["item"] == "dev and prod credentials are separate").unwrap();
    assert_eq!(separate["status"], "fail");
    assert!(!text(&out.stdout).contains(CANARY_TOKEN));
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_scope_refuses_start() {
    let tools = format!(
        "{DEFAULT_TOOLS}\n[policy]\nforbidden_scopes = [\"admin\", \"admin:*\"]\n\n\
         [credentials.admin_token]\nsource = \"file:llm.token\"\nscopes = [\"write:statuses\", \"admin:org\"]\n"
    );
    let env = Env::with_tools("", &tools).await;
    for args in [&["run"][..], &["config", "check"]] {
        let out = env.steward(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("declares scope \"admin:org\""), "{args:?}: {err}");
        assert!(err.contains("steward.toml:"), "no file:line in {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_readable_by_others_is_refused_with_the_chmod_fix() {
    let env = Env::new("").await;
    let file = env.dir.path().join("social.token");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fix = format!("chmod 600 {}", file.display());
    let out = env.steward(&["config", "check"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains(&fix), "{}", text(&out.stderr));
    let out = env.steward(&["run"]);
    assert_eq!(out.status.code(), Some(3), "steward run refuses to start, with the config code");
    assert!(text(&out.stderr).contains(&fix), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains(CANARY_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_credential_is_refused_at_call_time_and_never_sent() {
    let mut env = Env::new("").await;
    let expired = jwt_expiring(SystemTime::now() - Duration::from_secs(3_600));
    write_social_token(&env, &expired);
    env.start();
    let response = post(&env, json!({ "status": "hello" })).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "credential_expired");
    assert!(body["error"]["message"].as_str().unwrap().contains("steward secrets reload"), "{body}");
    assert!(env.mock.requests().is_empty(), "an expired credential reached the upstream");
    let lines = env.wait_audit_lines(1).await;
    assert_eq!(lines[0]["decision"], "credential_expired");
    assert_eq!(lines[0]["status"], 403);
    assert!(env.daemon_log().contains("credential has expired"), "{}", env.daemon_log());

    // Rotating in a valid token lifts the refusal without a restart.
    let fresh = jwt_expiring(SystemTime::now() + Duration::from_secs(90 * 86_400));
    write_social_token(&env, &fresh);
    let out = env.steward(&["secrets", "reload"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), env.daemon_log());
    let response = post(&env, json!({ "status": "after rotation" })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(env.mock.requests()[0].header("authorization"), Some(format!("Bearer {fresh}").as_str()));
    env.stop(false);
    common::assert_no_needles(
        env.dir.path(),
        &[expired.clone(), fresh.clone()],
        &[env.dir.path().join("social.token"), env.state_dir().join("agent.token")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_expiring_in_five_days_warns_in_doctor_and_secrets_list() {
    let env = Env::new("").await;
    // Five days and an hour: the whole-day count stays 5 however long the test takes.
    let soon = jwt_expiring(SystemTime::now() + Duration::from_secs(5 * 86_400 + 3_600));
    write_social_token(&env, &soon);

    let out = env.steward(&["secrets", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let social = listed.iter().find(|c| c["name"] == "social").unwrap();
    assert_eq!(social["days_left"], 5);
    assert_eq!(social["expiry_source"], "jwt");
    assert_eq!(social["source"], "file");
    assert_eq!(social["fingerprint"].as_str().unwrap().len(), 8);
    assert!(!text(&out.stdout).contains(&soon));

    let out = env.steward(&["doctor", "--json"]);
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let expiry = checks.iter().find(|c| c["item"] == "every credential has a known expiry").unwrap();
    assert_eq!(expiry["status"], "warn", "{expiry}");
    assert!(expiry["detail"].as_str().unwrap().contains("social (5 day(s) left)"), "{expiry}");
    assert!(expiry["fix"].as_str().unwrap().contains("steward secrets reload"), "{expiry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_a_rotated_token_and_the_old_one_stays_redacted() {
    const ROTATED: &str = "rotated-upstream-token-1a2b3c4d5e6f";
    // An alert sink whose URL is a reference: reloaded too, but not a credential.
    let tools = format!("{DEFAULT_TOOLS}\n[[alerts.sinks]]\nkind = \"webhook\"\nurl = \"file:hook.url\"\n");
    let mut env = Env::with_tools("", &tools).await;
    common::private_file(&env.dir.path().join("hook.url"), "http://127.0.0.1:9/hook\n");
    env.start();
    assert_eq!(post(&env, json!({ "status": "before" })).await.status(), 200);

    write_social_token(&env, ROTATED);
    let out = env.steward(&["secrets", "reload"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), env.daemon_log());
    assert!(text(&out.stdout).contains("changed: social"), "{}", text(&out.stdout));
    // The count is the one `secrets list` shows; the sink's URL is counted apart.
    let listed: Vec<Value> = serde_json::from_slice(&env.steward(&["secrets", "list", "--json"]).stdout).unwrap();
    let count = format!("reloaded {} credential(s) and 1 alert reference(s)", listed.len());
    assert!(text(&out.stdout).contains(&count), "{count}: {}", text(&out.stdout));

    assert_eq!(post(&env, json!({ "status": "after" })).await.status(), 200);
    let seen = env.mock.requests();
    assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {CANARY_TOKEN}").as_str()));
    assert_eq!(seen[1].header("authorization"), Some(format!("Bearer {ROTATED}").as_str()));

    // The agent echoes both values back: neither may reach the audit log.
    let echoed = format!("old {CANARY_TOKEN} new {ROTATED}");
    let response = env.req(Method::POST, "/api/social/echo").body(echoed.clone()).send().await.unwrap();
    // Nor the agent: the echo comes back scrubbed, the retired value included.
    let relayed = response.text().await.unwrap();
    assert_eq!(relayed, "old [REDACTED:social (retired)] new [REDACTED:social]");
    let lines = env.wait_audit_lines(3).await;
    let summary = lines[2]["input_summary"].as_str().unwrap();
    assert!(summary.contains("[REDACTED:"), "{summary}");
    assert!(!summary.contains(CANARY_TOKEN) && !summary.contains(ROTATED), "{summary}");

    // A reload that cannot resolve a source keeps the previous values.
    std::fs::remove_file(env.dir.path().join("social.token")).unwrap();
    let out = env.steward(&["secrets", "reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("keeps the previous values"), "{}", text(&out.stderr));
    assert_eq!(post(&env, json!({ "status": "still works" })).await.status(), 200);
    assert_eq!(env.mock.requests()[3].header("authorization"), Some(format!("Bearer {ROTATED}").as_str()));

    env.stop(false);
    env.assert_no_secret_leaked();
    common::assert_no_needles(env.dir.path(), &[ROTATED.to_owned()], &[env.state_dir().join("agent.token")]);
}

#[test]
fn reload_without_a_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, "[agent]\nname = \"x\"\n").unwrap();
    let out = steward_with_env(&config, &["secrets", "reload"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no steward daemon is running"), "{}", text(&out.stderr));
}

#[test]
fn command_and_systemd_sources_resolve_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("social"), "from-systemd-credential\n").unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        "[agent]\nname = \"x\"\n\n[credentials.social]\nsource = \"systemd:social\"\n\n\
         [credentials.mail]\nsource = \"command:printf '%s\\\\n' from-a-command\"\nscopes = [\"send\"]\n",
    )
    .unwrap();
    let creds_dir = creds.to_str().unwrap();
    let out = steward_with_env(&config, &["secrets", "list", "--json"], &[("CREDENTIALS_DIRECTORY", creds_dir)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2);
    for credential in &listed {
        assert!(credential["fingerprint"].is_string(), "{credential}");
        assert!(credential["error"].is_null(), "{credential}");
    }
    assert_eq!(listed[0]["source"], "command");
    assert_eq!(listed[0]["scopes"], json!(["send"]));
    assert_eq!(listed[1]["source"], "systemd");
    let shown = text(&out.stdout);
    assert!(!shown.contains("from-systemd-credential") && !shown.contains("from-a-command"), "{shown}");

    // The table, and the error when systemd gave steward no credentials.
    let out = steward_with_env(&config, &["secrets", "list"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("social"), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("CREDENTIALS_DIRECTORY"), "{}", text(&out.stderr));
}

/// The quickstart config, copied into a fresh directory (outside any git
/// repository, with no state yet) so the output does not depend on this checkout.
fn quickstart_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/steward.toml");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("steward.toml");
    std::fs::copy(source, &config).unwrap();
    (dir, config)
}

/// Every checklist item, as (section, item), in order.
const CHECKLIST: &[(&str, &str)] = &[
    ("Credentials", "every credential resolves"),
    ("Credentials", "dev and prod credentials are separate"),
    ("Credentials", "no secret in git-tracked files"),
    ("Credentials", "git tracks neither the state dir nor a secret file"),
    ("Credentials", "every credential has a known expiry"),
    ("Credentials", "no credential has a forbidden scope"),
    ("Credentials", "agent holds no real token"),
    ("Logging", "every route is audited"),
    ("Logging", "audit log rotates at 100 MB or less"),
    ("Logging", "redaction is on"),
    ("Logging", "retention is set"),
    ("Logging", "log directory is writable and 0700"),
    ("Logging", "the store and logs fit in max_total_size"),
    ("Logging", "the disk has room for the retention window"),
    ("Rate limiting", "every side-effecting tool has a limit"),
    ("Rate limiting", "retries use backoff"),
    ("Rate limiting", "a daily spend cap is set"),
    ("Rate limiting", "the loop breaker is on"),
    ("Rate limiting", "the store is writable"),
    ("Monitoring", "agent-down, error-rate and spend alerts have a sink"),
    ("Monitoring", "the last alert test succeeded"),
    ("Monitoring", "dead-man heartbeat is configured"),
    ("Backups", "config and state are backed up daily"),
    ("Backups", "backups go to another device or remote"),
    ("Backups", "the last backup is recent"),
    ("Backups", "a restore was tested recently"),
    ("Runbook", "contacts are listed"),
    ("Runbook", "the runbook is rendered"),
    ("Runbook", "side-effect tools declare their undo"),
    ("Config", "the daemon runs the config on disk"),
    ("First deployment", "supervised mode for the first week"),
];

#[test]
fn doctor_on_the_quickstart_lists_every_item_with_a_fix_for_each_non_pass() {
    let (dir, config) = quickstart_copy();
    let out = steward_with_env(&config, &["doctor", "--json"], &[("SOCIAL_TOKEN", "quickstart-token-value")]);
    assert_eq!(out.status.code(), Some(0), "warnings only: {}", text(&out.stderr));
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let items: Vec<(&str, &str)> =
        checks.iter().map(|c| (c["section"].as_str().unwrap(), c["item"].as_str().unwrap())).collect();
    assert_eq!(items, CHECKLIST);
    for check in &checks {
        let keys: Vec<&String> = check.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["detail", "fix", "item", "section", "status"], "{check}");
        match check["status"].as_str().unwrap() {
            "pass" => assert!(check["fix"].is_null(), "{check}"),
            "warn" | "fail" => assert!(!check["fix"].as_str().unwrap().is_empty(), "{check}"),
            other => panic!("unknown status {other}"),
        }
    }
    assert!(!text(&out.stdout).contains("quickstart-token-value"));
    assert!(!dir.path().join(".steward").exists(), "doctor created state");
    let status = |checks: &[Value], item: &str| {
        let check = checks.iter().find(|c| c["item"] == item).unwrap();
        (check["status"].as_str().unwrap().to_owned(), check["detail"].as_str().unwrap().to_owned())
    };
    // The quickstart lists a placeholder contact; its page is not rendered until `steward runbook`.
    assert_eq!(status(&checks, "contacts are listed"), ("pass".into(), "1 contact(s) in [runbook]".into()));
    assert_eq!(status(&checks, "the runbook is rendered"), ("warn".into(), "not rendered yet".into()));
    // `post` declares its undo and `delete_status` why it has none.
    assert_eq!(status(&checks, "side-effect tools declare their undo").0, "pass");
    let out = steward_with_env(&config, &["runbook", "--json"], &[]);
    assert!(out.status.success(), "renders without the credential: {}", text(&out.stderr));
    let written: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(written["path"], dir.path().join(".steward/RUNBOOK.md").display().to_string());
    let out = steward_with_env(&config, &["doctor", "--json"], &[("SOCIAL_TOKEN", "quickstart-token-value")]);
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status(&checks, "the runbook is rendered").0, "pass");

    // Without the variable the credential item fails: exit 1.
    let out = steward_with_env(&config, &["doctor", "--json"], &[]);
    assert_eq!(out.status.code(), Some(1));

    // A config that does not load: doctor could not run.
    std::fs::write(&config, "[agent]\n").unwrap();
    let out = steward_with_env(&config, &["doctor"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn doctor_table_on_the_quickstart() {
    let (_dir, config) = quickstart_copy();
    // The disk row compares max_total_size with the machine's free space:
    // 200 MB keeps the snapshot the same on a runner with little disk left.
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[logging]\nmax_total_size = \"200MB\"\n");
    std::fs::write(&config, toml).unwrap();
    let out = steward_with_env(&config, &["doctor"], &[("SOCIAL_TOKEN", "quickstart-token-value")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

/// A one-route upstream on 127.0.0.1 that answers every request with 200
/// and `X-OAuth-Scopes: {scopes}`, as GitHub does.
async fn scope_reporting_upstream(scopes: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nx-oauth-scopes: {scopes}\r\ncontent-type: application/json\r\n\
                     content-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_the_upstream_reports_beyond_the_declaration_are_logged_once() {
    let github = scope_reporting_upstream("repo, admin:org").await;
    let tools = format!(
        "{DEFAULT_TOOLS}\n[policy]\nforbidden_scopes = [\"admin:*\"]\n\n\
         [upstreams.github]\nbase_url = \"{github}\"\ncredential = \"social\"\nscopes_header = \"X-OAuth-Scopes\"\n\n\
         [[tools]]\nname = \"whoami\"\nupstream = \"github\"\nmatch = \"GET /user\"\n"
    );
    let mut env = Env::with_tools("", &tools).await;
    env.start();
    for _ in 0..3 {
        let response = env.req(Method::GET, "/api/github/user").send().await.unwrap();
        assert_eq!(response.status(), 200, "a mismatch warns, it does not block");
    }
    env.stop(false);
    let log = env.daemon_log();
    assert_eq!(log.matches("forbidden_scopes forbids").count(), 1, "{log}");
    assert!(log.contains("social") && log.contains("admin:org"), "{log}");
    env.assert_no_secret_leaked();
}

/// The planted OAuth client secret of the introspection client credential.
const CLIENT_SECRET: &str = "canary-client-secret-3a4b5c6d7e8f";

/// A fake RFC 7662 endpoint on 127.0.0.1: answers `POST /introspect` with
/// `{"active": true, "scope": <scope>}` when the request is a proper
/// introspection of [`CANARY_TOKEN`] authenticated as `steward-client`, and
/// counts the requests, proper and not.
#[derive(Clone, Default)]
struct Introspector {
    /// The `scope` of the next answers.
    scope: std::sync::Arc<std::sync::Mutex<String>>,
    /// Proper introspection requests seen.
    proper: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Anything else seen (answered 400).
    improper: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Introspector {
    async fn start(&self, scope: &str) -> String {
        use axum::http::{HeaderMap, StatusCode};
        *self.scope.lock().unwrap() = scope.to_owned();
        let state = self.clone();
        let handler = move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let basic = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("steward-client:{CLIENT_SECRET}"))
                );
                let header =
                    |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let fields: Vec<(String, String)> = body
                    .split('&')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        let decode = |s: &str| {
                            percent_encoding::percent_decode_str(&s.replace('+', " "))
                                .decode_utf8()
                                .unwrap()
                                .into_owned()
                        };
                        (decode(k), decode(v))
                    })
                    .collect();
                let proper = header("authorization") == basic
                    && header("content-type") == "application/x-www-form-urlencoded"
                    && fields
                        == [
                            ("token".to_owned(), CANARY_TOKEN.to_owned()),
                            ("token_type_hint".to_owned(), "access_token".to_owned()),
                        ];
                let counter = if proper { &state.proper } else { &state.improper };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if !proper {
                    return (StatusCode::BAD_REQUEST, String::new());
                }
                let scope = state.scope.lock().unwrap().clone();
                // Echoes the token and the client secret in fields steward must not keep.
                let answer = json!({
                    "active": true, "scope": scope, "client_id": "steward-client",
                    "username": CANARY_TOKEN, "sub": CLIENT_SECRET,
                });
                (StatusCode::OK, answer.to_string())
            }
        };
        let app = axum::Router::new().route("/introspect", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/introspect")
    }

    fn proper(&self) -> usize {
        self.proper.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Runs `steward doctor --json` until `item` satisfies `done` (bounded), and returns it.
async fn doctor_item_until(env: &Env, item: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = env.steward(&["doctor", "--json"]);
        let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let found = checks.into_iter().find(|c| c["item"] == item).unwrap();
        if done(&found) || std::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_at_start_and_after_reload_reaches_doctor() {
    const ITEM: &str = "scopes match what the upstream reports";
    let introspector = Introspector::default();
    let url = introspector.start("write:statuses").await;
    let tools = format!(
        "{DEFAULT_TOOLS}\n[policy]\nforbidden_scopes = [\"admin\"]\n\n\
         [credentials.mastodon]\nsource = \"file:social.token\"\nscopes = [\"write:statuses\"]\n\n\
         [credentials.social_client]\nsource = \"file:client.token\"\n\n\
         [upstreams.mastodon]\nbase_url = \"{{base}}\"\ncredential = \"mastodon\"\n\
         introspection_url = \"{url}\"\nintrospection_credential = \"social_client\"\n"
    );
    let mut env = Env::with_tools("", &tools).await;
    let client_file = env.dir.path().join("client.token");
    common::private_file(&client_file, &format!("steward-client:{CLIENT_SECRET}\n"));

    let before = doctor_item_until(&env, ITEM, |_| true).await;
    assert_eq!(before["status"], "warn", "{before}");
    assert!(before["detail"].as_str().unwrap().contains("not checked yet: mastodon"), "{before}");

    env.start();
    let checked = doctor_item_until(&env, ITEM, |c| c["status"] != "warn").await;
    assert_eq!(checked["status"], "pass", "{checked}\n{}", env.daemon_log());
    assert!(checked["detail"].as_str().unwrap().contains("mastodon"), "{checked}");
    assert_eq!(introspector.proper(), 1, "asked once at start");

    // The grant widens; a reload asks again and doctor fails on the forbidden scope.
    *introspector.scope.lock().unwrap() = "write:statuses admin".to_owned();
    let out = env.steward(&["secrets", "reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let widened = doctor_item_until(&env, ITEM, |c| c["status"] == "fail").await;
    assert_eq!(widened["status"], "fail", "{widened}\n{}", env.daemon_log());
    assert!(widened["detail"].as_str().unwrap().contains("forbidden scopes reported: mastodon: admin"), "{widened}");
    assert_eq!(introspector.proper(), 2, "asked again after the reload");
    assert_eq!(introspector.improper.load(std::sync::atomic::Ordering::SeqCst), 0);

    env.stop(false);
    let log = env.daemon_log();
    assert!(log.contains("token introspection: active, exactly the declared scopes"), "{log}");
    assert!(log.contains("forbidden_scopes forbids") && log.contains("mastodon"), "{log}");
    env.assert_no_secret_leaked();
    let mut needles = common::with_encodings(&[CLIENT_SECRET]);
    needles.push(base64::engine::general_purpose::STANDARD.encode(format!("steward-client:{CLIENT_SECRET}")));
    common::assert_no_needles(env.dir.path(), &needles, &[client_file]);
}
