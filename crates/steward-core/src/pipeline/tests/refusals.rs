//! Every refusal the pipeline answers, through the front doors: its status,
//! its `reason`, and its journal row (refusals of the agent's calls) or its
//! sampled audit line (junk, never journaled).

use std::time::SystemTime;

use reqwest::Method;
use serde_json::json;

use super::kill::stalled_body;
use super::{Answer, Harness, answer, chat};
use crate::decision::{Decision, status_of_decision};
use crate::pipeline::unix_ms;
use crate::store::{STOP_KEY, SpendStop, Window};

const LLM: &str = "/llm/openai/v1/chat/completions";

/// Asserts `answer` and the journal row and audit line of its call.
async fn refused(h: &Harness, answer: &Answer, status: u16, decision: Decision) {
    let what = decision.as_str();
    assert_eq!((answer.status, answer.reason.as_str()), (status, what), "{answer:?}");
    let row = h.row(&answer.call_id).await.unwrap_or_else(|| panic!("{what}: no journal row"));
    assert_eq!(row.decision, what);
    assert!(row.finished_ms.is_some(), "{what}: a refusal is finished on arrival");
    // Rows refused inside admission carry no status: `steward last` maps it back.
    assert_eq!(row.status.or_else(|| status_of_decision(&row.decision)), Some(status), "{what}");
    let lines = h.audit_of(&answer.call_id);
    assert_eq!(lines.len(), 1, "{what}: {lines:?}");
    assert_eq!((lines[0]["decision"].as_str(), lines[0]["phase"].as_str()), (Some(what), Some("refused")));
    assert_eq!(lines[0]["status"].as_u64(), Some(u64::from(status)), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_is_answered_and_sampled_never_journaled() {
    let h = Harness::start().await;
    let unauthenticated = answer(h.anonymous(Method::GET, "/api/social/api/v1/statuses")).await;
    assert_eq!((unauthenticated.status, unauthenticated.reason.as_str()), (401, "unauthenticated"));
    let wrong_token = h.anonymous(Method::GET, "/api/social/api/v1/statuses").bearer_auth("stw_not-the-token");
    assert_eq!(answer(wrong_token).await.status, 401);
    let malformed = answer(h.req(Method::GET, "/api/social/api//v1/statuses")).await;
    assert_eq!((malformed.status, malformed.reason.as_str()), (400, "bad_request"));
    assert!(malformed.message.contains("segment"), "says what is wrong: {}", malformed.message);
    let (status, body) = stalled_body(&h, Some(h.token())).await;
    assert_eq!((status, body["error"]["reason"].as_str()), (408, Some("body_timeout")), "{body}");

    assert!(h.rows().await.is_empty(), "junk is never journaled");
    assert!(h.mock.requests().is_empty());
    // The first request of each kind is the sampled example.
    let sampled = |call_id: &str| h.audit_of(call_id).iter().any(|l| l["phase"] == "sampled");
    assert!(sampled(&unauthenticated.call_id));
    assert!(sampled(&malformed.call_id));
    let lines = h.audit_lines();
    assert!(lines.iter().any(|l| l["decision"] == "body_timeout" && l["phase"] == "sampled"), "{lines:?}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_admission_are_journaled_with_their_status() {
    let h = Harness::start().await;
    let post = || h.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": "hi" }));

    let unmatched = answer(h.req(Method::DELETE, "/api/social/nothing")).await;
    refused(&h, &unmatched, 403, Decision::Unmatched).await;
    assert!(unmatched.message.contains("DELETE /nothing") && unmatched.message.contains("[[tools]]"));

    let unknown = answer(h.req(Method::GET, "/api/nowhere/x")).await;
    refused(&h, &unknown, 404, Decision::UnknownUpstream).await;
    assert!(unknown.message.contains("[upstreams.nowhere]"));
    let provider = answer(h.req(Method::POST, "/llm/nowhere/v1/chat/completions").json(&chat("gpt-4o-mini"))).await;
    refused(&h, &provider, 404, Decision::UnknownUpstream).await;

    let price = answer(h.req(Method::POST, LLM).json(&chat("imaginary-model-9"))).await;
    refused(&h, &price, 403, Decision::UnknownPrice).await;
    assert!(price.message.contains("[prices.\"imaginary-model-9\"]"));

    let expired = answer(h.req(Method::GET, "/api/stale/api/v1/statuses")).await;
    refused(&h, &expired, 403, Decision::CredentialExpired).await;
    assert!(expired.message.contains("`stale`") && expired.message.contains("steward secrets reload"));

    let body = answer(h.req(Method::POST, LLM).header("content-type", "application/json").body("{not json")).await;
    refused(&h, &body, 400, Decision::BadRequest).await;
    let no_model = answer(h.req(Method::POST, LLM).json(&json!({ "messages": [] }))).await;
    refused(&h, &no_model, 400, Decision::BadRequest).await;
    assert!(no_model.message.contains("model"), "{}", no_model.message);
    let overridden = answer(post().header("x-http-method-override", "DELETE")).await;
    refused(&h, &overridden, 400, Decision::BadRequest).await;

    let large = answer(h.req(Method::POST, "/api/social/echo").body(vec![b'x'; 4096])).await;
    refused(&h, &large, 413, Decision::BodyTooLarge).await;
    assert!(large.message.contains("gateway.max_body"));

    assert!(h.mock.requests().is_empty(), "no refused call reached the upstream");
    // The error-rate alert's flags, written with each row: unmatched and
    // unknown_price are failures, the rest worked as configured.
    let hour = Window::ending_at(unix_ms(SystemTime::now()), std::time::Duration::from_secs(3600));
    assert_eq!(h.store.error_counts_in(hour).await.unwrap(), (9, 2));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_window_is_rate_limited_with_retry_after() {
    let h = Harness::start().await;
    // Different posts: three identical ones would trip the loop breaker first.
    let post =
        |n: u32| h.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": format!("post {n}") }));
    for n in 0..2 {
        assert_eq!(answer(post(n)).await.status, 200);
    }
    let limited = answer(post(2)).await;
    refused(&h, &limited, 429, Decision::RateLimited).await;
    let retry_after: u64 = limited.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert!(limited.message.contains("`post`"));
    assert_eq!(h.mock.requests().len(), 2);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_identical_call_trips_the_loop_breaker_and_stops_the_agent() {
    let h = Harness::start().await;
    let read = || h.req(Method::GET, "/api/social/api/v1/statuses/7");
    for _ in 0..2 {
        assert_ne!(answer(read()).await.reason, "loop_detected");
    }
    let tripped = answer(read()).await;
    refused(&h, &tripped, 403, Decision::LoopDetected).await;
    assert!(tripped.message.contains("loop detected: read_status"));
    let kill = h.store.kill_state().await.unwrap();
    assert_eq!((kill.engaged, kill.source.as_deref()), (true, Some("loop_breaker")));
    // Stopped, whatever it calls next.
    let next = answer(h.req(Method::DELETE, "/api/social/nothing")).await;
    refused(&h, &next, 403, Decision::Killed).await;
    assert_eq!(h.mock.requests().len(), 2);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priced_calls_over_the_cap_or_after_a_spend_stop_are_refused() {
    let h = Harness::start().await;
    let capped = answer(h.req(Method::POST, LLM).json(&chat("gpt-4o-mini"))).await;
    refused(&h, &capped, 429, Decision::SpendCap).await;
    assert!(capped.message.contains("worst case"), "{}", capped.message);
    h.finish().await;

    let h = Harness::with("", 5.0).await;
    let now = SystemTime::now();
    let stop = SpendStop {
        day: h.config.spend.day_of(now, 0),
        reason: "openai gpt-4o-mini billed 900 micro-USD against 100 reserved".into(),
        call_id: "earlier".into(),
        at_ms: unix_ms(now),
    };
    h.store.kv_set(STOP_KEY, &serde_json::to_string(&stop).unwrap(), unix_ms(now)).await.unwrap();
    let stopped = answer(h.req(Method::POST, LLM).json(&chat("gpt-4o-mini"))).await;
    refused(&h, &stopped, 429, Decision::SpendCap).await;
    assert!(stopped.message.contains("stopped for today") && stopped.message.contains("billed 900"));
    assert!(h.mock.requests().is_empty());
    h.finish().await;
}

/// A call the upstream never answered: refused to the agent, journaled as
/// the admitted call it was (`allowed`, no status, the error), audited as
/// the failure.
async fn failed_upstream(h: &Harness, answer: &Answer, status: u16, decision: Decision) {
    assert_eq!((answer.status, answer.reason.as_str()), (status, decision.as_str()), "{answer:?}");
    let row = h.row(&answer.call_id).await.unwrap();
    assert_eq!((row.decision.as_str(), row.status), ("allowed", None));
    assert!(row.finished_ms.is_some() && row.reason.is_some(), "{row:?}");
    let lines = h.audit_of(&answer.call_id);
    let phases: Vec<_> = lines.iter().map(|l| (l["phase"].as_str(), l["decision"].as_str())).collect();
    assert_eq!(phases, [(Some("admitted"), Some("allowed")), (Some("completed"), Some(decision.as_str()))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_silent_upstream_is_a_recorded_failure() {
    let h = Harness::start().await;
    let unreachable = answer(h.req(Method::POST, "/api/dead/x")).await;
    failed_upstream(&h, &unreachable, 502, Decision::UpstreamUnreachable).await;

    h.mock.set_faults(mock_upstream::Faults { latency: std::time::Duration::from_secs(2), ..Default::default() });
    let silent = answer(h.req(Method::POST, "/api/slow/echo").json(&json!({ "x": 1 }))).await;
    failed_upstream(&h, &silent, 504, Decision::UpstreamTimeout).await;
    h.mock.set_faults(mock_upstream::Faults::default());

    // Both count as failures for the error-rate alert.
    let hour = Window::ending_at(unix_ms(SystemTime::now()), std::time::Duration::from_secs(3600));
    assert_eq!(h.store.error_counts_in(hour).await.unwrap(), (2, 2));
    h.finish().await;
}
