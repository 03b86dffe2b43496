//! `GET /admin/v1/status`: who is answering (version, pid, agent) and the
//! kill switch, so a client can check it reached the daemon it meant.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::{AdminState, ApiError};

pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/admin/v1/status", get(status))
}

async fn status(State(state): State<AdminState>) -> Result<Json<serde_json::Value>, ApiError> {
    let kill = state.store.kill_state().await.map_err(|e| ApiError::store(state.pipeline.redact(&e.to_string())))?;
    Ok(Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "agent": state.agent,
        "kill_switch": {"engaged": kill.engaged, "reason": kill.reason},
    })))
}
