//! The kill switch comes first: a stopped agent hears `killed` for every
//! kind of call, whatever else is wrong with it, and each is journaled.

use reqwest::Method;
use serde_json::json;

use super::{Harness, answer, chat};
use crate::pipeline::unix_ms;

/// Sends a request whose body stalls after one byte (`[gateway]
/// body_timeout` is 1 s here) and returns the status line's code and the
/// response's body.
pub(super) async fn stalled_body(h: &Harness, token: Option<&str>) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "POST /api/social/echo HTTP/1.1\r\nHost: steward\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_hears_killed_for_every_kind_of_call() {
    let h = Harness::start().await;
    let now = unix_ms(std::time::SystemTime::now());
    h.store.engage_kill("stopped by the test", "cli", now).await.unwrap();
    let post = || h.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": "hi" }));
    let llm = "/llm/openai/v1/chat/completions";
    let calls = [
        ("matched", post()),
        ("unmatched", h.req(Method::DELETE, "/api/social/nothing")),
        ("unknown upstream", h.req(Method::GET, "/api/nowhere/x")),
        ("unknown provider", h.req(Method::POST, "/llm/nowhere/v1/chat/completions").json(&chat("gpt-4o-mini"))),
        ("unknown price", h.req(Method::POST, llm).json(&chat("imaginary-model-9"))),
        ("over the spend cap", h.req(Method::POST, llm).json(&chat("gpt-4o-mini"))),
        ("credential expired", h.req(Method::GET, "/api/stale/api/v1/statuses")),
        ("upstream unreachable", h.req(Method::POST, "/api/dead/x")),
        ("bad request body", h.req(Method::POST, llm).header("content-type", "application/json").body("{not json")),
        ("method override", post().header("x-http-method-override", "DELETE")),
        ("malformed target", h.req(Method::GET, "/api/social/api//v1/statuses")),
        ("body too large", h.req(Method::POST, "/api/social/echo").body(vec![b'x'; 4096])),
    ];
    let mut call_ids = Vec::new();
    for (kind, request) in calls {
        let answer = answer(request).await;
        assert_eq!((answer.status, answer.reason.as_str()), (403, "killed"), "{kind}: {answer:?}");
        assert!(answer.message.contains("stopped by the test") && answer.message.contains("steward resume"), "{kind}");
        call_ids.push((kind, answer.call_id));
    }
    let (status, body) = stalled_body(&h, Some(h.token())).await;
    assert_eq!((status, body["error"]["reason"].as_str()), (403, Some("killed")), "stalled body: {body}");
    let stalled_id = body["error"]["call_id"].as_str().unwrap().to_owned();
    call_ids.push(("body stalled", stalled_id));

    // Each is the agent's call: journaled `killed` with its status, and audited.
    for (kind, call_id) in &call_ids {
        let row = h.row(call_id).await.unwrap_or_else(|| panic!("{kind}: no journal row"));
        assert_eq!((row.decision.as_str(), row.status), ("killed", Some(403)), "{kind}");
        assert_eq!(row.reason.as_deref(), Some(answer_reason().as_str()), "{kind}");
        let lines = h.audit_of(call_id);
        assert_eq!(lines.len(), 1, "{kind}: {lines:?}");
        assert_eq!((lines[0]["decision"].as_str(), lines[0]["phase"].as_str()), (Some("killed"), Some("refused")));
    }
    assert_eq!(h.rows().await.len(), call_ids.len(), "one row per call, nothing else");
    assert!(h.mock.requests().is_empty(), "a killed agent's call reached the upstream");

    // Requests without a valid token are not the agent's: they learn nothing of the switch.
    let anonymous = answer(h.anonymous(Method::POST, "/api/social/api/v1/statuses")).await;
    assert_eq!((anonymous.status, anonymous.reason.as_str()), (401, "unauthenticated"));
    let (status, _) = stalled_body(&h, None).await;
    assert_eq!(status, 401);
    let target = answer(h.anonymous(Method::GET, "/api/social/api//v1/statuses")).await;
    assert_eq!((target.status, target.reason.as_str()), (401, "unauthenticated"));
    assert_eq!(h.rows().await.len(), call_ids.len(), "junk is not journaled");

    // Released: the same calls meet their own refusals again.
    h.store.release_kill(unix_ms(std::time::SystemTime::now())).await.unwrap();
    assert_eq!(answer(h.req(Method::DELETE, "/api/social/nothing")).await.reason, "unmatched");
    assert_eq!(answer(h.req(Method::POST, llm).json(&chat("imaginary-model-9"))).await.reason, "unknown_price");
    assert_eq!(answer(post()).await.status, 200);
    h.finish().await;
}

/// The text the journal's `reason` carries: the refusal's message.
fn answer_reason() -> String {
    crate::pipeline::Refusal::Killed { reason: "stopped by the test".into() }.view().message
}
