//! The MCP mock over both transports: `mock-upstream --mcp-stdio` (the real
//! binary, newline-delimited JSON-RPC) and `POST /mcp` on the HTTP mock.
//! Correctness only: nothing here is timed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use mock_upstream::MockUpstream;
use serde_json::{Value, json};

fn initialize(id: u64) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "test", "version": "1" } } })
}

#[test]
fn the_stdio_server_answers_each_request_on_one_line_and_ends_with_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-upstream"))
        .arg("--mcp-stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let messages = [
        initialize(1),
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" }),
        json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "echo", "arguments": { "text": "hé\nllo" } } }),
        json!({ "jsonrpc": "2.0", "id": 4, "method": "ping" }),
    ];
    for message in &messages {
        writeln!(stdin, "{message}").unwrap();
    }
    writeln!(stdin, "not json").unwrap();
    drop(stdin);
    let lines: Vec<Value> = (&mut stdout).lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
    assert!(child.wait().unwrap().success(), "the server exits cleanly at EOF");

    assert_eq!(lines.len(), 5, "one answer per request, none for the notification: {lines:#?}");
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[0]["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(lines[0]["result"]["capabilities"]["tools"], json!({ "listChanged": false }));
    assert_eq!(lines[1]["result"]["tools"][0]["name"], "echo");
    assert_eq!(lines[1]["result"]["tools"][0]["inputSchema"]["type"], "object");
    assert_eq!(
        lines[2],
        json!({ "jsonrpc": "2.0", "id": 3, "result": {
        "content": [{ "type": "text", "text": "hé\nllo" }], "isError": false } })
    );
    assert_eq!(lines[3], json!({ "jsonrpc": "2.0", "id": 4, "result": {} }));
    assert_eq!(lines[4]["error"]["code"], -32700);
}

#[tokio::test]
async fn the_http_server_answers_json_and_accepts_notifications() {
    let mock = MockUpstream::start().await.unwrap();
    let url = format!("{}/mcp", mock.base_url());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |body: Value| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
            .send()
    };

    let response = post(initialize(1)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().get("mcp-session-id").is_none(), "a stateless server issues no session");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["serverInfo"]["name"], "mock-upstream");

    let response = post(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await.unwrap();
    assert_eq!(response.status(), 202);
    assert!(response.bytes().await.unwrap().is_empty());

    let call = json!({ "jsonrpc": "2.0", "id": "x", "method": "tools/call", "params": { "name": "echo", "arguments": { "text": "over http" } } });
    let body: Value = post(call).await.unwrap().json().await.unwrap();
    assert_eq!(body["id"], "x");
    assert_eq!(body["result"]["content"][0]["text"], "over http");

    let stream = client.get(&url).header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(stream.status(), 405, "no GET stream is offered");
    mock.shutdown().await;
}
