//! Failing closed when the store or the audit log cannot record a call,
//! `/readyz` saying why, and the record of a response the agent abandoned
//! (written on the daemon's tracker, so draining waits for it).

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Harness, answer};
use crate::pipeline::{Call, Door, RequestTarget};

/// `/readyz`: its status and JSON.
async fn readyz(h: &Harness) -> (u16, Value) {
    let response = reqwest::get(h.url("/readyz")).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn post(h: &Harness) -> reqwest::RequestBuilder {
    h.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": "hi" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_journal_refuses_the_call_503_and_readyz_says_so() {
    let h = Harness::start().await;
    assert_eq!(readyz(&h).await.0, 200);

    // Admission cannot journal (SQLite: the write connection refuses
    // inserts into the journal; PostgreSQL: the server is down): 503,
    // nothing forwarded.
    h.break_store().await;
    let refused = answer(post(&h)).await;
    assert_eq!((refused.status, refused.reason.as_str()), (503, "store_unavailable"), "{refused:?}");
    assert_eq!(refused.retry_after.as_deref(), Some("5"));
    assert!(refused.message.contains("steward status"), "{}", refused.message);
    let lines = h.audit_of(&refused.call_id);
    assert_eq!(lines.len(), 1, "the audit log still has the refusal: {lines:?}");
    assert_eq!(lines[0]["decision"], "store_unavailable");
    h.mend_store().await;
    assert!(h.row(&refused.call_id).await.is_none(), "the store took nothing");
    assert_eq!(answer(post(&h)).await.status, 200);
    if h.on_postgresql() {
        // The file-level faults below are the embedded store's.
        assert_eq!(h.mock.requests().len(), 1, "only the call made while the store worked went out");
        h.finish().await;
        return;
    }

    // The database vanished (moved away): the first read already fails closed.
    let db = h.config.state.db_path();
    let aside = db.with_extension("aside");
    std::fs::rename(&db, &aside).unwrap();
    let gone = answer(post(&h)).await;
    assert_eq!((gone.status, gone.reason.as_str()), (503, "store_unavailable"), "{gone:?}");
    let (status, body) = readyz(&h).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!((body["ready"].as_bool(), body["store_writable"].as_bool()), (Some(false), Some(false)), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("store not writable"), "{body}");
    std::fs::rename(&aside, &db).unwrap();
    assert_eq!(readyz(&h).await.0, 200);
    assert_eq!(h.mock.requests().len(), 1, "only the call made while the store worked went out");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_log_that_cannot_write_withdraws_the_admitted_call_and_readyz_says_so() {
    let h = Harness::start().await;
    // The log directory becomes a file: even root cannot create audit.jsonl in it.
    let logs = h.config.logging.dir.clone();
    std::fs::remove_dir_all(&logs).unwrap();
    std::fs::write(&logs, "not a directory").unwrap();

    let refused = answer(post(&h)).await;
    assert_eq!((refused.status, refused.reason.as_str()), (503, "store_unavailable"), "{refused:?}");
    let row = h.row(&refused.call_id).await.unwrap();
    // Admitted, then withdrawn: refused in the journal, its rate slot freed.
    assert_eq!((row.decision.as_str(), row.status), ("store_unavailable", Some(503)));
    assert!(h.mock.requests().is_empty(), "no call leaves steward without its audit line");
    let (status, body) = readyz(&h).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!((body["store_writable"].as_bool(), body["audit_writable"].as_bool()), (Some(true), Some(false)));
    assert!(body["detail"].as_str().unwrap().contains("audit log not writable"), "{body}");

    std::fs::remove_file(&logs).unwrap();
    std::fs::create_dir(&logs).unwrap();
    assert_eq!(answer(post(&h)).await.status, 200, "the next write reopens the log");
    assert_eq!(readyz(&h).await.0, 200);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_the_agent_abandons_is_recorded_before_the_drain_ends() {
    let h = Harness::start().await;
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, format!("Bearer {}", h.token()).parse().unwrap());
    let target = RequestTarget::parse("social/stream", Some("chunks=50&delay_ms=100&size=16")).unwrap();
    let call = Call::new(Door::Api, target, http::Method::GET, headers, Bytes::new());
    let call_id = call.id.clone();
    let response = h.pipeline.handle(call).await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()), "the stream started");
    let row = h.row(&call_id).await.unwrap();
    assert_eq!(row.finished_ms, None, "in flight while the agent reads");
    // The agent hangs up: the body is dropped mid-stream.
    drop(body);

    // Draining waits for the record, which the dropped body left to the tracker.
    h.drain().await;
    let row = h.row(&call_id).await.unwrap();
    assert!(row.finished_ms.is_some(), "{row:?}");
    assert_eq!((row.decision.as_str(), row.status), ("allowed", Some(200)));
    assert_eq!(row.reason.as_deref(), Some("agent disconnected before the response ended"));
    let lines = h.audit_of(&call_id);
    let phases: Vec<_> = lines.iter().map(|l| l["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["admitted", "completed"], "{lines:?}");
    assert_eq!(lines[1]["reason"], "agent disconnected before the response ended");
    h.finish().await;
}
