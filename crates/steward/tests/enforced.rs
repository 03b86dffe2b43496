//! Issue 12, the request side: every way the issue found around the
//! pipeline, tried against the real `steward run` as an attacker would, and
//! shown closed. Each test failed on the code before the fix.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{DEFAULT_TOOLS, Env};
use reqwest::Method;
use serde_json::{Value, json};
use unwritable::Unwritable;

/// `post` limited to one an hour, and a catch-all `echo_any` with no limit:
/// the shape of the issue's reproduction.
const WALK_TOOLS: &str = r#"
[[tools]]
name = "post"
upstream = "social"
match = "POST /api/v1/statuses"
limit = "1/hour"
retry = "never"

[[tools]]
name = "echo_any"
upstream = "social"
match = "* /echo/{*rest}"
"#;

/// A backslash, an encoded separator, a Tomcat path parameter or an encoded
/// dot segment used to walk from the unlimited `echo_any` to `post`: the
/// upstream executed `POST /api/v1/statuses` while steward counted `echo_any`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_path_walks_out_of_the_matched_tool() {
    let mut env = Env::with_tools("", WALK_TOOLS).await;
    env.start();
    for target in [
        &b"/api/social/echo/..\\api\\v1\\statuses"[..],
        b"/api/social/echo/..%5Capi%5Cv1%5Cstatuses",
        b"/api/social/echo/..;/api/v1/statuses",
        b"/api/social/echo/%2e%2e/api/v1/statuses",
        b"/api/social/echo/..%2Fapi%2Fv1%2Fstatuses",
        b"/api/social/echo/%252e%252e/api/v1/statuses",
        b"/api/social/echo/\xef\xbc\x8e\xef\xbc\x8e/api/v1/statuses",
        b"/api/social/echo//api/v1/statuses",
    ] {
        let response = env.raw("POST", target, br#"{"status":"x"}"#, true);
        assert_eq!(response.status, 400, "{}: {response:?}", String::from_utf8_lossy(target));
        assert_eq!(response.reason(), "bad_request");
    }
    assert!(env.mock.requests().is_empty(), "a walking path reached the upstream: {:?}", env.mock.requests());

    // An escaped spelling of the limited path is the limited tool.
    let response = env.raw("POST", b"/api/social/api/v1/%73tatuses", br#"{"status":"one"}"#, true);
    assert_eq!(response.status, 200, "{response:?}");
    let response = env.raw("POST", b"/api/social/api/v1/statuses", br#"{"status":"two"}"#, true);
    assert_eq!((response.status, response.reason().as_str()), (429, "rate_limited"));
    assert_eq!(env.mock.requests().len(), 1);
    assert_eq!(env.mock.requests()[0].path, "/api/v1/statuses");
    let journal = env.journal();
    assert_eq!(journal.iter().filter(|r| r["tool"] == "post").count(), 2, "both counted as post: {journal:?}");
    env.stop(false);
    env.assert_no_secret_leaked();
}

/// On the LLM door the same walk turned a priced endpoint into "other": an
/// unpriced model got 200 at $0, past the cap. Now the walk is refused, and
/// an odd but unambiguous spelling of a priced endpoint is priced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_an_llm_path_is_a_free_call() {
    let tools = format!(
        "{DEFAULT_TOOLS}\n[llm.openai]\nkind = \"openai\"\nbase_url = \"{{base}}\"\ncredential = \"llm\"\n\n\
         [spend]\ndaily_cap_usd = 1.0\n"
    );
    let mut env = Env::with_tools("", &tools).await;
    env.start();
    let body = json!({"model": "unpriced-model-x", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    for target in [&b"/llm/openai/v1/x\\..\\chat\\completions"[..], b"/llm/openai/v1/x/%2E%2E/chat/completions"] {
        let response = env.raw("POST", target, body.as_bytes(), true);
        assert_eq!(response.status, 400, "{response:?}");
        assert_eq!(response.reason(), "bad_request");
    }
    let response = env.raw("POST", b"/llm/openai/v1/chat/%63ompletions", body.as_bytes(), true);
    assert_eq!((response.status, response.reason().as_str()), (403, "unknown_price"), "{response:?}");
    let response = env.raw("POST", b"/llm/openai/V1/Chat/Completions", body.as_bytes(), true);
    assert_eq!((response.status, response.reason().as_str()), (403, "unknown_price"), "{response:?}");
    assert!(env.mock.requests().is_empty(), "an unpriced call reached the provider");
    let spend: Value = serde_json::from_slice(&env.steward(&["spend", "--json"]).stdout).unwrap();
    assert_eq!(spend["today"]["calls"].as_u64().unwrap_or(0), 0, "{spend}");
    env.stop(false);
    env.assert_no_secret_leaked();
}

/// The audit log made unwritable while the daemon holds it open: immutable
/// (`chattr +i`, even root cannot write through it) where this process may
/// set the flag, else replaced by a directory of the same name, which needs
/// no root. Undone on drop, so a failing test leaves a removable temp dir.
enum AuditFault {
    Immutable(Unwritable),
    /// The directory standing in for the log, until cleared.
    Replaced(Option<PathBuf>),
}

impl AuditFault {
    #[expect(clippy::unwrap_used, reason = "test setup: a file that cannot be replaced is a failed test")]
    fn new(path: &Path) -> AuditFault {
        if let Ok(guard) = Unwritable::immutable(&[path]) {
            return AuditFault::Immutable(guard);
        }
        std::fs::remove_file(path).unwrap();
        std::fs::create_dir(path).unwrap();
        AuditFault::Replaced(Some(path.to_path_buf()))
    }

    fn clear(&mut self) {
        match self {
            AuditFault::Immutable(guard) => guard.clear(),
            AuditFault::Replaced(path) => {
                if let Some(path) = path.take() {
                    let _ = std::fs::remove_dir(path);
                }
            }
        }
    }
}

impl Drop for AuditFault {
    /// The immutable guard undoes itself.
    fn drop(&mut self) {
        if let AuditFault::Replaced(_) = self {
            self.clear();
        }
    }
}

/// When only the audit log failed, the next call was still forwarded (200,
/// no audit line) and only the one after was refused; after the fault
/// cleared, the first call was still refused. Now the very call that cannot
/// be audited is refused and never reaches the upstream, and the first call
/// after the fault clears goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_forwarded_only_after_its_audit_line_is_written() {
    let mut env = Env::new("").await;
    env.start();
    assert_eq!(env.req(Method::GET, "/api/social/api/v1/statuses").send().await.unwrap().status(), 200);
    let audit = env.state_dir().join("logs/audit.jsonl");
    let mut fault = AuditFault::new(&audit);
    let before = env.mock.requests().len();

    let response = env.req(Method::GET, "/api/social/api/v1/statuses").send().await.unwrap();
    assert_eq!(response.status(), 503);
    let call_id = response.headers()["x-steward-call-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "store_unavailable");
    assert_eq!(env.mock.requests().len(), before, "the unaudited call reached the upstream");
    let row = env.journal().into_iter().find(|r| r["id"] == call_id.as_str()).unwrap();
    assert_eq!(row["decision"], "store_unavailable", "the journal must not say allowed: {row}");

    fault.clear();
    let response = env.req(Method::GET, "/api/social/api/v1/statuses").send().await.unwrap();
    assert_eq!(response.status(), 200, "the first call after the fault cleared");
    let call_id = response.headers()["x-steward-call-id"].to_str().unwrap().to_owned();
    let _ = response.bytes().await;
    env.stop(false);
    let phases: Vec<String> = env
        .all_audit_lines()
        .iter()
        .filter(|l| l["call_id"] == call_id.as_str())
        .map(|l| l["phase"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(phases, ["admitted", "completed"]);
    env.assert_no_secret_leaked();
}

/// The agent's own token in a query string was forwarded to the upstream.
/// Now every parameter holding it, in any encoding, is removed before the
/// call is recorded or sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_token_in_a_query_reaches_neither_the_upstream_nor_a_file() {
    let mut env = Env::new("").await;
    env.start();
    let token = env.token.clone();
    let encoded: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
    let double: String = encoded.replace('%', "%25");
    let base64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &token);
    // Each with its own `limit`: five identical calls would trip the loop breaker.
    for (limit, query) in [
        format!("access_token={token}&limit=1"),
        format!("limit=2&api_key={encoded}"),
        format!("limit=3&token={double}"),
        format!("limit=4&auth=Bearer+{token}"),
        format!("limit=5&b={}", base64.replace('+', "%2B").replace('=', "%3D")),
    ]
    .iter()
    .enumerate()
    {
        let response = env.req(Method::GET, &format!("/api/social/api/v1/statuses?{query}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{query}");
        let _ = response.bytes().await;
        let seen = env.mock.requests();
        assert_eq!(seen[limit].query, Some(format!("limit={}", limit + 1)), "{query}");
    }
    env.stop(false);
    let lines = env.audit_lines();
    assert_eq!(lines.len(), 5);
    for (limit, line) in lines.iter().enumerate() {
        assert_eq!(line["path"], format!("/api/v1/statuses?limit={}", limit + 1));
    }
    // The harness's leak check looks for the agent token (and its encodings) in every file.
    env.assert_no_secret_leaked();
}

/// 277k unauthenticated requests in 10 s grew the state dir by 2 GB, one
/// journal row and one audit line each. Now a flood costs one sampled line
/// per kind per second, and every request is still accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_junk_costs_bounded_disk_and_is_still_counted() {
    const UNAUTHENTICATED: usize = 3_000;
    const MALFORMED: usize = 1_000;
    let mut env = Env::new("").await;
    env.start();
    let started = Instant::now();
    let client = env.client();
    let flood = |i: usize| {
        let request = if i < UNAUTHENTICATED {
            client.get(env.url("/api/social/api/v1/statuses")).bearer_auth("stw_wrong")
        } else {
            client.get(env.url("/api/social/a%2Fb")).bearer_auth(&env.token)
        };
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let mut statuses = Vec::new();
    for chunk in (0..UNAUTHENTICATED + MALFORMED).collect::<Vec<_>>().chunks(50) {
        statuses.extend(futures_util::future::join_all(chunk.iter().map(|&i| flood(i))).await);
    }
    let seconds = started.elapsed().as_secs() + 2;
    assert_eq!(statuses.iter().filter(|&&s| s == 401).count(), UNAUTHENTICATED);
    assert_eq!(statuses.iter().filter(|&&s| s == 400).count(), MALFORMED);
    assert!(env.mock.requests().is_empty());
    assert!(env.journal().is_empty(), "junk was journaled row by row");
    env.stop(false);

    let lines = env.all_audit_lines();
    let bound = 2 * (seconds as usize + 1);
    assert!(lines.len() <= bound, "{} audit lines for {seconds}s of flood (bound {bound})", lines.len());
    let counted = |decision: &str| -> u64 {
        lines
            .iter()
            .filter(|l| l["decision"] == decision)
            .inspect(|l| assert_eq!(l["phase"], "sampled", "{l}"))
            .map(|l| l["sampled_count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(counted("unauthenticated"), UNAUTHENTICATED as u64, "every request is accounted for");
    assert_eq!(counted("bad_request"), MALFORMED as u64);
    let audit_bytes = std::fs::metadata(env.state_dir().join("logs/audit.jsonl")).unwrap().len();
    assert!(audit_bytes < 64 * 1024, "{audit_bytes} bytes of audit log");
    env.assert_no_secret_leaked();
}

/// Readiness used to run an empty transaction, which succeeds on a read-only
/// database: `/readyz` said ready while every call was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_not_ready_while_the_store_refuses_writes_and_ready_again_after() {
    let mut env = Env::new("").await;
    env.start();
    let ready = |env: &Env| {
        let url = env.url("/readyz");
        async move {
            let response = reqwest::get(url).await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(ready(&env).await.0, 200);
    let db = env.state_dir().join("steward.db");
    let wal = env.state_dir().join("steward.db-wal");
    let mut fault = match Unwritable::immutable(&[&db, &wal]) {
        Ok(guard) => guard,
        Err(unavailable) => {
            env.stop(false);
            return unavailable.not_run("readyz_is_not_ready_while_the_store_refuses_writes_and_ready_again_after");
        }
    };
    let (status, body) = ready(&env).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["store_writable"], false);
    assert_eq!(env.req(Method::GET, "/api/social/api/v1/statuses").send().await.unwrap().status(), 503);
    fault.clear();
    let (status, body) = ready(&env).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.req(Method::GET, "/api/social/api/v1/statuses").send().await.unwrap().status(), 200);
    env.stop(false);
    env.assert_no_secret_leaked();
}

/// After `kill -9`, a call the upstream executed but whose answer no client
/// received was journaled `interrupted` with no audit line. Now the next
/// start writes one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_cut_by_kill_9_gets_an_interrupted_audit_line_at_the_next_start() {
    let tools =
        format!("{DEFAULT_TOOLS}\n[[tools]]\nname = \"slow\"\nupstream = \"social\"\nmatch = \"GET /stream\"\n");
    let mut env = Env::with_tools("", &tools).await;
    env.start();
    let mut response = env.req(Method::GET, "/api/social/stream?chunks=100&delay_ms=200&size=16").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let call_id = response.headers()["x-steward-call-id"].to_str().unwrap().to_owned();
    assert!(response.chunk().await.unwrap().is_some(), "the stream started");
    assert_eq!(env.mock.requests().len(), 1, "the upstream has the call");
    env.stop(true);
    drop(response);
    assert!(env.all_audit_lines().iter().all(|l| l["phase"] != "interrupted"));

    env.start();
    env.stop(false);
    let lines: Vec<Value> = env.all_audit_lines().into_iter().filter(|l| l["call_id"] == call_id.as_str()).collect();
    let phases: Vec<&str> = lines.iter().map(|l| l["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["admitted", "interrupted"], "{lines:?}");
    let interrupted = &lines[1];
    assert_eq!(interrupted["decision"], "interrupted");
    assert_eq!(interrupted["tool"], "slow");
    assert_eq!(interrupted["status"], Value::Null, "outcome unknown");
    assert!(interrupted["reason"].as_str().unwrap().contains("may have executed"));
    // Written once: a further restart finds nothing in flight.
    env.start();
    env.stop(false);
    let again = env.all_audit_lines().iter().filter(|l| l["phase"] == "interrupted").count();
    assert_eq!(again, 1);
    env.assert_no_secret_leaked();
}

/// `Retry-After: 99999999999999999999` was unparseable, so an idempotent
/// call was retried three times in half a second. Too large means "do not
/// retry": the upstream's 429 goes back after one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_is_not_retried() {
    let mut env = Env::new("").await;
    env.start();
    let response = env
        .req(Method::GET, "/api/social/api/v1/statuses")
        .header("x-mock-fault", "429")
        .header("x-mock-retry-after", "99999999999999999999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let _ = response.bytes().await;
    assert_eq!(env.mock.requests().len(), 1, "retried despite a Retry-After of ~3e12 years");
    env.stop(false);
    assert_eq!(env.audit_lines()[0]["attempts"], 1);
    env.assert_no_secret_leaked();
}

/// A hand-made 8-character agent token was accepted silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guessable_agent_token_is_refused_at_start_with_the_fix() {
    let env = Env::new("").await;
    std::fs::create_dir_all(env.state_dir()).unwrap();
    common::private_file(&env.state_dir().join("agent.token"), "hunter22\n");
    let mut run = std::process::Command::new(common::steward_bin())
        .args(["run", "--config"])
        .arg(&env.config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            panic!("steward run started with a guessable agent token");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("too weak") && stderr.contains("openssl rand -hex 32"), "{stderr}");
    assert!(!stderr.contains("hunter22"), "the error echoed the token: {stderr}");
    assert!(env.mock.requests().is_empty());
}
