//! MCP mode: the smallest deterministic MCP server (revision 2025-11-25)
//! that steward's MCP benchmark and tests can put on either side of
//! steward, so what they measure is steward's overhead and not a server's.
//!
//! One tool, `echo`, answers `{content: [{type: "text", text}]}` with the
//! `text` argument it was given. The server understands `initialize`,
//! `ping`, `tools/list` and `tools/call`; every other request is
//! "method not found", and notifications (`notifications/initialized`,
//! `notifications/cancelled`, ...) and responses are taken silently.
//!
//! Two transports, one [`answer`]:
//! - stdio ([`serve_stdio`], `mock-upstream --mcp-stdio`): one JSON-RPC
//!   message per line on stdin, one answer per line on stdout, until EOF.
//! - streamable HTTP (`POST /mcp` on the mock's listener): the answer to a
//!   request is one `application/json` body, a notification or response is
//!   `202 Accepted`. The server keeps no state, so it issues no
//!   `Mcp-Session-Id` and offers no `GET` stream (`405`, as the transport
//!   allows).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use std::io::{BufRead, Write};

/// The revisions the server speaks, newest first: a client asking for
/// another gets the newest (the lifecycle's version negotiation).
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

/// The one tool's name.
pub const ECHO_TOOL: &str = "echo";

/// Longest stdin line the stdio server reads.
///
/// Why: the mock's HTTP body limit, so both transports refuse the same sizes.
pub const MAX_LINE_BYTES: usize = crate::MAX_BODY_BYTES;

/// JSON-RPC: not JSON.
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a request object.
const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: no such method.
const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: invalid params (MCP: an unknown tool).
const INVALID_PARAMS: i64 = -32602;

/// The answer to one JSON-RPC message: `Some` response for a request,
/// `None` for a notification or a response.
pub fn answer(message: &Value) -> Option<Value> {
    let Some(object) = message.as_object() else {
        return Some(error(Value::Null, INVALID_REQUEST, "not a JSON-RPC message object"));
    };
    let id = object.get("id").cloned()?;
    let Some(method) = object.get("method").and_then(Value::as_str) else {
        // A response to a request of ours (the mock sends none): ignored.
        return None;
    };
    let params = object.get("params").unwrap_or(&Value::Null);
    let result = match method {
        "initialize" => initialize(params),
        "ping" => json!({}),
        "tools/list" => json!({ "tools": [echo_definition()] }),
        "tools/call" => match call(params) {
            Ok(result) => result,
            Err(message) => return Some(error(id, INVALID_PARAMS, message)),
        },
        other => return Some(error(id, METHOD_NOT_FOUND, format!("method not found: {other}"))),
    };
    Some(json!({ "jsonrpc": "2.0", "id": id, "result": result }))
}

fn error(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message.into() } })
}

fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked.filter(|v| PROTOCOL_VERSIONS.contains(v)).unwrap_or(PROTOCOL_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "mock-upstream", "version": env!("CARGO_PKG_VERSION") },
    })
}

/// `echo`'s definition in `tools/list`.
fn echo_definition() -> Value {
    json!({
        "name": ECHO_TOOL,
        "title": "Echo",
        "description": "Answers with the text it is given.",
        "inputSchema": {
            "type": "object",
            "properties": { "text": { "type": "string", "description": "What to answer with." } },
            "required": ["text"],
        },
        "annotations": { "readOnlyHint": true, "idempotentHint": true },
    })
}

/// A `tools/call`: the result, or the message of an invalid-params error
/// (an unknown tool is a protocol error in 2025-11-25; bad arguments are a
/// tool execution error, `isError: true`, which the model can act on).
fn call(params: &Value) -> Result<Value, String> {
    let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
    if name != ECHO_TOOL {
        return Err(format!("unknown tool: {name:?}; the only tool is `{ECHO_TOOL}`"));
    }
    Ok(match params.pointer("/arguments/text").and_then(Value::as_str) {
        Some(text) => json!({ "content": [{ "type": "text", "text": text }], "isError": false }),
        None => json!({
            "content": [{ "type": "text", "text": "echo needs a string argument `text`" }],
            "isError": true,
        }),
    })
}

/// Serves MCP over stdio: reads one message per line from `input` and
/// writes each answer as one line to `output` (flushed), until `input`
/// ends. A line that is not JSON is answered with a parse error; a line
/// longer than [`MAX_LINE_BYTES`] ends the server with an error.
///
/// Blocking on purpose: a thread reading a pipe answers sooner and more
/// evenly than an async runtime's stdin, which hands each read to its
/// blocking pool; the latency benchmark measures steward, not that hop.
pub fn serve_stdio(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    let mut lines = input.take(0);
    let mut line = Vec::new();
    loop {
        line.clear();
        // One more byte than the limit tells a full-length line from a longer one.
        lines.set_limit(MAX_LINE_BYTES as u64 + 1);
        if lines.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE_BYTES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a line longer than MAX_LINE_BYTES"));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = match serde_json::from_slice::<Value>(&line) {
            Ok(message) => answer(&message),
            Err(_) => Some(error(Value::Null, PARSE_ERROR, "the line is not JSON")),
        };
        if let Some(reply) = reply {
            let mut bytes = reply.to_string().into_bytes();
            bytes.push(b'\n');
            output.write_all(&bytes)?;
            output.flush()?;
        }
    }
}

/// `POST /mcp`: one message in, its answer as `application/json`, or
/// `202 Accepted` for a notification or response.
pub(crate) async fn post(body: Bytes) -> Response {
    let reply = match serde_json::from_slice::<Value>(&body) {
        Ok(message) => answer(&message),
        Err(_) => {
            let reply = error(Value::Null, PARSE_ERROR, "the body is not JSON");
            return (StatusCode::BAD_REQUEST, json_body(&reply)).into_response();
        }
    };
    match reply {
        Some(reply) => json_body(&reply).into_response(),
        None => StatusCode::ACCEPTED.into_response(),
    }
}

/// `GET` and `DELETE /mcp`: no server-started stream, no session to end.
pub(crate) async fn not_offered() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, HeaderValue::from_static("POST"))]).into_response()
}

fn json_body(value: &Value) -> ([(header::HeaderName, HeaderValue); 1], String) {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_negotiates_the_version() {
        let asked = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
        let reply = answer(&asked);
        assert_eq!(reply.as_ref().and_then(|r| r.pointer("/result/protocolVersion")), Some(&json!("2025-06-18")));
        let unknown =
            json!({ "jsonrpc": "2.0", "id": 2, "method": "initialize", "params": { "protocolVersion": "1999-01-01" } });
        assert_eq!(
            answer(&unknown).and_then(|r| r.pointer("/result/protocolVersion").cloned()),
            Some(json!("2025-11-25"))
        );
    }

    #[test]
    fn notifications_and_responses_get_no_answer() {
        assert_eq!(answer(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })), None);
        assert_eq!(answer(&json!({ "jsonrpc": "2.0", "id": 7, "result": {} })), None);
    }

    #[test]
    fn echo_answers_its_text_and_other_names_are_errors() {
        let call = json!({ "jsonrpc": "2.0", "id": "a", "method": "tools/call",
            "params": { "name": "echo", "arguments": { "text": "hi" } } });
        assert_eq!(
            answer(&call),
            Some(
                json!({ "jsonrpc": "2.0", "id": "a", "result": { "content": [{ "type": "text", "text": "hi" }], "isError": false } })
            )
        );
        let unknown = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "nope" } });
        assert_eq!(answer(&unknown).and_then(|r| r.pointer("/error/code").cloned()), Some(json!(INVALID_PARAMS)));
        let no_text = json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": { "name": "echo" } });
        assert_eq!(answer(&no_text).and_then(|r| r.pointer("/result/isError").cloned()), Some(json!(true)));
        let other = json!({ "jsonrpc": "2.0", "id": 5, "method": "resources/list" });
        assert_eq!(answer(&other).and_then(|r| r.pointer("/error/code").cloned()), Some(json!(METHOD_NOT_FOUND)));
    }
}
