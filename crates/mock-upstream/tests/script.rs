//! Integration tests of scripted answers and `/reflect`: what the
//! settlement and scrubbing tests of steward build their upstreams from.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{client, read_body};
use mock_upstream::{MockUpstream, Script, ScriptEnd};

#[tokio::test]
async fn a_script_answers_the_next_request_verbatim_then_the_routes_resume() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_script(Script::sse(["data: a\n\n", "data: [DONE]\n\n"]).status(500).header("x-one", "1"));
    let response = client().post(format!("{}/v1/chat/completions", mock.base_url())).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-one"], "1");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.text().await.unwrap(), "data: a\n\ndata: [DONE]\n\n");
    assert_eq!(mock.requests().len(), 1, "a scripted request is recorded");
    let next = client().get(format!("{}/health", mock.base_url())).send().await.unwrap();
    assert_eq!(next.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn a_script_can_cut_or_hold_the_connection_open() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_script(Script::sse(["data: a\n\n"]).ending(ScriptEnd::Cut));
    let response = client().get(format!("{}/anything", mock.base_url())).send().await.unwrap();
    let (body, error) = read_body(response).await;
    assert_eq!(body, b"data: a\n\n");
    assert!(error.is_some(), "a cut is not a clean end");

    mock.push_script(Script::sse(["data: [DONE]\n\n"]).ending(ScriptEnd::HoldOpen));
    let mut response = client().get(format!("{}/anything", mock.base_url())).send().await.unwrap();
    assert_eq!(response.chunk().await.unwrap().unwrap(), "data: [DONE]\n\n");
    let more = tokio::time::timeout(Duration::from_millis(300), response.chunk()).await;
    assert!(more.is_err(), "the body stays open: {more:?}");
}

#[tokio::test]
async fn a_split_script_sends_one_frame_per_byte() {
    let mock = MockUpstream::start().await.unwrap();
    mock.push_script(Script::sse(["data: xyz\n\n"]).split(1).paced(Duration::from_millis(2)));
    let mut response = client().get(format!("{}/x", mock.base_url())).send().await.unwrap();
    let mut frames = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        assert_eq!(chunk.len(), 1);
        frames += 1;
    }
    assert_eq!(frames, 11);
}

#[tokio::test]
async fn reflect_hands_the_received_credential_back_everywhere() {
    let mock = MockUpstream::start().await.unwrap();
    let token = "tok/en+1";
    let response =
        client().get(format!("{}/reflect?status=302", mock.base_url())).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let headers = response.headers().clone();
    assert_eq!(headers["x-debug-token"], token);
    let b64 = base64::engine::general_purpose::STANDARD.encode(token);
    assert_eq!(headers["set-cookie"], format!("session={b64}; Path=/").as_str());
    assert_eq!(headers["location"], "/callback?token=tok%2Fen%2B1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["authorization"], format!("Bearer {token}"));
    assert_eq!(body["token"], token);

    let response = client()
        .get(format!("{}/reflect?sse=1&chunk=1&delay_ms=1", mock.base_url()))
        .header("x-api-key", token)
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains(r#"data: {"token":"tok/en+1"}"#), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}
