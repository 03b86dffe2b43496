//! `GET /admin/v1/mcp`: the state of each `[mcp.*]` server as the running
//! daemon sees it (stdio: idle, running, exited, fatal; HTTP: idle,
//! reachable, unreachable), with the latest error, for `steward mcp list`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AdminState;

pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/admin/v1/mcp", get(servers))
}

async fn servers(State(state): State<AdminState>) -> Json<Value> {
    let servers: Vec<Value> = state
        .mcp
        .as_ref()
        .map(|hub| hub.states())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, server)| {
            // Already redacted where it was recorded; redacted again at the door out.
            let error = server.last_error().map(|e| state.pipeline.redact(e));
            json!({ "name": name, "state": server.as_str(), "last_error": error })
        })
        .collect();
    Json(json!({ "servers": servers }))
}
