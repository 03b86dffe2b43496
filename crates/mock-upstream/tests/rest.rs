//! Integration tests for the REST side of mock-upstream: the status API,
//! recording, faults, connection resets, redirects, streaming, the control
//! API and shutdown.

mod common;

use std::time::Duration;

use common::{client, read_body};
use mock_upstream::{Faults, MockUpstream};
use serde_json::{Value, json};

#[tokio::test]
async fn status_crud_round_trip() {
    let mock = MockUpstream::start().await.unwrap();
    let http = client();
    let statuses = format!("{}/api/v1/statuses", mock.base_url());

    let first: Value = http
        .post(&statuses)
        .json(&json!({"status": "first post"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["id"], "1");
    assert_eq!(first["content"], "first post");
    assert_eq!(first["visibility"], "public");
    assert_eq!(first["url"], format!("{}/@mock/1", mock.base_url()));
    let created_at = first["created_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339).is_ok(),
        "{created_at}"
    );

    let second: Value = http
        .post(&statuses)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("status=second+%26+more&visibility=unlisted")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["id"], "2");
    assert_eq!(second["content"], "second & more");
    assert_eq!(second["visibility"], "unlisted");

    let fetched: Value = http.get(format!("{statuses}/1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(fetched, first);

    let list: Vec<Value> = http.get(&statuses).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["2", "1"], "newest first");

    let deleted = http.delete(format!("{statuses}/1")).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.json::<Value>().await.unwrap()["content"], "first post");

    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let missing = http.request(method, format!("{statuses}/1")).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        assert_eq!(missing.json::<Value>().await.unwrap(), json!({"error": "Record not found"}));
    }
    mock.shutdown().await;
}

#[tokio::test]
async fn status_validation_and_idempotency() {
    let mock = MockUpstream::start().await.unwrap();
    let http = client();
    let statuses = format!("{}/api/v1/statuses", mock.base_url());

    let blank = http.post(&statuses).json(&json!({"status": "  "})).send().await.unwrap();
    assert_eq!(blank.status(), 422);
    assert!(blank.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("Text can't be blank"));

    let post =
        |key: &'static str| http.post(&statuses).header("Idempotency-Key", key).json(&json!({"status": "once"})).send();
    let a: Value = post("k-1").await.unwrap().json().await.unwrap();
    let b: Value = post("k-1").await.unwrap().json().await.unwrap();
    let c: Value = post("k-2").await.unwrap().json().await.unwrap();
    assert_eq!(a, b, "a retried post with the same key is not duplicated");
    assert_ne!(a["id"], c["id"]);
}

#[tokio::test]
async fn recording_keeps_headers_and_body_exactly() {
    let mock = MockUpstream::start().await.unwrap();
    let body = br#"{"status":"hello \u00e9","n":1}"#;
    let response = client()
        .post(format!("{}/api/v1/statuses?trace=1&x=%20y", mock.base_url()))
        .header("Authorization", "Bearer upstream-token-123")
        .header("X-Custom", "a")
        .header("X-Custom", "b")
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Control API calls are not recorded.
    client().get(format!("{}/__mock/requests", mock.base_url())).send().await.unwrap();

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/v1/statuses");
    assert_eq!(request.query.as_deref(), Some("trace=1&x=%20y"));
    assert_eq!(&request.body[..], body);
    assert_eq!(request.header("authorization"), Some("Bearer upstream-token-123"));
    assert_eq!(request.header("AUTHORIZATION"), Some("Bearer upstream-token-123"));
    assert_eq!(request.header("x-api-key"), None);
    let custom: Vec<&str> =
        request.headers.iter().filter(|(name, _)| name == "x-custom").map(|(_, value)| value.as_str()).collect();
    assert_eq!(custom, ["a", "b"], "duplicates kept in order");
    assert_eq!(request.json().unwrap()["n"], 1);

    mock.clear_requests();
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn pushed_503_then_normal_200() {
    let mock = MockUpstream::start().await.unwrap();
    let http = client();
    let url = format!("{}/api/v1/statuses", mock.base_url());
    mock.push_status(503);

    let failed = http.get(&url).send().await.unwrap();
    assert_eq!(failed.status(), 503);
    assert!(failed.headers().get("retry-after").is_none());
    let body: Value = failed.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");

    let ok = http.get(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(mock.requests().len(), 2, "faulted requests are recorded too");
}

#[tokio::test]
async fn pushed_429_carries_retry_after_and_fifo_order_holds() {
    let mock = MockUpstream::start().await.unwrap();
    let http = client();
    let url = format!("{}/health", mock.base_url());
    mock.push_status(429);
    mock.push_status(500);

    let limited = http.get(&url).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(http.get(&url).send().await.unwrap().status(), 500);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn blanket_429_fault_uses_the_configured_retry_after() {
    let mock = MockUpstream::start().await.unwrap();
    let http = client();
    mock.set_faults(Faults { retry_after_429: Some(30), ..Faults::default() });
    for _ in 0..3 {
        let response = http.get(format!("{}/api/v1/statuses", mock.base_url())).send().await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "30");
    }
    mock.set_faults(Faults::default());
    let ok = http.get(format!("{}/health", mock.base_url())).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn error_rate_is_deterministic() {
    let mock = MockUpstream::start().await.unwrap();
    let http = client();
    mock.set_faults(Faults { error_rate: 0.5, ..Faults::default() });
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = http.get(format!("{}/health", mock.base_url())).send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 503, 200, 503, 200, 503]);
}

#[tokio::test]
async fn connection_reset_is_a_client_side_error() {
    let mock = MockUpstream::start().await.unwrap();
    mock.set_faults(Faults { reset_connections: 2, ..Faults::default() });
    let url = format!("{}/api/v1/statuses", mock.base_url());
    for _ in 0..2 {
        // A fresh client each time: the reset must not be hidden by retrying
        // on another pooled connection.
        let error = client().get(&url).send().await.unwrap_err();
        assert!(error.is_request() || error.is_connect(), "{error:?}");
        assert!(error.status().is_none());
    }
    assert_eq!(mock.faults().reset_connections, 0);
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    assert_eq!(mock.requests().len(), 3, "reset requests are recorded");
}

#[tokio::test]
async fn fault_header_reset_and_unknown_values() {
    let mock = MockUpstream::start().await.unwrap();
    let url = format!("{}/health", mock.base_url());
    let error = client().get(&url).header("x-mock-fault", "reset").send().await.unwrap_err();
    assert!(error.status().is_none(), "{error:?}");

    let typo = client().get(&url).header("x-mock-fault", "cutt").send().await.unwrap();
    assert_eq!(typo.status(), 400);
    let body: Value = typo.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("x-mock-fault"), "{body}");
}

#[tokio::test]
async fn control_routes_are_exempt_from_faults() {
    let mock = MockUpstream::start().await.unwrap();
    mock.set_faults(Faults { reset_connections: 5, retry_after_429: Some(1), ..Faults::default() });
    let response = client().get(format!("{}/__mock/requests", mock.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(mock.faults().reset_connections, 5);
}

#[tokio::test]
async fn redirect_is_not_followed_by_a_non_following_client() {
    let mock = MockUpstream::start().await.unwrap();
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let response = client()
            .request(method, format!("{}/redirect", mock.base_url()))
            .header("Authorization", "Bearer injected")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(response.headers()["location"], "/api/v1/statuses");
    }
    assert!(mock.requests().iter().all(|r| r.path == "/redirect"), "the client did not follow");
}

#[tokio::test]
async fn stream_delivers_n_chunks_in_order() {
    let mock = MockUpstream::start().await.unwrap();
    let response =
        client().get(format!("{}/stream?chunks=30&size=100&delay_ms=1", mock.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.content_length().is_none(), "chunked, not sized");
    let (body, error) = read_body(response).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(body.len(), 30 * 100);
    for (i, chunk) in body.chunks(100).enumerate() {
        let letter = b'a' + u8::try_from(i % 26).unwrap();
        assert!(chunk.iter().all(|&b| b == letter), "chunk {i}");
    }
}

#[tokio::test]
async fn stream_rejects_out_of_range_parameters() {
    let mock = MockUpstream::start().await.unwrap();
    for query in ["chunks=abc", "size=999999999", "delay_ms=99999999"] {
        let response = client().get(format!("{}/stream?{query}", mock.base_url())).send().await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
    }
}

#[tokio::test]
async fn cut_stream_after_drops_the_connection_after_n_chunks() {
    let mock = MockUpstream::start().await.unwrap();
    mock.set_faults(Faults { cut_stream_after: Some(4), ..Faults::default() });
    let response = client().get(format!("{}/stream?chunks=10&size=1000", mock.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (body, error) = read_body(response).await;
    assert!(error.is_some(), "the stream must not end cleanly");
    assert_eq!(body.len(), 4 * 1000, "exactly the chunks before the cut");
}

#[tokio::test]
async fn fault_header_cut_stops_half_way() {
    let mock = MockUpstream::start().await.unwrap();
    let response = client()
        .get(format!("{}/stream?chunks=8&size=10", mock.base_url()))
        .header("x-mock-fault", "cut")
        .send()
        .await
        .unwrap();
    let (body, error) = read_body(response).await;
    assert!(error.is_some());
    assert_eq!(body.len(), 4 * 10);
}

#[tokio::test]
async fn echo_returns_body_and_content_type() {
    let mock = MockUpstream::start().await.unwrap();
    let response = client()
        .post(format!("{}/echo", mock.base_url()))
        .header("Content-Type", "application/x-custom; v=2")
        .body(vec![0u8, 1, 2, 255])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-custom; v=2");
    assert_eq!(&response.bytes().await.unwrap()[..], &[0u8, 1, 2, 255]);

    // Larger than axum's default 2 MB extractor limit.
    let big = vec![b'x'; 3 * 1024 * 1024];
    let response = client().post(format!("{}/echo", mock.base_url())).body(big.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-type").is_none());
    assert_eq!(response.bytes().await.unwrap().len(), big.len());
}

#[tokio::test]
async fn health_and_unknown_paths() {
    let mock = MockUpstream::start().await.unwrap();
    let health = client().get(format!("{}/health", mock.base_url())).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let missing = client().get(format!("{}/nope", mock.base_url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<Value>().await.unwrap()["error"].is_string());
}

#[tokio::test]
async fn control_api_over_http() {
    let mock = MockUpstream::start().await.unwrap();
    let http = client();
    let base = mock.base_url();

    http.post(format!("{base}/echo")).header("x-trace", "t1").body("payload").send().await.unwrap();
    let requests: Vec<Value> = http.get(format!("{base}/__mock/requests")).send().await.unwrap().json().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["path"], "/echo");
    assert_eq!(requests[0]["body"], "payload");
    assert_eq!(requests[0]["body_base64"], "cGF5bG9hZA==");
    assert!(requests[0]["headers"].as_array().unwrap().contains(&json!(["x-trace", "t1"])));

    let cleared = http.delete(format!("{base}/__mock/requests")).send().await.unwrap();
    assert_eq!(cleared.status(), 204);
    assert!(mock.requests().is_empty());

    let set = http
        .put(format!("{base}/__mock/faults"))
        .json(&json!({"latency_ms": 5, "cut_stream_after": 2, "reset_connections": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    let faults = mock.faults();
    assert_eq!(faults.latency, Duration::from_millis(5));
    assert_eq!(faults.cut_stream_after, Some(2));
    assert_eq!(faults.reset_connections, 1);
    let read: Value = http.get(format!("{base}/__mock/faults")).send().await.unwrap().json().await.unwrap();
    assert_eq!(read["latency_ms"], 5);

    for bad in [json!({"error_rate": 2.0}), json!({"unknown": 1})] {
        let refused = http.put(format!("{base}/__mock/faults")).json(&bad).send().await.unwrap();
        assert_eq!(refused.status(), 400, "{bad}");
    }

    http.put(format!("{base}/__mock/faults")).json(&json!({})).send().await.unwrap();
    let pushed = http.post(format!("{base}/__mock/status/418")).send().await.unwrap();
    assert_eq!(pushed.status(), 204);
    assert_eq!(http.post(format!("{base}/__mock/status/42")).send().await.unwrap().status(), 400);
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 418);
}

#[tokio::test(start_paused = true)]
async fn latency_is_added_before_the_response() {
    let mock = MockUpstream::start().await.unwrap();
    mock.set_faults(Faults { latency: Duration::from_secs(3600), ..Faults::default() });
    // Virtual time: the hour passes instantly, but it must pass.
    let started = tokio::time::Instant::now();
    let response = client().get(format!("{}/health", mock.base_url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_secs(3600));
}

#[tokio::test]
async fn shutdown_is_graceful_and_bounded_with_a_stream_in_flight() {
    let mock = MockUpstream::start().await.unwrap();
    let addr = mock.addr();
    let response =
        client().get(format!("{}/stream?chunks=1000&size=10&delay_ms=60000", mock.base_url())).send().await.unwrap();
    let reader = tokio::spawn(read_body(response));
    mock.shutdown().await;
    let (body, error) = reader.await.unwrap();
    assert_eq!(body.len(), 10, "the first chunk, then the stream ended early");
    assert!(error.is_some(), "an interrupted stream is not a clean end");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn start_on_a_given_address() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let mock = MockUpstream::start_on(addr).await.unwrap();
    assert_eq!(mock.addr(), addr);
    assert_eq!(mock.base_url(), format!("http://{addr}"));
    assert!(MockUpstream::start_on(addr).await.is_err(), "port is taken");
}
