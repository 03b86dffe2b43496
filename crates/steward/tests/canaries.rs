//! Nothing leaked, at rest (issue 12): canaries planted in every field an
//! agent or an upstream can influence, through the real `steward run`, then
//! every file steward wrote is scanned: the store (`steward.db`, read as
//! bytes and value by value), its WAL and `-shm` while the daemon runs, the
//! store again after a clean stop, the audit log and steward's own log.
//! The leak check also searches percent-decoded and JSON-unescaped views of
//! every file, so a canary stored as `%63anary...` counts as leaked.

mod common;

use common::{CANARY_LLM_KEY, CANARY_TOKEN, Env, assert_no_needles, with_encodings};
use reqwest::Method;
use serde_json::json;

/// A GitHub token nobody registered: only the secret rules can catch it.
const RULE_SHAPED: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";

/// Tools with a catch-all rule, so odd paths and methods reach the upstream,
/// and an LLM provider.
const TOOLS: &str = r#"
[[tools]]
name = "echo"
upstream = "social"
match = "POST /echo"

[[tools]]
name = "anything"
upstream = "social"
match = "* /any/{*rest}"

[llm.openai]
kind = "openai"
base_url = "{base}"
credential = "llm"
"#;

/// `secret` with its first letter percent-encoded, as an agent could send it.
fn first_letter_encoded(secret: &str) -> String {
    format!("%{:02X}{}", secret.as_bytes()[0], &secret[1..])
}

/// `secret` with its first letter as a JSON `\u` escape.
fn first_letter_json_escaped(secret: &str) -> String {
    format!("\\u{:04x}{}", secret.as_bytes()[0], &secret[1..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_in_every_agent_and_upstream_field_never_reach_the_store_its_wal_or_the_logs() {
    let mut env = Env::with_tools("", TOOLS).await;
    env.start();
    let token = env.token.clone();
    let secrets = [CANARY_TOKEN, CANARY_LLM_KEY, RULE_SHAPED, token.as_str()];
    let mut statuses = Vec::new();

    for secret in secrets {
        let encoded = first_letter_encoded(secret);
        let escaped = first_letter_json_escaped(secret);
        // Path (raw and percent-encoded) and query.
        for path in [
            format!("/api/social/any/{secret}"),
            format!("/api/social/any/{encoded}/x"),
            format!("/api/social/any/x?q={secret}&r={encoded}"),
            format!("/api/social/unmatched/{encoded}"),
        ] {
            statuses.push(env.req(Method::GET, &path).send().await.unwrap().status());
        }
        // Headers, and the body of a call (plain text, and JSON with escapes).
        let response = env
            .req(Method::POST, "/api/social/echo")
            .header("x-debug-token", secret)
            .header("user-agent", format!("agent {secret}"))
            .body(format!("posting {secret} and {encoded}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
        // The upstream's response id (`/echo` answers the body it got).
        let response = env
            .req(Method::POST, "/api/social/echo")
            .header("content-type", "application/json")
            .body(format!(r#"{{"id":"{secret}","note":"{escaped}"}}"#))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
        // An upstream error body quoting the path (the mock's 404 does).
        statuses.push(env.req(Method::POST, &format!("/api/social/any/{secret}")).send().await.unwrap().status());
        // The upstream name and the provider name.
        for path in [format!("/api/nope-{secret}/x"), format!("/llm/nope-{encoded}/v1/chat/completions")] {
            statuses.push(env.req(Method::GET, &path).send().await.unwrap().status());
        }
        // The model name (unknown: refused with it in the reason), and a
        // priced call whose prompt and options carry it.
        for model in [secret.to_owned(), format!("gpt-4o-mini-{encoded}")] {
            let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
            let response = env.req(Method::POST, "/llm/openai/v1/chat/completions").json(&body).send().await.unwrap();
            statuses.push(response.status());
        }
        let body = json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": format!("my key is {secret}, or {escaped}")}],
            "user": secret,
        });
        let response = env.req(Method::POST, "/llm/openai/v1/chat/completions").json(&body).send().await.unwrap();
        statuses.push(response.status());
    }
    // The method itself (the canary is a valid HTTP token).
    let method = Method::from_bytes(CANARY_TOKEN.as_bytes()).unwrap();
    statuses.push(env.req(method, "/api/social/any/x").send().await.unwrap().status());
    // A wrong token: refused before anything is known about the call.
    let response =
        env.client().get(env.url(&format!("/api/social/any/{CANARY_TOKEN}"))).bearer_auth(CANARY_LLM_KEY).send();
    statuses.push(response.await.unwrap().status());

    // `steward stop --reason` (the CLI writes the store directly), then a
    // call the kill switch refuses: the reason is copied onto its row.
    let reason = format!("leaked {CANARY_TOKEN} {RULE_SHAPED} {}", first_letter_encoded(CANARY_LLM_KEY));
    let out = env.steward(&["stop", "--reason", &reason]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(CANARY_TOKEN) && !stdout.contains(RULE_SHAPED), "{stdout}");
    let killed = env.req(Method::GET, "/api/social/any/x").send().await.unwrap();
    assert_eq!(killed.status(), 403);
    let body = killed.text().await.unwrap();
    assert!(body.contains("[REDACTED:credential]") && !body.contains(CANARY_TOKEN), "{body}");
    assert!(env.steward(&["resume"]).status.success());

    // Every kind of outcome happened: forwarded, refused, failed upstream.
    for expected in [200, 401, 403, 404] {
        assert!(statuses.iter().any(|s| s.as_u16() == expected), "no {expected} among {statuses:?}");
    }
    // One line per call (the kill-switch refusal included; an
    // unauthenticated call may be counted rather than written).
    let lines = env.wait_audit_lines(statuses.len()).await;
    assert!(lines.len() >= statuses.len(), "{} audit lines for {} calls", lines.len(), statuses.len() + 1);

    let mut needles = with_encodings(&secrets);
    needles.extend(secrets.iter().map(|s| first_letter_encoded(s)));
    let allowed =
        [env.dir.path().join("social.token"), env.dir.path().join("llm.token"), env.state_dir().join("agent.token")];
    // While the daemon runs: the WAL holds the recent writes.
    let checked = assert_no_needles(env.dir.path(), &needles, &allowed);
    for file in ["steward.db", "steward.db-wal", "steward.db-shm", "logs/audit.jsonl"] {
        assert!(checked.contains(&env.state_dir().join(file)), "{file} was not scanned: {checked:?}");
    }
    assert!(checked.contains(&env.dir.path().join("daemon.stderr")), "steward's own log was not scanned");

    // After a clean stop the WAL is folded into the database file.
    env.stop(false);
    let checked = assert_no_needles(env.dir.path(), &needles, &allowed);
    assert!(checked.contains(&env.state_dir().join("steward.db")), "{checked:?}");
}
