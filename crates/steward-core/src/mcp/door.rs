//! The MCP front door: `POST`, `GET` and `DELETE /mcp/{server}`, MCP's
//! streamable HTTP, with the agent's steward token on every request, in
//! both eras, chosen per request: revision 2025-11-25 and older (a
//! session: `initialize`, then `Mcp-Session-Id`) and revision 2026-07-28
//! (stateless: every `POST` self-contained, see `stateless` for how a
//! request is told apart, the header checks and the translation). Served
//! on the gateway's listener ([`routes`] is handed to `gateway::Service`,
//! so the gateway does not depend on this module).
//!
//! - `POST` carries one JSON-RPC message. `initialize` opens a session (the
//!   answer names it in `Mcp-Session-Id`); every later message names it,
//!   unless it is a stateless request. A
//!   request is answered with one JSON response (or, when it carries a
//!   progress token and the client takes SSE, an SSE stream of its
//!   progress, then that response: see [`streamed`]): `tools/call` becomes a
//!   [`Call`] of the one pipeline (its refusals are `isError` results, see
//!   `pipeline::mcp`), `tools/list` is relayed with the tools the policy
//!   denies left out, `ping` is answered here, everything else is relayed
//!   to the server as it is. Notifications and responses are relayed and
//!   answered `202 Accepted`.
//! - `GET` is the session's stream (SSE) of what the server starts:
//!   requests (sampling, elicitation, roots), progress, list changes, logs.
//! - `DELETE` ends the session.
//!
//! Transport-level errors (no token, no or unknown session, a body over
//! `max_message_size`, not JSON) are HTTP errors with a JSON-RPC error body
//! that says the fix; a tool call is never refused that way.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::routing::MethodRouter;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{Value, json};

use super::pins::Verdict;
use super::{McpHub, RELAY_ERROR, SESSION_HEADER, Session, answer_of, rpc_error, stateless};
use crate::gateway::read_body;
use crate::pipeline::{Call, McpAnswer, McpForwardError, McpToolCall, Pipeline, Refusal};

/// JSON-RPC: the body is not JSON.
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a valid request object.
const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: invalid params.
const INVALID_PARAMS: i64 = -32602;

/// Comment lines sent on an idle `GET` stream, so proxies and clients see
/// it alive.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// How often a closed stateless request's cancellation is sent again
/// while its call has not ended (it may not have reached the server yet).
const CANCEL_RETRY: Duration = Duration::from_millis(200);

/// State of the MCP routes.
#[derive(Debug, Clone)]
struct Door {
    pipeline: Arc<Pipeline>,
    hub: Arc<McpHub>,
    /// `gateway.body_timeout`.
    body_timeout: Duration,
    /// The gateway listens on loopback only: `Host` must be loopback too.
    loopback: bool,
}

/// `POST`, `GET` and `DELETE` of `/mcp/{server}`, for the gateway's listener.
/// `listen` is the gateway's address: on loopback, every request must name
/// a loopback host (see [`rebinding`]).
pub fn routes(
    pipeline: Arc<Pipeline>,
    hub: Arc<McpHub>,
    body_timeout: Duration,
    listen: std::net::SocketAddr,
) -> axum::Router {
    let methods: MethodRouter<Door> = axum::routing::post(post).get(get).delete(delete);
    let door = Door { pipeline, hub, body_timeout, loopback: listen.ip().is_loopback() };
    axum::Router::new().route("/mcp/{server}", methods).with_state(door)
}

/// Whether `host` (a `Host` header, or an `Origin`'s host and port) names
/// this machine's loopback: `localhost`, `127.x.y.z` or `[::1]`, any port.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host.as_str(),
        },
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// DNS rebinding (the transport's MUST): a web page whose own name was made
/// to resolve to 127.0.0.1 sends its own `Host` and `Origin`. A request
/// with an `Origin` that is not loopback is refused (agents send none; a
/// local browser tool's page is on loopback), and so is one whose `Host` is
/// not loopback while the gateway listens on loopback only. The steward
/// token is required besides, which such a page does not have.
fn rebinding(door: &Door, headers: &HeaderMap) -> Option<&'static str> {
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest);
        if !host.is_some_and(|h| !h.contains('/') && is_loopback_host(h)) {
            return Some(
                "an Origin that is not this machine's loopback: browser pages of other sites may not use the MCP door",
            );
        }
    }
    if door.loopback {
        let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        if !is_loopback_host(host) {
            return Some(
                "a Host that is not loopback while steward listens on loopback only (DNS rebinding?): use http://127.0.0.1:PORT/mcp/NAME",
            );
        }
    }
    None
}

/// An HTTP error whose body is a JSON-RPC error saying the fix.
fn transport_error(status: StatusCode, code: i64, message: impl Into<String>) -> Response<Body> {
    let body = json!({ "jsonrpc": "2.0", "id": null, "error": rpc_error(code, message) });
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The checks every method shares: the server exists, the agent's token.
fn check(door: &Door, server: &str, headers: &HeaderMap) -> Result<(), Box<Response<Body>>> {
    if let Some(why) = rebinding(door, headers) {
        return Err(Box::new(transport_error(StatusCode::FORBIDDEN, RELAY_ERROR, format!("refused {why}"))));
    }
    if !door.hub.has(server) {
        let message =
            format!("no MCP server named `{server}` is configured; add [mcp.{server}] to steward.toml or fix the URL");
        return Err(Box::new(transport_error(StatusCode::NOT_FOUND, INVALID_REQUEST, message)));
    }
    if !door.pipeline.is_agent(headers) {
        return Err(Box::new(transport_error(
            StatusCode::UNAUTHORIZED,
            RELAY_ERROR,
            "missing or wrong steward token: send the contents of <state dir>/agent.token as `Authorization: Bearer <token>`",
        )));
    }
    Ok(())
}

/// The session a request names.
fn session_of(door: &Door, server: &str, headers: &HeaderMap) -> Result<Arc<Session>, Box<Response<Body>>> {
    let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(Box::new(transport_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "no Mcp-Session-Id header: send initialize first, then the session id it answered with (or speak 2026-07-28: MCP-Protocol-Version and params._meta on every request)",
        )));
    };
    door.hub.session(server, id).ok_or_else(|| {
        Box::new(transport_error(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            "unknown or ended MCP session: initialize a new one",
        ))
    })
}

async fn post(State(door): State<Door>, Path(server): Path<String>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    if let Err(response) = check(&door, &server, &parts.headers) {
        return *response;
    }
    let limit = door.hub.server(&server).map_or(0, |s| s.max_message_size() as u64);
    let bytes: Bytes = match read_body(body, limit, door.body_timeout).await {
        Ok(bytes) => bytes,
        Err(Refusal::BodyTooLarge { limit }) => {
            return transport_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                RELAY_ERROR,
                format!(
                    "the message is larger than [mcp.{server}] max_message_size ({limit} bytes); send less, or raise max_message_size"
                ),
            );
        }
        Err(_) => {
            return transport_error(
                StatusCode::BAD_REQUEST,
                RELAY_ERROR,
                "the request body could not be read whole; send it again",
            );
        }
    };
    let message: Value = match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(Value::Array(_)) => {
            return transport_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "JSON-RPC batches are not part of MCP 2025-06-18 and later: send one message per request",
            );
        }
        Ok(_) | Err(_) => {
            return transport_error(
                StatusCode::BAD_REQUEST,
                PARSE_ERROR,
                "the body is not a JSON-RPC message (a JSON object)",
            );
        }
    };
    let method = message.get("method").and_then(Value::as_str).map(str::to_owned);
    let id = message.get("id").cloned();
    if method.as_deref() == Some("initialize") {
        let Some(id) = id else {
            return transport_error(StatusCode::BAD_REQUEST, INVALID_REQUEST, "initialize is a request: give it an id");
        };
        return initialize(&door, &server, id, message.get("params").cloned().unwrap_or(Value::Null)).await;
    }
    if stateless::applies(&parts.headers, &message) {
        return stateless_post(door, server, parts.headers, message).await;
    }
    let session = match session_of(&door, &server, &parts.headers) {
        Ok(session) => session,
        Err(response) => return *response,
    };
    let (Some(method), Some(id)) = (method, id) else {
        // A notification or a response to the server: relayed, accepted.
        if message.get("method").and_then(Value::as_str) == Some("notifications/initialized") {
            return accepted();
        }
        let what = message.get("method").and_then(Value::as_str).unwrap_or("(response)").to_owned();
        let relayed = door.hub.relay(&server, &session, message).await;
        if let Err(err) = &relayed {
            tracing::debug!(server = %server, error = %err, "could not relay a client message to the MCP server");
        }
        door.pipeline.count_mcp_message(&server, &what, relayed.is_err());
        return accepted();
    };
    let params = message.get("params").cloned();
    let token = params.as_ref().and_then(|p| p.pointer("/_meta/progressToken")).cloned();
    if let Some(token) = token.filter(|_| takes_sse(&parts.headers)) {
        return streamed(door, server, session, id, method, params, parts.headers, &token);
    }
    let reply = dispatch(&door, &server, &session, &id, &method, params, parts.headers).await;
    json_response(StatusCode::OK, &reply_body(&door, &id, reply))
}

/// The JSON-RPC response to the request `id`.
fn reply_body(door: &Door, id: &Value, reply: Result<McpAnswer, McpForwardError>) -> Value {
    match reply {
        Ok(McpAnswer::Result(result)) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Ok(McpAnswer::Error(error)) => json!({ "jsonrpc": "2.0", "id": id, "error": error }),
        Err(err) => {
            json!({ "jsonrpc": "2.0", "id": id, "error": rpc_error(RELAY_ERROR, door.pipeline.redact(&err.to_string())) })
        }
    }
}

/// Whether the client takes an SSE answer to its `POST` (`Accept` names
/// `text/event-stream`; the transport has every client send it).
fn takes_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|kind| kind.split(';').next().is_some_and(|k| k.trim().eq_ignore_ascii_case("text/event-stream")))
}

/// One SSE event carrying `message`.
fn sse_event(message: &Value) -> String {
    format!("event: message\ndata: {message}\n\n")
}

/// A session's request with a progress token, from a client that takes
/// SSE: answered as an SSE stream of what the server says about it (its
/// progress, its requests carrying the token), then its response, so the
/// progress reaches the client before the response, on one connection.
/// Over the session's `GET` stream instead, a client may read the response
/// first and drop the progress still on its way, as it must (the
/// request has ended for it). The stream carries a keepalive comment while
/// the request is quiet (it may wait for an approval for minutes).
///
/// The request runs on the daemon's task tracker: a client that hangs up
/// does not cancel it (only `notifications/cancelled` does, as the
/// transport says), it ends and is recorded whole.
#[expect(clippy::too_many_arguments, reason = "the parts of one request, moved into its task")]
fn streamed(
    door: Door,
    server: String,
    session: Arc<Session>,
    id: Value,
    method: String,
    params: Option<Value>,
    headers: HeaderMap,
    token: &Value,
) -> Response<Body> {
    let (related_tx, related) = tokio::sync::mpsc::channel(super::SESSION_BUFFER);
    let guard = door.hub.stream_related(&server, token, related_tx);
    let (answer_tx, answer) = tokio::sync::oneshot::channel();
    door.hub.tasks().clone().spawn(async move {
        let reply = dispatch(&door, &server, &session, &id, &method, params, headers).await;
        // What the server says after the response goes to the session.
        drop(guard);
        let _ = answer_tx.send(reply_body(&door, &id, reply));
    });
    let stream = futures_util::stream::unfold(Some((related, answer)), |state| async move {
        let (mut related, mut answer) = state?;
        let chunk = tokio::select! {
            biased;
            Some(message) = related.recv() => return Some((Ok(Bytes::from(sse_event(&message))), Some((related, answer)))),
            body = &mut answer => {
                // Everything the server said before its response is in the
                // channel already (one ordered reader routes both): it goes first.
                let mut chunk = String::new();
                while let Ok(message) = related.try_recv() {
                    chunk.push_str(&sse_event(&message));
                }
                let body = body.unwrap_or_else(|_| {
                    json!({ "jsonrpc": "2.0", "id": null, "error": rpc_error(RELAY_ERROR, "steward failed to serve the request") })
                });
                chunk.push_str(&sse_event(&body));
                chunk
            }
            () = tokio::time::sleep(KEEPALIVE_EVERY) => return Some((Ok(Bytes::from_static(b": keepalive\n\n")), Some((related, answer)))),
        };
        Some((Ok::<_, Infallible>(Bytes::from(chunk)), None))
    });
    let mut response = Response::new(Body::from_stream(stream.boxed()));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A request of a 2026-07-28 client (see `stateless`): checked, then
/// served on its own, without a session. It runs on the daemon's task
/// tracker: when the agent closes the response (this revision's
/// cancellation), the call is cancelled at the server and recorded, not
/// dropped half-way.
async fn stateless_post(door: Door, server: String, headers: HeaderMap, message: Value) -> Response<Body> {
    let id = message.get("id").cloned();
    let Some(method) = message.get("method").and_then(Value::as_str).map(str::to_owned) else {
        return transport_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "a 2026-07-28 client sends requests only: the server asks nothing of it, so there is nothing to answer",
        );
    };
    let Some(id) = id else {
        // This revision defines no client notification over HTTP (closing
        // the response is the cancellation): accepted, not relayed.
        tracing::debug!(server = %server, method = %method, "ignored a notification of a stateless MCP client");
        return accepted();
    };
    if let Err(rejection) = stateless::check(&headers, &message) {
        tracing::warn!(server = %server, method = %method, error = %rejection.error, "refused a stateless MCP request");
        return json_response(rejection.status, &json!({ "jsonrpc": "2.0", "id": id, "error": rejection.error }));
    }
    if method == "subscriptions/listen" {
        let error = rpc_error(
            stateless::METHOD_NOT_FOUND,
            "steward does not relay subscriptions/listen: list again (results are never cacheable through steward)",
        );
        return json_response(StatusCode::NOT_FOUND, &json!({ "jsonrpc": "2.0", "id": id, "error": error }));
    }
    let params = stateless::upstream_params(message.get("params").cloned());
    let cancel = tokio_util::sync::CancellationToken::new();
    let hung_up = cancel.clone().drop_guard();
    let tasks = door.hub.tasks().clone();
    let task = tasks.spawn(async move {
        let session = Session::stateless();
        let reply = stateless_reply(&door, &server, &session, &id, &method, params, headers);
        tokio::pin!(reply);
        let reply = tokio::select! {
            reply = &mut reply => reply,
            () = cancel.cancelled() => {
                // The agent closed the response: nothing more is sent for it,
                // and what is in flight is cancelled at the server (the
                // pipeline records the call as cancelled). Repeated until the
                // call ends: it may be waiting for an approval, or between
                // its admission and its send.
                session.close();
                let cancelled = json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": { "requestId": id, "reason": "the agent closed the request" },
                });
                loop {
                    if let Err(err) = door.hub.relay(&server, &session, cancelled.clone()).await {
                        tracing::debug!(server = %server, error = %err, "could not relay a cancellation to the MCP server");
                    }
                    tokio::select! {
                        reply = &mut reply => break reply,
                        () = tokio::time::sleep(CANCEL_RETRY) => {}
                    }
                }
            }
        };
        let (status, body) = match reply {
            Ok(McpAnswer::Result(mut result)) => {
                stateless::complete(&method, &mut result);
                (StatusCode::OK, json!({ "jsonrpc": "2.0", "id": id, "result": result }))
            }
            Ok(McpAnswer::Error(error)) => {
                // This revision answers a method the server does not have with 404.
                let unknown = error.get("code").and_then(Value::as_i64) == Some(stateless::METHOD_NOT_FOUND);
                let status = if unknown { StatusCode::NOT_FOUND } else { StatusCode::OK };
                (status, json!({ "jsonrpc": "2.0", "id": id, "error": error }))
            }
            Err(err) => (
                StatusCode::OK,
                json!({
                    "jsonrpc": "2.0", "id": id, "error": rpc_error(RELAY_ERROR, door.pipeline.redact(&err.to_string()))
                }),
            ),
        };
        json_response(status, &body)
    });
    let response = task.await;
    hung_up.disarm();
    response.unwrap_or_else(|_| {
        transport_error(StatusCode::INTERNAL_SERVER_ERROR, RELAY_ERROR, "steward failed to serve the request")
    })
}

/// What a stateless request is answered with (its `session` a stand-in that
/// takes nothing the server starts).
async fn stateless_reply(
    door: &Door,
    server: &str,
    session: &Arc<Session>,
    id: &Value,
    method: &str,
    params: Option<Value>,
    headers: HeaderMap,
) -> Result<McpAnswer, McpForwardError> {
    if method == "server/discover" {
        let process = door
            .hub
            .server(server)
            .ok_or_else(|| McpForwardError::Unreachable(format!("no MCP server named `{server}`")))?;
        let init = process.initialize(&Value::Null).await?;
        door.pipeline.count_mcp_message(server, method, false);
        return Ok(McpAnswer::Result(stateless::discover(&init)));
    }
    dispatch(door, server, session, id, method, params, headers).await
}

/// A client's request, in either revision: a `tools/call` is a call of the
/// one pipeline; anything else meets the kill switch here (a stopped agent
/// does nothing through steward: every request but `ping` is answered with
/// the switch's reason), is relayed (`tools/list` with the denied tools
/// left out), and is counted for the audit log's summary line.
async fn dispatch(
    door: &Door,
    server: &str,
    session: &Arc<Session>,
    id: &Value,
    method: &str,
    params: Option<Value>,
    headers: HeaderMap,
) -> Result<McpAnswer, McpForwardError> {
    if method == "tools/call" {
        return Ok(tools_call(door, server, session, id, params, headers).await);
    }
    if method != "ping"
        && let Some(refusal) = door.pipeline.mcp_message_refusal(&headers).await
    {
        door.pipeline.count_mcp_message(server, method, true);
        return Ok(McpAnswer::Error(rpc_error(RELAY_ERROR, refusal)));
    }
    let reply = match method {
        "ping" => Ok(McpAnswer::Result(json!({}))),
        "tools/list" => tools_list(door, server, session, id, params).await,
        _ => door.hub.request(server, session, id, method, params).await.map(answer_of),
    };
    door.pipeline.count_mcp_message(server, method, !matches!(reply, Ok(McpAnswer::Result(_))));
    reply
}

fn accepted() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

async fn initialize(door: &Door, server: &str, id: Value, params: Value) -> Response<Body> {
    match door.hub.open_session(server, &params).await {
        Ok((session, result)) => {
            let mut response = json_response(StatusCode::OK, &json!({ "jsonrpc": "2.0", "id": id, "result": result }));
            if let Ok(value) = HeaderValue::from_str(&session.id) {
                response.headers_mut().insert(SESSION_HEADER, value);
            }
            tracing::info!(server = %server, session = %session.id, "MCP session opened");
            response
        }
        Err(err) => {
            let message = door.pipeline.redact(&err.to_string());
            tracing::warn!(server = %server, error = %message, "MCP initialize failed");
            json_response(
                StatusCode::OK,
                &json!({ "jsonrpc": "2.0", "id": id, "error": rpc_error(RELAY_ERROR, message) }),
            )
        }
    }
}

/// A `tools/call`: one call of the pipeline.
async fn tools_call(
    door: &Door,
    server: &str,
    session: &Arc<Session>,
    id: &Value,
    params: Option<Value>,
    headers: HeaderMap,
) -> McpAnswer {
    let Some(name) = params.as_ref().and_then(|p| p.get("name")).and_then(Value::as_str).map(str::to_owned) else {
        return McpAnswer::Error(rpc_error(INVALID_PARAMS, "tools/call needs params.name, the tool to call"));
    };
    let arguments = params.as_ref().and_then(|p| p.get("arguments")).cloned();
    let verdict = door.hub.pin_verdict(server, &name).await;
    let read_only = door.hub.read_only(server, &name);
    let call = Call::mcp_tool(server, McpToolCall { name: name.clone(), read_only }, arguments, headers);
    match verdict {
        Ok(Verdict::Trusted) => {}
        Ok(Verdict::Changed { .. }) => {
            let refusal = Refusal::ToolChanged { server: server.to_owned(), tool: name };
            return door.pipeline.reject_mcp(call, refusal).await;
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot read the MCP tool pins; refusing the call (fail closed)");
            return door.pipeline.reject_mcp(call, Refusal::StoreUnavailable).await;
        }
    }
    let hub = Arc::clone(&door.hub);
    let forward = || async move { hub.request(server, session, id, "tools/call", params).await.map(answer_of) };
    door.pipeline.handle_mcp(call, forward).await
}

/// A `tools/list`, relayed with the tools the policy denies left out.
async fn tools_list(
    door: &Door,
    server: &str,
    session: &Arc<Session>,
    id: &Value,
    params: Option<Value>,
) -> Result<McpAnswer, McpForwardError> {
    let message = door.hub.request(server, session, id, "tools/list", params).await?;
    let mut answer = answer_of(message);
    if let McpAnswer::Result(result) = &mut answer
        && let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut)
    {
        door.hub.remember_tools(server, tools);
        if let Err(err) = door.hub.pin_listed(server, tools).await {
            tracing::error!(error = %err, "cannot read the MCP tool pins; listing no tools (fail closed)");
            tools.clear();
        }
        tools.retain(|tool| {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            let read_only = tool.pointer("/annotations/readOnlyHint").and_then(Value::as_bool).unwrap_or(false);
            door.pipeline.mcp_tool_allowed(server, name, read_only)
        });
    }
    Ok(answer)
}

async fn get(State(door): State<Door>, Path(server): Path<String>, headers: HeaderMap) -> Response<Body> {
    if let Err(response) = check(&door, &server, &headers) {
        return *response;
    }
    let session = match session_of(&door, &server, &headers) {
        Ok(session) => session,
        Err(response) => return *response,
    };
    let Some(receiver) = session.stream() else {
        return transport_error(
            StatusCode::CONFLICT,
            INVALID_REQUEST,
            "this session already has its GET stream open; use that one",
        );
    };
    // The stream ends with the daemon's drain (a client holding it open
    // must not hold up shutdown) or with the session.
    let shutdown = door.hub.shutdown().clone();
    let stream = futures_util::stream::unfold((receiver, shutdown), |(mut rx, shutdown)| async move {
        let next = tokio::select! {
            next = tokio::time::timeout(KEEPALIVE_EVERY, rx.recv()) => next,
            () = shutdown.cancelled() => return None,
        };
        let chunk = match next {
            Ok(Some(message)) => format!("event: message\ndata: {message}\n\n"),
            Ok(None) => return None,
            Err(_) => ": keepalive\n\n".to_owned(),
        };
        Some((Ok::<_, Infallible>(Bytes::from(chunk)), (rx, shutdown)))
    });
    let mut response = Response::new(Body::from_stream(stream.boxed()));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn delete(State(door): State<Door>, Path(server): Path<String>, headers: HeaderMap) -> Response<Body> {
    if let Err(response) = check(&door, &server, &headers) {
        return *response;
    }
    let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return transport_error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "no Mcp-Session-Id header: name the session to end",
        );
    };
    if door.hub.close_session(&server, id) {
        tracing::info!(server = %server, session = %id, "MCP session ended");
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        response
    } else {
        transport_error(StatusCode::NOT_FOUND, INVALID_REQUEST, "unknown or ended MCP session")
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_are_named_in_any_spelling_and_others_are_not() {
        for host in
            ["localhost", "LOCALHOST:7600", "127.0.0.1", "127.0.0.1:7600", "127.1.2.3:80", "[::1]", "[::1]:7600"]
        {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:7600",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1:7600",
            "[::2]:7600",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
