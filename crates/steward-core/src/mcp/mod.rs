//! The MCP front door: the HTTP routes (`door`: `/mcp/{server}`, served on
//! the gateway's listener), the rules of the stateless revision 2026-07-28
//! (`stateless`: which request is one, its header checks, its translation),
//! the `[mcp.*]` servers (`upstream`: one face for the servers steward
//! runs, `stdio`, and the streamable-HTTP servers it is the client of,
//! `http`), the agent's sessions with them (`hub`), tool pinning (`pins`),
//! the servers' states published into the store (`publish`), and the relay
//! of every JSON-RPC message between the two sides. A `tools/call` is a
//! call of the one pipeline
//! (`pipeline::mcp`), never decided here.
//!
//! # Library decision: relay JSON-RPC as `serde_json::Value`, no `rmcp`
//! `rmcp` (the official Rust SDK, 3.x) was weighed for its model types and
//! transports. steward is a proxy, not a client or a server: it must pass on
//! every method, field, notification and `_meta` it does not know, in both
//! directions, byte-faithful in meaning, and look at only a handful of
//! members (`method`, `id`, `params.name`, `params.arguments`,
//! `params._meta.progressToken`, `result.tools[]`, `isError`). rmcp's typed
//! model is a closed set of enums: a message it does not model (a newer
//! revision's method, an experimental capability) fails to parse or loses
//! members on the round trip, and its service layer answers requests itself
//! (ping, initialize) where steward must relay them to the right session.
//! So messages are framed here (newline-delimited JSON on stdio; JSON
//! bodies and SSE events over HTTP; all bounded by `max_message_size`) and held as
//! `serde_json::Value`; the few members steward reads are read with
//! `Value::get`. rmcp is not a dependency (it would also add its macro and
//! schema crates to a 2-core build for types steward never constructs).
//! The real peers in the tests are the official Python SDK and the
//! reference servers, not rmcp.
//!
//! # Sessions
//! One stdio process, or one upstream HTTP session, per `[mcp.NAME]`,
//! shared by the agent's sessions (`Mcp-Session-Id`, protocol
//! `2025-11-25`). steward initializes the server itself with the first
//! client's `initialize` params and answers every client's `initialize`
//! with the server's result; a stdio server that exits is restarted with
//! backoff, an HTTP server that forgot the session (`404`) is connected
//! again, and either is initialized again with the same params on the next
//! request (transparently; a `tools/call` that was in flight is failed,
//! never replayed, unless its tool only reads). Request ids are rewritten towards
//! the server (steward numbers them, so two sessions cannot collide) and
//! back; a client's `notifications/cancelled` is rewritten to the id the
//! server knows. Messages the server starts go to the session they belong
//! to: progress by its token, other requests (sampling, elicitation,
//! roots) to the session that made the latest request, list-changed and
//! log notifications to every session; a session reads them on its `GET`
//! stream (buffered up to [`SESSION_BUFFER`] while none is open), except
//! what is about a request the door answers as SSE (its progress, the
//! server's requests carrying its token), which goes on that answer. Every
//! message from a server reaches a session scrubbed of credential values
//! (`tools/call` answers by the pipeline, the rest by the hub).
//!
//! # Two eras, one server process
//! The era is the client's, per request: `initialize` opens a session as
//! above; a request naming revision 2026-07-28 in its `_meta` is served
//! without one (see `stateless`), on the same server process, which steward
//! always speaks a session revision to ([`SESSION_VERSIONS`]). A stateless
//! request takes nothing the server starts: a server request that arrives
//! while one is the latest is answered with an error to the server, never
//! handed to another client's session.

mod door;
mod http;
mod hub;
pub use crate::store::pins;
pub mod publish;
mod sse;
mod stateless;
mod stdio;
mod upstream;

pub use door::routes;
pub use http::HttpServer;
pub use hub::{McpHub, Session};
pub use stateless::request_headers as stateless_request_headers;
pub use stdio::{StdioServer, quarantine_line};
pub use upstream::{ServerMessages, ServerState, Upstream};

/// Every protocol revision the door speaks, newest first: what a
/// `server/discover` lists and what an `UnsupportedProtocolVersion` error
/// offers a 2026-07-28-era client asking for another.
pub const PROTOCOL_VERSIONS: &[&str] = &["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The stateless revisions (per-request `_meta`, no `initialize`, no
/// session), newest first: a request naming one is served by `stateless`.
pub const STATELESS_VERSIONS: &[&str] = &["2026-07-28"];

/// The session revisions (`initialize`, `Mcp-Session-Id`), newest first.
/// steward speaks one of these to its servers whatever its clients speak
/// (one handshake per server process); a client whose `initialize` asks for
/// another gets the newest (the client then decides whether it can go on).
pub const SESSION_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Messages the server started that wait for a session's `GET` stream;
/// beyond this they are dropped (requests among them answered with an
/// error), so a client that never reads cannot grow steward's memory.
pub const SESSION_BUFFER: usize = 1024;

/// Sessions one server keeps open at most. A client that opens more than
/// this without ending them (`DELETE`) pushes out the least recently used
/// one, whose next request is answered `404` (the client starts a new
/// session, as the transport says): an agent cannot grow steward's memory
/// by opening sessions.
pub const MAX_SESSIONS: usize = 256;

/// A session neither used by a request nor reading its `GET` stream for
/// this long is ended when the next session opens.
pub const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The header that names a client's session.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// JSON-RPC error code steward uses for its own relay failures (the
/// server unreachable, no session, a message too large): "server error".
pub const RELAY_ERROR: i64 = -32000;

/// A JSON-RPC error object.
pub fn rpc_error(code: i64, message: impl Into<String>) -> serde_json::Value {
    serde_json::json!({ "code": code, "message": message.into() })
}

/// The `result` or `error` of a server's response message.
pub fn answer_of(message: serde_json::Value) -> crate::pipeline::McpAnswer {
    match (message.get("result"), message.get("error")) {
        (Some(result), _) => crate::pipeline::McpAnswer::Result(result.clone()),
        (None, Some(error)) => crate::pipeline::McpAnswer::Error(error.clone()),
        (None, None) => crate::pipeline::McpAnswer::Error(rpc_error(
            RELAY_ERROR,
            "the MCP server answered with neither result nor error",
        )),
    }
}
